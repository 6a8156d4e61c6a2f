//! State: what this stack owns in the world, per stack and env.
//!
//! A [`State`] records each resource's physical id, attributes, ownership
//! and dependencies, with a serial and a lineage. Backends persist it: the
//! local backend (default, under `.cairn/` beside the stack file) and the S3
//! backend. During a run, changes go to an append-only journal, one durable
//! record per operation (group-committed), so saving costs O(changed
//! records), never O(all resources) per operation. [`Backend::commit`]
//! makes the run's state the committed one: the local backend appends a
//! commit marker to its journal and, once the journal has outgrown the
//! state file, builds a new one a few records per commit (see
//! [`LocalBackend`]); the S3 backend writes the difference and the
//! marker as one journal object and, once the journal objects have
//! outgrown the state, writes a snapshot a part per commit, finished by a
//! small manifest in the state object (see `S3Backend`).

mod atomic;
mod fsutil;
mod journal;
mod local;
mod lock;
#[cfg(feature = "aws")]
mod s3;
mod snapshot;
mod writer;

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Address, Attrs, Value};
use crate::provider::Operation;

pub use atomic::write_atomic;
pub use local::LocalBackend;
pub use lock::{LockInfo, rfc3339_utc};
#[cfg(feature = "aws")]
pub use s3::S3Backend;

pub const STATE_FORMAT_VERSION: u32 = 1;

/// How this stack came to own a live object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// cairn created it: updated and deleted by cairn.
    Created,
    /// Existed before, taken over with `adopt`: managed like `Created`.
    Adopted,
    /// Existed before, used as-is with `reuse`: never modified or deleted.
    Reused,
}

impl Ownership {
    /// Whether destroy deletes it.
    pub fn is_managed(self) -> bool {
        !matches!(self, Ownership::Reused)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Physical id.
    pub id: String,
    pub ownership: Ownership,
    /// Live attributes after the last operation (inputs and computed).
    pub attributes: Attrs,
    /// Dependencies when last applied: destroy and orphan deletes follow them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// The identity value (e.g. name) the object was found or created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    /// Random at creation; a state with another lineage is another history.
    pub lineage: String,
    /// Incremented by every commit.
    pub serial: u64,
    pub stack: String,
    pub env: String,
    pub resources: BTreeMap<Address, ResourceState>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
}

impl State {
    pub fn new(stack: &str, env: &str) -> State {
        State {
            format_version: STATE_FORMAT_VERSION,
            lineage: new_lineage(),
            serial: 0,
            stack: stack.to_string(),
            env: env.to_string(),
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Its lineage and serial: what a journal segment or a snapshot that
    /// starts from it names in its header.
    pub(crate) fn base(&self) -> journal::Base {
        journal::Base {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }

    /// Applies one journal record.
    pub fn apply_entry(&mut self, entry: &JournalEntry) {
        match entry {
            JournalEntry::Intent { .. } | JournalEntry::Done { .. } => {}
            JournalEntry::Put { address, resource } => {
                self.resources.insert(address.clone(), resource.clone());
            }
            JournalEntry::Remove { address } => {
                self.resources.remove(address);
            }
            JournalEntry::Outputs { outputs } => self.outputs = outputs.clone(),
        }
    }

    /// Applies one journal record, taking it (no copy of the record).
    pub(crate) fn apply_owned(&mut self, entry: JournalEntry) {
        match entry {
            JournalEntry::Intent { .. } | JournalEntry::Done { .. } => {}
            JournalEntry::Put { address, resource } => {
                self.resources.insert(address, resource);
            }
            JournalEntry::Remove { address } => {
                self.resources.remove(&address);
            }
            JournalEntry::Outputs { outputs } => self.outputs = outputs,
        }
    }

    /// The records that turn `self` into `target` (serial and lineage
    /// aside): a `Put` per added or changed resource, a `Remove` per
    /// resource gone, `Outputs` if they differ. One pass over both
    /// (sorted) maps, comparing records without encoding them.
    pub(crate) fn delta_to(&self, target: &State) -> Vec<JournalEntry> {
        let mut out = Vec::new();
        let mut old = self.resources.iter().peekable();
        for (address, resource) in &target.resources {
            while let Some((gone, _)) = old.next_if(|(a, _)| *a < address) {
                out.push(JournalEntry::Remove {
                    address: gone.clone(),
                });
            }
            match old.next_if(|(a, _)| *a == address) {
                Some((_, before)) if before == resource => {}
                _ => out.push(JournalEntry::Put {
                    address: address.clone(),
                    resource: resource.clone(),
                }),
            }
        }
        out.extend(old.map(|(gone, _)| JournalEntry::Remove {
            address: gone.clone(),
        }));
        if self.outputs != target.outputs {
            out.push(JournalEntry::Outputs {
                outputs: target.outputs.clone(),
            });
        }
        out
    }
}

/// A lineage: 128 random-enough bits from time, pid and address-space noise, hex.
pub fn new_lineage() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let noise = &nanos as *const u128 as usize;
    let mut h = crate::hash::Fnv64::default();
    h.part(&nanos.to_le_bytes());
    h.part(&std::process::id().to_le_bytes());
    h.part(&noise.to_le_bytes());
    let a = h.finish();
    h.part(b"second half");
    format!("{a:016x}{:016x}", h.finish())
}

/// One durable record of the run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalEntry {
    /// Written before a provider call that changes the world.
    Intent {
        address: Address,
        operation: Operation,
        /// The identity the object will have (for creates), to find it again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
        /// The physical id, for updates and deletes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// The intent's operation finished and nothing is to be recorded (a
    /// failed create, say); `Put`/`Remove` also close an intent.
    Done {
        address: Address,
    },
    /// A resource as it is after a successful operation.
    Put {
        address: Address,
        resource: ResourceState,
    },
    /// A resource deleted or forgotten.
    Remove {
        address: Address,
    },
    Outputs {
        outputs: BTreeMap<String, Value>,
    },
}

/// An intent whose operation has no recorded outcome: the process died
/// between the intent and its result.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingIntent {
    pub address: Address,
    pub operation: Operation,
    pub identity: Option<String>,
    pub id: Option<String>,
}

/// What [`Backend::load`] found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The state with every journal record replayed.
    pub state: State,
    /// Journal records replayed on top of the last committed state: the
    /// uncommitted tail, non-zero after a run that did not finish.
    pub replayed: usize,
    pub pending: Vec<PendingIntent>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    #[error("state is locked by {holder}")]
    Locked { holder: LockInfo },
    #[error("timed out after {waited:?} waiting for the state lock held by {holder}")]
    LockTimeout { holder: LockInfo, waited: Duration },
    #[error("{operation} {location}: {message}")]
    Io {
        operation: &'static str,
        location: String,
        message: String,
    },
    #[error("state at {location} is not valid: {message}")]
    Corrupt { location: String, message: String },
    #[error(
        "state at {location} belongs to stack `{found_stack}` env `{found_env}`, not `{stack}` env `{env}`"
    )]
    WrongStack {
        location: String,
        found_stack: String,
        found_env: String,
        stack: String,
        env: String,
    },
    #[error(
        "state at {location} changed while this run held it (expected serial {expected}, found {found}): another writer bypassed the lock"
    )]
    Conflict {
        location: String,
        expected: u64,
        found: u64,
    },
    #[error(
        "state at {location} has lineage {found}, not {expected}: it was replaced by another history"
    )]
    LineageMismatch {
        location: String,
        expected: String,
        found: String,
    },
    #[error("no lock with id {id} is held on {location}")]
    NoSuchLock { location: String, id: String },
    /// A remote store refused or could not serve the request for a reason
    /// worth its own words (a missing bucket, denied access, no region);
    /// `message` is complete and names the location.
    #[error("{message}")]
    Remote { location: String, message: String },
}

impl StateError {
    /// Makes the `Corrupt` errors of one decoder: each message at `location`.
    pub(crate) fn corrupt_at(location: impl std::fmt::Display) -> impl Fn(String) -> StateError {
        let location = location.to_string();
        move |message| StateError::Corrupt {
            location: location.clone(),
            message,
        }
    }
}

/// Refuses a state of `found_stack`/`found_env`, read from (or meant for)
/// `location`, where `stack`/`env` is served: [`StateError::WrongStack`].
pub(crate) fn check_stack(
    location: &str,
    found_stack: &str,
    found_env: &str,
    stack: &str,
    env: &str,
) -> Result<(), StateError> {
    if found_stack == stack && found_env == env {
        return Ok(());
    }
    Err(StateError::WrongStack {
        location: location.to_string(),
        found_stack: found_stack.to_string(),
        found_env: found_env.to_string(),
        stack: stack.to_string(),
        env: env.to_string(),
    })
}

/// A journal write already placed (see [`Backend::place`]): resolves once
/// its records are durable, or with the error that kept them from it.
pub type Placed =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StateError>> + Send + 'static>>;

/// Where state is kept. One backend instance serves one stack and env.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Human-readable location, e.g. `.cairn/demo.default.state.json`.
    fn location(&self) -> String;

    /// Bytes of state (journal records and state files) this backend has
    /// written so far, for `CAIRN_STATS` and the benchmarks.
    fn bytes_written(&self) -> u64 {
        0
    }

    /// Takes the exclusive lock. Fails at once with [`StateError::Locked`]
    /// when someone holds it and `wait` is zero; otherwise waits up to `wait`.
    async fn lock(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError>;

    /// Releases the lock this backend holds (no-op if none).
    async fn unlock(&self) -> Result<(), StateError>;

    /// Who holds the lock, if anyone.
    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError>;

    /// Removes a lock left by a dead process, if its id matches.
    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError>;

    /// The committed state with any journal replayed; a fresh state (serial
    /// 0, new lineage) if there is none.
    async fn load(&self) -> Result<Loaded, StateError>;

    /// Called once the state is loaded: a backend holding the lock may get
    /// ready for the appends to come (the local backend opens or creates
    /// its journal in the background, so the first intent of an apply does
    /// not wait for it). Never fails: whatever goes wrong here, the first
    /// append meets again and reports.
    fn prepare(&self) {}

    /// Appends records to the journal; durable when this returns.
    async fn append(&self, entries: &[JournalEntry]) -> Result<(), StateError>;

    /// Places records in the journal without waiting for them to be
    /// durable: when this returns, they come before anything appended or
    /// committed later, and the returned future resolves once they are
    /// durable. Should their write fail, no commit requested before that
    /// failure is known lands after it (it fails too), so a commit marker
    /// never covers records that did not reach the journal. `None`: this
    /// backend cannot place records without waiting; use
    /// [`Backend::append`].
    ///
    /// An apply places the intents of operations about to start (their
    /// write starts at once, not when a task gets to it) and its batches
    /// of outcome records (its commit need not wait for the last batch's
    /// sync before sending its own).
    fn place(&self, entries: &[JournalEntry]) -> Option<Placed> {
        let _ = entries;
        None
    }

    /// Makes `state` the committed state (its serial must be one more than
    /// the last committed one, its lineage the same): atomic and durable,
    /// and what every later [`Backend::load`] returns. How is the backend's
    /// business: the local backend appends what differs plus a commit
    /// marker to its journal, and, once the journal has grown large, a
    /// share of a new state file within twice the records the run changed
    /// (finished: it replaces the state file, the previous kept as a
    /// backup); the S3 backend writes the difference and the marker as
    /// one journal object, and, once the journal objects hold twice the
    /// state's bytes, a part of a snapshot per commit within the same
    /// budget (finished: a small manifest replaces the state object).
    async fn commit(&self, state: &State) -> Result<(), StateError>;

    /// Commits that rewrote the whole state (compactions) so far, for
    /// `CAIRN_STATS` and the benchmarks.
    fn compactions(&self) -> u64 {
        0
    }
}

/// Counts the bytes written to it.
#[derive(Default)]
struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of `value` as compact JSON, without keeping the bytes.
pub(crate) fn json_len(value: &impl Serialize) -> Option<u64> {
    let mut counter = Counter::default();
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.0)
}
