//! `aws_security_group`: a security group and its rules. The name, VPC and
//! description cannot change (a change replaces the group); rules and tags
//! are updated in place by revoking and authorizing only the difference.
//!
//! Rules are compared in the canonical form of [`sg_rules`](super::sg_rules).
//! `egress` is managed only when the stack sets it: EC2 gives every new group
//! an allow-all egress rule, which stays unless the stack lists its own.
//! A group is found by name; names are unique per VPC, so when several VPCs
//! hold a group of that name, the one with the smallest id is taken.

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, UserIdGroupPair,
};
use serde_json::{Map, Value};

use super::attrs::{req_str, str_attr};
use super::ec2::{self, tag_attributes, tag_map};
use super::errors::{invalid, sdk};
use super::sg_rules::{self, atomic};
use super::{AwsProvider, type_schema};
use crate::model::Attrs;
use crate::model::template::is_known;
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_security_group";

/// The description EC2 requires, when the stack gives none.
pub const DEFAULT_DESCRIPTION: &str = "Managed by cairn";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .force_new()
                .describe("The group name (unique per VPC)."),
            AttrSchema::input("vpc_id", AttrKind::String)
                .force_new()
                .describe("The VPC id (the default VPC if unset)."),
            AttrSchema::input("description", AttrKind::String)
                .force_new()
                .describe("The group description (default `Managed by cairn`)."),
            AttrSchema::input("ingress", AttrKind::List).describe(
                "Inbound rules: tables of protocol, port or from_port/to_port, cidr_blocks, ipv6_cidr_blocks, security_groups, self, description.",
            ),
            AttrSchema::input("egress", AttrKind::List)
                .describe("Outbound rules, as `ingress` (left alone when unset)."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags."),
            AttrSchema::computed("id", AttrKind::String).describe("The group id (`sg-…`)."),
            AttrSchema::computed("arn", AttrKind::String).describe("The group ARN."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for key in ["ingress", "egress"] {
        if let Some(v) = attrs.get(key)
            && is_known(v)
        {
            problems.extend(sg_rules::check(key, v));
        }
    }
    problems
}

/// The atomic rules of EC2 permissions; `own` is the group's id, whose
/// pairs read back as `self = true`.
fn rules_of(perms: &[IpPermission], own: &str) -> Value {
    let mut out = Vec::new();
    for perm in perms {
        let proto = sg_rules::protocol(&Value::String(
            perm.ip_protocol().unwrap_or("-1").to_string(),
        ))
        .unwrap_or_else(|| "-1".into());
        let ports = match (perm.from_port(), perm.to_port()) {
            (Some(f), Some(t)) => Some((i64::from(f), i64::from(t))),
            _ => None,
        };
        for r in perm.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                let source = Value::String(c.to_string());
                out.push(atomic(
                    &proto,
                    ports,
                    "cidr_blocks",
                    source,
                    r.description(),
                ));
            }
        }
        for r in perm.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                let source = Value::String(c.to_string());
                out.push(atomic(
                    &proto,
                    ports,
                    "ipv6_cidr_blocks",
                    source,
                    r.description(),
                ));
            }
        }
        for pair in perm.user_id_group_pairs() {
            match pair.group_id() {
                Some(g) if g == own => {
                    out.push(atomic(
                        &proto,
                        ports,
                        "self",
                        Value::Bool(true),
                        pair.description(),
                    ));
                }
                Some(g) => {
                    let source = Value::String(g.to_string());
                    out.push(atomic(
                        &proto,
                        ports,
                        "security_groups",
                        source,
                        pair.description(),
                    ));
                }
                None => {}
            }
        }
    }
    sg_rules::canonical(&Value::Array(out))
}

/// An EC2 permission for one atomic rule.
fn permission(rule: &Value, own: &str) -> Option<IpPermission> {
    let map: &Map<String, Value> = rule.as_object()?;
    let proto = map.get("protocol")?.as_str()?;
    let port = |k: &str| {
        map.get(k)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    let description = map.get("description").and_then(Value::as_str);
    let mut b = IpPermission::builder()
        .ip_protocol(proto)
        .set_from_port(port("from_port"))
        .set_to_port(port("to_port"));
    let first = |k: &str| {
        map.get(k)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
    };
    if let Some(c) = first("cidr_blocks") {
        b = b.ip_ranges(
            IpRange::builder()
                .cidr_ip(c)
                .set_description(description.map(str::to_string))
                .build(),
        );
    } else if let Some(c) = first("ipv6_cidr_blocks") {
        b = b.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(c)
                .set_description(description.map(str::to_string))
                .build(),
        );
    } else {
        let group = match first("security_groups") {
            Some(g) => g,
            None if map.get("self") == Some(&Value::Bool(true)) => own,
            None => return None,
        };
        b = b.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(group)
                .set_description(description.map(str::to_string))
                .build(),
        );
    }
    Some(b.build())
}

fn live(p: &AwsProvider, g: &SecurityGroup) -> Option<LiveObject> {
    let id = g.group_id()?.to_string();
    let tags = tag_map(g.tags());
    let mut a = Attrs::new();
    // The group's name is its GroupName; a `Name` tag, if any, is a user tag.
    tag_attributes(&mut a, &tags, false);
    a.insert(
        "name".into(),
        Value::String(g.group_name().unwrap_or_default().to_string()),
    );
    let text = |s: Option<&str>| Value::String(s.unwrap_or_default().to_string());
    a.insert("vpc_id".into(), text(g.vpc_id()));
    a.insert("description".into(), text(g.description()));
    a.insert("ingress".into(), rules_of(g.ip_permissions(), &id));
    a.insert("egress".into(), rules_of(g.ip_permissions_egress(), &id));
    ec2::identify(
        p,
        &mut a,
        "security-group",
        &id,
        g.security_group_arn(),
        g.owner_id(),
    );
    Some(LiveObject {
        id,
        attributes: a,
        tags,
    })
}

super::ec2::describe_reads!(
    "ec2:DescribeSecurityGroups",
    describe_security_groups,
    set_group_ids,
    security_groups,
    live,
    "group-name"
);

/// Makes the group's `key` rules (`ingress` or `egress`) those of `desired`;
/// whether it had to change any.
async fn sync_rules(
    p: &AwsProvider,
    id: &str,
    key: &str,
    live: &Value,
    desired: &Value,
) -> Result<bool, ProviderError> {
    let (revoke, authorize) = sg_rules::changes(live, desired);
    let perms = |rules: &[Value]| -> Vec<IpPermission> {
        rules.iter().filter_map(|r| permission(r, id)).collect()
    };
    // One call per direction and verb; the four builders share no trait.
    macro_rules! call {
        ($method:ident, $op:literal, $rules:expr) => {
            p.clients
                .ec2
                .$method()
                .group_id(id)
                .set_ip_permissions(Some(perms($rules)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk($op, e))
        };
    }
    let ingress = key == "ingress";
    if !revoke.is_empty() {
        if ingress {
            call!(
                revoke_security_group_ingress,
                "ec2:RevokeSecurityGroupIngress",
                &revoke
            )?;
        } else {
            call!(
                revoke_security_group_egress,
                "ec2:RevokeSecurityGroupEgress",
                &revoke
            )?;
        }
    }
    if !authorize.is_empty() {
        if ingress {
            call!(
                authorize_security_group_ingress,
                "ec2:AuthorizeSecurityGroupIngress",
                &authorize
            )?;
        } else {
            call!(
                authorize_security_group_egress,
                "ec2:AuthorizeSecurityGroupEgress",
                &authorize
            )?;
        }
    }
    Ok(!revoke.is_empty() || !authorize.is_empty())
}

/// Brings the rules the stack sets in line with `current` (a fresh read);
/// whether any rule changed.
async fn sync_all(
    p: &AwsProvider,
    current: &LiveObject,
    desired: &Attrs,
) -> Result<bool, ProviderError> {
    let mut changed = false;
    for key in ["ingress", "egress"] {
        if let Some(want) = desired.get(key) {
            let have = current
                .attributes
                .get(key)
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            changed |= sync_rules(p, &current.id, key, &have, want).await?;
        }
    }
    Ok(changed)
}

fn gone(id: &str) -> ProviderError {
    ProviderError::not_found(format!("ec2:DescribeSecurityGroups: group {id} is gone"))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ec2:CreateSecurityGroup";
    let a = &req.attributes;
    let name = req_str(op, a, "name")?;
    let tags = ec2::desired_tags(a, &req.tags, false);
    let out = p
        .clients
        .ec2
        .create_security_group()
        .group_name(name)
        .description(str_attr(a, "description").unwrap_or(DEFAULT_DESCRIPTION))
        .set_vpc_id(str_attr(a, "vpc_id").map(str::to_string))
        .tag_specifications(ec2::tag_spec(ResourceType::SecurityGroup, &tags))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    let id = out
        .group_id()
        .ok_or_else(|| invalid(op, "the response has no group id"))?
        .to_string();
    let fresh = read(p, &id).await?.ok_or_else(|| {
        ProviderError::retryable(format!("ec2:DescribeSecurityGroups: {id} not visible yet"))
    })?;
    if !sync_all(p, &fresh, a).await? {
        return Ok(fresh);
    }
    read(p, &id).await?.ok_or_else(|| gone(&id))
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let fresh = read(p, &req.id).await?.ok_or_else(|| gone(&req.id))?;
    sync_all(p, &fresh, &req.after).await?;
    ec2::retag(p, &req.id, req, false).await?;
    read(p, &req.id).await?.ok_or_else(|| gone(&req.id))
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ec2
        .delete_security_group()
        .group_id(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ec2:DeleteSecurityGroup", e))
}
