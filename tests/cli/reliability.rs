//! Crash safety: a run killed at any moment, a failure at any position, and
//! many runs at once on one state all leave the world and state consistent.
//! See docs/reliability.md.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Project;

/// A layered stack: `layers` × `width` sim resources, each depending on one
/// resource of the layer before.
fn layered(layers: usize, width: usize, latency_ms: u64, fail: Option<&str>) -> String {
    let mut s = format!(
        "[stack]\nname = \"big\"\n\n[provider.sim]\nworld = \".cairn/world.json\"\nlatency_ms = {latency_ms}\n"
    );
    if let Some(f) = fail {
        s.push_str(&format!("fail = [\"{f}\"]\n"));
    }
    for l in 0..layers {
        for w in 0..width {
            s.push_str(&format!(
                "\n[resource.sim_node.n{l}_{w}]\nname = \"n{l}-{w}\"\n"
            ));
            if l > 0 {
                let dep = (w * 7 + l) % width;
                s.push_str(&format!("parent = \"${{sim_node.n{}_{dep}.id}}\"\n", l - 1));
            }
        }
    }
    s
}

fn desired_names(layers: usize, width: usize) -> BTreeSet<String> {
    (0..layers)
        .flat_map(|l| (0..width).map(move |w| format!("n{l}-{w}")))
        .collect()
}

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn killed_applies_converge_with_no_orphans_and_no_duplicates() {
    let trials: u64 = std::env::var("CAIRN_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (layers, width) = (20, 10);
    let mut rng = Lcg(0x5eed);
    for trial in 0..trials {
        let p = Project::new();
        p.stack(&layered(layers, width, 5, None));
        // Kill one or two runs at random moments, then let one finish.
        for _ in 0..1 + trial % 2 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["apply", "stack.toml", "--auto-approve"])
                .current_dir(p.root())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.next() % 700));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]);
        assert_eq!(
            run.code, 0,
            "trial {trial}: apply after kill failed\n{}",
            run.stderr
        );
        let names: Vec<String> = p.names("sim_node");
        let unique: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(
            names.len(),
            unique.len(),
            "trial {trial}: duplicates in the world"
        );
        assert_eq!(
            unique,
            desired_names(layers, width),
            "trial {trial}: world differs from the stack"
        );
        let plan = p.cairn(&["plan", "stack.toml", "--detailed-exitcode"]);
        assert_eq!(
            plan.code, 0,
            "trial {trial}: not converged\n{}",
            plan.stdout
        );
        let state = p.state("big", "default").unwrap();
        assert_eq!(
            state["resources"].as_object().unwrap().len(),
            layers * width,
            "trial {trial}: state incomplete"
        );
    }
}

#[test]
fn a_failure_at_any_position_rolls_back_to_the_world_before() {
    let (layers, width) = (5, 4);
    for l in 0..layers {
        for w in 0..width {
            let p = Project::new();
            p.world(
                json!([{ "type": "sim_other", "id": "keep", "attributes": { "name": "keep" } }]),
            );
            let before = p.world_objects();
            p.stack(&layered(
                layers,
                width,
                0,
                Some(&format!("sim_node.n{l}_{w}:create")),
            ));
            let run = p.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
            assert!(run.stderr.contains("injected failure"), "{}", run.stderr);
            assert_eq!(
                p.world_objects(),
                before,
                "failure at n{l}_{w} left the world changed"
            );
            assert_eq!(p.state("big", "default").unwrap()["resources"], json!({}));
        }
    }
}

#[test]
fn concurrent_applies_take_turns_and_lose_no_update() {
    let p = Project::new();
    p.stack(&layered(4, 5, 30, None));
    // Eight runs at once, failing fast: exactly the ones that got the lock work.
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["apply", "stack.toml", "--auto-approve"])
                .current_dir(p.root())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ok = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            ok += 1;
        } else {
            assert!(
                stderr.contains("locked by"),
                "a loser must name the holder: {stderr}"
            );
        }
    }
    assert!(ok >= 1);
    assert_eq!(p.names("sim_node").len(), 20);
    let serial_after_first = p.state("big", "default").unwrap()["serial"]
        .as_u64()
        .unwrap();

    // Eight runs at once, waiting their turn: all succeed, one after another.
    p.stack(&layered(4, 5, 30, None).replace("name = \"n3-4\"", "name = \"n3-4\"\nextra = 1"));
    let started = Instant::now();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args([
                    "apply",
                    "stack.toml",
                    "--auto-approve",
                    "--lock-timeout",
                    "60",
                ])
                .current_dir(p.root())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let state = p.state("big", "default").unwrap();
    // One run applied the change; the seven after it found nothing to do and
    // wrote nothing: the serial moved by exactly one.
    assert_eq!(state["serial"].as_u64().unwrap(), serial_after_first + 1);
    assert_eq!(
        state["resources"]["sim_node.n3_4"]["attributes"]["extra"],
        json!(1)
    );
    assert_eq!(p.names("sim_node").len(), 20);
    p.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}
