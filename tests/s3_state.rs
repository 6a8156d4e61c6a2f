//! The S3 state backend against a real moto server: commit/load round
//! trips, backups, journal replay after a crash, pending intents, stale and
//! foreign journals, group commit, `If-Match` conflicts, retried writes and
//! error texts. The lock is tested in `s3_state_lock.rs`.
#![cfg(feature = "aws")]

#[path = "support/s3_state.rs"]
mod s3;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::provider::Operation;
use cairn::state::{Backend, JournalEntry, LockInfo, S3Backend, StateError};
use s3::*;
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
    state.apply_entry(&put("a", "r-a"));
    let first = commit_next(&b, state).await;
    assert_eq!(
        keys(&bucket).await,
        vec![KEY.to_string()],
        "journal deleted"
    );

    let mut state = backend(&bucket).await.load().await.unwrap().state;
    assert_eq!(state, first);
    // The state as pretty JSON (a local state file holds the same state,
    // one resource per line).
    let mut pretty = serde_json::to_vec_pretty(&first).unwrap();
    pretty.push(b'\n');
    assert_eq!(get(&bucket, KEY).await, pretty);

    // A second backend continues the history; the first commit is the backup.
    let b2 = backend(&bucket).await;
    b2.load().await.unwrap();
    state.apply_entry(&put("b", "r-b"));
    let second = commit_next(&b2, state).await;
    assert_eq!(serial_of(&get(&bucket, KEY).await), 2);
    assert_eq!(serial_of(&get(&bucket, &b2.backup_key()).await), 1);
    let loaded = backend(&bucket).await.load().await.unwrap();
    assert_eq!(loaded.state, second);
    assert_eq!(loaded.state.resources.len(), 2);
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
    let key = format!("{}{:020}/{:010}", b.journal_prefix(), 1, 0);
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
    let journal_key = format!("{}{:020}/{:010}", b.journal_prefix(), 0, 0);
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
    put_raw(&bucket, &journal_key, ours.into_bytes()).await;
    b.append(std::slice::from_ref(&entry)).await.unwrap();
    assert_eq!(b.journal_puts(), 1);
    // The next number holds someone else's records: refused.
    let next_key = format!("{}{:020}/{:010}", b.journal_prefix(), 0, 1);
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

    // The state object: our exact bytes are our commit; others a conflict.
    state.apply_entry(&entry);
    state.serial = 1;
    let mut json = serde_json::to_vec_pretty(&state).unwrap();
    json.push(b'\n');
    put_raw(&bucket, KEY, json).await;
    b.commit(&state).await.unwrap();
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
