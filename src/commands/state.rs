//! `cairn state list|show` and `cairn force-unlock`.

use super::{EXIT_OK, Failure, load_args};
use crate::cli::{ForceUnlockArgs, StackArgs};
use crate::model::Address;
use crate::plan::render::{Masker, SENSITIVE};
use crate::ui::Printer;

/// The stack and its committed state, read-only.
async fn stack_and_state(
    args: &StackArgs,
) -> Result<(super::Loaded, crate::state::State), Failure> {
    let loaded = load_args(args)?;
    let stack = &loaded.stack;
    let state = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env)
        .await?
        .load()
        .await?
        .state;
    Ok((loaded, state))
}

pub(crate) async fn list(printer: &Printer, args: &StackArgs) -> Result<u8, Failure> {
    let (loaded, state) = stack_and_state(args).await?;
    let stack = &loaded.stack;
    if args.json {
        let rows: Vec<serde_json::Value> = state
            .resources
            .iter()
            .map(|(a, r)| serde_json::json!({"address": a.to_string(), "ownership": r.ownership, "id": r.id}))
            .collect();
        printer.out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    if state.resources.is_empty() {
        printer.err(&format!(
            "No resources in state for stack {} (env {}).",
            stack.name, stack.env
        ));
        return Ok(EXIT_OK);
    }
    let width = state
        .resources
        .keys()
        .map(|a| a.to_string().len())
        .max()
        .unwrap_or(0);
    let lines: Vec<String> = state
        .resources
        .iter()
        .map(|(a, r)| {
            let ownership = serde_json::to_value(r.ownership)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{:width$}  {ownership:8}  {}", a.to_string(), r.id)
        })
        .collect();
    printer.out(&lines.join("\n"));
    Ok(EXIT_OK)
}

pub(crate) async fn show(
    printer: &Printer,
    args: &StackArgs,
    address: &str,
) -> Result<u8, Failure> {
    let address: Address = address
        .parse()
        .map_err(|e: crate::model::AddressParseError| Failure::Message(e.to_string()))?;
    let (loaded, state) = stack_and_state(args).await?;
    let stack = &loaded.stack;
    let Some(resource) = state.resources.get(&address) else {
        return Err(Failure::Message(format!("{address} is not in state")));
    };
    let mask = Masker::new(&stack.sensitive_values);
    let schema = crate::provider::type_schema(&address.type_name).ok();
    let mut value = serde_json::to_value(resource).unwrap_or_default();
    if let Some(attrs) = value.get_mut("attributes").and_then(|a| a.as_object_mut()) {
        for (k, v) in attrs.iter_mut() {
            if mask.is_secret(v) || schema.as_ref().is_some_and(|s| s.is_sensitive(k)) {
                *v = serde_json::json!(SENSITIVE);
            }
        }
    }
    printer.out(
        &serde_json::to_string_pretty(
            &serde_json::json!({"address": address.to_string(), "resource": value}),
        )
        .unwrap_or_default(),
    );
    Ok(EXIT_OK)
}

pub(crate) async fn force_unlock(printer: &Printer, args: &ForceUnlockArgs) -> Result<u8, Failure> {
    let loaded = load_args(&args.stack)?;
    let stack = &loaded.stack;
    let backend = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env).await?;
    let holder = backend.force_unlock(&args.lock_id).await?;
    printer.err(&format!(
        "Removed the lock held by {holder} on {}.",
        backend.location()
    ));
    Ok(EXIT_OK)
}
