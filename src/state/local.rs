//! stub: being written
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use super::*;

pub struct LocalBackend;

impl LocalBackend {
    /// State for `stack`/`env` in folder `dir` (normally `.cairn/` beside the stack file).
    pub fn new(_dir: PathBuf, _stack: &str, _env: &str) -> LocalBackend {
        todo!()
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self) -> String {
        todo!()
    }
    async fn lock(&self, _info: &LockInfo, _wait: Duration) -> Result<(), StateError> {
        todo!()
    }
    async fn unlock(&self) -> Result<(), StateError> {
        todo!()
    }
    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        todo!()
    }
    async fn force_unlock(&self, _id: &str) -> Result<LockInfo, StateError> {
        todo!()
    }
    async fn load(&self) -> Result<Loaded, StateError> {
        todo!()
    }
    async fn append(&self, _entries: &[JournalEntry]) -> Result<(), StateError> {
        todo!()
    }
    async fn commit(&self, _state: &State) -> Result<(), StateError> {
        todo!()
    }
}
