//! The state lock: who holds it ([`LockInfo`]) and the OS-level exclusive
//! lock on the local lock file ([`LockFile`]).
//!
//! The lock is an advisory `flock`-style lock taken with std's
//! [`File::try_lock`], held for as long as the file stays open: a process
//! killed with SIGKILL releases it with its file descriptors, so a crash
//! never leaves a lock behind that needs `force-unlock`. The holder writes
//! its [`LockInfo`] as JSON into the same file so others can say who holds
//! it. Locks belong to the open file description, so two [`LockFile`]s in
//! one process contend like two processes do.
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::StateError;
use super::fsutil::{create_dir, io_error};

/// Who holds a state lock, as written into the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id, for `cairn force-unlock`.
    pub id: String,
    /// `user@host`.
    pub who: String,
    pub pid: u32,
    /// `apply`, `destroy`…
    pub operation: String,
    /// RFC 3339 UTC time the lock was taken.
    pub created: String,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}, {} since {}, lock id {})",
            self.who, self.pid, self.operation, self.created, self.id
        )
    }
}

impl LockInfo {
    /// Lock information for this process doing `operation` now: a random
    /// id, `user@host`, this pid and the current UTC time.
    pub fn new(operation: &str) -> LockInfo {
        LockInfo {
            id: random_id(),
            who: format!("{}@{}", user_name(), host_name()),
            pid: std::process::id(),
            operation: operation.to_string(),
            created: rfc3339_utc(SystemTime::now()),
        }
    }

    /// A placeholder for a lock that is held but whose holder could not be
    /// read (written by another tool, or still being written).
    pub fn unknown() -> LockInfo {
        LockInfo {
            id: "unknown".to_string(),
            who: "unknown".to_string(),
            pid: 0,
            operation: "unknown".to_string(),
            created: "unknown".to_string(),
        }
    }
}

/// `t` as RFC 3339 in UTC with second precision, e.g.
/// `2026-04-14T09:05:03Z`. Times before 1970 are clamped to the epoch.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are within small ranges by construction.
    (year, month as u32, day as u32)
}

/// 64 random bits as 16 hex digits: from `/dev/urandom`, or from time and
/// pid noise where that is missing.
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let from_os = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_ok() {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    super::new_lineage()[..16].to_string()
}

fn user_name() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// How often a waiting [`LockFile::acquire`] tries again.
const POLL: Duration = Duration::from_millis(100);

/// The exclusive lock on one lock file, and the open file while held.
#[derive(Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
    held: Mutex<Option<File>>,
}

enum Attempt {
    Taken(File),
    Busy,
}

impl LockFile {
    pub(crate) fn new(path: PathBuf) -> LockFile {
        LockFile {
            path,
            held: Mutex::new(None),
        }
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// The held file; a poisoned mutex still holds a valid `Option<File>`.
    fn held(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held().is_some()
    }

    /// Opens the lock file (creating it and its folder) and tries once.
    fn try_take(&self) -> Result<Attempt, StateError> {
        if let Some(dir) = self.path.parent() {
            create_dir(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io_error("open lock file", &self.path, &e))?;
        match file.try_lock() {
            Ok(()) => Ok(Attempt::Taken(file)),
            Err(TryLockError::WouldBlock) => Ok(Attempt::Busy),
            Err(TryLockError::Error(e)) => Err(io_error("lock", &self.path, &e)),
        }
    }

    /// Takes the lock and records `info` in it; see [`super::Backend::lock`].
    pub(crate) async fn acquire(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError> {
        if self.is_held() {
            // This instance holds it already: a second lock is a bug of the
            // caller, reported like any other holder.
            return Err(StateError::Locked {
                holder: self.read_holder().await,
            });
        }
        let start = Instant::now();
        loop {
            match self.try_take()? {
                Attempt::Taken(mut file) => {
                    write_info(&mut file, info)
                        .map_err(|e| io_error("write lock info", &self.path, &e))?;
                    *self.held() = Some(file);
                    return Ok(());
                }
                Attempt::Busy => {
                    let waited = start.elapsed();
                    if wait.is_zero() {
                        return Err(StateError::Locked {
                            holder: self.read_holder().await,
                        });
                    }
                    if waited >= wait {
                        return Err(StateError::LockTimeout {
                            holder: self.read_holder().await,
                            waited,
                        });
                    }
                    tokio::time::sleep(POLL.min(wait - waited)).await;
                }
            }
        }
    }

    /// Clears the recorded holder and releases the lock, if held.
    pub(crate) fn release(&self) -> Result<(), StateError> {
        let file = self.held().take();
        if let Some(file) = file {
            file.set_len(0)
                .map_err(|e| io_error("clear lock info", &self.path, &e))?;
            file.unlock()
                .map_err(|e| io_error("unlock", &self.path, &e))?;
        }
        Ok(())
    }

    /// Who holds the lock, if anyone holds it now.
    pub(crate) async fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        if self.is_held() {
            return Ok(Some(self.read_holder().await));
        }
        if !self.path.exists() {
            return Ok(None);
        }
        match self.try_take()? {
            Attempt::Taken(file) => {
                drop(file.unlock());
                Ok(None)
            }
            Attempt::Busy => Ok(Some(self.read_holder().await)),
        }
    }

    /// Clears a lock whose holder died; see [`super::Backend::force_unlock`].
    pub(crate) async fn force(&self, id: &str) -> Result<LockInfo, StateError> {
        let no_such = || StateError::NoSuchLock {
            location: self.location(),
            id: id.to_string(),
        };
        if !self.path.exists() {
            return Err(no_such());
        }
        let recorded = read_info(&self.path).ok().flatten();
        let Some(recorded) = recorded.filter(|r| r.id == id) else {
            return Err(no_such());
        };
        if self.is_held() {
            return Err(StateError::Locked { holder: recorded });
        }
        match self.try_take()? {
            Attempt::Busy => Err(StateError::Locked {
                holder: self.read_holder().await,
            }),
            Attempt::Taken(file) => {
                let cleared = file.set_len(0);
                drop(file.unlock());
                cleared.map_err(|e| io_error("clear lock info", &self.path, &e))?;
                Ok(recorded)
            }
        }
    }

    /// The recorded holder of a held lock. The holder writes its info just
    /// after taking the lock, so an empty file is retried briefly before
    /// settling for [`LockInfo::unknown`].
    async fn read_holder(&self) -> LockInfo {
        for _ in 0..5 {
            if let Ok(Some(info)) = read_info(&self.path) {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        LockInfo::unknown()
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Closing the file releases the OS lock; clear the info first so
        // nobody reads a stale holder. Errors cannot be reported here.
        drop(self.release());
    }
}

fn write_info(file: &mut File, info: &LockInfo) -> std::io::Result<()> {
    let json = serde_json::to_vec(info).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&json)?;
    file.flush()
}

/// The info in the lock file: `None` when empty or not a [`LockInfo`].
fn read_info(path: &Path) -> std::io::Result<Option<LockInfo>> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(text.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_164_799), "2024-02-28T23:59:59Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(at(1_234_567_890), "2009-02-13T23:31:30Z");
    }

    #[test]
    fn civil_from_days_round_trips_every_day_of_four_centuries() {
        // Consecutive days must advance the date by exactly one day.
        let mut prev = civil_from_days(-1);
        assert_eq!(prev, (1969, 12, 31));
        for d in 0..146_097 {
            let cur = civil_from_days(d);
            let next_in_month = (prev.0, prev.1, prev.2 + 1);
            let next_month = if prev.1 == 12 {
                (prev.0 + 1, 1, 1)
            } else {
                (prev.0, prev.1 + 1, 1)
            };
            assert!(
                cur == next_in_month || cur == next_month,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
        assert_eq!(prev, (2369, 12, 31));
    }

    #[test]
    fn new_info_describes_this_process() {
        let a = LockInfo::new("apply");
        let b = LockInfo::new("apply");
        assert_eq!(a.pid, std::process::id());
        assert_eq!(a.operation, "apply");
        assert!(a.who.contains('@'));
        assert_eq!(a.id.len(), 16);
        assert_ne!(a.id, b.id);
        assert!(
            a.created.ends_with('Z') && a.created.len() == 20,
            "{}",
            a.created
        );
    }
}
