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

/// Without checks, the outcome records still queued when the operations
/// end are journaled by the commit itself: every record reaches the
/// journal once, before the commit marker, and none after it.
#[test]
fn the_commit_journals_the_last_outcomes_once_and_before_its_marker() {
    let p = Project::new();
    let mut stack =
        "[stack]\nname = \"wa\"\n\n[provider.sim]\nworld = \".cairn/world.json\"\n".to_string();
    for i in 0..60 {
        stack.push_str(&format!("\n[resource.sim_x.r{i}]\nname = \"r{i}\"\n"));
    }
    p.stack(&stack);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let text = std::fs::read_to_string(p.path(".cairn/wa.default.journal")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("cairn_journal").is_none())
        .collect();
    let marker = lines
        .iter()
        .position(|v| v.get("commit").is_some())
        .expect("a commit marker");
    assert_eq!(
        marker,
        lines.len() - 1,
        "records after the marker: {lines:?}"
    );
    let mut puts: Vec<String> = lines[..marker]
        .iter()
        .map(about)
        .filter(|(_, intent)| !intent)
        .map(|(address, _)| address)
        .collect();
    puts.sort();
    let mut expected: Vec<String> = (0..60).map(|i| format!("sim_x.r{i}")).collect();
    expected.sort();
    assert_eq!(puts, expected);
    let state = p.state("wa", "default").expect("committed state");
    assert_eq!(state["resources"].as_object().unwrap().len(), 60);
    // Nothing to do on the next run: the committed state is complete.
    let plan = p.cairn(&["plan", "stack.toml", "--detailed-exitcode"]).ok();
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
}
