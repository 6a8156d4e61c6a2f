//! The resolved stack: typed resources with variables and environments
//! applied and references parsed. Produced by [`resolve`] from a
//! [`crate::stack::RawStack`]; does no IO.

mod address;
mod resolve;
pub mod template;
pub mod vecmap;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use address::{Address, AddressParseError, is_identifier};
pub use resolve::{ResolveOptions, dependency_graph, resolve};
pub use vecmap::VecMap;

use crate::diagnostic::{SourceFile, Span};

/// Attribute values. Strings may still hold `${TYPE.NAME.ATTR}` references to
/// other resources (variables are already substituted); see [`template`].
pub type Value = serde_json::Value;
/// A resource's attributes by name.
pub type Attrs = VecMap<String, Value>;
/// Tags of a live object: key to value.
pub type Tags = VecMap<String, String>;

/// What to do when a live object with the resource's identity exists but
/// this stack's state does not own it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Fail,
    Reuse,
    Adopt,
    Unique,
    Skip,
}

/// A fully resolved stack, ready for graph building and planning.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// `default` unless `--env` named one.
    pub env: String,
    /// The folder of the stack file: relative paths in the stack resolve here.
    pub dir: PathBuf,
    pub source: Arc<SourceFile>,
    /// `[provider.NAME]` tables, variables substituted.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Resources in file order.
    pub resources: Vec<Resource>,
    pub checks: Vec<Check>,
    /// `[output]`: name → value (may reference resources).
    pub outputs: BTreeMap<String, Value>,
    pub state: StateConfig,
    /// Values of `${env.NAME}` declared sensitive, to be masked in output.
    pub sensitive_values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub settings: Attrs,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub address: Address,
    /// Desired attributes; meta keys (`if_exists`, `depends_on`) removed.
    pub attrs: Attrs,
    /// Fallback chain; `[Fail]` when not given.
    pub if_exists: Vec<Policy>,
    /// Every resource this one depends on: references and `depends_on`,
    /// sorted and without duplicates.
    pub depends_on: Vec<Address>,
    /// Span of the `[resource.TYPE.NAME]` header (or the whole table).
    pub span: Span,
    /// Span of each attribute's value, for diagnostics found later.
    pub attr_spans: AttrSpans,
}

/// The spans of a resource's attribute values, by attribute name.
pub type AttrSpans = VecMap<String, Span>;

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub command: String,
    pub retries: u32,
    pub interval_s: f64,
    pub span: Span,
}

/// Where state lives. `[state]` in the stack, overridden by `--state-*` flags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StateConfig {
    /// `.cairn/` beside the stack file (or the given folder).
    #[default]
    Local,
    LocalDir {
        dir: PathBuf,
    },
    S3 {
        bucket: String,
        key: String,
        region: Option<String>,
        endpoint_url: Option<String>,
    },
}
