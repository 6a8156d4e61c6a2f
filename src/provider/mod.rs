//! The provider interface: how the engine reads and changes live objects.
//!
//! A provider serves the resource types with its prefix (`sim_*`, `local_*`,
//! `aws_*`). The engine never talks to the outside world except through this
//! trait (and the state backends). Providers are async, report whether an
//! error is worth retrying, and describe their types with a [`TypeSchema`]:
//! which attributes exist, which force replacement, which are computed, and
//! which attribute is the identity that `if_exists` checks.

pub mod local;
mod registry;
pub mod sim;

#[cfg(feature = "aws")]
pub mod aws;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Address, Attrs, Tags};

pub use registry::{
    PROVIDERS, ProviderContext, Providers, SchemaCache, UnknownType, configure, configure_more,
    normalize, normalizes, provider_name, type_schema, validate_attrs, validate_config,
};

/// Tag keys that mark an object as created by cairn.
pub const TAG_STACK: &str = "cairn:stack";
pub const TAG_ENV: &str = "cairn:env";
pub const TAG_ADDRESS: &str = "cairn:address";

/// The ownership tags cairn puts on every object it creates.
pub fn ownership_tags(stack: &str, env: &str, address: &Address) -> Tags {
    Tags::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ENV.to_string(), env.to_string()),
        (TAG_ADDRESS.to_string(), address.to_string()),
    ])
}

/// An object as it exists in the cloud (or on disk, for `local`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveObject {
    /// The physical id the provider uses to find it again.
    pub id: String,
    /// Input and computed attributes as the provider reads them back.
    pub attributes: Attrs,
    /// Tags, including cairn's ownership tags where present.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

impl LiveObject {
    /// Whether the ownership tags say this stack, env and address made it.
    pub fn is_ours(&self, stack: &str, env: &str, address: &Address) -> bool {
        self.tags.get(TAG_STACK).map(String::as_str) == Some(stack)
            && self.tags.get(TAG_ENV).map(String::as_str) == Some(env)
            && self
                .tags
                .get(TAG_ADDRESS)
                .is_some_and(|a| *a == address.to_string())
    }

    /// Whether any cairn stack claims the object.
    pub fn is_cairn_managed(&self) -> bool {
        self.tags.contains_key(TAG_STACK)
    }
}

/// The kind of value an attribute holds, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    String,
    Integer,
    Number,
    Bool,
    List,
    Table,
    /// Anything (a string, or structured data checked by the provider).
    Any,
}

#[derive(Debug, Clone)]
pub struct AttrSchema {
    pub name: &'static str,
    pub kind: AttrKind,
    pub required: bool,
    /// A change to this attribute replaces the object (delete, then create).
    pub force_new: bool,
    /// Set by the provider, not by the stack (`id`, `arn`, `uri`…).
    pub computed: bool,
    /// Printed as `(sensitive)` everywhere.
    pub sensitive: bool,
    pub description: &'static str,
}

impl AttrSchema {
    pub const fn input(name: &'static str, kind: AttrKind) -> AttrSchema {
        AttrSchema {
            name,
            kind,
            required: false,
            force_new: false,
            computed: false,
            sensitive: false,
            description: "",
        }
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    pub const fn computed(name: &'static str, kind: AttrKind) -> AttrSchema {
        let mut a = AttrSchema::input(name, kind);
        a.computed = true;
        a
    }
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub const fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }
}

/// What a provider says of one resource type.
#[derive(Debug, Clone)]
pub struct TypeSchema {
    pub type_name: String,
    /// `None`: any attribute is accepted (the `sim` provider's types).
    pub attributes: Option<Vec<AttrSchema>>,
    /// The input attribute whose value names the object for `if_exists`
    /// (e.g. `name`); `None` when objects of this type have no identity that
    /// could clash (they are never "found").
    pub identity: Option<&'static str>,
    /// Computed attributes every object of the type has (`id`, `arn`, …),
    /// so references to them validate even on open schemas.
    pub computed: Vec<&'static str>,
    /// Input attributes whose change forces replacement, on open schemas.
    pub force_new: Vec<&'static str>,
}

impl TypeSchema {
    pub fn attribute(&self, name: &str) -> Option<&AttrSchema> {
        self.attributes.as_ref()?.iter().find(|a| a.name == name)
    }

    pub fn forces_replacement(&self, attr: &str) -> bool {
        self.force_new.contains(&attr) || self.attribute(attr).is_some_and(|a| a.force_new)
    }

    pub fn is_computed(&self, attr: &str) -> bool {
        self.computed.contains(&attr) || self.attribute(attr).is_some_and(|a| a.computed)
    }

    pub fn is_sensitive(&self, attr: &str) -> bool {
        self.attribute(attr).is_some_and(|a| a.sensitive)
    }
}

/// Everything a provider needs to create an object. `attributes` are plain
/// values (no references left).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub address: Address,
    pub attributes: Attrs,
    /// Ownership tags (and nothing else; user tags are in `attributes`).
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub address: Address,
    pub id: String,
    /// What the object looked like when planned (live attributes).
    pub before: Attrs,
    pub after: Attrs,
    /// Ownership tags to put on it (adoption tags an object as ours).
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub struct DeleteRequest {
    pub address: Address,
    pub id: String,
    pub attributes: Attrs,
}

/// How the engine should treat a provider failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Throttling, eventual consistency, a transient network fault: retry
    /// with backoff.
    Retryable,
    /// The object is not there (a delete of a missing object succeeds).
    NotFound,
    /// Anything else: report and stop.
    Fatal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProviderError {
    pub fn fatal(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
    pub fn retryable(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::Retryable,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

/// The operations the engine performs, for messages and fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Find,
    List,
    Create,
    Update,
    Delete,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Find => "find",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        })
    }
}

/// A provider serves every resource type whose name starts with its prefix.
///
/// All methods take `&self` and may be called concurrently.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `sim`, `local`, `aws`.
    fn name(&self) -> &'static str;

    /// The schema of a type, or `None` if the provider has no such type.
    fn schema(&self, type_name: &str) -> Option<TypeSchema>;

    /// Reads an object by physical id. `Ok(None)` if it no longer exists.
    async fn read(&self, address: &Address, id: &str) -> Result<Option<LiveObject>, ProviderError>;

    /// Finds an object of `address`'s type by identity (the value of the
    /// schema's identity attribute). `Ok(None)` if there is none.
    async fn find(
        &self,
        address: &Address,
        identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError>;

    /// Lists every object of a type, for batched existence checks.
    /// `Ok(None)` when the type cannot be listed cheaply: the engine then
    /// falls back to `read` / `find` per resource.
    async fn list(&self, _type_name: &str) -> Result<Option<Vec<LiveObject>>, ProviderError> {
        Ok(None)
    }

    /// [`Provider::list`], with objects the provider may share with its own
    /// cache instead of copying them (what planning uses). The default wraps
    /// `list`; a provider that keeps its objects in memory (`sim`) hands
    /// out its own, so a plan of a large world holds one copy of it.
    async fn list_shared(
        &self,
        type_name: &str,
    ) -> Result<Option<Vec<Arc<LiveObject>>>, ProviderError> {
        Ok(self
            .list(type_name)
            .await?
            .map(|objects| objects.into_iter().map(Arc::new).collect()))
    }

    async fn create(&self, request: &CreateRequest) -> Result<LiveObject, ProviderError>;

    async fn update(&self, request: &UpdateRequest) -> Result<LiveObject, ProviderError>;

    /// Deletes an object. Deleting one that is already gone is not an error.
    async fn delete(&self, request: &DeleteRequest) -> Result<(), ProviderError>;

    /// How long the engine may keep retrying this provider's retryable
    /// errors (eventual consistency, throttling), when the provider's
    /// settings say; `None`: the engine's default (`--retry-timeout`).
    fn retry_budget(&self) -> Option<std::time::Duration> {
        None
    }

    /// Called once after a run, to flush or compact provider-side files.
    async fn finish(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}
