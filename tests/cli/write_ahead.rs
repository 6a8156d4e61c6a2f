//! Intents written ahead: an operation's intent is journaled while the
//! operations it waits for are still running, and one that then never
//! starts is closed, so the journal keeps no open intent for a call never
//! made.

use serde_json::Value;

use crate::support::Project;

/// `a` fails; `b` waits for `a`, `c` for `b`; `big` is independent and
/// large, so that the commit appends to the journal instead of compacting
/// it away.
fn stack() -> String {
    format!(
        r#"
[stack]
name = "wa"

[provider.sim]
world = ".cairn/world.json"
latency_ms = 5
fail = ["sim_x.a:create"]

[resource.sim_x.big]
name = "big"
blob = "{}"

[resource.sim_x.a]
name = "a"

[resource.sim_x.b]
name = "b"
after = "${{sim_x.a.id}}"

[resource.sim_x.c]
name = "c"
after = "${{sim_x.b.id}}"
"#,
        "x".repeat(20_000)
    )
}

/// The journal's records (the header and commit markers left out).
fn records(p: &Project) -> Vec<Value> {
    let text = std::fs::read_to_string(p.path(".cairn/wa.default.journal")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("cairn_journal").is_none() && v.get("commit").is_none())
        .collect()
}

/// The address an intent or outcome record is about, and whether it is an
/// intent.
fn about(record: &Value) -> (String, bool) {
    let (key, value) = record.as_object().unwrap().iter().next().unwrap();
    let intent = matches!(key.as_str(), "create" | "update" | "delete");
    let address = match key.as_str() {
        "put" => value.as_object().unwrap().keys().next().unwrap().clone(),
        _ => value.as_str().unwrap_or_default().to_string(),
    };
    (address, intent)
}

#[test]
fn an_intent_written_ahead_for_an_operation_never_started_is_closed() {
    let p = Project::new();
    p.stack(&stack());
    p.cairn(&["apply", "stack.toml", "--auto-approve", "--no-rollback"])
        .code(1);
    let records = records(&p);
    let seen: Vec<(String, bool)> = records.iter().map(about).collect();
    // `b` was announced when `a` started: its intent is in the journal
    // although `a` failed and `b` never ran; `c` waited for `b`, which never
    // started, so nothing was written for it.
    let b = seen
        .iter()
        .position(|s| *s == ("sim_x.b".to_string(), true))
        .unwrap_or_else(|| panic!("no intent for sim_x.b: {seen:?}"));
    assert!(
        seen[b + 1..].contains(&("sim_x.b".to_string(), false)),
        "the intent for sim_x.b is never closed: {seen:?}"
    );
    assert!(!seen.iter().any(|(a, _)| a == "sim_x.c"), "{seen:?}");
    // No intent is left open.
    let mut open: Vec<&str> = Vec::new();
    for (address, intent) in &seen {
        if *intent {
            open.push(address);
        } else {
            open.retain(|a| a != address);
        }
    }
    assert!(open.is_empty(), "open intents {open:?}: {seen:?}");
    // The next apply has nothing to recover and converges.
    p.stack(&stack().replace("fail = [\"sim_x.a:create\"]", ""));
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(!run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_eq!(p.names("sim_x").len(), 4);
}
