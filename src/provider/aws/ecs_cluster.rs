//! `aws_ecs_cluster`: an ECS cluster, and the ECS tag helpers shared by
//! the task definition and service types.

use aws_sdk_ecs::types::{ClusterField, Tag};
use serde_json::Value;

use super::attrs::{req_str, str_attr, tag_changes, tags_for_create, user_tags_value};
use super::errors::sdk;
use super::{AwsProvider, type_schema};
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_ecs_cluster";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The cluster name."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The cluster ARN."),
        ],
    )
}

/// ECS tags from a map.
pub fn ecs_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A map from ECS tags.
pub fn tag_map(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Applies an update's tag changes to the ECS object `arn`.
pub async fn retag(p: &AwsProvider, arn: &str, req: &UpdateRequest) -> Result<(), ProviderError> {
    let (set, remove) = tag_changes(&req.before, &req.after, &req.tags);
    if !set.is_empty() {
        p.clients
            .ecs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecs_tags(&set)))
            .send()
            .await
            .map_err(|e| sdk("ecs:TagResource", e))?;
    }
    if !remove.is_empty() {
        p.clients
            .ecs
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("ecs:UntagResource", e))?;
    }
    Ok(())
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let out = p
        .clients
        .ecs
        .describe_clusters()
        .clusters(name)
        .include(ClusterField::Tags)
        .send()
        .await
        .map_err(|e| sdk("ecs:DescribeClusters", e))?;
    let Some(cluster) = out
        .clusters()
        .iter()
        .find(|c| c.status() != Some("INACTIVE"))
    else {
        return Ok(None);
    };
    let tags = tag_map(cluster.tags());
    let mut attributes = Attrs::new();
    let name = cluster.cluster_name().unwrap_or(name).to_string();
    attributes.insert("name".into(), Value::String(name.clone()));
    attributes.insert("tags".into(), user_tags_value(&tags));
    attributes.insert(
        "arn".into(),
        Value::String(cluster.cluster_arn().unwrap_or_default().to_string()),
    );
    Ok(Some(LiveObject {
        id: name,
        attributes,
        tags,
    }))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ecs:CreateCluster";
    let name = req_str(op, &req.attributes, "name")?;
    let tags = tags_for_create(&req.attributes, &req.tags);
    p.clients
        .ecs
        .create_cluster()
        .cluster_name(name)
        .set_tags(Some(ecs_tags(&tags)))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    read(p, name).await?.ok_or_else(|| {
        ProviderError::retryable(format!("ecs:DescribeClusters: {name} not visible yet"))
    })
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let name = req.id.as_str();
    let gone = || ProviderError::not_found(format!("ecs:DescribeClusters: cluster {name} is gone"));
    let arn = match str_attr(&req.before, "arn") {
        Some(arn) => arn.to_string(),
        None => read(p, name)
            .await?
            .and_then(|o| str_attr(&o.attributes, "arn").map(str::to_string))
            .ok_or_else(gone)?,
    };
    retag(p, &arn, req).await?;
    read(p, name).await?.ok_or_else(gone)
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ecs
        .delete_cluster()
        .cluster(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ecs:DeleteCluster", e))
}
