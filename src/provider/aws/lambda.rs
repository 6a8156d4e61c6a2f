//! `aws_lambda_function`: a function whose code is a local file or folder,
//! zipped deterministically (see [`super::archive`]).
//!
//! The source path is remembered in the `cairn:source` tag. A read zips that
//! path again and compares the archive's SHA-256 with the live
//! `CodeSha256`: when they match, `source` reads back as the path the stack
//! gives, so unchanged code shows no diff; when they differ it reads back as
//! a note that cannot equal any path, so the plan updates the code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, LastUpdateStatus, Runtime, State};
use serde_json::{Value, json};

use super::archive::{Archive, zip_path};
use super::attrs::{
    int_attr, req_str, str_attr, string_table, table_value, tag_changes, tags_for_create,
    user_tags_value,
};
use super::errors::{invalid, sdk};
use super::{AwsProvider, none_if_missing, type_schema};
use crate::model::template::is_known;
use crate::model::{Attrs, Tags};
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_lambda_function";

/// Tag holding the `source` path the code was built from.
pub const SOURCE_TAG: &str = "cairn:source";

/// Settings whose change needs UpdateFunctionConfiguration.
const CONFIG_ATTRS: &[&str] = &[
    "role",
    "runtime",
    "handler",
    "memory_size",
    "timeout",
    "environment",
];

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The function name."),
            AttrSchema::input("role", AttrKind::String)
                .required()
                .describe("The execution role ARN."),
            AttrSchema::input("runtime", AttrKind::String).describe("e.g. python3.12, nodejs20.x."),
            AttrSchema::input("handler", AttrKind::String).describe("e.g. index.handler."),
            AttrSchema::input("source", AttrKind::String)
                .required()
                .describe("A file or folder (relative to the stack) zipped as the code."),
            AttrSchema::input("memory_size", AttrKind::Integer).describe("MiB (default 128)."),
            AttrSchema::input("timeout", AttrKind::Integer).describe("Seconds (default 3)."),
            AttrSchema::input("environment", AttrKind::Table)
                .sensitive()
                .describe("Environment variables (sensitive: often holds secrets)."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("arn", AttrKind::String).describe("The function ARN."),
            AttrSchema::computed("code_sha256", AttrKind::String)
                .describe("Base64 SHA-256 of the deployed zip."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for key in ["memory_size", "timeout"] {
        if let Some(v) = attrs.get(key)
            && is_known(v)
            && v.as_i64().is_none_or(|n| n <= 0)
        {
            problems.push((key.into(), format!("`{key}` must be a positive integer")));
        }
    }
    if let Some(v) = attrs.get("source")
        && is_known(v)
        && v.as_str().is_none_or(|s| s.is_empty())
    {
        problems.push(("source".into(), "`source` must be a path (string)".into()));
    }
    problems
}

fn build(p: &AwsProvider, attrs: &Attrs, op: &str) -> Result<(String, Archive), ProviderError> {
    let source = req_str(op, attrs, "source")?;
    let archive =
        zip_path(&p.stack_path(source)).map_err(|e| invalid(op, format!("source: {e}")))?;
    Ok((source.to_string(), archive))
}

fn hash_map(tags: &Tags) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn environment(attrs: &Attrs) -> Environment {
    Environment::builder()
        .set_variables(Some(hash_map(&string_table(attrs.get("environment")))))
        .build()
}

fn int32(attrs: &Attrs, key: &str) -> Option<i32> {
    int_attr(attrs, key).and_then(|n| i32::try_from(n).ok())
}

pub async fn read(p: &AwsProvider, name: &str) -> Result<Option<LiveObject>, ProviderError> {
    let out = none_if_missing(
        p.clients
            .lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| sdk("lambda:GetFunction", e)),
    )?;
    let Some(out) = out else {
        return Ok(None);
    };
    let Some(conf) = out.configuration() else {
        return Ok(None);
    };
    let tags: Tags = out
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let sha = conf.code_sha256().unwrap_or_default().to_string();
    let mut a = Attrs::new();
    let fname = conf.function_name().unwrap_or(name).to_string();
    a.insert("name".into(), json!(fname));
    a.insert("role".into(), json!(conf.role().unwrap_or_default()));
    if let Some(rt) = conf.runtime() {
        a.insert("runtime".into(), json!(rt.as_str()));
    }
    if let Some(h) = conf.handler() {
        a.insert("handler".into(), json!(h));
    }
    if let Some(source) = tags.get(SOURCE_TAG) {
        let same = zip_path(&p.stack_path(source)).is_ok_and(|z| z.sha256 == sha);
        let shown = if same {
            source.clone()
        } else {
            format!("(deployed code {sha} differs from {source})")
        };
        a.insert("source".into(), Value::String(shown));
    }
    if let Some(m) = conf.memory_size() {
        a.insert("memory_size".into(), json!(m));
    }
    if let Some(t) = conf.timeout() {
        a.insert("timeout".into(), json!(t));
    }
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .map(|v| table_value(v.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .unwrap_or_else(|| json!({}));
    a.insert("environment".into(), env);
    a.insert("tags".into(), user_tags_value(&tags));
    a.insert("arn".into(), json!(conf.function_arn().unwrap_or_default()));
    a.insert("code_sha256".into(), json!(sha));
    Ok(Some(LiveObject {
        id: fname,
        attributes: a,
        tags,
    }))
}

/// Waits until the function is Active and no update is in progress.
async fn wait_ready(p: &AwsProvider, name: &str) -> Result<(), ProviderError> {
    let op = "lambda:GetFunctionConfiguration";
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let conf = p
            .clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| sdk(op, e))?;
        match conf.state() {
            Some(State::Failed) => {
                return Err(ProviderError::fatal(format!(
                    "{op}: function {name} failed: {}",
                    conf.state_reason().unwrap_or("no reason given")
                )));
            }
            Some(State::Active) | None => match conf.last_update_status() {
                Some(LastUpdateStatus::Failed) => {
                    return Err(ProviderError::fatal(format!(
                        "{op}: update of {name} failed: {}",
                        conf.last_update_status_reason()
                            .unwrap_or("no reason given")
                    )));
                }
                Some(LastUpdateStatus::InProgress) => {}
                _ => return Ok(()),
            },
            _ => {}
        }
        if start.elapsed() > p.wait_timeout {
            return Err(ProviderError::fatal(format!(
                "{op}: function {name} not Active after {} s",
                p.wait_timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn settled(p: &AwsProvider, name: &str) -> Result<LiveObject, ProviderError> {
    wait_ready(p, name).await?;
    read(p, name).await?.ok_or_else(|| {
        ProviderError::not_found(format!("lambda:GetFunction: function {name} is gone"))
    })
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "lambda:CreateFunction";
    let attrs = &req.attributes;
    let name = req_str(op, attrs, "name")?;
    let (source, archive) = build(p, attrs, op)?;
    let mut tags = tags_for_create(attrs, &req.tags);
    tags.insert(SOURCE_TAG.into(), source);
    let mut call = p
        .clients
        .lambda
        .create_function()
        .function_name(name)
        .role(req_str(op, attrs, "role")?)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(archive.bytes))
                .build(),
        )
        .environment(environment(attrs))
        .set_memory_size(int32(attrs, "memory_size"))
        .set_timeout(int32(attrs, "timeout"))
        .set_tags(Some(hash_map(&tags)));
    if let Some(rt) = str_attr(attrs, "runtime") {
        call = call.runtime(Runtime::from(rt));
    }
    if let Some(h) = str_attr(attrs, "handler") {
        call = call.handler(h);
    }
    call.send().await.map_err(|e| sdk(op, e))?;
    settled(p, name).await
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let lambda = &p.clients.lambda;
    let name = req.id.as_str();
    let (before, after) = (&req.before, &req.after);
    let (source, archive) = build(p, after, "lambda:UpdateFunctionCode")?;
    if str_attr(before, "code_sha256") != Some(archive.sha256.as_str()) {
        lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(archive.bytes))
            .send()
            .await
            .map_err(|e| sdk("lambda:UpdateFunctionCode", e))?;
        wait_ready(p, name).await?;
    }
    let config_changed = CONFIG_ATTRS.iter().any(|k| {
        after.get(*k).is_some_and(|a| {
            let b = before.get(*k);
            match *k {
                "environment" => {
                    Some(&string_table(Some(a))) != b.map(|b| string_table(Some(b))).as_ref()
                }
                _ => b != Some(a),
            }
        })
    });
    if config_changed {
        let op = "lambda:UpdateFunctionConfiguration";
        let mut call = lambda
            .update_function_configuration()
            .function_name(name)
            .role(req_str(op, after, "role")?)
            .environment(environment(after))
            .set_memory_size(int32(after, "memory_size"))
            .set_timeout(int32(after, "timeout"));
        if let Some(rt) = str_attr(after, "runtime") {
            call = call.runtime(Runtime::from(rt));
        }
        if let Some(h) = str_attr(after, "handler") {
            call = call.handler(h);
        }
        call.send().await.map_err(|e| sdk(op, e))?;
        wait_ready(p, name).await?;
    }
    let arn = match str_attr(before, "arn") {
        Some(arn) => arn.to_string(),
        None => settled(p, name).await.map(|o| {
            str_attr(&o.attributes, "arn")
                .unwrap_or_default()
                .to_string()
        })?,
    };
    let (mut set, remove) = tag_changes(before, after, &req.tags);
    set.insert(SOURCE_TAG.into(), source);
    lambda
        .tag_resource()
        .resource(&arn)
        .set_tags(Some(hash_map(&set)))
        .send()
        .await
        .map_err(|e| sdk("lambda:TagResource", e))?;
    if !remove.is_empty() {
        lambda
            .untag_resource()
            .resource(&arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("lambda:UntagResource", e))?;
    }
    settled(p, name).await
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .lambda
        .delete_function()
        .function_name(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("lambda:DeleteFunction", e))
}
