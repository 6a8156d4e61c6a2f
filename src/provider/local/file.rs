//! `local_file`: a file on this machine, written atomically (temp file +
//! rename) so a reader never sees half a file. Blocking IO; the provider
//! runs these functions on tokio's blocking pool.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::model::Attrs;
use crate::provider::{LiveObject, ProviderError};

/// The attributes a `local_file` is created or updated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// As the stack gives it (the object's id).
    pub path: String,
    pub content: String,
    /// Permission bits; `None` keeps an existing file's, or the default.
    pub mode: Option<u32>,
}

impl FileSpec {
    /// Reads `path`, `content` and `mode` from a request's attributes.
    pub fn from_attrs(what: &str, attrs: &Attrs) -> Result<FileSpec, ProviderError> {
        let path = match attrs.get("path") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            _ => {
                return Err(ProviderError::fatal(format!(
                    "{what}: `path` must be a non-empty string"
                )));
            }
        };
        let content = match attrs.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(c)) => c.clone(),
            Some(_) => {
                return Err(ProviderError::fatal(format!(
                    "{what}: `content` must be a string"
                )));
            }
        };
        let mode = match attrs.get("mode") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(parse_mode(m).ok_or_else(|| {
                ProviderError::fatal(format!(
                    "{what}: `{m}` is not an octal mode such as \"0644\""
                ))
            })?),
            Some(_) => {
                return Err(ProviderError::fatal(format!(
                    "{what}: `mode` must be a string such as \"0644\""
                )));
            }
        };
        Ok(FileSpec {
            path,
            content,
            mode,
        })
    }
}

/// `"0644"` → `0o644`.
pub fn parse_mode(text: &str) -> Option<u32> {
    if !(3..=4).contains(&text.len()) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

fn io_error(what: &str, path: &Path, e: io::Error) -> ProviderError {
    ProviderError::fatal(format!("cannot {what} {}: {e}", path.display()))
}

/// The file as it is now; `Ok(None)` if there is none. Content that is not
/// UTF-8 is read lossily.
pub fn read(dir: &Path, path: &str) -> Result<Option<LiveObject>, ProviderError> {
    let full = dir.join(path);
    let bytes = match fs::read(&full) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &full, e)),
    };
    let mut attributes = Attrs::new();
    attributes.insert("path".into(), path.into());
    attributes.insert("id".into(), path.into());
    attributes.insert(
        "content".into(),
        String::from_utf8_lossy(&bytes).into_owned().into(),
    );
    if let Some(mode) = current_mode(&full).map_err(|e| io_error("read", &full, e))? {
        attributes.insert("mode".into(), format!("{mode:04o}").into());
    }
    Ok(Some(LiveObject {
        id: path.to_string(),
        attributes,
        tags: Default::default(),
    }))
}

#[cfg(unix)]
fn current_mode(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.permissions().mode() & 0o7777)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn current_mode(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Writes the file (creating parent folders) through a temp file renamed
/// over it, then reads it back.
pub fn write(dir: &Path, spec: &FileSpec) -> Result<LiveObject, ProviderError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let full = dir.join(&spec.path);
    let (Some(parent), Some(file_name)) = (full.parent(), full.file_name()) else {
        return Err(ProviderError::fatal(format!(
            "`{}` does not name a file",
            spec.path
        )));
    };
    fs::create_dir_all(parent).map_err(|e| io_error("create folder", parent, e))?;
    let mode = match spec.mode {
        Some(mode) => Some(mode),
        None => current_mode(&full).map_err(|e| io_error("read", &full, e))?,
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".cairn-tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp: PathBuf = parent.join(tmp_name);
    let result = (|| -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(spec.content.as_bytes())?;
        if let Some(mode) = mode {
            set_mode(&file, mode)?;
        }
        drop(file);
        fs::rename(&tmp, &full)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", &full, e));
    }
    read(dir, &spec.path)?.ok_or_else(|| {
        ProviderError::fatal(format!("{} vanished as it was written", full.display()))
    })
}

/// Removes the file; a missing file is fine.
pub fn delete(dir: &Path, path: &str) -> Result<(), ProviderError> {
    let full = dir.join(path);
    match fs::remove_file(&full) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete", &full, e)),
    }
}
