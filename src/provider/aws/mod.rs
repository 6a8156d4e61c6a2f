//! The AWS provider: IAM roles, ECR repositories, ECS clusters, task
//! definitions and services, Lambda functions, CloudFormation stacks and S3
//! buckets, through the official AWS SDK for Rust.
//!
//! Each resource type lives in its own file with its schema, structural
//! validation and the five operations. Shared here: the provider value (SDK
//! clients plus the run context), dispatch by type name, and the static
//! functions the registry calls without building a provider. Every object
//! cairn creates carries the ownership tags plus the user's `tags`; reads
//! return user tags in `attributes["tags"]` and all tags in
//! [`LiveObject::tags`].
//!
//! Cargo features: everything here is behind `aws` (on by default). The
//! EC2-backed types (`aws_vpc`, `aws_subnet`, `aws_security_group`) are
//! behind `aws-ec2` (also on by default), because aws-sdk-ec2 alone takes
//! longer to compile than the rest of the SDK: `--no-default-features
//! --features aws` builds everything else.
//!
//! API calls per read (what a no-change plan costs): IAM role 3 + one per
//! inline policy; ECR repository 2; ECS cluster, task definition, service
//! 1 each; Lambda function 1 (plus zipping the local source); CloudFormation
//! stack 2; S3 bucket 2; EKS cluster 1. The EC2 types offer
//! [`Provider::list`]: their describe calls return tags, so one paginated
//! call reads every VPC (subnet, group) of the region. The others do not
//! (`Ok(None)`): listing gives no tags without a call per object.
//!
//! Attribute comparison: reads return the shapes the stack uses, and
//! [`normalize`] puts both sides in canonical form (policy JSON, sorted
//! set-like lists, ECS container defaults) for engines that apply it.

mod archive;
mod attrs;
mod client;
mod cloudformation;
#[cfg(feature = "aws-ec2")]
mod ec2;
mod ecr;
mod ecs_cluster;
mod ecs_service;
mod ecs_task;
mod eks;
mod errors;
mod iam;
mod lambda;
mod policy;
mod s3;
#[cfg(feature = "aws-ec2")]
mod security_group;
#[cfg(feature = "aws-ec2")]
mod sg_rules;
#[cfg(feature = "aws-ec2")]
mod subnet;
#[cfg(feature = "aws-ec2")]
mod vpc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::model::Attrs;

pub use archive::{Archive, zip_path};
pub(crate) use client::connect;
pub use client::{SETTINGS, Settings};
pub use policy::{canonical as canonical_policy, equivalent as policies_equivalent};

/// Every type this provider serves.
const TYPES: &[&str] = &[
    iam::TYPE,
    ecr::TYPE,
    ecs_cluster::TYPE,
    ecs_task::TYPE,
    ecs_service::TYPE,
    lambda::TYPE,
    cloudformation::TYPE,
    s3::TYPE,
    eks::TYPE,
    #[cfg(feature = "aws-ec2")]
    vpc::TYPE,
    #[cfg(feature = "aws-ec2")]
    subnet::TYPE,
    #[cfg(feature = "aws-ec2")]
    security_group::TYPE,
];

/// The EC2-backed types, served only with the `aws-ec2` feature.
pub const EC2_TYPES: &[&str] = &["aws_vpc", "aws_subnet", "aws_security_group"];

/// Evaluates `$call` with `$m` naming the module of the type `$name` (every
/// type's module offers `schema`, `read`, `create`, `update` and `delete`),
/// or `$fallback` for a type this build does not serve. The one list of
/// type modules the dispatch below goes through: a new type is added here.
macro_rules! by_type {
    ($name:expr, |$m:ident| $call:expr, $other:pat => $fallback:expr) => {
        match $name {
            iam::TYPE => {
                use iam as $m;
                $call
            }
            ecr::TYPE => {
                use ecr as $m;
                $call
            }
            ecs_cluster::TYPE => {
                use ecs_cluster as $m;
                $call
            }
            ecs_task::TYPE => {
                use ecs_task as $m;
                $call
            }
            ecs_service::TYPE => {
                use ecs_service as $m;
                $call
            }
            lambda::TYPE => {
                use lambda as $m;
                $call
            }
            cloudformation::TYPE => {
                use cloudformation as $m;
                $call
            }
            s3::TYPE => {
                use s3 as $m;
                $call
            }
            eks::TYPE => {
                use eks as $m;
                $call
            }
            #[cfg(feature = "aws-ec2")]
            vpc::TYPE => {
                use vpc as $m;
                $call
            }
            #[cfg(feature = "aws-ec2")]
            subnet::TYPE => {
                use subnet as $m;
                $call
            }
            #[cfg(feature = "aws-ec2")]
            security_group::TYPE => {
                use security_group as $m;
                $call
            }
            $other => $fallback,
        }
    };
}

/// The schema of an `aws_*` type, or `None` if there is no such type.
pub fn schema(type_name: &str) -> Option<TypeSchema> {
    by_type!(type_name, |m| Some(m::schema()), _ => None)
}

/// The names of the types this provider serves, sorted.
pub fn type_names() -> Vec<String> {
    let mut names: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
    names.sort();
    names
}

/// Checks a `[provider.aws]` table: (setting, message) pairs.
pub fn validate_config(settings: &Attrs) -> Vec<(String, String)> {
    client::validate_config(settings)
}

/// Structural checks of a resource's desired attributes beyond the schema:
/// (attribute, message) pairs. Values still holding references are skipped.
pub fn validate(address: &Address, attrs: &Attrs) -> Vec<(String, String)> {
    match address.type_name.as_str() {
        iam::TYPE => iam::validate(attrs),
        ecr::TYPE => ecr::validate(attrs),
        ecs_task::TYPE => ecs_task::validate(attrs),
        ecs_service::TYPE => ecs_service::validate(attrs),
        lambda::TYPE => lambda::validate(attrs),
        cloudformation::TYPE => cloudformation::validate(attrs),
        s3::TYPE => s3::validate(attrs),
        eks::TYPE => eks::validate(attrs),
        #[cfg(feature = "aws-ec2")]
        vpc::TYPE => vpc::validate(attrs),
        #[cfg(feature = "aws-ec2")]
        subnet::TYPE => subnet::validate(attrs),
        #[cfg(feature = "aws-ec2")]
        security_group::TYPE => security_group::validate(attrs),
        _ => Vec::new(),
    }
}

/// Puts attributes into the canonical form reads return, so a comparison
/// of desired and live attributes sees meaning, not spelling: policy
/// documents become canonical JSON text, set-like lists are sorted. Apply
/// it to both sides before comparing; it is idempotent.
pub fn normalize(type_name: &str, attrs: &Attrs) -> Attrs {
    let mut out = attrs.clone();
    let canon = |v: &mut serde_json::Value| {
        if let Some(text) = v.as_str()
            && crate::model::template::is_known(v)
            && let Some(c) = policy::canonical(text)
        {
            *v = serde_json::Value::String(c);
        }
    };
    let sort = |v: &mut serde_json::Value| {
        if let serde_json::Value::Array(items) = v
            && items.iter().all(|i| i.is_string())
        {
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    };
    match type_name {
        iam::TYPE => {
            if let Some(v) = out.get_mut("assume_role_policy") {
                canon(v);
            }
            if let Some(serde_json::Value::Object(map)) = out.get_mut("inline_policies") {
                map.values_mut().for_each(canon);
            }
            for key in ["managed_policy_arns", "assume_role_services"] {
                if let Some(v) = out.get_mut(key) {
                    sort(v);
                }
            }
        }
        ecs_task::TYPE => {
            if let Some(v) = out.get_mut("requires_compatibilities") {
                sort(v);
            }
            if let Some(v) = out.get_mut("containers") {
                *v = ecs_task::canonical_containers(v);
            }
            for key in ["cpu", "memory"] {
                if let Some(v) = out.get_mut(key)
                    && let Some(n) = v.as_str().and_then(|s| s.trim().parse::<i64>().ok())
                {
                    *v = serde_json::Value::from(n);
                }
            }
        }
        ecs_service::TYPE => {
            if let Some(v) = out.get_mut("cluster")
                && let Some(name) = v
                    .as_str()
                    .filter(|s| s.starts_with("arn:"))
                    .and_then(|s| s.rsplit('/').next())
            {
                *v = serde_json::Value::String(name.to_string());
            }
            if let Some(serde_json::Value::Object(net)) = out.get_mut("network_configuration") {
                for key in ["subnets", "security_groups"] {
                    if let Some(v) = net.get_mut(key) {
                        sort(v);
                    }
                }
            }
        }
        cloudformation::TYPE => {
            if let Some(v) = out.get_mut("capabilities") {
                sort(v);
            }
        }
        eks::TYPE => {
            for key in ["subnet_ids", "security_group_ids"] {
                if let Some(v) = out.get_mut(key) {
                    sort(v);
                }
            }
        }
        #[cfg(feature = "aws-ec2")]
        security_group::TYPE => {
            for key in ["ingress", "egress"] {
                if let Some(v) = out.get_mut(key)
                    && crate::model::template::is_known(v)
                {
                    *v = sg_rules::canonical(v);
                }
            }
        }
        _ => {}
    }
    out
}

/// Builds a schema from attribute definitions: computed and force-new
/// lists are derived from the attributes.
fn type_schema(
    type_name: &str,
    identity: Option<&'static str>,
    attributes: Vec<AttrSchema>,
) -> TypeSchema {
    TypeSchema {
        type_name: type_name.to_string(),
        computed: attributes
            .iter()
            .filter(|a| a.computed)
            .map(|a| a.name)
            .collect(),
        force_new: attributes
            .iter()
            .filter(|a| a.force_new)
            .map(|a| a.name)
            .collect(),
        attributes: Some(attributes),
        identity,
    }
}

/// Turns a not-found error into `Ok(None)`.
fn none_if_missing<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Turns a not-found error into success (deleting what is gone).
fn ok_if_missing(result: Result<(), ProviderError>) -> Result<(), ProviderError> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The AWS provider: SDK clients and the run's context.
pub struct AwsProvider {
    clients: client::Clients,
    dir: PathBuf,
    retry_timeout: Duration,
    /// How long to wait for an object to settle (Lambda Active, a
    /// CloudFormation stack complete).
    wait_timeout: Duration,
}

impl AwsProvider {
    /// Builds the provider from `[provider.aws]` settings. Fails when the
    /// settings are invalid or no region can be found.
    pub async fn new(settings: &Attrs, ctx: &ProviderContext) -> Result<Self, String> {
        let settings = Settings::parse(settings)?;
        let clients = client::connect(&settings).await?;
        Ok(AwsProvider {
            clients,
            dir: ctx.dir.clone(),
            retry_timeout: settings
                .retry_timeout
                .unwrap_or(client::DEFAULT_RETRY_TIMEOUT),
            wait_timeout: Duration::from_secs(1800),
        })
    }

    /// The eventual-consistency retry budget (`retry_timeout_s`, default
    /// 120 s): how long the engine should keep retrying retryable errors.
    pub fn retry_timeout(&self) -> Duration {
        self.retry_timeout
    }

    /// The region the clients talk to.
    pub fn region(&self) -> &str {
        &self.clients.region
    }

    /// Sets how long create/update wait for an object to become ready.
    pub fn set_wait_timeout(&mut self, timeout: Duration) {
        self.wait_timeout = timeout;
    }

    /// A path of the stack resolved against the stack folder.
    fn stack_path(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

fn unknown_type(type_name: &str) -> ProviderError {
    ProviderError::fatal(format!(
        "the aws provider has no type `{type_name}` (known: {})",
        type_names().join(", ")
    ))
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn retry_budget(&self) -> Option<Duration> {
        Some(self.retry_timeout)
    }

    fn schema(&self, type_name: &str) -> Option<TypeSchema> {
        schema(type_name)
    }

    async fn read(&self, address: &Address, id: &str) -> Result<Option<LiveObject>, ProviderError> {
        by_type!(
            address.type_name.as_str(),
            |m| m::read(self, id).await,
            other => Err(unknown_type(other))
        )
    }

    async fn find(
        &self,
        address: &Address,
        identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        match address.type_name.as_str() {
            // Services have no identity (their name is unique per cluster
            // only); everything else is found by name, which is its id.
            ecs_service::TYPE => Ok(None),
            // EC2 objects have generated ids; their identity is a name.
            #[cfg(feature = "aws-ec2")]
            vpc::TYPE => vpc::find(self, identity).await,
            #[cfg(feature = "aws-ec2")]
            subnet::TYPE => subnet::find(self, identity).await,
            #[cfg(feature = "aws-ec2")]
            security_group::TYPE => security_group::find(self, identity).await,
            _ => self.read(address, identity).await,
        }
    }

    async fn list(&self, type_name: &str) -> Result<Option<Vec<LiveObject>>, ProviderError> {
        match type_name {
            #[cfg(feature = "aws-ec2")]
            vpc::TYPE => vpc::list(self).await.map(Some),
            #[cfg(feature = "aws-ec2")]
            subnet::TYPE => subnet::list(self).await.map(Some),
            #[cfg(feature = "aws-ec2")]
            security_group::TYPE => security_group::list(self).await.map(Some),
            _ => Ok(None),
        }
    }

    async fn create(&self, request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        by_type!(
            request.address.type_name.as_str(),
            |m| m::create(self, request).await,
            other => Err(unknown_type(other))
        )
    }

    async fn update(&self, request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        by_type!(
            request.address.type_name.as_str(),
            |m| m::update(self, request).await,
            other => Err(unknown_type(other))
        )
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), ProviderError> {
        let result = by_type!(
            request.address.type_name.as_str(),
            |m| m::delete(self, request).await,
            other => Err(unknown_type(other))
        );
        ok_if_missing(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_has_a_schema_with_arn() {
        for name in type_names() {
            let s = schema(&name).unwrap();
            assert!(s.is_computed("arn"), "{name} lacks arn");
            assert_eq!(s.type_name, name);
        }
        assert!(schema("aws_nope").is_none());
    }

    #[test]
    fn normalize_makes_equivalent_policies_equal() {
        let a = Attrs::from([(
            "assume_role_policy".into(),
            json!(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
            ),
        )]);
        let b = Attrs::from([(
            "assume_role_policy".into(),
            json!(
                "{\n \"Statement\": {\"Action\": [\"sts:AssumeRole\"], \"Effect\": \"Allow\",\n \"Principal\": {\"Service\": [\"lambda.amazonaws.com\"]}},\n \"Version\": \"2012-10-17\"}"
            ),
        )]);
        assert_eq!(normalize(iam::TYPE, &a), normalize(iam::TYPE, &b));
        let n = normalize(iam::TYPE, &a);
        assert_eq!(normalize(iam::TYPE, &n), n);
    }
}
