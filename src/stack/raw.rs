//! The parsed stack file as an owned tree of values that keep their spans.
//!
//! `toml`'s `DeTable` borrows the text; [`RawValue`] owns its data so a
//! [`super::RawStack`] can travel on its own, and keeps entries in file
//! order (the parser sorts keys).

use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Span};
use crate::model::Value;

/// A TOML value with its span (for strings, the span includes the quotes).
#[derive(Debug, Clone)]
pub struct RawValue {
    /// Where the value is in the file.
    pub span: Span,
    /// What it is.
    pub kind: RawKind,
}

/// What a [`RawValue`] holds.
#[derive(Debug, Clone)]
pub enum RawKind {
    /// A string, escapes decoded.
    String(String),
    /// An integer (TOML integers are 64-bit signed).
    Integer(i64),
    /// A float, `nan` and `inf` included (resolution rejects those).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A TOML date-time, kept as its text.
    Datetime(String),
    /// An array.
    Array(Vec<RawValue>),
    /// A table (header, dotted-key or inline).
    Table(RawTable),
}

/// A TOML table: its span (the `[header]` for header tables) and entries
/// in file order.
#[derive(Debug, Clone, Default)]
pub struct RawTable {
    /// The `[header]` of a header table, else the table's text.
    pub span: Span,
    /// The entries, in file order.
    pub entries: Vec<RawEntry>,
}

/// One `key = value` of a table.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// The key (decoded, for quoted keys).
    pub key: String,
    /// Where the key is in the file.
    pub key_span: Span,
    /// The value.
    pub value: RawValue,
}

impl RawTable {
    /// The entry for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&RawEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }
}

impl RawKind {
    /// "a string", "an integer"…, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            RawKind::String(_) => "a string",
            RawKind::Integer(_) => "an integer",
            RawKind::Float(_) => "a float",
            RawKind::Bool(_) => "a boolean",
            RawKind::Datetime(_) => "a date-time",
            RawKind::Array(_) => "an array",
            RawKind::Table(_) => "a table",
        }
    }
}

impl RawValue {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            RawKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a table, if it is one.
    pub fn as_table(&self) -> Option<&RawTable> {
        match &self.kind {
            RawKind::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The value as JSON (date-times become strings; non-finite floats,
    /// which JSON cannot hold, become `null`: resolution reports them).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            RawKind::String(s) => Value::String(s.clone()),
            RawKind::Integer(i) => Value::from(*i),
            RawKind::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            RawKind::Bool(b) => Value::Bool(*b),
            RawKind::Datetime(d) => Value::String(d.clone()),
            RawKind::Array(items) => Value::Array(items.iter().map(RawValue::to_json).collect()),
            RawKind::Table(t) => Value::Object(
                t.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Converts the parser's borrowed table; integers out of range are
/// reported in `problems` (the value becomes 0). The parser's spans are
/// moved by `at`: the table was parsed from text starting there in the
/// file (see [`super::chunked`]).
pub fn table_from(
    table: &DeTable<'_>,
    span: Span,
    at: usize,
    problems: &mut Vec<Diagnostic>,
) -> RawTable {
    let shift = |s: Span| s.start + at..s.end + at;
    let mut entries: Vec<RawEntry> = table
        .iter()
        .map(|(k, v)| RawEntry {
            key: k.get_ref().to_string(),
            key_span: shift(k.span()),
            value: value_from(v.get_ref(), shift(v.span()), at, problems),
        })
        .collect();
    entries.sort_by_key(|e| e.key_span.start);
    RawTable { span, entries }
}

fn value_from(
    value: &DeValue<'_>,
    span: Span,
    at: usize,
    problems: &mut Vec<Diagnostic>,
) -> RawValue {
    let kind = match value {
        DeValue::String(s) => RawKind::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => RawKind::Integer(n),
            Err(_) => {
                problems.push(
                    Diagnostic::error("cairn::integer_out_of_range", "integer out of range")
                        .label(span.clone(), "does not fit in a 64-bit signed integer"),
                );
                RawKind::Integer(0)
            }
        },
        DeValue::Float(f) => {
            let text = f.as_str();
            let parsed = match text.trim_start_matches(['+', '-']) {
                "nan" => Some(f64::NAN),
                "inf" if text.starts_with('-') => Some(f64::NEG_INFINITY),
                "inf" => Some(f64::INFINITY),
                _ => text.parse::<f64>().ok(),
            };
            RawKind::Float(parsed.unwrap_or(f64::NAN))
        }
        DeValue::Boolean(b) => RawKind::Bool(*b),
        DeValue::Datetime(d) => RawKind::Datetime(d.to_string()),
        DeValue::Array(items) => RawKind::Array(
            items
                .iter()
                .map(|i| {
                    let s = i.span();
                    value_from(i.get_ref(), s.start + at..s.end + at, at, problems)
                })
                .collect(),
        ),
        DeValue::Table(t) => RawKind::Table(table_from(t, span.clone(), at, problems)),
    };
    RawValue { span, kind }
}

/// Maps a byte range inside a string's decoded value to the source text.
///
/// `value_span` is the span of the TOML string (quotes included) in
/// `text`. Escapes and the trimmed first newline of multi-line strings are
/// accounted for; if the source does not look like a TOML string there, the
/// whole `value_span` is returned.
pub fn string_sub_span(text: &str, value_span: &Span, sub: &Span) -> Span {
    let whole = value_span.clone();
    let Some(raw) = text.get(value_span.clone()) else {
        return whole;
    };
    let (open, literal) = if raw.starts_with("\"\"\"") {
        (3, false)
    } else if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with('"') {
        (1, false)
    } else if raw.starts_with('\'') {
        (1, true)
    } else {
        return whole;
    };
    let mut body_start = open;
    if open == 3 {
        if raw[body_start..].starts_with("\r\n") {
            body_start += 2;
        } else if raw[body_start..].starts_with('\n') {
            body_start += 1;
        }
    }
    let body = &raw[body_start..];
    // Walk the source, counting decoded bytes, until both ends are found
    // (the closing quote is part of `body`, so a range running to the end
    // of the value still finds its end).
    let mut decoded = 0usize;
    let mut start = None;
    let mut end = None;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if start.is_none() && decoded >= sub.start {
            start = Some(i);
        }
        if decoded >= sub.end {
            end = Some(i);
            break;
        }
        if c == '\\' && !literal {
            let Some((_, e)) = chars.next() else { break };
            decoded += match e {
                'b' | 't' | 'n' | 'f' | 'r' | 'e' | '"' | '\\' => 1,
                'x' | 'u' | 'U' => {
                    let digits = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = (0..digits)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8)
                }
                _ => {
                    // Line-ending backslash: skips whitespace and newlines.
                    while chars.peek().is_some_and(|(_, w)| w.is_whitespace()) {
                        chars.next();
                    }
                    0
                }
            };
        } else {
            decoded += c.len_utf8();
        }
    }
    match (start, end) {
        (Some(s), Some(e)) => {
            let base = value_span.start + body_start;
            base + s..base + e
        }
        _ => whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(text: &str, value: &str, range: Span) -> String {
        let start = text.find(value).unwrap();
        let span = string_sub_span(text, &(start..start + value.len()), &range);
        text[span].to_string()
    }

    #[test]
    fn maps_offsets_through_quotes_and_escapes() {
        // decoded: a-${x
        assert_eq!(sub(r#"k = "a-${x""#, r#""a-${x""#, 2..5), "${x");
        // decoded: {"c": "${x}"}
        let t = r#"k = "{\"c\": \"${x}\"}""#;
        assert_eq!(sub(t, &t[4..], 7..11), "${x}");
        assert_eq!(sub("k = 'a${b'", "'a${b'", 1..4), "${b");
        let t = "k = \"\"\"\nab${c}\"\"\"";
        assert_eq!(sub(t, &t[4..], 2..6), "${c}");
        // \u00e9 decodes to two bytes.
        let t = r#"k = "\u00e9${z""#;
        assert_eq!(sub(t, &t[4..], 2..5), "${z");
    }
}
