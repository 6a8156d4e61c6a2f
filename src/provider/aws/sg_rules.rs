//! Security group rules as data: checking what a stack wrote, and the
//! canonical form both the stack's rules and a read's rules are put in
//! before they are compared.
//!
//! A stack writes rules the way people think of them, one table per purpose
//! (`{ protocol = "tcp", port = 443, cidr_blocks = ["10.0.0.0/16", …] }`);
//! EC2 stores them grouped by protocol and ports, each source with its own
//! description. Neither grouping is meaningful, so the canonical form is the
//! set of *atomic* rules: one protocol, one port range, one source each,
//! sorted and without duplicates. An atomic rule is itself a valid rule
//! table, so canonicalizing is idempotent and reads can return it as is.
//!
//! Pure JSON, no SDK: the EC2 calls that apply a rule diff live in
//! `security_group.rs`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// The keys a rule table may hold.
pub const KEYS: &[&str] = &[
    "protocol",
    "port",
    "from_port",
    "to_port",
    "cidr_blocks",
    "ipv6_cidr_blocks",
    "security_groups",
    "self",
    "description",
];

/// The source lists of a rule, by key, with the singular key of its atomic form.
const SOURCES: &[&str] = &["cidr_blocks", "ipv6_cidr_blocks", "security_groups"];

/// The canonical protocol name: `tcp`, `udp`, `icmp`, `icmpv6`, `-1` for
/// all traffic, or the protocol number as text.
pub fn protocol(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(match text.as_str() {
        "all" | "any" | "-1" => "-1".into(),
        "6" | "tcp" => "tcp".into(),
        "17" | "udp" => "udp".into(),
        "1" | "icmp" => "icmp".into(),
        "58" | "icmpv6" => "icmpv6".into(),
        n if n.parse::<u8>().is_ok() => n.to_string(),
        _ => return None,
    })
}

fn port(rule: &Map<String, Value>, key: &str) -> Option<i64> {
    rule.get(key)
        .or_else(|| rule.get("port"))
        .and_then(Value::as_i64)
}

/// Problems with one list of rules (`ingress` or `egress`), as (attribute
/// path, message) pairs.
pub fn check(attr: &str, value: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let Some(rules) = value.as_array() else {
        return vec![(
            attr.to_string(),
            format!("`{attr}` must be an array of rule tables"),
        )];
    };
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{attr}[{i}]");
        let Some(rule) = rule.as_object() else {
            problems.push((at, "a rule must be a table".into()));
            continue;
        };
        for key in rule.keys() {
            if !KEYS.contains(&key.as_str()) {
                problems.push((
                    format!("{at}.{key}"),
                    format!(
                        "unknown rule key `{key}`: known keys are {}",
                        KEYS.join(", ")
                    ),
                ));
            }
        }
        let proto = match rule.get("protocol") {
            None => {
                problems.push((
                    at.clone(),
                    "a rule needs a `protocol` (tcp, udp, icmp, all)".into(),
                ));
                continue;
            }
            Some(v) => match protocol(v) {
                Some(p) => p,
                None => {
                    problems.push((
                        format!("{at}.protocol"),
                        "unknown protocol: use tcp, udp, icmp, icmpv6, all, or a protocol number"
                            .into(),
                    ));
                    continue;
                }
            },
        };
        let has_range = rule.contains_key("from_port") || rule.contains_key("to_port");
        if rule.contains_key("port") && has_range {
            problems.push((
                format!("{at}.port"),
                "set either `port` or `from_port` and `to_port`".into(),
            ));
        }
        if matches!(proto.as_str(), "tcp" | "udp") {
            match (port(rule, "from_port"), port(rule, "to_port")) {
                (Some(from), Some(to))
                    if (0..=65535).contains(&from) && (from..=65535).contains(&to) => {}
                (Some(_), Some(_)) => problems.push((
                    at.clone(),
                    "ports must be 0-65535 with `from_port` ≤ `to_port`".into(),
                )),
                _ => problems.push((
                    at.clone(),
                    format!("a {proto} rule needs `port`, or `from_port` and `to_port`"),
                )),
            }
        }
        let sources = SOURCES
            .iter()
            .filter_map(|k| rule.get(*k))
            .map(|v| v.as_array().map_or(1, Vec::len))
            .sum::<usize>()
            + usize::from(rule.get("self") == Some(&Value::Bool(true)));
        if sources == 0 {
            problems.push((
                at.clone(),
                "a rule needs a source: `cidr_blocks`, `ipv6_cidr_blocks`, `security_groups` or `self = true`".into(),
            ));
        }
        for key in SOURCES {
            if let Some(v) = rule.get(*key)
                && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            {
                problems.push((
                    format!("{at}.{key}"),
                    format!("`{key}` must be a list of strings"),
                ));
            }
        }
        if let Some(Value::Array(cidrs)) = rule.get("cidr_blocks") {
            for c in cidrs.iter().filter_map(Value::as_str) {
                if !super::ec2::is_ipv4_cidr(c) {
                    problems.push((
                        format!("{at}.cidr_blocks"),
                        format!("`{c}` is not an IPv4 CIDR block"),
                    ));
                }
            }
        }
    }
    problems
}

/// One atomic rule: a protocol, its ports (none for all traffic), one
/// source, and the source's description if it has one.
pub fn atomic(
    proto: &str,
    ports: Option<(i64, i64)>,
    source_key: &str,
    source: Value,
    description: Option<&str>,
) -> Value {
    let mut rule = Map::new();
    rule.insert("protocol".into(), Value::String(proto.to_string()));
    if proto != "-1"
        && let Some((from, to)) = ports
    {
        rule.insert("from_port".into(), json!(from));
        rule.insert("to_port".into(), json!(to));
    }
    let source = if source_key == "self" {
        source
    } else {
        Value::Array(vec![source])
    };
    rule.insert(source_key.to_string(), source);
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        rule.insert("description".into(), Value::String(d.to_string()));
    }
    Value::Object(rule)
}

/// The canonical form of a list of rules: atomic rules, sorted, without
/// duplicates. Values it cannot read are left as they are (validation
/// reports them).
pub fn canonical(value: &Value) -> Value {
    let Some(rules) = value.as_array() else {
        return value.clone();
    };
    let mut out = BTreeSet::new();
    for rule in rules {
        let Some(map) = rule.as_object() else {
            return value.clone();
        };
        let Some(proto) = map.get("protocol").and_then(protocol) else {
            return value.clone();
        };
        let ports = match (port(map, "from_port"), port(map, "to_port")) {
            (Some(f), Some(t)) => Some((f, t)),
            _ => None,
        };
        let description = map.get("description").and_then(Value::as_str);
        for key in SOURCES {
            for source in map
                .get(*key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.insert(CanonKey(atomic(
                    &proto,
                    ports,
                    key,
                    source.clone(),
                    description,
                )));
            }
        }
        if map.get("self") == Some(&Value::Bool(true)) {
            out.insert(CanonKey(atomic(
                &proto,
                ports,
                "self",
                Value::Bool(true),
                description,
            )));
        }
    }
    Value::Array(out.into_iter().map(|k| k.0).collect())
}

/// Orders JSON values by their compact text, for sets of rules.
#[derive(PartialEq, Eq)]
struct CanonKey(Value);

impl PartialOrd for CanonKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CanonKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.to_string().cmp(&other.0.to_string())
    }
}

/// What turns `live` rules into `desired` ones: (rules to revoke, rules to
/// authorize), both atomic. A rule whose description changed is revoked and
/// authorized again.
pub fn changes(live: &Value, desired: &Value) -> (Vec<Value>, Vec<Value>) {
    let set = |v: &Value| -> Vec<Value> {
        match canonical(v) {
            Value::Array(items) => items,
            _ => Vec::new(),
        }
    };
    let (live, desired) = (set(live), set(desired));
    let revoke = live
        .iter()
        .filter(|r| !desired.contains(r))
        .cloned()
        .collect();
    let authorize = desired
        .iter()
        .filter(|r| !live.contains(r))
        .cloned()
        .collect();
    (revoke, authorize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_spelling_do_not_matter() {
        let stack = json!([
            {"protocol": "TCP", "port": 443, "cidr_blocks": ["10.0.0.0/16", "10.1.0.0/16"]},
            {"protocol": "all", "from_port": 0, "to_port": 0, "self": true},
        ]);
        let read = json!([
            {"protocol": "-1", "self": true},
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.1.0.0/16"]},
            {"protocol": "6", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/16"]},
        ]);
        assert_eq!(canonical(&stack), canonical(&read));
        let once = canonical(&stack);
        assert_eq!(canonical(&once), once);
        assert_eq!(once.as_array().unwrap().len(), 3);
    }

    #[test]
    fn changes_revoke_and_authorize_only_the_difference() {
        let live = json!([
            {"protocol": "tcp", "port": 22, "cidr_blocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "port": 443, "cidr_blocks": ["0.0.0.0/0"]},
        ]);
        let desired = json!([
            {"protocol": "tcp", "port": 443, "cidr_blocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "port": 8443, "security_groups": ["sg-1"], "description": "lb"},
        ]);
        let (revoke, authorize) = changes(&live, &desired);
        assert_eq!(
            revoke,
            vec![
                json!({"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]})
            ]
        );
        assert_eq!(
            authorize,
            vec![
                json!({"protocol": "tcp", "from_port": 8443, "to_port": 8443, "security_groups": ["sg-1"], "description": "lb"})
            ]
        );
    }

    #[test]
    fn bad_rules_are_reported_with_their_path() {
        let rules = json!([
            {"protocol": "tcp", "cidr_blocks": ["10.0.0.0/8"]},
            {"protocol": "gre2", "cidr_blocks": ["10.0.0.0/8"]},
            {"protocol": "udp", "port": 53},
            {"protocol": "tcp", "port": 1, "cidr_blocks": ["10.0.0/8"], "color": "red"},
        ]);
        let problems = check("ingress", &rules);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"ingress[0]"), "{problems:?}");
        assert!(paths.contains(&"ingress[1].protocol"), "{problems:?}");
        assert!(paths.contains(&"ingress[2]"), "{problems:?}");
        assert!(paths.contains(&"ingress[3].color"), "{problems:?}");
        assert!(paths.contains(&"ingress[3].cidr_blocks"), "{problems:?}");
        assert!(check("ingress", &json!([{"protocol": "all", "self": true}])).is_empty());
    }
}
