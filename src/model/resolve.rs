//! Resolution: from the parsed file ([`RawStack`]) to the typed [`Stack`].
//!
//! Variables are chosen (`[vars]`, then `[env.NAME.vars]`, then `--var`),
//! `${var.…}` and `${env.…}` are substituted everywhere, resource
//! attributes are checked against their provider's schema, references are
//! checked against the stack, and every problem is reported at once with
//! its span. Resolution is linear in the size of the stack: every template
//! is parsed once and every lookup goes through a hash map.

mod cycle;
mod interp;
mod references;
mod resources;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::{Stack, Value, is_identifier, template};
use crate::diagnostic::suggest::{did_you_mean, help_did_you_mean, list};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::graph::DepGraph;
use crate::stack::{RawEntry, RawKind, RawStack, RawTable, RawValue, string_sub_span};

/// Inputs to resolution besides the stack file.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `--env NAME`; `None` is the env `default`.
    pub env: Option<String>,
    /// `--var k=v`, in command-line order (later wins).
    pub vars: Vec<(String, String)>,
    /// The process environment, for `${env.NAME}`.
    pub environment: BTreeMap<String, String>,
}

/// Resolves a parsed stack: every problem found is reported, not only the first.
pub fn resolve(raw: &RawStack, opts: &ResolveOptions) -> Result<Stack, Diagnostics> {
    let mut ctx = Ctx {
        source: raw.source.clone(),
        diags: Diagnostics(raw.problems.clone()),
        vars: HashMap::new(),
        environment: &opts.environment,
    };
    let (name, sensitive) = ctx.stack_table(raw);
    let env = ctx.choose_vars(raw, opts);
    let sensitive_values = ctx.sensitive_values(&sensitive);
    let providers = ctx.providers(raw);
    let state = ctx.state(raw);
    let mut resources = ctx.resources(raw);
    let checks = ctx.checks(raw);
    let outputs = ctx.outputs(raw);
    resources.check_references(&mut ctx, &checks.refs, &outputs.refs);
    if ctx.diags.has_errors() {
        // In file order (those without a place first), as the user reads.
        ctx.diags
            .0
            .sort_by_key(|d| d.labels.first().map(|l| l.span.start));
        return Err(ctx.diags);
    }
    Ok(Stack {
        name: name.unwrap_or_default(),
        env,
        dir: stack_dir(&raw.source.path),
        source: raw.source.clone(),
        providers,
        resources: resources.into_resources(),
        checks: checks.checks,
        outputs: outputs.values,
        state: state.into_config(&stack_dir(&raw.source.path)),
        sensitive_values,
    })
}

/// The stack's dependency graph; a cycle is a diagnostic showing its path.
pub fn dependency_graph(stack: &Stack) -> Result<DepGraph, Diagnostics> {
    let nodes = stack.resources.iter().map(|r| r.address.clone()).collect();
    let edges = stack
        .resources
        .iter()
        .flat_map(|r| r.depends_on.iter().map(move |d| (&r.address, d)));
    // The graph refuses a cycle; the diagnostic then shows the first cycle
    // a depth-first search in file order meets (the one a reader finds).
    DepGraph::from_borrowed(nodes, edges).map_err(|c| {
        let path = cycle::find_cycle(&stack.resources).unwrap_or(c.path);
        cycle::diagnostic(stack, &path).into()
    })
}

/// The folder of the stack file (`.` for a bare file name).
fn stack_dir(path: &std::path::Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// State shared by the resolution steps: the diagnostics found so far and
/// the chosen variables.
struct Ctx<'a> {
    source: Arc<SourceFile>,
    diags: Diagnostics,
    /// Variables in template form (literal `${` escaped), no references left.
    vars: HashMap<String, Value>,
    environment: &'a BTreeMap<String, String>,
}

const STACK_KEYS: &[&str] = &["name", "description", "sensitive"];

impl Ctx<'_> {
    /// Records an error, pointing it into the stack file.
    fn report(&mut self, d: Diagnostic) {
        self.diags.push(d.in_file(&self.source));
    }

    /// Span of `sub` (a range in a string's value) in the file.
    fn sub_span(&self, value_span: &Span, sub: &Span) -> Span {
        string_sub_span(&self.source.text, value_span, sub)
    }

    /// Reports an unknown key in a fixed table, with a did-you-mean.
    fn unknown_key(&mut self, entry: &RawEntry, table: &str, known: &[&str]) {
        let help = help_did_you_mean(&entry.key, known.iter().copied())
            .unwrap_or_else(|| format!("the keys of {table} are {}", list(known)));
        self.report(unknown_key(entry, table).help(help));
    }

    /// A value of the wrong TOML type.
    fn wrong_type(&mut self, value: &RawValue, what: &str, expected: &str) {
        self.report(
            Diagnostic::error(
                "cairn::wrong_type",
                format!("{what} must be {expected}, found {}", value.kind.describe()),
            )
            .label(value.span.clone(), format!("expected {expected}")),
        );
    }

    /// A number of the right type but outside its range.
    fn out_of_range(&mut self, value: &RawValue, what: &str, expected: &str) {
        let text = self
            .source
            .text
            .get(value.span.clone())
            .unwrap_or("")
            .to_string();
        self.report(
            Diagnostic::error(
                "cairn::out_of_range",
                format!("{what} must be {expected}, found `{text}`"),
            )
            .label(value.span.clone(), "out of range"),
        );
    }

    /// The string in `value`, or a wrong-type diagnostic.
    fn expect_str<'v>(&mut self, value: &'v RawValue, what: &str) -> Option<&'v str> {
        let s = value.as_str();
        if s.is_none() {
            self.wrong_type(value, what, "a string");
        }
        s
    }

    /// `[stack]`: the name and the `sensitive` list.
    fn stack_table(&mut self, raw: &RawStack) -> (Option<String>, Vec<(String, Span)>) {
        let Some(table) = &raw.stack else {
            self.report(
                Diagnostic::error("cairn::missing_stack", "the file has no [stack] table")
                    .help("every stack file starts with:\n[stack]\nname = \"my-stack\""),
            );
            return (None, Vec::new());
        };
        let mut name = None;
        let mut sensitive = Vec::new();
        for entry in &table.entries {
            match entry.key.as_str() {
                "name" => {
                    let Some(n) = self.expect_str(&entry.value, "the stack `name`") else {
                        continue;
                    };
                    if is_identifier(n) {
                        name = Some(n.to_string());
                    } else {
                        self.report(
                            Diagnostic::error(
                                "cairn::invalid_name",
                                format!("`{n}` is not a valid stack name"),
                            )
                            .label(entry.value.span.clone(), "not an identifier")
                            .help("use ASCII letters, digits, `_` and `-`, starting with a letter or `_`"),
                        );
                    }
                }
                "description" => {
                    self.expect_str(&entry.value, "the stack `description`");
                }
                "sensitive" => sensitive = self.sensitive_list(&entry.value),
                _ => self.unknown_key(entry, "[stack]", STACK_KEYS),
            }
        }
        if table.get("name").is_none() {
            self.report(
                Diagnostic::error("cairn::missing_key", "the stack has no `name`")
                    .label(table.span.clone(), "`name` missing here")
                    .help("add `name = \"my-stack\"` under [stack]"),
            );
        }
        (name, sensitive)
    }

    /// `sensitive = ["env.X", "var.y"]`, checked for shape.
    fn sensitive_list(&mut self, value: &RawValue) -> Vec<(String, Span)> {
        let RawKind::Array(items) = &value.kind else {
            self.wrong_type(
                value,
                "`sensitive`",
                "a list of \"env.NAME\" / \"var.NAME\" strings",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(s) = self.expect_str(item, "each `sensitive` entry") else {
                continue;
            };
            match s.split_once('.') {
                Some(("env" | "var", n)) if !n.is_empty() && !n.contains('.') => {
                    out.push((s.to_string(), item.span.clone()));
                }
                _ => self.report(
                    Diagnostic::error(
                        "cairn::bad_sensitive",
                        format!("`{s}` does not name an environment variable or a variable"),
                    )
                    .label(item.span.clone(), "expected \"env.NAME\" or \"var.NAME\"")
                    .help("e.g. sensitive = [\"env.DB_PASSWORD\", \"var.token\"]"),
                ),
            }
        }
        out
    }

    /// Picks the variables: `[vars]`, then the env's, then `--var`. Returns
    /// the env's name.
    fn choose_vars(&mut self, raw: &RawStack, opts: &ResolveOptions) -> String {
        // name → the raw value that wins (CLI values are stored separately).
        let mut chosen: HashMap<String, &RawValue> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        fn take<'r>(
            chosen: &mut HashMap<String, &'r RawValue>,
            order: &mut Vec<String>,
            table: &'r RawTable,
        ) {
            for e in &table.entries {
                if chosen.insert(e.key.clone(), &e.value).is_none() {
                    order.push(e.key.clone());
                }
            }
        }
        if let Some(vars) = &raw.vars {
            take(&mut chosen, &mut order, vars);
        }
        for env in &raw.envs {
            if !is_identifier(&env.name) {
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_name",
                        format!("`{}` is not a valid environment name", env.name),
                    )
                    .label(env.name_span.clone(), "not an identifier")
                    .help("use ASCII letters, digits, `_` and `-`, starting with a letter or `_`"),
                );
            }
            for entry in &env.table.entries {
                if entry.key != "vars" {
                    let d = unknown_key(entry, &format!("[env.{}]", env.name)).help(format!(
                        "variables of this environment go under [env.{}.vars]",
                        env.name
                    ));
                    self.report(d);
                } else if entry.value.as_table().is_none() {
                    self.wrong_type(&entry.value, "`vars`", "a table");
                }
            }
        }
        let env_name = opts.env.clone().unwrap_or_else(|| "default".to_string());
        if let Some(wanted) = &opts.env {
            match raw.envs.iter().find(|e| &e.name == wanted) {
                Some(env) => {
                    if let Some(t) = env.table.get("vars").and_then(|e| e.value.as_table()) {
                        take(&mut chosen, &mut order, t);
                    }
                }
                None if raw.envs.is_empty() || wanted == "default" => {}
                None => {
                    let known: Vec<&str> = raw.envs.iter().map(|e| e.name.as_str()).collect();
                    let mut help = format!("the stack declares {}", list(&known));
                    if let Some(s) = did_you_mean(wanted, known.iter().copied()) {
                        help = format!("did you mean `{s}`? {help}");
                    }
                    self.report(
                        Diagnostic::error(
                            "cairn::unknown_env",
                            format!("unknown environment `{wanted}`"),
                        )
                        .help(help),
                    );
                }
            }
        }
        let mut vars = HashMap::with_capacity(order.len() + opts.vars.len());
        for name in order {
            let Some(value) = chosen.get(&name) else {
                continue;
            };
            if !is_identifier(&name) {
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_name",
                        format!("`{name}` is not a valid variable name"),
                    )
                    .label(value.span.clone(), "defined here")
                    .help("use ASCII letters, digits, `_` and `-`, starting with a letter or `_`"),
                );
            }
            let mut refs = Vec::new();
            let v = self.interpolate(value, false, &mut refs);
            self.no_resource_refs(&refs, "variables");
            vars.insert(name, v);
        }
        for (name, text) in &opts.vars {
            vars.insert(name.clone(), cli_value(text));
        }
        self.vars = vars;
        env_name
    }

    /// The values of the variables and environment variables declared sensitive.
    fn sensitive_values(&mut self, sensitive: &[(String, Span)]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, span) in sensitive {
            let value = match name.split_once('.') {
                Some(("env", n)) => self.environment.get(n).cloned(),
                Some(("var", n)) => match self.vars.get(n) {
                    Some(v) => Some(template::display_scalar(&template::finalize(v))),
                    None => {
                        let help = help_did_you_mean(n, self.vars.keys().map(String::as_str))
                            .unwrap_or_else(|| "declare it in [vars]".to_string());
                        self.report(
                            Diagnostic::error(
                                "cairn::undefined_var",
                                format!("sensitive variable `{n}` is not defined"),
                            )
                            .label(span.clone(), "no such variable")
                            .help(help),
                        );
                        None
                    }
                },
                _ => None,
            };
            if let Some(v) = value.filter(|v| !v.is_empty() && !out.contains(v)) {
                out.push(v);
            }
        }
        out
    }
}

/// "unknown key `k` in [table]", pointing at the key.
fn unknown_key(entry: &RawEntry, table: &str) -> Diagnostic {
    Diagnostic::error(
        "cairn::unknown_key",
        format!("unknown key `{}` in {table}", entry.key),
    )
    .label(entry.key_span.clone(), "unknown key")
}

/// A `--var` value: an integer, float or boolean if it reads as one in
/// TOML, else the string itself (in template form).
fn cli_value(text: &str) -> Value {
    if let Ok(v) = toml::de::DeValue::parse(text) {
        match v.get_ref() {
            toml::de::DeValue::Integer(i) => {
                if let Ok(n) = i64::from_str_radix(i.as_str(), i.radix()) {
                    return Value::from(n);
                }
            }
            toml::de::DeValue::Float(f) => {
                if let Some(n) = f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    return Value::Number(n);
                }
            }
            toml::de::DeValue::Boolean(b) => return Value::Bool(*b),
            _ => {}
        }
    }
    Value::String(template::escape(text))
}
