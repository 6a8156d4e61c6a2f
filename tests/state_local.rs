//! The local state backend against real files: commit/load round trips,
//! serials and lineage, backups, journal replay after crashes, torn and
//! corrupt journals, pending intents, file modes, group commit; commit
//! markers, compaction and the crashes around them.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        attributes: cairn::model::Attrs::from([
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

    // One resource per line, sorted: the same state gives the same bytes.
    let text = std::fs::read_to_string(b.state_path()).unwrap();
    assert!(
        text.starts_with("{\"format_version\":1,\"lineage\""),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
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
    assert!(!b.journal_path().exists());
    assert!(b.journal_backup_path().exists());
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

// ---------------------------------------------------------------- commit markers
//
// A backend that holds the lock keeps the state it loaded and commits by
// appending the difference and a commit marker to the journal; the state
// file is rewritten (compacted) only when the journal has outgrown it.

/// A backend holding the lock, as `apply` uses it.
async fn locked(dir: &Path) -> LocalBackend {
    let b = backend(dir);
    b.lock(&cairn::state::LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    b
}

/// One run as apply makes it: lock, load, journal a put per name (intent
/// then outcome), commit the next serial. Returns the committed state.
async fn run_once(dir: &Path, names: &[&str], id: &str) -> State {
    let b = locked(dir).await;
    let mut state = b.load().await.unwrap().state;
    for name in names {
        let entries = [intent(name), put(name, id)];
        b.append(&entries).await.unwrap();
        for e in &entries {
            state.apply_entry(e);
        }
    }
    let state = commit_next(&b, state).await;
    b.unlock().await.unwrap();
    state
}

fn journal_lines(b: &LocalBackend) -> Vec<String> {
    std::fs::read_to_string(b.journal_path())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_commit_appends_a_marker_and_reloads_without_a_state_file() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = run_once(tmp.path(), &["a", "b"], "r1").await;
    let b = backend(tmp.path());
    assert!(!b.state_path().exists(), "no compaction yet: no state file");
    assert_eq!(b.compactions(), 0);
    let lines = journal_lines(&b);
    assert_eq!(lines.last().map(String::as_str), Some(r#"{"commit":1}"#));
    assert_eq!(lines[1], r#"{"create":"sim_role.a","identity":"a"}"#);
    assert!(
        lines[2].starts_with(r#"{"put":{"sim_role.a":{"id":"r1","#),
        "{}",
        lines[2]
    );

    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state, s1);
    assert_eq!(loaded.replayed, 0, "committed records are no tail");
    assert!(loaded.pending.is_empty());

    // A second run: its marker follows the first; the state file still
    // does not exist, and load sees the second commit.
    let s2 = run_once(tmp.path(), &["a"], "r2").await;
    assert_eq!(s2.serial, 2);
    assert!(!b.state_path().exists());
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.state, s2);
    assert_eq!(loaded.state.resources[&addr("a")].id, "r2");
    assert_eq!(loaded.replayed, 0);
}

#[tokio::test]
async fn placed_records_come_before_a_commit_sent_while_they_sync() {
    let tmp = tempfile::tempdir().unwrap();
    run_once(tmp.path(), &["a"], "r1").await;
    let b = locked(tmp.path()).await;
    let mut state = b.load().await.unwrap().state;
    let entries = [intent("b"), put("b", "r2")];
    // Placed, not awaited: the commit is sent while they may still sync.
    let placed = b.place(&entries).expect("the local backend places records");
    for e in &entries {
        state.apply_entry(e);
    }
    let state = commit_next(&b, state).await;
    placed.await.unwrap();
    b.unlock().await.unwrap();

    let lines = journal_lines(&b);
    let n = lines.len();
    assert_eq!(lines[n - 1], r#"{"commit":2}"#);
    assert_eq!(lines[n - 3], r#"{"create":"sim_role.b","identity":"b"}"#);
    assert!(
        lines[n - 2].starts_with(r#"{"put":{"sim_role.b":"#),
        "{}",
        lines[n - 2]
    );
    // The commit wrote no second copy of what was placed: the view had it.
    let about_b = lines.iter().filter(|l| l.contains(r#""sim_role.b""#));
    assert_eq!(about_b.count(), 2, "{lines:#?}");
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.state, state);
    assert_eq!(loaded.replayed, 0);
    assert!(loaded.pending.is_empty());
}

#[tokio::test]
async fn a_commit_records_changes_that_were_not_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = run_once(tmp.path(), &["a", "b", "c"], "r1").await;
    let b = locked(tmp.path()).await;
    let mut state = b.load().await.unwrap().state;
    assert_eq!(state, s1);
    // What apply does after the run: dependencies of unchanged resources,
    // never journaled; plus a removal and new outputs, also unjournaled.
    state
        .resources
        .get_mut(&addr("a"))
        .unwrap()
        .depends_on
        .push(addr("z"));
    state.resources.remove(&addr("b"));
    state.outputs.insert("url".into(), json!("https://x"));
    let s2 = commit_next(&b, state).await;
    b.unlock().await.unwrap();
    assert_eq!(b.compactions(), 0);
    let tail: Vec<String> = journal_lines(&b).into_iter().rev().take(4).collect();
    assert_eq!(
        tail,
        [
            r#"{"commit":2}"#,
            r#"{"outputs":{"url":"https://x"}}"#,
            r#"{"remove":"sim_role.b"}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(tail[3].clone()))
        .collect::<Vec<_>>()
    );
    assert!(
        tail[3].starts_with(r#"{"put":{"sim_role.a":"#),
        "{}",
        tail[3]
    );
    assert_eq!(backend(tmp.path()).load().await.unwrap().state, s2);
}

#[tokio::test]
async fn a_torn_tail_after_a_commit_marker_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = run_once(tmp.path(), &["a"], "r1").await;
    let b = backend(tmp.path());
    let journal = b.journal_path().to_path_buf();
    let committed = std::fs::read(&journal).unwrap();

    // A run died while writing its first record after the marker.
    let mut bytes = committed.clone();
    bytes.extend_from_slice(br#"{"create":"sim_role.b","ident"#);
    std::fs::write(&journal, &bytes).unwrap();
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state, s1);
    assert_eq!(loaded.replayed, 0);

    // A run died after two durable records and a torn third: the two are
    // the uncommitted tail, replayed, the intent pending.
    let mut bytes = committed.clone();
    bytes.extend_from_slice(b"{\"create\":\"sim_role.b\",\"identity\":\"b\"}\n");
    bytes.extend_from_slice(
        b"{\"put\":{\"sim_role.c\":{\"id\":\"rc\",\"ownership\":\"created\",\"attributes\":{}}}}\n",
    );
    bytes.extend_from_slice(b"{\"commit\":2"); // a torn marker commits nothing
    std::fs::write(&journal, &bytes).unwrap();
    let b = locked(tmp.path()).await;
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state.serial, 1);
    assert_eq!(loaded.replayed, 2);
    assert_eq!(loaded.pending.len(), 1);
    assert_eq!(loaded.pending[0].address, addr("b"));
    assert!(loaded.state.resources.contains_key(&addr("c")));

    // The next run commits the tail: the torn bytes are cut first.
    let s2 = commit_next(&b, loaded.state).await;
    b.unlock().await.unwrap();
    let reloaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(reloaded.state, s2);
    assert_eq!(reloaded.replayed, 0);
    assert!(reloaded.pending.is_empty(), "a commit closes the tail");
    let lines = journal_lines(&b);
    assert_eq!(lines.last().map(String::as_str), Some(r#"{"commit":2}"#));
    assert_eq!(lines.iter().filter(|l| l.contains("commit")).count(), 2);
}

#[tokio::test]
async fn a_commit_marker_out_of_sequence_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    run_once(tmp.path(), &["a"], "r1").await;
    let b = backend(tmp.path());
    let mut text = std::fs::read_to_string(b.journal_path()).unwrap();
    text.push_str("{\"commit\":5}\n{\"done\":\"sim_role.a\"}\n");
    std::fs::write(b.journal_path(), text).unwrap();
    match b.load().await {
        Err(StateError::Corrupt { location, message }) => {
            assert!(location.ends_with("demo.dev.journal:5"), "{location}");
            assert!(message.contains("serial 5 follows serial 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn many_runs_then_a_compaction_keeps_the_state_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut last = run_once(tmp.path(), &all, "v0").await;
    let b = backend(tmp.path());
    let mut runs = 1;
    // Each run updates two resources; the journal grows until a commit
    // compacts it. Each run is a new backend, as a new process would be.
    loop {
        let before = backend(tmp.path()).load().await.unwrap().state;
        assert_eq!(before, last, "every run sees the last commit");
        let version = format!("v{runs}");
        let pair = [all[runs % 20], all[(runs + 7) % 20]];
        let b = locked(tmp.path()).await;
        b.load().await.unwrap();
        let mut state = before.clone();
        for name in pair {
            let entries = [intent(name), put(name, &version)];
            b.append(&entries).await.unwrap();
            for e in &entries {
                state.apply_entry(e);
            }
        }
        last = commit_next(&b, state).await;
        b.unlock().await.unwrap();
        runs += 1;
        if b.compactions() > 0 {
            break;
        }
        assert!(runs < 200, "no compaction after {runs} runs");
        assert!(!b.state_path().exists() || serial_of(b.state_path()) < last.serial);
    }
    // A snapshot finished: the state file is the snapshot (its serial the
    // one it began at), one segment continues it, the one before went
    // with the backup, and a load returns the committed state.
    let snapshot_serial = serial_of(b.state_path());
    assert!(snapshot_serial < last.serial);
    assert!(!b.snapshot_path().exists());
    assert!(b.journal_backup_path().exists());
    let present: Vec<_> = b
        .journal_paths()
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    assert_eq!(present.len(), 1, "{present:?}");
    let first = std::fs::read_to_string(present[0]).unwrap();
    assert!(
        first.starts_with(&format!(
            "{{\"cairn_journal\":2,\"lineage\":\"{}\",\"base_serial\":{snapshot_serial}}}",
            last.lineage
        )),
        "{first}"
    );
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.state, last);
    assert_eq!(loaded.replayed, 0);
    assert!(
        runs > 3,
        "compaction waits for the journal to outgrow the state ({runs} runs)"
    );

    // And the next run goes on with markers on top of the new state file.
    let next = run_once(tmp.path(), &["n1"], "after").await;
    assert_eq!(serial_of(b.state_path()), snapshot_serial);
    assert_eq!(backend(tmp.path()).load().await.unwrap().state, next);
}

#[tokio::test]
async fn a_crash_between_compaction_rename_and_truncation_leaves_a_stale_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = run_once(tmp.path(), &["a", "b"], "r1").await;
    let s2 = run_once(tmp.path(), &["a"], "r2").await;
    let b = backend(tmp.path());
    let journal = std::fs::read(b.journal_path()).unwrap();
    assert!(journal.ends_with(b"{\"commit\":2}\n"));
    // An unlocked commit always compacts: the state file now holds serial
    // 3 and the journal is empty...
    let mut s3 = s2.clone();
    s3.resources.remove(&addr("b"));
    let s3 = commit_next(&b, s3).await;
    assert_eq!(serial_of(b.state_path()), 3);
    assert!(!b.journal_path().exists());
    // ...unless the process died before retiring it: the journal with
    // both commits (base serial 0) is stale and ignored.
    std::fs::write(b.journal_path(), &journal).unwrap();
    let loaded = backend(tmp.path()).load().await.unwrap();
    assert_eq!(loaded.state, s3);
    assert_eq!(loaded.replayed, 0);
    assert!(!loaded.state.resources.contains_key(&addr("b")));
    assert_ne!(loaded.state, s1);
    // The next run's marker starts a fresh journal on top of serial 3.
    let s4 = run_once(tmp.path(), &["c"], "r4").await;
    let lines = journal_lines(&b);
    assert!(lines[0].contains("\"base_serial\":3"), "{}", lines[0]);
    assert_eq!(backend(tmp.path()).load().await.unwrap().state, s4);
}

#[tokio::test]
async fn a_writer_that_bypassed_the_lock_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = run_once(tmp.path(), &["a"], "r1").await;
    let holder = locked(tmp.path()).await;
    let loaded = holder.load().await.unwrap().state;
    // Someone else commits serial 2 without the lock.
    let intruder = backend(tmp.path());
    commit_next(&intruder, s1.clone()).await;
    match holder
        .commit(&State {
            serial: loaded.serial + 1,
            ..loaded
        })
        .await
    {
        Err(StateError::Conflict {
            expected: 1,
            found: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(backend(tmp.path()).load().await.unwrap().state.serial, 2);
}

#[tokio::test]
async fn a_journal_in_format_1_is_still_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let s1 = commit_next(
        &backend(tmp.path()),
        backend(tmp.path()).load().await.unwrap().state,
    )
    .await;
    let b = backend(tmp.path());
    let record = serde_json::to_string(&resource("ra")).unwrap();
    let text = format!(
        "{{\"cairn_journal\":1,\"lineage\":\"{}\",\"base_serial\":1}}\n\
         {{\"kind\":\"intent\",\"address\":\"sim_role.a\",\"operation\":\"create\",\"identity\":\"a\"}}\n\
         {{\"kind\":\"put\",\"address\":\"sim_role.a\",\"resource\":{record}}}\n\
         {{\"kind\":\"intent\",\"address\":\"sim_role.b\",\"operation\":\"create\",\"identity\":\"b\"}}\n",
        s1.lineage
    );
    std::fs::write(b.journal_path(), text).unwrap();
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.replayed, 3);
    assert_eq!(
        loaded.state.resources.get(&addr("a")),
        Some(&resource("ra"))
    );
    assert_eq!(loaded.pending.len(), 1);
    assert_eq!(loaded.pending[0].address, addr("b"));
}

#[tokio::test]
async fn prepare_opens_the_journal_ahead_only_for_the_lock_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = backend(tmp.path()).journal_path().to_path_buf();

    // A plan (no lock) prepares nothing: no file appears.
    let reader = backend(tmp.path());
    reader.load().await.unwrap();
    reader.prepare();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!journal.exists());

    // An apply (lock held) has the journal created in the background.
    let b = locked(tmp.path()).await;
    b.load().await.unwrap();
    b.prepare();
    let waited = Instant::now();
    while !journal.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "journal never created"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first append then writes the header with its records, in one sync.
    b.append(&[intent("a"), put("a", "r-a")]).await.unwrap();
    assert_eq!(b.sync_count(), 1);
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state.resources[&addr("a")].id, "r-a");
}
