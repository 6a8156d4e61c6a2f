//! The example stack of the stack-format documentation: validate, plan,
//! apply, re-plan, output, graph, state, destroy.

use serde_json::json;

use crate::support::{Project, stable};

const DEMO: &str = include_str!("../../stacks/demo.toml");

#[test]
fn demo_stack_full_cycle() {
    let p = Project::new();
    p.stack(DEMO);
    let v = p.cairn(&["validate", "stack.toml"]).ok();
    insta::assert_snapshot!("validate_demo", v.stdout);

    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    insta::assert_snapshot!("plan_demo_empty_world", stable(&plan.stdout));

    let plan = p
        .cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(2);
    assert!(
        plan.stdout.contains("Plan: 4 to create."),
        "{}",
        plan.stdout
    );

    let apply = p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(
        apply.stderr.contains("Apply complete: 4 actions"),
        "{}",
        apply.stderr
    );
    assert!(
        apply.stderr.contains("check config_written passed"),
        "{}",
        apply.stderr
    );
    assert_eq!(p.names("sim_cluster"), ["demo-cluster"]);
    assert_eq!(p.names("sim_role"), ["demo-exec"]);
    let task = p.object("sim_task", "demo-api").expect("task created");
    let role = p.object("sim_role", "demo-exec").unwrap();
    let cluster = p.object("sim_cluster", "demo-cluster").unwrap();
    assert_eq!(
        task["attributes"]["role"],
        format!(
            "arn:sim:sim_role:{}",
            role["attributes"]["name"].as_str().unwrap()
        )
    );
    assert_eq!(task["attributes"]["cluster"], cluster["id"]);
    assert_eq!(cluster["attributes"]["size"], json!(2));
    assert_eq!(task["tags"]["cairn:stack"], "demo");
    assert_eq!(task["tags"]["cairn:env"], "default");
    assert_eq!(task["tags"]["cairn:address"], "sim_task.api");
    let config = std::fs::read_to_string(p.path("out/demo.json")).unwrap();
    assert_eq!(
        config,
        format!("{{\"cluster\": \"{}\"}}", cluster["id"].as_str().unwrap())
    );

    // A second plan finds nothing to do.
    let again = p
        .cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);

    let out = p.cairn(&["output", "stack.toml", "--json"]).ok();
    let outputs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(outputs["task"], task["id"]);

    let list = p.cairn(&["state", "list", "stack.toml", "--json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let show = p
        .cairn(&["state", "show", "stack.toml", "sim_task.api"])
        .ok();
    assert!(
        show.stdout.contains("\"ownership\": \"created\""),
        "{}",
        show.stdout
    );

    let destroy = p.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert!(
        destroy.stdout.contains("- sim_task.api delete"),
        "{}",
        destroy.stdout
    );
    assert!(p.world_objects().is_empty(), "{:?}", p.world_objects());
    assert!(!p.path("out/demo.json").exists());
    let state = p.state("demo", "default").unwrap();
    assert_eq!(state["resources"], json!({}));
}

#[test]
fn destroy_runs_in_reverse_dependency_order() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let plan = p.cairn(&["plan", "stack.toml", "--destroy", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let step_of = |addr: &str| {
        v["steps"].as_array().unwrap().iter().find_map(|s| {
            s["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["address"] == addr)
                .then(|| s["step"].as_u64().unwrap())
        })
    };
    assert!(step_of("sim_task.api") < step_of("sim_role.exec"));
    assert!(step_of("sim_task.api") < step_of("local_file.config"));
    assert!(step_of("local_file.config") < step_of("sim_cluster.main"));
}

#[test]
fn env_and_vars_select_values_and_separate_state() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&[
        "apply",
        "stack.toml",
        "--env",
        "production",
        "--var",
        "replicas=3",
        "--auto-approve",
    ])
    .ok();
    assert_eq!(p.names("sim_cluster"), ["prod-cluster"]);
    assert_eq!(
        p.object("sim_cluster", "prod-cluster").unwrap()["attributes"]["size"],
        json!(3)
    );
    assert!(p.state("demo", "production").is_some());
    assert!(p.state("demo", "default").is_none());
}

#[test]
fn plan_json_has_the_documented_shape() {
    let p = Project::new();
    p.stack(DEMO);
    let plan = p.cairn(&["plan", "stack.toml", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["stack"], "demo");
    assert_eq!(v["env"], "default");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["step"], 1);
    let first: Vec<&str> = steps[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["sim_cluster.main", "sim_role.exec"]);
    let task = &steps[2]["actions"][0];
    assert_eq!(task["address"], "sim_task.api");
    assert_eq!(task["action"], "create");
    assert_eq!(
        task["depends_on"],
        json!(["local_file.config", "sim_cluster.main", "sim_role.exec"])
    );
    assert_eq!(task["before"], json!(null));
    assert_eq!(task["after"]["name"], "demo-api");
    assert_eq!(task["after"]["role"], json!(null));
    assert_eq!(task["after_unknown"], json!(["cluster", "role"]));
    assert_eq!(v["summary"]["create"], 4);
}

#[test]
fn drift_shows_as_update_and_out_of_band_delete_as_create() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    // Change the cluster's size and delete the task behind cairn's back.
    let mut objects = p.world_objects();
    for o in &mut objects {
        if o["type"] == "sim_cluster" {
            o["attributes"]["size"] = json!(5);
        }
    }
    objects.retain(|o| o["type"] != "sim_task");
    p.world(json!(objects));
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    insta::assert_snapshot!("plan_drift", stable(&plan.stdout));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(
        p.object("sim_cluster", "demo-cluster").unwrap()["attributes"]["size"],
        json!(2)
    );
    assert!(p.object("sim_task", "demo-api").is_some());
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn changed_name_is_a_replace() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    p.stack(&DEMO.replace(
        "name = \"${var.prefix}-cluster\"",
        "name = \"${var.prefix}-cluster2\"",
    ));
    let plan = p.cairn(&["plan", "stack.toml", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let actions: Vec<(String, String)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap().iter())
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("sim_cluster.main".into(), "replace".into())),
        "{actions:?}"
    );
    // The cluster id changes, so what reads it is updated.
    assert!(
        actions.contains(&("sim_task.api".into(), "update".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("local_file.config".into(), "update".into())),
        "{actions:?}"
    );
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(p.names("sim_cluster"), ["demo-cluster2"]);
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn removed_resource_is_deleted() {
    let p = Project::new();
    p.stack(DEMO);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let without_task = DEMO
        .split("[resource.sim_task.api]")
        .next()
        .unwrap()
        .to_string()
        + "[check.config_written]\ncommand = \"test -s out/${var.prefix}.json\"\n";
    p.stack(&without_task);
    let plan = p.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("- sim_task.api delete"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("reason: no longer in the stack"),
        "{}",
        plan.stdout
    );
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(p.names("sim_task").is_empty());
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let p = Project::new();
    p.stack(DEMO);
    let run = p.cairn(&["apply", "stack.toml"]).code(1);
    assert!(
        run.stderr
            .contains("refusing to apply without --auto-approve"),
        "{}",
        run.stderr
    );
    assert!(p.world_objects().is_empty());
}

#[test]
fn invalid_stack_changes_nothing() {
    let p = Project::new();
    p.stack(&DEMO.replace("${sim_role.exec.arn}", "${sim_role.nope.arn}"));
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("sim_role.nope"), "{}", run.stderr);
    assert!(
        !p.path(".cairn").exists(),
        "no state, no world, no lock written"
    );
    assert!(!p.path("out").exists());
}

#[test]
fn a_second_apply_fails_fast_naming_the_lock_holder() {
    let p = Project::new();
    p.stack(&DEMO.replace("latency_ms = 20", "latency_ms = 400"));
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["apply", "stack.toml", "--auto-approve"])
        .current_dir(p.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first run to take the lock.
    let lock = p.path(".cairn/demo.default.lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("apply")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let second = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "fails at once"
    );
    assert!(second.stderr.contains("locked by"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    let mut first = first;
    assert!(first.wait().unwrap().success());
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn graph_exports() {
    let p = Project::new();
    p.stack(DEMO);
    let dot = p.cairn(&["graph", "stack.toml"]).ok();
    insta::assert_snapshot!("graph_dot", dot.stdout);
    let mermaid = p
        .cairn(&["graph", "stack.toml", "--format", "mermaid"])
        .ok();
    insta::assert_snapshot!("graph_mermaid", mermaid.stdout);
    let json = p
        .cairn(&["graph", "stack.toml", "--format", "json", "--plan"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(v["edges"].as_array().unwrap().len(), 4);
}

#[test]
fn failing_check_fails_the_apply_and_rolls_back() {
    let p = Project::new();
    p.stack(&DEMO.replace("test -s out/${var.prefix}.json", "test -s out/missing.json"));
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        run.stderr.contains("check config_written failed"),
        "{}",
        run.stderr
    );
    assert!(
        p.world_objects().is_empty(),
        "rolled back: {:?}",
        p.world_objects()
    );
    assert!(!p.path("out/demo.json").exists());
}

#[test]
fn local_command_output_feeds_other_resources() {
    let p = Project::new();
    p.stack(
        r#"
[stack]
name = "cmd"

[resource.local_command.version]
command = "echo v1.2.3"

[resource.local_file.version]
path = "out/version.txt"
content = "${local_command.version.stdout}"
"#,
    );
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(
        std::fs::read_to_string(p.path("out/version.txt")).unwrap(),
        "v1.2.3"
    );
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn apply_json_reports_the_time_each_resource_spent_in_its_provider() {
    let p = Project::new();
    p.stack(
        r#"
[stack]
name = "timed"
[provider.sim]
latency_ms = 40
jitter_ms = 10
latency_log = "drawn.json"
[resource.sim_role.a]
name = "a"
[resource.sim_role.b]
name = "b"
depends_on = ["sim_role.a"]
"#,
    );
    let run = p
        .cairn(&["apply", "stack.toml", "--auto-approve", "--json"])
        .ok();
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let times = out["provider_ms"].as_object().expect("provider_ms");
    assert_eq!(times.len(), 2, "{out}");
    for address in ["sim_role.a", "sim_role.b"] {
        let ms = times[address].as_f64().unwrap();
        assert!(ms >= 40.0, "{address}: {ms} ms");
    }
    // Two calls in a chain: the run cannot be faster than their sum.
    let total: f64 = times.values().filter_map(|v| v.as_f64()).sum();
    assert!(
        out["elapsed_ms"].as_f64().unwrap() >= total.floor(),
        "{out}"
    );
    // The sim wrote the delays it drew, which the provider times contain.
    let drawn: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path("drawn.json")).unwrap()).unwrap();
    for address in ["sim_role.a", "sim_role.b"] {
        let d = drawn[address].as_u64().expect("a drawn delay");
        assert!((40..=50).contains(&d), "{address}: {d}");
        assert!(times[address].as_f64().unwrap() >= d as f64, "{address}");
    }
}

/// Progress lines are gathered during an apply and written in batches:
/// none is lost, each operation's start comes before its end, and the
/// final report comes after every line.
#[test]
fn gathered_progress_lines_are_complete_and_in_order() {
    let p = Project::new();
    let mut stack = String::from(
        "[stack]\nname = \"lines\"\n\n[provider.sim]\nlatency_ms = 5\njitter_ms = 5\n",
    );
    for i in 0..60 {
        stack.push_str(&format!("\n[resource.sim_node.n{i}]\nname = \"n{i}\"\n"));
    }
    p.stack(&stack);
    let apply = p
        .cairn(&[
            "apply",
            "stack.toml",
            "--auto-approve",
            "--parallelism",
            "100",
        ])
        .ok();
    let lines: Vec<&str> = apply.stderr.lines().collect();
    let report = lines
        .iter()
        .position(|l| l.contains("Apply complete: 60 actions"))
        .expect("final report");
    for i in 0..60 {
        let start = format!("sim_node.n{i}: create…");
        let end = format!("sim_node.n{i}: created [");
        let started: Vec<usize> = (0..lines.len())
            .filter(|&n| lines[n].contains(&start))
            .collect();
        let ended: Vec<usize> = (0..lines.len())
            .filter(|&n| lines[n].contains(&end))
            .collect();
        assert_eq!(
            (started.len(), ended.len()),
            (1, 1),
            "n{i}:\n{}",
            apply.stderr
        );
        assert!(
            started[0] < ended[0] && ended[0] < report,
            "n{i}:\n{}",
            apply.stderr
        );
    }
}

/// The lists of the stack's types start before the state loads; a type
/// only the state still records gets its provider after the load. Both
/// meet in one plan: the listed objects are found unchanged, and the file
/// the stack no longer names is deleted.
#[test]
fn a_type_only_the_state_records_is_planned_beside_the_listed_ones() {
    let p = Project::new();
    let sims = r#"
[stack]
name = "mixed"

[provider.sim]
world = ".cairn/world.json"

[resource.sim_node.a]
name = "a"

[resource.sim_node.b]
name = "b"

[resource.sim_node.c]
name = "c"
"#;
    p.stack(&format!(
        "{sims}\n[resource.local_file.note]\npath = \"note.txt\"\ncontent = \"hello\"\n"
    ));
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(p.path("note.txt").exists());
    assert_eq!(p.names("sim_node"), ["a", "b", "c"]);

    // The stack now names only sim resources: the local provider is
    // needed for the state's `local_file.note` alone.
    p.stack(sims);
    let plan = p
        .cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(2);
    assert!(
        plan.stdout.contains("Plan: 1 to delete, 3 unchanged."),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("local_file.note"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("sim_node.a"), "{}", plan.stdout);
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(!p.path("note.txt").exists());
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);

    // An object deleted by hand is missed by the list started early.
    let objects: Vec<_> = p
        .world_objects()
        .into_iter()
        .filter(|o| o["attributes"]["name"] != "b")
        .collect();
    p.world(serde_json::Value::Array(objects));
    let drift = p
        .cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(2);
    assert!(drift.stdout.contains("sim_node.b"), "{}", drift.stdout);
    assert!(!drift.stdout.contains("sim_node.a"), "{}", drift.stdout);
}
