//! `aws_s3_bucket`: a bucket with optional versioning and tags. A delete
//! does not empty the bucket unless the stack says `force_destroy = true`:
//! a non-empty bucket fails with S3's BucketNotEmpty, so data is never
//! removed by accident. The flag must still hold when the stack is gone
//! (destroy reads the bucket, not the stack file), so it lives on the bucket
//! itself, as the `cairn:force-destroy` tag.

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use serde_json::json;

use super::attrs::{bool_attr, req_str, tag_changes, tags_for_create, user_tags_value};
use super::errors::{code, invalid, sdk};
use super::{AwsProvider, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_s3_bucket";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The bucket name (globally unique)."),
            AttrSchema::input("versioning", AttrKind::Bool).describe("Keep object versions."),
            AttrSchema::input("force_destroy", AttrKind::Bool).describe(
                "Delete every object and version when the bucket is deleted (default false: a non-empty bucket is kept and the delete fails).",
            ),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The bucket ARN."),
        ],
    )
}

/// S3's bucket naming rules (the common subset): 3-63 characters of
/// lower-case letters, digits, `.` and `-`, starting and ending with a
/// letter or digit.
/// The tag that carries `force_destroy = true` on the bucket.
const FORCE_DESTROY_TAG: &str = "cairn:force-destroy";

/// The tags a bucket should carry: user tags, ownership tags, and the
/// force-destroy marker when asked for.
fn wanted_tags(attrs: &Attrs, ownership: &Tags) -> Tags {
    let mut tags = tags_for_create(attrs, ownership);
    if bool_attr(attrs, "force_destroy") == Some(true) {
        tags.insert(FORCE_DESTROY_TAG.into(), "true".into());
    }
    tags
}

pub fn valid_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    match attrs.get("name") {
        Some(v) if is_known(v) && !v.as_str().is_some_and(valid_name) => vec![(
            "name".into(),
            "bucket names are 3-63 lower-case letters, digits, `.` and `-`".into(),
        )],
        _ => Vec::new(),
    }
}

async fn get_tags(p: &AwsProvider, name: &str) -> Result<Option<Tags>, ProviderError> {
    match p.clients.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => Ok(Some(
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        )),
        Err(e) if code(&e) == Some("NoSuchTagSet") => Ok(Some(Tags::new())),
        Err(e) => match sdk("s3:GetBucketTagging", e) {
            e if super::errors::is_not_found(&e) => Ok(None),
            e => Err(e),
        },
    }
}

async fn put_tags(p: &AwsProvider, name: &str, tags: &Tags) -> Result<(), ProviderError> {
    let op = "s3:PutBucketTagging";
    if tags.is_empty() {
        return p
            .clients
            .s3
            .delete_bucket_tagging()
            .bucket(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk("s3:DeleteBucketTagging", e));
    }
    let set = tags
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| invalid(op, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| invalid(op, e))?;
    p.clients
        .s3
        .put_bucket_tagging()
        .bucket(name)
        .tagging(tagging)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk(op, e))
}

async fn put_versioning(p: &AwsProvider, name: &str, on: bool) -> Result<(), ProviderError> {
    let status = if on {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    p.clients
        .s3
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("s3:PutBucketVersioning", e))
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let Some(tags) = get_tags(p, name).await? else {
        return Ok(None);
    };
    let versioning = match p
        .clients
        .s3
        .get_bucket_versioning()
        .bucket(name)
        .send()
        .await
    {
        Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
        // Some S3-compatible servers (moto 5.2) name the root element
        // differently; the SDK then fails to parse a successful answer.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
        Err(e) => match sdk("s3:GetBucketVersioning", e) {
            e if super::errors::is_not_found(&e) => return Ok(None),
            e => return Err(e),
        },
    };
    let mut a = Attrs::new();
    a.insert("name".into(), json!(name));
    a.insert("versioning".into(), json!(versioning));
    a.insert(
        "force_destroy".into(),
        json!(tags.get(FORCE_DESTROY_TAG).map(String::as_str) == Some("true")),
    );
    a.insert("tags".into(), user_tags_value(&tags));
    a.insert("arn".into(), json!(format!("arn:aws:s3:::{name}")));
    Ok(Some(LiveObject {
        id: name.to_string(),
        attributes: a,
        tags,
    }))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "s3:CreateBucket";
    let attrs = &req.attributes;
    let name = req_str(op, attrs, "name")?;
    let mut call = p.clients.s3.create_bucket().bucket(name);
    if p.region() != "us-east-1" {
        call = call.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(p.region()))
                .build(),
        );
    }
    call.send().await.map_err(|e| sdk(op, e))?;
    put_tags(p, name, &wanted_tags(attrs, &req.tags)).await?;
    if bool_attr(attrs, "versioning") == Some(true) {
        put_versioning(p, name, true).await?;
    }
    read(p, name).await?.ok_or_else(|| {
        ProviderError::retryable(format!("s3:GetBucketTagging: {name} not visible yet"))
    })
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let name = req.id.as_str();
    let gone = || ProviderError::not_found(format!("s3:GetBucketTagging: bucket {name} is gone"));
    if let Some(on) = bool_attr(&req.after, "versioning")
        && bool_attr(&req.before, "versioning") != Some(on)
    {
        put_versioning(p, name, on).await?;
    }
    // PutBucketTagging replaces the whole set: start from what is there.
    let mut tags = get_tags(p, name).await?.ok_or_else(gone)?;
    let (set, remove) = tag_changes(&req.before, &req.after, &req.tags);
    let old = tags.clone();
    for key in remove {
        tags.remove(&key);
    }
    tags.retain(|k, _| super::attrs::is_cairn_tag(k) || set.contains_key(k));
    tags.extend(set);
    match bool_attr(&req.after, "force_destroy") {
        Some(true) => {
            tags.insert(FORCE_DESTROY_TAG.into(), "true".into());
        }
        Some(false) => {
            tags.remove(FORCE_DESTROY_TAG);
        }
        None => {}
    }
    if tags != old {
        put_tags(p, name, &tags).await?;
    }
    read(p, name).await?.ok_or_else(gone)
}

/// Deletes every object version and delete marker in the bucket, a page
/// (up to 1,000 keys) at a time.
async fn empty(p: &AwsProvider, name: &str) -> Result<(), ProviderError> {
    let op = "s3:DeleteObjects";
    loop {
        let page = p
            .clients
            .s3
            .list_object_versions()
            .bucket(name)
            .send()
            .await
            .map_err(|e| sdk("s3:ListObjectVersions", e))?;
        let versions = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        let objects = versions
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_string))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if objects.is_empty() {
            return Ok(());
        }
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| invalid(op, e))?;
        let out = p
            .clients
            .s3
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| sdk(op, e))?;
        if let Some(failed) = out.errors().first() {
            return Err(ProviderError::fatal(format!(
                "{op}: {}: {}",
                failed.key().unwrap_or_default(),
                failed.message().unwrap_or("could not be deleted")
            )));
        }
    }
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    if bool_attr(&req.attributes, "force_destroy") == Some(true) {
        empty(p, &req.id).await?;
    }
    p.clients
        .s3
        .delete_bucket()
        .bucket(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("s3:DeleteBucket", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_name("my-bucket.1"));
        assert!(!valid_name("My-Bucket"));
        assert!(!valid_name("ab"));
        assert!(!valid_name("-ab"));
    }
}
