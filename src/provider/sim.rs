//! stub: being written
use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::model::Attrs;

/// Every `sim_*` type exists: open attributes, identity `name` (required,
/// forces replacement), computed `id` and `arn`.
pub fn schema(type_name: &str) -> Option<TypeSchema> {
    let rest = type_name.strip_prefix("sim_")?;
    if rest.is_empty() {
        return None;
    }
    Some(TypeSchema {
        type_name: type_name.to_string(),
        attributes: None,
        identity: Some("name"),
        computed: vec!["id", "arn"],
        force_new: vec!["name"],
    })
}

/// The sim provider has no fixed list of types.
pub fn type_names() -> Vec<String> {
    Vec::new()
}

/// Settings of `[provider.sim]`.
pub const SETTINGS: &[&str] = &["world", "latency_ms", "jitter_ms", "fail"];

pub fn validate_config(settings: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (key, value) in settings {
        let ok = match key.as_str() {
            "world" => value.is_string(),
            "latency_ms" | "jitter_ms" => value.as_u64().is_some(),
            "fail" => value.as_array().is_some_and(|items| {
                items.iter().all(|i| {
                    i.as_str()
                        .and_then(|s| s.rsplit_once(':'))
                        .is_some_and(|(addr, op)| {
                            addr.parse::<Address>().is_ok()
                                && matches!(op, "create" | "update" | "delete" | "read" | "find")
                        })
                })
            }),
            _ => {
                problems.push((
                    key.clone(),
                    format!(
                        "unknown setting `{key}` of provider `sim`: known settings are {}",
                        SETTINGS.join(", ")
                    ),
                ));
                continue;
            }
        };
        if !ok {
            let expected = match key.as_str() {
                "world" => "a path (string)",
                "latency_ms" | "jitter_ms" => "a non-negative integer (milliseconds)",
                _ => {
                    "a list of \"TYPE.NAME:operation\" strings (operation: create, update, delete, read, find)"
                }
            };
            problems.push((key.clone(), format!("`{key}` must be {expected}")));
        }
    }
    problems
}

/// `name` is required and, once known, must be a non-empty string.
pub fn validate(_address: &Address, attrs: &Attrs) -> Vec<(String, String)> {
    match attrs.get("name") {
        None => vec![(
            "name".into(),
            "sim resources need a `name` (their identity)".into(),
        )],
        Some(v) if !crate::model::template::is_known(v) => Vec::new(),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Vec::new(),
        Some(_) => vec![("name".into(), "`name` must be a non-empty string".into())],
    }
}

pub struct SimProvider;

impl SimProvider {
    pub fn new(_settings: &Attrs, _ctx: &ProviderContext) -> Result<Self, String> {
        todo!()
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
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
