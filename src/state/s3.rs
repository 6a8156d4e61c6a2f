//! The S3 backend (`[state] backend = "s3"`): state shared by every machine
//! that can reach the bucket, e.g. CI runners, with the same guarantees as
//! the local backend. Its only concurrency primitive is the S3 conditional
//! write (`If-None-Match: *` / `If-Match: <etag>`), so it needs no DynamoDB
//! table or other lock service.
//!
//! For state object `s3://B/K` the bucket holds:
//!
//! - `K`: the manifest of the last finished snapshot: a small JSON object
//!   (`{"cairn_snapshot":1,"lineage":…,"serial":N,"stack":…,"env":…,
//!   "generation":G,"parts":P,"bytes":…}`) naming the parts that hold the
//!   state of serial `N`. A `K` written by an earlier cairn holds a whole
//!   [`State`] (pretty JSON) instead: still read, and replaced by a
//!   manifest when the first snapshot finishes. A manifest has no
//!   `resources`, so an earlier cairn refuses it instead of reading an
//!   empty state;
//! - `K.snap/G/NNNNN`: the parts of snapshot generation `G` (20 digits),
//!   numbered from 0; concatenated they are a state file in the line
//!   format of [`super::snapshot`] (header, one record per line, footer),
//!   each part whole lines. `G` is also the number of the first journal
//!   object that continues the snapshot. The parts of the manifest's
//!   generation and of the backup's are kept; others are deleted when a
//!   snapshot finishes;
//! - `K.bak`: the state object before the last finished snapshot: the
//!   previous manifest (its parts are kept), or, the first time, the whole
//!   state an earlier cairn wrote, copied server-side;
//! - `K.lock`: the lock, holding the holder's [`LockInfo`] as JSON. It is
//!   created with `If-None-Match: *`, so of two runs racing for it exactly
//!   one write succeeds (S3 answers the other with 412); the winner reads
//!   it back after a moment to be sure (see `lock::LOCK_SETTLE`: not every
//!   S3-compatible store makes that check atomic). Released with a delete
//!   conditioned on the ETag of our own write, so a run never deletes a
//!   lock that was force-unlocked and taken by someone else. Unlike a local
//!   `flock`, a process that dies keeps the lock: `cairn force-unlock`
//!   removes it;
//! - `K.journal/SEQ`: the journal, one object per group-committed batch of
//!   records, numbered by one sequence that runs on across commits and
//!   snapshots (20 digits, so the listing is in order; never below the
//!   manifest's generation). Each object is in the [`super::journal`]
//!   format: a header naming the lineage and the committed serial it
//!   continues (the last commit marker before it, or the snapshot's
//!   serial), records, and for a commit a closing `{"commit":N}` marker.
//!   Objects named `K.journal/SERIAL/SEQ`, left by an earlier cairn, are
//!   read before them while `K` is a whole state.
//!
//! The committed state is the snapshot with the journal's committed
//! segments replayed on top: [`Backend::load`] reads the manifest, the
//! parts it names, lists the journal objects numbered from its generation
//! on, reads them (parts and objects [`READ_AHEAD`] at a time) and replays
//! them in order with the local journal's rules
//! ([`journal::replay_chained`]). Records after the last marker are the
//! uncommitted tail of a run that died: replayed, counted in
//! [`Loaded::replayed`], searched for pending intents. Journal objects
//! numbered before the generation, and parts of other generations, are
//! never read: a snapshot that finished but did not finish deleting leaves
//! them stale. An object of another lineage, or continuing a serial the
//! journal did not reach, is reported rather than guessed at. A load that
//! finds the journal changed under it (a snapshot finished and deleted
//! what it held) reads again when the state object's ETag moved.
//!
//! Journal batches: concurrent [`Backend::append`] calls queue their encoded
//! records; whichever caller gets the writer first takes everything queued
//! and writes it with one `PutObject`, answering all of those callers. So an
//! apply makes about one request per batch of concurrent operations, never
//! one per record, and every record is durable remotely when `append`
//! returns: a CI runner that vanishes mid-apply loses nothing that was
//! acknowledged. Every journal object is created with `If-None-Match: *` on
//! its own key, so of two writers that read the same journal, the first to
//! write the next number wins and the other is refused: they can never
//! both continue it.
//!
//! Commit: while it holds the lock the backend keeps the state it loaded
//! (its *view*), updated by every append, so a commit writes one journal
//! object holding what the journal does not already say
//! ([`State::delta_to`]) and the commit marker, after checking (a
//! `HeadObject`) that the state object is still the one it loaded.
//!
//! No commit writes the whole state. When the journal objects since the
//! snapshot hold [`COMPACT_FACTOR`] times the bytes of the snapshot the
//! state would make, a commit starts a new one, of generation `G` = its
//! journal object's number + 1, holding its serial. Each commit from then
//! on, after its journal object, writes the next records of the committed
//! state in address order, from a cursor, as one more part (created with
//! `If-None-Match: *`), as many as fit in its budget: twice the bytes of
//! the records the run added or changed, minus everything the run already
//! wrote (journal objects included), as the local backend does. Records
//! taken at later serials are no harm: the journal objects from `G` on
//! hold every change since the snapshot's serial, and replay is last-wins.
//! Once the last part (with the footer) is written and the budget still
//! has room, the commit writes the backup (the previous manifest) to
//! `K.bak` and the new manifest to `K` with `If-Match` the ETag read
//! (`If-None-Match: *` when there was none), then deletes the journal
//! objects before `G` and the parts of generations other than `G` and the
//! backup's. A crash before the manifest leaves the old state object and
//! its journal, complete; after it, stale objects that loads ignore.
//! Should the journal since `G` outgrow [`MAX_SEGMENT_FACTOR`] times the
//! state (commits that change too little to pay for the snapshot), a
//! commit finishes it at once; and a commit without a view (no lock, or
//! after a failed write) reads the state and journal again, refuses if the
//! state object is not the one last loaded, and writes a whole snapshot
//! in one part.
//!
//! Another process (the next run, holding the lock) continues a snapshot
//! under way: on load it lists `K.snap/`, takes the newest generation
//! after the manifest's whose parts run from 0 without a gap, whose first
//! part's header names the lineage and the serial committed by journal
//! object `G - 1`, and reads the cursor from its last part's last line
//! (or finds the footer there: only the manifest is left). Parts of a
//! generation that fails these checks (abandoned, foreign) are never
//! continued nor loaded; the next snapshot's cleanup deletes them.
//!
//! If the state object changed since it was read, S3 refuses the
//! manifest and the commit fails with [`StateError::Conflict`] instead of
//! losing the other update (unless the object now holds a snapshot at
//! least as new, of the same lineage).
//!
//! [`Backend::bytes_written`] counts every byte the backend writes:
//! journal objects, parts, manifests and backups (the one server-side copy
//! of a whole state object too); [`Backend::compactions`] counts finished
//! snapshots. The price of spreading is on the read side: a load reads the
//! manifest, one part per commit that carried a share (read
//! [`READ_AHEAD`] at a time), and the journal since the snapshot began
//! (up to about [`COMPACT_FACTOR`] times the state before a snapshot
//! starts, plus what the commits write while it is written).
//!
//! Every conditional write is idempotent on retry: when the SDK retries a
//! write whose first attempt landed but whose answer was lost, the retry is
//! refused; the backend then reads the object back and counts it as written
//! if it holds exactly our bytes (our lock id, for the lock).
//!
//! One object holds one stack and env: running `--env prod` against the key
//! of `default` is refused as [`StateError::WrongStack`], so give each env
//! its own `key` (a variable set in `[env.NAME.vars]`, as in
//! `key = "app/${var.stage}.json"`, or `--state-key`).
//!
//! Credentials, region and endpoint come from the standard AWS chain
//! (environment, profiles, `AWS_ENDPOINT_URL`), overridden by `region` and
//! `endpoint_url` of `[state]`; the client is built as the AWS provider's.

mod lock;
mod objects;
mod snapshot;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::objects::{Bucket, Cond, Object};
use self::snapshot::{Content, Pass, Share};
use super::journal::{self, Base, Fit, Tail};
use super::local::{COMPACT_FACTOR, MAX_SEGMENT_FACTOR, View};
use super::*;

/// Journal objects (and snapshot parts) read at once by a load.
const READ_AHEAD: usize = 32;

/// A load that finds the journal or the parts changed under it (a
/// snapshot finished meanwhile) reads again, up to this many times.
const READ_RETRIES: u32 = 3;

/// What the state object holds, as far as replacing it needs.
#[derive(Debug, Clone)]
enum Stored {
    /// A whole state (the layout before snapshots in parts), of `len`
    /// bytes: backed up by a server-side copy.
    Whole { len: u64 },
    /// A manifest: its generation (whose parts are kept as the backup's)
    /// and its bytes (the backup).
    Manifest { generation: u64, bytes: Vec<u8> },
}

/// What this backend knows of the state object.
#[derive(Debug, Clone)]
enum Known {
    /// Not read yet, or possibly changed by a failed write.
    Unknown,
    /// There is no state object.
    Missing,
    /// The state object holds `base` as `stored` and has ETag `etag`.
    At {
        base: Base,
        etag: String,
        stored: Stored,
    },
}

impl Known {
    fn serial(&self) -> u64 {
        match self {
            Known::At { base, .. } => base.serial,
            Known::Missing | Known::Unknown => 0,
        }
    }
}

/// The lock this backend holds.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    /// ETag of our lock object (empty if the store sent none).
    etag: String,
}

/// An encoded batch waiting for the journal writer, and its caller.
type Queued = (Vec<u8>, oneshot::Sender<Result<(), StateError>>);

/// The journal writer's own state, behind an async mutex: whoever holds it
/// writes the next batch or commits.
#[derive(Debug, Default)]
struct JournalWriter {
    /// Sequence number of the next journal object; `None` until listed.
    next_seq: Option<u64>,
    /// The lineage and committed serial new journal objects continue (the
    /// last commit marker, or the state object); `None` until read.
    chain: Option<Base>,
    /// Bytes in the journal objects that continue the state object.
    journal_bytes: u64,
}

/// One journal object's key and where it sorts: objects named
/// `SERIAL/SEQ` (an earlier cairn's) first, then `SEQ`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct JournalObject {
    /// `None` for an earlier cairn's object, which sorts first.
    seq: Option<u64>,
    legacy: (u64, u64),
    key: String,
}

/// One journal object as a load replayed it.
#[derive(Debug, Clone)]
struct Mark {
    /// Its number (`None`: an earlier cairn's object).
    seq: Option<u64>,
    len: u64,
    /// Its last commit marker, if it has one.
    committed: Option<u64>,
}

/// What reading the state object and the journal found.
#[derive(Debug)]
struct Read {
    /// The committed state with the uncommitted tail replayed.
    state: State,
    known: Known,
    tail: Tail,
    chain: Base,
    next_seq: u64,
    /// The number of the first journal object the state object does not
    /// hold (its manifest's generation; 0 for a whole state or none).
    from: u64,
    /// The journal objects that continue the state object, in order.
    marks: Vec<Mark>,
    /// A listed journal object was gone when read.
    vanished: bool,
}

impl Read {
    /// Bytes of the journal objects numbered `from` or later.
    fn journal_bytes(&self, from: u64) -> u64 {
        self.marks
            .iter()
            .filter(|m| m.seq.map_or(from == 0, |s| s >= from))
            .map(|m| m.len)
            .sum()
    }
}

/// The view (the committed state as loaded, with every append since
/// applied, and what this run changed) and the snapshot under way, kept
/// while this backend holds the lock.
#[derive(Debug)]
struct Kept {
    view: View,
    pass: Option<Pass>,
}

/// The object a state object's bytes were read as.
struct Head {
    base: Base,
    etag: String,
    stored: Stored,
    content: Content,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State for one stack and env in one S3 object. See the module docs for
/// the objects and how they are written.
#[derive(Debug)]
pub struct S3Backend {
    bucket: Bucket,
    key: String,
    stack: String,
    env: String,
    known: Mutex<Known>,
    /// The lineage of a state not yet committed, so `load` and the journal
    /// headers agree on it.
    fresh: Mutex<Option<String>>,
    held: Mutex<Option<Held>>,
    /// The view and the snapshot under way, kept while this backend holds
    /// the lock; `None` otherwise or after a failed write.
    view: Mutex<Option<Kept>>,
    queue: Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<JournalWriter>,
    /// Journal objects written.
    puts: AtomicU64,
    /// Bytes of every object written: journal objects, snapshot parts,
    /// manifests, backups.
    written: AtomicU64,
    /// Snapshots finished (manifests written).
    compactions: AtomicU64,
}

impl S3Backend {
    /// State for `stack`/`env` at `s3://bucket/key`. `region` and
    /// `endpoint_url` override the standard AWS configuration chain.
    /// Builds the client only: nothing is sent until the first call.
    pub async fn connect(
        bucket: &str,
        key: &str,
        region: Option<&str>,
        endpoint_url: Option<&str>,
        stack: &str,
        env: &str,
    ) -> Result<S3Backend, StateError> {
        let location = format!("s3://{bucket}/{key}");
        if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
            return Err(StateError::Remote {
                message: format!(
                    "`{location}` is not a state object: the S3 backend needs a bucket and an object key"
                ),
                location,
            });
        }
        let settings = crate::provider::aws::Settings {
            region: region.map(str::to_string),
            endpoint_url: endpoint_url.map(str::to_string),
            ..Default::default()
        };
        let clients = crate::provider::aws::connect(&settings)
            .await
            .map_err(|_| StateError::Remote {
                message: format!(
                    "no AWS region for the state bucket `{bucket}`: set `region` in [state], --state-region, or AWS_REGION"
                ),
                location,
            })?;
        Ok(S3Backend::new(
            clients.s3,
            &clients.region,
            bucket,
            key,
            stack,
            env,
        ))
    }

    /// State for `stack`/`env` at `s3://bucket/key` through `client`
    /// (configured for `region`).
    pub fn new(
        client: aws_sdk_s3::Client,
        region: &str,
        bucket: &str,
        key: &str,
        stack: &str,
        env: &str,
    ) -> S3Backend {
        S3Backend {
            bucket: Bucket {
                client,
                name: bucket.to_string(),
                region: region.to_string(),
            },
            key: key.to_string(),
            stack: stack.to_string(),
            env: env.to_string(),
            known: Mutex::new(Known::Unknown),
            fresh: Mutex::new(None),
            held: Mutex::new(None),
            view: Mutex::new(None),
            queue: Mutex::new(Vec::new()),
            writer: tokio::sync::Mutex::new(JournalWriter::default()),
            puts: AtomicU64::new(0),
            written: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket.name
    }

    /// The key of the state object (the manifest of the last finished
    /// snapshot, or a whole state written by an earlier cairn).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of the state object before the last finished snapshot
    /// (that snapshot's manifest, whose parts are kept).
    pub fn backup_key(&self) -> String {
        format!("{}.bak", self.key)
    }

    /// The key of the lock object.
    pub fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }

    /// The prefix of the journal objects.
    pub fn journal_prefix(&self) -> String {
        format!("{}.journal/", self.key)
    }

    /// The key of journal object number `seq`.
    pub fn journal_key(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.journal_prefix())
    }

    /// How many journal objects this backend wrote: one per batch of
    /// concurrent appends (so far fewer than the appends under
    /// concurrency), plus one per commit.
    pub fn journal_puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    fn fresh_lineage(&self) -> String {
        guard(&self.fresh).get_or_insert_with(new_lineage).clone()
    }

    fn known(&self) -> Known {
        guard(&self.known).clone()
    }

    fn set_known(&self, known: Known) {
        *guard(&self.known) = known;
    }

    fn drop_view(&self) {
        *guard(&self.view) = None;
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The state object, decoded, and its ETag, if there is one.
    async fn fetch_head(&self) -> Result<Option<Head>, StateError> {
        let Some(Object { body, etag }) = self.bucket.get(&self.key).await? else {
            return Ok(None);
        };
        let content = snapshot::decode_object(&body, &self.location(), &self.stack, &self.env)?;
        // Every write of the state is conditioned on its ETag.
        let etag = etag.filter(|e| !e.is_empty()).ok_or_else(|| StateError::Remote {
            location: self.location(),
            message: format!(
                "{} was read without an ETag: the S3 backend needs a store with conditional writes",
                self.location()
            ),
        })?;
        let (base, stored) = match &content {
            Content::Whole(state) => (
                state.base(),
                Stored::Whole {
                    len: body.len() as u64,
                },
            ),
            Content::Manifest(manifest) => (
                manifest.base(),
                Stored::Manifest {
                    generation: manifest.generation,
                    bytes: body,
                },
            ),
        };
        Ok(Some(Head {
            base,
            etag,
            stored,
            content,
        }))
    }

    /// What is known of the state object, reading it if need be.
    async fn ensure_known(&self) -> Result<Known, StateError> {
        let known = self.known();
        if !matches!(known, Known::Unknown) {
            return Ok(known);
        }
        let known = match self.fetch_head().await? {
            None => Known::Missing,
            Some(head) => Known::At {
                base: head.base,
                etag: head.etag,
                stored: head.stored,
            },
        };
        self.set_known(known.clone());
        Ok(known)
    }

    /// The journal objects, in order.
    async fn journal_objects(&self) -> Result<Vec<JournalObject>, StateError> {
        let prefix = self.journal_prefix();
        let mut found: Vec<JournalObject> = self
            .bucket
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|key| {
                let name = key.strip_prefix(&prefix)?;
                let object = match name.split_once('/') {
                    Some((serial, seq)) => JournalObject {
                        seq: None,
                        legacy: (serial.parse().ok()?, seq.parse().ok()?),
                        key,
                    },
                    None => JournalObject {
                        seq: Some(name.parse().ok()?),
                        legacy: (0, 0),
                        key,
                    },
                };
                Some(object)
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The number after the last journal object.
    fn next_seq_after(objects: &[JournalObject]) -> u64 {
        objects
            .iter()
            .filter_map(|o| o.seq)
            .max()
            .map_or(0, |seq| seq + 1)
    }

    /// The bodies of the objects under `keys`, [`READ_AHEAD`] requests at
    /// a time (`None` for one deleted meanwhile).
    async fn read_keys(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        let mut bodies = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_AHEAD) {
            let mut reads = tokio::task::JoinSet::new();
            for (i, key) in chunk.iter().enumerate() {
                let bucket = self.bucket.clone();
                let key = key.clone();
                reads.spawn(async move { (i, bucket.get(&key).await) });
            }
            let mut got: Vec<Option<Vec<u8>>> = vec![None; chunk.len()];
            while let Some(joined) = reads.join_next().await {
                let (i, read) = joined.map_err(|e| StateError::Io {
                    operation: "read",
                    location: self.location(),
                    message: e.to_string(),
                })?;
                if let Some(slot) = got.get_mut(i) {
                    *slot = read?.map(|o| o.body);
                }
            }
            bodies.extend(got);
        }
        Ok(bodies)
    }

    /// Reads the state object (and the parts it names) and replays the
    /// journal objects on it. Should the journal or the parts change
    /// under the read (a snapshot finished meanwhile, deleting what it
    /// made stale), reads again.
    async fn read(&self) -> Result<Read, StateError> {
        let mut attempts = 0;
        loop {
            let mut seen = None;
            let result = self.read_once(&mut seen).await;
            let retry = match &result {
                Ok(read) => read.vanished,
                Err(StateError::Corrupt { .. }) => true,
                Err(_) => false,
            };
            if !retry || attempts >= READ_RETRIES {
                return result;
            }
            attempts += 1;
            if self.bucket.etag(&self.key).await? == seen {
                return result;
            }
        }
    }

    /// One [`S3Backend::read`]; `seen` gets the state object's ETag.
    async fn read_once(&self, seen: &mut Option<String>) -> Result<Read, StateError> {
        let head = self.fetch_head().await?;
        *seen = head.as_ref().map(|h| h.etag.clone());
        let (mut state, mut chain, known, from) = match head {
            None => (State::new(&self.stack, &self.env), None, Known::Missing, 0),
            Some(Head {
                base,
                etag,
                stored,
                content,
            }) => {
                let (state, from) = match content {
                    Content::Whole(state) => (state, 0),
                    Content::Manifest(manifest) => {
                        (self.read_parts(&manifest).await?, manifest.generation)
                    }
                };
                let known = Known::At {
                    base: base.clone(),
                    etag,
                    stored,
                };
                (state, Some(base), known, from)
            }
        };
        let all = self.journal_objects().await?;
        let next_seq = S3Backend::next_seq_after(&all).max(from);
        // Objects numbered before the manifest's generation are in its
        // parts (left by a cleanup that did not finish): not even read.
        let objects: Vec<JournalObject> = all
            .into_iter()
            .filter(|o| from == 0 || o.seq.is_some_and(|s| s >= from))
            .collect();
        let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
        let bodies = self.read_keys(&keys).await?;
        let mut tail = Tail::default();
        let mut marks = Vec::new();
        let mut vanished = false;
        let mut continued = false;
        for (object, body) in objects.iter().zip(bodies) {
            let Some(body) = body else {
                vanished = true;
                continue;
            };
            let url = self.bucket.url(&object.key);
            let (fit, scanned) = journal::replay_chained(
                &body,
                Path::new(&url),
                chain.as_ref(),
                &mut state,
                &mut tail,
            )?;
            let corrupt = StateError::corrupt_at(&url);
            match fit {
                Fit::Current => {
                    continued = true;
                    marks.push(Mark {
                        seq: object.seq,
                        len: body.len() as u64,
                        committed: scanned.committed,
                    });
                    chain = Some(state.base());
                }
                Fit::Empty => {}
                // Older than the state object: folded into it by a
                // snapshot (or an earlier cairn's compaction) that did not
                // finish deleting.
                Fit::Stale if !continued => {}
                Fit::Stale => {
                    let continues = scanned.header.map_or(0, |h| h.base_serial);
                    return Err(corrupt(format!(
                        "the journal object continues serial {continues}, but the objects before it committed serial {}: two runs wrote this journal",
                        state.serial
                    )));
                }
                Fit::Foreign(message) => return Err(corrupt(message)),
            }
        }
        if chain.is_none() {
            state.lineage = self.fresh_lineage();
        } else if matches!(known, Known::Missing) {
            // A journal and no state object yet: the journal's lineage.
            *guard(&self.fresh) = Some(state.lineage.clone());
        }
        let chain = chain.unwrap_or_else(|| Base {
            lineage: state.lineage.clone(),
            serial: 0,
        });
        Ok(Read {
            state,
            known,
            tail,
            chain,
            next_seq,
            from,
            marks,
            vanished,
        })
    }

    /// Takes what `read` found as what this backend and its writer know;
    /// `pass` is the generation of the snapshot under way, if any (the
    /// journal objects the writer counts start there).
    fn adopt(&self, writer: &mut JournalWriter, read: &Read, pass: Option<u64>) {
        self.set_known(read.known.clone());
        writer.next_seq = Some(read.next_seq);
        writer.chain = Some(read.chain.clone());
        writer.journal_bytes = read.journal_bytes(pass.unwrap_or(read.from));
    }

    /// A new view of `state`, as loaded.
    fn new_view(&self, state: State) -> View {
        View {
            state,
            state_file: None,
            before: BTreeMap::new(),
            written_at_start: self.written(),
        }
    }

    /// The generation of the snapshot under way, if the view has one.
    fn pass_generation(&self) -> Option<u64> {
        guard(&self.view)
            .as_ref()
            .and_then(|k| k.pass.as_ref())
            .map(|p| p.generation)
    }

    /// Writes one journal object: the header for the writer's chain, then
    /// `bytes` (encoded records and maybe a commit marker), with
    /// `If-None-Match: *`. Its number when written; `None` when the number
    /// was taken by someone else's object.
    async fn write_batch(
        &self,
        writer: &mut JournalWriter,
        bytes: &[u8],
    ) -> Result<Option<u64>, StateError> {
        let result = self.try_write_batch(writer, bytes).await;
        if !matches!(result, Ok(Some(_))) {
            // What reached the bucket is unknown, or someone else writes
            // this journal: list again before the next write, and let the
            // commit check everything.
            writer.next_seq = None;
            self.drop_view();
        }
        result
    }

    async fn try_write_batch(
        &self,
        writer: &mut JournalWriter,
        bytes: &[u8],
    ) -> Result<Option<u64>, StateError> {
        // Unknown after a failed write: read again, which numbers on past
        // both the listed objects and the manifest's generation (a listing
        // alone may be empty after a snapshot's cleanup, and a number below
        // the generation would never be loaded).
        let seq = match writer.next_seq {
            Some(seq) if writer.chain.is_some() => seq,
            _ => {
                let read = self.read().await?;
                self.adopt(writer, &read, self.pass_generation());
                read.next_seq
            }
        };
        // Never reuse a number, even after a failed write.
        writer.next_seq = Some(seq + 1);
        let mut body = Vec::with_capacity(bytes.len() + 96);
        if let Some(chain) = &writer.chain {
            journal::encode_header(chain, &mut body);
        }
        body.extend_from_slice(bytes);
        let len = body.len() as u64;
        let written = self
            .put_once(&self.journal_key(seq), body, Cond::Absent)
            .await?;
        if written.is_none() {
            return Ok(None);
        }
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.written.fetch_add(len, Ordering::Relaxed);
        writer.journal_bytes += len;
        Ok(Some(seq))
    }

    /// The error for an append whose journal number was taken.
    fn taken(&self, seq: Option<u64>) -> StateError {
        let location = match seq {
            Some(seq) => self.bucket.url(&self.journal_key(seq)),
            None => self.bucket.url(&self.journal_prefix()),
        };
        StateError::Remote {
            message: format!(
                "journal object {location} already exists: another run is writing this state's journal without holding the lock"
            ),
            location,
        }
    }

    /// Writes everything queued as one batch and answers its callers.
    async fn flush(&self, writer: &mut JournalWriter) {
        let batch = std::mem::take(&mut *guard(&self.queue));
        if batch.is_empty() {
            return;
        }
        let mut bytes = Vec::with_capacity(batch.iter().map(|(b, _)| b.len()).sum());
        for (b, _) in &batch {
            bytes.extend_from_slice(b);
        }
        let seq = writer.next_seq;
        let result = match self.write_batch(writer, &bytes).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.taken(seq)),
            Err(e) => Err(e),
        };
        for (_, reply) in batch {
            // A caller that stopped waiting is no error here.
            drop(reply.send(result.clone()));
        }
    }

    /// Writes `body` under `key` if `cond` holds: its new ETag (empty if
    /// the store sent none), or `None` when the object there is not ours.
    /// A conditional write whose answer is lost is retried by the SDK, and
    /// the retry is refused because the first attempt did land: so a
    /// refusal is read back, and an object holding exactly `body` counts
    /// as our write.
    async fn put_once(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: Cond<'_>,
    ) -> Result<Option<String>, StateError> {
        if let Some(etag) = self.bucket.put(key, body.clone(), cond).await? {
            return Ok(Some(etag));
        }
        Ok(self
            .bucket
            .get(key)
            .await?
            .filter(|o| o.body == body)
            .map(|o| o.etag.unwrap_or_default()))
    }

    /// The serial of the state object now, for a conflict's message.
    async fn serial_now(&self) -> u64 {
        self.fetch_head()
            .await
            .ok()
            .flatten()
            .map_or(0, |head| head.base.serial)
    }

    /// A conflict: the state changed since this backend read it.
    fn conflict(&self, state: &State, found: u64) -> StateError {
        StateError::Conflict {
            location: self.location(),
            expected: state.serial.saturating_sub(1),
            found,
        }
    }

    /// Refuses unless the state object is still the one `known` describes
    /// (one `HeadObject`): a journal commit leaves the state object alone,
    /// so this is how it notices a writer that replaced it.
    async fn check_unchanged(&self, state: &State, known: &Known) -> Result<(), StateError> {
        let now = self.bucket.etag(&self.key).await?;
        let same = match (known, &now) {
            (Known::At { etag, .. }, Some(now)) => etag == now,
            (Known::Missing, None) | (Known::Unknown, _) => true,
            _ => false,
        };
        if same {
            return Ok(());
        }
        Err(self.conflict(state, self.serial_now().await))
    }

    /// [`Backend::commit`] with the writer held.
    async fn commit_locked(
        &self,
        writer: &mut JournalWriter,
        state: &State,
    ) -> Result<(), StateError> {
        let kept = guard(&self.view).take();
        let had_view = kept.is_some();
        let Kept { mut view, mut pass } = match kept {
            Some(kept) => kept,
            None => {
                // No view: read everything again, and refuse if the state
                // object is not the one last loaded.
                let before = self.known();
                let read = self.read().await?;
                let changed = match (&before, &read.known) {
                    (Known::Unknown, _) | (Known::Missing, Known::Missing) => false,
                    (Known::At { etag, .. }, Known::At { etag: now, .. }) => etag != now,
                    _ => true,
                };
                if changed {
                    self.set_known(Known::Unknown);
                    return Err(self.conflict(state, read.known.serial()));
                }
                self.adopt(writer, &read, None);
                Kept {
                    view: self.new_view(read.state),
                    pass: None,
                }
            }
        };
        if view.state.lineage != state.lineage {
            return Err(StateError::LineageMismatch {
                location: self.location(),
                expected: state.lineage.clone(),
                found: view.state.lineage,
            });
        }
        if view.state.serial + 1 != state.serial {
            return Err(self.conflict(state, view.state.serial));
        }
        let delta = view.state.delta_to(state);
        let mut bytes = Vec::with_capacity(256 * delta.len() + 32);
        journal::encode_entries(&delta, &mut bytes, Path::new(&self.journal_prefix()))?;
        journal::encode_commit(state.serial, &mut bytes);
        if had_view {
            // A journal commit leaves the state object alone: make sure it
            // is still the one the journal continues.
            self.check_unchanged(state, &self.known()).await?;
        }
        let seq = writer.next_seq;
        let Some(seq) = self.write_batch(writer, &bytes).await? else {
            let found = match self.read().await {
                Ok(read) => read.state.serial,
                Err(_) => self.serial_now().await,
            };
            return Err(if found >= state.serial {
                self.conflict(state, found)
            } else {
                self.taken(seq)
            });
        };
        // The snapshot `state` makes: the view's, once it takes the delta.
        let size = snapshot_len(state);
        // The writer's journal bytes count this commit's object now.
        let start = pass.is_none()
            && (!had_view || writer.journal_bytes >= COMPACT_FACTOR.saturating_mul(size));
        let base = state.base();
        writer.chain = Some(base.clone());
        for entry in &delta {
            view.apply(entry);
        }
        view.state.serial = state.serial;
        if start {
            // The journal outgrew the snapshot it would need (or there is
            // no view to spread one over): start one of this state; the
            // journal objects after this one continue it.
            pass = Some(Pass::new(seq + 1, base));
            writer.journal_bytes = 0;
        }
        if let Some(p) = pass.as_mut() {
            // Two bytes written per byte changed, the journal's included;
            // a journal that outgrew its bound (commits too small to pay
            // for the snapshot), or a commit without a view, finishes it
            // at once.
            let budget =
                if !had_view || writer.journal_bytes > MAX_SEGMENT_FACTOR.saturating_mul(size) {
                    u64::MAX
                } else {
                    let run = self.written().saturating_sub(view.written_at_start);
                    (2 * view.changed_bytes()).saturating_sub(run)
                };
            let known = self.ensure_known().await?;
            match self.share(p, &view.state, budget, &known).await? {
                Share::Continued => {}
                Share::Finished | Share::Abandoned => pass = None,
            }
        }
        if had_view && guard(&self.held).is_some() {
            view.before.clear();
            view.written_at_start = self.written();
            *guard(&self.view) = Some(Kept { view, pass });
        }
        Ok(())
    }
}

/// The bytes of the snapshot of `state`.
fn snapshot_len(state: &State) -> u64 {
    super::snapshot::encoded_len(state)
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self) -> String {
        self.bucket.url(&self.key)
    }

    fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn compactions(&self) -> u64 {
        self.compactions.load(Ordering::Relaxed)
    }

    async fn lock(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError> {
        self.acquire(info, wait).await
    }

    /// Deletes the lock object if it is still the one this backend wrote.
    async fn unlock(&self) -> Result<(), StateError> {
        self.drop_view();
        self.release().await
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        self.holder().await
    }

    /// Deletes the lock if its id is `id`, whoever holds it: S3 cannot tell
    /// a dead holder from a live one, so the caller must know it is gone.
    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        self.force(id).await
    }

    /// Keeps the loaded state as the view when this backend holds the lock.
    async fn load(&self) -> Result<Loaded, StateError> {
        let mut writer = self.writer.lock().await;
        let read = self.read().await?;
        let held = guard(&self.held).is_some();
        // Under the lock, commits go on with the snapshot under way.
        let pass = if held {
            self.discover(&read).await?
        } else {
            None
        };
        self.adopt(&mut writer, &read, pass.as_ref().map(|p| p.generation));
        *guard(&self.view) = held.then(|| Kept {
            view: self.new_view(read.state.clone()),
            pass,
        });
        Ok(Loaded {
            state: read.state,
            replayed: read.tail.records,
            pending: read.tail.into_open(),
        })
    }

    /// Durable in the bucket when it returns; concurrent calls share one
    /// `PutObject`.
    async fn append(&self, entries: &[JournalEntry]) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(256 * entries.len());
        journal::encode_entries(entries, &mut bytes, Path::new(&self.journal_prefix()))?;
        let (reply, mut answer) = oneshot::channel();
        {
            // The view takes the records in the order the journal does.
            let mut queue = guard(&self.queue);
            if let Some(kept) = guard(&self.view).as_mut() {
                for entry in entries {
                    kept.view.apply(entry);
                }
            }
            queue.push((bytes, reply));
        }
        loop {
            // Whoever gets the writer writes everything queued by then; a
            // caller whose records went out in someone else's batch stops
            // waiting for the writer as soon as that batch is answered.
            tokio::select! {
                biased;
                result = &mut answer => {
                    return result.map_err(|_| StateError::Io {
                        operation: "append to journal",
                        location: self.bucket.url(&self.journal_prefix()),
                        message: "the journal writer stopped".to_string(),
                    })?;
                }
                mut writer = self.writer.lock() => self.flush(&mut writer).await,
            }
        }
    }

    /// Writes what the view lacks and a commit marker as one journal
    /// object, then this commit's share of a snapshot when one is under
    /// way (or starts one, once the journal has outgrown the state by
    /// [`COMPACT_FACTOR`]); without a view, a whole snapshot.
    async fn commit(&self, state: &State) -> Result<(), StateError> {
        check_stack(
            &self.location(),
            &state.stack,
            &state.env,
            &self.stack,
            &self.env,
        )?;
        let mut writer = self.writer.lock().await;
        // Appends sent before the commit land in the journal first.
        self.flush(&mut writer).await;
        let result = self.commit_locked(&mut writer, state).await;
        if result.is_err() {
            writer.chain = None;
            writer.next_seq = None;
            self.drop_view();
        }
        result
    }
}
