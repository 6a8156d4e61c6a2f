//! IAM policy documents compared by meaning, not by text.
//!
//! IAM (and moto) return policy documents URL-encoded, and people write the
//! same policy with different whitespace, key order, or `"Action": "x"`
//! instead of `["x"]`. [`canonical`] turns a document into one stable text so
//! that two documents that mean the same compare equal.

use serde_json::{Map, Value};

/// Decodes `%XX` escapes (IAM returns documents URL-encoded). Text that is
/// already JSON (starts with `{`) is returned unchanged.
pub fn url_decode(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Keys whose values are sets: order and one-element arrays do not matter.
const SET_KEYS: &[&str] = &[
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "AWS",
    "Service",
    "Federated",
    "CanonicalUser",
];

fn canonical_value(v: &Value, key: Option<&str>) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical_value(&map[k], Some(k)));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|i| canonical_value(i, None)).collect();
            let statement = key == Some("Statement");
            let is_set = key.is_some_and(|k| SET_KEYS.contains(&k))
                || items.iter().all(|i| !i.is_object() && !i.is_array());
            if is_set && !statement {
                items.sort_by_key(|i| i.to_string());
                items.dedup();
            }
            if items.len() == 1 {
                return items.remove(0);
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// The canonical text of a policy document (URL-encoded or not), or `None`
/// when it is not JSON.
pub fn canonical(text: &str) -> Option<String> {
    let decoded = url_decode(text);
    let value: Value = serde_json::from_str(&decoded).ok()?;
    Some(canonical_value(&value, None).to_string())
}

/// Whether two policy documents mean the same. Non-JSON text compares as text.
pub fn equivalent(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The trust policy that lets the given services assume a role. The text is
/// fixed for a given list, so reading it back gives the same services.
pub fn assume_role_policy_for(services: &[String]) -> String {
    let principal = if services.len() == 1 {
        Value::String(services[0].clone())
    } else {
        Value::Array(services.iter().cloned().map(Value::String).collect())
    };
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": principal},
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string()
}

/// The services of a trust policy that only lets services assume the role
/// (the shape [`assume_role_policy_for`] writes), in document order.
pub fn services_of(text: &str) -> Option<Vec<String>> {
    let value: Value = serde_json::from_str(&url_decode(text)).ok()?;
    let statements = match value.get("Statement")? {
        Value::Array(items) => items.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return None,
    };
    let [statement] = statements.as_slice() else {
        return None;
    };
    let obj = statement.as_object()?;
    if obj.get("Effect")?.as_str()? != "Allow" || obj.contains_key("Condition") {
        return None;
    }
    let action_ok = match obj.get("Action")? {
        Value::String(s) => s == "sts:AssumeRole",
        Value::Array(a) => a.len() == 1 && a[0].as_str() == Some("sts:AssumeRole"),
        _ => false,
    };
    let principal = obj.get("Principal")?.as_object()?;
    if !action_ok || principal.len() != 1 {
        return None;
    }
    match principal.get("Service")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_policy_different_text_is_equivalent() {
        let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::b/*","arn:aws:s3:::a/*"]}]}"#;
        let b = "{\n  \"Statement\": {\n    \"Resource\": [\"arn:aws:s3:::a/*\", \"arn:aws:s3:::b/*\"],\n    \"Action\": \"s3:GetObject\",\n    \"Effect\": \"Allow\"\n  },\n  \"Version\": \"2012-10-17\"\n}";
        assert!(equivalent(a, b));
        let c = a.replace("GetObject", "PutObject");
        assert!(!equivalent(a, &c));
    }

    #[test]
    fn url_encoded_documents_decode() {
        let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%7D";
        assert_eq!(url_decode(encoded), r#"{"Version": "2012-10-17"}"#);
        assert!(equivalent(encoded, r#"{"Version":"2012-10-17"}"#));
        assert_eq!(url_decode("100%"), "100%");
    }

    #[test]
    fn services_round_trip() {
        let services = vec![
            "ecs-tasks.amazonaws.com".to_string(),
            "lambda.amazonaws.com".to_string(),
        ];
        let doc = assume_role_policy_for(&services);
        assert_eq!(services_of(&doc), Some(services));
        assert_eq!(
            services_of(
                r#"{"Statement":[{"Effect":"Deny","Principal":{"Service":"x"},"Action":"sts:AssumeRole"}]}"#
            ),
            None
        );
    }
}
