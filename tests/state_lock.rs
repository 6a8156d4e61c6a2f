//! The local state lock: contention between instances and processes,
//! waiting, timeouts, holder information and force-unlock.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn::state::{Backend, LocalBackend, LockInfo, StateError};

fn backend(dir: &Path) -> LocalBackend {
    LocalBackend::new(dir.join(".cairn"), "demo", "dev")
}

#[tokio::test]
async fn second_instance_fails_at_once_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let a = backend(tmp.path());
    let b = backend(tmp.path());
    let info = LockInfo::new("apply");
    assert_eq!(a.lock_holder().await.unwrap(), None);
    a.lock(&info, Duration::ZERO).await.unwrap();

    let start = Instant::now();
    match b.lock(&LockInfo::new("destroy"), Duration::ZERO).await {
        Err(StateError::Locked { holder }) => assert_eq!(holder, info),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(b.lock_holder().await.unwrap(), Some(info.clone()));
    assert_eq!(a.lock_holder().await.unwrap(), Some(info.clone()));
    // The same instance cannot take it twice either.
    assert!(matches!(
        a.lock(&info, Duration::ZERO).await,
        Err(StateError::Locked { .. })
    ));

    a.unlock().await.unwrap();
    assert_eq!(std::fs::read(a.lock_path()).unwrap(), b"");
    assert_eq!(b.lock_holder().await.unwrap(), None);
    let info_b = LockInfo::new("destroy");
    b.lock(&info_b, Duration::ZERO).await.unwrap();
    assert_eq!(a.lock_holder().await.unwrap(), Some(info_b));
    // Unlocking what one does not hold is a no-op.
    a.unlock().await.unwrap();
    assert!(b.lock_holder().await.unwrap().is_some());
}

#[tokio::test]
async fn waiting_succeeds_once_the_holder_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let a = backend(tmp.path());
    let b = backend(tmp.path());
    a.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.unlock().await.unwrap();
    };
    let info_b = LockInfo::new("apply");
    let start = Instant::now();
    let (_, got) = tokio::join!(release, b.lock(&info_b, Duration::from_secs(10)));
    got.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(a.lock_holder().await.unwrap(), Some(info_b));
}

#[tokio::test]
async fn waiting_times_out_while_held() {
    let tmp = tempfile::tempdir().unwrap();
    let a = backend(tmp.path());
    let b = backend(tmp.path());
    let info = LockInfo::new("apply");
    a.lock(&info, Duration::ZERO).await.unwrap();
    let start = Instant::now();
    match b
        .lock(&LockInfo::new("apply"), Duration::from_millis(400))
        .await
    {
        Err(StateError::LockTimeout { holder, waited }) => {
            assert_eq!(holder, info);
            assert!(waited >= Duration::from_millis(400), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dropping_the_backend_releases_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let a = backend(tmp.path());
    a.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    drop(a);
    let b = backend(tmp.path());
    assert_eq!(b.lock_holder().await.unwrap(), None);
    b.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn unreadable_holder_is_reported_as_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let a = backend(tmp.path());
    a.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    // Another tool scribbled over the info while the lock is held.
    std::fs::write(a.lock_path(), b"not json").unwrap();
    match backend(tmp.path())
        .lock(&LockInfo::new("x"), Duration::ZERO)
        .await
    {
        Err(StateError::Locked { holder }) => assert_eq!(holder, LockInfo::unknown()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn force_unlock_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let b = backend(tmp.path());
    // No lock file at all.
    assert!(matches!(
        b.force_unlock("abc").await,
        Err(StateError::NoSuchLock { .. })
    ));

    // Held by a live instance: refused even with the right id.
    let a = backend(tmp.path());
    let info = LockInfo::new("apply");
    a.lock(&info, Duration::ZERO).await.unwrap();
    match b.force_unlock(&info.id).await {
        Err(StateError::Locked { holder }) => assert_eq!(holder, info),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.force_unlock("wrong-id").await,
        Err(StateError::NoSuchLock { id, .. }) if id == "wrong-id"
    ));
    a.unlock().await.unwrap();

    // Info left behind by a holder that died (the OS lock is free).
    let dead = LockInfo {
        pid: 999_999,
        ..LockInfo::new("apply")
    };
    std::fs::write(a.lock_path(), serde_json::to_vec(&dead).unwrap()).unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), None);
    assert!(matches!(
        b.force_unlock("wrong-id").await,
        Err(StateError::NoSuchLock { .. })
    ));
    assert_eq!(b.force_unlock(&dead.id).await.unwrap(), dead);
    assert_eq!(std::fs::read(a.lock_path()).unwrap(), b"");
    assert!(matches!(
        b.force_unlock(&dead.id).await,
        Err(StateError::NoSuchLock { .. })
    ));
}

/// Run as a child process by `lock_held_by_another_process`: takes the
/// lock, says so on stdout, and holds it until killed (or a minute passes).
#[tokio::test]
async fn child_lock_holder() {
    let Ok(dir) = std::env::var("CAIRN_STATE_TEST_CHILD_DIR") else {
        return;
    };
    let b = backend(Path::new(&dir));
    let info = LockInfo::new("apply");
    b.lock(&info, Duration::ZERO).await.unwrap();
    println!("CHILD-LOCKED {}", info.id);
    std::thread::sleep(Duration::from_secs(60));
}

/// Kills the child process when the test ends, even on a failed assert.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn lock_held_by_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = KillOnDrop(
        Command::new(exe)
            .args([
                "child_lock_holder",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CAIRN_STATE_TEST_CHILD_DIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let id = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find_map(|l| {
            l.split_once("CHILD-LOCKED ")
                .map(|(_, id)| id.trim().to_string())
        })
        .unwrap();

    let b = backend(tmp.path());
    match b.lock(&LockInfo::new("apply"), Duration::ZERO).await {
        Err(StateError::Locked { holder }) => {
            assert_eq!(holder.pid, child.0.id());
            assert_eq!(holder.id, id);
            assert_eq!(holder.operation, "apply");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.force_unlock(&id).await,
        Err(StateError::Locked { .. })
    ));

    // SIGKILL: the OS drops the lock with the process; its info stays.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), None);
    let cleared = b.force_unlock(&id).await.unwrap();
    assert_eq!(cleared.id, id);
    b.lock(&LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
}
