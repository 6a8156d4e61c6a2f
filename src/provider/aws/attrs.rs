//! Reading typed values out of a resource's attributes, and the shared
//! handling of tags: user tags (the `tags` table) plus cairn's ownership tags
//! go onto objects; reads split them again so `attributes["tags"]` holds
//! user tags only.

use serde_json::{Map, Value};

use crate::model::{Attrs, Tags};
use crate::provider::ProviderError;

use super::errors::invalid;

/// A string attribute, if present and a string.
pub fn str_attr<'a>(attrs: &'a Attrs, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

/// A required string attribute; `op` names the operation for the message.
pub fn req_str<'a>(op: &str, attrs: &'a Attrs, key: &str) -> Result<&'a str, ProviderError> {
    str_attr(attrs, key).ok_or_else(|| invalid(op, format!("`{key}` must be a string")))
}

/// An integer attribute (integers, or strings holding one).
pub fn int_attr(attrs: &Attrs, key: &str) -> Option<i64> {
    match attrs.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean attribute.
pub fn bool_attr(attrs: &Attrs, key: &str) -> Option<bool> {
    attrs.get(key).and_then(Value::as_bool)
}

/// A list of strings (a single string counts as a list of one).
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().map(scalar_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// A table of strings (numbers and booleans are written as text).
pub fn string_table(value: Option<&Value>) -> Tags {
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), scalar_string(v)))
            .collect(),
        _ => Tags::new(),
    }
}

/// A scalar as text (strings without quotes).
pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string table as an attribute value.
pub fn table_value<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut keys: Vec<(&str, &str)> = entries.into_iter().collect();
    keys.sort();
    let mut map = Map::new();
    for (k, v) in keys {
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Value::Object(map)
}

/// A list of strings as an attribute value.
pub fn list_value<S: AsRef<str>>(items: &[S]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String(s.as_ref().to_string()))
            .collect(),
    )
}

/// Whether a tag key is one of cairn's (`cairn:stack`, `cairn:source`…).
pub fn is_cairn_tag(key: &str) -> bool {
    key.starts_with("cairn:")
}

/// The tags to put on a new object: user `tags` plus the ownership tags.
pub fn tags_for_create(attrs: &Attrs, ownership: &Tags) -> Tags {
    let mut tags = string_table(attrs.get("tags"));
    tags.retain(|k, _| !is_cairn_tag(k));
    tags.extend(ownership.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

/// What an update does to tags: (tags to set, keys to remove). User tags in
/// `before` but not in `after` are removed; cairn's tags are never removed.
pub fn tag_changes(before: &Attrs, after: &Attrs, ownership: &Tags) -> (Tags, Vec<String>) {
    let set = tags_for_create(after, ownership);
    let old = string_table(before.get("tags"));
    let remove = old
        .keys()
        .filter(|k| !set.contains_key(*k) && !is_cairn_tag(k))
        .cloned()
        .collect();
    (set, remove)
}

/// The user tags (cairn's removed) of all tags, as an attribute value.
pub fn user_tags_value(all: &Tags) -> Value {
    table_value(
        all.iter()
            .filter(|(k, _)| !is_cairn_tag(k))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_changes_keep_cairn_tags_and_drop_removed_user_tags() {
        let before = Attrs::from([("tags".into(), json!({"team": "a", "old": "x"}))]);
        let after = Attrs::from([("tags".into(), json!({"team": "b"}))]);
        let own = Tags::from([("cairn:stack".to_string(), "s".to_string())]);
        let (set, remove) = tag_changes(&before, &after, &own);
        assert_eq!(set.get("team").map(String::as_str), Some("b"));
        assert_eq!(set.get("cairn:stack").map(String::as_str), Some("s"));
        assert_eq!(remove, vec!["old".to_string()]);
        let all = Tags::from([
            ("cairn:env".to_string(), "e".to_string()),
            ("team".to_string(), "b".to_string()),
        ]);
        assert_eq!(user_tags_value(&all), json!({"team": "b"}));
    }
}
