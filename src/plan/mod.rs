//! Plans: what apply will do, resource by resource, in order.
//!
//! [`diff`] is pure: (Stack × State × Live) → Plan. A [`Plan`] is a closed
//! set of [`Action`]s grouped in numbered steps (a step holds the actions
//! that can run together). Plans serialize: `--json` prints a stable view,
//! `--out FILE` saves everything apply needs, so apply never re-reads the
//! stack file.

mod diff;
mod live;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Address, Attrs, StateConfig, Value};
use crate::state::Ownership;

pub use diff::*;
pub use live::{Live, LiveEntry, Lookup};

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// The closed set of things apply can do to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `+` create a new object.
    Create,
    /// `*` create under `<name>-<suffix>` because a foreign object holds the name.
    CreateUnique,
    /// `=` use an existing foreign object as it is.
    Reuse,
    /// `>` take over an existing object and update it to match.
    Adopt,
    /// `~` update in place.
    Update,
    /// `-/+` delete, then create.
    Replace,
    /// `-` delete.
    Delete,
    /// `!` leave alone, and everything that depends on it.
    Skip,
}

impl ActionKind {
    pub fn symbol(self) -> &'static str {
        match self {
            ActionKind::Create => "+",
            ActionKind::CreateUnique => "*",
            ActionKind::Reuse => "=",
            ActionKind::Adopt => ">",
            ActionKind::Update => "~",
            ActionKind::Replace => "-/+",
            ActionKind::Delete => "-",
            ActionKind::Skip => "!",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::CreateUnique => "create unique",
            ActionKind::Reuse => "reuse",
            ActionKind::Adopt => "adopt",
            ActionKind::Update => "update",
            ActionKind::Replace => "replace",
            ActionKind::Delete => "delete",
            ActionKind::Skip => "skip",
        }
    }

    /// Whether the action changes anything in the world.
    pub fn changes_world(self) -> bool {
        !matches!(self, ActionKind::Reuse | ActionKind::Skip)
    }

    pub fn is_replace(self) -> bool {
        self == ActionKind::Replace
    }

    /// Whether the action ends with a new object (and new computed values).
    pub fn creates(self) -> bool {
        matches!(
            self,
            ActionKind::Create | ActionKind::CreateUnique | ActionKind::Replace
        )
    }
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub address: Address,
    pub action: ActionKind,
    /// Why, in words: "not in state and not found live", "drift: tags changed".
    pub reason: String,
    /// Addresses this action waits for (those with actions of their own, or
    /// whose values it reads).
    pub depends_on: Vec<Address>,
    /// The live attributes now (`None` for a create).
    pub before: Option<Attrs>,
    /// Desired attributes in template form: strings may still hold
    /// `${…}` references, shown as `(known after apply)` (`None` for delete).
    pub after: Option<Attrs>,
    /// Physical id of the existing object, for all but creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Identity value the object is found or created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// For `create_unique`: the name the object gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    /// Ownership recorded after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// For replace: the attributes that force it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_because: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub step: usize,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub create_unique: usize,
    pub reuse: usize,
    pub adopt: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub skip: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn count(&mut self, kind: ActionKind) {
        match kind {
            ActionKind::Create => self.create += 1,
            ActionKind::CreateUnique => self.create_unique += 1,
            ActionKind::Reuse => self.reuse += 1,
            ActionKind::Adopt => self.adopt += 1,
            ActionKind::Update => self.update += 1,
            ActionKind::Replace => self.replace += 1,
            ActionKind::Delete => self.delete += 1,
            ActionKind::Skip => self.skip += 1,
        }
    }

    /// Number of actions that change the world.
    pub fn changes(&self) -> usize {
        self.create + self.create_unique + self.adopt + self.update + self.replace + self.delete
    }
}

/// A resource the plan leaves as it is, whose values actions may reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unchanged {
    pub id: String,
    pub attributes: Attrs,
    pub ownership: Ownership,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// A check to run after apply, in plan form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCheck {
    pub name: String,
    /// Template form: may reference resources.
    pub command: Value,
    pub retries: u32,
    pub interval_s: f64,
}

/// Everything apply needs, and nothing it must re-derive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    pub env: String,
    /// Whether this plan destroys the stack.
    #[serde(default)]
    pub destroy: bool,
    pub steps: Vec<Step>,
    pub summary: Summary,
    /// Resources left as they are, with the values references read.
    #[serde(default)]
    pub unchanged: BTreeMap<Address, Unchanged>,
    /// Reused resources no longer in the stack: dropped from state, never touched.
    #[serde(default)]
    pub forget: Vec<Address>,
    #[serde(default)]
    pub checks: Vec<PlannedCheck>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// Provider settings, variables already applied.
    #[serde(default)]
    pub providers: BTreeMap<String, Attrs>,
    /// The stack file's folder.
    pub dir: PathBuf,
    /// Where the state lives.
    pub state: StateConfig,
    /// Values to print as `(sensitive)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_values: Vec<String>,
    /// What the plan was made against: apply refuses if either changed.
    pub basis: Basis,
    /// The reads that produced the plan's view of the world.
    #[serde(default)]
    pub lookups: Vec<Lookup>,
}

/// The state and live objects a plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub lineage: String,
    pub serial: u64,
    /// Hash of every live object the plan read.
    pub live_digest: String,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.steps.iter().flat_map(|s| s.actions.iter())
    }

    pub fn has_changes(&self) -> bool {
        self.summary.changes() > 0 || !self.forget.is_empty()
    }
}
