//! Diff tests: a stack text, a state and a live world in, a plan out —
//! rendered as one line per action so each case reads at a glance.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{DiffInput, Live, LiveEntry, diff};
use crate::model::{self, Address, ResolveOptions, Stack, Tags};
use crate::provider::{LiveObject, ownership_tags};
use crate::state::{Ownership, ResourceState, State};

fn stack(text: &str) -> (Stack, crate::graph::DepGraph) {
    let raw = crate::stack::parse("stack.toml", text.to_string()).expect("parses");
    let stack = model::resolve(&raw, &ResolveOptions::default()).expect("resolves");
    let graph = model::dependency_graph(&stack).expect("acyclic");
    (stack, graph)
}

fn obj(id: &str, attrs: Value, tags: Tags) -> LiveObject {
    LiveObject {
        id: id.into(),
        attributes: serde_json::from_value(attrs).unwrap(),
        tags,
    }
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

/// `step action address (reason)` lines, or the error messages.
fn check(stack_text: &str, state: &State, live: &Live) -> String {
    let (stack, graph) = stack(stack_text);
    match diff(&DiffInput {
        stack: &stack,
        graph: &graph,
        state,
        live,
    }) {
        Ok(plan) => {
            let mut out = Vec::new();
            for step in &plan.steps {
                for a in &step.actions {
                    out.push(format!(
                        "{} {} {} ({})",
                        step.step,
                        a.action.symbol(),
                        a.address,
                        a.reason
                    ));
                }
            }
            for f in &plan.forget {
                out.push(format!("forget {f}"));
            }
            out.join("\n")
        }
        Err(d) => {
            d.0.iter()
                .map(|d| {
                    format!(
                        "error: {} (help: {})",
                        d.message,
                        d.help.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

const TWO: &str = r#"
[stack]
name = "t"
[resource.sim_role.r]
name = "role"
policy = "p1"
[resource.sim_fn.f]
name = "fn"
role = "${sim_role.r.arn}"
"#;

fn owned(id: &str, attrs: Value) -> ResourceState {
    ResourceState {
        id: id.into(),
        ownership: Ownership::Created,
        attributes: serde_json::from_value(attrs).unwrap(),
        depends_on: Vec::new(),
        identity: None,
    }
}

#[test]
fn empty_world_creates_in_dependency_order() {
    let got = check(TWO, &State::new("t", "default"), &Live::new());
    assert_eq!(
        got,
        "1 + sim_role.r (not in state and not found live)\n2 + sim_fn.f (not in state and not found live)"
    );
}

fn applied() -> (State, Live) {
    let mut state = State::new("t", "default");
    let role = json!({"name": "role", "policy": "p1", "id": "r1", "arn": "arn:sim:sim_role:role"});
    let f = json!({"name": "fn", "role": "arn:sim:sim_role:role", "id": "f1", "arn": "arn:sim:sim_fn:fn"});
    state
        .resources
        .insert(addr("sim_role.r"), owned("r1", role.clone()));
    state
        .resources
        .insert(addr("sim_fn.f"), owned("f1", f.clone()));
    let mut live = Live::new();
    let tags = |a: &str| ownership_tags("t", "default", &addr(a));
    live.insert(
        addr("sim_role.r"),
        LiveEntry {
            by_id: Some(Arc::new(obj("r1", role, tags("sim_role.r")))),
            ..Default::default()
        },
    );
    live.insert(
        addr("sim_fn.f"),
        LiveEntry {
            by_id: Some(Arc::new(obj("f1", f, tags("sim_fn.f")))),
            ..Default::default()
        },
    );
    (state, live)
}

#[test]
fn matching_world_has_no_changes() {
    let (state, live) = applied();
    assert_eq!(check(TWO, &state, &live), "");
}

#[test]
fn drift_is_an_update_and_a_stack_change_says_so() {
    let (state, mut live) = applied();
    if let Some(o) = live
        .get_mut(&addr("sim_role.r"))
        .and_then(|e| e.by_id.as_mut())
    {
        Arc::make_mut(o)
            .attributes
            .insert("policy".into(), json!("hand-edited"));
    }
    assert_eq!(
        check(TWO, &state, &live),
        "1 ~ sim_role.r (drift: `policy` changed outside cairn)"
    );
    let (state, live) = applied();
    let changed = TWO.replace("policy = \"p1\"", "policy = \"p2\"");
    assert_eq!(
        check(&changed, &state, &live),
        "1 ~ sim_role.r (`policy` changed in the stack)"
    );
}

#[test]
fn renamed_dependency_is_replaced_and_its_dependent_updated() {
    let (state, live) = applied();
    let renamed = TWO.replace("name = \"role\"", "name = \"role2\"");
    assert_eq!(
        check(&renamed, &state, &live),
        "1 -/+ sim_role.r (`name` forces replacement)\n2 ~ sim_fn.f (`role` changed in the stack)"
    );
}

#[test]
fn deleted_out_of_band_is_created_again() {
    let (state, mut live) = applied();
    live.insert(addr("sim_fn.f"), LiveEntry::default());
    assert_eq!(
        check(TWO, &state, &live),
        "1 + sim_fn.f (deleted outside cairn; re-creating)"
    );
}

#[test]
fn removed_from_stack_is_deleted_before_what_it_used() {
    let (mut state, live) = applied();
    state
        .resources
        .get_mut(&addr("sim_fn.f"))
        .unwrap()
        .depends_on = vec![addr("sim_role.r")];
    let only_fn_removed = TWO.split("[resource.sim_fn.f]").next().unwrap().to_string();
    assert_eq!(
        check(&only_fn_removed, &state, &live),
        "1 - sim_fn.f (no longer in the stack)"
    );
    let nothing = "[stack]\nname = \"t\"\n";
    assert_eq!(
        check(nothing, &state, &live),
        "1 - sim_fn.f (no longer in the stack)\n2 - sim_role.r (no longer in the stack)"
    );
}

#[test]
fn foreign_object_policies() {
    let foreign = |policy: &str| {
        let mut live = Live::new();
        let o = obj(
            "h1",
            json!({"name": "role", "policy": policy, "id": "h1"}),
            Tags::new(),
        );
        live.insert(
            addr("sim_role.r"),
            LiveEntry {
                by_identity: Some(Arc::new(o)),
                ..Default::default()
            },
        );
        live
    };
    let with = |p: &str| {
        TWO.replace(
            "policy = \"p1\"",
            &format!("policy = \"p1\"\nif_exists = {p}"),
        )
    };
    let state = State::new("t", "default");
    let got = check(TWO, &state, &foreign("p1"));
    assert!(
        got.starts_with("error: sim_role.r: a sim_role named `role` already exists (id `h1`)"),
        "{got}"
    );
    assert_eq!(
        check(&with("\"reuse\""), &state, &foreign("p1")),
        "1 = sim_role.r (a sim_role named `role` exists and matches: using it as it is)\n2 + sim_fn.f (not in state and not found live)"
    );
    assert!(
        check(&with("\"reuse\""), &state, &foreign("other"))
            .contains("reuse: the existing object differs in `policy`")
    );
    assert!(
        check(&with("\"adopt\""), &state, &foreign("other")).starts_with(
            "1 > sim_role.r (a sim_role named `role` exists: taking it over and updating `policy`)"
        )
    );
    assert!(
        check(&with("[\"reuse\", \"unique\"]"), &state, &foreign("other"))
            .starts_with("1 * sim_role.r (a foreign sim_role named `role` exists: creating `role-")
    );
    assert_eq!(
        check(&with("\"skip\""), &state, &foreign("other")),
        "1 ! sim_role.r (a foreign sim_role named `role` exists: skipping it and what depends on it)\n2 ! sim_fn.f (depends on sim_role.r, which is skipped)"
    );
}

#[test]
fn tagged_object_missing_from_state_is_taken_back() {
    let mut live = Live::new();
    let tags = ownership_tags("t", "default", &addr("sim_role.r"));
    let o = obj(
        "r9",
        json!({"name": "role", "policy": "p1", "id": "r9"}),
        tags,
    );
    live.insert(
        addr("sim_role.r"),
        LiveEntry {
            by_identity: Some(Arc::new(o)),
            ..Default::default()
        },
    );
    let got = check(TWO, &State::new("t", "default"), &live);
    assert!(
        got.starts_with("1 > sim_role.r (found by its cairn tags: taking it back into state)"),
        "{got}"
    );
}
