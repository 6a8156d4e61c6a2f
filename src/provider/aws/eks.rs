//! `aws_eks_cluster`: an EKS control plane. Create waits until the cluster
//! is ACTIVE (EKS takes ten minutes or more); delete waits until it is gone,
//! so the subnets and security groups it used can be deleted after it. The
//! role, subnets and security groups cannot change (a change replaces the
//! cluster); the Kubernetes `version` is upgraded in place
//! (UpdateClusterVersion, then a wait for ACTIVE), and tags are updated.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_eks::types::{Cluster, ClusterStatus, VpcConfigRequest};
use serde_json::Value;

use super::attrs::{
    list_value, req_str, str_attr, string_list, tag_changes, tags_for_create, user_tags_value,
};
use super::errors::{is_not_found, sdk};
use super::{AwsProvider, none_if_missing, type_schema};
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_eks_cluster";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The cluster name."),
            AttrSchema::input("role_arn", AttrKind::String)
                .required()
                .force_new()
                .describe("The cluster service role (trusting `eks.amazonaws.com`)."),
            AttrSchema::input("subnet_ids", AttrKind::List)
                .required()
                .force_new()
                .describe(
                    "Subnets for the control plane's network interfaces (two zones at least).",
                ),
            AttrSchema::input("security_group_ids", AttrKind::List)
                .force_new()
                .describe("Extra security groups for the control plane's interfaces."),
            AttrSchema::input("version", AttrKind::String).describe(
                "The Kubernetes version, e.g. `1.31` (EKS's default if unset); upgraded in place.",
            ),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The cluster ARN."),
            AttrSchema::computed("endpoint", AttrKind::String)
                .describe("The Kubernetes API server URL."),
            AttrSchema::computed("certificate_authority", AttrKind::String)
                .describe("The cluster CA certificate (base64)."),
            AttrSchema::computed("oidc_issuer", AttrKind::String)
                .describe("The OIDC issuer URL, for IAM roles for service accounts."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    match attrs.get("subnet_ids") {
        Some(v @ Value::Array(ids)) if crate::model::template::is_known(v) && ids.len() < 2 => {
            vec![(
                "subnet_ids".into(),
                "EKS needs subnets in at least two availability zones".into(),
            )]
        }
        _ => Vec::new(),
    }
}

fn live(c: &Cluster) -> Option<LiveObject> {
    let name = c.name()?.to_string();
    let tags: Tags = c
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let text = |s: Option<&str>| Value::String(s.unwrap_or_default().to_string());
    let mut a = Attrs::new();
    a.insert("name".into(), Value::String(name.clone()));
    a.insert("role_arn".into(), text(c.role_arn()));
    let vpc = c.resources_vpc_config();
    a.insert(
        "subnet_ids".into(),
        list_value(vpc.map(|v| v.subnet_ids()).unwrap_or_default()),
    );
    a.insert(
        "security_group_ids".into(),
        list_value(vpc.map(|v| v.security_group_ids()).unwrap_or_default()),
    );
    a.insert("version".into(), text(c.version()));
    a.insert("tags".into(), user_tags_value(&tags));
    a.insert("arn".into(), text(c.arn()));
    a.insert("endpoint".into(), text(c.endpoint()));
    a.insert(
        "certificate_authority".into(),
        text(c.certificate_authority().and_then(|ca| ca.data())),
    );
    a.insert(
        "oidc_issuer".into(),
        text(c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer())),
    );
    Some(LiveObject {
        id: name,
        attributes: a,
        tags,
    })
}

async fn describe(p: &AwsProvider, name: &str) -> Result<Option<Cluster>, ProviderError> {
    let out = none_if_missing(
        p.clients
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| sdk("eks:DescribeCluster", e)),
    )?;
    Ok(out.and_then(|o| o.cluster().cloned()))
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    Ok(describe(p, name)
        .await?
        .filter(|c| c.status() != Some(&ClusterStatus::Deleting))
        .and_then(|c| live(&c)))
}

/// Waits until the cluster is ACTIVE (`Ok(Some)`) or, with `gone`, until it
/// no longer exists (`Ok(None)`).
async fn wait(
    p: &AwsProvider,
    name: &str,
    gone: bool,
) -> Result<Option<LiveObject>, ProviderError> {
    let op = "eks:DescribeCluster";
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match describe(p, name).await? {
            None if gone => return Ok(None),
            None => {
                return Err(ProviderError::fatal(format!(
                    "{op}: cluster {name} disappeared"
                )));
            }
            Some(c) if c.status() == Some(&ClusterStatus::Failed) => {
                return Err(ProviderError::fatal(format!(
                    "{op}: cluster {name} is FAILED"
                )));
            }
            Some(c) if !gone && c.status() == Some(&ClusterStatus::Active) => return Ok(live(&c)),
            Some(_) => {}
        }
        if start.elapsed() > p.wait_timeout {
            let what = if gone { "deleted" } else { "ACTIVE" };
            return Err(ProviderError::fatal(format!(
                "{op}: cluster {name} not {what} after {} s",
                p.wait_timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "eks:CreateCluster";
    let a = &req.attributes;
    let name = req_str(op, a, "name")?;
    let tags: HashMap<String, String> = tags_for_create(a, &req.tags).into_iter().collect();
    let vpc = VpcConfigRequest::builder()
        .set_subnet_ids(Some(string_list(a.get("subnet_ids"))))
        .set_security_group_ids(a.get("security_group_ids").map(|v| string_list(Some(v))))
        .build();
    p.clients
        .eks
        .create_cluster()
        .name(name)
        .role_arn(req_str(op, a, "role_arn")?)
        .resources_vpc_config(vpc)
        .set_version(str_attr(a, "version").map(str::to_string))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    wait(p, name, false)
        .await?
        .ok_or_else(|| ProviderError::fatal(format!("{op}: cluster {name} is gone")))
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let name = req.id.as_str();
    let current = read(p, name).await?.ok_or_else(|| {
        ProviderError::not_found(format!("eks:DescribeCluster: cluster {name} is gone"))
    })?;
    if let Some(version) = str_attr(&req.after, "version")
        && str_attr(&current.attributes, "version") != Some(version)
    {
        p.clients
            .eks
            .update_cluster_version()
            .name(name)
            .version(version)
            .send()
            .await
            .map_err(|e| sdk("eks:UpdateClusterVersion", e))?;
        wait(p, name, false).await?;
    }
    let arn = str_attr(&current.attributes, "arn")
        .unwrap_or_default()
        .to_string();
    let (set, remove) = tag_changes(&req.before, &req.after, &req.tags);
    if !set.is_empty() {
        p.clients
            .eks
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(set.into_iter().collect()))
            .send()
            .await
            .map_err(|e| sdk("eks:TagResource", e))?;
    }
    if !remove.is_empty() {
        p.clients
            .eks
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("eks:UntagResource", e))?;
    }
    read(p, name).await?.ok_or_else(|| {
        ProviderError::not_found(format!("eks:DescribeCluster: cluster {name} is gone"))
    })
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    match p.clients.eks.delete_cluster().name(&req.id).send().await {
        Ok(_) => {}
        Err(e) => {
            let e = sdk("eks:DeleteCluster", e);
            if !is_not_found(&e) {
                return Err(e);
            }
        }
    }
    wait(p, &req.id, true).await.map(|_| ())
}
