//! The S3 state backend's lock against a real moto server: contention
//! failing fast with the holder's name, waiting, timeouts, racing runs,
//! force-unlock of stale and unreadable locks, unlock sparing a new holder.
#![cfg(feature = "aws")]

#[path = "support/s3_state.rs"]
mod s3;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::state::{Backend, LockInfo, StateError};
use s3::*;

#[tokio::test]
async fn second_lock_fails_at_once_naming_the_holder() {
    let bucket = bucket().await;
    let a = backend(&bucket).await;
    let b = backend(&bucket).await;
    let info = LockInfo::new("apply");
    a.lock(&info, Duration::ZERO).await.unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), Some(info.clone()));
    let start = Instant::now();
    let err = b
        .lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    match &err {
        StateError::Locked { holder } => assert_eq!(holder, &info),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("lock id {}", info.id)),
        "{err}"
    );
    // The same instance cannot take it twice either.
    assert!(matches!(
        a.lock(&LockInfo::new("apply"), Duration::ZERO).await,
        Err(StateError::Locked { .. })
    ));
    a.unlock().await.unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), None);
    assert!(!keys(&bucket).await.contains(&a.lock_key()));
    b.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    b.unlock().await.unwrap();
    // Unlocking without holding is a no-op.
    b.unlock().await.unwrap();
}

#[tokio::test]
async fn waiting_succeeds_once_released_and_times_out_while_held() {
    let bucket = bucket().await;
    let a = Arc::new(backend(&bucket).await);
    let b = backend(&bucket).await;
    a.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    let releaser = {
        let a = Arc::clone(&a);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            a.unlock().await.unwrap();
        })
    };
    let start = Instant::now();
    let info = LockInfo::new("destroy");
    b.lock(&info, Duration::from_secs(20)).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(600));
    releaser.await.unwrap();
    assert_eq!(a.lock_holder().await.unwrap(), Some(info.clone()));

    let start = Instant::now();
    match a
        .lock(&LockInfo::new("apply"), Duration::from_millis(800))
        .await
    {
        Err(StateError::LockTimeout { holder, waited }) => {
            assert_eq!(holder, info);
            assert!(waited >= Duration::from_millis(800), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    b.unlock().await.unwrap();
}

#[tokio::test]
async fn force_unlock_removes_a_stale_lock_and_unlock_spares_a_new_holder() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    // A lock left by a process that died elsewhere.
    let stale = LockInfo::new("apply");
    put_raw(&bucket, &b.lock_key(), serde_json::to_vec(&stale).unwrap()).await;
    assert!(matches!(
        b.lock(&LockInfo::new("apply"), Duration::ZERO).await,
        Err(StateError::Locked { holder }) if holder == stale
    ));
    match b.force_unlock("not-the-id").await {
        Err(StateError::NoSuchLock { location, id }) => {
            assert_eq!(location, format!("s3://{bucket}/{KEY}.lock"));
            assert_eq!(id, "not-the-id");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.force_unlock(&stale.id).await.unwrap(), stale);
    assert_eq!(b.lock_holder().await.unwrap(), None);
    assert!(matches!(
        b.force_unlock(&stale.id).await,
        Err(StateError::NoSuchLock { .. })
    ));

    // A run's lock is force-removed and taken by another run: the first
    // run's unlock must not delete the new holder's lock.
    let first = backend(&bucket).await;
    let mine = LockInfo::new("apply");
    first.lock(&mine, Duration::ZERO).await.unwrap();
    backend(&bucket).await.force_unlock(&mine.id).await.unwrap();
    let other = LockInfo::new("apply");
    let second = backend(&bucket).await;
    second.lock(&other, Duration::ZERO).await.unwrap();
    first.unlock().await.unwrap();
    assert_eq!(second.lock_holder().await.unwrap(), Some(other));
    second.unlock().await.unwrap();
}

#[tokio::test]
async fn unreadable_lock_is_held_by_unknown() {
    let bucket = bucket().await;
    let b = backend(&bucket).await;
    put_raw(&bucket, &b.lock_key(), b"not json".to_vec()).await;
    assert_eq!(b.lock_holder().await.unwrap(), Some(LockInfo::unknown()));
    assert!(matches!(
        b.lock(&LockInfo::new("apply"), Duration::ZERO).await,
        Err(StateError::Locked { holder }) if holder == LockInfo::unknown()
    ));
    b.force_unlock("unknown").await.unwrap();
    b.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
}

/// Eight runs race for a free lock at the same moment: exactly one gets it
/// and the seven others name that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_eight_racing_runs_gets_the_lock() {
    let bucket = bucket().await;
    let mut runs = Vec::new();
    for _ in 0..8 {
        runs.push(backend(&bucket).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let handles: Vec<_> = runs
        .into_iter()
        .map(|b| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let info = LockInfo::new("apply");
                barrier.wait().await;
                let result = b.lock(&info, Duration::ZERO).await;
                (info, result, b)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut holders = Vec::new();
    let mut backends = Vec::new();
    for handle in handles {
        let (info, result, b) = handle.await.unwrap();
        match result {
            Ok(()) => winners.push(info),
            Err(StateError::Locked { holder }) => holders.push(holder),
            Err(other) => panic!("{other:?}"),
        }
        backends.push(b);
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert!(holders.iter().all(|h| *h == winners[0]), "{holders:?}");
    assert_eq!(
        backends[0].lock_holder().await.unwrap(),
        Some(winners[0].clone())
    );
    for b in &backends {
        b.unlock().await.unwrap();
    }
    assert_eq!(backends[0].lock_holder().await.unwrap(), None);
}
