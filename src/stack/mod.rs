//! stub: being written
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostics, SourceFile};

/// A parsed stack file with its source, spans kept.
pub struct RawStack {
    pub source: Arc<SourceFile>,
}

/// Reads and parses a stack file.
pub fn load(_path: &Path) -> Result<RawStack, Diagnostics> {
    todo!()
}

/// Parses stack text (no IO). `path` is used in messages and as the base of relative paths.
pub fn parse(_path: impl Into<PathBuf>, _text: String) -> Result<RawStack, Diagnostics> {
    todo!()
}

/// The JSON Schema (draft-07) of the stack format.
pub fn json_schema() -> serde_json::Value {
    todo!()
}
