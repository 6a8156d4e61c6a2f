//! Small file-system helpers shared by the local backend: private folders
//! and files, folder fsync, and mapping `io::Error` to [`StateError`].
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::StateError;

/// An [`StateError::Io`] for `operation` on `path`.
pub(crate) fn io_error(operation: &'static str, path: &Path, e: &io::Error) -> StateError {
    StateError::Io {
        operation,
        location: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Creates `dir` (and missing parents) with mode 0700 if it is missing.
pub(crate) fn create_dir(dir: &Path) -> Result<(), StateError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("create folder", dir, &e))
}

/// Makes the entries of `dir` (creations, renames) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync folder", dir, &e))
}

/// Writes `bytes` to a new file at `path` (mode 0600, replacing any file
/// there) and fsyncs it. The folder entry is not synced.
pub(crate) fn write_private_synced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("remove", path, &e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create", path, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", path, &e))
}

/// The contents of `path`, or `None` if there is no such file.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, &e)),
    }
}
