//! A small builder for end-to-end tests through the built `cairn` binary:
//! a temporary folder with a stack file and a simulated world.

use std::path::{Path, PathBuf};

use cairn::state::Backend;
use serde_json::Value;

pub struct Project {
    pub dir: tempfile::TempDir,
}

/// What one `cairn` run did.
pub use crate::run::Run;

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `stack.toml`.
    pub fn stack(&self, text: &str) -> &Project {
        self.file("stack.toml", text)
    }

    pub fn file(&self, rel: &str, text: &str) -> &Project {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Stages objects in the simulated world (`.cairn/world.json`).
    pub fn world(&self, resources: Value) -> &Project {
        let text =
            serde_json::to_string_pretty(&serde_json::json!({ "resources": resources })).unwrap();
        self.file(".cairn/world.json", &text)
    }

    /// The world's objects, sorted by (type, name), as plain JSON.
    pub fn world_objects(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.path(".cairn/world.json")) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut items = v["resources"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|o| {
            (
                o["type"].as_str().unwrap_or("").to_string(),
                o["attributes"]["name"].as_str().unwrap_or("").to_string(),
            )
        });
        items
    }

    /// Names of the world's objects of one type.
    pub fn names(&self, type_name: &str) -> Vec<String> {
        self.world_objects()
            .iter()
            .filter(|o| o["type"] == type_name)
            .map(|o| o["attributes"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn object(&self, type_name: &str, name: &str) -> Option<Value> {
        self.world_objects()
            .into_iter()
            .find(|o| o["type"] == type_name && o["attributes"]["name"] == name)
    }

    pub fn cairn(&self, args: &[&str]) -> Run {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .current_dir(self.root())
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_ACTIONS")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run cairn");
        Run::from(output)
    }

    /// The committed state as cairn loads it (the state file with the
    /// journal's committed records replayed), or `None` if there are no
    /// state files.
    pub fn state(&self, stack: &str, env: &str) -> Option<Value> {
        let dir = self.path(".cairn");
        let files = [".state.json", ".journal"].map(|f| dir.join(format!("{stack}.{env}{f}")));
        if !files.iter().any(|f| f.exists()) {
            return None;
        }
        let backend = cairn::state::LocalBackend::new(dir, stack, env);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let loaded = runtime.block_on(backend.load()).expect("state loads");
        Some(serde_json::to_value(&loaded.state).expect("state encodes"))
    }
}

/// Masks what changes from run to run (ids, durations, clock times).
pub fn stable(text: &str) -> String {
    let mut out = text.to_string();
    for (pattern, replacement) in [
        (r"\[\d\d:\d\d:\d\d\] ", "[HH:MM:SS] "),
        (r"sim_[a-z_]+-[A-Za-z0-9_.-]+-[a-z0-9]{6}\b", "[SIM-ID]"),
        (r"in \d+(\.\d+)?m?s", "in [TIME]"),
        (r"existing: \S+", "existing: [ID]"),
        (r"id: \S+", "id: [ID]"),
    ] {
        out = regex_lite::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, replacement)
            .into_owned();
    }
    out
}
