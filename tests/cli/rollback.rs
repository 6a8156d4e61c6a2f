//! Rollback: a failure mid-apply undoes what the run did, leaving the world
//! exactly as it was before the run.

use serde_json::json;

use crate::support::Project;

const STACK: &str = r#"
[stack]
name = "rb"

[provider.sim]
world = ".cairn/world.json"
latency_ms = 5
fail = ["sim_task.api:create"]

[resource.sim_role.exec]
name = "exec"

[resource.sim_cluster.main]
name = "main"
size = 3

[resource.sim_queue.jobs]
name = "jobs"

[resource.sim_task.api]
name = "api"
role = "${sim_role.exec.arn}"
cluster = "${sim_cluster.main.id}"

[resource.sim_task.worker]
name = "worker"
queue = "${sim_queue.jobs.arn}"
"#;

#[test]
fn failed_create_rolls_back_to_the_world_before_the_run() {
    let p = Project::new();
    p.stack(STACK);
    p.world(json!([{ "type": "sim_other", "id": "x-1", "attributes": { "name": "keep-me" } }]));
    let before = p.world_objects();
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        run.stderr
            .contains("sim_task.api: create failed: injected failure"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Rolled back"), "{}", run.stderr);
    assert!(
        run.stderr.contains("↩ sim_role.exec: deleted"),
        "{}",
        run.stderr
    );
    assert_eq!(p.world_objects(), before);
    let state = p.state("rb", "default").unwrap();
    assert_eq!(state["resources"], json!({}));
}

#[test]
fn rollback_restores_updates() {
    let p = Project::new();
    p.stack(&STACK.replace("fail = [\"sim_task.api:create\"]", ""));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let before = p.world_objects();
    // Now change the cluster and make the worker's update fail.
    let changed = STACK
        .replace("size = 3", "size = 4")
        .replace(
            "queue = \"${sim_queue.jobs.arn}\"",
            "queue = \"${sim_queue.jobs.arn}\"\nextra = 1",
        )
        .replace("sim_task.api:create", "sim_task.worker:update");
    p.stack(&changed);
    let run = p
        .cairn(&[
            "apply",
            "stack.toml",
            "--auto-approve",
            "--parallelism",
            "1",
        ])
        .code(1);
    assert!(
        run.stderr.contains("sim_task.worker: update failed"),
        "{}",
        run.stderr
    );
    assert_eq!(p.world_objects(), before);
}

#[test]
fn no_rollback_keeps_partial_work_in_state() {
    let p = Project::new();
    p.stack(STACK);
    let run = p
        .cairn(&["apply", "stack.toml", "--auto-approve", "--no-rollback"])
        .code(1);
    assert!(run.stderr.contains("Not rolled back"), "{}", run.stderr);
    let state = p.state("rb", "default").unwrap();
    let recorded: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert!(recorded.contains(&&"sim_role.exec".to_string()));
    assert!(!recorded.contains(&&"sim_task.api".to_string()));
    // Every object in the world is recorded in state.
    assert_eq!(p.world_objects().len(), recorded.len());
}
