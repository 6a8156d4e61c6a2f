//! The EC2 and EKS types against a real moto server, call by call: VPCs
//! found by their `Name` tag, subnets, security group rules kept in line by
//! revoking and authorizing only the difference, batched listing, and the
//! EKS cluster's create, tag update and delete.
#![cfg(feature = "aws-ec2")]

mod support;

use cairn::model::{Address, Attrs};
use cairn::provider::{
    DeleteRequest, ErrorKind, LiveObject, Provider, UpdateRequest, ownership_tags,
};
use serde_json::json;
use support::aws::*;

fn update_request(a: &Address, live: &LiveObject, after: &Attrs) -> UpdateRequest {
    UpdateRequest {
        address: a.clone(),
        id: live.id.clone(),
        before: live.attributes.clone(),
        after: after.clone(),
        tags: ownership_tags(STACK, ENV, a),
    }
}

fn delete_request(a: &Address, live: &LiveObject) -> DeleteRequest {
    DeleteRequest {
        address: a.clone(),
        id: live.id.clone(),
        attributes: live.attributes.clone(),
    }
}

#[tokio::test]
async fn vpc_and_subnet_by_name_tag_with_tag_updates() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let name = unique("vpc");
    let va = addr("aws_vpc", "main");
    let desired = attrs(json!({"name": name, "cidr_block": "10.7.0.0/16", "tags": {"team": "a"}}));
    let vpc = p
        .create(&create_request(&va, desired.clone()))
        .await
        .unwrap();
    assert!(vpc.id.starts_with("vpc-"), "{vpc:?}");
    assert!(vpc.is_ours(STACK, ENV, &va));
    assert_eq!(vpc.tags.get("Name"), Some(&name));
    assert_eq!(vpc.attributes["tags"], json!({"team": "a"}));
    assert!(
        vpc.attributes["arn"]
            .as_str()
            .unwrap()
            .contains(&format!("vpc/{}", vpc.id))
    );
    assert!(diff("aws_vpc", &desired, &vpc).is_empty());

    let found = p.find(&va, &name).await.unwrap().expect("found by Name");
    assert_eq!(found.id, vpc.id);
    assert!(p.find(&va, &unique("nothing")).await.unwrap().is_none());
    let listed = p.list("aws_vpc").await.unwrap().expect("VPCs are listed");
    assert!(listed.iter().any(|o| o.id == vpc.id));

    // Rename and retag in place.
    let renamed = unique("vpc-renamed");
    let after =
        attrs(json!({"name": renamed, "cidr_block": "10.7.0.0/16", "tags": {"owner": "b"}}));
    let updated = p.update(&update_request(&va, &vpc, &after)).await.unwrap();
    assert!(diff("aws_vpc", &after, &updated).is_empty(), "{updated:?}");
    assert!(!updated.tags.contains_key("team"));
    assert!(updated.is_ours(STACK, ENV, &va));

    let sa = addr("aws_subnet", "a");
    let subnet_desired = attrs(json!({
        "name": unique("subnet"), "vpc_id": vpc.id, "cidr_block": "10.7.1.0/24",
        "availability_zone": "us-east-1a", "map_public_ip_on_launch": true,
    }));
    let subnet = p
        .create(&create_request(&sa, subnet_desired.clone()))
        .await
        .unwrap();
    assert!(
        diff("aws_subnet", &subnet_desired, &subnet).is_empty(),
        "{subnet:?}"
    );
    let mut private = subnet_desired.clone();
    private.insert("map_public_ip_on_launch".into(), json!(false));
    let updated = p
        .update(&update_request(&sa, &subnet, &private))
        .await
        .unwrap();
    assert_eq!(updated.attributes["map_public_ip_on_launch"], json!(false));

    // A range outside the VPC is EC2's to refuse, and not worth a retry.
    let outside = attrs(json!({"vpc_id": vpc.id, "cidr_block": "10.8.0.0/24"}));
    let err = p
        .create(&create_request(&addr("aws_subnet", "bad"), outside))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal, "{err}");
    assert!(
        err.message.starts_with("ec2:CreateSubnet: InvalidSubnet"),
        "{err}"
    );

    p.delete(&delete_request(&sa, &subnet)).await.unwrap();
    p.delete(&delete_request(&va, &vpc)).await.unwrap();
    assert!(p.read(&va, &vpc.id).await.unwrap().is_none());
    assert!(p.read(&sa, &subnet.id).await.unwrap().is_none());
    // Deleting what is gone succeeds.
    p.delete(&delete_request(&va, &vpc)).await.unwrap();
}

#[tokio::test]
async fn security_group_rules_compare_by_meaning_and_update_by_difference() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let vpc = p
        .create(&create_request(
            &addr("aws_vpc", "sg"),
            attrs(json!({"name": unique("sg-vpc"), "cidr_block": "10.9.0.0/16"})),
        ))
        .await
        .unwrap();
    let ga = addr("aws_security_group", "web");
    let name = unique("web");
    let desired = attrs(json!({
        "name": name, "vpc_id": vpc.id, "description": "web tier",
        "ingress": [
            {"protocol": "tcp", "port": 443, "cidr_blocks": ["10.0.0.0/8", "192.168.0.0/16"], "description": "https"},
            {"protocol": "all", "self": true},
        ],
        "egress": [{"protocol": "tcp", "port": 5432, "cidr_blocks": ["10.9.0.0/16"]}],
        "tags": {"Name": "web servers"},
    }));
    let group = p
        .create(&create_request(&ga, desired.clone()))
        .await
        .unwrap();
    assert!(group.id.starts_with("sg-"));
    assert_eq!(group.attributes["name"], json!(name));
    assert_eq!(group.attributes["tags"], json!({"Name": "web servers"}));
    assert!(
        diff("aws_security_group", &desired, &group).is_empty(),
        "{group:?}"
    );
    // The default allow-all egress rule gave way to the stack's.
    assert_eq!(
        group.attributes["egress"].as_array().unwrap().len(),
        1,
        "{group:?}"
    );
    let found = p.find(&ga, &name).await.unwrap().expect("found by name");
    assert_eq!(found.id, group.id);

    // Another group as a source (the group itself is `self = true`: its
    // own id would be a reference cycle in a stack).
    let lb = p
        .create(&create_request(
            &addr("aws_security_group", "lb"),
            attrs(json!({"name": unique("lb"), "vpc_id": vpc.id})),
        ))
        .await
        .unwrap();
    let after = attrs(json!({
        "name": name, "vpc_id": vpc.id, "description": "web tier",
        "ingress": [
            {"protocol": "tcp", "port": 443, "cidr_blocks": ["10.0.0.0/8"], "description": "https"},
            {"protocol": "udp", "from_port": 53, "to_port": 53, "security_groups": [lb.id]},
        ],
        "tags": {},
    }));
    let updated = p
        .update(&update_request(&ga, &group, &after))
        .await
        .unwrap();
    assert!(
        diff("aws_security_group", &after, &updated).is_empty(),
        "{updated:?}"
    );
    assert_eq!(updated.attributes["ingress"].as_array().unwrap().len(), 2);
    // `egress` left out of the update: left alone.
    assert_eq!(updated.attributes["egress"], group.attributes["egress"]);
    assert!(!updated.tags.contains_key("Name"));

    p.delete(&delete_request(&ga, &updated)).await.unwrap();
    assert!(p.read(&ga, &group.id).await.unwrap().is_none());
    p.delete(&delete_request(&addr("aws_security_group", "lb"), &lb))
        .await
        .unwrap();
    p.delete(&delete_request(&addr("aws_vpc", "sg"), &vpc))
        .await
        .unwrap();
}

#[tokio::test]
async fn eks_cluster_waits_active_updates_tags_and_deletes() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let vpc = p
        .create(&create_request(
            &addr("aws_vpc", "eks"),
            attrs(json!({"name": unique("eks-vpc"), "cidr_block": "10.11.0.0/16"})),
        ))
        .await
        .unwrap();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let s = p
            .create(&create_request(
                &addr("aws_subnet", &format!("s{i}")),
                attrs(json!({"vpc_id": vpc.id, "cidr_block": format!("10.11.{i}.0/24"), "availability_zone": zone})),
            ))
            .await
            .unwrap();
        subnets.push(s.id);
    }
    let ca = addr("aws_eks_cluster", "main");
    let name = unique("eks");
    let desired = attrs(json!({
        "name": name,
        "role_arn": "arn:aws:iam::123456789012:role/eks",
        "subnet_ids": [subnets[1], subnets[0]],
        "version": "1.31",
        "tags": {"team": "k8s"},
    }));
    let cluster = p
        .create(&create_request(&ca, desired.clone()))
        .await
        .unwrap();
    assert!(cluster.is_ours(STACK, ENV, &ca));
    assert!(
        diff("aws_eks_cluster", &desired, &cluster).is_empty(),
        "{cluster:?}"
    );
    assert!(
        cluster.attributes["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let found = p.find(&ca, &name).await.unwrap().expect("found by name");
    assert_eq!(found.attributes["arn"], cluster.attributes["arn"]);

    let mut after = desired.clone();
    after.insert("tags".into(), json!({"team": "platform"}));
    let updated = p
        .update(&update_request(&ca, &cluster, &after))
        .await
        .unwrap();
    assert_eq!(updated.attributes["tags"], json!({"team": "platform"}));
    assert!(updated.is_ours(STACK, ENV, &ca));

    p.delete(&delete_request(&ca, &updated)).await.unwrap();
    assert!(p.read(&ca, &name).await.unwrap().is_none());
}
