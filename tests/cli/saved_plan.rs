//! Saved plans: `plan --out FILE`, then `apply FILE`, refused when stale.

use crate::support::Project;

const DEMO: &str = include_str!("../../stacks/demo.toml");

#[test]
fn saved_plan_applies() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["plan", "stack.toml", "--out", "plan.json"]).ok();
    let apply = p.cairn(&["apply", "plan.json", "--auto-approve"]).ok();
    assert!(
        apply.stderr.contains("Apply complete: 4 actions"),
        "{}",
        apply.stderr
    );
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn stale_plan_is_refused() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["plan", "stack.toml", "--out", "plan.json"]).ok();
    // Someone creates the cluster by hand in the meantime.
    p.world(serde_json::json!([{ "type": "sim_cluster", "id": "c-1", "attributes": { "name": "demo-cluster" } }]));
    let run = p.cairn(&["apply", "plan.json", "--auto-approve"]).code(1);
    assert!(
        run.stderr
            .contains("the saved plan is stale: live objects changed"),
        "{}",
        run.stderr
    );
    assert_eq!(p.world_objects().len(), 1);
}

#[test]
fn plan_made_before_an_apply_is_refused_after_it() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["plan", "stack.toml", "--out", "plan.json"]).ok();
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let run = p.cairn(&["apply", "plan.json", "--auto-approve"]).code(1);
    assert!(
        run.stderr.contains("the saved plan is stale"),
        "{}",
        run.stderr
    );
}
