//! `aws_cloudformation_stack`: a CloudFormation stack from a template file
//! (`template`, relative to the stack folder) or inline `template_body`.
//! Create and update wait for the stack to settle; failure states are fatal
//! with the status reason. Stack outputs become the `outputs` table.
//!
//! A `template` path is remembered in the `cairn:template` tag; a read
//! compares that file with the deployed template, so an unchanged file
//! reads back as the same path.

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, Stack, StackStatus, Tag};
use serde_json::{Value, json};

use super::attrs::{
    list_value, req_str, str_attr, string_list, string_table, table_value, tags_for_create,
    user_tags_value,
};
use super::errors::{invalid, sdk};
use super::{AwsProvider, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, ErrorKind, LiveObject, ProviderError,
    TypeSchema, UpdateRequest,
};

pub const TYPE: &str = "aws_cloudformation_stack";

/// Tag holding the `template` path the stack was built from.
pub const TEMPLATE_TAG: &str = "cairn:template";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The stack name."),
            AttrSchema::input("template", AttrKind::String)
                .describe("Template file, relative to the stack folder."),
            AttrSchema::input("template_body", AttrKind::String)
                .describe("The template text (instead of `template`)."),
            AttrSchema::input("parameters", AttrKind::Table).describe("Template parameters."),
            AttrSchema::input("capabilities", AttrKind::List)
                .describe("e.g. CAPABILITY_IAM, CAPABILITY_NAMED_IAM."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The stack id (an ARN)."),
            AttrSchema::computed("outputs", AttrKind::Table)
                .describe("Stack outputs: OutputKey → OutputValue."),
            AttrSchema::computed("status", AttrKind::String).describe("The stack status."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    match (attrs.get("template"), attrs.get("template_body")) {
        (None, None) => problems.push((
            "template".into(),
            "a stack needs `template` (a file) or `template_body`".into(),
        )),
        (Some(_), Some(_)) => problems.push((
            "template_body".into(),
            "give either `template` or `template_body`, not both".into(),
        )),
        _ => {}
    }
    if let Some(v) = attrs.get("capabilities")
        && is_known(v)
    {
        for c in string_list(Some(v)) {
            if !matches!(
                c.as_str(),
                "CAPABILITY_IAM" | "CAPABILITY_NAMED_IAM" | "CAPABILITY_AUTO_EXPAND"
            ) {
                problems.push((
                    "capabilities".into(),
                    format!("unknown capability `{c}`: CAPABILITY_IAM, CAPABILITY_NAMED_IAM, CAPABILITY_AUTO_EXPAND"),
                ));
            }
        }
    }
    problems
}

fn is_missing(e: &ProviderError) -> bool {
    e.kind == ErrorKind::NotFound || e.message.contains("does not exist")
}

async fn describe(p: &AwsProvider, name: &str) -> Result<Option<Stack>, ProviderError> {
    let out = p
        .clients
        .cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| sdk("cloudformation:DescribeStacks", e));
    match out {
        Ok(out) => Ok(out
            .stacks
            .and_then(|s| s.into_iter().next())
            .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let Some(stack) = describe(p, name).await? else {
        return Ok(None);
    };
    let body = p
        .clients
        .cloudformation
        .get_template()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| sdk("cloudformation:GetTemplate", e))?
        .template_body
        .unwrap_or_default();
    let tags: Tags = stack
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let mut a = Attrs::new();
    a.insert("name".into(), json!(stack.stack_name().unwrap_or(name)));
    if let Some(path) = tags.get(TEMPLATE_TAG) {
        let same = std::fs::read_to_string(p.stack_path(path)).is_ok_and(|t| t == body);
        let shown = if same {
            path.clone()
        } else {
            format!("(deployed template differs from {path})")
        };
        a.insert("template".into(), Value::String(shown));
    }
    a.insert("template_body".into(), Value::String(body));
    a.insert(
        "parameters".into(),
        table_value(stack.parameters().iter().map(|p| {
            (
                p.parameter_key().unwrap_or_default(),
                p.parameter_value().unwrap_or_default(),
            )
        })),
    );
    let mut caps: Vec<&str> = stack.capabilities().iter().map(|c| c.as_str()).collect();
    caps.sort_unstable();
    a.insert("capabilities".into(), list_value(&caps));
    a.insert("tags".into(), user_tags_value(&tags));
    a.insert("arn".into(), json!(stack.stack_id().unwrap_or_default()));
    a.insert(
        "outputs".into(),
        table_value(stack.outputs().iter().map(|o| {
            (
                o.output_key().unwrap_or_default(),
                o.output_value().unwrap_or_default(),
            )
        })),
    );
    a.insert(
        "status".into(),
        json!(stack.stack_status().map(|s| s.as_str()).unwrap_or_default()),
    );
    Ok(Some(LiveObject {
        id: stack.stack_name().unwrap_or(name).to_string(),
        attributes: a,
        tags,
    }))
}

/// The template text and the path to remember (if it came from a file).
fn template(
    p: &AwsProvider,
    op: &str,
    attrs: &Attrs,
) -> Result<(String, Option<String>), ProviderError> {
    if let Some(path) = str_attr(attrs, "template") {
        let text = std::fs::read_to_string(p.stack_path(path))
            .map_err(|e| invalid(op, format!("cannot read template {path}: {e}")))?;
        return Ok((text, Some(path.to_string())));
    }
    let body = req_str(op, attrs, "template_body")?;
    Ok((body.to_string(), None))
}

fn parameters(attrs: &Attrs) -> Vec<Parameter> {
    string_table(attrs.get("parameters"))
        .into_iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

fn capabilities(attrs: &Attrs) -> Vec<Capability> {
    string_list(attrs.get("capabilities"))
        .iter()
        .map(|c| Capability::from(c.as_str()))
        .collect()
}

fn cfn_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The first failure reason in the stack's events, for error messages.
async fn failure_reason(p: &AwsProvider, name: &str) -> Option<String> {
    let out = p
        .clients
        .cloudformation
        .describe_stack_events()
        .stack_name(name)
        .send()
        .await
        .ok()?;
    out.stack_events()
        .iter()
        .rev()
        .find(|e| {
            e.resource_status()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.logical_resource_id().unwrap_or_default(),
                e.resource_status_reason().unwrap_or_default()
            )
        })
}

/// Where a stack status stands.
#[derive(Debug, PartialEq, Eq)]
enum Settle {
    InProgress,
    Done,
    Failed,
}

/// Classifies a stack status: `*_IN_PROGRESS` waits, `*_FAILED` and
/// rollbacks are failures, the rest are settled.
fn settle(status: &str) -> Settle {
    if status.ends_with("_IN_PROGRESS") {
        Settle::InProgress
    } else if status.ends_with("_FAILED") || status.contains("ROLLBACK") {
        Settle::Failed
    } else {
        Settle::Done
    }
}

/// Waits for the stack to leave `*_IN_PROGRESS`; `Ok(None)` when it is gone
/// (deleted).
async fn wait(p: &AwsProvider, name: &str, op: &str) -> Result<Option<Stack>, ProviderError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let Some(stack) = describe(p, name).await? else {
            return Ok(None);
        };
        let status = stack
            .stack_status()
            .map(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        match settle(&status) {
            Settle::Failed => {
                let mut reason = stack
                    .stack_status_reason()
                    .unwrap_or("no reason given")
                    .to_string();
                if let Some(event) = failure_reason(p, name).await {
                    reason = format!("{reason} ({event})");
                }
                return Err(ProviderError::fatal(format!(
                    "{op}: stack {name} is {status}: {reason}"
                )));
            }
            Settle::Done => return Ok(Some(stack)),
            Settle::InProgress => {}
        }
        if start.elapsed() > p.wait_timeout {
            return Err(ProviderError::fatal(format!(
                "{op}: stack {name} still {status} after {} s",
                p.wait_timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn settled(p: &AwsProvider, name: &str, op: &str) -> Result<LiveObject, ProviderError> {
    wait(p, name, op).await?;
    read(p, name)
        .await?
        .ok_or_else(|| ProviderError::not_found(format!("{op}: stack {name} is gone")))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "cloudformation:CreateStack";
    let attrs = &req.attributes;
    let name = req_str(op, attrs, "name")?;
    let (body, path) = template(p, op, attrs)?;
    let mut tags = tags_for_create(attrs, &req.tags);
    if let Some(path) = path {
        tags.insert(TEMPLATE_TAG.into(), path);
    }
    p.clients
        .cloudformation
        .create_stack()
        .stack_name(name)
        .template_body(body)
        .set_parameters(Some(parameters(attrs)))
        .set_capabilities(Some(capabilities(attrs)))
        .set_tags(Some(cfn_tags(&tags)))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    settled(p, name, op).await
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let op = "cloudformation:UpdateStack";
    let attrs = &req.after;
    let name = req.id.as_str();
    let (body, path) = template(p, op, attrs)?;
    // UpdateStack replaces the whole tag set: keep other cairn tags.
    let current = read(p, name)
        .await?
        .ok_or_else(|| ProviderError::not_found(format!("{op}: stack {name} is gone")))?;
    let mut tags: Tags = current
        .tags
        .into_iter()
        .filter(|(k, _)| super::attrs::is_cairn_tag(k))
        .collect();
    tags.extend(tags_for_create(attrs, &req.tags));
    match path {
        Some(path) => tags.insert(TEMPLATE_TAG.into(), path),
        None => tags.remove(TEMPLATE_TAG),
    };
    let result = p
        .clients
        .cloudformation
        .update_stack()
        .stack_name(name)
        .template_body(body)
        .set_parameters(Some(parameters(attrs)))
        .set_capabilities(Some(capabilities(attrs)))
        .set_tags(Some(cfn_tags(&tags)))
        .send()
        .await
        .map_err(|e| sdk(op, e));
    match result {
        Ok(_) => settled(p, name, op).await,
        Err(e) if e.message.contains("No updates are to be performed") => read(p, name)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{op}: stack {name} is gone"))),
        Err(e) => Err(e),
    }
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    let op = "cloudformation:DeleteStack";
    let result = p
        .clients
        .cloudformation
        .delete_stack()
        .stack_name(&req.id)
        .send()
        .await
        .map_err(|e| sdk(op, e));
    match result {
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    match wait(p, &req.id, op).await {
        Ok(_) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_statuses_settle() {
        assert_eq!(settle("CREATE_IN_PROGRESS"), Settle::InProgress);
        assert_eq!(
            settle("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
            Settle::InProgress
        );
        assert_eq!(settle("CREATE_COMPLETE"), Settle::Done);
        assert_eq!(settle("UPDATE_COMPLETE"), Settle::Done);
        assert_eq!(settle("ROLLBACK_COMPLETE"), Settle::Failed);
        assert_eq!(settle("UPDATE_ROLLBACK_COMPLETE"), Settle::Failed);
        assert_eq!(settle("CREATE_FAILED"), Settle::Failed);
        assert_eq!(settle("DELETE_FAILED"), Settle::Failed);
    }

    #[test]
    fn template_or_body() {
        let none = Attrs::new();
        assert_eq!(validate(&none).len(), 1);
        let both = Attrs::from([
            ("template".into(), json!("a.yaml")),
            ("template_body".into(), json!("{}")),
        ]);
        assert_eq!(validate(&both).len(), 1);
    }
}
