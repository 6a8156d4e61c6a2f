//! The stack file: reading it and parsing its TOML into a [`RawStack`], a
//! tree of values that keep their source spans, sorted into the file's
//! top-level sections. Only TOML syntax and the top-level shape are checked
//! here; everything else is [`crate::model::resolve`]'s job, so that all
//! problems of a file are reported together. [`json_schema`] describes the
//! format for editors.

mod chunked;
mod raw;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::DeTable;

use crate::diagnostic::suggest::{help_did_you_mean, list};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span};

pub use raw::{RawEntry, RawKind, RawTable, RawValue, string_sub_span};
pub use schema::json_schema;

/// The top-level tables a stack file may have.
pub const TOP_LEVEL: &[&str] = &[
    "stack", "vars", "env", "provider", "resource", "check", "output", "state",
];

/// A parsed stack file with its source, spans kept.
#[derive(Debug, Clone)]
pub struct RawStack {
    /// The file's path and text, for diagnostics.
    pub source: Arc<SourceFile>,
    /// `[stack]`, if present.
    pub stack: Option<RawTable>,
    /// `[vars]`, if present.
    pub vars: Option<RawTable>,
    /// `[env.NAME]` tables, in file order.
    pub envs: Vec<Section>,
    /// `[provider.NAME]` tables, in file order.
    pub providers: Vec<Section>,
    /// `[resource.TYPE.NAME]` tables, in file order.
    pub resources: Vec<RawResource>,
    /// `[check.NAME]` tables, in file order.
    pub checks: Vec<Section>,
    /// `[output]`, if present.
    pub outputs: Option<RawTable>,
    /// `[state]`, if present.
    pub state: Option<RawTable>,
    /// Problems found while parsing that do not stop it (an integer out of
    /// range, say); resolution reports them with its own.
    pub problems: Vec<Diagnostic>,
}

/// A named table under a top-level one: `[env.NAME]`, `[provider.NAME]`,
/// `[check.NAME]`.
#[derive(Debug, Clone)]
pub struct Section {
    /// `NAME`.
    pub name: String,
    /// Where `NAME` is in the file.
    pub name_span: Span,
    /// The table's contents.
    pub table: RawTable,
}

/// A `[resource.TYPE.NAME]` table.
#[derive(Debug, Clone)]
pub struct RawResource {
    /// `TYPE`.
    pub type_name: String,
    /// Where `TYPE` is in the file (in this resource's header).
    pub type_span: Span,
    /// `NAME`.
    pub name: String,
    /// Where `NAME` is in the file.
    pub name_span: Span,
    /// The attributes, meta keys (`if_exists`, `depends_on`) included.
    pub table: RawTable,
}

/// Reads and parses a stack file.
pub fn load(path: &Path) -> Result<RawStack, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::error(
            "cairn::read_stack",
            format!("cannot read the stack file `{}`: {e}", path.display()),
        )
    })?;
    parse(path, text)
}

/// The root table of the whole text, parsed at once.
fn whole(
    source: &Arc<SourceFile>,
    problems: &mut Vec<Diagnostic>,
) -> Result<RawTable, Diagnostics> {
    let doc = DeTable::parse(&source.text).map_err(|e| {
        let mut d = Diagnostic::error(
            "cairn::toml_syntax",
            format!("invalid TOML: {}", e.message().trim_end()),
        )
        .in_file(source);
        if let Some(span) = e.span() {
            d = d.label(span, "here");
        }
        Diagnostics::from(d)
    })?;
    Ok(raw::table_from(doc.get_ref(), 0..0, 0, problems))
}

/// Parses stack text (no IO). `path` is used in messages and as the base of relative paths.
pub fn parse(path: impl Into<PathBuf>, text: String) -> Result<RawStack, Diagnostics> {
    let source = SourceFile::new(path, text);
    let mut problems = Vec::new();
    // A large file is parsed in groups of tables where that is sure to
    // mean the same (see `chunked`); anything else, errors included, the
    // whole text at once.
    let chunked = (source.text.len() >= 2 * chunked::GROUP_BYTES)
        .then(|| chunked::parse(&source.text, chunked::GROUP_BYTES))
        .flatten();
    let root = match chunked {
        Some(root) => root,
        None => whole(&source, &mut problems)?,
    };
    let mut fatal = Diagnostics::default();
    let mut raw = RawStack {
        source: source.clone(),
        stack: None,
        vars: None,
        envs: Vec::new(),
        providers: Vec::new(),
        resources: Vec::new(),
        checks: Vec::new(),
        outputs: None,
        state: None,
        problems: Vec::new(),
    };
    for entry in root.entries {
        let key = entry.key.clone();
        match key.as_str() {
            "stack" | "vars" | "output" | "state" => {
                let Some(table) = expect_table(entry, &key, &mut fatal) else {
                    continue;
                };
                let slot = match key.as_str() {
                    "stack" => &mut raw.stack,
                    "vars" => &mut raw.vars,
                    "output" => &mut raw.outputs,
                    _ => &mut raw.state,
                };
                *slot = Some(table);
            }
            "env" | "provider" | "check" => {
                let Some(table) = expect_table(entry, &key, &mut fatal) else {
                    continue;
                };
                let what = match key.as_str() {
                    "env" => "env.NAME",
                    "provider" => "provider.NAME",
                    _ => "check.NAME",
                };
                let sections = sections(table, &key, what, &mut fatal);
                match key.as_str() {
                    "env" => raw.envs = sections,
                    "provider" => raw.providers = sections,
                    _ => raw.checks = sections,
                }
            }
            "resource" => {
                let Some(table) = expect_table(entry, &key, &mut fatal) else {
                    continue;
                };
                for by_type in sections(table, "resource", "resource.TYPE", &mut fatal) {
                    let parent = format!("resource.{}", by_type.name);
                    for r in sections(by_type.table, &parent, "resource.TYPE.NAME", &mut fatal) {
                        let type_span =
                            type_span_in_header(&source.text, &by_type.name_span, &r.name_span);
                        raw.resources.push(RawResource {
                            type_name: by_type.name.clone(),
                            type_span,
                            name: r.name,
                            name_span: r.name_span,
                            table: r.table,
                        });
                    }
                }
            }
            other => {
                let mut d = Diagnostic::error(
                    "cairn::unknown_table",
                    format!("unknown top-level key `{other}`"),
                )
                .label(entry.key_span.clone(), "not part of the stack format");
                d = d.help(
                    help_did_you_mean(other, TOP_LEVEL.iter().copied())
                        .unwrap_or_else(|| format!("the top-level tables are {}", list(TOP_LEVEL))),
                );
                fatal.push(d);
            }
        }
    }
    // Resources of different types interleave in the file: restore file order.
    raw.resources.sort_by_key(|r| r.name_span.start);
    if !fatal.is_empty() {
        fatal.0.extend(problems);
        for d in &mut fatal.0 {
            d.source = Some(source.clone());
        }
        return Err(fatal);
    }
    raw.problems = problems.into_iter().map(|d| d.in_file(&source)).collect();
    Ok(raw)
}

/// The parser gives a key one span, its first occurrence; a resource's
/// `TYPE` is found again just before its own `NAME` (on the same line),
/// else the first occurrence is kept.
fn type_span_in_header(text: &str, first: &Span, name: &Span) -> Span {
    let (Some(key), Some(before)) = (text.get(first.clone()), text.get(..name.start)) else {
        return first.clone();
    };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    match before[line_start..].rfind(key) {
        Some(i) => line_start + i..line_start + i + key.len(),
        None => first.clone(),
    }
}

/// The table in `entry`, or a diagnostic saying `key` must be one.
fn expect_table(entry: RawEntry, key: &str, fatal: &mut Diagnostics) -> Option<RawTable> {
    match entry.value.kind {
        RawKind::Table(t) => Some(t),
        ref other => {
            fatal.push(
                Diagnostic::error(
                    "cairn::not_a_table",
                    format!("`{key}` must be a table, found {}", other.describe()),
                )
                .label(entry.value.span.clone(), "expected a table")
                .help(format!("write it as a table header: [{key}]")),
            );
            None
        }
    }
}

/// The sub-tables of `table` (found at `parent`, e.g. `resource.sim_role`),
/// each of which must be a table (`what` names the layout in messages, e.g.
/// `resource.TYPE.NAME`).
fn sections(table: RawTable, parent: &str, what: &str, fatal: &mut Diagnostics) -> Vec<Section> {
    let mut out = Vec::with_capacity(table.entries.len());
    for entry in table.entries {
        match entry.value.kind {
            RawKind::Table(t) => out.push(Section {
                name: entry.key,
                name_span: entry.key_span,
                table: t,
            }),
            ref other => {
                fatal.push(
                    Diagnostic::error(
                        "cairn::not_a_table",
                        format!(
                            "`{parent}.{}` must be a table ([{what}]), found {}",
                            entry.key,
                            other.describe()
                        ),
                    )
                    .label(entry.value.span.clone(), "expected a table")
                    .help(format!("the layout is [{what}] with its settings under it")),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_sections_in_file_order() {
        let raw = parse(
            "s.toml",
            "[stack]\nname='x'\n[resource.sim_b.z]\nname='1'\n[resource.local_file.a]\npath='p'\n[resource.sim_b.a]\nname='2'\n"
                .to_string(),
        )
        .unwrap();
        let order: Vec<String> = raw
            .resources
            .iter()
            .map(|r| format!("{}.{}", r.type_name, r.name))
            .collect();
        assert_eq!(order, ["sim_b.z", "local_file.a", "sim_b.a"]);
        let t = &raw.resources[0].table;
        assert_eq!(t.get("name").unwrap().value.as_str(), Some("1"));
        assert_eq!(
            &raw.source.text[raw.resources[0].table.span.clone()],
            "[resource.sim_b.z]"
        );
        let spans: Vec<usize> = raw.resources.iter().map(|r| r.type_span.start).collect();
        let text = &raw.source.text;
        let at = |s: &str| text.find(s).unwrap();
        assert_eq!(spans, [at("sim_b.z"), at("local_file.a"), at("sim_b.a")]);
    }

    #[test]
    fn syntax_and_shape_errors() {
        let e = parse("s.toml", "[stack\n".to_string()).unwrap_err();
        assert_eq!(e.0[0].code, "cairn::toml_syntax");
        assert!(!e.0[0].labels.is_empty());
        let e = parse(
            "s.toml",
            "stack = 1\nresorce = {}\n[check]\nx = 2\n".to_string(),
        )
        .unwrap_err();
        let codes: Vec<&str> = e.0.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "cairn::not_a_table",
                "cairn::unknown_table",
                "cairn::not_a_table"
            ]
        );
        assert_eq!(e.0[1].help.as_deref(), Some("did you mean `resource`?"));
    }

    #[test]
    fn load_reports_missing_file() {
        let e = load(Path::new("/nonexistent/stack.toml")).unwrap_err();
        assert_eq!(e.0[0].code, "cairn::read_stack");
    }
}
