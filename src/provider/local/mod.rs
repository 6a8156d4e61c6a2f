//! The `local` provider: files and shell commands on this machine, so a
//! stack can produce real artifacts (config files, build steps) next to its
//! cloud resources, and so the engine can be tried with nothing installed.
//!
//! `local_file` objects are files whose id is their path as the stack gives
//! it (relative to the stack's folder); reading one reads the file.
//! `local_command` objects are commands run on create, remembered in a
//! registry file (see [`command`]). Files cannot carry tags: the ownership
//! tags of the files cairn writes are kept in the same registry.

pub mod command;
pub mod file;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::hash::Fnv64;
use crate::model::{Attrs, Tags};
use command::Registry;
use file::FileSpec;

/// `local_file` and `local_command`.
pub fn schema(type_name: &str) -> Option<TypeSchema> {
    let (attributes, identity) = match type_name {
        "local_file" => (
            vec![
                AttrSchema::input("path", AttrKind::String)
                    .required()
                    .force_new()
                    .describe("File path, relative to the stack file's folder"),
                AttrSchema::input("content", AttrKind::String)
                    .describe("File content (default: empty)"),
                AttrSchema::input("mode", AttrKind::String)
                    .describe("Octal permission bits, e.g. \"0644\""),
                AttrSchema::computed("id", AttrKind::String),
            ],
            Some("path"),
        ),
        "local_command" => (
            vec![
                AttrSchema::input("command", AttrKind::String)
                    .required()
                    .force_new()
                    .describe("Shell command run on create (sh -c), in the stack file's folder"),
                AttrSchema::input("destroy_command", AttrKind::String)
                    .describe("Shell command run on delete"),
                AttrSchema::input("triggers", AttrKind::Table)
                    .force_new()
                    .describe("Any values; a change re-runs the command (replacement)"),
                AttrSchema::computed("id", AttrKind::String),
                AttrSchema::computed("stdout", AttrKind::String),
            ],
            None,
        ),
        _ => return None,
    };
    Some(TypeSchema {
        type_name: type_name.to_string(),
        attributes: Some(attributes),
        identity,
        computed: Vec::new(),
        force_new: Vec::new(),
    })
}

pub fn type_names() -> Vec<String> {
    vec!["local_command".into(), "local_file".into()]
}

/// `[provider.local]` takes no settings.
pub fn validate_config(settings: &Attrs) -> Vec<(String, String)> {
    settings
        .keys()
        .map(|k| {
            (
                k.clone(),
                format!("unknown setting `{k}`: provider `local` takes no settings"),
            )
        })
        .collect()
}

/// `mode` must be octal permission bits.
pub fn validate(_address: &Address, attrs: &Attrs) -> Vec<(String, String)> {
    match attrs.get("mode") {
        Some(serde_json::Value::String(m))
            if !((3..=4).contains(&m.len()) && m.chars().all(|c| ('0'..='7').contains(&c))) =>
        {
            vec![(
                "mode".into(),
                format!("`{m}` is not an octal mode such as \"0644\""),
            )]
        }
        _ => Vec::new(),
    }
}

/// Files and commands, relative to the stack's folder.
pub struct LocalProvider {
    dir: PathBuf,
    stack: String,
    env: String,
    registry: Registry,
    counter: AtomicU64,
}

impl LocalProvider {
    /// Takes no settings (see [`validate_config`]); touches no file.
    pub fn new(settings: &Attrs, ctx: &ProviderContext) -> Result<Self, String> {
        if let Some((_, message)) = validate_config(settings).into_iter().next() {
            return Err(message);
        }
        Ok(LocalProvider {
            dir: ctx.dir.clone(),
            stack: ctx.stack.clone(),
            env: ctx.env.clone(),
            registry: Registry::new(&ctx.dir, &ctx.stack, &ctx.env),
            counter: AtomicU64::new(0),
        })
    }

    /// The tags recorded for a file (files cannot carry tags themselves, so
    /// the ownership tags of files cairn wrote live in the registry).
    async fn file_tags(&self, path: &str) -> Result<Tags, ProviderError> {
        let registry = self.registry.clone();
        let key = format!("file:{path}");
        let entry = blocking(move || registry.get(&key)).await?;
        Ok(entry
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect())
    }

    async fn set_file_tags(&self, path: &str, tags: Option<&Tags>) -> Result<(), ProviderError> {
        let registry = self.registry.clone();
        let key = format!("file:{path}");
        let entry: Option<Attrs> = tags.map(|t| {
            t.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        });
        blocking(move || registry.set(&key, entry)).await
    }

    /// The registry file of `local_command` results.
    pub fn registry_path(&self) -> &std::path::Path {
        self.registry.path()
    }

    /// `cmd-` and 16 hex digits, from the address, the time, the process
    /// and a counter: fresh for every run of a command.
    fn command_id(&self, address: &Address) -> String {
        let mut h = Fnv64::default();
        h.part(address.to_string().as_bytes());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.part(&nanos.to_le_bytes());
        h.part(&std::process::id().to_le_bytes());
        h.part(&self.counter.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        format!("cmd-{:016x}", h.finish())
    }

    fn env<'a>(&'a self, address: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("CAIRN_STACK", self.stack.as_str()),
            ("CAIRN_ENV", self.env.as_str()),
            ("CAIRN_ADDRESS", address),
        ]
    }

    async fn create_command(&self, request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        let address = &request.address;
        let Some(command) = request.attributes.get("command").and_then(|v| v.as_str()) else {
            return Err(ProviderError::fatal(format!(
                "{address}: `command` must be a string"
            )));
        };
        let address_text = address.to_string();
        let output = command::run(
            address,
            "command",
            command,
            &self.dir,
            &self.env(&address_text),
        )
        .await?;
        let id = self.command_id(address);
        let mut attributes = request.attributes.clone();
        attributes.insert("stdout".into(), output.stdout.into());
        attributes.insert("id".into(), id.clone().into());
        let registry = self.registry.clone();
        let entry = attributes.clone();
        let entry_id = id.clone();
        blocking(move || registry.set(&entry_id, Some(entry))).await?;
        Ok(LiveObject {
            id,
            attributes,
            tags: Default::default(),
        })
    }

    async fn read_command(&self, id: &str) -> Result<Option<LiveObject>, ProviderError> {
        let registry = self.registry.clone();
        let key = id.to_string();
        let entry = blocking(move || registry.get(&key)).await?;
        Ok(entry.map(|attributes| LiveObject {
            id: id.to_string(),
            attributes,
            tags: Default::default(),
        }))
    }

    async fn update_command(&self, request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        let Some(old) = self.read_command(&request.id).await? else {
            return Err(ProviderError::not_found(format!(
                "{}: no command with id `{}` is recorded in {}",
                request.address,
                request.id,
                self.registry.path().display()
            )));
        };
        let mut attributes = request.after.clone();
        for computed in ["stdout", "id"] {
            if let Some(v) = old.attributes.get(computed) {
                attributes.insert(computed.into(), v.clone());
            }
        }
        let registry = self.registry.clone();
        let entry = attributes.clone();
        let id = request.id.clone();
        blocking(move || registry.set(&id, Some(entry))).await?;
        Ok(LiveObject {
            id: request.id.clone(),
            attributes,
            tags: Default::default(),
        })
    }

    async fn delete_command(&self, request: &DeleteRequest) -> Result<(), ProviderError> {
        let recorded = self.read_command(&request.id).await?;
        let attrs = recorded
            .as_ref()
            .map_or(&request.attributes, |o| &o.attributes);
        if let Some(destroy) = attrs.get("destroy_command").and_then(|v| v.as_str()) {
            let address_text = request.address.to_string();
            let stdout = attrs.get("stdout").and_then(|v| v.as_str()).unwrap_or("");
            let mut env = self.env(&address_text);
            env.push(("CAIRN_ID", &request.id));
            env.push(("CAIRN_STDOUT", stdout));
            command::run(
                &request.address,
                "destroy_command",
                destroy,
                &self.dir,
                &env,
            )
            .await?;
        }
        if recorded.is_some() {
            let registry = self.registry.clone();
            let id = request.id.clone();
            blocking(move || registry.set(&id, None)).await?;
        }
        Ok(())
    }
}

/// Runs blocking file IO off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProviderError::fatal(format!("local provider task failed: {e}")))?
}

fn unknown_type(address: &Address) -> ProviderError {
    ProviderError::fatal(format!(
        "{address}: the local provider has no type `{}` (it has {})",
        address.type_name,
        type_names().join(", ")
    ))
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn schema(&self, type_name: &str) -> Option<TypeSchema> {
        schema(type_name)
    }

    async fn read(&self, address: &Address, id: &str) -> Result<Option<LiveObject>, ProviderError> {
        match address.type_name.as_str() {
            "local_file" => {
                let (dir, path) = (self.dir.clone(), id.to_string());
                let found = blocking(move || file::read(&dir, &path)).await?;
                match found {
                    Some(mut obj) => {
                        obj.tags = self.file_tags(id).await?;
                        Ok(Some(obj))
                    }
                    None => Ok(None),
                }
            }
            "local_command" => self.read_command(id).await,
            _ => Err(unknown_type(address)),
        }
    }

    /// Files are found by path; commands have no identity.
    async fn find(
        &self,
        address: &Address,
        identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        match address.type_name.as_str() {
            "local_file" => self.read(address, identity).await,
            "local_command" => Ok(None),
            _ => Err(unknown_type(address)),
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        let address = &request.address;
        match address.type_name.as_str() {
            "local_file" => {
                let spec = FileSpec::from_attrs(&address.to_string(), &request.attributes)?;
                let dir = self.dir.clone();
                let mut obj = blocking(move || file::write(&dir, &spec)).await?;
                self.set_file_tags(&obj.id, Some(&request.tags)).await?;
                obj.tags = request.tags.clone();
                Ok(obj)
            }
            "local_command" => self.create_command(request).await,
            _ => Err(unknown_type(address)),
        }
    }

    async fn update(&self, request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        let address = &request.address;
        match address.type_name.as_str() {
            "local_file" => {
                let mut after = request.after.clone();
                let path = after
                    .entry("path".to_string())
                    .or_insert_with(|| request.id.clone().into());
                if path.as_str() != Some(request.id.as_str()) {
                    return Err(ProviderError::fatal(format!(
                        "{address}: a file cannot move in place (`path` forces replacement)"
                    )));
                }
                let spec = FileSpec::from_attrs(&address.to_string(), &after)?;
                let dir = self.dir.clone();
                let mut obj = blocking(move || file::write(&dir, &spec)).await?;
                let mut tags = self.file_tags(&obj.id).await?;
                tags.extend(request.tags.clone());
                self.set_file_tags(&obj.id, Some(&tags)).await?;
                obj.tags = tags;
                Ok(obj)
            }
            "local_command" => self.update_command(request).await,
            _ => Err(unknown_type(address)),
        }
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), ProviderError> {
        match request.address.type_name.as_str() {
            "local_file" => {
                let (dir, path) = (self.dir.clone(), request.id.clone());
                blocking(move || file::delete(&dir, &path)).await?;
                self.set_file_tags(&request.id, None).await
            }
            "local_command" => self.delete_command(request).await,
            _ => Err(unknown_type(&request.address)),
        }
    }
}
