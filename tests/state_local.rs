//! The local state backend against real files: commit/load round trips,
//! serials and lineage, backups, journal replay after crashes, torn and
//! corrupt journals, pending intents, file modes, group commit.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cairn::model::Address;
use cairn::provider::Operation;
use cairn::state::{
    Backend, JournalEntry, LocalBackend, Ownership, ResourceState, State, StateError,
};
use serde_json::json;

fn backend(dir: &Path) -> LocalBackend {
    LocalBackend::new(dir.join(".cairn"), "demo", "dev")
}

fn addr(name: &str) -> Address {
    Address::new("sim_role", name)
}

fn resource(id: &str) -> ResourceState {
    ResourceState {
        id: id.to_string(),
        ownership: Ownership::Created,
        attributes: BTreeMap::from([
            ("name".to_string(), json!(id)),
            ("secret".to_string(), json!("s3cr3t")),
        ]),
        depends_on: vec![addr("base")],
        identity: Some(id.to_string()),
    }
}

fn put(name: &str, id: &str) -> JournalEntry {
    JournalEntry::Put {
        address: addr(name),
        resource: resource(id),
    }
}

fn intent(name: &str) -> JournalEntry {
    JournalEntry::Intent {
        address: addr(name),
        operation: Operation::Create,
        identity: Some(name.to_string()),
        id: None,
    }
}

/// Commits `state` as the next serial and returns what was committed.
async fn commit_next(b: &LocalBackend, mut state: State) -> State {
    state.serial += 1;
    b.commit(&state).await.unwrap();
    state
}

fn serial_of(path: &Path) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["serial"].as_u64().unwrap()
}

#[tokio::test]
async fn missing_state_loads_fresh_without_touching_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state.serial, 0);
    assert_eq!(
        (loaded.state.stack.as_str(), loaded.state.env.as_str()),
        ("demo", "dev")
    );
    assert!(loaded.state.resources.is_empty());
    assert_eq!(loaded.replayed, 0);
    assert!(loaded.pending.is_empty());
    assert_eq!(loaded.state.lineage.len(), 32);
    assert!(!tmp.path().join(".cairn").exists());
    assert!(b.location().ends_with(".cairn/demo.dev.state.json"));
}

#[tokio::test]
async fn commit_then_load_round_trips_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let mut state = b.load().await.unwrap().state;
    state.resources.insert(addr("b"), resource("rb"));
    state.resources.insert(addr("a"), resource("ra"));
    state.outputs.insert("url".into(), json!("https://x"));
    let committed = commit_next(&b, state).await;
    assert_eq!(committed.serial, 1);

    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.state, committed);
    assert_eq!(loaded.replayed, 0);

    // Pretty, sorted JSON: the same state gives the same bytes.
    let text = std::fs::read_to_string(b.state_path()).unwrap();
    assert!(text.contains("\n  \"lineage\""), "{text}");
    assert!(text.find("sim_role.a").unwrap() < text.find("sim_role.b").unwrap());
    let tmp2 = tempfile::tempdir().unwrap();
    backend(tmp2.path()).commit(&committed).await.unwrap();
    let text2 = std::fs::read_to_string(backend(tmp2.path()).state_path()).unwrap();
    assert_eq!(text, text2);
}

#[tokio::test]
async fn serial_must_follow_the_committed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let fresh = b.load().await.unwrap().state;

    let mut skipped = fresh.clone();
    skipped.serial = 2;
    match b.commit(&skipped).await {
        Err(StateError::Conflict {
            expected: 1,
            found: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let one = commit_next(&b, fresh).await;
    // The same serial again: someone else committed in between.
    match b.commit(&one).await {
        Err(StateError::Conflict {
            expected: 0,
            found: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let two = commit_next(&b, one.clone()).await;
    assert_eq!(serial_of(b.state_path()), 2);

    // Lineage survives loads and commits; another lineage is refused.
    let loaded = backend(tmp.path()).load().await.unwrap().state;
    assert_eq!(loaded.lineage, one.lineage);
    assert_eq!(loaded.serial, 2);
    let mut other = two.clone();
    other.serial = 3;
    other.lineage = "another-history".into();
    assert!(matches!(
        b.commit(&other).await,
        Err(StateError::LineageMismatch { .. })
    ));
    assert_eq!(serial_of(b.state_path()), 2);
}

#[tokio::test]
async fn previous_state_is_kept_as_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let s1 = commit_next(&b, b.load().await.unwrap().state).await;
    assert!(!b.backup_path().exists());
    let mut s = s1.clone();
    s.resources.insert(addr("a"), resource("ra"));
    let s2 = commit_next(&b, s).await;
    assert_eq!(serial_of(b.backup_path()), 1);
    let _s3 = commit_next(&b, s2).await;
    assert_eq!(serial_of(b.backup_path()), 2);
    assert_eq!(serial_of(b.state_path()), 3);
    let bak: State = serde_json::from_slice(&std::fs::read(b.backup_path()).unwrap()).unwrap();
    assert!(bak.resources.contains_key(&addr("a")));
}

#[tokio::test]
async fn journal_is_replayed_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let committed = {
        let b = backend(tmp.path());
        let mut s = b.load().await.unwrap().state;
        s.resources.insert(addr("gone"), resource("rg"));
        let s = commit_next(&b, s).await;
        b.append(&[intent("a"), put("a", "ra-1")]).await.unwrap();
        b.append(&[JournalEntry::Remove {
            address: addr("gone"),
        }])
        .await
        .unwrap();
        b.append(&[intent("b")]).await.unwrap();
        b.append(&[JournalEntry::Outputs {
            outputs: BTreeMap::from([("k".to_string(), json!(1))]),
        }])
        .await
        .unwrap();
        s
        // Dropped without commit: the run died.
    };
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.replayed, 5);
    assert_eq!(loaded.state.serial, committed.serial);
    assert_eq!(loaded.state.lineage, committed.lineage);
    assert_eq!(
        loaded.state.resources.get(&addr("a")),
        Some(&resource("ra-1"))
    );
    assert!(!loaded.state.resources.contains_key(&addr("gone")));
    assert_eq!(loaded.state.outputs.get("k"), Some(&json!(1)));
    assert_eq!(loaded.pending.len(), 1);
    assert_eq!(loaded.pending[0].address, addr("b"));
    assert_eq!(loaded.pending[0].operation, Operation::Create);
    assert_eq!(loaded.pending[0].identity.as_deref(), Some("b"));

    // The next run continues: a commit folds the journal in and empties it.
    let b = backend(tmp.path());
    let state = b.load().await.unwrap().state;
    b.append(&[put("b", "rb")]).await.unwrap();
    let mut next = state.clone();
    next.resources.insert(addr("b"), resource("rb"));
    let next = commit_next(&b, next).await;
    assert_eq!(std::fs::metadata(b.journal_path()).unwrap().len(), 0);
    let reloaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(reloaded.replayed, 0);
    assert_eq!(reloaded.state, next);
}

#[tokio::test]
async fn journal_before_the_first_commit_keeps_the_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let lineage = {
        let b = backend(tmp.path());
        let s = b.load().await.unwrap().state;
        b.append(&[put("a", "ra")]).await.unwrap();
        s.lineage
    };
    let b = backend(tmp.path());
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.replayed, 1);
    assert_eq!(loaded.state.lineage, lineage);
    assert_eq!(loaded.state.serial, 0);
    commit_next(&b, loaded.state).await;
    let again = backend(tmp.path()).load().await.unwrap();
    assert_eq!(again.state.lineage, lineage);
    assert!(again.state.resources.contains_key(&addr("a")));
}

#[tokio::test]
async fn torn_last_line_is_ignored_and_cut_before_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let s = b.load().await.unwrap().state;
    commit_next(&b, s).await;
    b.append(&[put("a", "ra"), put("b", "rb")]).await.unwrap();
    drop(b);
    let journal = backend(tmp.path()).journal_path().to_path_buf();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(br#"{"kind":"put","address":"sim_role.c","reso"#);
    std::fs::write(&journal, &bytes).unwrap();

    let b = backend(tmp.path());
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.replayed, 2);
    assert!(!loaded.state.resources.contains_key(&addr("c")));

    // Appending after a torn tail cuts it first, so the journal stays valid.
    b.append(&[put("d", "rd")]).await.unwrap();
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.replayed, 3);
    assert!(loaded.state.resources.contains_key(&addr("d")));
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains("sim_role.c"), "{text}");
}

#[tokio::test]
async fn corrupt_middle_line_is_an_error_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    b.load().await.unwrap();
    b.append(&[put("a", "ra"), put("b", "rb"), put("c", "rc")])
        .await
        .unwrap();
    let journal = b.journal_path().to_path_buf();
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header and three entries");
    lines[2] = "{\"kind\":\"put\",\"address\":12}";
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    match backend(tmp.path()).load().await {
        Err(StateError::Corrupt { location, message }) => {
            assert!(location.ends_with("demo.dev.journal:3"), "{location}");
            assert!(message.contains("bad journal line"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Appending refuses to build on a corrupt journal too.
    assert!(matches!(
        backend(tmp.path()).append(&[put("d", "rd")]).await,
        Err(StateError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn stale_journal_after_a_crash_between_rename_and_truncate_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let s1 = commit_next(&b, b.load().await.unwrap().state).await;
    let entries = [intent("a"), put("a", "ra"), intent("b")];
    b.append(&entries).await.unwrap();
    let journal_bytes = std::fs::read(b.journal_path()).unwrap();
    let mut s = s1.clone();
    for e in &entries {
        s.apply_entry(e);
    }
    let s2 = commit_next(&b, s).await;
    drop(b);
    // The crash: the state was replaced but the journal never truncated.
    let b = backend(tmp.path());
    std::fs::write(b.journal_path(), &journal_bytes).unwrap();
    // And a temp file from an interrupted earlier write lies around.
    std::fs::write(b.state_path().with_extension("json.tmp"), b"{garbage").unwrap();

    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.replayed, 0, "the journal is older than the state");
    assert!(loaded.pending.is_empty(), "{:?}", loaded.pending);
    assert_eq!(loaded.state, s2);

    // New appends start a fresh journal on top of serial 2.
    b.append(&[put("c", "rc")]).await.unwrap();
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.replayed, 1);
    assert!(loaded.pending.is_empty());
    assert!(loaded.state.resources.contains_key(&addr("c")));
    let s3 = commit_next(&b, loaded.state).await;
    assert_eq!(backend(tmp.path()).load().await.unwrap().state, s3);
}

#[tokio::test]
async fn journal_of_another_history_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let s = b.load().await.unwrap().state;
    commit_next(&b, s).await;
    b.append(&[put("a", "ra")]).await.unwrap();
    drop(b);
    // The state file is replaced by one of another lineage.
    let b = backend(tmp.path());
    let mut other = State::new("demo", "dev");
    other.serial = 1;
    std::fs::write(b.state_path(), serde_json::to_vec(&other).unwrap()).unwrap();
    match b.load().await {
        Err(StateError::Corrupt { location, message }) => {
            assert!(location.ends_with("demo.dev.journal"), "{location}");
            assert!(message.contains("lineage"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn state_of_another_stack_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let mut wrong = State::new("other", "prod");
    wrong.serial = 1;
    match b.commit(&wrong).await {
        Err(StateError::WrongStack {
            found_stack,
            found_env,
            stack,
            env,
            ..
        }) => assert_eq!(
            (found_stack, found_env, stack, env),
            ("other".into(), "prod".into(), "demo".into(), "dev".into())
        ),
        other => panic!("{other:?}"),
    }
    std::fs::create_dir_all(tmp.path().join(".cairn")).unwrap();
    std::fs::write(b.state_path(), serde_json::to_vec(&wrong).unwrap()).unwrap();
    assert!(matches!(b.load().await, Err(StateError::WrongStack { .. })));
    std::fs::write(b.state_path(), b"{\"serial\": 1,").unwrap();
    assert!(matches!(b.load().await, Err(StateError::Corrupt { .. })));
}

#[tokio::test]
async fn files_holding_state_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    let s = commit_next(&b, b.load().await.unwrap().state).await;
    commit_next(&b, s).await;
    b.append(&[put("a", "ra")]).await.unwrap();
    b.lock(
        &cairn::state::LockInfo::new("apply"),
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    for path in [
        b.state_path(),
        b.backup_path(),
        b.journal_path(),
        b.lock_path(),
    ] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let dir_mode = std::fs::metadata(tmp.path().join(".cairn"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0);
}

/// `tasks` concurrent callers each append `per_task` records; the number of
/// syncs must be far below the number of appends.
async fn group_commit(tasks: usize, per_task: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let b = Arc::new(backend(tmp.path()));
    b.load().await.unwrap();

    // Baseline: one caller at a time pays one fsync per append.
    let start = Instant::now();
    for i in 0..200 {
        b.append(&[put(&format!("seq{i}"), "r")]).await.unwrap();
    }
    let sequential = start.elapsed();
    assert_eq!(b.sync_count(), 200);

    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let b = Arc::clone(&b);
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                b.append(&[put(&format!("t{t}_{i}"), "r")]).await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let grouped = start.elapsed();
    let appends = (tasks * per_task) as u64;
    let syncs = b.sync_count() - 200;
    eprintln!(
        "group commit: {appends} appends from {tasks} tasks in {grouped:?} with {syncs} syncs; \
         200 sequential appends took {sequential:?} (~{:?} for {appends})",
        sequential * (appends as u32) / 200
    );
    assert!(syncs * 4 <= appends, "{syncs} syncs for {appends} appends");

    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.replayed, 200 + tasks * per_task);
    assert_eq!(loaded.state.resources.len(), 200 + tasks * per_task);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_16_tasks_are_group_committed() {
    group_commit(16, 625).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_64_tasks_are_group_committed() {
    group_commit(64, 157).await;
}
