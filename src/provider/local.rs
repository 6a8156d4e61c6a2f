//! stub: being written
use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::model::Attrs;

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

pub struct LocalProvider;

impl LocalProvider {
    pub fn new(_settings: &Attrs, _ctx: &ProviderContext) -> Result<Self, String> {
        todo!()
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }
    fn schema(&self, type_name: &str) -> Option<TypeSchema> {
        schema(type_name)
    }
    async fn read(
        &self,
        _address: &Address,
        _id: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        todo!()
    }
    async fn find(
        &self,
        _address: &Address,
        _identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        todo!()
    }
    async fn create(&self, _request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        todo!()
    }
    async fn update(&self, _request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        todo!()
    }
    async fn delete(&self, _request: &DeleteRequest) -> Result<(), ProviderError> {
        todo!()
    }
}
