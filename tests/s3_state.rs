//! The S3 state backend against a real moto server: commit/load round
//! trips, backups, journal replay after a crash, pending intents, stale and
//! foreign journals, group commit, `If-Match` conflicts, retried writes and
//! error texts. The lock is tested in `s3_state_lock.rs`.
#![cfg(feature = "aws")]

#[path = "support/s3_state.rs"]
mod s3;
mod support;

#[path = "support/sequence.rs"]
mod sequence;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::provider::Operation;
use cairn::state::{Backend, JournalEntry, LockInfo, ResourceState, S3Backend, State, StateError};
use s3::*;
use sequence::{Run, changed_bytes, step_run};
use serde_json::json;
use support::aws::server;

#[tokio::test]
async fn missing_state_loads_fresh_without_writing() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    assert_eq!(b.location(), format!("s3://{bucket}/{KEY}"));
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state.serial, 0);
    assert_eq!(loaded.state.stack, "demo");
    assert!(loaded.state.resources.is_empty() && loaded.replayed == 0);
    assert!(keys(&bucket).await.is_empty());
}

#[tokio::test]
async fn commit_then_load_round_trips_keeps_a_backup_and_empties_the_journal() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    b.append(&[intent("a"), put("a", "r-a")]).await.unwrap();
    let appended = get(&bucket, &b.journal_key(0)).await.len() as u64;
    state.apply_entry(&put("a", "r-a"));
    // No lock, so no view: the commit (journal object 1) writes the whole
    // state as a snapshot of one part, then the manifest.
    let first = commit_next(&b, state).await;
    let part = b.part_key(2, 0);
    assert_eq!(
        keys(&bucket).await,
        vec![KEY.to_string(), part.clone()],
        "journal deleted"
    );
    assert_eq!(b.compactions(), 1);

    let mut state = backend(&bucket).await.load().await.unwrap().state;
    assert_eq!(state, first);
    // The part is a state file (one resource per line); the state object
    // names it.
    let in_part: State = serde_json::from_slice(&get(&bucket, &part).await).unwrap();
    assert_eq!(in_part, first);
    let manifest = manifest_of(&bucket).await;
    assert_eq!(
        (
            &manifest["serial"],
            &manifest["generation"],
            &manifest["parts"]
        ),
        (&json!(1), &json!(2), &json!(1))
    );
    assert_eq!(
        b.bytes_written(),
        appended
            + commit_object(&first.lineage, 0, 1).len() as u64
            + get(&bucket, &part).await.len() as u64
            + get(&bucket, KEY).await.len() as u64,
        "every byte counted"
    );

    // A second backend continues the history; the first manifest is the
    // backup, and its part is kept.
    let b2 = backend(&bucket).await;
    b2.load().await.unwrap();
    state.apply_entry(&put("b", "r-b"));
    let second = commit_next(&b2, state).await;
    assert_eq!(serial_of(&get(&bucket, KEY).await), 2);
    assert_eq!(serial_of(&get(&bucket, &b2.backup_key()).await), 1);
    assert!(keys(&bucket).await.contains(&part));
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.state, second);
    assert_eq!(loaded.state.resources.len(), 2);
    // A third drops the first generation.
    let b3 = backend(&bucket).await;
    let state = b3.load().await.unwrap().state;
    commit_next(&b3, state).await;
    assert!(!keys(&bucket).await.contains(&part));
    assert_eq!(serial_of(&get(&bucket, &b3.backup_key()).await), 2);
}

#[tokio::test]
async fn serial_must_follow_the_committed_one() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    state.serial = 2;
    match b.commit(&state).await {
        Err(StateError::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (1, 0)),
        other => panic!("{other:?}"),
    }
    state.serial = 1;
    b.commit(&state).await.unwrap();
    // Same serial again: refused, the object keeps serial 1.
    assert!(matches!(
        b.commit(&state).await,
        Err(StateError::Conflict { found: 1, .. })
    ));
    // Another lineage: refused.
    let mut other = state.clone();
    other.serial = 2;
    other.lineage = "another".into();
    let b = backend(&bucket).await;
    b.load().await.unwrap();
    assert!(matches!(
        b.commit(&other).await,
        Err(StateError::LineageMismatch { .. })
    ));
}

#[tokio::test]
async fn journal_is_replayed_after_a_crash_with_pending_intents() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let state = b.load().await.unwrap().state;
    let base = commit_next(&b, state).await;
    b.load().await.unwrap();
    b.append(&[intent("a"), put("a", "r-a")]).await.unwrap();
    b.append(&[intent("b")]).await.unwrap();
    b.append(&[intent("c"), JournalEntry::Done { address: addr("c") }])
        .await
        .unwrap();
    // The runner vanishes: no commit, no unlock.
    drop(b);

    let b = backend(&bucket).await;
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.replayed, 5);
    assert_eq!(loaded.state.serial, 1);
    assert_eq!(loaded.state.lineage, base.lineage);
    assert_eq!(loaded.state.resources[&addr("a")].id, "r-a");
    let pending: Vec<_> = loaded
        .pending
        .iter()
        .map(|p| p.address.name.as_str())
        .collect();
    assert_eq!(pending, ["b"]);
    assert_eq!(loaded.pending[0].operation, Operation::Create);

    // The next run continues the journal after the surviving objects.
    b.append(&[put("b", "r-b")]).await.unwrap();
    let again = backend(&bucket).await.load().await.unwrap();
    assert_eq!(again.replayed, 6);
    assert!(again.pending.is_empty());
    commit_next(&b, again.state).await;
    let after = backend(&bucket).await.load().await.unwrap();
    assert_eq!((after.state.serial, after.replayed), (2, 0));
    assert_eq!(after.state.resources.len(), 2);
}

#[tokio::test]
async fn journal_before_the_first_commit_keeps_the_lineage() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let lineage = b.load().await.unwrap().state.lineage;
    b.append(&[put("a", "r-a")]).await.unwrap();
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.state.lineage, lineage);
    assert_eq!((loaded.state.serial, loaded.replayed), (0, 1));
    // Committing the replayed state as serial 1 works from a new instance.
    let b2 = backend(&bucket).await;
    let state = b2.load().await.unwrap().state;
    commit_next(&b2, state).await;
}

#[tokio::test]
async fn stale_journal_after_a_crash_between_commit_and_cleanup_is_ignored() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    b.append(&[put("a", "r-a")]).await.unwrap();
    let journal_key = keys(&bucket)
        .await
        .into_iter()
        .find(|k| k.starts_with(&b.journal_prefix()))
        .unwrap();
    let journal = get(&bucket, &journal_key).await;
    state.apply_entry(&put("a", "r-a"));
    commit_next(&b, state).await;
    // As if the cleanup never ran: the old journal object is back.
    put_raw(&bucket, &journal_key, journal).await;
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!((loaded.state.serial, loaded.replayed), (1, 0));
    // The next commit removes it.
    let b = backend(&bucket).await;
    let state = b.load().await.unwrap().state;
    commit_next(&b, state).await;
    assert!(!keys(&bucket).await.contains(&journal_key));
}

#[tokio::test]
async fn journal_of_another_history_is_reported() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let state = b.load().await.unwrap().state;
    commit_next(&b, state).await;
    // The commit (journal object 0) wrote a snapshot of generation 1: the
    // next journal object continues it.
    let key = b.journal_key(1);
    put_raw(
        &bucket,
        &key,
        b"{\"cairn_journal\":1,\"lineage\":\"other\",\"base_serial\":1}\n".to_vec(),
    )
    .await;
    match backend(&bucket).await.load().await {
        Err(StateError::Corrupt { location, message }) => {
            assert_eq!(location, format!("s3://{bucket}/{key}"));
            assert!(message.contains("lineage other"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn state_of_another_stack_is_refused() {
    let bucket = bucket().await;
    let b = backend_for(&bucket, "other").await;
    let state = b.load().await.unwrap().state;
    commit_next(&b, state).await;
    let err = backend(&bucket).await.load().await.unwrap_err();
    assert!(matches!(err, StateError::WrongStack { .. }), "{err:?}");
    assert!(
        err.to_string().contains("belongs to stack `other`"),
        "{err}"
    );
}

/// Two runs both read serial N; the first commits N+1; the second's commit
/// is refused by S3 (`If-Match`) and nothing of the first is lost.
#[tokio::test]
async fn concurrent_commit_is_a_conflict_not_a_lost_update() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let state = b.load().await.unwrap().state;
    commit_next(&b, state).await;

    let first = backend(&bucket).await;
    let second = backend(&bucket).await;
    let mut s1 = first.load().await.unwrap().state;
    let mut s2 = second.load().await.unwrap().state;
    s1.apply_entry(&put("one", "r-1"));
    s2.apply_entry(&put("two", "r-2"));
    let s1 = commit_next(&first, s1).await;
    s2.serial += 1;
    match second.commit(&s2).await {
        Err(StateError::Conflict {
            location,
            expected,
            found,
        }) => {
            assert_eq!(location, format!("s3://{bucket}/{KEY}"));
            assert_eq!((expected, found), (1, 2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(backend(&bucket).await.load().await.unwrap().state, s1);

    // A change that keeps the serial (someone edited the object by hand) is
    // caught by the ETag, not by the serial.
    let third = backend(&bucket).await;
    let mut s3 = third.load().await.unwrap().state;
    let mut edited = s1.clone();
    edited.outputs.insert("by_hand".into(), json!(true));
    put_raw(&bucket, KEY, serde_json::to_vec_pretty(&edited).unwrap()).await;
    s3.serial += 1;
    assert!(matches!(
        third.commit(&s3).await,
        Err(StateError::Conflict { found: 2, .. })
    ));
}

/// 16 tasks append concurrently: far fewer journal objects than appends,
/// and every record is replayed by a new instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_16_tasks_are_group_committed() {
    let bucket = bucket().await;
    let b = Arc::new(backend(&bucket).await);
    b.load().await.unwrap();
    let (tasks, per_task) = (16, 20);
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
    let appends = (tasks * per_task) as u64;
    let puts = b.journal_puts();
    eprintln!(
        "S3 group commit: {appends} appends from {tasks} tasks in {:?} with {puts} PUTs",
        start.elapsed()
    );
    assert!(puts * 4 <= appends, "{puts} PUTs for {appends} appends");
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.replayed, tasks * per_task);
    assert_eq!(loaded.state.resources.len(), tasks * per_task);
}

#[tokio::test]
async fn missing_bucket_is_named_with_its_region() {
    server();
    let b = backend("no-such-state-bucket").await;
    for err in [
        b.load().await.unwrap_err(),
        b.lock(&LockInfo::new("apply"), Duration::ZERO)
            .await
            .unwrap_err(),
        b.append(&[put("a", "r")]).await.unwrap_err(),
    ] {
        assert!(matches!(err, StateError::Remote { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "state bucket `no-such-state-bucket` does not exist (region us-east-1)"
        );
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_an_io_error_naming_the_location() {
    let b = S3Backend::connect(
        "b",
        "k.json",
        Some("us-east-1"),
        // A port nothing listens on.
        Some("http://127.0.0.1:9"),
        "demo",
        "dev",
    )
    .await
    .unwrap();
    let err = b.load().await.unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err:?}");
    assert!(err.to_string().starts_with("read s3://b/k.json: "), "{err}");
}

#[tokio::test]
async fn an_object_key_is_required() {
    for (bucket, key) in [("", "k"), ("b", ""), ("b", "dir/")] {
        let err = S3Backend::connect(bucket, key, Some("us-east-1"), None, "demo", "dev")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("needs a bucket and an object key"),
            "{err}"
        );
    }
}

/// A conditional write whose answer is lost is retried by the SDK and the
/// retry refused (the first attempt landed). Simulated by writing the very
/// object first: the backend recognises its own bytes as written, and still
/// refuses anything else.
#[tokio::test]
async fn a_refused_retry_of_our_own_write_counts_as_written() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    let journal_key = b.journal_key(0);
    let header = format!(
        "{{\"cairn_journal\":2,\"lineage\":\"{}\",\"base_serial\":0}}\n",
        state.lineage
    );
    let entry = put("a", "r-a");
    // The journal's line format 2: `{"put":{ADDRESS:RECORD}}`.
    let JournalEntry::Put { address, resource } = &entry else {
        unreachable!()
    };
    let line = format!(
        "{{\"put\":{{{}:{}}}}}",
        serde_json::to_string(&address.to_string()).unwrap(),
        serde_json::to_string(resource).unwrap()
    );
    let ours = format!("{header}{line}\n");
    put_raw(&bucket, &journal_key, ours.clone().into_bytes()).await;
    b.append(std::slice::from_ref(&entry)).await.unwrap();
    assert_eq!(b.journal_puts(), 1);
    // The next number holds someone else's records: refused.
    let next_key = b.journal_key(1);
    put_raw(&bucket, &next_key, format!("{header}\n").into_bytes()).await;
    let err = b.append(&[put("b", "r-b")]).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    raw()
        .await
        .delete_object()
        .bucket(&bucket)
        .key(&next_key)
        .send()
        .await
        .unwrap();

    // A snapshot part: our exact bytes are our own write. A commit without
    // a view (no lock) writes the whole state as part 0 of generation 2,
    // after its journal object 1; the part is there already.
    state.apply_entry(&entry);
    state.serial = 1;
    let part = b.part_key(2, 0);
    let lines = line_format(&state);
    put_raw(&bucket, &part, lines.clone()).await;
    b.commit(&state).await.unwrap();
    assert_eq!(b.compactions(), 1);
    assert_eq!(get(&bucket, &part).await, lines);
    assert_eq!(keys(&bucket).await, vec![KEY.to_string(), part.clone()]);
    assert_eq!(
        b.bytes_written(),
        (ours.len() + commit_object(&state.lineage, 0, 1).len() + lines.len()) as u64
            + get(&bucket, KEY).await.len() as u64
    );
    assert_eq!(backend(&bucket).await.load().await.unwrap().state, state);
    // Anything else in the state object since it was read: a conflict.
    let b = backend(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    state.serial = 2;
    let mut other = state.clone();
    other.outputs.insert("x".into(), json!(1));
    put_raw(&bucket, KEY, serde_json::to_vec_pretty(&other).unwrap()).await;
    assert!(matches!(
        b.commit(&state).await,
        Err(StateError::Conflict { .. })
    ));

    // The lock: a lock object with our id is ours.
    let info = LockInfo::new("apply");
    put_raw(&bucket, &b.lock_key(), serde_json::to_vec(&info).unwrap()).await;
    b.lock(&info, Duration::ZERO).await.unwrap();
    b.unlock().await.unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), None);
}

/// A resource of about 400 bytes, like a real one.
fn sized(id: &str, version: u32) -> ResourceState {
    let mut r = resource(id);
    r.attributes.insert(
        "policy".into(),
        json!(format!("{version:04}{}", "p".repeat(300))),
    );
    r
}

/// `{ADDRESS: RECORD}` compact: the size of a changed record.
fn record_len(name: &str, r: &ResourceState) -> u64 {
    serde_json::to_vec(&json!({ addr(name).to_string(): r }))
        .unwrap()
        .len() as u64
}

/// Sizes of the journal objects, by key.
async fn journal_sizes(bucket: &str, b: &S3Backend) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for key in keys(bucket).await {
        if key.starts_with(&b.journal_prefix()) {
            let len = get(bucket, &key).await.len() as u64;
            out.push((key, len));
        }
    }
    out
}

/// A state of `n` sized resources committed as serial 1 (a compaction:
/// no lock, so no view).
async fn committed_state(bucket: &str, n: usize) -> State {
    let b = backend(bucket).await;
    let mut state = b.load().await.unwrap().state;
    for i in 0..n {
        state
            .resources
            .insert(addr(&format!("r{i}")), sized(&format!("r{i}"), 0));
    }
    let state = commit_next(&b, state).await;
    assert_eq!(b.compactions(), 1);
    state
}

/// The lock, taken on `b` (so that it keeps its view).
async fn locked(bucket: &str) -> (S3Backend, LockInfo) {
    let b = backend(bucket).await;
    let info = LockInfo::new("apply");
    b.lock(&info, Duration::ZERO).await.unwrap();
    (b, info)
}

/// One operation as an apply journals it: intent, then the new record.
async fn update(b: &S3Backend, state: &mut State, name: &str, version: u32) -> u64 {
    let record = sized(name, version);
    b.append(&[JournalEntry::Intent {
        address: addr(name),
        operation: Operation::Update,
        identity: None,
        id: Some(name.to_string()),
    }])
    .await
    .unwrap();
    let put = JournalEntry::Put {
        address: addr(name),
        resource: record.clone(),
    };
    b.append(std::slice::from_ref(&put)).await.unwrap();
    state.apply_entry(&put);
    record_len(name, &record)
}

#[tokio::test]
async fn an_ordinary_commit_writes_a_journal_marker_not_the_state_object() {
    let bucket = bucket().await;
    committed_state(&bucket, 200).await;
    let state_object = get(&bucket, KEY).await;
    let (b, _) = locked(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    let changed = update(&b, &mut state, "r7", 1).await;
    // Not journaled: the dependencies an apply refreshes at the end.
    state
        .resources
        .get_mut(&addr("r8"))
        .unwrap()
        .depends_on
        .push(addr("r7"));
    let changed = changed + record_len("r8", &state.resources[&addr("r8")]);
    let state = commit_next(&b, state).await;
    b.unlock().await.unwrap();

    assert_eq!(
        get(&bucket, KEY).await,
        state_object,
        "state object untouched"
    );
    assert_eq!(b.compactions(), 0);
    let journal = journal_sizes(&bucket, &b).await;
    let in_bucket: u64 = journal.iter().map(|(_, len)| len).sum();
    assert_eq!(b.bytes_written(), in_bucket, "{journal:?}");
    eprintln!(
        "journal commit: {} bytes written for {changed} bytes of changed records; state object {} bytes",
        b.bytes_written(),
        state_object.len()
    );
    assert!(
        b.bytes_written() <= 2 * changed,
        "{} bytes written for {changed} bytes of changed records (state {} bytes)",
        b.bytes_written(),
        state_object.len()
    );
    // The last object closes the run with its commit marker.
    let (last, _) = journal.last().unwrap();
    assert!(
        String::from_utf8(get(&bucket, last).await)
            .unwrap()
            .ends_with("{\"commit\":2}\n")
    );
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.state, state);
    assert_eq!((loaded.replayed, loaded.pending.len()), (0, 0));
}

/// The snapshot generations in the bucket, each with its part count.
async fn generations(bucket: &str, b: &S3Backend) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for key in keys(bucket).await {
        if let Some(rest) = key.strip_prefix(&b.snapshot_prefix()) {
            let generation = rest.split('/').next().unwrap().parse().unwrap();
            *out.entry(generation).or_insert(0) += 1;
        }
    }
    out
}

/// The numbers of the journal objects in the bucket.
async fn journal_numbers(bucket: &str, b: &S3Backend) -> Vec<u64> {
    keys(bucket)
        .await
        .iter()
        .filter_map(|k| k.strip_prefix(&b.journal_prefix()))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// One process holding the lock commits run after run: once the journal
/// holds twice the state, each commit writes a share of a snapshot (a
/// part) within its budget, and the one that writes the last part writes
/// the manifest; no commit writes more than twice its changed records.
#[tokio::test]
async fn snapshots_are_spread_over_the_commits_once_the_journal_outgrows_the_state() {
    let bucket = bucket().await;
    let first = committed_state(&bucket, 30).await;
    let (b, _) = locked(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    assert_eq!(state, first);
    // The manifests, one per finished snapshot.
    let mut manifests = vec![manifest_of(&bucket).await];
    let mut shares = 0;
    for version in 1..=40 {
        let written_before = b.bytes_written();
        let compactions_before = b.compactions();
        let parts_before: u64 = generations(&bucket, &b).await.values().sum();
        // Five records updated, their intents and outcomes each one batch.
        let names: Vec<String> = (0..5)
            .map(|i| format!("r{}", (version * 5 + i) % 30))
            .collect();
        let intents: Vec<JournalEntry> = names
            .iter()
            .map(|n| JournalEntry::Intent {
                address: addr(n),
                operation: Operation::Update,
                identity: None,
                id: Some(n.clone()),
            })
            .collect();
        b.append(&intents).await.unwrap();
        let mut changed = 0;
        let mut outcomes = Vec::new();
        for n in &names {
            let r = sized(n, version);
            changed += record_len(n, &r);
            outcomes.push(JournalEntry::Put {
                address: addr(n),
                resource: r,
            });
        }
        b.append(&outcomes).await.unwrap();
        outcomes.iter().for_each(|e| state.apply_entry(e));
        state = commit_next(&b, state).await;
        let written = b.bytes_written() - written_before;
        assert!(
            written <= 2 * changed,
            "commit {version}: {written} bytes for {changed} changed"
        );
        let after = backend(&bucket).await.load().await.unwrap();
        assert_eq!(after.state, state, "commit {version}");
        assert_eq!(after.replayed, 0);
        let generations = generations(&bucket, &b).await;
        if generations.values().sum::<u64>() > parts_before {
            shares += 1;
        }
        let manifest = manifest_of(&bucket).await;
        if b.compactions() > compactions_before {
            let previous = manifests.last().unwrap().clone();
            // The snapshot holds the state when it began, some commits ago.
            let serial = manifest["serial"].as_u64().unwrap();
            assert!(serial > previous["serial"].as_u64().unwrap());
            assert!(serial < state.serial, "spread over commits");
            assert!(manifest["parts"].as_u64().unwrap() > 1, "{manifest}");
            // The previous manifest is the backup; its parts are kept, and
            // nothing older.
            let backup: serde_json::Value =
                serde_json::from_slice(&get(&bucket, &b.backup_key()).await).unwrap();
            assert_eq!(backup, previous);
            let kept: Vec<u64> = generations.keys().copied().collect();
            let mut expected = vec![
                previous["generation"].as_u64().unwrap(),
                manifest["generation"].as_u64().unwrap(),
            ];
            expected.sort_unstable();
            assert_eq!(kept, expected);
            // The journal the snapshot holds is deleted.
            let generation = manifest["generation"].as_u64().unwrap();
            assert!(
                journal_numbers(&bucket, &b)
                    .await
                    .iter()
                    .all(|n| *n >= generation)
            );
            manifests.push(manifest);
        } else {
            assert_eq!(&manifest, manifests.last().unwrap());
        }
    }
    let serials: Vec<u64> = manifests
        .iter()
        .map(|m| m["serial"].as_u64().unwrap())
        .collect();
    eprintln!("snapshots of serials {serials:?}; {shares} commits wrote parts");
    assert!(
        manifests.len() >= 3,
        "two snapshots in 40 commits: {serials:?}"
    );
    assert!(shares > 2 * (manifests.len() - 1));
    b.unlock().await.unwrap();
}

#[tokio::test]
async fn a_killed_runs_tail_after_committed_segments_is_replayed() {
    let bucket = bucket().await;
    committed_state(&bucket, 3).await;
    let (b, info) = locked(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    for version in 1..=2 {
        update(&b, &mut state, "r0", version).await;
        state = commit_next(&b, state).await;
    }
    assert_eq!((state.serial, b.compactions()), (3, 0));
    // A third run's operations, then the runner vanishes: no commit.
    b.append(&[intent("c"), put("c", "r-c"), intent("d")])
        .await
        .unwrap();
    drop(b);

    let b = backend(&bucket).await;
    let loaded = b.load().await.unwrap();
    assert_eq!(loaded.state.serial, 3, "the committed segments");
    assert_eq!(loaded.replayed, 3, "the uncommitted tail");
    assert_eq!(
        loaded.state.resources[&addr("r0")],
        state.resources[&addr("r0")]
    );
    assert_eq!(loaded.state.resources[&addr("c")].id, "r-c");
    let pending: Vec<_> = loaded
        .pending
        .iter()
        .map(|p| p.address.name.as_str())
        .collect();
    assert_eq!(pending, ["d"]);

    // The next run takes the lock over and commits the tail.
    b.force_unlock(&info.id).await.unwrap();
    let (b, _) = locked(&bucket).await;
    let mut state = b.load().await.unwrap().state;
    state.apply_entry(&JournalEntry::Remove { address: addr("d") });
    b.append(&[JournalEntry::Done { address: addr("d") }])
        .await
        .unwrap();
    let state = commit_next(&b, state).await;
    b.unlock().await.unwrap();
    assert_eq!(b.compactions(), 0);
    let after = backend(&bucket).await.load().await.unwrap();
    assert_eq!((after.state.serial, after.replayed), (4, 0));
    assert!(after.pending.is_empty());
    assert_eq!(after.state, state);
}

/// Two writers that both hold a view of the same journal (the second took
/// the lock after it was force-unlocked under the first): of two appends,
/// and of two commits, the first to write the next journal number wins and
/// the other is refused.
#[tokio::test]
async fn a_second_writer_racing_for_the_next_journal_number_is_refused() {
    let bucket = bucket().await;
    committed_state(&bucket, 3).await;
    let (first, info) = locked(&bucket).await;
    let mut s1 = first.load().await.unwrap().state;
    backend(&bucket).await.force_unlock(&info.id).await.unwrap();
    let (second, _) = locked(&bucket).await;
    let mut s2 = second.load().await.unwrap().state;

    first.append(&[put("one", "r-1")]).await.unwrap();
    let err = second.append(&[put("two", "r-2")]).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    s1.apply_entry(&put("one", "r-1"));
    let s1 = commit_next(&first, s1).await;
    s2.apply_entry(&put("two", "r-2"));
    s2.serial += 1;
    match second.commit(&s2).await {
        Err(StateError::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (1, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(backend(&bucket).await.load().await.unwrap().state, s1);

    // Both load serial 2 and commit serial 3 straight away: one journal
    // object each, racing for the same number.
    let mut a = first.load().await.unwrap().state;
    let mut c = second.load().await.unwrap().state;
    a.apply_entry(&put("a", "r-a"));
    c.apply_entry(&put("c", "r-c"));
    let a = commit_next(&first, a).await;
    c.serial += 1;
    match second.commit(&c).await {
        Err(StateError::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (2, 3)),
        other => panic!("{other:?}"),
    }
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.state, a);
    assert_eq!(loaded.replayed, 0);
    assert_eq!(first.compactions() + second.compactions(), 0);

    // A state object replaced behind the journal's back (a hand edit that
    // keeps the serial) is noticed before the commit marker is written.
    let mut state = first.load().await.unwrap().state;
    let mut edited: serde_json::Value = serde_json::from_slice(&get(&bucket, KEY).await).unwrap();
    edited["outputs"] = json!({"by_hand": true});
    put_raw(&bucket, KEY, serde_json::to_vec_pretty(&edited).unwrap()).await;
    state.serial += 1;
    assert!(matches!(
        first.commit(&state).await,
        Err(StateError::Conflict { found: 1, .. })
    ));
}

/// A resource of the sequence tests: about 150–240 bytes, by number.
fn numbered(i: usize, version: usize) -> ResourceState {
    let mut r = resource(&format!("id-{i}"));
    r.attributes.insert("version".into(), json!(version));
    r.attributes
        .insert("policy".into(), json!("x".repeat(40 + i % 90)));
    r
}

fn numbered_addr(i: usize) -> cairn::model::Address {
    addr(&format!("r{i:04}"))
}

/// `r` applied to `state`, as the commit should leave it (the model the
/// loads are compared with).
fn model(state: &State, r: &Run) -> State {
    let mut next = state.clone();
    for &(i, version) in &r.puts {
        next.resources
            .insert(numbered_addr(i), numbered(i, version));
    }
    for &i in &r.removes {
        next.resources.remove(&numbered_addr(i));
    }
    next.serial += 1;
    next
}

/// One run as an apply makes it, on a new backend (a new process): lock,
/// load, the intents of its operations (one batch, as concurrent
/// operations group-commit), their outcomes (another batch), commit,
/// unlock. Returns the committed state, the bytes the backend wrote, the
/// bytes of the records it added or changed, and whether it finished a
/// snapshot.
async fn s3_run(bucket: &str, r: &Run) -> (State, u64, u64, bool) {
    let (b, _) = locked(bucket).await;
    let before = b.load().await.unwrap().state;
    let mut state = before.clone();
    let (intents, outcomes): (Vec<_>, Vec<_>) = r
        .records(&before, numbered_addr, numbered)
        .into_iter()
        .unzip();
    b.append(&intents).await.unwrap();
    b.append(&outcomes).await.unwrap();
    intents
        .iter()
        .chain(&outcomes)
        .for_each(|e| state.apply_entry(e));
    state.serial += 1;
    b.commit(&state).await.unwrap();
    b.unlock().await.unwrap();
    let changed = changed_bytes(&before, &state);
    (state, b.bytes_written(), changed, b.compactions() > 0)
}

/// The generation the state object names (`None`: no manifest).
async fn named_generation(bucket: &str) -> Option<u64> {
    let bytes = try_get(bucket, KEY).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["generation"].as_u64()
}

/// A snapshot under way: the newest generation in the bucket, when it is
/// newer than the one the state object names, with its part count.
async fn under_way(bucket: &str) -> Option<(u64, u64)> {
    let b = backend(bucket).await;
    let named = named_generation(bucket).await;
    let (&generation, &parts) = generations(bucket, &b).await.iter().next_back()?;
    (Some(generation) > named).then_some((generation, parts))
}

#[tokio::test]
async fn no_commit_writes_more_than_twice_its_changed_records() {
    let bucket = bucket().await;
    let n = 200;
    let create = Run {
        puts: (0..n).map(|i| (i, 0)).collect(),
        removes: vec![],
    };
    let (mut last, _, _, _) = s3_run(&bucket, &create).await;
    let mut worst: f64 = 0.0;
    let (mut finished, mut continued) = (0, 0);
    for step in 1..=60 {
        let r = step_run(n, step);
        let expected = model(&last, &r);
        let pass = under_way(&bucket).await;
        let (state, written, changed, finish) = s3_run(&bucket, &r).await;
        assert_eq!(state, expected, "step {step}");
        let ratio = written as f64 / changed as f64;
        worst = worst.max(ratio);
        assert!(
            written <= 2 * changed,
            "step {step}: wrote {written} bytes for {changed} changed"
        );
        let loaded = backend(&bucket).await.load().await.unwrap();
        assert_eq!(loaded.state, expected, "step {step}");
        assert_eq!(loaded.replayed, 0);
        // A snapshot under way is continued by the next run (a new
        // backend), not started over.
        if let Some((generation, parts)) = pass {
            if finish {
                assert_eq!(named_generation(&bucket).await, Some(generation));
            } else {
                let now = generations(&bucket, &backend(&bucket).await).await;
                assert!(now[&generation] > parts, "step {step}: no share");
                continued += 1;
            }
        }
        finished += usize::from(finish);
        last = state;
    }
    eprintln!(
        "S3 sequence: worst {worst:.2} bytes written per changed byte; {finished} snapshots finished, {continued} continued by a new backend"
    );
    assert!(finished >= 2, "{finished} snapshots");
    assert!(continued > 2 * finished);
    assert!(
        worst > 1.5,
        "snapshots used their budget (worst {worst:.2})"
    );
}

/// Every object in the bucket.
async fn objects(bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for key in keys(bucket).await {
        let body = get(bucket, &key).await;
        out.insert(key, body);
    }
    out
}

/// A new bucket holding `objects`.
async fn bucket_with(objects: &BTreeMap<String, Vec<u8>>) -> String {
    let bucket = bucket().await;
    for (key, body) in objects {
        put_raw(&bucket, key, body.clone()).await;
    }
    bucket
}

/// Runs steps of `n` resources until one finishes a snapshot that earlier
/// runs began; returns the objects before it and after it, its step, and
/// the states before and after it.
async fn around_a_finish(
    n: usize,
) -> (
    BTreeMap<String, Vec<u8>>,
    BTreeMap<String, Vec<u8>>,
    usize,
    State,
    State,
) {
    let bucket = bucket().await;
    let create = Run {
        puts: (0..n).map(|i| (i, 0)).collect(),
        removes: vec![],
    };
    let (mut last, _, _, _) = s3_run(&bucket, &create).await;
    for step in 1..100 {
        let before = objects(&bucket).await;
        let pass = under_way(&bucket).await;
        let (state, _, _, finish) = s3_run(&bucket, &step_run(n, step)).await;
        if finish && pass.is_some() {
            return (before, objects(&bucket).await, step, last, state);
        }
        last = state;
    }
    panic!("no snapshot finished");
}

/// Runs the steps after `step` on `bucket`, checking the bound and every
/// load; then checks that what the crash left stale is gone.
async fn runs_go_on(bucket: &str, n: usize, step: usize, mut last: State, label: &str) {
    let mut finished = false;
    for next in step + 1..step + 40 {
        let r = step_run(n, next);
        let expected = model(&last, &r);
        let (state, written, changed, finish) = s3_run(bucket, &r).await;
        assert_eq!(state, expected, "{label}, step {next}");
        assert!(written <= 2 * changed, "{label}, step {next}");
        let loaded = backend(bucket).await.load().await.unwrap();
        assert_eq!(loaded.state, expected, "{label}, step {next}");
        finished |= finish;
        last = state;
        if finished {
            break;
        }
    }
    assert!(finished, "{label}: a snapshot finished");
    // Only the manifest's generation and the backup's are left, and no
    // journal object it holds.
    let b = backend(bucket).await;
    let generation = named_generation(bucket).await.unwrap();
    let mut expected = vec![generation];
    if let Some(backup) = try_get(bucket, &b.backup_key()).await {
        let backup: serde_json::Value = serde_json::from_slice(&backup).unwrap();
        if let Some(g) = backup["generation"].as_u64() {
            expected.insert(0, g);
        }
    }
    let kept: Vec<u64> = generations(bucket, &b).await.into_keys().collect();
    assert_eq!(kept, expected, "{label}");
    assert!(
        journal_numbers(bucket, &b)
            .await
            .iter()
            .all(|n| *n >= generation),
        "{label}"
    );
}

#[tokio::test]
async fn a_crash_at_each_step_of_a_snapshot_finish_loses_nothing() {
    let n = 120;
    let (before, after, step, last, committed) = around_a_finish(n).await;
    let new = |key: &String| !before.contains_key(key);
    let generation = {
        let manifest: serde_json::Value = serde_json::from_slice(&after[KEY]).unwrap();
        manifest["generation"].as_u64().unwrap()
    };
    let b = backend("unused").await;
    let bak = b.backup_key();
    // The run's journal objects and its last part, but no manifest.
    let mut parts_only = before.clone();
    for (key, body) in &after {
        if new(key) && !key.starts_with(&b.snapshot_prefix()) {
            parts_only.insert(key.clone(), body.clone());
        }
    }
    let last_part = b.part_key(generation, under_way_parts(&after, &b, generation) - 1);
    assert!(new(&last_part), "the finishing run wrote the last part");
    parts_only.insert(last_part.clone(), after[&last_part].clone());
    // The backup too (the first snapshot has none).
    let mut backed_up = parts_only.clone();
    if let Some(backup) = after.get(&bak) {
        backed_up.insert(bak.clone(), backup.clone());
    }
    // The manifest too, but nothing deleted.
    let mut undeleted = before.clone();
    undeleted.extend(after.clone());
    assert!(undeleted.len() > after.len(), "the finish deleted objects");
    // Each case in its own bucket, all at once.
    let mut cases = tokio::task::JoinSet::new();
    for (label, objects) in [
        ("parts but no manifest", parts_only),
        ("backup but no manifest", backed_up),
        ("manifest but nothing deleted", undeleted),
        ("after the finish", after.clone()),
    ] {
        let committed = committed.clone();
        cases.spawn(async move {
            let bucket = bucket_with(&objects).await;
            let loaded = backend(&bucket).await.load().await.unwrap();
            assert_eq!(loaded.state, committed, "{label}");
            assert_eq!(loaded.replayed, 0, "{label}");
            runs_go_on(&bucket, n, step, committed, label).await;
        });
    }
    // Before the run, the last part of the snapshot under way replaced by
    // garbage: it is not continued (a new snapshot is started) and never
    // loaded.
    let (g, parts) = {
        let bucket = bucket_with(&before).await;
        under_way(&bucket).await.unwrap()
    };
    let mut garbage = before.clone();
    garbage.insert(b.part_key(g, parts - 1), b"{garbage".to_vec());
    let bucket = bucket_with(&garbage).await;
    assert_eq!(backend(&bucket).await.load().await.unwrap().state, last);
    runs_go_on(&bucket, n, step - 1, last, "garbage part").await;
    while let Some(case) = cases.join_next().await {
        case.unwrap();
    }
}

/// The number of parts of `generation` among `objects`.
fn under_way_parts(objects: &BTreeMap<String, Vec<u8>>, b: &S3Backend, generation: u64) -> u64 {
    let prefix = format!("{}{generation:020}/", b.snapshot_prefix());
    objects.keys().filter(|k| k.starts_with(&prefix)).count() as u64
}

/// A state object holding a whole state (an earlier cairn's layout), with
/// a journal object continuing it: loaded, committed on, and moved to a
/// manifest by the first snapshot, which keeps the whole state as the
/// backup.
#[tokio::test]
async fn a_whole_state_object_is_loaded_and_moved_to_the_manifest_layout() {
    let bucket = bucket().await;
    let n = 100;
    let b = backend(&bucket).await;
    let mut whole = State::new("demo", "dev");
    whole.serial = 1;
    for i in 0..n {
        whole.resources.insert(numbered_addr(i), numbered(i, 0));
    }
    let mut legacy = serde_json::to_vec_pretty(&whole).unwrap();
    legacy.push(b'\n');
    put_raw(&bucket, KEY, legacy.clone()).await;
    // An earlier run committed serial 2 in the journal.
    let mut last = whole.clone();
    last.resources.insert(numbered_addr(0), numbered(0, 1));
    last.serial = 2;
    let (address, resource) = (numbered_addr(0), numbered(0, 1));
    let object = format!(
        "{{\"cairn_journal\":2,\"lineage\":\"{}\",\"base_serial\":1}}\n{{\"put\":{{{}:{}}}}}\n{{\"commit\":2}}\n",
        whole.lineage,
        serde_json::to_string(&address.to_string()).unwrap(),
        serde_json::to_string(&resource).unwrap()
    );
    put_raw(&bucket, &b.journal_key(0), object.into_bytes()).await;
    assert_eq!(backend(&bucket).await.load().await.unwrap().state, last);

    let mut migrated = false;
    for step in 1..60 {
        let r = step_run(n, step);
        let expected = model(&last, &r);
        let (state, written, changed, finish) = s3_run(&bucket, &r).await;
        assert_eq!(state, expected, "step {step}");
        assert_eq!(backend(&bucket).await.load().await.unwrap().state, expected);
        last = state;
        if finish {
            // The one time the whole state object is copied, to the backup.
            assert!(written <= 2 * changed + legacy.len() as u64);
            migrated = true;
            break;
        }
        assert!(written <= 2 * changed, "step {step}");
    }
    assert!(migrated, "a snapshot finished");
    manifest_of(&bucket).await;
    assert_eq!(get(&bucket, &b.backup_key()).await, legacy);
    assert!(journal_numbers(&bucket, &b).await.iter().all(|n| *n > 0));
    // The next runs go on from the manifest.
    for step in 60..63 {
        let r = step_run(n, step);
        let expected = model(&last, &r);
        let (state, written, changed, _) = s3_run(&bucket, &r).await;
        assert!(written <= 2 * changed, "step {step}");
        assert_eq!(backend(&bucket).await.load().await.unwrap().state, expected);
        last = state;
    }
}

/// The state object, a manifest, as JSON.
async fn manifest_of(bucket: &str) -> serde_json::Value {
    let manifest: serde_json::Value = serde_json::from_slice(&get(bucket, KEY).await).unwrap();
    assert_eq!(manifest["cairn_snapshot"], json!(1), "{manifest}");
    manifest
}

/// A journal object that only commits: header, then the marker.
fn commit_object(lineage: &str, base: u64, serial: u64) -> String {
    format!(
        "{{\"cairn_journal\":2,\"lineage\":\"{lineage}\",\"base_serial\":{base}}}\n{{\"commit\":{serial}}}\n"
    )
}

/// `state` as a state file in the line format: a header line, one record
/// per line, a footer line.
fn line_format(state: &State) -> Vec<u8> {
    let mut out = format!(
        "{{\"format_version\":{},\"lineage\":\"{}\",\"serial\":{},\"stack\":\"{}\",\"env\":\"{}\",\"resources\":{{\n",
        state.format_version, state.lineage, state.serial, state.stack, state.env
    );
    for (i, (address, r)) in state.resources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(address).unwrap());
        out.push(':');
        out.push_str(&serde_json::to_string(r).unwrap());
        out.push('\n');
    }
    out.push('}');
    if !state.outputs.is_empty() {
        out.push_str(",\"outputs\":");
        out.push_str(&serde_json::to_string(&state.outputs).unwrap());
    }
    out.push_str("}\n");
    out.into_bytes()
}
