//! Lock holder information.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Who holds a state lock, as written into the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id, for `cairn force-unlock`.
    pub id: String,
    /// `user@host`.
    pub who: String,
    pub pid: u32,
    /// `apply`, `destroy`…
    pub operation: String,
    /// RFC 3339 UTC time the lock was taken.
    pub created: String,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}, {} since {}, lock id {})",
            self.who, self.pid, self.operation, self.created, self.id
        )
    }
}
