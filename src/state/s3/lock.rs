//! The S3 backend's lock: a `LockInfo` object created with a conditional
//! write, confirmed by reading it back, released only by its writer (see
//! the parent module's docs).

use std::time::{Duration, Instant};

use super::objects::{Cond, Object};
use super::{Held, S3Backend, guard};
use crate::state::{LockInfo, StateError};

/// How often a waiting [`crate::state::Backend::lock`] tries again (plus a per-process
/// jitter, so waiting runs do not poll in step).
const POLL: Duration = Duration::from_millis(200);

/// How long after creating the lock object it is read back. On S3 a
/// conditional create is atomic and the read-back always finds our own
/// lock; but some S3-compatible stores check `If-None-Match` apart from the
/// write (moto's threaded server does) or ignore it, so two racing creates
/// can both succeed and the later one replaces the earlier. Reading back
/// after racing writes have landed lets exactly the run whose lock
/// survived go on; the others see it as held.
const LOCK_SETTLE: Duration = Duration::from_millis(150);

/// A lock that vanishes between our failed create and our read is retried
/// at once, up to this many times.
const LOCK_RACES: u32 = 5;

impl S3Backend {
    /// The lock object's holder and ETag, if there is a lock.
    async fn read_lock(&self) -> Result<Option<(LockInfo, String)>, StateError> {
        Ok(self
            .bucket
            .get(&self.lock_key())
            .await?
            .map(|Object { body, etag }| {
                let info = serde_json::from_slice(&body).unwrap_or_else(|_| LockInfo::unknown());
                (info, etag.unwrap_or_default())
            }))
    }

    /// See [`crate::state::Backend::lock`].
    pub(super) async fn acquire(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError> {
        if guard(&self.held).is_some() {
            // This instance holds it already: a second lock is a bug of the
            // caller, reported like any other holder.
            let holder = self
                .read_lock()
                .await?
                .map_or_else(LockInfo::unknown, |(h, _)| h);
            return Err(StateError::Locked { holder });
        }
        let body = serde_json::to_vec_pretty(info).map_err(|e| StateError::Io {
            operation: "encode lock",
            location: self.bucket.url(&self.lock_key()),
            message: e.to_string(),
        })?;
        let jitter = Duration::from_millis(u64::from(std::process::id() % 97));
        let start = Instant::now();
        let mut races = 0;
        loop {
            let created = self
                .bucket
                .put(&self.lock_key(), body.clone(), Cond::Absent)
                .await?;
            if created.is_some() {
                // Confirm, after a moment, that no racing write replaced
                // ours (see LOCK_SETTLE).
                tokio::time::sleep(LOCK_SETTLE).await;
            }
            let current = self.read_lock().await?;
            // Our id (random per run) means our write, even when its answer
            // was lost and the SDK's retry was refused.
            if let Some((holder, etag)) = &current
                && holder.id == info.id
            {
                *guard(&self.held) = Some(Held {
                    id: info.id.clone(),
                    etag: created.unwrap_or_else(|| etag.clone()),
                });
                return Ok(());
            }
            let Some((holder, _)) = current else {
                // Released between our write and our read: try again now.
                races += 1;
                if races <= LOCK_RACES {
                    continue;
                }
                tokio::time::sleep(POLL).await;
                continue;
            };
            let waited = start.elapsed();
            if wait.is_zero() {
                return Err(StateError::Locked { holder });
            }
            if waited >= wait {
                return Err(StateError::LockTimeout { holder, waited });
            }
            tokio::time::sleep((POLL + jitter).min(wait - waited)).await;
        }
    }

    /// Deletes the lock object if it is still the one this backend wrote.
    pub(super) async fn release(&self) -> Result<(), StateError> {
        let Some(held) = guard(&self.held).take() else {
            return Ok(());
        };
        let etag = if held.etag.is_empty() {
            // No ETag from the write: check the id instead.
            match self.read_lock().await? {
                Some((info, etag)) if info.id == held.id => etag,
                _ => return Ok(()),
            }
        } else {
            held.etag.clone()
        };
        match self.bucket.delete(&self.lock_key(), Some(&etag)).await {
            // Deleted, or no longer ours (force-unlocked, maybe re-taken).
            Ok(_) => Ok(()),
            Err(e) => {
                *guard(&self.held) = Some(held);
                Err(e)
            }
        }
    }

    /// Who holds the lock, if anyone.
    pub(super) async fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.read_lock().await?.map(|(info, _)| info))
    }

    /// Deletes the lock if its id is `id`, whoever holds it: S3 cannot tell
    /// a dead holder from a live one, so the caller must know it is gone.
    pub(super) async fn force(&self, id: &str) -> Result<LockInfo, StateError> {
        let no_such = || StateError::NoSuchLock {
            location: self.bucket.url(&self.lock_key()),
            id: id.to_string(),
        };
        let Some((holder, etag)) = self.read_lock().await? else {
            return Err(no_such());
        };
        if holder.id != id {
            return Err(no_such());
        }
        if !self.bucket.delete(&self.lock_key(), Some(&etag)).await? {
            // Released, or released and taken again, meanwhile.
            return Err(no_such());
        }
        let mut held = guard(&self.held);
        if held.as_ref().is_some_and(|h| h.id == id) {
            *held = None;
        }
        Ok(holder)
    }
}
