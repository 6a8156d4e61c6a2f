//! `aws_vpc`: a VPC, found by its `Name` tag (the `name` attribute), since a
//! VPC has no name of its own. The CIDR block cannot change (a new one
//! replaces the VPC); the name and tags are updated in place.

use aws_sdk_ec2::types::{ResourceType, Vpc};
use serde_json::Value;

use super::attrs::req_str;
use super::ec2::{self, check_cidr, check_name_tag, tag_attributes, tag_map};
use super::errors::sdk;
use super::{AwsProvider, type_schema};
use crate::model::Attrs;
use crate::provider::{
    AttrKind, AttrSchema, CreateRequest, DeleteRequest, LiveObject, ProviderError, TypeSchema,
    UpdateRequest,
};

pub const TYPE: &str = "aws_vpc";

pub fn schema() -> TypeSchema {
    type_schema(
        TYPE,
        Some("name"),
        vec![
            AttrSchema::input("name", AttrKind::String)
                .required()
                .describe("The VPC's `Name` tag: how cairn finds an existing VPC."),
            AttrSchema::input("cidr_block", AttrKind::String)
                .required()
                .force_new()
                .describe("The IPv4 range, e.g. `10.0.0.0/16`."),
            AttrSchema::input("tags", AttrKind::Table).describe("User tags (besides `Name`)."),
            AttrSchema::computed("id", AttrKind::String).describe("The VPC id (`vpc-…`)."),
            AttrSchema::computed("arn", AttrKind::String).describe("The VPC ARN."),
        ],
    )
}

pub fn validate(attrs: &Attrs) -> Vec<(String, String)> {
    check_cidr(attrs, "cidr_block")
        .into_iter()
        .chain(check_name_tag(attrs))
        .collect()
}

fn live(p: &AwsProvider, vpc: &Vpc) -> Option<LiveObject> {
    let id = vpc.vpc_id()?.to_string();
    let tags = tag_map(vpc.tags());
    let mut attributes = Attrs::new();
    tag_attributes(&mut attributes, &tags, true);
    attributes.insert(
        "cidr_block".into(),
        Value::String(vpc.cidr_block().unwrap_or_default().to_string()),
    );
    ec2::identify(p, &mut attributes, "vpc", &id, None, vpc.owner_id());
    Some(LiveObject {
        id,
        attributes,
        tags,
    })
}

super::ec2::describe_reads!(
    "ec2:DescribeVpcs",
    describe_vpcs,
    set_vpc_ids,
    vpcs,
    live,
    "tag:Name"
);

pub async fn create(p: &AwsProvider, req: &CreateRequest) -> Result<LiveObject, ProviderError> {
    let op = "ec2:CreateVpc";
    let cidr = req_str(op, &req.attributes, "cidr_block")?;
    let tags = ec2::desired_tags(&req.attributes, &req.tags, true);
    let out = p
        .clients
        .ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(ec2::tag_spec(ResourceType::Vpc, &tags))
        .send()
        .await
        .map_err(|e| sdk(op, e))?;
    let id = out
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| ProviderError::fatal(format!("{op}: the response has no VPC id")))?;
    wait_visible(p, id).await
}

/// Reads a just-created object until EC2's eventual consistency shows it.
async fn wait_visible(p: &AwsProvider, id: &str) -> Result<LiveObject, ProviderError> {
    read(p, id)
        .await?
        .ok_or_else(|| ProviderError::retryable(format!("ec2:DescribeVpcs: {id} not visible yet")))
}

pub async fn update(p: &AwsProvider, req: &UpdateRequest) -> Result<LiveObject, ProviderError> {
    ec2::retag(p, &req.id, req, true).await?;
    read(p, &req.id).await?.ok_or_else(|| {
        ProviderError::not_found(format!("ec2:DescribeVpcs: VPC {} is gone", req.id))
    })
}

pub async fn delete(p: &AwsProvider, req: &DeleteRequest) -> Result<(), ProviderError> {
    p.clients
        .ec2
        .delete_vpc()
        .vpc_id(&req.id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk("ec2:DeleteVpc", e))
}
