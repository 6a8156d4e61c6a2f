//! The EC2 and EKS types through the binary: the shipped EKS platform stack
//! (VPC → subnets → security group → role → cluster), a subnet outside its
//! VPC's range rolling the run back, and a hand-made VPC reused by name.

use super::harness::World;
use super::{lose_state_and_take_back, outputs};

/// The VPC ids whose `Name` tag is `name`.
async fn vpcs_named(w: &World, name: &str) -> Vec<String> {
    let out = w
        .ec2()
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:Name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[tokio::test]
async fn eks_platform_builds_network_role_cluster_and_buckets_in_order() {
    let w = World::start().await;
    w.shipped("eks-platform.toml");
    let apply = w
        .cairn(&["apply", "eks-platform.toml", "--auto-approve"])
        .ok();
    // Order: network and role before the cluster.
    let cluster_start = apply.line_of("+ aws_eks_cluster.main: create…");
    for done in [
        "aws_vpc.main: created",
        "aws_subnet.a: created",
        "aws_subnet.b: created",
        "aws_security_group.cluster: created",
        "aws_iam_role.cluster: created",
    ] {
        assert!(
            apply.line_of(done) < cluster_start,
            "{done}\n{}",
            apply.stderr
        );
    }
    assert!(apply.line_of("aws_vpc.main: created") < apply.line_of("+ aws_subnet.a: create…"));

    let out = outputs(&w, "eks-platform.toml");
    let vpc_id = out["vpc_id"].as_str().unwrap().to_string();
    assert_eq!(
        vpcs_named(&w, "platform").await,
        std::slice::from_ref(&vpc_id)
    );
    let ec2 = w.ec2();
    let vpc = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let vpc = &vpc.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.40.0.0/16"));
    assert_eq!(tag(vpc.tags(), "cairn:stack"), Some("eks-platform"));
    assert_eq!(tag(vpc.tags(), "cairn:address"), Some("aws_vpc.main"));
    assert_eq!(tag(vpc.tags(), "app"), Some("platform"));

    let subnet_ids: Vec<String> = out["subnet_ids"]
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnet_ids.clone()))
        .send()
        .await
        .unwrap();
    let mut seen: Vec<(String, String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            assert_eq!(s.vpc_id(), Some(vpc_id.as_str()));
            (
                tag(s.tags(), "Name").unwrap().to_string(),
                s.cidr_block().unwrap().to_string(),
                s.availability_zone().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "platform-a".into(),
                "10.40.0.0/20".into(),
                "us-east-1a".into()
            ),
            (
                "platform-b".into(),
                "10.40.16.0/20".into(),
                "us-east-1b".into()
            ),
        ]
    );

    let sg_id = out["security_group_id"].as_str().unwrap();
    let groups = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .unwrap();
    let sg = &groups.security_groups()[0];
    assert_eq!(sg.group_name(), Some("platform-eks-cluster"));
    assert_eq!(sg.vpc_id(), Some(vpc_id.as_str()));
    let https = sg
        .ip_permissions()
        .iter()
        .find(|p| p.from_port() == Some(443))
        .expect("the 443 rule");
    assert_eq!(https.ip_ranges()[0].cidr_ip(), Some("10.40.0.0/16"));
    let to_self = sg
        .ip_permissions()
        .iter()
        .find(|p| p.ip_protocol() == Some("-1"))
        .expect("the self rule");
    assert_eq!(to_self.user_id_group_pairs()[0].group_id(), Some(sg_id));

    let cluster = w
        .eks()
        .describe_cluster()
        .name("platform")
        .send()
        .await
        .unwrap();
    let cluster = cluster.cluster().unwrap();
    assert_eq!(cluster.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(cluster.version(), Some("1.31"));
    assert_eq!(cluster.arn(), out["cluster_arn"].as_str());
    let mut cluster_subnets = cluster
        .resources_vpc_config()
        .unwrap()
        .subnet_ids()
        .to_vec();
    cluster_subnets.sort();
    let mut expected = subnet_ids.clone();
    expected.sort();
    assert_eq!(cluster_subnets, expected);
    assert_eq!(
        cluster.role_arn(),
        out["cluster_role_arn"].as_str(),
        "the cluster runs as the stack's role"
    );
    assert_eq!(
        cluster
            .tags()
            .and_then(|t| t.get("cairn:stack"))
            .map(String::as_str),
        Some("eks-platform")
    );
    let mut buckets = w.bucket_names().await;
    buckets.sort();
    assert_eq!(
        buckets,
        [
            "cairn-example-platform-backup",
            "cairn-example-platform-data",
            "cairn-example-platform-index"
        ]
    );
    assert!(w.bucket_versioning("cairn-example-platform-data").await);
    assert!(!w.bucket_versioning("cairn-example-platform-index").await);

    // Nothing to do on a second plan: rules, tags and lists compare by meaning.
    let plan = w.cairn(&["plan", "eks-platform.toml", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    // A rule added by hand is drift: the plan puts the group back.
    ec2.authorize_security_group_ingress()
        .group_id(sg_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = w
        .cairn(&["plan", "eks-platform.toml", "--detailed-exitcode"])
        .code(2);
    assert!(
        drift.stdout.contains("~ aws_security_group.cluster"),
        "{}",
        drift.stdout
    );
    w.cairn(&["apply", "eks-platform.toml", "--auto-approve"])
        .ok();
    let groups = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .unwrap();
    assert!(
        groups.security_groups()[0]
            .ip_permissions()
            .iter()
            .all(|p| p.from_port() != Some(22)),
        "the hand-made rule was revoked"
    );
    w.cairn(&["plan", "eks-platform.toml", "--detailed-exitcode"])
        .code(0);

    // Destroy in reverse order: the cluster goes before its network.
    let destroy = w
        .cairn(&["destroy", "eks-platform.toml", "--auto-approve"])
        .ok();
    assert!(
        destroy.line_of("aws_eks_cluster.main: deleted")
            < destroy.line_of("- aws_subnet.a: delete…"),
        "{}",
        destroy.stderr
    );
    assert!(
        destroy.line_of("aws_subnet.b: deleted") < destroy.line_of("- aws_vpc.main: delete…"),
        "{}",
        destroy.stderr
    );
    assert!(vpcs_named(&w, "platform").await.is_empty());
    let clusters = w.eks().list_clusters().send().await.unwrap();
    assert!(clusters.clusters().is_empty(), "{clusters:?}");
    assert_eq!(w.bucket_names().await, Vec::<String>::new());
    assert_eq!(w.role_names().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_subnet_outside_its_vpc_rolls_back_what_the_run_created() {
    let w = World::start().await;
    // The VPC's id is only known at apply time, so only EC2 can refuse
    // the range: after the VPC and the role exist.
    w.write(
        "stack.toml",
        r#"
[stack]
name = "net-rb"
[provider.aws]
region = "us-east-1"
[resource.aws_iam_role.node]
name = "net-rb-node"
assume_role_services = ["ec2.amazonaws.com"]
[resource.aws_vpc.main]
name = "net-rb"
cidr_block = "10.50.0.0/16"
[resource.aws_subnet.outside]
name = "net-rb-outside"
vpc_id = "${aws_vpc.main.id}"
cidr_block = "10.99.0.0/24"
tags = { role = "${aws_iam_role.node.arn}" }
"#,
    );
    w.cairn(&["validate", "stack.toml"]).ok();
    let run = w.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        run.line_of("aws_vpc.main: created") < run.line_of("aws_subnet.outside: create…"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("aws_subnet.outside: create failed: ec2:CreateSubnet"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Rolled back 2 resources"),
        "{}",
        run.stderr
    );
    assert!(vpcs_named(&w, "net-rb").await.is_empty(), "VPC left behind");
    assert!(
        w.role_tags("net-rb-node").await.is_none(),
        "role left behind"
    );
    let state = w.cairn(&["state", "list", "stack.toml"]).ok();
    assert!(!state.stdout.contains("aws_"), "{}", state.stdout);
}

#[tokio::test]
async fn a_hand_made_vpc_is_reused_by_its_name_tag_and_left_alone() {
    let w = World::start().await;
    let made = w
        .ec2()
        .create_vpc()
        .cidr_block("10.60.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value("shared")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let manual = made.vpc().unwrap().vpc_id().unwrap().to_string();
    w.write(
        "stack.toml",
        r#"
[stack]
name = "reuse-net"
[provider.aws]
region = "us-east-1"
[resource.aws_vpc.shared]
name = "shared"
cidr_block = "10.60.0.0/16"
if_exists = "reuse"
[resource.aws_subnet.app]
name = "reuse-net-app"
vpc_id = "${aws_vpc.shared.id}"
cidr_block = "10.60.1.0/24"
"#,
    );
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("= aws_vpc.shared reuse"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let subnets = w
        .ec2()
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:Name")
                .values("reuse-net-app")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets()[0].vpc_id(), Some(manual.as_str()));
    w.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(
        vpcs_named(&w, "shared").await,
        std::slice::from_ref(&manual)
    );
    let vpc = w
        .ec2()
        .describe_vpcs()
        .vpc_ids(&manual)
        .send()
        .await
        .unwrap();
    let tags = vpc.vpcs()[0].tags();
    assert!(
        tag(tags, "cairn:stack").is_none(),
        "the hand-made VPC was tagged"
    );
}

#[tokio::test]
async fn a_no_change_plan_lists_each_ec2_type_once() {
    let w = World::start().await;
    w.shipped("eks-platform.toml");
    w.cairn(&["apply", "eks-platform.toml", "--auto-approve"])
        .ok();
    let proxy = super::CountingProxy::start(w.server.port());
    w.cairn_at(
        &proxy.endpoint(),
        &["plan", "eks-platform.toml", "--detailed-exitcode"],
    )
    .code(0);
    let calls: Vec<String> = proxy.take().into_iter().map(|c| c.action).collect();
    let count = |a: &str| calls.iter().filter(|c| c.as_str() == a).count();
    // Three subnets-and-VPC-and-group resources, one call per type.
    assert_eq!(count("ec2:DescribeVpcs"), 1, "{calls:#?}");
    assert_eq!(count("ec2:DescribeSubnets"), 1, "{calls:#?}");
    assert_eq!(count("ec2:DescribeSecurityGroups"), 1, "{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("ec2:") || c.starts_with("ec2:Describe")),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn losing_the_state_takes_the_network_back_by_its_tags() {
    let w = World::start().await;
    w.shipped("eks-platform.toml");
    w.cairn(&["apply", "eks-platform.toml", "--auto-approve"])
        .ok();
    let first = outputs(&w, "eks-platform.toml");
    // All nine, and nothing to change on them: rules compare by meaning.
    let plan = lose_state_and_take_back(&w, "eks-platform.toml", "eks-platform", 9, &first);
    assert!(!plan.contains("      ~ "), "{plan}");
    assert_eq!(vpcs_named(&w, "platform").await.len(), 1);
}
