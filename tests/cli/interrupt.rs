//! Interrupts: the first SIGINT/SIGTERM starts nothing new, lets in-flight
//! operations finish, saves state and exits 130; the next apply converges.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::Project;

fn chain(n: usize) -> String {
    let mut s = String::from(
        "[stack]\nname = \"int\"\n\n[provider.sim]\nworld = \".cairn/world.json\"\nlatency_ms = 150\n",
    );
    for i in 0..n {
        s.push_str(&format!("\n[resource.sim_node.n{i}]\nname = \"n{i}\"\n"));
        if i > 0 {
            s.push_str(&format!("after = \"${{sim_node.n{}.id}}\"\n", i - 1));
        }
    }
    s
}

/// Waits until the run has journaled its first operation (so its signal
/// handling is in place), at most a few seconds.
fn wait_for_first_operation(p: &Project) {
    let journal = p.path(".cairn/int.default.journal");
    for _ in 0..300 {
        if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn first_interrupt_stops_cleanly_and_saves_state() {
    let p = Project::new();
    p.stack(&chain(12));
    for sig in ["-INT", "-TERM"] {
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["apply", "stack.toml", "--auto-approve"])
            .current_dir(p.root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_first_operation(&p);
        std::thread::sleep(Duration::from_millis(200));
        signal(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{sig}: {stderr}");
        assert!(
            stderr.contains("interrupt: starting nothing new"),
            "{stderr}"
        );
        assert!(stderr.contains("Interrupted after"), "{stderr}");
        // What finished is recorded: state and world agree.
        let state = p.state("int", "default").unwrap();
        let recorded = state["resources"].as_object().unwrap().len();
        assert_eq!(
            recorded,
            p.names("sim_node").len(),
            "{sig}: state and world disagree"
        );
        assert!(recorded < 12, "{sig}: the run stopped early");
    }
    p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(p.names("sim_node").len(), 12);
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[test]
fn second_interrupt_exits_at_once_and_the_journal_stays_consistent() {
    let p = Project::new();
    p.stack(&chain(12));
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["apply", "stack.toml", "--auto-approve"])
        .current_dir(p.root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_operation(&p);
    signal(child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(30));
    signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    let names = p.names("sim_node");
    assert_eq!(names.len(), 12, "no duplicates, nothing missing: {names:?}");
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}
