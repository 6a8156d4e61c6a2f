//! `cairn validate`: every problem in the stack file, or a one-line summary.

use super::{EXIT_OK, Failure, load_args};
use crate::cli::StackArgs;
use crate::ui::Printer;

pub(crate) fn run(printer: &Printer, args: &StackArgs) -> Result<u8, Failure> {
    let loaded = load_args(args)?;
    let stack = &loaded.stack;
    let steps = loaded.graph.steps().len();
    if args.json {
        let value = serde_json::json!({
            "valid": true,
            "stack": stack.name,
            "env": stack.env,
            "resources": stack.resources.len(),
            "checks": stack.checks.len(),
            "outputs": stack.outputs.len(),
            "steps": steps,
            "diagnostics": [],
        });
        printer.out(&serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        printer.out(&format!(
            "✓ stack {} (env {}) is valid: {}, {}, {}, {} deep",
            stack.name,
            stack.env,
            plural(stack.resources.len(), "resource"),
            plural(stack.checks.len(), "check"),
            plural(stack.outputs.len(), "output"),
            plural(steps, "step"),
        ));
    }
    Ok(EXIT_OK)
}
