//! The JSON Schema of the stack format, generated from Rust types that
//! mirror the file (these types are only described, never deserialized:
//! parsing keeps spans with its own tree). Editors such as taplo use it for
//! completion and validation through the `#:schema` comment.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::model::Policy;
use crate::provider::{AttrKind, type_schema};

/// An identifier: a letter or `_`, then letters, digits, `_` or `-`.
const IDENTIFIER: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";
/// `TYPE.NAME`.
const ADDRESS: &str = "^[A-Za-z_][A-Za-z0-9_-]*_[A-Za-z0-9_-]*\\.[A-Za-z_][A-Za-z0-9_-]*$";
/// `env.NAME` or `var.NAME`.
const SENSITIVE: &str = "^(env|var)\\.[^.]+$";

/// A cairn stack: resources to create and keep in the described state.
#[derive(JsonSchema)]
#[schemars(title = "cairn stack")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StackFile {
    /// The stack's name and metadata.
    stack: StackTable,
    /// Variables, usable as `${var.NAME}` in any string.
    vars: Option<BTreeMap<String, Value>>,
    /// Environments (`--env NAME`), each overriding some variables.
    env: Option<BTreeMap<String, EnvTable>>,
    /// Provider settings, by provider name.
    provider: Option<ProviderTables>,
    /// Resources, as `[resource.TYPE.NAME]`.
    resource: Option<BTreeMap<String, BTreeMap<String, ResourceTable>>>,
    /// Commands run after apply to check the result.
    check: Option<BTreeMap<String, CheckTable>>,
    /// Values printed after apply (may reference resources).
    output: Option<BTreeMap<String, Value>>,
    /// Where the state is kept.
    state: Option<StateTable>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StackTable {
    /// The stack's name: objects it creates are tagged with it.
    #[schemars(pattern(IDENTIFIER))]
    name: String,
    /// What the stack is for.
    description: Option<String>,
    /// `env.NAME` / `var.NAME` whose values are secret: masked in all output.
    #[schemars(inner(pattern(SENSITIVE)))]
    sensitive: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EnvTable {
    /// Variables that override `[vars]` in this environment.
    vars: Option<BTreeMap<String, Value>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProviderTables {
    /// The simulated cloud.
    sim: Option<SimSettings>,
    /// Files and commands on this machine (no settings).
    local: Option<LocalSettings>,
    /// Amazon Web Services.
    aws: Option<BTreeMap<String, Value>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SimSettings {
    /// The JSON file holding the simulated world, relative to the stack file.
    world: Option<String>,
    /// Delay added to every call, in milliseconds.
    latency_ms: Option<u64>,
    /// Random extra delay, up to this many milliseconds.
    jitter_ms: Option<u64>,
    /// Injected failures: `"TYPE.NAME:operation"` (create, update, delete, read, find).
    fail: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LocalSettings {}

/// A resource: its provider's attributes plus the meta keys.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ResourceTable {
    /// What to do when an object with this resource's identity already
    /// exists and the stack does not own it: a policy or a fallback chain.
    if_exists: Option<IfExists>,
    /// Resources (`TYPE.NAME`) to create before this one, besides those referenced.
    #[schemars(inner(pattern(ADDRESS)))]
    depends_on: Option<Vec<String>>,
    /// The provider's attributes.
    #[serde(flatten)]
    attributes: BTreeMap<String, Value>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum IfExists {
    One(Policy),
    Chain(Vec<Policy>),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CheckTable {
    /// Shell command (sh -c), run in the stack file's folder; must exit 0.
    command: String,
    /// How many times to retry a failing command.
    retries: Option<u32>,
    /// Seconds between retries.
    interval_s: Option<f64>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Backend {
    Local,
    S3,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"backend": {"const": "s3"}}, "required": ["backend"]},
    "then" = {"required": ["bucket", "key"]}
))]
#[allow(dead_code)]
struct StateTable {
    /// `local` (default: `.cairn/` beside the stack file) or `s3`.
    backend: Option<Backend>,
    /// local: the state folder, relative to the stack file.
    dir: Option<String>,
    /// s3: the bucket.
    bucket: Option<String>,
    /// s3: the object key of the state.
    key: Option<String>,
    /// s3: the bucket's region.
    region: Option<String>,
    /// s3: a custom endpoint (an S3-compatible server).
    endpoint_url: Option<String>,
}

/// The JSON Schema (draft-07) of the stack format.
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<StackFile>().to_value();
    strip_null(&mut schema);
    add_local_types(&mut schema);
    schema
}

/// TOML has no null: optional keys are simply absent, so drop the `null`
/// that schemars allows for `Option` fields.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any.len() == 1
                    && let Some(Value::Object(only)) = any.pop()
                {
                    map.remove("anyOf");
                    if only.contains_key("$ref") {
                        // Draft-07 ignores the siblings of `$ref` (the
                        // description): keep it apart, as schemars does.
                        map.insert("allOf".into(), json!([only]));
                    } else {
                        for (k, x) in only {
                            map.entry(k).or_insert(x);
                        }
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Closed schemas for the `local_*` types, so editors complete their
/// attributes. (Only types compiled into every build are listed, so the
/// schema file is the same whatever the cargo features.)
fn add_local_types(schema: &mut Value) {
    let Some(resource) = schema.pointer_mut("/properties/resource") else {
        return;
    };
    let mut properties = serde_json::Map::new();
    for type_name in crate::provider::local::type_names() {
        let Ok(ts) = type_schema(&type_name) else {
            continue;
        };
        let Some(attrs) = &ts.attributes else {
            continue;
        };
        let mut props = serde_json::Map::new();
        props.insert(
            "if_exists".into(),
            json!({"$ref": "#/definitions/IfExists"}),
        );
        props.insert(
            "depends_on".into(),
            json!({"type": "array", "items": {"type": "string", "pattern": ADDRESS}}),
        );
        let mut required = Vec::new();
        for a in attrs.iter().filter(|a| !a.computed) {
            let mut p = match a.kind {
                AttrKind::String => json!({"type": "string"}),
                AttrKind::Integer => json!({"type": "integer"}),
                AttrKind::Number => json!({"type": "number"}),
                AttrKind::Bool => json!({"type": "boolean"}),
                AttrKind::List => json!({"type": "array"}),
                AttrKind::Table => json!({"type": "object"}),
                AttrKind::Any => json!({}),
            };
            if !a.description.is_empty() {
                p["description"] = json!(a.description);
            }
            props.insert(a.name.to_string(), p);
            if a.required {
                required.push(a.name);
            }
        }
        properties.insert(
            type_name,
            json!({
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": props,
                    "required": required,
                    "additionalProperties": false,
                }
            }),
        );
    }
    resource["properties"] = Value::Object(properties);
}
