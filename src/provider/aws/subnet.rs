//! `aws_subnet`: a subnet of a VPC. Its VPC, range and zone cannot change
//! (a change replaces it); `map_public_ip_on_launch`, the name and tags are
//! updated in place. A subnet is found by its `Name` tag when it has a
//! `name`; without one it has no identity and is only known by id.
//! A range outside the VPC's is refused by EC2 (`InvalidSubnet.Range`), at
//! apply time, since the VPC's range is usually only known then.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet};
use serde_json::Value;

use super::attrs::{bool_attr, req_str, str_attr};
use super::ec2::{self, tag_attributes, tag_map};
use super::errors::sdk;
use super::{AwsProvider, type_schema};
use crate::model::Attrs;
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_subnet";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .describe("The subnet's `Name` tag: how cairn finds an existing subnet."),
            AttrSchema::input("vpc_id", AttrKind::String)
                .required()
                .force_new()
                .describe("The VPC id, usually `${aws_vpc.NAME.id}`."),
            AttrSchema::input("cidr_block", AttrKind::String)
                .required()
                .force_new()
                .describe("The IPv4 range, inside the VPC's."),
            AttrSchema::input("availability_zone", AttrKind::String)
                .force_new()
                .describe("The zone, e.g. `eu-west-1a` (EC2 picks one if unset)."),
            AttrSchema::input("map_public_ip_on_launch", AttrKind::Bool)
                .describe("Give instances launched here a public IP."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags (besides `Name`)."),
            AttrSchema::computed("id", AttrKind::String).describe("The subnet id (`subnet-…`)."),
            AttrSchema::computed("arn", AttrKind::String).describe("The subnet ARN."),
        ],
    )
}

/// A subnet's checks are a VPC's: its range is a CIDR block, and `Name`
/// belongs in `name`.
pub use super::vpc::validate;

fn live(p: &AwsProvider, subnet: &Subnet) -> Option<LiveObject> {
    let id = subnet.subnet_id()?.to_string();
    let tags = tag_map(subnet.tags());
    let mut a = Attrs::new();
    tag_attributes(&mut a, &tags, true);
    let text = |s: Option<&str>| Value::String(s.unwrap_or_default().to_string());
    a.insert("vpc_id".into(), text(subnet.vpc_id()));
    a.insert("cidr_block".into(), text(subnet.cidr_block()));
    a.insert("availability_zone".into(), text(subnet.availability_zone()));
    a.insert(
        "map_public_ip_on_launch".into(),
        Value::Bool(subnet.map_public_ip_on_launch().unwrap_or(false)),
    );
    ec2::identify(
        p,
        &mut a,
        "subnet",
        &id,
        subnet.subnet_arn(),
        subnet.owner_id(),
    );
    Some(LiveObject {
        id,
        attributes: a,
        tags,
    })
}

super::ec2::describe_reads!(
    "ec2:DescribeSubnets",
    describe_subnets,
    set_subnet_ids,
    subnets,
    live,
    "tag:Name"
);

async fn set_public_ip(p: &AwsProvider, id: &str, on: bool) -> Result<(), ProviderError> {
    p.clients
        .ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ec2:ModifySubnetAttribute", e))
}

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ec2:CreateSubnet";
    let a = &req.attributes;
    let tags = ec2::desired_tags(a, &req.tags, true);
    let out = p
        .clients
        .ec2
        .create_subnet()
        .vpc_id(req_str(op, a, "vpc_id")?)
        .cidr_block(req_str(op, a, "cidr_block")?)
        .set_availability_zone(str_attr(a, "availability_zone").map(str::to_string))
        .tag_specifications(ec2::tag_spec(ResourceType::Subnet, &tags))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    let id = out
        .subnet()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| ProviderError::fatal(format!("{op}: the response has no subnet id")))?
        .to_string();
    if bool_attr(a, "map_public_ip_on_launch") == Some(true) {
        set_public_ip(p, &id, true).await?;
    }
    read(p, &id).await?.ok_or_else(|| {
        ProviderError::retryable(format!("ec2:DescribeSubnets: {id} not visible yet"))
    })
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    let want = bool_attr(&req.after, "map_public_ip_on_launch");
    if let Some(on) = want
        && bool_attr(&req.before, "map_public_ip_on_launch") != Some(on)
    {
        set_public_ip(p, &req.id, on).await?;
    }
    ec2::retag(p, &req.id, req, true).await?;
    read(p, &req.id).await?.ok_or_else(|| {
        ProviderError::not_found(format!("ec2:DescribeSubnets: subnet {} is gone", req.id))
    })
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ec2
        .delete_subnet()
        .subnet_id(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ec2:DeleteSubnet", e))
}
