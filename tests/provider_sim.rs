//! The `sim` provider against real world files in temp folders: CRUD,
//! fault injection, latency, compaction, crash recovery and several
//! instances (and processes) sharing one world.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::model::{Address, Attrs};
use cairn::provider::sim::SimProvider;
use cairn::provider::{
    CreateRequest, DeleteRequest, ErrorKind, Provider, ProviderContext, UpdateRequest,
};
use serde_json::{Value, json};

fn ctx(dir: &Path) -> ProviderContext {
    ProviderContext {
        stack: "demo".into(),
        env: "default".into(),
        dir: dir.to_path_buf(),
    }
}

fn sim(dir: &Path, settings: Value) -> SimProvider {
    let settings: Attrs = serde_json::from_value(settings).unwrap();
    SimProvider::new(&settings, &ctx(dir)).unwrap()
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

fn create_req(address: &str, name: &str, extra: Value) -> CreateRequest {
    let mut attributes: Attrs = serde_json::from_value(extra).unwrap();
    attributes.insert("name".into(), json!(name));
    CreateRequest {
        address: addr(address),
        attributes,
        tags: cairn::model::Tags::from([("cairn:stack".to_string(), "demo".to_string())]),
    }
}

fn world_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(".cairn/world.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn create_read_find_list_update_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let p = sim(tmp.path(), json!({}));
    let a = addr("sim_role.exec");
    assert_eq!(p.find(&a, "exec-role").await.unwrap(), None);

    let created = p
        .create(&create_req(
            "sim_role.exec",
            "exec-role",
            json!({"size": 3}),
        ))
        .await
        .unwrap();
    assert!(
        created.id.starts_with("sim_role-exec-role-"),
        "{}",
        created.id
    );
    assert_eq!(created.attributes["id"], json!(created.id));
    assert_eq!(
        created.attributes["arn"],
        json!("arn:sim:sim_role:exec-role")
    );
    assert_eq!(created.attributes["size"], json!(3));
    assert_eq!(created.tags["cairn:stack"], "demo");

    assert_eq!(
        p.read(&a, &created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        p.find(&a, "exec-role").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(p.read(&a, "nope").await.unwrap(), None);
    let listed = p.list("sim_role").await.unwrap().unwrap();
    assert_eq!(listed, vec![created.clone()]);
    assert_eq!(p.list("sim_other").await.unwrap(), Some(vec![]));

    let mut after = created.attributes.clone();
    after.insert("size".into(), json!(5));
    after.remove("other");
    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: created.id.clone(),
            before: created.attributes.clone(),
            after,
            tags: cairn::model::Tags::from([("cairn:env".to_string(), "default".to_string())]),
        })
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.attributes["size"], json!(5));
    assert_eq!(updated.attributes["arn"], created.attributes["arn"]);
    assert_eq!(updated.tags.len(), 2, "tags are merged: {:?}", updated.tags);
    assert_eq!(
        p.read(&a, &created.id).await.unwrap(),
        Some(updated.clone())
    );

    // A changed name cannot be updated in place.
    let mut renamed = updated.attributes.clone();
    renamed.insert("name".into(), json!("other"));
    let err = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: created.id.clone(),
            before: updated.attributes.clone(),
            after: renamed,
            tags: cairn::model::Tags::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);

    let del = DeleteRequest {
        address: a.clone(),
        id: created.id.clone(),
        attributes: updated.attributes.clone(),
    };
    p.delete(&del).await.unwrap();
    assert_eq!(p.read(&a, &created.id).await.unwrap(), None);
    p.delete(&del).await.unwrap(); // missing: fine
    p.finish().await.unwrap();
    assert_eq!(world_json(tmp.path()), json!({"resources": []}));
}

#[tokio::test]
async fn creating_an_existing_name_fails_and_ids_differ_on_recreate() {
    let tmp = tempfile::tempdir().unwrap();
    let p = sim(tmp.path(), json!({}));
    let first = p
        .create(&create_req("sim_bucket.a", "logs", json!({})))
        .await
        .unwrap();
    let err = p
        .create(&create_req("sim_bucket.b", "logs", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("already exists"), "{}", err.message);
    // Same name, another type: fine.
    p.create(&create_req("sim_queue.a", "logs", json!({})))
        .await
        .unwrap();
    p.delete(&DeleteRequest {
        address: addr("sim_bucket.a"),
        id: first.id.clone(),
        attributes: Attrs::new(),
    })
    .await
    .unwrap();
    let second = p
        .create(&create_req("sim_bucket.a", "logs", json!({})))
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
}

#[tokio::test]
async fn injected_failures_hit_only_the_named_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let p = sim(
        tmp.path(),
        json!({"fail": ["sim_task.api:create", "sim_task.web:find"]}),
    );
    let err = p
        .create(&create_req("sim_task.api", "api", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert_eq!(err.message, "injected failure: sim_task.api create");
    let err = p.find(&addr("sim_task.web"), "web").await.unwrap_err();
    assert_eq!(err.message, "injected failure: sim_task.web find");
    // Other operations and addresses work; nothing was created by the failure.
    p.create(&create_req("sim_task.web", "web", json!({})))
        .await
        .unwrap();
    assert_eq!(p.find(&addr("sim_task.api"), "api").await.unwrap(), None);
}

#[tokio::test]
async fn latency_and_jitter_delay_every_call() {
    let tmp = tempfile::tempdir().unwrap();
    let p = sim(tmp.path(), json!({"latency_ms": 40, "jitter_ms": 20}));
    let start = Instant::now();
    p.find(&addr("sim_x.a"), "a").await.unwrap();
    p.list("sim_x").await.unwrap();
    p.create(&create_req("sim_x.a", "a", json!({})))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(120), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");

    // Calls wait concurrently: latency is not a lock.
    let p = Arc::new(sim(tmp.path(), json!({"latency_ms": 200})));
    let start = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.read(&addr("sim_x.a"), &format!("id{i}")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn hand_written_world_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("cloud")).unwrap();
    std::fs::write(
        tmp.path().join("cloud/w.json"),
        r#"{"resources": [
            {"type": "sim_role", "id": "role-1", "attributes": {"name": "exec", "policy": "p"},
             "tags": {"team": "a"}},
            {"type": "sim_bucket", "attributes": {"name": "data"}}
        ]}"#,
    )
    .unwrap();
    let p = sim(tmp.path(), json!({"world": "cloud/w.json"}));
    let role = p.find(&addr("sim_role.x"), "exec").await.unwrap().unwrap();
    assert_eq!(role.id, "role-1");
    assert_eq!(role.attributes["policy"], json!("p"));
    assert_eq!(role.attributes["arn"], json!("arn:sim:sim_role:exec"));
    assert_eq!(role.tags["team"], "a");
    assert!(!role.is_cairn_managed());
    let bucket = p
        .find(&addr("sim_bucket.x"), "data")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bucket.id, "sim_bucket-data");
    assert_eq!(
        p.read(&addr("sim_bucket.x"), "sim_bucket-data")
            .await
            .unwrap(),
        Some(bucket)
    );
    // An id of another type is not found.
    assert_eq!(
        p.read(&addr("sim_role.x"), "sim_bucket-data")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn reading_needs_no_folder_and_creates_none() {
    let tmp = tempfile::tempdir().unwrap();
    let p = sim(tmp.path(), json!({}));
    assert_eq!(p.list("sim_x").await.unwrap(), Some(vec![]));
    p.finish().await.unwrap();
    assert!(!tmp.path().join(".cairn").exists());
}

#[tokio::test]
async fn compaction_is_deterministic_and_a_rolled_back_run_changes_nothing() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let world =
        r#"{"resources": [{"type": "sim_role", "id": "r-1", "attributes": {"name": "pre"}}]}"#;
    for dir in [a.path(), b.path()] {
        std::fs::create_dir_all(dir.join(".cairn")).unwrap();
        std::fs::write(dir.join(".cairn/world.json"), world).unwrap();
    }
    // Same objects created in different orders (ids are pinned by
    // re-reading: compare without ids).
    let names = ["b", "a", "c"];
    let pa = sim(a.path(), json!({}));
    for n in names {
        pa.create(&create_req("sim_z.x", n, json!({"k": n})))
            .await
            .unwrap();
    }
    pa.finish().await.unwrap();
    let pb = sim(b.path(), json!({}));
    for n in names.iter().rev() {
        pb.create(&create_req("sim_z.x", n, json!({"k": n})))
            .await
            .unwrap();
    }
    pb.finish().await.unwrap();
    let strip = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join(".cairn/world.json")).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        for r in v["resources"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("id");
        }
        (text, v)
    };
    let (text_a, va) = strip(a.path());
    let (_, vb) = strip(b.path());
    assert_eq!(va, vb);
    let order: Vec<&str> = va["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["pre", "a", "b", "c"]);
    // One object per line, between the brackets.
    assert!(text_a.starts_with("{\"resources\": [\n") && text_a.ends_with("\n]}\n"));
    assert_eq!(text_a.lines().count(), 2 + order.len(), "{text_a}");

    // A run that creates and rolls back leaves the compacted file unchanged.
    let before = std::fs::read(a.path().join(".cairn/world.json")).unwrap();
    let p = sim(a.path(), json!({}));
    let o = p
        .create(&create_req("sim_y.t", "temp", json!({})))
        .await
        .unwrap();
    p.delete(&DeleteRequest {
        address: addr("sim_y.t"),
        id: o.id,
        attributes: Attrs::new(),
    })
    .await
    .unwrap();
    p.finish().await.unwrap();
    assert_eq!(
        std::fs::read(a.path().join(".cairn/world.json")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read(a.path().join(".cairn/world.json.log")).unwrap(),
        b""
    );
}

#[tokio::test]
async fn a_log_left_by_a_killed_process_is_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<String> = {
        let p = sim(tmp.path(), json!({}));
        let mut ids = Vec::new();
        for n in ["one", "two", "three"] {
            ids.push(
                p.create(&create_req("sim_q.x", n, json!({})))
                    .await
                    .unwrap()
                    .id,
            );
        }
        p.delete(&DeleteRequest {
            address: addr("sim_q.x"),
            id: ids[1].clone(),
            attributes: Attrs::new(),
        })
        .await
        .unwrap();
        ids
        // dropped without finish(), as if killed
    };
    assert!(!tmp.path().join(".cairn/world.json").exists());
    // A torn last line, as a writer killed mid-append would leave.
    let log = tmp.path().join(".cairn/world.json.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"op":"put","object":{"ty"#);
    std::fs::write(&log, bytes).unwrap();

    let p = sim(tmp.path(), json!({}));
    assert!(p.read(&addr("sim_q.x"), &ids[0]).await.unwrap().is_some());
    assert!(p.read(&addr("sim_q.x"), &ids[1]).await.unwrap().is_none());
    assert!(p.read(&addr("sim_q.x"), &ids[2]).await.unwrap().is_some());
    p.create(&create_req("sim_q.x", "four", json!({})))
        .await
        .unwrap();
    p.finish().await.unwrap();
    let names: Vec<Value> = world_json(tmp.path())["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("four"), json!("one"), json!("three")]);
}

#[tokio::test]
async fn a_corrupt_world_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join(".cairn")).unwrap();
    let path = tmp.path().join(".cairn/world.json");
    std::fs::write(&path, "{\"resources\": [ oops").unwrap();
    let p = sim(tmp.path(), json!({}));
    let err = p.list("sim_x").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(
        err.message.contains(&path.display().to_string()),
        "{}",
        err.message
    );
    assert!(err.message.contains("not a sim world"), "{}", err.message);

    std::fs::write(
        &path,
        r#"{"resources": [{"type": "sim_x", "attributes": {}}]}"#,
    )
    .unwrap();
    let err = p.find(&addr("sim_x.a"), "a").await.unwrap_err();
    assert!(err.message.contains("`name`"), "{}", err.message);

    std::fs::write(&path, "").unwrap();
    std::fs::write(tmp.path().join(".cairn/world.json.log"), "not json\n").unwrap();
    let err = sim(tmp.path(), json!({})).list("sim_x").await.unwrap_err();
    assert!(err.message.contains("world.json.log"), "{}", err.message);
}

#[test]
fn bad_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in [
        json!({"latency_ms": "slow"}),
        json!({"fail": ["nonsense"]}),
        json!({"wrold": "x"}),
    ] {
        let settings: Attrs = serde_json::from_value(bad).unwrap();
        assert!(SimProvider::new(&settings, &ctx(tmp.path())).is_err());
    }
}

#[test]
fn std_file_locks_contend_between_two_opens_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("l");
    let a = std::fs::File::create(&path).unwrap();
    let b = std::fs::File::options().write(true).open(&path).unwrap();
    a.lock().unwrap();
    assert!(matches!(
        b.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    a.unlock().unwrap();
    b.try_lock().unwrap();
}

async fn create_many(p: Arc<SimProvider>, prefix: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let p = p.clone();
            let name = format!("{prefix}-{i}");
            tokio::spawn(async move {
                p.create(&create_req("sim_item.x", &name, json!({"i": i})))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_world_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Arc::new(sim(tmp.path(), json!({})));
    let b = Arc::new(sim(tmp.path(), json!({})));
    // Both see a name taken through the other.
    a.create(&create_req("sim_item.x", "shared", json!({})))
        .await
        .unwrap();
    assert!(
        b.create(&create_req("sim_item.x", "shared", json!({})))
            .await
            .is_err()
    );
    tokio::join!(
        create_many(a.clone(), "a", 200),
        create_many(b.clone(), "b", 200)
    );
    // One compacts mid-run; the other keeps writing and still sees all.
    a.finish().await.unwrap();
    b.create(&create_req("sim_item.x", "late", json!({})))
        .await
        .unwrap();
    assert_eq!(a.list("sim_item").await.unwrap().unwrap().len(), 402);
    b.finish().await.unwrap();
    a.finish().await.unwrap();
    let world = world_json(tmp.path());
    assert_eq!(world["resources"].as_array().unwrap().len(), 402);
    let fresh = sim(tmp.path(), json!({}));
    let listed = fresh.list("sim_item").await.unwrap().unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 402);
}

/// One thread for both instances: a lease one instance holds must end by
/// itself (the sim's clock thread ends it), or the other's wait for the
/// file lock would block the only thread for ever.
#[tokio::test(flavor = "current_thread")]
async fn two_instances_take_turns_on_one_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let a = sim(tmp.path(), json!({}));
    let b = sim(tmp.path(), json!({}));
    for i in 0..20 {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        first
            .create(&create_req("sim_item.x", &format!("n{i}"), json!({})))
            .await
            .unwrap();
        // The other sees it at once: it caught up when it took the lock.
        let seen = second.list("sim_item").await.unwrap().unwrap();
        assert_eq!(seen.len(), i + 1);
    }
    a.finish().await.unwrap();
    b.finish().await.unwrap();
    assert_eq!(
        world_json(tmp.path())["resources"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
}

/// Run as a child process by `processes_share_a_world`.
#[tokio::test]
async fn child_writer() {
    let Ok(dir) = std::env::var("CAIRN_SIM_TEST_CHILD_DIR") else {
        return;
    };
    let prefix = std::env::var("CAIRN_SIM_TEST_CHILD_PREFIX").unwrap();
    let p = Arc::new(sim(Path::new(&dir), json!({})));
    create_many(p.clone(), &prefix, 150).await;
    p.finish().await.unwrap();
}

#[tokio::test]
async fn processes_share_a_world() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|prefix| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_writer", "--quiet", "--test-threads=1"])
                .env("CAIRN_SIM_TEST_CHILD_DIR", tmp.path())
                .env("CAIRN_SIM_TEST_CHILD_PREFIX", prefix)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let p = Arc::new(sim(tmp.path(), json!({})));
    create_many(p.clone(), "parent", 150).await;
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    p.finish().await.unwrap();
    assert_eq!(
        world_json(tmp.path())["resources"]
            .as_array()
            .unwrap()
            .len(),
        450
    );
}

/// `cargo test --release --test provider_sim -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing, run by hand"]
async fn hundred_thousand_creates() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(sim(tmp.path(), json!({})));
    let start = Instant::now();
    for chunk in 0..10 {
        create_many(p.clone(), &format!("c{chunk}"), 10_000).await;
    }
    let created = start.elapsed();
    let listed = p.list("sim_item").await.unwrap().unwrap().len();
    let t_list = start.elapsed();
    p.finish().await.unwrap();
    let t_finish = start.elapsed();
    let fresh = sim(tmp.path(), json!({}));
    assert_eq!(
        fresh.list("sim_item").await.unwrap().unwrap().len(),
        100_000
    );
    eprintln!(
        "100k creates {created:?}, list {listed} at {t_list:?}, compacted at {t_finish:?}, reloaded at {:?}",
        start.elapsed()
    );
}

/// Run as a child process by `a_kill_loses_no_returned_mutation`: creates
/// objects forever, compacting now and then, printing each id it got.
#[tokio::test]
async fn child_endless_writer() {
    let Ok(dir) = std::env::var("CAIRN_SIM_TEST_ENDLESS_DIR") else {
        return;
    };
    let p = sim(Path::new(&dir), json!({}));
    for i in 0.. {
        let o = p
            .create(&create_req("sim_kill.x", &format!("k{i}"), json!({"i": i})))
            .await
            .unwrap();
        println!("ID {}", o.id);
        if i % 25 == 24 {
            p.finish().await.unwrap();
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_kill_loses_no_returned_mutation() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_endless_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CAIRN_SIM_TEST_ENDLESS_DIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ID ").map(str::to_string))
            .collect::<Vec<String>>()
    });
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ids = reader.join().unwrap();
    assert!(ids.len() > 30, "the child made only {} objects", ids.len());
    let p = sim(tmp.path(), json!({}));
    let live = p.list("sim_kill").await.unwrap().unwrap();
    for id in &ids {
        assert!(live.iter().any(|o| &o.id == id), "{id} was lost");
    }
    p.create(&create_req("sim_kill.x", "after", json!({})))
        .await
        .unwrap();
    p.finish().await.unwrap();
    let world = world_json(tmp.path());
    assert!(world["resources"].as_array().unwrap().len() > ids.len());
}
