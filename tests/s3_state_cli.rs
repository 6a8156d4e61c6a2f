//! End to end through the built `cairn` binary with state in S3 (a real
//! moto server): a sim stack planned, applied, re-planned and destroyed;
//! `--state-*` flags; saved plans; `force-unlock` of a stale lock; eight
//! concurrent applies on one S3 state, failing fast or taking turns.
#![cfg(feature = "aws")]

#[path = "support/s3_state.rs"]
mod s3;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cairn::state::Backend;
use s3::{bucket, raw};
use serde_json::{Value, json};
use support::aws::server;
use support::run::Run;

/// The object under `key`, if any, as JSON.
async fn object(bucket: &str, key: &str) -> Option<Value> {
    let bytes = s3::try_get(bucket, key).await?;
    Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The state committed under `key` for the test stack, as `cairn` loads it
/// (the state object with the journal's committed segments replayed), and
/// how many uncommitted records follow; `None` if nothing was committed.
async fn loaded(bucket: &str, key: &str) -> Option<(Value, usize)> {
    let b = cairn::state::S3Backend::connect(
        bucket,
        key,
        Some("us-east-1"),
        Some(&server().endpoint()),
        "shared",
        "default",
    )
    .await
    .unwrap();
    let loaded = b.load().await.unwrap();
    (loaded.state.serial > 0).then(|| {
        (
            serde_json::to_value(&loaded.state).unwrap(),
            loaded.replayed,
        )
    })
}

/// The committed state under `key`, if any, as JSON.
async fn committed(bucket: &str, key: &str) -> Option<Value> {
    loaded(bucket, key).await.map(|(state, _)| state)
}

/// A sim stack (world file outside `.cairn/`); `state` is its `[state]` table.
fn stack(dir: &Path, state: &str) {
    let text = format!(
        r#"[stack]
name = "shared"

[vars]
size = 2

[provider.sim]
world = "world.json"
latency_ms = 10

[resource.sim_role.exec]
name = "exec"

[resource.sim_cluster.main]
name = "main"
size = "${{var.size}}"

[resource.sim_task.api]
name = "api"
role = "${{sim_role.exec.arn}}"
cluster = "${{sim_cluster.main.id}}"

[output]
cluster = "${{sim_cluster.main.id}}"

{state}
"#
    );
    std::fs::write(dir.join("stack.toml"), text).unwrap();
}

fn s3_table(bucket: &str, key: &str) -> String {
    format!(
        "[state]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nkey = \"{key}\"\nendpoint_url = \"{}\"\n",
        server().endpoint()
    )
}

fn cairn_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(args)
        .current_dir(dir)
        .envs(server().env())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null());
    command
}

fn cairn(dir: &Path, args: &[&str]) -> Run {
    Run::from(cairn_command(dir, args).output().unwrap())
}

/// Whether any local state file was written under `dir`.
fn local_state_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join(".cairn"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".state.json") || n.ends_with(".journal"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn plan_apply_replan_destroy_with_state_in_s3() {
    let bucket = bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = "ci/shared.json";
    stack(dir, &s3_table(&bucket, key));

    let plan = cairn(dir, &["plan", "stack.toml", "--detailed-exitcode"]).code(2);
    assert!(plan.stdout.contains("3 to create"), "{}", plan.stdout);
    assert!(
        committed(&bucket, key).await.is_none(),
        "plan writes no state"
    );
    assert!(s3::keys(&bucket).await.is_empty(), "plan writes nothing");

    cairn(dir, &["apply", "stack.toml", "--auto-approve"]).code(0);
    let state = committed(&bucket, key).await.expect("committed state");
    assert_eq!(state["serial"], json!(1));
    assert_eq!(state["stack"], json!("shared"));
    assert_eq!(state["resources"].as_object().unwrap().len(), 3);
    assert!(state["outputs"]["cluster"].is_string());
    assert!(
        object(&bucket, &format!("{key}.lock")).await.is_none(),
        "unlocked"
    );

    let replan = cairn(dir, &["plan", "stack.toml", "--detailed-exitcode"]).code(0);
    assert!(replan.stdout.contains("No changes"), "{}", replan.stdout);
    let list = cairn(dir, &["state", "list", "stack.toml"]).code(0);
    assert!(list.stdout.contains("sim_cluster.main"), "{}", list.stdout);

    cairn(dir, &["destroy", "stack.toml", "--auto-approve"]).code(0);
    let state = committed(&bucket, key).await.expect("committed state");
    assert_eq!(state["serial"], json!(2));
    assert_eq!(state["resources"], json!({}));
    // The state object, if a commit compacted, holds an earlier serial,
    // and its backup an earlier one still.
    if let Some(compacted) = object(&bucket, key).await {
        assert!(compacted["serial"].as_u64().unwrap() <= 2);
        if let Some(bak) = object(&bucket, &format!("{key}.bak")).await {
            assert!(bak["serial"].as_u64() < compacted["serial"].as_u64());
        }
    }
    assert_eq!(local_state_files(dir), Vec::<String>::new());
}

#[tokio::test]
async fn state_flags_move_a_local_stack_to_s3_and_saved_plans_keep_it() {
    let bucket = bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    stack(dir, "");
    let endpoint = server().endpoint();
    let flags = [
        "--state-bucket",
        bucket.as_str(),
        "--state-endpoint-url",
        endpoint.as_str(),
    ];
    let mut plan_args = vec!["plan", "stack.toml", "--out", "plan.json"];
    plan_args.extend(flags);
    cairn(dir, &plan_args).code(0);
    cairn(dir, &["apply", "plan.json", "--auto-approve"]).code(0);
    // The default key names the stack and env.
    let state = committed(&bucket, "shared.default.state.json")
        .await
        .unwrap();
    assert_eq!(state["serial"], json!(1));
    assert_eq!(local_state_files(dir), Vec::<String>::new());

    let mut replan = vec!["plan", "stack.toml", "--detailed-exitcode"];
    replan.extend(flags);
    cairn(dir, &replan).code(0);
    // Without the flags the stack's own (local, empty) state is used.
    cairn(dir, &["plan", "stack.toml", "--detailed-exitcode"]).code(2);

    // Another key is another (empty) state.
    let mut keyed = vec![
        "plan",
        "stack.toml",
        "--detailed-exitcode",
        "--state-key",
        "other.json",
    ];
    keyed.extend(flags);
    cairn(dir, &keyed).code(2);

    let run = cairn(dir, &["plan", "stack.toml", "--state-key", "k"]).code(1);
    assert!(
        run.stderr.contains("give --state-bucket too"),
        "{}",
        run.stderr
    );
    let run = cairn(dir, &["apply", "plan.json", "--state-bucket", "b"]).code(1);
    assert!(run.stderr.contains("not to saved plans"), "{}", run.stderr);
    let run = cairn(
        dir,
        &["plan", "stack.toml", "--state-bucket", "no-such-bucket-x"],
    )
    .code(1);
    assert!(
        run.stderr
            .contains("state bucket `no-such-bucket-x` does not exist (region us-east-1)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn force_unlock_removes_a_stale_lock() {
    let bucket = bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = "stale.json";
    stack(dir, &s3_table(&bucket, key));
    // A runner died holding the lock.
    let stale = json!({"id": "0123456789abcdef", "who": "ci@runner-7", "pid": 4242,
                       "operation": "apply", "created": "2026-01-01T00:00:00Z"});
    raw()
        .await
        .put_object()
        .bucket(&bucket)
        .key(format!("{key}.lock"))
        .body(ByteStream::from(serde_json::to_vec(&stale).unwrap()))
        .send()
        .await
        .unwrap();

    let run = cairn(dir, &["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        run.stderr.contains("locked by ci@runner-7"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("lock id 0123456789abcdef"),
        "{}",
        run.stderr
    );
    assert!(committed(&bucket, key).await.is_none());

    let run = cairn(dir, &["force-unlock", "stack.toml", "ffff"]).code(1);
    assert!(
        run.stderr.contains("no lock with id ffff"),
        "{}",
        run.stderr
    );
    let run = cairn(dir, &["force-unlock", "stack.toml", "0123456789abcdef"]).code(0);
    assert!(
        run.stderr.contains(&format!("on s3://{bucket}/{key}")),
        "{}",
        run.stderr
    );
    assert!(object(&bucket, &format!("{key}.lock")).await.is_none());
    cairn(dir, &["apply", "stack.toml", "--auto-approve"]).code(0);
    assert_eq!(committed(&bucket, key).await.unwrap()["serial"], json!(1));
}

/// Starts `n` concurrent `cairn apply` runs; run `i` sets `size = 10 + i`
/// when `vary` is set. Returns (exit code, stderr) per run.
fn concurrent_applies(dir: &Path, n: usize, vary: bool, extra: &[&str]) -> Vec<(i32, String)> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            let size = format!("size={}", 10 + i);
            let mut args = vec!["apply", "stack.toml", "--auto-approve"];
            if vary {
                args.extend(["--var", size.as_str()]);
            }
            args.extend(extra);
            cairn_command(dir, &args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_applies_on_one_s3_state_lose_no_update() {
    let bucket = bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = "race.json";
    stack(dir, &s3_table(&bucket, key));

    // Failing fast: the runs that did not get the lock name its holder.
    let results = concurrent_applies(dir, 8, false, &[]);
    let winners = results.iter().filter(|(code, _)| *code == 0).count();
    for (code, stderr) in &results {
        if *code != 0 {
            assert!(
                stderr.contains("locked by"),
                "a loser must name the holder: {stderr}"
            );
        }
    }
    assert!(winners >= 1, "{results:?}");
    let first = committed(&bucket, key).await.unwrap();
    let serial = first["serial"].as_u64().unwrap();
    assert_eq!(first["resources"].as_object().unwrap().len(), 3);

    // Waiting their turn, each with its own change: all succeed one after
    // another, and every one of them is committed on top of the previous.
    let started = Instant::now();
    let results = concurrent_applies(dir, 8, true, &["--lock-timeout", "60"]);
    for (code, stderr) in &results {
        assert_eq!(*code, 0, "{stderr}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let (last, replayed) = loaded(&bucket, key).await.unwrap();
    assert_eq!(
        last["serial"].as_u64().unwrap(),
        serial + 8,
        "one commit per run"
    );
    let size = last["resources"]["sim_cluster.main"]["attributes"]["size"]
        .as_u64()
        .unwrap();
    assert!((10..18).contains(&size), "{size}");
    assert!(object(&bucket, &format!("{key}.lock")).await.is_none());
    // Every run committed what it journaled: no uncommitted records left.
    assert_eq!(replayed, 0);
    // The state agrees with the world: planning the last size changes nothing.
    let var = format!("size={size}");
    cairn(
        dir,
        &["plan", "stack.toml", "--detailed-exitcode", "--var", &var],
    )
    .code(0);
}
