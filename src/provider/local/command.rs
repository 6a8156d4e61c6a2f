//! `local_command`: a shell command run on create (and optionally another on
//! delete), plus the registry that remembers what each command produced.
//!
//! A command leaves nothing the provider could read back, so what `create`
//! returned (the inputs, `stdout`, `id`) is kept in a small JSON registry,
//! `<stack dir>/.cairn/local/<stack>.<env>.commands.json`, an object keyed
//! by id. `read` answers from it (an unknown id is a missing object, which
//! makes the engine run the command again); `delete` runs the
//! `destroy_command` and drops the entry. Every change is a
//! read-modify-write under an OS lock on a `.lock` sidecar, written through
//! a temp file and a rename.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::model::{Address, Attrs};
use crate::provider::ProviderError;

/// Lines of stderr quoted when a command fails.
const QUOTED_LINES: usize = 20;

/// The registry of commands that ran, for one stack and env.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
    lock_path: PathBuf,
}

/// Keeps only characters that are safe in a file name.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Registry {
    pub fn new(dir: &Path, stack: &str, env: &str) -> Registry {
        let folder = dir.join(".cairn").join("local");
        let name = format!("{}.{}.commands.json", file_part(stack), file_part(env));
        Registry {
            lock_path: folder.join(format!("{name}.lock")),
            path: folder.join(name),
        }
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, path: &Path, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::fatal(format!(
            "local command registry: cannot {what} {}: {e}",
            path.display()
        ))
    }

    fn load(&self) -> Result<BTreeMap<String, Attrs>, ProviderError> {
        match fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(BTreeMap::new()),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                self.error(
                    "read",
                    &self.path,
                    format!("{e} (expected a JSON object of id → attributes)"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.error("read", &self.path, e)),
        }
    }

    /// The attributes recorded for `id`. Reads need no lock: writes replace
    /// the file atomically.
    pub fn get(&self, id: &str) -> Result<Option<Attrs>, ProviderError> {
        Ok(self.load()?.remove(id))
    }

    /// Changes the entry of `id` (`None` removes it) under the lock.
    pub fn set(&self, id: &str, entry: Option<Attrs>) -> Result<(), ProviderError> {
        let Some(folder) = self.path.parent() else {
            return Err(self.error("write", &self.path, "no folder"));
        };
        if entry.is_none() && !self.path.exists() {
            return Ok(());
        }
        fs::create_dir_all(folder).map_err(|e| self.error("create folder", folder, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| self.error("open", &self.lock_path, e))?;
        lock.lock()
            .map_err(|e| self.error("lock", &self.lock_path, e))?;
        let result = self.set_locked(id, entry);
        let _ = lock.unlock();
        result
    }

    fn set_locked(&self, id: &str, entry: Option<Attrs>) -> Result<(), ProviderError> {
        let mut all = self.load()?;
        match entry {
            Some(attrs) => {
                all.insert(id.to_string(), attrs);
            }
            None => {
                if all.remove(id).is_none() {
                    return Ok(());
                }
            }
        }
        let mut bytes =
            serde_json::to_vec_pretty(&all).map_err(|e| self.error("write", &self.path, e))?;
        bytes.push(b'\n');
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            drop(file);
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| self.error("write", &self.path, e))
    }
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Stdout (lossy UTF-8) with one trailing newline removed.
    pub stdout: String,
}

/// Runs `command` with `sh -c` in `dir`, with `env` added to the
/// environment and no stdin. A non-zero exit is a fatal error quoting the
/// last lines of stderr (or of stdout, when stderr is empty).
pub async fn run(
    address: &Address,
    what: &str,
    command: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<CommandOutput, ProviderError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().await.map_err(|e| {
        ProviderError::fatal(format!(
            "{address}: cannot run the {what} `{command}` with sh in {}: {e}",
            dir.display()
        ))
    })?;
    if output.status.success() {
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
            if stdout.ends_with('\r') {
                stdout.pop();
            }
        }
        return Ok(CommandOutput { stdout });
    }
    let how = match output.status.code() {
        Some(code) => format!("exited with code {code}"),
        None => signal_text(&output.status),
    };
    let (stream, text) = if output.stderr.iter().all(u8::is_ascii_whitespace) {
        ("stdout", String::from_utf8_lossy(&output.stdout))
    } else {
        ("stderr", String::from_utf8_lossy(&output.stderr))
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(QUOTED_LINES)..].join("\n");
    let quoted = if tail.is_empty() {
        "no output".to_string()
    } else {
        format!("last lines of {stream}:\n{tail}")
    };
    Err(ProviderError::fatal(format!(
        "{address}: the {what} `{command}` {how}; {quoted}"
    )))
}

#[cfg(unix)]
fn signal_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal}"),
        None => "failed".to_string(),
    }
}

#[cfg(not(unix))]
fn signal_text(_status: &std::process::ExitStatus) -> String {
    "failed".to_string()
}
