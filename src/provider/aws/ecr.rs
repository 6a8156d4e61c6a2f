//! `aws_ecr_repository`: a container image repository.

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Tag};
use serde_json::Value;

use super::attrs::{bool_attr, req_str, str_attr, tag_changes, tags_for_create, user_tags_value};
use super::errors::{invalid, sdk};
use super::{AwsProvider, none_if_missing, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_ecr_repository";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The repository name."),
            AttrSchema::input("image_tag_mutability", AttrKind::String)
                .describe("MUTABLE (default) or IMMUTABLE."),
            AttrSchema::input("scan_on_push", AttrKind::Bool)
                .describe("Scan images when they are pushed."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The repository ARN."),
            AttrSchema::computed("uri", AttrKind::String)
                .describe("The repository URI, for `docker push`."),
            AttrSchema::computed("registry_id", AttrKind::String)
                .describe("The registry (account) id."),
        ],
    )
}

/// ECR's repository name rule: lower-case path segments of letters and
/// digits separated by `.`, `_`, `-`, 2 to 256 characters.
pub fn valid_name(name: &str) -> bool {
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg.split(['.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
    };
    (2..=256).contains(&name.len()) && name.split('/').all(segment_ok)
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(v) = attrs.get("name")
        && is_known(v)
        && !v.as_str().is_some_and(valid_name)
    {
        problems.push((
            "name".into(),
            "repository names are 2-256 lower-case letters, digits and `._-/` (e.g. `team/app`)"
                .into(),
        ));
    }
    if let Some(v) = attrs.get("image_tag_mutability")
        && is_known(v)
        && !matches!(v.as_str(), Some("MUTABLE" | "IMMUTABLE"))
    {
        problems.push((
            "image_tag_mutability".into(),
            "`image_tag_mutability` is MUTABLE or IMMUTABLE".into(),
        ));
    }
    problems
}

fn tag_list(op: &str, tags: &Tags) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| invalid(op, e))
        })
        .collect()
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let ecr = &p.clients.ecr;
    let out = none_if_missing(
        ecr.describe_repositories()
            .repository_names(name)
            .send()
            .await
            .map_err(|e| sdk("ecr:DescribeRepositories", e)),
    )?;
    let Some(repo) = out.and_then(|o| o.repositories.and_then(|r| r.into_iter().next())) else {
        return Ok(None);
    };
    let arn = repo.repository_arn().unwrap_or_default().to_string();
    let tags: Tags = ecr
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| sdk("ecr:ListTagsForResource", e))?
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    let mut attributes = Attrs::new();
    let text = |s: Option<&str>| Value::String(s.unwrap_or_default().to_string());
    attributes.insert("name".into(), text(repo.repository_name()));
    attributes.insert(
        "image_tag_mutability".into(),
        text(
            repo.image_tag_mutability()
                .map(|m| m.as_str())
                .or(Some("MUTABLE")),
        ),
    );
    attributes.insert(
        "scan_on_push".into(),
        Value::Bool(
            repo.image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push()),
        ),
    );
    attributes.insert("tags".into(), user_tags_value(&tags));
    attributes.insert("arn".into(), Value::String(arn));
    attributes.insert("uri".into(), text(repo.repository_uri()));
    attributes.insert("registry_id".into(), text(repo.registry_id()));
    Ok(Some(LiveObject {
        id: name.to_string(),
        attributes,
        tags,
    }))
}

fn scanning(attrs: &Attrs) -> ImageScanningConfiguration {
    ImageScanningConfiguration::builder()
        .scan_on_push(bool_attr(attrs, "scan_on_push").unwrap_or(false))
        .build()
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ecr:CreateRepository";
    let name = req_str(op, &req.attributes, "name")?;
    let tags = tags_for_create(&req.attributes, &req.tags);
    let mut call = p
        .clients
        .ecr
        .create_repository()
        .repository_name(name)
        .image_scanning_configuration(scanning(&req.attributes))
        .set_tags(Some(tag_list(op, &tags)?));
    if let Some(m) = str_attr(&req.attributes, "image_tag_mutability") {
        call = call.image_tag_mutability(ImageTagMutability::from(m));
    }
    call.send().await.map_err(|e| sdk(op, e))?;
    read(p, name).await?.ok_or_else(|| {
        ProviderError::retryable(format!("ecr:DescribeRepositories: {name} not visible yet"))
    })
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let ecr = &p.clients.ecr;
    let name = req.id.as_str();
    let (before, after) = (&req.before, &req.after);
    let mutability = str_attr(after, "image_tag_mutability").unwrap_or("MUTABLE");
    if str_attr(before, "image_tag_mutability") != Some(mutability) {
        ecr.put_image_tag_mutability()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::from(mutability))
            .send()
            .await
            .map_err(|e| sdk("ecr:PutImageTagMutability", e))?;
    }
    let scan = bool_attr(after, "scan_on_push").unwrap_or(false);
    if bool_attr(before, "scan_on_push") != Some(scan) {
        ecr.put_image_scanning_configuration()
            .repository_name(name)
            .image_scanning_configuration(scanning(after))
            .send()
            .await
            .map_err(|e| sdk("ecr:PutImageScanningConfiguration", e))?;
    }
    let arn = match str_attr(before, "arn") {
        Some(arn) => arn.to_string(),
        None => read(p, name)
            .await?
            .and_then(|o| str_attr(&o.attributes, "arn").map(str::to_string))
            .ok_or_else(|| {
                ProviderError::not_found(format!("ecr:DescribeRepositories: {name} is gone"))
            })?,
    };
    let (set, remove) = tag_changes(before, after, &req.tags);
    if !set.is_empty() {
        ecr.tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(tag_list("ecr:TagResource", &set)?))
            .send()
            .await
            .map_err(|e| sdk("ecr:TagResource", e))?;
    }
    if !remove.is_empty() {
        ecr.untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("ecr:UntagResource", e))?;
    }
    read(p, name).await?.ok_or_else(|| {
        ProviderError::not_found(format!("ecr:DescribeRepositories: {name} is gone"))
    })
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ecr
        .delete_repository()
        .repository_name(&req.id)
        .force(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ecr:DeleteRepository", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        assert!(valid_name("team/app-1"));
        assert!(valid_name("ab"));
        assert!(!valid_name("Team"));
        assert!(!valid_name("a"));
        assert!(!valid_name("bad//name"));
        assert!(!valid_name("bad_"));
    }
}
