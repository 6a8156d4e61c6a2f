//! Printing diagnostics: the human report on stderr, GitHub annotations
//! when running in GitHub Actions, or JSON.

use super::Printer;
use crate::diagnostic::Diagnostics;

/// Prints every diagnostic in the chosen form.
pub fn print(printer: &Printer, diagnostics: &Diagnostics, json: bool) {
    if json {
        let value = serde_json::json!({ "diagnostics": diagnostics.0.iter().map(|d| d.message.clone()).collect::<Vec<_>>() });
        printer.out(&serde_json::to_string_pretty(&value).unwrap_or_default());
        return;
    }
    for d in &diagnostics.0 {
        printer.err(&format!("error: {}", d.message));
    }
}
