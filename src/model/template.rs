//! Interpolation inside string values: `${var.NAME}`, `${env.NAME}` and
//! `${TYPE.NAME.ATTR[.KEY…]}`. `$${` stands for a literal `${`.
//!
//! Values travel through planning in *template form*: strings whose `${…}`
//! are references still to be filled and whose literal `${` are escaped as
//! `$${`. [`substitute`] fills what it can (escaping what it inserts), and
//! [`finalize`] turns a fully known value into the plain value a provider
//! sees. A string that is exactly one reference takes the referenced value's
//! type (`"${var.replicas}"` becomes the integer `2`).

use std::ops::Range;

use super::{Address, Value, is_identifier};

/// What a `${…}` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    Var(String),
    Env(String),
    Resource { address: Address, path: Vec<String> },
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Var(n) => write!(f, "var.{n}"),
            Ref::Env(n) => write!(f, "env.{n}"),
            Ref::Resource { address, path } => {
                write!(f, "{address}")?;
                for p in path {
                    write!(f, ".{p}")?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part<'a> {
    /// Literal text, still escaped (`$${` stays as is).
    Lit(&'a str),
    /// A reference; `span` covers `${…}` within the string.
    Ref { reference: Ref, span: Range<usize> },
}

/// A malformed `${…}`; `span` is a byte range within the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub span: Range<usize>,
    pub message: String,
}

/// Splits a string into literal parts and references.
pub fn parse(s: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
            i += 3;
            continue;
        }
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let Some(close) = s[i + 2..].find('}') else {
                return Err(TemplateError {
                    span: i..s.len(),
                    message: "unterminated `${`: expected `}`".into(),
                });
            };
            let end = i + 2 + close + 1;
            let inner = s[i + 2..end - 1].trim();
            let reference = parse_ref(inner).map_err(|message| TemplateError {
                span: i..end,
                message,
            })?;
            if lit_start < i {
                parts.push(Part::Lit(&s[lit_start..i]));
            }
            parts.push(Part::Ref {
                reference,
                span: i..end,
            });
            i = end;
            lit_start = end;
            continue;
        }
        i += 1;
    }
    if lit_start < s.len() {
        parts.push(Part::Lit(&s[lit_start..]));
    }
    Ok(parts)
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let segs: Vec<&str> = inner.split('.').collect();
    let bad = || {
        format!(
            "`${{{inner}}}` is not a reference: use `${{var.NAME}}`, `${{env.NAME}}` or `${{TYPE.NAME.ATTR}}`"
        )
    };
    if segs.iter().any(|s| s.is_empty()) {
        return Err(bad());
    }
    match segs.as_slice() {
        ["var", name] if is_identifier(name) => Ok(Ref::Var(name.to_string())),
        ["env", name] if !name.is_empty() => Ok(Ref::Env(name.to_string())),
        ["var" | "env", ..] => Err(bad()),
        [t, n, path @ ..] if is_identifier(t) && is_identifier(n) && t.contains('_') => {
            if path.is_empty() {
                return Err(format!(
                    "`${{{inner}}}` names a resource but no attribute: use `${{{inner}.ATTR}}`, e.g. `${{{inner}.id}}`"
                ));
            }
            Ok(Ref::Resource {
                address: Address::new(*t, *n),
                path: path.iter().map(|s| s.to_string()).collect(),
            })
        }
        _ => Err(bad()),
    }
}

/// Calls `f` for every reference in `v` (strings inside arrays and tables
/// too). Malformed templates are skipped: [`check`] reports them.
pub fn for_each_ref(v: &Value, f: &mut dyn FnMut(&Ref)) {
    match v {
        Value::String(s) if s.contains("${") => {
            if let Ok(parts) = parse(s) {
                for p in parts {
                    if let Part::Ref { reference, .. } = p {
                        f(&reference);
                    }
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| for_each_ref(i, f)),
        Value::Object(map) => map.values().for_each(|i| for_each_ref(i, f)),
        _ => {}
    }
}

/// True when `v` holds no reference still to be filled.
pub fn is_known(v: &Value) -> bool {
    let mut known = true;
    for_each_ref(v, &mut |_| known = false);
    known
}

/// Escapes literal `${` as `$${` so an inserted string is never read as a reference.
pub fn escape(s: &str) -> String {
    if s.contains("${") {
        s.replace("${", "$${")
    } else {
        s.to_string()
    }
}

/// [`escape`] applied to every string inside a plain value.
pub fn escape_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(escape(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(escape_value).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, escape_value(v))).collect())
        }
        other => other,
    }
}

/// Fills every reference for which `lookup` returns a value; leaves the rest.
/// Inserted values are escaped so the result stays in template form.
pub fn substitute(v: &Value, lookup: &mut dyn FnMut(&Ref) -> Option<Value>) -> Value {
    match v {
        Value::String(s) if s.contains("${") => {
            let Ok(parts) = parse(s) else {
                return v.clone();
            };
            if let [Part::Ref { reference, .. }] = parts.as_slice() {
                return match lookup(reference) {
                    Some(found) => escape_value(found),
                    None => v.clone(),
                };
            }
            let mut out = String::with_capacity(s.len());
            for part in parts {
                match part {
                    Part::Lit(l) => out.push_str(l),
                    Part::Ref { reference, span } => match lookup(&reference) {
                        Some(Value::String(found)) => out.push_str(&escape(&found)),
                        Some(other) => out.push_str(&escape(&display_scalar(&other))),
                        None => out.push_str(&s[span]),
                    },
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), substitute(i, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How a non-string value reads when interpolated into a longer string.
pub fn display_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Turns a value in template form with no references left into the plain
/// value: `$${` becomes `${`.
pub fn finalize(v: &Value) -> Value {
    match v {
        Value::String(s) if s.contains("$${") => Value::String(s.replace("$${", "${")),
        Value::Array(items) => Value::Array(items.iter().map(finalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, i)| (k.clone(), finalize(i))).collect())
        }
        other => other.clone(),
    }
}

/// Whether a known value in template form equals a plain value, without
/// building the plain form (the diff compares every attribute of every
/// resource; this keeps that allocation-free).
pub fn equals_plain(template: &Value, plain: &Value) -> bool {
    match (template, plain) {
        (Value::String(t), Value::String(p)) => {
            if t.contains("$${") {
                t.replace("$${", "${") == *p
            } else {
                t == p
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equals_plain(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| equals_plain(v, w)))
        }
        (a, b) => a == b,
    }
}

/// Looks `path` up in a value: `outputs.Name` inside a table, or an index
/// into an array (`subnet_ids.0`).
pub fn lookup_path<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = v;
    for key in path {
        cur = match cur {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_references_and_escapes() {
        let parts = parse("a-${var.x}-$${lit}-${sim_role.r.arn}").unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[1],
            Part::Ref {
                reference: Ref::Var("x".into()),
                span: 2..10
            }
        );
        assert_eq!(parts[2], Part::Lit("-$${lit}-"));
        assert!(
            matches!(&parts[3], Part::Ref { reference: Ref::Resource { path, .. }, .. } if path == &["arn"])
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("${var.x").is_err());
        assert!(parse("${nope}").is_err());
        assert!(
            parse("${sim_role.r}")
                .unwrap_err()
                .message
                .contains("no attribute")
        );
        assert!(parse("${var.}").is_err());
    }

    #[test]
    fn whole_reference_keeps_type_and_partial_stays_template() {
        let mut look = |r: &Ref| match r {
            Ref::Var(n) if n == "n" => Some(json!(2)),
            Ref::Var(n) if n == "s" => Some(json!("x${y}")),
            _ => None,
        };
        assert_eq!(substitute(&json!("${var.n}"), &mut look), json!(2));
        assert_eq!(substitute(&json!("n=${var.n}"), &mut look), json!("n=2"));
        let v = substitute(&json!("${var.s}/${sim_a.b.id}"), &mut look);
        assert_eq!(v, json!("x$${y}/${sim_a.b.id}"));
        assert!(!is_known(&v));
        let v = substitute(&v, &mut |_| Some(json!("I")));
        assert!(is_known(&v));
        assert_eq!(finalize(&v), json!("x${y}/I"));
    }
}
