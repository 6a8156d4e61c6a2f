//! The sim world shared between processes: an in-memory [`World`] kept in
//! step with the files beside it.
//!
//! Files, for a world at `world.json`:
//! - `world.json`: the compacted world (the plain, hand-writable format);
//! - `world.json.log`: one JSON [`LogEntry`] per line, appended per mutation;
//! - `world.json.lock`: the OS file lock every access takes (exclusive);
//!   its content is a generation number that each compaction increments.
//!
//! Every call takes the lock, then catches up with other processes: if the
//! generation or the world file's (length, mtime, inode) changed, it reloads
//! the world file and replays the whole log; otherwise it replays only the
//! log bytes added since it last looked. A mutation appends its line under
//! the same lock, so writers never lose each other's changes, and each call
//! costs a few system calls rather than a rewrite of the world.
//!
//! Once it has the lock, a process keeps it for [`LEASE`] (a *lease*): the
//! calls it makes meanwhile — a burst of creations finishing together —
//! skip the locking and the catching up, since no other process can have
//! changed the files, and only append their lines (each call's line is in
//! the log before the call returns, as before). The sim's clock thread
//! ends the lease on time, so another process waits at most about that
//! long; a call that finds the lease run out releases the lock first.
//!
//! [`Store::compact`] (at the end of a run) writes the whole world to a temp
//! file, renames it over `world.json` and empties the log.
//!
//! Nothing is awaited while the mutex or the file lock is held.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::clock::Clock;
use super::world::{LogEntry, World};
use crate::provider::ProviderError;

/// How long a process keeps the world's file lock once it has it.
pub const LEASE: Duration = Duration::from_millis(1);

/// What identifies one version of the world file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSig {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn file_sig(path: &Path) -> io::Result<Option<FileSig>> {
    match fs::metadata(path) {
        Ok(m) => {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            Ok(Some(FileSig {
                len: m.len(),
                modified: m.modified().ok(),
                inode,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Open files and what has been replayed from them.
#[derive(Default)]
struct Inner {
    world: World,
    /// The log, open for appending; `None` until the first call that finds
    /// (or makes) the folder.
    log: Option<File>,
    /// `None`: nothing loaded yet.
    generation: Option<u64>,
    world_sig: Option<FileSig>,
    /// Bytes of the log already applied to `world`.
    log_offset: u64,
    /// This process holds the file lock (and `world` is up to date).
    leased: bool,
    /// When the lease runs out; `None` while a call holds the lock without
    /// a lease (the clock could not take the chore of ending it).
    lease_until: Option<Instant>,
    /// Numbers leases, so a late chore never ends a newer lease.
    lease_id: u64,
}

/// The world file and its sidecars.
pub struct Store {
    world_path: PathBuf,
    log_path: PathBuf,
    lock_path: PathBuf,
    tmp_path: PathBuf,
    /// The open lock file (opened with the log).
    lock_file: OnceLock<File>,
    inner: Mutex<Inner>,
}

impl Store {
    pub fn new(world_path: PathBuf) -> Store {
        let sidecar = |ext: &str| {
            let mut s = world_path.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        Store {
            log_path: sidecar(".log"),
            lock_path: sidecar(".lock"),
            tmp_path: sidecar(".tmp"),
            world_path,
            lock_file: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn world_path(&self) -> &Path {
        &self.world_path
    }

    fn err(&self, path: &Path, what: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::fatal(format!("sim world: cannot {what} {}: {e}", path.display()))
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the world half-updated (updates are
        // applied after the log write, in one step), so poison is harmless.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the file lock and catches up with other processes, unless this
    /// process holds a lease that has not run out.
    fn begin(&self, inner: &mut Inner, lock_file: &File) -> Result<(), ProviderError> {
        if inner.leased {
            if inner
                .lease_until
                .is_some_and(|until| Instant::now() < until)
            {
                return Ok(());
            }
            // Run out: other processes get their turn first.
            self.release(inner);
        }
        lock_file
            .lock()
            .map_err(|e| self.err(&self.lock_path, "lock", e))?;
        inner.leased = true;
        inner.lease_until = None;
        if let Err(e) = self.sync(inner) {
            self.release(inner);
            return Err(e);
        }
        Ok(())
    }

    /// Ends a call: a newly taken lock is kept for [`LEASE`], ended by a
    /// chore on `clock`; without the clock, released at once.
    fn end(self: &Arc<Self>, inner: &mut Inner, clock: &Clock) {
        if !inner.leased || inner.lease_until.is_some() {
            return;
        }
        inner.lease_id += 1;
        let id = inner.lease_id;
        let until = Instant::now() + LEASE;
        let store = Arc::downgrade(self);
        let chore = Box::new(move || {
            if let Some(store) = store.upgrade() {
                let mut inner = store.lock_inner();
                if inner.leased && inner.lease_id == id {
                    store.release(&mut inner);
                }
            }
        });
        match clock.at(until, chore) {
            Ok(()) => inner.lease_until = Some(until),
            Err(_) => self.release(inner),
        }
    }

    /// Runs `f` with the file lock held and the world caught up (see
    /// [`Store::begin`] and [`Store::end`]).
    fn leased<T>(
        self: &Arc<Self>,
        clock: &Clock,
        inner: &mut Inner,
        lock_file: &File,
        f: impl FnOnce(&mut Inner) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        self.begin(inner, lock_file)?;
        let result = f(inner);
        self.end(inner, clock);
        result
    }

    /// Releases the file lock.
    fn release(&self, inner: &mut Inner) {
        if inner.leased {
            if let Some(lock_file) = self.lock_file.get() {
                let _ = lock_file.unlock();
            }
            inner.leased = false;
            inner.lease_until = None;
        }
    }

    /// Opens the lock and log files, creating the folder if `create`.
    /// `Ok(None)`: the folder does not exist and `create` is false.
    fn open_files(&self, inner: &mut Inner, create: bool) -> Result<Option<&File>, ProviderError> {
        if inner.log.is_some() {
            return Ok(self.lock_file.get());
        }
        if let Some(parent) = self
            .world_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            if !create {
                return Ok(None);
            }
            fs::create_dir_all(parent).map_err(|e| self.err(parent, "create folder", e))?;
        }
        let open = |path: &Path, append: bool| {
            let mut o = OpenOptions::new();
            o.read(true).create(true);
            if append {
                o.append(true);
            } else {
                o.write(true).truncate(false);
            }
            o.open(path).map_err(|e| self.err(path, "open", e))
        };
        if self.lock_file.get().is_none() {
            let lock = open(&self.lock_path, false)?;
            let _ = self.lock_file.set(lock);
        }
        inner.log = Some(open(&self.log_path, true)?);
        Ok(self.lock_file.get())
    }

    /// Runs `f` on the world, up to date with every process's changes.
    pub fn read<R>(
        self: &Arc<Self>,
        clock: &Clock,
        f: impl FnOnce(&World) -> R,
    ) -> Result<R, ProviderError> {
        let mut guard = self.lock_inner();
        let inner = &mut *guard;
        let Some(lock_file) = self.open_files(inner, false)? else {
            // No folder, hence no world file and no log: an empty world.
            inner.world = World::default();
            inner.generation = None;
            return Ok(f(&inner.world));
        };
        self.leased(clock, inner, lock_file, |inner| Ok(f(&inner.world)))
    }

    /// Decides a mutation on the up-to-date world with `f`, appends its log
    /// entries, applies them in memory, then reads the result from the
    /// changed world with `then`.
    pub fn write<R, T>(
        self: &Arc<Self>,
        clock: &Clock,
        f: impl FnOnce(&World) -> Result<(R, Vec<LogEntry>), ProviderError>,
        then: impl FnOnce(R, &World) -> T,
    ) -> Result<T, ProviderError> {
        let mut guard = self.lock_inner();
        let inner = &mut *guard;
        let Some(lock_file) = self.open_files(inner, true)? else {
            return Err(self.err(&self.lock_path, "open", "the folder is missing"));
        };
        self.leased(clock, inner, lock_file, |inner| {
            self.write_locked(inner, f, then)
        })
    }

    fn write_locked<R, T>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&World) -> Result<(R, Vec<LogEntry>), ProviderError>,
        then: impl FnOnce(R, &World) -> T,
    ) -> Result<T, ProviderError> {
        let (result, entries) = f(&inner.world)?;
        if entries.is_empty() {
            return Ok(then(result, &inner.world));
        }
        let mut buf = Vec::new();
        for entry in &entries {
            // Plain maps and strings always serialize.
            serde_json::to_writer(&mut buf, entry)
                .map_err(|e| self.err(&self.log_path, "write", e))?;
            buf.push(b'\n');
        }
        if let Some(log) = &mut inner.log {
            log.write_all(&buf)
                .map_err(|e| self.err(&self.log_path, "append to", e))?;
        }
        inner.log_offset += buf.len() as u64;
        for entry in entries {
            inner.world.apply(entry);
        }
        Ok(then(result, &inner.world))
    }

    /// Rewrites the world file from the world and empties the log, if the
    /// log holds anything. Atomic: a temp file renamed over the world file.
    /// Not synced to disk: the sim stands in for a remote cloud, whose
    /// housekeeping costs its clients nothing, and its files need to
    /// survive a killed process (which the page cache does), not a power
    /// cut. A sync here took longer than the state commit beside it.
    pub fn compact(self: &Arc<Self>, clock: &Clock) -> Result<(), ProviderError> {
        let mut guard = self.lock_inner();
        let inner = &mut *guard;
        let Some(lock_file) = self.open_files(inner, false)? else {
            return Ok(());
        };
        self.leased(clock, inner, lock_file, |inner| {
            self.compact_locked(inner, lock_file)
        })
    }

    fn compact_locked(&self, inner: &mut Inner, lock_file: &File) -> Result<(), ProviderError> {
        if inner.log_offset == 0 {
            return Ok(());
        }
        let hint = inner.world_sig.as_ref().map_or(0, |sig| sig.len as usize);
        let bytes = inner
            .world
            .to_bytes(hint)
            .map_err(|e| self.err(&self.world_path, "write", e))?;
        // Caught up under the lock, so the signature is the file's: only a
        // file of the same length can hold the same bytes.
        let unchanged = inner
            .world_sig
            .as_ref()
            .is_some_and(|sig| sig.len == bytes.len() as u64)
            && fs::read(&self.world_path).is_ok_and(|old| old == bytes);
        if !unchanged {
            let write = || -> io::Result<()> {
                let mut tmp = File::create(&self.tmp_path)?;
                tmp.write_all(&bytes)?;
                fs::rename(&self.tmp_path, &self.world_path)
            };
            write().map_err(|e| self.err(&self.world_path, "write", e))?;
        }
        if let Some(log) = &inner.log {
            log.set_len(0)
                .map_err(|e| self.err(&self.log_path, "truncate", e))?;
        }
        inner.log_offset = 0;
        let generation = inner.generation.unwrap_or(0).wrapping_add(1);
        write_generation(lock_file, generation)
            .map_err(|e| self.err(&self.lock_path, "write", e))?;
        inner.generation = Some(generation);
        inner.world_sig =
            file_sig(&self.world_path).map_err(|e| self.err(&self.world_path, "read", e))?;
        Ok(())
    }

    /// Catches up with changes made by others. Called with the lock held.
    fn sync(&self, inner: &mut Inner) -> Result<(), ProviderError> {
        let (Some(log), Some(lock_file)) = (&inner.log, self.lock_file.get()) else {
            return Ok(());
        };
        let generation =
            read_generation(lock_file).map_err(|e| self.err(&self.lock_path, "read", e))?;
        let sig = file_sig(&self.world_path).map_err(|e| self.err(&self.world_path, "read", e))?;
        let log_len = log
            .metadata()
            .map_err(|e| self.err(&self.log_path, "read", e))?
            .len();
        if inner.generation != Some(generation)
            || inner.world_sig != sig
            || log_len < inner.log_offset
        {
            inner.world = match &sig {
                None => World::default(),
                Some(_) => {
                    let bytes = fs::read(&self.world_path)
                        .map_err(|e| self.err(&self.world_path, "read", e))?;
                    World::parse(&bytes).map_err(|e| {
                        ProviderError::fatal(format!(
                            "sim world {}: {e}",
                            self.world_path.display()
                        ))
                    })?
                }
            };
            inner.generation = Some(generation);
            inner.world_sig = sig;
            inner.log_offset = 0;
        }
        if log_len == inner.log_offset {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut log = log;
        log.seek(SeekFrom::Start(inner.log_offset))
            .and_then(|_| log.take(log_len - inner.log_offset).read_to_end(&mut bytes))
            .map_err(|e| self.err(&self.log_path, "read", e))?;
        // A line without its newline was torn by a writer that died while
        // appending: nobody saw its call succeed, so it is dropped.
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry: LogEntry = serde_json::from_slice(line).map_err(|e| {
                ProviderError::fatal(format!(
                    "sim world log {}: line {} after byte {} is not a change entry ({e}); \
                     delete the log to drop the changes not yet compacted",
                    self.log_path.display(),
                    n + 1,
                    inner.log_offset
                ))
            })?;
            inner.world.apply(entry);
        }
        inner.log_offset += complete as u64;
        if complete < bytes.len() {
            log.set_len(inner.log_offset)
                .map_err(|e| self.err(&self.log_path, "truncate", e))?;
        }
        Ok(())
    }
}

fn read_generation(file: &File) -> io::Result<u64> {
    // One read: a generation is at most 20 digits and a newline.
    let mut buf = [0u8; 32];
    #[cfg(unix)]
    let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, 0)?;
    #[cfg(not(unix))]
    let n = {
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        f.read(&mut buf)?
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    Ok(text.trim().parse().unwrap_or(0))
}

fn write_generation(file: &File, generation: u64) -> io::Result<()> {
    let mut f = file;
    file.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(format!("{generation}\n").as_bytes())
}
