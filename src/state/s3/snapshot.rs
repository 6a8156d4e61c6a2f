//! The S3 backend's snapshots, written in parts over many commits so that
//! no commit writes more than its budget (see the parent module's docs):
//! the manifest that the state object holds once a snapshot is complete,
//! reading a snapshot back from its parts, finding an unfinished one to
//! continue, writing a commit's share, and finishing.
//!
//! A snapshot of generation `G` is the objects `K.snap/G/00000`,
//! `K.snap/G/00001`, …: concatenated, they are a state file in the line
//! format of [`crate::state::snapshot`] (header line, one record per line,
//! footer line), each part holding whole lines. `G` (20 digits) is also
//! the number of the first journal object that continues the snapshot:
//! the commit that started it wrote journal object `G - 1`, whose commit
//! marker is the serial in the header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::objects::Cond;
use super::{Known, Read, S3Backend, Stored};
use crate::state::journal::{self, Base};
use crate::state::local::snapshot_chunk;
use crate::state::snapshot::Last;
use crate::state::{Backend, State, StateError, check_stack, snapshot};

/// Version of the manifest format (its `cairn_snapshot` field).
pub(super) const MANIFEST_VERSION: u32 = 1;

/// A manifest naming more parts than this is refused as corrupt (a
/// snapshot gets one part per commit that carried a share).
const MAX_PARTS: u64 = 1_000_000;

/// What the state object holds once a snapshot is complete: which parts
/// make it up and which state they hold. Small, so that finishing a
/// snapshot (and backing up the previous manifest) costs a few hundred
/// bytes. It has no `resources` field, so a cairn that only knows whole
/// state objects refuses it rather than reading an empty state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    /// The manifest format; its presence tells a manifest from a state.
    pub cairn_snapshot: u32,
    pub lineage: String,
    /// The serial the parts hold (the state when the snapshot began).
    pub serial: u64,
    pub stack: String,
    pub env: String,
    /// The parts are `K.snap/GENERATION/NNNNN`; journal objects numbered
    /// from `generation` on continue them.
    pub generation: u64,
    /// How many parts.
    pub parts: u64,
    /// Their bytes, all together.
    pub bytes: u64,
}

impl Manifest {
    pub(super) fn base(&self) -> Base {
        Base {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }

    /// The manifest as the state object holds it: compact JSON, a newline.
    fn encode(&self, location: &str) -> Result<Vec<u8>, StateError> {
        let mut json = serde_json::to_vec(self).map_err(|e| StateError::Io {
            operation: "encode state",
            location: location.to_string(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        Ok(json)
    }
}

/// Only the field that marks a manifest: whether the state object is one.
#[derive(Deserialize)]
struct Probe {
    cairn_snapshot: Option<u32>,
}

/// What the state object holds, decoded.
#[derive(Debug)]
pub(super) enum Content {
    /// A whole state (the layout before snapshots in parts).
    Whole(State),
    Manifest(Manifest),
}

/// Decodes the state object's bytes, read from `location`, for
/// `stack`/`env`.
pub(super) fn decode_object(
    body: &[u8],
    location: &str,
    stack: &str,
    env: &str,
) -> Result<Content, StateError> {
    let corrupt = StateError::corrupt_at(location);
    let probe: Probe = serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
    let Some(version) = probe.cairn_snapshot else {
        return journal::decode_state(body, location, stack, env).map(Content::Whole);
    };
    if version > MANIFEST_VERSION {
        return Err(corrupt(format!(
            "snapshot manifest version {version} is newer than this cairn supports ({MANIFEST_VERSION})"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
    check_stack(location, &manifest.stack, &manifest.env, stack, env)?;
    Ok(Content::Manifest(manifest))
}

/// A snapshot being written, as the committing side knows it.
#[derive(Debug, Clone)]
pub(super) struct Pass {
    pub generation: u64,
    /// Parts written so far.
    pub parts: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The header's base and the last record written.
    pub lines: snapshot::Progress,
    /// Every part is written (the last ends with the footer): only the
    /// manifest is left.
    pub done: bool,
}

impl Pass {
    /// A snapshot of the state committed as `base` by journal object
    /// `generation - 1`.
    pub(super) fn new(generation: u64, base: Base) -> Pass {
        Pass {
            generation,
            parts: 0,
            bytes: 0,
            lines: snapshot::Progress::new(base),
            done: false,
        }
    }
}

/// What a commit's share did to the snapshot.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Share {
    /// Went on (or had no budget): the pass continues.
    Continued,
    /// Wrote the manifest: the snapshot is the state object now.
    Finished,
    /// A part's key holds someone else's object: the pass is given up (a
    /// later commit starts another).
    Abandoned,
}

/// The lines of `bytes` (each ending in a newline), without it.
fn lines(bytes: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter_map(|l| l.strip_suffix(b"\n"))
}

impl S3Backend {
    /// The prefix of every snapshot's parts.
    pub fn snapshot_prefix(&self) -> String {
        format!("{}.snap/", self.key)
    }

    /// The key of part `part` of snapshot generation `generation`.
    pub fn part_key(&self, generation: u64, part: u64) -> String {
        format!("{}{generation:020}/{part:05}", self.snapshot_prefix())
    }

    /// The parts in the bucket, by generation: each part's number and size.
    async fn parts_by_generation(&self) -> Result<BTreeMap<u64, BTreeMap<u64, u64>>, StateError> {
        let prefix = self.snapshot_prefix();
        let mut out: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
        for (key, size) in self.bucket.list_sized(&prefix).await? {
            let Some((generation, part)) = key
                .strip_prefix(&prefix)
                .and_then(|name| name.split_once('/'))
            else {
                continue;
            };
            if let (Ok(generation), Ok(part)) = (generation.parse(), part.parse()) {
                out.entry(generation).or_default().insert(part, size);
            }
        }
        Ok(out)
    }

    /// The state the manifest's parts hold (read [`super::READ_AHEAD`] at
    /// a time), checked against the manifest.
    pub(super) async fn read_parts(&self, manifest: &Manifest) -> Result<State, StateError> {
        if manifest.parts == 0 || manifest.parts > MAX_PARTS {
            return Err(StateError::Corrupt {
                location: self.location(),
                message: format!("the manifest names {} parts", manifest.parts),
            });
        }
        let keys: Vec<String> = (0..manifest.parts)
            .map(|part| self.part_key(manifest.generation, part))
            .collect();
        let bodies = self.read_keys(&keys).await?;
        let mut whole = Vec::new();
        for (key, body) in keys.iter().zip(bodies) {
            let Some(body) = body else {
                return Err(StateError::Corrupt {
                    location: self.bucket.url(key),
                    message: format!(
                        "snapshot part missing: the state object names {} parts of generation {}",
                        manifest.parts, manifest.generation
                    ),
                });
            };
            whole.extend_from_slice(&body);
        }
        let location = self.bucket.url(&self.part_key(manifest.generation, 0));
        if whole.len() as u64 != manifest.bytes {
            return Err(StateError::Corrupt {
                location,
                message: format!(
                    "the snapshot's parts hold {} bytes, the state object says {}",
                    whole.len(),
                    manifest.bytes
                ),
            });
        }
        let state = journal::decode_state(&whole, &location, &self.stack, &self.env)?;
        if state.lineage != manifest.lineage || state.serial != manifest.serial {
            return Err(StateError::Corrupt {
                location,
                message: format!(
                    "the snapshot's parts hold serial {} of lineage {}, the state object says serial {} of lineage {}",
                    state.serial, state.lineage, manifest.serial, manifest.lineage
                ),
            });
        }
        Ok(state)
    }

    /// The unfinished snapshot a commit should continue, if there is one:
    /// the newest generation after the state object's whose parts run
    /// from 0 without a gap, whose header names the lineage and the serial
    /// that journal object `generation - 1` committed, and whose last part
    /// ends in a whole record (or the footer: only the manifest is left).
    /// Anything else (parts of an abandoned or foreign snapshot) is left
    /// for the cleanup of the next snapshot to finish.
    pub(super) async fn discover(&self, read: &Read) -> Result<Option<Pass>, StateError> {
        let found = self.parts_by_generation().await?;
        for (&generation, parts) in found.iter().rev() {
            if generation <= read.from {
                break;
            }
            let Some(mark) = read
                .marks
                .iter()
                .find(|m| m.seq == Some(generation - 1) && m.committed.is_some())
            else {
                continue;
            };
            let Some(serial) = mark.committed else {
                continue;
            };
            let base = Base {
                lineage: read.state.lineage.clone(),
                serial,
            };
            if !parts.keys().copied().eq(0..parts.len() as u64) {
                continue;
            }
            if let Some(pass) = self.progress(generation, parts, base).await? {
                return Ok(Some(pass));
            }
        }
        Ok(None)
    }

    /// Where the parts of `generation` (numbers and sizes) leave a pass of
    /// `base`, reading its first and last parts; `None` if they do not
    /// make one.
    async fn progress(
        &self,
        generation: u64,
        parts: &BTreeMap<u64, u64>,
        base: Base,
    ) -> Result<Option<Pass>, StateError> {
        let count = parts.len() as u64;
        let Some(last_part) = count.checked_sub(1) else {
            return Ok(None);
        };
        let Some(first) = self.bucket.get(&self.part_key(generation, 0)).await? else {
            return Ok(None);
        };
        let header = lines(&first.body).next();
        if header.and_then(|h| snapshot::header_base(h, &self.stack, &self.env))
            != Some(base.clone())
        {
            return Ok(None);
        }
        let last = if last_part == 0 {
            first.body
        } else {
            match self
                .bucket
                .get(&self.part_key(generation, last_part))
                .await?
            {
                Some(object) => object.body,
                None => return Ok(None),
            }
        };
        if last.last() != Some(&b'\n') {
            return Ok(None);
        }
        let mut pass = Pass::new(generation, base);
        pass.parts = count;
        pass.bytes = parts.values().sum();
        pass.lines.len = pass.bytes;
        match lines(&last).next_back().map(snapshot::last_line) {
            Some(Some(Last::Footer)) => pass.done = true,
            // Only the header so far.
            Some(_) if last_part == 0 && lines(&last).count() == 1 => {}
            Some(Some(Last::Record(address))) => pass.lines.cursor = Some(address),
            Some(None) | None => return Ok(None),
        }
        Ok(Some(pass))
    }

    /// Writes this commit's share of `pass`: the next records of `state`
    /// within `budget` bytes as one more part, and, once every part is
    /// written and the budget still has room for them, the manifest (and
    /// the backup). `state` is the committed state; `known` what the state
    /// object was when it was last read.
    pub(super) async fn share(
        &self,
        pass: &mut Pass,
        state: &State,
        budget: u64,
        known: &Known,
    ) -> Result<Share, StateError> {
        let mut left = budget;
        if !pass.done {
            let key = self.part_key(pass.generation, pass.parts);
            let mut lines = pass.lines.clone();
            let location = self.bucket.url(&key);
            if let Some(chunk) = snapshot_chunk(state, &mut lines, left, Path::new(&location))? {
                let len = chunk.bytes.len() as u64;
                let written = self.put_once(&key, chunk.bytes, Cond::Absent).await?;
                if written.is_none() {
                    return Ok(Share::Abandoned);
                }
                self.written.fetch_add(len, Ordering::Relaxed);
                pass.parts += 1;
                pass.bytes += len;
                pass.lines = lines;
                pass.done = chunk.finish;
                left = left.saturating_sub(len);
            }
        }
        if !pass.done {
            return Ok(Share::Continued);
        }
        let manifest = Manifest {
            cairn_snapshot: MANIFEST_VERSION,
            lineage: pass.lines.base.lineage.clone(),
            serial: pass.lines.base.serial,
            stack: self.stack.clone(),
            env: self.env.clone(),
            generation: pass.generation,
            parts: pass.parts,
            bytes: pass.bytes,
        };
        let json = manifest.encode(&self.location())?;
        // The backup of a manifest is that manifest; a whole state object
        // (the layout before) is copied once, outside the budget.
        let backup = match known {
            Known::At {
                stored: Stored::Manifest { bytes, .. },
                ..
            } => bytes.len() as u64,
            _ => 0,
        };
        if json.len() as u64 + backup > left {
            return Ok(Share::Continued);
        }
        self.finish(&manifest, json, known).await?;
        Ok(Share::Finished)
    }

    /// Backs up the state object, replaces it with `manifest` (`json`),
    /// `If-Match` the ETag it had when read, then deletes what the new
    /// snapshot made stale: journal objects before its generation and
    /// parts of generations other than it and the backup's.
    async fn finish(
        &self,
        manifest: &Manifest,
        json: Vec<u8>,
        known: &Known,
    ) -> Result<(), StateError> {
        let len = json.len() as u64;
        let mut kept = None;
        let written = match known {
            Known::At { base, .. } if base.lineage != manifest.lineage => {
                return Err(StateError::LineageMismatch {
                    location: self.location(),
                    expected: manifest.lineage.clone(),
                    found: base.lineage.clone(),
                });
            }
            Known::At {
                etag,
                stored: Stored::Manifest { generation, bytes },
                ..
            } => {
                self.bucket
                    .put(&self.backup_key(), bytes.clone(), Cond::Any)
                    .await?;
                self.written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                kept = Some(*generation);
                self.put_once(&self.key, json.clone(), Cond::Matches(etag))
                    .await?
            }
            Known::At {
                etag,
                stored: Stored::Whole { len },
                ..
            } => {
                if self
                    .bucket
                    .copy(&self.key, &self.backup_key(), etag)
                    .await?
                {
                    self.written.fetch_add(*len, Ordering::Relaxed);
                    self.put_once(&self.key, json.clone(), Cond::Matches(etag))
                        .await?
                } else {
                    None
                }
            }
            Known::Missing => self.put_once(&self.key, json.clone(), Cond::Absent).await?,
            Known::Unknown => None,
        };
        let Some(etag) = written else {
            // Someone wrote the state object since it was read: a writer
            // that finished a snapshot as new as this one is no conflict.
            let found = self.fetch_head().await?;
            self.set_known(Known::Unknown);
            let found = found.map(|head| head.base);
            return match found {
                Some(now) if now.lineage == manifest.lineage && now.serial >= manifest.serial => {
                    Ok(())
                }
                other => Err(StateError::Conflict {
                    location: self.location(),
                    expected: manifest.serial,
                    found: other.map_or(0, |b| b.serial),
                }),
            };
        };
        self.written.fetch_add(len, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.set_known(if etag.is_empty() {
            Known::Unknown
        } else {
            Known::At {
                base: manifest.base(),
                etag,
                stored: Stored::Manifest {
                    generation: manifest.generation,
                    bytes: json,
                },
            }
        });
        // The manifest is durable: what it made stale is ignored by loads,
        // so a failed delete only leaves garbage for the next snapshot.
        if let Ok(objects) = self.journal_objects().await {
            let old: Vec<String> = objects
                .into_iter()
                .filter(|o| o.seq.is_none_or(|s| s < manifest.generation))
                .map(|o| o.key)
                .collect();
            drop(self.bucket.delete_all(&old).await);
        }
        if let Ok(generations) = self.parts_by_generation().await {
            let keep: BTreeSet<u64> = [Some(manifest.generation), kept]
                .into_iter()
                .flatten()
                .collect();
            let old: Vec<String> = generations
                .iter()
                .filter(|(g, _)| !keep.contains(g))
                .flat_map(|(g, parts)| parts.keys().map(|p| self.part_key(*g, *p)))
                .collect();
            drop(self.bucket.delete_all(&old).await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            cairn_snapshot: MANIFEST_VERSION,
            lineage: "l".into(),
            serial: 7,
            stack: "s".into(),
            env: "e".into(),
            generation: 12,
            parts: 3,
            bytes: 900,
        }
    }

    #[test]
    fn the_state_object_is_told_apart_as_a_manifest_or_a_whole_state() {
        let m = manifest();
        let json = m.encode("k").unwrap();
        assert!(json.starts_with(b"{\"cairn_snapshot\":1,"));
        match decode_object(&json, "k", "s", "e").unwrap() {
            Content::Manifest(back) => assert_eq!(back, m),
            other => panic!("{other:?}"),
        }
        // Fields in another order (a hand edit), and an extra one: still a
        // manifest.
        let mut value = serde_json::to_value(&m).unwrap();
        value["note"] = serde_json::json!("by hand");
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert!(matches!(
            decode_object(&pretty, "k", "s", "e").unwrap(),
            Content::Manifest(_)
        ));
        let mut state = State::new("s", "e");
        state.serial = 3;
        let whole = serde_json::to_vec_pretty(&state).unwrap();
        match decode_object(&whole, "k", "s", "e").unwrap() {
            Content::Whole(back) => assert_eq!(back, state),
            other => panic!("{other:?}"),
        }
        // A state is no manifest: a cairn that only knows whole states
        // refuses one (no `resources`).
        assert!(serde_json::from_slice::<State>(&json).is_err());
    }

    #[test]
    fn another_stack_a_newer_manifest_and_garbage_are_refused() {
        let json = manifest().encode("k").unwrap();
        assert!(matches!(
            decode_object(&json, "k", "other", "e"),
            Err(StateError::WrongStack { .. })
        ));
        let mut newer = manifest();
        newer.cairn_snapshot = MANIFEST_VERSION + 1;
        let err = decode_object(&newer.encode("k").unwrap(), "k", "s", "e").unwrap_err();
        assert!(err.to_string().contains("newer than this cairn"), "{err}");
        assert!(matches!(
            decode_object(b"{garbage", "k", "s", "e"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
