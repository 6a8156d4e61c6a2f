//! `aws_ecs_task_definition`: a task definition family. Task definitions are
//! immutable: any change registers a new revision and deregisters the old
//! one, so an update returns a new id (the new revision's ARN).
//!
//! Containers are compared in a canonical shape (defaults left out: cpu 0,
//! `essential = true`, protocol `tcp`, host port equal to the container
//! port, empty environment or command), which both reads and
//! [`canonical_containers`] produce.

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, KeyValuePair, NetworkMode, PortMapping, TaskDefinition,
    TaskDefinitionField, TransportProtocol,
};
use serde_json::{Map, Value, json};

use super::attrs::{
    int_attr, list_value, req_str, str_attr, string_list, string_table, tags_for_create,
    user_tags_value,
};
use super::ecs_cluster::{ecs_tags, retag, tag_map};
use super::errors::{invalid, sdk};
use super::{AwsProvider, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, ErrorKind, LiveObject, ProviderError,
    TypeSchema, UpdateRequest,
};

pub const TYPE: &str = "aws_ecs_task_definition";

/// Input attributes other than tags: a change to any registers a revision.
const REVISION_ATTRS: &[&str] = &[
    "family",
    "cpu",
    "memory",
    "network_mode",
    "requires_compatibilities",
    "execution_role_arn",
    "task_role_arn",
    "containers",
];

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("family"),
        vec![
            AttrSchema::input("family", AttrKind::String)
                .required()
                .force_new()
                .describe("The task definition family."),
            AttrSchema::input("cpu", AttrKind::Integer).describe("Task CPU units (e.g. 256)."),
            AttrSchema::input("memory", AttrKind::Integer).describe("Task memory in MiB."),
            AttrSchema::input("network_mode", AttrKind::String)
                .describe("bridge, host, awsvpc or none."),
            AttrSchema::input("requires_compatibilities", AttrKind::List)
                .describe("EC2, FARGATE, EXTERNAL."),
            AttrSchema::input("execution_role_arn", AttrKind::String)
                .describe("Role ECS uses to pull images and write logs."),
            AttrSchema::input("task_role_arn", AttrKind::String)
                .describe("Role the containers run as."),
            AttrSchema::input("containers", AttrKind::List)
                .required()
                .describe("Containers: tables with name, image, cpu, memory, essential, port_mappings, environment, command."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String)
                .describe("The ARN of the current revision."),
            AttrSchema::computed("revision", AttrKind::Integer)
                .describe("The current revision number."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let Some(containers) = attrs.get("containers") else {
        return problems;
    };
    let Some(items) = containers.as_array() else {
        if is_known(containers) {
            problems.push((
                "containers".into(),
                "`containers` must be a list of tables".into(),
            ));
        }
        return problems;
    };
    if items.is_empty() {
        problems.push((
            "containers".into(),
            "a task definition needs at least one container".into(),
        ));
    }
    for (i, c) in items.iter().enumerate() {
        let Some(table) = c.as_object() else {
            problems.push((
                format!("containers[{i}]"),
                "each container must be a table".into(),
            ));
            continue;
        };
        for key in ["name", "image"] {
            if !table.contains_key(key) {
                problems.push((
                    format!("containers[{i}]"),
                    format!("a container needs `{key}`"),
                ));
            }
        }
        if let Some(Value::Array(ports)) = table.get("port_mappings") {
            for (j, pm) in ports.iter().enumerate() {
                if is_known(pm) && pm.get("container_port").is_none() {
                    problems.push((
                        format!("containers[{i}].port_mappings[{j}]"),
                        "a port mapping needs `container_port`".into(),
                    ));
                }
            }
        }
    }
    problems
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One port mapping in canonical shape.
fn canonical_port(container_port: i64, host_port: Option<i64>, protocol: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("container_port".into(), json!(container_port));
    if let Some(h) = host_port.filter(|h| *h != 0 && *h != container_port) {
        m.insert("host_port".into(), json!(h));
    }
    if let Some(proto) = protocol.filter(|p| !p.eq_ignore_ascii_case("tcp")) {
        m.insert("protocol".into(), json!(proto.to_ascii_lowercase()));
    }
    Value::Object(m)
}

/// Containers as the stack writes them, put in canonical shape. Values that
/// are not container tables are kept as they are.
pub fn canonical_containers(v: &Value) -> Value {
    let Some(items) = v.as_array() else {
        return v.clone();
    };
    Value::Array(
        items
            .iter()
            .map(|c| {
                let Some(t) = c.as_object() else {
                    return c.clone();
                };
                let mut m = Map::new();
                for key in ["name", "image"] {
                    if let Some(v) = t.get(key) {
                        m.insert(key.into(), v.clone());
                    }
                }
                if let Some(cpu) = int_of(t.get("cpu")).filter(|c| *c != 0) {
                    m.insert("cpu".into(), json!(cpu));
                }
                if let Some(mem) = int_of(t.get("memory")) {
                    m.insert("memory".into(), json!(mem));
                }
                if t.get("essential").and_then(Value::as_bool) == Some(false) {
                    m.insert("essential".into(), json!(false));
                }
                if let Some(Value::Array(ports)) = t.get("port_mappings")
                    && !ports.is_empty()
                {
                    let ports = ports
                        .iter()
                        .map(|pm| match int_of(pm.get("container_port")) {
                            Some(cp) => canonical_port(
                                cp,
                                int_of(pm.get("host_port")),
                                pm.get("protocol").and_then(Value::as_str),
                            ),
                            None => pm.clone(),
                        })
                        .collect();
                    m.insert("port_mappings".into(), Value::Array(ports));
                }
                let env = string_table(t.get("environment"));
                if !env.is_empty() {
                    m.insert(
                        "environment".into(),
                        super::attrs::table_value(
                            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        ),
                    );
                }
                let command = string_list(t.get("command"));
                if !command.is_empty() {
                    m.insert("command".into(), list_value(&command));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Containers as ECS returns them, in canonical shape.
fn containers_from_api(defs: &[ContainerDefinition]) -> Value {
    Value::Array(
        defs.iter()
            .map(|d| {
                let mut m = Map::new();
                m.insert("name".into(), json!(d.name().unwrap_or_default()));
                m.insert("image".into(), json!(d.image().unwrap_or_default()));
                if d.cpu() != 0 {
                    m.insert("cpu".into(), json!(d.cpu()));
                }
                if let Some(mem) = d.memory() {
                    m.insert("memory".into(), json!(mem));
                }
                if d.essential() == Some(false) {
                    m.insert("essential".into(), json!(false));
                }
                if !d.port_mappings().is_empty() {
                    let ports = d
                        .port_mappings()
                        .iter()
                        .map(|pm| {
                            canonical_port(
                                i64::from(pm.container_port().unwrap_or_default()),
                                pm.host_port().map(i64::from),
                                pm.protocol().map(|p| p.as_str()),
                            )
                        })
                        .collect();
                    m.insert("port_mappings".into(), Value::Array(ports));
                }
                if !d.environment().is_empty() {
                    let env = super::attrs::table_value(d.environment().iter().map(|kv| {
                        (
                            kv.name().unwrap_or_default(),
                            kv.value().unwrap_or_default(),
                        )
                    }));
                    m.insert("environment".into(), env);
                }
                if !d.command().is_empty() {
                    m.insert("command".into(), list_value(d.command()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// The SDK container definitions for the stack's containers.
fn container_defs(op: &str, attrs: &Attrs) -> Result<Vec<ContainerDefinition>, ProviderError> {
    let Some(Value::Array(items)) = attrs.get("containers") else {
        return Err(invalid(op, "`containers` must be a list of tables"));
    };
    let mut defs = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let t = c
            .as_object()
            .ok_or_else(|| invalid(op, format!("containers[{i}] must be a table")))?;
        let text = |k: &str| t.get(k).and_then(Value::as_str);
        let (Some(name), Some(image)) = (text("name"), text("image")) else {
            return Err(invalid(
                op,
                format!("containers[{i}] needs `name` and `image`"),
            ));
        };
        let int32 = |k: &str| int_of(t.get(k)).and_then(|n| i32::try_from(n).ok());
        let mut b = ContainerDefinition::builder().name(name).image(image);
        if let Some(cpu) = int32("cpu") {
            b = b.cpu(cpu);
        }
        if let Some(mem) = int32("memory") {
            b = b.memory(mem);
        }
        b = b.essential(t.get("essential").and_then(Value::as_bool).unwrap_or(true));
        if let Some(Value::Array(ports)) = t.get("port_mappings") {
            for pm in ports {
                let port = |k: &str| int_of(pm.get(k)).and_then(|n| i32::try_from(n).ok());
                let mut pb = PortMapping::builder().set_container_port(port("container_port"));
                if let Some(h) = port("host_port") {
                    pb = pb.host_port(h);
                }
                let proto = pm.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
                pb = pb.protocol(TransportProtocol::from(proto.to_ascii_lowercase().as_str()));
                b = b.port_mappings(pb.build());
            }
        }
        for (k, v) in string_table(t.get("environment")) {
            b = b.environment(KeyValuePair::builder().name(k).value(v).build());
        }
        for arg in string_list(t.get("command")) {
            b = b.command(arg);
        }
        defs.push(b.build());
    }
    Ok(defs)
}

fn live(td: &TaskDefinition, tags: Tags) -> LiveObject {
    let mut a = Attrs::new();
    let number_or_text = |s: &str| s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n));
    a.insert("family".into(), json!(td.family().unwrap_or_default()));
    if let Some(cpu) = td.cpu() {
        a.insert("cpu".into(), number_or_text(cpu));
    }
    if let Some(mem) = td.memory() {
        a.insert("memory".into(), number_or_text(mem));
    }
    if let Some(mode) = td.network_mode() {
        a.insert("network_mode".into(), json!(mode.as_str()));
    }
    let mut compat: Vec<&str> = td
        .requires_compatibilities()
        .iter()
        .map(|c| c.as_str())
        .collect();
    compat.sort_unstable();
    a.insert("requires_compatibilities".into(), list_value(&compat));
    if let Some(r) = td.execution_role_arn() {
        a.insert("execution_role_arn".into(), json!(r));
    }
    if let Some(r) = td.task_role_arn() {
        a.insert("task_role_arn".into(), json!(r));
    }
    a.insert(
        "containers".into(),
        containers_from_api(td.container_definitions()),
    );
    a.insert("tags".into(), user_tags_value(&tags));
    let arn = td.task_definition_arn().unwrap_or_default().to_string();
    a.insert("arn".into(), json!(arn));
    a.insert("revision".into(), json!(td.revision()));
    LiveObject {
        id: arn,
        attributes: a,
        tags,
    }
}

/// Reads a revision by ARN (or the latest active revision of a family).
pub async fn read(p: &AwsProvider, id: &str) -> Result<Option<LiveObject>, ProviderError> {
    let out = p
        .clients
        .ecs
        .describe_task_definition()
        .task_definition(id)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| sdk("ecs:DescribeTaskDefinition", e));
    let out = match out {
        Ok(out) => out,
        // ECS answers a missing family or revision with a ClientException.
        Err(e) if e.kind == ErrorKind::NotFound || e.message.contains("ClientException") => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(td) = out.task_definition() else {
        return Ok(None);
    };
    if td.status().is_some_and(|s| s.as_str() == "INACTIVE") {
        return Ok(None);
    }
    Ok(Some(live(td, tag_map(out.tags()))))
}

async fn register(
    p: &AwsProvider,
    attrs: &Attrs,
    tags: &Tags,
) -> Result<LiveObject, ProviderError> {
    let op = "ecs:RegisterTaskDefinition";
    let mut call = p
        .clients
        .ecs
        .register_task_definition()
        .family(req_str(op, attrs, "family")?)
        .set_container_definitions(Some(container_defs(op, attrs)?))
        .set_tags(Some(ecs_tags(tags)));
    if let Some(cpu) = int_attr(attrs, "cpu") {
        call = call.cpu(cpu.to_string());
    }
    if let Some(mem) = int_attr(attrs, "memory") {
        call = call.memory(mem.to_string());
    }
    if let Some(mode) = str_attr(attrs, "network_mode") {
        call = call.network_mode(NetworkMode::from(mode));
    }
    for c in string_list(attrs.get("requires_compatibilities")) {
        call = call.requires_compatibilities(Compatibility::from(c.as_str()));
    }
    if let Some(r) = str_attr(attrs, "execution_role_arn") {
        call = call.execution_role_arn(r);
    }
    if let Some(r) = str_attr(attrs, "task_role_arn") {
        call = call.task_role_arn(r);
    }
    let out = call.send().await.map_err(|e| sdk(op, e))?;
    let td = out
        .task_definition()
        .ok_or_else(|| invalid(op, "the response holds no task definition"))?;
    Ok(live(td, tag_map(out.tags())))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    register(
        p,
        &req.attributes,
        &tags_for_create(&req.attributes, &req.tags),
    )
    .await
}

/// Whether an input other than tags that the stack sets differs from the
/// live revision.
fn needs_revision(before: &Attrs, after: &Attrs) -> bool {
    let before = super::normalize(TYPE, before);
    let after = super::normalize(TYPE, after);
    REVISION_ATTRS
        .iter()
        .any(|k| after.get(*k).is_some_and(|a| before.get(*k) != Some(a)))
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    if !needs_revision(&req.before, &req.after) {
        retag(p, &req.id, req).await?;
        return read(p, &req.id).await?.ok_or_else(|| {
            ProviderError::not_found(format!("ecs:DescribeTaskDefinition: {} is gone", req.id))
        });
    }
    let new = register(p, &req.after, &tags_for_create(&req.after, &req.tags)).await?;
    if new.id != req.id {
        deregister(p, &req.id).await?;
    }
    Ok(new)
}

async fn deregister(p: &AwsProvider, arn: &str) -> Result<(), ProviderError> {
    let result = p
        .clients
        .ecs
        .deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ecs:DeregisterTaskDefinition", e));
    match result {
        Err(e) if e.message.contains("ClientException") => Ok(()),
        other => other,
    }
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    deregister(p, &req.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_containers_drop_defaults() {
        let v = json!([{
            "name": "web", "image": "nginx", "cpu": 0, "essential": true,
            "port_mappings": [{"container_port": 80, "host_port": 80, "protocol": "tcp"}],
            "environment": {}, "command": []
        }]);
        assert_eq!(
            canonical_containers(&v),
            json!([{"name": "web", "image": "nginx", "port_mappings": [{"container_port": 80}]}])
        );
    }

    #[test]
    fn containers_need_name_and_image() {
        let attrs = Attrs::from([("containers".into(), json!([{"name": "x"}]))]);
        let problems = validate(&attrs);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("image"));
    }
}
