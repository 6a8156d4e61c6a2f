//! The single writer thread of a local backend: it owns the journal file,
//! group-commits appends, and performs commits in order with them.
//!
//! Callers encode their entries and send them over a channel. The thread
//! takes one request, drains every request already queued, writes them with
//! one `write`, calls `sync_data` once and then wakes all of those callers.
//! While it waits for the disk, new requests queue up and form the next
//! batch, so N concurrent callers share one fsync instead of paying N.
//! Commits go through the same channel, so a commit sees every append sent
//! before it, and appends sent after it land after its commit marker (in
//! the new segment when the commit rolled, in a fresh journal after a
//! compaction). After a commit's marker the thread also writes its share
//! of the snapshot being built, and finishes it (see [`super::local`]).
//!
//! Any failed write forgets the backend's view ([`Shared::drop_view`]): what
//! reached the disk is then unknown, so the next commit compacts from the
//! caller's state and the files themselves.
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};

use tokio::sync::oneshot;

use super::StateError;
use super::fsutil::{create_dir, io_error, read_optional, sync_dir, write_private_synced};
use super::journal::{self, Base};
use super::local::{FileId, Shared, StateHead};

/// Stop draining the queue into one batch beyond this many bytes.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Answer to a request.
pub(crate) type Reply = oneshot::Sender<Result<(), StateError>>;

/// A request to the writer thread.
pub(crate) enum Msg {
    /// Encoded journal lines to append durably.
    Append { bytes: Vec<u8>, reply: Reply },
    /// Encoded journal lines ending with a commit marker, to append durably
    /// if nobody else wrote the state files since they were loaded: the
    /// state file must still be `state_file`.
    Commit {
        bytes: Vec<u8>,
        /// The serial the marker commits.
        serial: u64,
        /// The view's epoch the difference was computed in (see
        /// [`Shared::epoch`]): a write failed since means the difference
        /// may assume records that are not in the journal.
        epoch: u64,
        state_file: Option<FileId>,
        /// After the marker: start a new segment with this header line
        /// (a snapshot begins, see [`super::snapshot`]).
        roll: Option<Vec<u8>>,
        /// After the marker (and roll): this commit's share of the snapshot.
        chunk: Option<Chunk>,
        reply: Reply,
    },
    /// Open (or create) the journal now, ahead of the first append. No
    /// answer: an error here comes back at the first append.
    Open,
    /// A new state file (its pretty JSON, lineage, serial, stack, env),
    /// replacing the state file and the journal.
    Compact {
        json: Vec<u8>,
        head: StateHead,
        reply: Reply,
    },
}

/// Bytes to append to the snapshot being written.
pub(crate) struct Chunk {
    /// Where they go: the snapshot's length before them (0: a new file).
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// They end with the footer: finish the snapshot (sync it, make it
    /// the state file, retire the older segment).
    pub finish: bool,
}

/// What a commit marker expects of the files.
pub(crate) struct Expect {
    serial: u64,
    state_file: Option<FileId>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The journal, open for appending, once it has been checked against
    /// the committed state and cut to its valid prefix.
    journal: Option<File>,
    /// The journal's length as this thread left it.
    len: u64,
    /// The header to write before the next batch (the journal is empty).
    header: Option<Base>,
    /// The snapshot being written, open for appending.
    snap: Option<File>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>) -> Writer {
        Writer {
            shared,
            journal: None,
            len: 0,
            header: None,
            snap: None,
        }
    }

    /// Serves requests until every sender is dropped.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        let mut next = None;
        loop {
            let msg = match next.take() {
                Some(msg) => msg,
                None => match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => return,
                },
            };
            match msg {
                Msg::Append { mut bytes, reply } => {
                    let mut replies = vec![reply];
                    while bytes.len() < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(Msg::Append { bytes: more, reply }) => {
                                bytes.extend_from_slice(&more);
                                replies.push(reply);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    let result = self.write_batch(&bytes, None);
                    for reply in replies {
                        // A caller that gave up waiting is no error here.
                        drop(reply.send(result.clone()));
                    }
                }
                Msg::Commit {
                    bytes,
                    serial,
                    epoch,
                    state_file,
                    roll,
                    chunk,
                    reply,
                } => {
                    if epoch != self.shared.epoch.load(Ordering::SeqCst) {
                        let path = self.shared.active_path();
                        drop(
                            reply.send(Err(StateError::Io {
                                operation: "commit",
                                location: path.display().to_string(),
                                message: "a journal write before this commit failed, so it \
                                      was not committed"
                                    .to_string(),
                            })),
                        );
                        continue;
                    }
                    let expect = Expect { serial, state_file };
                    let result = self.write_batch(&bytes, Some(expect));
                    if result.is_ok() {
                        // The commit is durable: what follows only moves
                        // the snapshot on. Should it fail, the next commit
                        // compacts from the files.
                        if self.snapshot_step(roll, chunk).is_err() {
                            self.snap = None;
                            self.shared.drop_view();
                        }
                    }
                    drop(reply.send(result));
                }
                Msg::Open => {
                    if self.open_journal().is_err() {
                        self.journal = None;
                    }
                }
                Msg::Compact { json, head, reply } => {
                    let result = self.compact(&json, &head);
                    if result.is_err() {
                        self.shared.drop_view();
                    }
                    drop(reply.send(result));
                }
            }
        }
    }

    /// Appends `bytes` durably; with `expect`, only if the state file is
    /// still that one and the journal is as this thread left it.
    fn write_batch(&mut self, bytes: &[u8], expect: Option<Expect>) -> Result<(), StateError> {
        let result = self.try_write_batch(bytes, expect);
        if result.is_err() {
            // Reopening re-reads the journal and cuts any torn tail.
            self.journal = None;
            self.shared.drop_view();
        }
        result
    }

    fn try_write_batch(&mut self, bytes: &[u8], expect: Option<Expect>) -> Result<(), StateError> {
        self.open_journal()?;
        let path = self.shared.active_path();
        if let Some(expect) = expect {
            self.check_unchanged(&expect)?;
        }
        let header = self.header.take();
        let Some(file) = self.journal.as_mut() else {
            return Ok(());
        };
        let mut buf;
        let out = match &header {
            Some(base) => {
                buf = Vec::with_capacity(bytes.len() + 96);
                journal::encode_header(base, &mut buf);
                buf.extend_from_slice(bytes);
                &buf[..]
            }
            None => bytes,
        };
        if let Err(e) = file.write_all(out) {
            self.header = header;
            return Err(io_error("append to journal", &path, &e));
        }
        self.len += out.len() as u64;
        file.sync_data()
            .map_err(|e| io_error("sync journal", &path, &e))?;
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Before a commit marker: the state file is the one the view was
    /// loaded on and the journal holds exactly what this thread wrote. Costs
    /// two `stat`s; a difference means another writer bypassed the lock,
    /// and the files are read to say what it committed.
    fn check_unchanged(&self, expect: &Expect) -> Result<(), StateError> {
        let files = &self.shared.files;
        let journal_ok = match (&self.journal, std::fs::metadata(self.shared.active_path())) {
            (Some(file), Ok(at_path)) => file
                .metadata()
                .is_ok_and(|meta| meta.len() == self.len && FileId::of(&meta).same_file(&at_path)),
            _ => false,
        };
        if journal_ok && FileId::at(&files.state)? == expect.state_file {
            return Ok(());
        }
        let found = self.shared.committed_on_disk()?;
        Err(StateError::Conflict {
            location: files.state.display().to_string(),
            expected: expect.serial.saturating_sub(1),
            found: found.map_or(0, |(head, _)| head.serial),
        })
    }

    /// Opens the active segment if it is not open: continues it when it
    /// belongs to the committed state, empties it when stale, refuses a
    /// foreign one; a stale other segment becomes the backup's. Reuses
    /// what load found when the file has not changed since.
    fn open_journal(&mut self) -> Result<(), StateError> {
        if self.journal.is_some() {
            return Ok(());
        }
        let files = &self.shared.files;
        let checked = self.shared.take_checked();
        create_dir(&files.dir)?;
        let path = self.shared.active_path();
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error("open journal", &path, &e))?;
        if !existed {
            sync_dir(&files.dir)?;
        }
        let meta = file
            .metadata()
            .map_err(|e| io_error("open journal", &path, &e))?;
        let (keep, len, tip, stale) = match checked {
            Some(c) if c.file == FileId::of(&meta) => (c.keep, c.file.len(), c.tip, c.stale),
            _ => {
                let (_, chain) = self.shared.chain_on_disk()?;
                if chain.active != self.shared.active() {
                    // The files say another segment is active (they were
                    // changed behind this backend): start over from them.
                    self.shared.set_active(chain.active);
                    self.shared.drop_view();
                    return self.open_journal();
                }
                (chain.keep, meta.len(), chain.tip, chain.stale)
            }
        };
        if keep < len {
            file.set_len(keep)
                .map_err(|e| io_error("truncate journal", &path, &e))?;
        }
        let active = self.shared.active();
        for index in stale.into_iter().filter(|i| *i != active) {
            retire(files, index)?;
        }
        self.len = keep;
        self.header = if keep == 0 {
            Some(tip.unwrap_or_else(|| Base {
                lineage: self.shared.fresh_lineage(),
                serial: 0,
            }))
        } else {
            None
        };
        self.journal = Some(file);
        Ok(())
    }

    /// After a durable commit: starts a new segment (`roll`, its header
    /// line) and appends the commit's share of the snapshot, finishing it
    /// when the share ends with the footer.
    fn snapshot_step(
        &mut self,
        roll: Option<Vec<u8>>,
        chunk: Option<Chunk>,
    ) -> Result<(), StateError> {
        let files = &self.shared.files;
        if let Some(header) = roll {
            let index = 1 - self.shared.active();
            let path = &files.segments[index];
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| io_error("open journal", path, &e))?;
            file.set_len(0)
                .and_then(|()| file.write_all(&header))
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error("start journal segment", path, &e))?;
            sync_dir(&files.dir)?;
            self.shared.set_active(index);
            self.journal = Some(file);
            self.len = header.len() as u64;
            self.header = None;
        }
        let Some(chunk) = chunk else {
            return Ok(());
        };
        if chunk.offset == 0 || self.snap.is_none() {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&files.next)
                .map_err(|e| io_error("open snapshot", &files.next, &e))?;
            file.set_len(chunk.offset)
                .map_err(|e| io_error("truncate snapshot", &files.next, &e))?;
            self.snap = Some(file);
        }
        let Some(snap) = self.snap.as_mut() else {
            return Ok(());
        };
        snap.seek(SeekFrom::Start(chunk.offset))
            .and_then(|_| snap.write_all(&chunk.bytes))
            .map_err(|e| io_error("append to snapshot", &files.next, &e))?;
        if !chunk.finish {
            return Ok(());
        }
        // Finish: the snapshot is durable before it becomes the state
        // file; the segment it does not need goes only after that.
        snap.sync_all()
            .map_err(|e| io_error("sync snapshot", &files.next, &e))?;
        self.snap = None;
        if files.state.exists() {
            backup(files)?;
        }
        std::fs::rename(&files.next, &files.state)
            .map_err(|e| io_error("replace state file", &files.state, &e))?;
        sync_dir(&files.dir)?;
        self.shared.compactions.fetch_add(1, Ordering::Relaxed);
        retire(files, 1 - self.shared.active())?;
        let state_file = FileId::at(&files.state)?;
        if let Some(view) = self.shared.view().as_mut() {
            view.state_file = state_file;
        }
        Ok(())
    }

    /// Writes the new state file atomically, keeps the previous one as the
    /// backup, then empties the journal. Checks the files first: the new
    /// serial must follow the committed one (the state file's, or the last
    /// commit marker of its journal).
    fn compact(&mut self, json: &[u8], head: &StateHead) -> Result<(), StateError> {
        let files = &self.shared.files;
        let location = files.state.display().to_string();
        let committed = self.shared.committed_on_disk()?;
        let (_, chain) = self.shared.chain_on_disk()?;
        let expected = head.serial.saturating_sub(1);
        if let Some((p, _)) = &committed {
            self.shared.check_stack(&p.stack, &p.env)?;
        }
        match &committed {
            Some((p, _)) if p.lineage != head.lineage => {
                return Err(StateError::LineageMismatch {
                    location,
                    expected: head.lineage.clone(),
                    found: p.lineage.clone(),
                });
            }
            Some((p, _)) if p.serial + 1 != head.serial => {
                return Err(StateError::Conflict {
                    location,
                    expected,
                    found: p.serial,
                });
            }
            None if head.serial != 1 => {
                return Err(StateError::Conflict {
                    location,
                    expected,
                    found: 0,
                });
            }
            _ => {}
        }
        let has_file = committed.as_ref().is_some_and(|(_, file)| *file);
        create_dir(&files.dir)?;
        write_private_synced(&files.tmp, json)?;
        if has_file {
            backup(files)?;
        }
        std::fs::rename(&files.tmp, &files.state)
            .map_err(|e| io_error("replace state file", &files.state, &e))?;
        sync_dir(&files.dir)?;
        self.shared.compactions.fetch_add(1, Ordering::Relaxed);
        // The new state is durable: the segments are folded into it. The
        // one continuing the old state file goes with the backup, any
        // other and a snapshot in progress are dropped. Should that fail,
        // they are stale (older serials) and ignored.
        self.journal = None;
        self.header = None;
        self.len = 0;
        self.snap = None;
        let mut segments = chain.current.iter().chain(&chain.stale);
        if let Some(first) = chain.current.first() {
            drop(retire(files, *first));
        }
        for index in segments
            .by_ref()
            .filter(|i| Some(*i) != chain.current.first())
        {
            drop(std::fs::remove_file(&files.segments[*index]));
        }
        drop(std::fs::remove_file(&files.next));
        self.shared.set_active(0);
        *self.shared.pass() = None;
        self.shared.journal_bytes.store(0, Ordering::Relaxed);
        let state_file = FileId::at(&files.state)?;
        if let Some(view) = self.shared.view().as_mut() {
            view.state_file = state_file;
        }
        Ok(())
    }
}

/// Moves segment `index` (stale: folded into the state file) to the
/// backup's segment, if it is there.
fn retire(files: &super::local::Files, index: usize) -> Result<(), StateError> {
    match std::fs::rename(&files.segments[index], &files.journal_bak) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(
            "retire journal segment",
            &files.segments[index],
            &e,
        )),
    }
}

/// Replaces the backup with the current state file: a hard link (the state
/// file always exists meanwhile), or a synced copy where links fail.
fn backup(files: &super::local::Files) -> Result<(), StateError> {
    match std::fs::remove_file(&files.bak) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("remove old backup", &files.bak, &e)),
    }
    if std::fs::hard_link(&files.state, &files.bak).is_ok() {
        return Ok(());
    }
    let bytes = read_optional(&files.state)?.unwrap_or_default();
    let tmp = files.bak.with_extension("bak.tmp");
    write_private_synced(&tmp, &bytes)?;
    std::fs::rename(&tmp, &files.bak).map_err(|e| io_error("write backup", &files.bak, &e))
}
