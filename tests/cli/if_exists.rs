//! `if_exists`: what happens when a hand-made object already holds a
//! resource's name. One test per policy, and the fallback chain.

use serde_json::{Value, json};

use crate::support::{Project, stable};

fn stack(policy: &str, desired: &str) -> String {
    format!(
        r#"
[stack]
name = "ie"

[provider.sim]
world = ".cairn/world.json"

[resource.sim_role.exec]
name = "exec"
policy = "{desired}"
{policy}

[resource.sim_task.api]
name = "api"
role = "${{sim_role.exec.arn}}"
"#
    )
}

/// A role made by hand: no cairn tags.
fn hand_made(policy: &str) -> Value {
    json!({
        "type": "sim_role",
        "id": "handmade-1",
        "attributes": { "name": "exec", "policy": policy, "id": "handmade-1", "arn": "arn:sim:sim_role:exec" },
        "tags": { "owner": "ops" }
    })
}

fn project(policy: &str, desired: &str, existing: Vec<Value>) -> Project {
    let p = Project::new();
    p.stack(&stack(policy, desired));
    p.world(json!(existing));
    p
}

#[test]
fn fail_is_the_default_and_changes_nothing() {
    let p = project("", "x", vec![hand_made("x")]);
    let before = p.world_objects();
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    insta::assert_snapshot!("if_exists_fail", stable(&run.stderr));
    assert_eq!(p.world_objects(), before);
    assert!(
        p.state("ie", "default")
            .is_none_or(|s| s["resources"] == json!({}))
    );
}

#[test]
fn reuse_uses_the_object_as_is_and_destroy_leaves_it() {
    let p = project(r#"if_exists = "reuse""#, "x", vec![hand_made("x")]);
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    insta::assert_snapshot!("if_exists_reuse_plan", stable(&plan.stdout));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let role = p.object("sim_role", "exec").unwrap();
    assert_eq!(role, hand_made("x"), "never modified");
    assert_eq!(
        p.object("sim_task", "api").unwrap()["attributes"]["role"],
        "arn:sim:sim_role:exec"
    );
    assert_eq!(
        p.state("ie", "default").unwrap()["resources"]["sim_role.exec"]["ownership"],
        "reused"
    );
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
    let destroy = p.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert!(
        destroy
            .stdout
            .contains("Forget (dropped from state, never touched)"),
        "{}",
        destroy.stdout
    );
    assert_eq!(p.world_objects(), vec![hand_made("x")]);
}

#[test]
fn reuse_of_an_incompatible_object_is_an_error_without_fallback() {
    let p = project(r#"if_exists = ["reuse"]"#, "y", vec![hand_made("x")]);
    let run = p.cairn(&["plan", "stack.toml"]).code(1);
    assert!(
        run.stderr
            .contains("reuse: the existing object differs in `policy`"),
        "{}",
        run.stderr
    );
}

#[test]
fn adopt_takes_over_updates_and_destroy_deletes() {
    let p = project(r#"if_exists = "adopt""#, "y", vec![hand_made("x")]);
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("> sim_role.exec adopt"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(r#"~ policy = "x" → "y""#),
        "{}",
        plan.stdout
    );
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let role = p.object("sim_role", "exec").unwrap();
    assert_eq!(role["id"], "handmade-1");
    assert_eq!(role["attributes"]["policy"], "y");
    assert_eq!(role["tags"]["cairn:address"], "sim_role.exec");
    assert_eq!(
        p.state("ie", "default").unwrap()["resources"]["sim_role.exec"]["ownership"],
        "adopted"
    );
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
    p.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert!(p.world_objects().is_empty());
}

#[test]
fn unique_creates_beside_it_with_a_stable_suffix() {
    let p = project(r#"if_exists = "unique""#, "y", vec![hand_made("x")]);
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    insta::assert_snapshot!("if_exists_unique_plan", stable(&plan.stdout));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let names = p.names("sim_role");
    assert_eq!(names.len(), 2);
    let unique = names.iter().find(|n| n.as_str() != "exec").unwrap().clone();
    assert!(
        unique.starts_with("exec-") && unique.len() == "exec-".len() + 6,
        "{unique}"
    );
    assert_eq!(p.object("sim_role", "exec").unwrap(), hand_made("x"));
    assert_eq!(
        p.object("sim_task", "api").unwrap()["attributes"]["role"],
        format!("arn:sim:sim_role:{unique}")
    );
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
    p.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(p.world_objects(), vec![hand_made("x")]);
    // The suffix is derived from stack, env and address: the same next time.
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(p.names("sim_role").contains(&unique));
}

#[test]
fn skip_skips_it_and_everything_that_depends_on_it() {
    let p = project(r#"if_exists = "skip""#, "y", vec![hand_made("x")]);
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    insta::assert_snapshot!("if_exists_skip_plan", stable(&plan.stdout));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(p.world_objects(), vec![hand_made("x")]);
}

#[test]
fn fallback_chain_reuse_then_unique_then_skip() {
    // Compatible: reused.
    let p = project(
        r#"if_exists = ["reuse", "unique", "skip"]"#,
        "x",
        vec![hand_made("x")],
    );
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("= sim_role.exec reuse"),
        "{}",
        plan.stdout
    );
    // Incompatible: a unique one.
    let p = project(
        r#"if_exists = ["reuse", "unique", "skip"]"#,
        "y",
        vec![hand_made("x")],
    );
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("* sim_role.exec create unique"),
        "{}",
        plan.stdout
    );
    // Incompatible and the unique name taken by hand too: skipped.
    let p = project(
        r#"if_exists = ["reuse", "unique", "skip"]"#,
        "y",
        vec![hand_made("x")],
    );
    let plan = p.cairn(&["plan", "stack.toml", "--json"]).ok();
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let unique = v["steps"][0]["actions"][0]["unique_name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut taken = hand_made("z");
    taken["id"] = json!("handmade-2");
    taken["attributes"]["name"] = json!(unique);
    taken["attributes"]["id"] = json!("handmade-2");
    p.world(json!([hand_made("x"), taken]));
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("! sim_role.exec skip"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("! sim_task.api skip"),
        "{}",
        plan.stdout
    );
}

#[test]
fn two_resources_claiming_one_name_is_a_validation_error() {
    let p = Project::new();
    p.stack(
        r#"
[stack]
name = "dup"

[resource.sim_bucket.data]
name = "shared"

[resource.sim_bucket.index]
name = "shared"
"#,
    );
    let run = p.cairn(&["validate", "stack.toml"]).code(1);
    assert!(
        run.stderr.contains("sim_bucket.data") || run.stderr.contains("shared"),
        "{}",
        run.stderr
    );
}

#[test]
fn lost_state_creates_no_duplicates() {
    let p = Project::new();
    p.stack(include_str!("../../stacks/demo.toml"));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let before = p.world_objects();
    for f in [
        "demo.default.state.json",
        "demo.default.state.json.bak",
        "demo.default.journal",
    ] {
        let _ = std::fs::remove_file(p.path(&format!(".cairn/{f}")));
    }
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("found by its cairn tags"),
        "{}",
        plan.stdout
    );
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let after = p.world_objects();
    assert_eq!(after.len(), before.len(), "no duplicates");
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}
