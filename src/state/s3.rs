//! The S3 backend (`[state] backend = "s3"`): state shared by every machine
//! that can reach the bucket, e.g. CI runners, with the same guarantees as
//! the local backend. Its only concurrency primitive is the S3 conditional
//! write (`If-None-Match: *` / `If-Match: <etag>`), so it needs no DynamoDB
//! table or other lock service.
//!
//! For state object `s3://B/K` the bucket holds:
//!
//! - `K`: the committed [`State`], pretty JSON (the same bytes as a local
//!   state file);
//! - `K.bak`: the previous committed state, copied server-side just before
//!   each commit;
//! - `K.lock`: the lock, holding the holder's [`LockInfo`] as JSON. It is
//!   created with `If-None-Match: *`, so of two runs racing for it exactly
//!   one write succeeds (S3 answers the other with 412); the winner reads
//!   it back after a moment to be sure (see `lock::LOCK_SETTLE`: not every
//!   S3-compatible store makes that check atomic). Released with a delete
//!   conditioned on the ETag of our own write, so a run never deletes a
//!   lock that was force-unlocked and taken by someone else. Unlike a local
//!   `flock`, a process that dies keeps the lock: `cairn force-unlock`
//!   removes it;
//! - `K.journal/SERIAL/SEQ`: the run's journal, one object per
//!   group-committed batch of records (each in the [`super::journal`]
//!   format, with its own header naming the committed state it continues).
//!
//! Journal batches: concurrent [`Backend::append`] calls queue their encoded
//! records; whichever caller gets the writer first takes everything queued
//! and writes it with one `PutObject`, answering all of those callers. So an
//! apply makes about one request per batch of concurrent operations, never
//! one per record, and every record is durable remotely when `append`
//! returns: a CI runner that vanishes mid-apply loses nothing that was
//! acknowledged. [`Backend::load`] lists the journal objects in order and
//! replays those that continue the committed state (same rules as the local
//! journal: stale ones are ignored, foreign ones reported).
//!
//! Commit writes the new state with `If-Match` the ETag seen when the state
//! was read (`If-None-Match: *` when there was none): if anything else wrote
//! the state since, S3 refuses and the commit fails with
//! [`StateError::Conflict`] instead of losing the other update. Only then
//! are the journal objects deleted; a crash in between leaves journal
//! objects of an older serial, which are stale and ignored on load.
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

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::objects::{Bucket, Cond, Object};
use super::journal::{self, Base, Fit};
use super::*;

/// What this backend knows of the committed state object.
#[derive(Debug, Clone)]
enum Known {
    /// Not read yet, or possibly changed by a failed write.
    Unknown,
    /// There is no state object.
    Missing,
    /// The state object is at `base` and has ETag `etag`.
    At { base: Base, etag: String },
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
    /// Sequence number of the next batch object; `None` until listed.
    next_seq: Option<u64>,
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
    queue: Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<JournalWriter>,
    /// Journal objects written.
    puts: AtomicU64,
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
            queue: Mutex::new(Vec::new()),
            writer: tokio::sync::Mutex::new(JournalWriter::default()),
            puts: AtomicU64::new(0),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket.name
    }

    /// The committed state's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of the previous committed state.
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

    /// How many journal objects this backend wrote: one per batch of
    /// concurrent appends, so far fewer than the appends under concurrency.
    pub fn journal_puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    fn journal_key(&self, serial: u64, seq: u64) -> String {
        format!("{}{serial:020}/{seq:010}", self.journal_prefix())
    }

    fn fresh_lineage(&self) -> String {
        guard(&self.fresh).get_or_insert_with(new_lineage).clone()
    }

    fn set_known(&self, known: Known) {
        *guard(&self.known) = known;
    }

    /// The committed state and its ETag, if there is one.
    async fn fetch_state(&self) -> Result<Option<(State, String)>, StateError> {
        let Some(Object { body, etag }) = self.bucket.get(&self.key).await? else {
            return Ok(None);
        };
        let state = journal::decode_state(&body, &self.location(), &self.stack, &self.env)?;
        // Every write of the state is conditioned on its ETag.
        let etag = etag.filter(|e| !e.is_empty()).ok_or_else(|| StateError::Remote {
            location: self.location(),
            message: format!(
                "{} was read without an ETag: the S3 backend needs a store with conditional writes",
                self.location()
            ),
        })?;
        Ok(Some((state, etag)))
    }

    /// What is known of the committed state, reading it if need be.
    async fn ensure_known(&self) -> Result<Known, StateError> {
        let known = guard(&self.known).clone();
        if !matches!(known, Known::Unknown) {
            return Ok(known);
        }
        let known = match self.fetch_state().await? {
            None => Known::Missing,
            Some((state, etag)) => Known::At {
                base: Base {
                    lineage: state.lineage,
                    serial: state.serial,
                },
                etag,
            },
        };
        self.set_known(known.clone());
        Ok(known)
    }

    /// The journal objects as (serial, seq, key), in order.
    async fn journal_objects(&self) -> Result<Vec<(u64, u64, String)>, StateError> {
        let prefix = self.journal_prefix();
        let mut found: Vec<(u64, u64, String)> = self
            .bucket
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|key| {
                let (serial, seq) = key.strip_prefix(&prefix)?.split_once('/')?;
                Some((serial.parse().ok()?, seq.parse().ok()?, key))
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The sequence number after the last journal object continuing `serial`.
    async fn next_seq(&self, serial: u64) -> Result<u64, StateError> {
        Ok(self
            .journal_objects()
            .await?
            .iter()
            .filter(|(s, _, _)| *s == serial)
            .map(|(_, seq, _)| seq + 1)
            .max()
            .unwrap_or(0))
    }

    /// Writes one journal object holding `bytes` (encoded records).
    async fn write_batch(
        &self,
        writer: &mut JournalWriter,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let base = match self.ensure_known().await? {
            Known::At { base, .. } => base,
            Known::Missing | Known::Unknown => Base {
                lineage: self.fresh_lineage(),
                serial: 0,
            },
        };
        let seq = match writer.next_seq {
            Some(seq) => seq,
            None => self.next_seq(base.serial).await?,
        };
        // Never reuse a number, even after a failed write.
        writer.next_seq = Some(seq + 1);
        let key = self.journal_key(base.serial, seq);
        let mut body = Vec::with_capacity(bytes.len() + 96);
        journal::encode_header(&base, &mut body);
        body.extend_from_slice(bytes);
        let written = match self.bucket.put(&key, body.clone(), Cond::Absent).await? {
            Some(_) => true,
            // Our own write, whose answer was lost and whose retry was refused?
            None => self.holds(&key, &body).await?.is_some(),
        };
        match written {
            true => {
                self.puts.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            false => {
                writer.next_seq = None;
                Err(StateError::Remote {
                    message: format!(
                        "journal object {} already exists: another run is writing this state's journal without holding the lock",
                        self.bucket.url(&key)
                    ),
                    location: self.bucket.url(&key),
                })
            }
        }
    }

    /// The ETag of the object under `key` if it holds exactly `body`. A
    /// conditional write whose answer is lost is retried by the SDK, and the
    /// retry is refused because the first attempt did land: reading back
    /// tells our own write from someone else's.
    async fn holds(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError> {
        Ok(self
            .bucket
            .get(key)
            .await?
            .filter(|o| o.body == body)
            .map(|o| o.etag.unwrap_or_default()))
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
        let result = self.write_batch(writer, &bytes).await;
        for (_, reply) in batch {
            // A caller that stopped waiting is no error here.
            drop(reply.send(result.clone()));
        }
    }

    /// Writes the state object if `cond` holds: its new ETag, or `None`.
    async fn put_state(&self, json: Vec<u8>, cond: Cond<'_>) -> Result<Option<String>, StateError> {
        match self.bucket.put(&self.key, json.clone(), cond).await? {
            Some(etag) => Ok(Some(etag)),
            None => self.holds(&self.key, &json).await,
        }
    }

    /// Writes the new state object over the one at `known`; on a lost race,
    /// the conflict with the serial found.
    async fn replace_state(
        &self,
        state: &State,
        json: Vec<u8>,
        known: &Known,
    ) -> Result<(), StateError> {
        let location = self.location();
        let expected = state.serial.saturating_sub(1);
        let written = match known {
            Known::At { base, .. } if base.lineage != state.lineage => {
                return Err(StateError::LineageMismatch {
                    location,
                    expected: state.lineage.clone(),
                    found: base.lineage.clone(),
                });
            }
            Known::At { base, .. } if base.serial + 1 != state.serial => {
                return Err(StateError::Conflict {
                    location,
                    expected,
                    found: base.serial,
                });
            }
            Known::Missing | Known::Unknown if state.serial != 1 => {
                return Err(StateError::Conflict {
                    location,
                    expected,
                    found: 0,
                });
            }
            Known::At { etag, .. } => {
                if self
                    .bucket
                    .copy(&self.key, &self.backup_key(), etag)
                    .await?
                {
                    self.put_state(json, Cond::Matches(etag)).await?
                } else {
                    None
                }
            }
            Known::Missing | Known::Unknown => self.put_state(json, Cond::Absent).await?,
        };
        match written {
            Some(etag) => {
                self.set_known(if etag.is_empty() {
                    Known::Unknown
                } else {
                    Known::At {
                        base: Base {
                            lineage: state.lineage.clone(),
                            serial: state.serial,
                        },
                        etag,
                    }
                });
                Ok(())
            }
            None => {
                let found = self
                    .fetch_state()
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |(s, _)| s.serial);
                Err(StateError::Conflict {
                    location,
                    expected,
                    found,
                })
            }
        }
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self) -> String {
        self.bucket.url(&self.key)
    }

    async fn lock(&self, info: &LockInfo, wait: Duration) -> Result<(), StateError> {
        self.acquire(info, wait).await
    }

    /// Deletes the lock object if it is still the one this backend wrote.
    async fn unlock(&self) -> Result<(), StateError> {
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

    async fn load(&self) -> Result<Loaded, StateError> {
        let mut writer = self.writer.lock().await;
        let committed = self.fetch_state().await?;
        let base = committed.as_ref().map(|(s, _)| Base {
            lineage: s.lineage.clone(),
            serial: s.serial,
        });
        let current_serial = base.as_ref().map_or(0, |b| b.serial);
        let mut entries = Vec::new();
        let mut lineage: Option<String> = None;
        let mut next_seq = 0;
        for (serial, seq, key) in self.journal_objects().await? {
            if serial == current_serial {
                next_seq = next_seq.max(seq + 1);
            }
            let Some(object) = self.bucket.get(&key).await? else {
                continue;
            };
            let url = self.bucket.url(&key);
            let parsed = journal::parse(&object.body, Path::new(&url))?;
            let foreign = |message: String| StateError::Corrupt {
                location: url.clone(),
                message,
            };
            match journal::fit(parsed.header.as_ref(), base.as_ref()) {
                Fit::Current => {
                    let header_lineage = parsed.header.map(|h| h.lineage).unwrap_or_default();
                    match &lineage {
                        Some(l) if *l != header_lineage => {
                            return Err(foreign(format!(
                                "the journal object belongs to lineage {header_lineage}, earlier ones to lineage {l}"
                            )));
                        }
                        Some(_) => {}
                        None => lineage = Some(header_lineage),
                    }
                    entries.extend(parsed.entries);
                }
                Fit::Empty | Fit::Stale => {}
                Fit::Foreign(message) => return Err(foreign(message)),
            }
        }
        let mut state = match committed {
            Some((state, etag)) => {
                self.set_known(Known::At {
                    base: Base {
                        lineage: state.lineage.clone(),
                        serial: state.serial,
                    },
                    etag,
                });
                state
            }
            None => {
                if let Some(l) = &lineage {
                    *guard(&self.fresh) = Some(l.clone());
                }
                self.set_known(Known::Missing);
                let mut state = State::new(&self.stack, &self.env);
                state.lineage = self.fresh_lineage();
                state
            }
        };
        writer.next_seq = Some(next_seq);
        for entry in &entries {
            state.apply_entry(entry);
        }
        Ok(Loaded {
            state,
            replayed: entries.len(),
            pending: journal::pending(&entries),
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
        guard(&self.queue).push((bytes, reply));
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

    async fn commit(&self, state: &State) -> Result<(), StateError> {
        if state.stack != self.stack || state.env != self.env {
            return Err(StateError::WrongStack {
                location: self.location(),
                found_stack: state.stack.clone(),
                found_env: state.env.clone(),
                stack: self.stack.clone(),
                env: self.env.clone(),
            });
        }
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            operation: "encode state",
            location: self.location(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        let mut writer = self.writer.lock().await;
        // Appends sent before the commit land in the old journal first.
        self.flush(&mut writer).await;
        let known = self.ensure_known().await?;
        if let Err(e) = self.replace_state(state, json, &known).await {
            self.set_known(Known::Unknown);
            writer.next_seq = None;
            return Err(e);
        }
        writer.next_seq = Some(0);
        // The new state is durable: the journal is folded into it. Should
        // deleting fail, the objects are stale (older serial) and ignored.
        if let Ok(objects) = self.journal_objects().await {
            let old: Vec<String> = objects
                .into_iter()
                .filter(|(serial, _, _)| *serial < state.serial)
                .map(|(_, _, key)| key)
                .collect();
            drop(self.bucket.delete_all(&old).await);
        }
        Ok(())
    }
}
