//! Renderers for [`Diagnostic`]s: miette's graphical report for humans,
//! GitHub Actions workflow commands for CI annotations, and JSON for tools.
//! Stages never print; commands pick a renderer.

use std::fmt;

use serde_json::{Value, json};

use super::{Diagnostic, Severity, floor_char_boundary};

/// The width human reports wrap at, fixed so output is reproducible.
pub const REPORT_WIDTH: usize = 100;

/// Adapter that lets miette render one of our diagnostics.
struct Report<'a>(&'a Diagnostic);

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.0.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.0.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.0.labels.is_empty() {
            return None;
        }
        self.0
            .source
            .as_deref()
            .map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let source = self.0.source.as_deref()?;
        if self.0.labels.is_empty() {
            return None;
        }
        let text = source.text.as_str();
        Some(Box::new(self.0.labels.iter().enumerate().map(
            move |(i, label)| {
                let start = floor_char_boundary(text, label.span.start);
                let end = floor_char_boundary(text, label.span.end.max(start));
                let note = (!label.text.is_empty()).then(|| label.text.clone());
                if i == 0 {
                    miette::LabeledSpan::new_primary_with_span(note, start..end)
                } else {
                    miette::LabeledSpan::new_with_span(note, start..end)
                }
            },
        )))
    }
}

/// Renders diagnostics for a terminal: source snippets with labelled spans,
/// wrapped at [`REPORT_WIDTH`], separated by blank lines. Without `color` the output is plain unicode
/// text (stable, for snapshots and logs).
pub fn render_human(diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(REPORT_WIDTH)
        .with_links(false);
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut one = String::new();
        if handler.render_report(&mut one, &Report(d)).is_err() {
            // miette could not read a span: fall back to the plain message.
            one = plain(d);
        }
        out.push_str(&one);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn plain(d: &Diagnostic) -> String {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut s = format!("{severity}[{}]: {}\n", d.code, d.message);
    if let Some(help) = &d.help {
        s.push_str(&format!("  help: {help}\n"));
    }
    s
}

/// Escapes a workflow-command message (`%`, CR, LF).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders diagnostics as GitHub Actions annotations, one
/// `::error file=PATH,line=L,col=C,title=CODE::MESSAGE` line each (help
/// appended to the message on its own line).
pub fn render_github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut props = Vec::new();
        if let Some(source) = &d.source {
            props.push(format!(
                "file={}",
                escape_property(&source.path.display().to_string())
            ));
            if let Some(label) = d.labels.first() {
                let (line, col) = source.line_col(label.span.start);
                props.push(format!("line={line}"));
                props.push(format!("col={col}"));
            }
        }
        props.push(format!("title={}", escape_property(d.code)));
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&format!(
            "::{command} {}::{}\n",
            props.join(","),
            escape_data(&message)
        ));
    }
    out
}

/// Diagnostics as JSON: an array of `{severity, code, message, file, line,
/// column, labels: [{line, column, text}], help}`. Lines and columns are
/// 1-based (columns count characters); `file`, `line`, `column` and `help`
/// are `null` when unknown.
pub fn to_json(diagnostics: &[Diagnostic]) -> Value {
    Value::Array(
        diagnostics
            .iter()
            .map(|d| {
                let source = d.source.as_deref();
                let position = |offset: usize| source.map(|s| s.line_col(offset));
                let primary = d.labels.first().and_then(|l| position(l.span.start));
                let labels: Vec<Value> = d
                    .labels
                    .iter()
                    .filter_map(|l| {
                        let (line, column) = position(l.span.start)?;
                        Some(json!({"line": line, "column": column, "text": l.text}))
                    })
                    .collect();
                json!({
                    "severity": match d.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    },
                    "code": d.code,
                    "message": d.message,
                    "file": source.map(|s| s.path.display().to_string()),
                    "line": primary.map(|p| p.0),
                    "column": primary.map(|p| p.1),
                    "labels": labels,
                    "help": d.help,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceFile;

    fn sample() -> Vec<Diagnostic> {
        let src = SourceFile::new("stacks/a.toml", "[stack]\nname = 5\n");
        vec![
            Diagnostic::error("cairn::bad_type", "`name` must be a string, 100% sure")
                .in_file(&src)
                .label(15..16, "expected a string")
                .help("write it in quotes:\nname = \"x\""),
            Diagnostic::warning("cairn::other", "no location"),
        ]
    }

    #[test]
    fn human_report_shows_snippet_label_and_help() {
        let out = render_human(&sample(), false);
        assert!(out.contains("cairn::bad_type"), "{out}");
        assert!(out.contains("stacks/a.toml:2:8"), "{out}");
        assert!(out.contains("expected a string"), "{out}");
        assert!(out.contains("help: write it in quotes"), "{out}");
        assert!(out.contains("no location"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out}");
        assert!(render_human(&sample(), true).contains('\u{1b}'));
    }

    #[test]
    fn github_lines_are_escaped() {
        let out = render_github(&sample());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "::error file=stacks/a.toml,line=2,col=8,title=cairn%3A%3Abad_type::`name` must be a string, 100%25 sure%0Ahelp: write it in quotes:%0Aname = \"x\""
        );
        assert_eq!(lines[1], "::warning title=cairn%3A%3Aother::no location");
    }

    #[test]
    fn json_has_positions() {
        let v = to_json(&sample());
        assert_eq!(v[0]["line"], 2);
        assert_eq!(v[0]["column"], 8);
        assert_eq!(v[0]["file"], "stacks/a.toml");
        assert_eq!(v[0]["labels"][0]["text"], "expected a string");
        assert_eq!(v[1]["severity"], "warning");
        assert!(v[1]["file"].is_null());
        assert!(v[1]["help"].is_null());
    }

    #[test]
    fn spans_out_of_range_or_mid_char_do_not_panic() {
        let src = SourceFile::new("u.toml", "é😀");
        let d = Diagnostic::error("cairn::x", "m")
            .in_file(&src)
            .label(1..99, "here");
        let out = render_human(std::slice::from_ref(&d), false);
        assert!(out.contains("here") || out.contains('m'));
        assert_eq!(src.line_col(3), (1, 2));
        assert_eq!(src.line_col(99), (1, 3));
    }
}
