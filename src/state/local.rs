//! The local backend: state files in a folder beside the stack file.
//!
//! For stack `S` and env `E`, the folder (normally `.cairn/`) holds:
//!
//! - `S.E.state.json`: the committed [`State`], pretty JSON with sorted keys
//!   (deterministic, diff-friendly), mode 0600 as it may hold secrets;
//! - `S.E.state.json.bak`: the previous committed state;
//! - `S.E.journal`: the records appended since the last commit (format in
//!   [`super::journal`]);
//! - `S.E.lock`: the lock file, holding the [`LockInfo`] of its holder.
//!
//! Cost: during an apply each [`Backend::append`] writes only the encoded
//! records (a few hundred bytes per changed resource), group-committed by
//! one writer thread (one `fdatasync` per batch of concurrent callers, see
//! [`super::writer`]); [`Backend::commit`] writes the whole state file once
//! at the end. So the bytes written per apply are about the size of the
//! changed records plus one state file, never O(all resources) per
//! operation.
//!
//! Commit is crash-safe: the new state goes to a temporary file that is
//! fsynced, the current state file is hard-linked as the backup, the
//! temporary file is renamed over the state file and the folder fsynced;
//! only then is the journal emptied. A crash at any point leaves either the
//! old state with its journal (replayed on load) or the new state with a
//! stale journal (ignored on load, as its base serial is older).
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::fsutil::read_optional;
use super::journal::{self, Base, Fit};
use super::lock::LockFile;
use super::writer::{Msg, Writer};
use super::*;

/// The paths of one stack/env's files.
#[derive(Debug)]
pub(crate) struct Files {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub tmp: PathBuf,
    pub bak: PathBuf,
    pub journal: PathBuf,
    pub lock: PathBuf,
    pub stack: String,
    pub env: String,
}

/// What this backend knows of the committed state on disk.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    /// Not looked yet.
    Unknown,
    /// There is no state file.
    Missing,
    /// The state file is at this lineage and serial.
    At(Base),
}

/// The identifying fields of a state file, read without its resources.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StateHead {
    pub lineage: String,
    pub serial: u64,
    pub stack: String,
    pub env: String,
}

impl StateHead {
    pub(crate) fn base(&self) -> Base {
        Base {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }
}

/// State shared between the backend and its writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub files: Files,
    known: Mutex<Known>,
    /// The lineage of a state not yet committed, so `load` and the journal
    /// header agree on it.
    fresh: Mutex<Option<String>>,
    /// `sync_data` calls on the journal.
    pub syncs: AtomicU64,
    /// Bytes of journal records and state files handed to the writer.
    pub written: AtomicU64,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn known(&self) -> Known {
        guard(&self.known).clone()
    }

    pub(crate) fn set_known(&self, known: Known) {
        *guard(&self.known) = known;
    }

    /// The lineage of the fresh state, made up once.
    pub(crate) fn fresh_lineage(&self) -> String {
        guard(&self.fresh).get_or_insert_with(new_lineage).clone()
    }

    fn set_fresh_lineage(&self, lineage: &str) {
        *guard(&self.fresh) = Some(lineage.to_string());
    }

    fn corrupt(path: &Path, message: impl fmt::Display) -> StateError {
        StateError::Corrupt {
            location: path.display().to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn wrong_stack(&self, found_stack: &str, found_env: &str) -> StateError {
        StateError::WrongStack {
            location: self.files.state.display().to_string(),
            found_stack: found_stack.to_string(),
            found_env: found_env.to_string(),
            stack: self.files.stack.clone(),
            env: self.files.env.clone(),
        }
    }

    /// The blocking part of [`Backend::load`].
    fn load(&self) -> Result<Loaded, StateError> {
        let files = &self.files;
        let committed = match read_optional(&files.state)? {
            None => None,
            Some(bytes) => Some(journal::decode_state(
                &bytes,
                &files.state.display().to_string(),
                &files.stack,
                &files.env,
            )?),
        };
        let base = committed.as_ref().map(|s| Base {
            lineage: s.lineage.clone(),
            serial: s.serial,
        });
        let bytes = read_optional(&files.journal)?.unwrap_or_default();
        let parsed = journal::parse(&bytes, &files.journal)?;
        let replay = match journal::fit(parsed.header.as_ref(), base.as_ref()) {
            Fit::Current => true,
            Fit::Empty | Fit::Stale => false,
            Fit::Foreign(message) => return Err(Shared::corrupt(&files.journal, message)),
        };
        let mut state = match committed {
            Some(state) => state,
            None => {
                if let (true, Some(h)) = (replay, &parsed.header) {
                    self.set_fresh_lineage(&h.lineage);
                }
                let mut state = State::new(&files.stack, &files.env);
                state.lineage = self.fresh_lineage();
                state
            }
        };
        self.set_known(base.map_or(Known::Missing, Known::At));
        if !replay {
            return Ok(Loaded {
                state,
                replayed: 0,
                pending: Vec::new(),
            });
        }
        for entry in &parsed.entries {
            state.apply_entry(entry);
        }
        Ok(Loaded {
            state,
            replayed: parsed.entries.len(),
            pending: journal::pending(&parsed.entries),
        })
    }
}

/// State for one stack and env in a local folder. See the module docs for
/// the files and their formats.
#[derive(Debug)]
pub struct LocalBackend {
    shared: Arc<Shared>,
    lock: LockFile,
    /// The writer thread's queue, started on first use.
    writer: Mutex<Option<mpsc::Sender<Msg>>>,
}

impl LocalBackend {
    /// State for `stack`/`env` in folder `dir` (normally `.cairn/` beside the stack file).
    pub fn new(dir: PathBuf, stack: &str, env: &str) -> LocalBackend {
        let name = format!("{stack}.{env}");
        let files = Files {
            state: dir.join(format!("{name}.state.json")),
            tmp: dir.join(format!("{name}.state.json.tmp")),
            bak: dir.join(format!("{name}.state.json.bak")),
            journal: dir.join(format!("{name}.journal")),
            lock: dir.join(format!("{name}.lock")),
            stack: stack.to_string(),
            env: env.to_string(),
            dir,
        };
        LocalBackend {
            lock: LockFile::new(files.lock.clone()),
            shared: Arc::new(Shared {
                files,
                known: Mutex::new(Known::Unknown),
                fresh: Mutex::new(None),
                syncs: AtomicU64::new(0),
                written: AtomicU64::new(0),
            }),
            writer: Mutex::new(None),
        }
    }

    /// The committed state file.
    pub fn state_path(&self) -> &Path {
        &self.shared.files.state
    }

    /// The previous committed state.
    pub fn backup_path(&self) -> &Path {
        &self.shared.files.bak
    }

    /// The journal of records since the last commit.
    pub fn journal_path(&self) -> &Path {
        &self.shared.files.journal
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.shared.files.lock
    }

    /// How many times the journal was synced to disk: one per group-committed
    /// batch of appends, so far fewer than the appends under concurrency.
    pub fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Sends `msg` to the writer thread (starting it if needed) and waits
    /// for its answer.
    async fn request(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), StateError>>) -> Msg,
    ) -> Result<(), StateError> {
        let (tx, rx) = oneshot::channel();
        let msg = make(tx);
        let stopped = || StateError::Io {
            operation: "write",
            location: self.location(),
            message: "the state writer thread stopped".to_string(),
        };
        {
            let mut writer = guard(&self.writer);
            let sender = match writer.as_ref() {
                Some(sender) => sender.clone(),
                None => {
                    let (sender, receiver) = mpsc::channel();
                    let worker = Writer::new(Arc::clone(&self.shared));
                    std::thread::Builder::new()
                        .name("cairn-state-writer".to_string())
                        .spawn(move || worker.run(receiver))
                        .map_err(|e| StateError::Io {
                            operation: "start state writer",
                            location: self.location(),
                            message: e.to_string(),
                        })?;
                    writer.insert(sender).clone()
                }
            };
            sender.send(msg).map_err(|_| stopped())?;
        }
        rx.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.shared.files.state.display().to_string()
    }

    async fn lock(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError> {
        self.lock.acquire(info, wait).await
    }

    async fn unlock(&self) -> Result<(), StateError> {
        self.lock.release()
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        self.lock.holder().await
    }

    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        self.lock.force(id).await
    }

    fn bytes_written(&self) -> u64 {
        self.shared
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn load(&self) -> Result<Loaded, StateError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.load())
            .await
            .map_err(|e| StateError::Io {
                operation: "load",
                location: self.location(),
                message: e.to_string(),
            })?
    }

    /// Durable when it returns; concurrent calls share one `fdatasync`.
    async fn append(&self, entries: &[JournalEntry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(256 * entries.len());
        journal::encode_entries(entries, &mut bytes, &self.shared.files.journal)?;
        self.shared
            .written
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.request(|reply| Msg::Append { bytes, reply }).await
    }

    /// Serializes `state` on the calling thread (once per run), then lets
    /// the writer thread replace the state file after any pending appends.
    async fn commit(&self, state: &State) -> Result<(), StateError> {
        let files = &self.shared.files;
        if state.stack != files.stack || state.env != files.env {
            return Err(self.shared.wrong_stack(&state.stack, &state.env));
        }
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            operation: "encode state",
            location: self.location(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        self.shared
            .written
            .fetch_add(json.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let head = StateHead {
            lineage: state.lineage.clone(),
            serial: state.serial,
            stack: state.stack.clone(),
            env: state.env.clone(),
        };
        self.request(|reply| Msg::Commit { json, head, reply })
            .await
    }
}
