//! `aws_ecs_service`: a long-running service in a cluster. Updated in place
//! (task definition, desired count, network configuration); its id is the
//! service ARN, which names the cluster too.

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration, Service, ServiceField,
};
use serde_json::{Map, Value, json};

use super::attrs::{
    int_attr, list_value, req_str, str_attr, string_list, tags_for_create, user_tags_value,
};
use super::ecs_cluster::{ecs_tags, retag, tag_map};
use super::errors::{invalid, sdk};
use super::{AwsProvider, type_schema};
use crate::model::Attrs;
use crate::model::template::is_known;
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_ecs_service";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        // A service name is unique per cluster only: not found by name.
        None,
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The service name."),
            AttrSchema::input("cluster", AttrKind::String)
                .required()
                .force_new()
                .describe("The cluster name (an ARN is accepted)."),
            AttrSchema::input("task_definition", AttrKind::String)
                .required()
                .describe("The task definition ARN (or family:revision)."),
            AttrSchema::input("desired_count", AttrKind::Integer)
                .describe("How many tasks to keep running (default 1)."),
            AttrSchema::input("launch_type", AttrKind::String)
                .force_new()
                .describe("EC2, FARGATE or EXTERNAL."),
            AttrSchema::input("network_configuration", AttrKind::Table)
                .describe("awsvpc networking: subnets, security_groups, assign_public_ip."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The service ARN."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(net) = attrs.get("network_configuration")
        && is_known(net)
    {
        match net.as_object() {
            Some(t) => {
                for key in t.keys() {
                    if !matches!(
                        key.as_str(),
                        "subnets" | "security_groups" | "assign_public_ip"
                    ) {
                        problems.push((
                            format!("network_configuration.{key}"),
                            "unknown key: known keys are subnets, security_groups, assign_public_ip".into(),
                        ));
                    }
                }
                if !t.contains_key("subnets") {
                    problems.push((
                        "network_configuration".into(),
                        "`network_configuration` needs `subnets`".into(),
                    ));
                }
            }
            None => problems.push((
                "network_configuration".into(),
                "`network_configuration` must be a table".into(),
            )),
        }
    }
    problems
}

/// The cluster name in a service ARN (`…:service/CLUSTER/NAME`).
fn cluster_of(arn: &str) -> &str {
    let path = arn.rsplit_once(':').map_or(arn, |(_, p)| p);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [_, cluster, _] => cluster,
        _ => "default",
    }
}

fn cluster_name(cluster: &str) -> &str {
    if cluster.starts_with("arn:") {
        cluster.rsplit('/').next().unwrap_or(cluster)
    } else {
        cluster
    }
}

fn network(op: &str, attrs: &Attrs) -> Result<Option<NetworkConfiguration>, ProviderError> {
    let Some(net) = attrs
        .get("network_configuration")
        .and_then(Value::as_object)
    else {
        return Ok(None);
    };
    let public = match net.get("assign_public_ip") {
        Some(Value::Bool(true)) => AssignPublicIp::Enabled,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("enabled") => AssignPublicIp::Enabled,
        _ => AssignPublicIp::Disabled,
    };
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(string_list(net.get("subnets"))))
        .set_security_groups(Some(string_list(net.get("security_groups"))))
        .assign_public_ip(public)
        .build()
        .map_err(|e| invalid(op, e))?;
    Ok(Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    ))
}

fn live(s: &Service) -> LiveObject {
    let tags = tag_map(s.tags());
    let mut a = Attrs::new();
    a.insert("name".into(), json!(s.service_name().unwrap_or_default()));
    a.insert(
        "cluster".into(),
        json!(cluster_name(s.cluster_arn().unwrap_or_default())),
    );
    a.insert(
        "task_definition".into(),
        json!(s.task_definition().unwrap_or_default()),
    );
    a.insert("desired_count".into(), json!(s.desired_count()));
    if let Some(lt) = s.launch_type() {
        a.insert("launch_type".into(), json!(lt.as_str()));
    }
    if let Some(vpc) = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
    {
        let mut subnets = vpc.subnets().to_vec();
        subnets.sort();
        let mut groups = vpc.security_groups().to_vec();
        groups.sort();
        let mut m = Map::new();
        m.insert("subnets".into(), list_value(&subnets));
        m.insert("security_groups".into(), list_value(&groups));
        m.insert(
            "assign_public_ip".into(),
            json!(vpc.assign_public_ip() == Some(&AssignPublicIp::Enabled)),
        );
        a.insert("network_configuration".into(), Value::Object(m));
    }
    a.insert("tags".into(), user_tags_value(&tags));
    let arn = s.service_arn().unwrap_or_default().to_string();
    a.insert("arn".into(), json!(arn));
    LiveObject {
        id: arn,
        attributes: a,
        tags,
    }
}

pub async fn read(p: &AwsProvider, arn: &str) -> Result<Option<LiveObject>, ProviderError> {
    let out = super::none_if_missing(
        p.clients
            .ecs
            .describe_services()
            .cluster(cluster_of(arn))
            .services(arn)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| sdk("ecs:DescribeServices", e)),
    )?;
    Ok(out.and_then(|out| {
        out.services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .map(live)
    }))
}

fn desired_count(attrs: &Attrs) -> i32 {
    int_attr(attrs, "desired_count")
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(1)
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ecs:CreateService";
    let attrs = &req.attributes;
    let tags = tags_for_create(attrs, &req.tags);
    let mut call = p
        .clients
        .ecs
        .create_service()
        .cluster(cluster_name(req_str(op, attrs, "cluster")?))
        .service_name(req_str(op, attrs, "name")?)
        .task_definition(req_str(op, attrs, "task_definition")?)
        .desired_count(desired_count(attrs))
        .set_network_configuration(network(op, attrs)?)
        .set_tags(Some(ecs_tags(&tags)));
    if let Some(lt) = str_attr(attrs, "launch_type") {
        call = call.launch_type(LaunchType::from(lt));
    }
    let out = call.send().await.map_err(|e| sdk(op, e))?;
    let service = out
        .service()
        .ok_or_else(|| invalid(op, "the response holds no service"))?;
    let mut obj = live(service);
    // CreateService does not always echo tags; they are what we sent.
    if obj.tags.is_empty() {
        obj.attributes.insert("tags".into(), user_tags_value(&tags));
        obj.tags = tags;
    }
    Ok(obj)
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ecs:UpdateService";
    let attrs = &req.after;
    p.clients
        .ecs
        .update_service()
        .cluster(cluster_of(&req.id))
        .service(&req.id)
        .task_definition(req_str(op, attrs, "task_definition")?)
        .desired_count(desired_count(attrs))
        .set_network_configuration(network(op, attrs)?)
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    retag(p, &req.id, req).await?;
    read(p, &req.id).await?.ok_or_else(|| {
        ProviderError::not_found(format!("ecs:DescribeServices: {} is gone", req.id))
    })
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ecs
        .delete_service()
        .cluster(cluster_of(&req.id))
        .service(&req.id)
        .force(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ecs:DeleteService", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_from_service_arn() {
        assert_eq!(
            cluster_of("arn:aws:ecs:us-east-1:123456789012:service/main/web"),
            "main"
        );
        assert_eq!(cluster_of("arn:aws:ecs:us-east-1:1:service/web"), "default");
        assert_eq!(cluster_name("arn:aws:ecs:us-east-1:1:cluster/main"), "main");
    }
}
