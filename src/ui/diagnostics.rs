//! Printing diagnostics: the human report on stderr (miette), GitHub
//! annotations on stdout when running in GitHub Actions, or JSON.

use super::Printer;
use crate::diagnostic::Diagnostics;
use crate::diagnostic::render::{render_github, render_human, to_json};

/// Prints every diagnostic in the chosen form.
pub fn print(printer: &Printer, diagnostics: &Diagnostics, json: bool) {
    if json {
        let value = serde_json::json!({ "valid": false, "diagnostics": to_json(&diagnostics.0) });
        printer.out(&serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        printer.err(&render_human(&diagnostics.0, printer.color));
    }
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        printer.out(&render_github(&diagnostics.0));
    }
}
