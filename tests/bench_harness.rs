//! The benchmark harness's contract with cairn (no timings asserted): the
//! stacks `bench/gen.py` generates are the graphs cairn sees, and the
//! command-line pieces `bench/run.py` reads exist (`apply --json` with
//! `elapsed_ms`, `--scheduler baseline`, the state files' place and format, a quiet
//! re-plan). Also runs the harness's own Python unit tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cairn(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.current_dir(dir).env("NO_COLOR", "1");
    c
}

/// Writes `bench.toml` of a generated shape into `dir`; returns gen's info.
fn generate(dir: &Path, shape: &str, n: usize, extra: &[&str]) -> Value {
    let gen_py = root().join("bench/gen.py");
    let n = n.to_string();
    run(Command::new("python3")
        .arg(&gen_py)
        .args(["cairn", "--shape", shape, "--n", &n])
        .args(extra)
        .arg(dir.join("bench.toml")));
    let info = run(Command::new("python3")
        .arg(&gen_py)
        .args(["info", "--shape", shape, "--n", &n]));
    serde_json::from_slice(&info.stdout).expect("info is JSON")
}

#[test]
fn harness_unit_tests_pass() {
    run(Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "bench",
            "-p",
            "test_*.py",
        ])
        .current_dir(root())
        .env("PYTHONDONTWRITEBYTECODE", "1"));
}

#[test]
fn generated_stacks_are_the_graphs_cairn_sees() {
    for (shape, n) in [("wide", 40), ("deep", 40), ("layered", 300), ("ecs", 7)] {
        let dir = tempfile::tempdir().unwrap();
        let info = generate(dir.path(), shape, n, &[]);
        let v = run(cairn(dir.path()).args(["validate", "bench.toml"]));
        let text = String::from_utf8_lossy(&v.stdout);
        let cp = info["critical_path"].as_u64().unwrap();
        assert!(
            text.contains(&format!("{} resources", info["nodes"]))
                && text.contains(&format!("{cp} step")),
            "{shape}: validate says {text:?}, gen says {info}"
        );

        // Every depends_on edge of the file is an edge of cairn's graph.
        let toml_text = std::fs::read_to_string(dir.path().join("bench.toml")).unwrap();
        let doc: toml::Table = toml::from_str(&toml_text).unwrap();
        let mut want = BTreeSet::new();
        for (ty, resources) in doc["resource"].as_table().unwrap() {
            for (name, body) in resources.as_table().unwrap() {
                for dep in body
                    .get("depends_on")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                {
                    want.insert((dep.as_str().unwrap().to_string(), format!("{ty}.{name}")));
                }
            }
        }
        let g = run(cairn(dir.path()).args(["graph", "bench.toml", "--format", "json"]));
        let graph: Value = serde_json::from_slice(&g.stdout).unwrap();
        let got: BTreeSet<(String, String)> = graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().unwrap().to_string(),
                    e["to"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, want, "{shape}: edges differ");
        assert_eq!(want.len() as u64, info["edges"].as_u64().unwrap());
        assert_eq!(
            graph["nodes"].as_array().unwrap().len() as u64,
            info["nodes"].as_u64().unwrap()
        );
    }
}

/// What bench/cairnrun.py reads of the state in `dir`: `{"n": records, "serial": …}`.
fn python_records(dir: &Path) -> Value {
    let script = "import json, sys; sys.path.insert(0, 'bench'); import cairnrun; \
                  r = cairnrun.state_records(sys.argv[1]); \
                  print(json.dumps({'n': len(r), 'serial': cairnrun.state_serial(sys.argv[1])}))";
    let out = run(Command::new("python3")
        .current_dir(root())
        .args(["-c", script])
        .arg(dir));
    serde_json::from_slice(&out.stdout).expect("the harness prints JSON")
}

#[test]
fn apply_outcome_and_replan_are_what_the_harness_reads() {
    let dir = tempfile::tempdir().unwrap();
    let info = generate(dir.path(), "layered", 200, &[]);
    let n = info["nodes"].as_u64().unwrap();
    let out = run(cairn(dir.path()).args([
        "apply",
        "bench.toml",
        "--auto-approve",
        "--json",
        "--parallelism",
        "10",
        "--scheduler",
        "baseline",
    ]));
    let outcome: Value = serde_json::from_slice(&out.stdout).expect("apply --json prints JSON");
    assert_eq!(outcome["outcome"], "applied", "{outcome}");
    assert_eq!(outcome["completed"].as_u64(), Some(n), "{outcome}");
    assert!(outcome["elapsed_ms"].is_u64(), "{outcome}");
    // The makespan the harness reads, in microseconds (one millisecond is
    // 3% of a 30 ms apply).
    let us = outcome["elapsed_us"].as_u64().expect("elapsed_us");
    assert_eq!(
        us / 1000,
        outcome["elapsed_ms"].as_u64().unwrap(),
        "{outcome}"
    );

    // The harness reads the records from the state file and the journal's
    // committed records (bench/cairnrun.py replays them): all of them.
    let records = python_records(dir.path());
    assert_eq!(
        records["n"].as_u64(),
        Some(n),
        "the harness reads every record: {records}"
    );
    assert_eq!(
        records["serial"].as_u64(),
        Some(1),
        "the harness reads the committed serial: {records}"
    );

    // The no-change plan: exit 0 with --detailed-exitcode.
    let plan = cairn(dir.path())
        .args(["plan", "bench.toml", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );

    // A 1 % update regenerated with an extra attribute is a change (exit 2).
    generate(dir.path(), "layered", 200, &[]);
    let text = std::fs::read_to_string(dir.path().join("bench.toml")).unwrap();
    let text = text.replacen("name = \"n0\"", "name = \"n0\"\nrev = 2", 1);
    std::fs::write(dir.path().join("bench.toml"), text).unwrap();
    let plan = cairn(dir.path())
        .args(["plan", "bench.toml", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}
