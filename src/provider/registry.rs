//! Which provider serves which type, and building providers from the
//! stack's `[provider.NAME]` tables.
//!
//! Schemas are looked up statically (no provider is built, no IO): that is
//! what validation uses. Providers themselves are built only by commands
//! that talk to the world (plan, apply, destroy).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Provider, TypeSchema};
use crate::model::{Address, Attrs, ProviderConfig};

/// What every provider may need to know about the run.
#[derive(Debug, Clone)]
pub struct ProviderContext {
    pub stack: String,
    pub env: String,
    /// The stack file's folder: relative paths resolve here.
    pub dir: PathBuf,
}

/// The providers a run uses, by name (`sim`, `local`, `aws`).
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<&'static str, Arc<dyn Provider>>,
}

impl Providers {
    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        self.by_name.insert(provider.name(), provider);
    }

    /// The provider serving `type_name`, if it was configured.
    pub fn for_type(&self, type_name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(provider_name(type_name)?)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.by_name.values()
    }
}

/// The known providers' names.
pub const PROVIDERS: &[&str] = &["sim", "local", "aws"];

/// The provider name a type belongs to, if any provider is known for it.
pub fn provider_name(type_name: &str) -> Option<&'static str> {
    let prefix = type_name.split('_').next()?;
    PROVIDERS.iter().copied().find(|p| *p == prefix)
}

/// Why a type has no schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownType {
    /// No provider has that prefix.
    NoProvider,
    /// The provider exists but has no such type; the list is its types.
    NoSuchType(Vec<String>),
    /// The provider is known but was not compiled into this binary.
    NotCompiled(&'static str),
}

/// The schema of `type_name`, without building any provider.
pub fn type_schema(type_name: &str) -> Result<TypeSchema, UnknownType> {
    match provider_name(type_name) {
        Some("sim") => super::sim::schema(type_name).ok_or(UnknownType::NoSuchType(Vec::new())),
        Some("local") => super::local::schema(type_name)
            .ok_or_else(|| UnknownType::NoSuchType(super::local::type_names())),
        #[cfg(feature = "aws")]
        Some("aws") => super::aws::schema(type_name).ok_or_else(|| {
            if super::aws::EC2_TYPES.contains(&type_name) {
                UnknownType::NotCompiled("aws-ec2")
            } else {
                UnknownType::NoSuchType(super::aws::type_names())
            }
        }),
        #[cfg(not(feature = "aws"))]
        Some("aws") => Err(UnknownType::NotCompiled("aws")),
        _ => Err(UnknownType::NoProvider),
    }
}

/// Schemas by type name, each asked of [`type_schema`] once: the diff and
/// the plan's lookups ask for one per resource, of a few types.
#[derive(Default)]
pub struct SchemaCache(crate::hash::FastMap<String, Option<TypeSchema>>);

impl SchemaCache {
    /// The schema of `type_name`, `None` for an unknown type.
    pub fn get(&mut self, type_name: &str) -> Option<&TypeSchema> {
        if !self.0.contains_key(type_name) {
            self.0
                .insert(type_name.to_string(), type_schema(type_name).ok());
        }
        self.0.get(type_name).and_then(Option::as_ref)
    }
}

/// Checks a `[provider.NAME]` table without building the provider:
/// (setting, message) pairs for each problem. An unknown provider name is
/// one problem with an empty setting.
pub fn validate_config(name: &str, settings: &Attrs) -> Vec<(String, String)> {
    match name {
        "sim" => super::sim::validate_config(settings),
        "local" => super::local::validate_config(settings),
        #[cfg(feature = "aws")]
        "aws" => super::aws::validate_config(settings),
        #[cfg(not(feature = "aws"))]
        "aws" => Vec::new(),
        other => vec![(
            String::new(),
            format!(
                "unknown provider `{other}`: known providers are {}",
                PROVIDERS.join(", ")
            ),
        )],
    }
}

/// Checks a resource's desired attributes beyond what the schema says (a
/// policy document that is not JSON, say), without building the provider.
/// Values still holding references are skipped. (attribute, message) pairs.
pub fn validate_attrs(address: &Address, attrs: &Attrs) -> Vec<(String, String)> {
    match provider_name(&address.type_name) {
        Some("sim") => super::sim::validate(address, attrs),
        Some("local") => super::local::validate(address, attrs),
        #[cfg(feature = "aws")]
        Some("aws") => super::aws::validate(address, attrs),
        _ => Vec::new(),
    }
}

/// The canonical form of attributes for comparison: the same meaning gives
/// equal values (policy documents, set-like lists, provider defaults). Plain
/// values in, plain values out; identity for providers without the need.
pub fn normalize(type_name: &str, attrs: &Attrs) -> Attrs {
    match provider_name(type_name) {
        #[cfg(feature = "aws")]
        Some("aws") => super::aws::normalize(type_name, attrs),
        _ => attrs.clone(),
    }
}

/// Whether [`normalize`] does anything for this type (else values compare as they are).
pub fn normalizes(type_name: &str) -> bool {
    provider_name(type_name) == Some("aws")
}

/// Builds the providers a stack uses: every provider named in `configs`, plus
/// any provider whose types appear in `used_types` (with default settings).
/// Errors are (provider name, message).
pub async fn configure<'a>(
    configs: &BTreeMap<String, ProviderConfig>,
    used_types: impl IntoIterator<Item = &'a str>,
    ctx: &ProviderContext,
) -> Result<Providers, (String, String)> {
    let mut providers = Providers::default();
    configure_more(&mut providers, configs, used_types, ctx).await?;
    Ok(providers)
}

/// Adds to `providers` what [`configure`] would build and it lacks: a
/// provider already there is kept as it is (its calls may be running).
pub async fn configure_more<'a>(
    providers: &mut Providers,
    configs: &BTreeMap<String, ProviderConfig>,
    used_types: impl IntoIterator<Item = &'a str>,
    ctx: &ProviderContext,
) -> Result<(), (String, String)> {
    let mut names: Vec<&'static str> = configs
        .keys()
        .filter_map(|k| PROVIDERS.iter().copied().find(|p| p == k))
        .collect();
    for t in used_types {
        if let Some(p) = provider_name(t) {
            names.push(p);
        }
    }
    names.sort_unstable();
    names.dedup();
    names.retain(|name| !providers.by_name.contains_key(name));
    let empty = Attrs::new();
    for name in names {
        let settings = configs.get(name).map_or(&empty, |c| &c.settings);
        let provider: Arc<dyn Provider> = match name {
            "sim" => Arc::new(
                super::sim::SimProvider::new(settings, ctx).map_err(|e| (name.to_string(), e))?,
            ),
            "local" => Arc::new(
                super::local::LocalProvider::new(settings, ctx)
                    .map_err(|e| (name.to_string(), e))?,
            ),
            #[cfg(feature = "aws")]
            "aws" => Arc::new(
                super::aws::AwsProvider::new(settings, ctx)
                    .await
                    .map_err(|e| (name.to_string(), e))?,
            ),
            other => {
                return Err((
                    other.to_string(),
                    format!(
                        "the `{other}` provider is not compiled into this build of cairn (enable the `{other}` cargo feature)"
                    ),
                ));
            }
        };
        providers.insert(provider);
    }
    Ok(())
}
