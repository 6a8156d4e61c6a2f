//! Live objects as read before planning: the diff's view of the world.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Address;
use crate::provider::LiveObject;

/// What the world holds for one address. The objects are shared (with the
/// provider's cache, and between the entries that found the same object),
/// never copied per lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveEntry {
    /// The object state records, read by its id (`None`: not in state, or gone).
    pub by_id: Option<Arc<LiveObject>>,
    /// An object found by the desired identity (when state has none, or the
    /// identity changes).
    pub by_identity: Option<Arc<LiveObject>>,
    /// An object found under the `unique` name, if that policy may apply.
    pub by_unique_name: Option<Arc<LiveObject>>,
}

/// Everything read from the world for one plan.
pub type Live = BTreeMap<Address, LiveEntry>;

/// One address's reads: what refresh asks the world. Saved in plans, so
/// applying a saved plan reads exactly what planning read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub address: Address,
    /// Physical id recorded in state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The desired identity (e.g. name), when known before apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The attribute holding the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_attr: Option<String>,
    /// The name `unique` would give it, when that policy may apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<String>,
}
