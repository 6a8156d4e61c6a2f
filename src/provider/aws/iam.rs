//! `aws_iam_role`: a role with its trust policy, attached managed policies,
//! inline policies and tags. Policy documents are compared by meaning.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::attrs::{
    list_value, req_str, str_attr, string_list, string_table, tag_changes, tags_for_create,
    user_tags_value,
};
use super::errors::{invalid, sdk};
use super::{AwsProvider, none_if_missing, ok_if_missing, policy, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_iam_role";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The role name."),
            AttrSchema::input("path", AttrKind::String)
                .force_new()
                .describe("The role path (default `/`)."),
            AttrSchema::input("assume_role_services", AttrKind::List)
                .describe("Services allowed to assume the role, e.g. `ecs-tasks.amazonaws.com`."),
            AttrSchema::input("assume_role_policy", AttrKind::String).describe(
                "The trust policy as a JSON document (instead of `assume_role_services`).",
            ),
            AttrSchema::input("managed_policy_arns", AttrKind::List)
                .describe("ARNs of managed policies to attach."),
            AttrSchema::input("inline_policies", AttrKind::Table)
                .describe("Inline policies: name → JSON document."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The role ARN."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let services = attrs.get("assume_role_services");
    let doc = attrs.get("assume_role_policy");
    match (services, doc) {
        (None, None) => problems.push((
            "assume_role_services".into(),
            "a role needs `assume_role_services` or `assume_role_policy`".into(),
        )),
        (Some(_), Some(_)) => problems.push((
            "assume_role_policy".into(),
            "give either `assume_role_services` or `assume_role_policy`, not both".into(),
        )),
        _ => {}
    }
    if let Some(v) = doc
        && is_known(v)
    {
        check_json(&mut problems, "assume_role_policy", v);
    }
    if let Some(Value::Object(map)) = attrs.get("inline_policies") {
        for (name, v) in map {
            if is_known(v) {
                check_json(&mut problems, &format!("inline_policies.{name}"), v);
            }
        }
    }
    if let Some(v) = attrs.get("path")
        && is_known(v)
        && !v
            .as_str()
            .is_some_and(|p| p.starts_with('/') && p.ends_with('/'))
    {
        problems.push(("path".into(), "`path` must start and end with `/`".into()));
    }
    problems
}

fn check_json(problems: &mut Vec<(String, String)>, key: &str, v: &Value) {
    match v.as_str() {
        Some(text) => {
            if let Err(e) = serde_json::from_str::<Value>(text) {
                problems.push((key.into(), format!("not a JSON policy document: {e}")));
            }
        }
        None => problems.push((key.into(), "must be a JSON document (string)".into())),
    }
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

/// The trust policy to write for the desired attributes.
fn trust_policy(attrs: &Attrs) -> Result<String, ProviderError> {
    if let Some(doc) = str_attr(attrs, "assume_role_policy") {
        return Ok(doc.to_string());
    }
    let services = string_list(attrs.get("assume_role_services"));
    if services.is_empty() {
        return Err(invalid(
            "iam:CreateRole",
            "a role needs `assume_role_services` or `assume_role_policy`",
        ));
    }
    Ok(policy::assume_role_policy_for(&services))
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let iam = &p.clients.iam;
    let got = none_if_missing(
        iam.get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk("iam:GetRole", e)),
    )?;
    let Some(role) = got.and_then(|o| o.role) else {
        return Ok(None);
    };
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| sdk("iam:ListAttachedRolePolicies", e))?;
    let mut managed: Vec<String> = attached
        .iter()
        .filter_map(|a| a.policy_arn().map(str::to_string))
        .collect();
    managed.sort();
    let inline_names = iam
        .list_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| sdk("iam:ListRolePolicies", e))?;
    let mut inline = serde_json::Map::new();
    for policy_name in inline_names {
        let doc = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(&policy_name)
            .send()
            .await
            .map_err(|e| sdk("iam:GetRolePolicy", e))?;
        inline.insert(
            policy_name,
            Value::String(policy::url_decode(doc.policy_document())),
        );
    }
    let tags: Tags = role
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    let trust = role
        .assume_role_policy_document()
        .map(policy::url_decode)
        .unwrap_or_default();
    let mut attributes = Attrs::new();
    attributes.insert("name".into(), Value::String(role.role_name().to_string()));
    attributes.insert("path".into(), Value::String(role.path().to_string()));
    if let Some(services) = policy::services_of(&trust) {
        attributes.insert("assume_role_services".into(), list_value(&services));
    }
    attributes.insert("assume_role_policy".into(), Value::String(trust));
    attributes.insert("managed_policy_arns".into(), list_value(&managed));
    attributes.insert("inline_policies".into(), Value::Object(inline));
    attributes.insert("tags".into(), user_tags_value(&tags));
    attributes.insert("arn".into(), Value::String(role.arn().to_string()));
    Ok(Some(LiveObject {
        id: role.role_name().to_string(),
        attributes,
        tags,
    }))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "iam:CreateRole";
    let name = req_str(op, &req.attributes, "name")?;
    let tags = tags_for_create(&req.attributes, &req.tags);
    let mut call = p
        .clients
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust_policy(&req.attributes)?)
        .set_tags(Some(tag_list(op, &tags)?));
    if let Some(path) = str_attr(&req.attributes, "path") {
        call = call.path(path);
    }
    call.send().await.map_err(|e| sdk(op, e))?;
    sync_policies(p, name, &Attrs::new(), &req.attributes).await?;
    settled(p, name).await
}

/// Reads the object just written; IAM may lag, so a miss is retryable.
async fn settled(p: &AwsProvider, name: &str) -> Result<LiveObject, ProviderError> {
    read(p, name).await?.ok_or_else(|| {
        ProviderError::retryable(format!("iam:GetRole: role {name} not visible yet"))
    })
}

/// Attaches, detaches, puts and deletes policies so the role matches `after`.
async fn sync_policies(
    p: &AwsProvider,
    name: &str,
    before: &Attrs,
    after: &Attrs,
) -> Result<(), ProviderError> {
    let iam = &p.clients.iam;
    let old = string_list(before.get("managed_policy_arns"));
    let new = string_list(after.get("managed_policy_arns"));
    for arn in new.iter().filter(|a| !old.contains(a)) {
        iam.attach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| sdk("iam:AttachRolePolicy", e))?;
    }
    for arn in old.iter().filter(|a| !new.contains(a)) {
        ok_if_missing(
            iam.detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk("iam:DetachRolePolicy", e)),
        )?;
    }
    let old = string_table(before.get("inline_policies"));
    let new = string_table(after.get("inline_policies"));
    for (policy_name, doc) in &new {
        if old
            .get(policy_name)
            .is_some_and(|o| policy::equivalent(o, doc))
        {
            continue;
        }
        iam.put_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .policy_document(doc)
            .send()
            .await
            .map_err(|e| sdk("iam:PutRolePolicy", e))?;
    }
    for policy_name in old.keys().filter(|k| !new.contains_key(*k)) {
        ok_if_missing(
            iam.delete_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk("iam:DeleteRolePolicy", e)),
        )?;
    }
    Ok(())
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let iam = &p.clients.iam;
    let name = req.id.as_str();
    let desired = trust_policy(&req.after)?;
    let current = str_attr(&req.before, "assume_role_policy").unwrap_or_default();
    if !policy::equivalent(current, &desired) {
        iam.update_assume_role_policy()
            .role_name(name)
            .policy_document(&desired)
            .send()
            .await
            .map_err(|e| sdk("iam:UpdateAssumeRolePolicy", e))?;
    }
    sync_policies(p, name, &req.before, &req.after).await?;
    let (set, remove) = tag_changes(&req.before, &req.after, &req.tags);
    if !set.is_empty() {
        iam.tag_role()
            .role_name(name)
            .set_tags(Some(tag_list("iam:TagRole", &set)?))
            .send()
            .await
            .map_err(|e| sdk("iam:TagRole", e))?;
    }
    if !remove.is_empty() {
        iam.untag_role()
            .role_name(name)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("iam:UntagRole", e))?;
    }
    settled(p, name).await
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    let iam = &p.clients.iam;
    let name = req.id.as_str();
    let Some(live) = read(p, name).await? else {
        return Ok(());
    };
    let empty = Attrs::new();
    sync_policies(p, name, &live.attributes, &empty).await?;
    let profiles = iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| sdk("iam:ListInstanceProfilesForRole", e))?;
    for profile in profiles {
        ok_if_missing(
            iam.remove_role_from_instance_profile()
                .role_name(name)
                .instance_profile_name(profile.instance_profile_name())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk("iam:RemoveRoleFromInstanceProfile", e)),
        )?;
    }
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("iam:DeleteRole", e))
}
