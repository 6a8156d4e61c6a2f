//! Live objects as read before planning: the diff's view of the world.

use std::collections::BTreeMap;

use crate::model::Address;
use crate::provider::LiveObject;

/// What the world holds for one address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveEntry {
    /// The object state records, read by its id (`None`: not in state, or gone).
    pub by_id: Option<LiveObject>,
    /// An object found by the desired identity (when state has none, or the
    /// identity changes).
    pub by_identity: Option<LiveObject>,
    /// An object found under the `unique` name, if that policy may apply.
    pub by_unique_name: Option<LiveObject>,
}

/// Everything read from the world for one plan.
pub type Live = BTreeMap<Address, LiveEntry>;
