//! `cairn output`: the outputs recorded by the last apply.

use super::{EXIT_OK, Failure, load_args};
use crate::cli::OutputArgs;
use crate::model::template;
use crate::plan::render::{Masker, SENSITIVE};
use crate::ui::Printer;

pub(crate) async fn run(printer: &Printer, args: &OutputArgs) -> Result<u8, Failure> {
    let loaded = load_args(&args.stack)?;
    let stack = &loaded.stack;
    let backend = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env).await?;
    let state = backend.load().await?.state;
    let mask = Masker::new(&stack.sensitive_values);
    let shown = |v: &serde_json::Value| {
        if mask.is_secret(v) {
            serde_json::json!(SENSITIVE)
        } else {
            v.clone()
        }
    };
    if let Some(name) = &args.name {
        let value = state.outputs.get(name).ok_or_else(|| {
            let known: Vec<&str> = state.outputs.keys().map(String::as_str).collect();
            Failure::Message(format!(
                "no output `{name}` in state{}",
                if known.is_empty() {
                    " (has the stack been applied?)".to_string()
                } else {
                    format!(": known outputs are {}", known.join(", "))
                }
            ))
        })?;
        let v = shown(value);
        printer.out(&if args.stack.json {
            v.to_string()
        } else {
            template::display_scalar(&v)
        });
        return Ok(EXIT_OK);
    }
    if args.stack.json {
        let map: serde_json::Map<String, serde_json::Value> = state
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), shown(v)))
            .collect();
        printer.out(&serde_json::to_string_pretty(&map).unwrap_or_default());
    } else if state.outputs.is_empty() {
        printer.err("No outputs in state: apply the stack first.");
    } else {
        let lines: Vec<String> = state
            .outputs
            .iter()
            .map(|(k, v)| format!("{k} = {}", shown(v)))
            .collect();
        printer.out(&lines.join("\n"));
    }
    Ok(EXIT_OK)
}
