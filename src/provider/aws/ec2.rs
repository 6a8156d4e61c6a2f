//! What the EC2-backed types (`aws_vpc`, `aws_subnet`,
//! `aws_security_group`) share: tags, which EC2 keeps on the object and
//! returns with every describe call, and the `Name` tag, which is how people
//! name VPCs and subnets in the console and so how cairn finds them.
//!
//! A resource's `name` attribute is written as the `Name` tag; reads give it
//! back as `name` and leave `Name` out of `attributes["tags"]`, so a stack
//! never has to spell the same thing twice. Because describe calls return
//! tags, these types offer [`Provider::list`](crate::provider::Provider::list):
//! a no-change plan reads every VPC (or subnet, or group) in one paginated
//! call instead of one call per resource.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use serde_json::Value;

use super::AwsProvider;
use super::attrs::{
    is_cairn_tag, str_attr, string_table, table_value, tag_changes, tags_for_create,
    user_tags_value,
};
use super::errors::sdk;
use crate::model::{Attrs, Tags};
use crate::provider::{ProviderError, UpdateRequest};

/// Defines a type's reads over one EC2 describe call: `describe` (every
/// page, by id or filter), `list` (all), `read` (by id; gone is `None`)
/// and `find` (by a filter on the identity, the smallest id winning when
/// several match). `$live` turns one described item into a [`LiveObject`].
macro_rules! describe_reads {
    ($op:literal, $method:ident, $ids:ident, $items:ident, $live:ident, $find_by:literal) => {
        async fn describe(
            p: &AwsProvider,
            id: Option<&str>,
            by: Option<aws_sdk_ec2::types::Filter>,
        ) -> Result<Vec<LiveObject>, ProviderError> {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let page = p
                    .clients
                    .ec2
                    .$method()
                    .$ids(id.map(|i| vec![i.to_string()]))
                    .set_filters(by.clone().map(|f| vec![f]))
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| super::errors::sdk($op, e))?;
                out.extend(page.$items().iter().filter_map(|item| $live(p, item)));
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    return Ok(out);
                }
            }
        }

        pub async fn list(p: &AwsProvider) -> Result<Vec<LiveObject>, ProviderError> {
            describe(p, None, None).await
        }

        pub async fn read(p: &AwsProvider, id: &str) -> Result<Option<LiveObject>, ProviderError> {
            Ok(super::none_if_missing(describe(p, Some(id), None).await)?
                .and_then(|v| v.into_iter().next()))
        }

        pub async fn find(
            p: &AwsProvider,
            name: &str,
        ) -> Result<Option<LiveObject>, ProviderError> {
            let mut found = describe(p, None, Some(super::ec2::filter($find_by, name))).await?;
            found.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(found.into_iter().next())
        }
    };
}
pub(crate) use describe_reads;

/// The tag EC2 consoles show as an object's name.
pub const NAME_TAG: &str = "Name";

/// `attrs` with `name` folded into its `tags` as `Name` (and no `Name`
/// tag without a `name`), for the types whose name is their `Name` tag; the
/// shared tag helpers then treat `Name` as any other user tag.
fn fold_name(attrs: &Attrs, name_tag: bool) -> std::borrow::Cow<'_, Attrs> {
    if !name_tag {
        return std::borrow::Cow::Borrowed(attrs);
    }
    let mut tags = string_table(attrs.get("tags"));
    tags.remove(NAME_TAG);
    if let Some(name) = str_attr(attrs, "name") {
        tags.insert(NAME_TAG.to_string(), name.to_string());
    }
    let mut folded = attrs.clone();
    folded.insert(
        "tags".into(),
        table_value(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    std::borrow::Cow::Owned(folded)
}

/// The tags to put on a new object: user tags, ownership tags, and, when
/// `name_tag` (the type's `name` is its `Name` tag), `Name` from `name`.
pub fn desired_tags(attrs: &Attrs, ownership: &Tags, name_tag: bool) -> Tags {
    tags_for_create(&fold_name(attrs, name_tag), ownership)
}

/// EC2 tags from a map.
pub fn ec2_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A map from EC2 tags.
pub fn tag_map(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Tags for the object a create call makes (tag-on-create, so the object is
/// never visible without its ownership tags).
pub fn tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

/// Puts the user `tags` of a read into `attributes`, without cairn's own
/// tags; when `name_tag`, also `name` from the `Name` tag (absent when the
/// object has none), and `tags` without `Name`.
pub fn tag_attributes(attributes: &mut Attrs, tags: &Tags, name_tag: bool) {
    let mut user = tags.clone();
    if name_tag && let Some(name) = user.remove(NAME_TAG) {
        attributes.insert("name".into(), Value::String(name));
    }
    attributes.insert("tags".into(), user_tags_value(&user));
}

/// A filter on one field (`tag:Name`, `group-name`, `vpc-id`).
pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Applies an update's tag changes to the EC2 object `id`: sets the desired
/// tags, removes user tags the stack dropped, and, when `name_tag`, keeps
/// `Name` in line with `name` (removed when the stack dropped `name`).
/// cairn's own tags are never removed.
pub async fn retag(
    p: &AwsProvider,
    id: &str,
    req: &UpdateRequest,
    name_tag: bool,
) -> Result<(), ProviderError> {
    let before = fold_name(&req.before, name_tag);
    let (set, remove) = tag_changes(&before, &fold_name(&req.after, name_tag), &req.tags);
    // Only what differs: CreateTags of an unchanged tag is a wasted call.
    let old = string_table(before.get("tags"));
    let changed: Tags = set
        .into_iter()
        .filter(|(k, v)| old.get(k) != Some(v) || is_cairn_tag(k))
        .collect();
    let remove: Vec<Tag> = remove
        .iter()
        .map(|k| Tag::builder().key(k).build())
        .collect();
    if !changed.is_empty() {
        p.clients
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(&changed)))
            .send()
            .await
            .map_err(|e| sdk("ec2:CreateTags", e))?;
    }
    if !remove.is_empty() {
        p.clients
            .ec2
            .delete_tags()
            .resources(id)
            .set_tags(Some(remove))
            .send()
            .await
            .map_err(|e| sdk("ec2:DeleteTags", e))?;
    }
    Ok(())
}

/// Adds the computed `id` and `arn` to a read's attributes: the ARN EC2
/// gave, or else one built from the owner, `kind` (`vpc`, `subnet`…) and id.
pub fn identify(
    p: &AwsProvider,
    attributes: &mut Attrs,
    kind: &str,
    id: &str,
    given_arn: Option<&str>,
    owner: Option<&str>,
) {
    let arn = given_arn.map_or_else(|| arn(p, owner, kind, id), str::to_string);
    attributes.insert("id".into(), Value::String(id.to_string()));
    attributes.insert("arn".into(), Value::String(arn));
}

/// The ARN of an EC2 object (`arn:aws:ec2:REGION:OWNER:KIND/ID`).
pub fn arn(p: &AwsProvider, owner: Option<&str>, kind: &str, id: &str) -> String {
    format!(
        "arn:aws:ec2:{}:{}:{kind}/{id}",
        p.region(),
        owner.unwrap_or_default()
    )
}

/// Whether `text` is an IPv4 CIDR block (`10.0.0.0/16`).
pub fn is_ipv4_cidr(text: &str) -> bool {
    let Some((addr, bits)) = text.split_once('/') else {
        return false;
    };
    let octets: Vec<&str> = addr.split('.').collect();
    octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
        && bits.parse::<u8>().is_ok_and(|b| b <= 32)
        && !bits.starts_with('+')
}

/// A problem with a `cidr_block` attribute, if it is known and not a CIDR.
pub fn check_cidr(attrs: &Attrs, key: &str) -> Option<(String, String)> {
    let v = attrs.get(key)?;
    if !crate::model::template::is_known(v) {
        return None;
    }
    match v.as_str() {
        Some(s) if is_ipv4_cidr(s) => None,
        _ => Some((
            key.to_string(),
            format!("`{key}` must be an IPv4 CIDR block such as `10.0.0.0/16`"),
        )),
    }
}

/// A problem when `tags` holds `Name`, which belongs in `name`.
pub fn check_name_tag(attrs: &Attrs) -> Option<(String, String)> {
    let tags = attrs.get("tags")?.as_object()?;
    tags.contains_key(NAME_TAG).then(|| {
        (
            "tags.Name".to_string(),
            "the `Name` tag is set with the `name` attribute".to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cidr_blocks_are_checked() {
        for good in ["10.0.0.0/16", "0.0.0.0/0", "192.168.1.0/24", "10.1.2.3/32"] {
            assert!(is_ipv4_cidr(good), "{good}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0/16",
            "10.0.0.256/8",
            "10.0.0.0/33",
            "a.b.c.d/8",
            "10.0.0.0/+8",
        ] {
            assert!(!is_ipv4_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn name_becomes_the_name_tag_and_comes_back_as_name() {
        let attrs = Attrs::from([
            ("name".into(), json!("core")),
            ("tags".into(), json!({"team": "platform"})),
        ]);
        let own = Tags::from([("cairn:stack".to_string(), "s".to_string())]);
        let tags = desired_tags(&attrs, &own, true);
        assert_eq!(tags.get("Name").map(String::as_str), Some("core"));
        assert_eq!(tags.len(), 3);
        assert!(!desired_tags(&attrs, &own, false).contains_key("Name"));
        let mut read = Attrs::new();
        tag_attributes(&mut read, &tags, true);
        assert_eq!(read.get("name"), Some(&json!("core")));
        assert_eq!(read.get("tags"), Some(&json!({"team": "platform"})));
        let clash = Attrs::from([("tags".into(), json!({"Name": "x"}))]);
        assert!(check_name_tag(&clash).is_some());
    }
}
