//! `cairn demo`: the main job on the embedded default stack. Stages a
//! hand-made role in a simulated cloud, then runs validate → plan → apply →
//! plan (no changes) → output → destroy, showing that the hand-made object
//! is reused and left alone.

use std::path::Path;
use std::sync::Arc;

use super::{EXIT_OK, Failure};
use crate::cli::{DemoArgs, LockArgs, OutputArgs, PlanArgs, RunArgs, StackArgs};
use crate::ui::Printer;

/// The demo stack, embedded in the binary.
pub const DEMO_STACK: &str = include_str!("../../stacks/demo.toml");

/// A role "made by hand" before cairn ever ran: foreign (no cairn tags).
const HAND_MADE_WORLD: &str = r#"{
  "resources": [
    {
      "type": "sim_role",
      "id": "sim_role-demo-exec-handmade",
      "attributes": { "name": "demo-exec", "arn": "arn:sim:sim_role:demo-exec", "id": "sim_role-demo-exec-handmade" },
      "tags": { "owner": "platform-team" }
    }
  ]
}
"#;

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::Message(format!("could not create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::Message(format!("could not write {}: {e}", path.display())))
}

pub(crate) async fn run(printer: &Arc<Printer>, args: &DemoArgs) -> Result<u8, Failure> {
    let stack_path = args.dir.join("stack.toml");
    if args.dir.join(".cairn").exists() {
        return Err(Failure::Message(format!(
            "{} already holds a demo run: remove the folder or pass another one",
            args.dir.display()
        )));
    }
    write(&stack_path, DEMO_STACK)?;
    write(&args.dir.join(".cairn/world.json"), HAND_MADE_WORLD)?;
    let stack = StackArgs {
        stack: stack_path.clone(),
        env: None,
        vars: Vec::new(),
        json: false,
        state: Default::default(),
    };
    let run = RunArgs {
        auto_approve: true,
        parallelism: 16,
        no_rollback: false,
        retry_timeout: None,
        lock: LockArgs { lock_timeout: 0.0 },
        scheduler: crate::cli::Scheduler::CriticalPath,
    };
    let banner = |text: &str| printer.out(&format!("\n━━ {text}"));

    banner(&format!("cairn validate {}", stack_path.display()));
    super::validate::run(printer, &stack)?;

    let plan_args = PlanArgs {
        stack: stack.clone(),
        out: None,
        detailed_exitcode: false,
        destroy: false,
    };
    banner("cairn plan   (a hand-made sim_role `demo-exec` already exists in the world)");
    super::plan::run(printer, &plan_args).await?;

    banner("cairn apply --auto-approve");
    let apply = crate::cli::ApplyArgs {
        target: stack_path.clone(),
        env: None,
        vars: Vec::new(),
        state: Default::default(),
        run: run.clone(),
        json: false,
    };
    let code = super::apply::run(printer, &apply).await?;
    if code != EXIT_OK {
        return Ok(code);
    }

    banner("cairn plan   (again: the world now matches)");
    super::plan::run(printer, &plan_args).await?;

    banner("cairn output");
    super::output::run(
        printer,
        &OutputArgs {
            stack: stack.clone(),
            name: None,
        },
    )
    .await?;

    if args.keep {
        printer.out(&format!(
            "\nKept everything in {}: try `cairn graph {}` or `cairn destroy {}`.",
            args.dir.display(),
            stack_path.display(),
            stack_path.display()
        ));
        return Ok(EXIT_OK);
    }
    banner("cairn destroy --auto-approve   (the reused hand-made role is left alone)");
    let code = super::apply::destroy(printer, &crate::cli::DestroyArgs { stack, run }).await?;
    printer.out(&format!(
        "\nThe simulated cloud is in {}; the hand-made role is still there.",
        args.dir.join(".cairn/world.json").display()
    ));
    Ok(code)
}
