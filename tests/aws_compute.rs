//! The AWS provider against a real moto server: ECS clusters, task
//! definitions and services, Lambda functions from local folders, and
//! CloudFormation stacks with outputs.
#![cfg(feature = "aws")]

mod support;

use cairn::provider::aws::zip_path;
use cairn::provider::{DeleteRequest, Provider, UpdateRequest, ownership_tags};
use serde_json::json;
use support::aws::*;

fn update_request(
    a: &cairn::model::Address,
    id: &str,
    before: &cairn::model::Attrs,
    after: &cairn::model::Attrs,
) -> UpdateRequest {
    UpdateRequest {
        address: a.clone(),
        id: id.to_string(),
        before: before.clone(),
        after: after.clone(),
        tags: ownership_tags(STACK, ENV, a),
    }
}

const NETWORK: &str = r#"{
  "Resources": {
    "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
    "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.1.0/24"}},
    "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "web", "VpcId": {"Ref": "Vpc"}}}
  },
  "Outputs": {
    "SubnetId": {"Value": {"Ref": "Subnet"}},
    "SgId": {"Value": {"Fn::GetAtt": ["Sg", "GroupId"]}}
  }
}"#;

#[tokio::test]
async fn ecs_cluster_task_definition_and_service() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;

    let cluster_name = unique("cluster");
    let ca = addr("aws_ecs_cluster", "main");
    let cluster_desired = attrs(json!({"name": cluster_name, "tags": {"env": "test"}}));
    let cluster = p
        .create(&create_request(&ca, cluster_desired.clone()))
        .await
        .unwrap();
    assert!(
        cluster.attributes["arn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("cluster/{cluster_name}"))
    );
    let live = p.find(&ca, &cluster_name).await.unwrap().unwrap();
    assert!(live.is_ours(STACK, ENV, &ca));
    assert!(diff("aws_ecs_cluster", &cluster_desired, &live).is_empty());

    // Task definition: create, no-diff read, update registers a new revision.
    let family = unique("web");
    let ta = addr("aws_ecs_task_definition", "web");
    let td_desired = attrs(json!({
        "family": family,
        "cpu": 256,
        "memory": 512,
        "network_mode": "awsvpc",
        "requires_compatibilities": ["FARGATE"],
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "essential": true,
            "port_mappings": [{"container_port": 80}],
            "environment": {"MODE": "prod"},
            "command": ["nginx", "-g", "daemon off;"],
        }],
        "tags": {"app": "web"},
    }));
    let td1 = p
        .create(&create_request(&ta, td_desired.clone()))
        .await
        .unwrap();
    assert_eq!(td1.attributes["revision"], json!(1));
    assert!(
        td1.id.ends_with(&format!("task-definition/{family}:1")),
        "{}",
        td1.id
    );
    let read1 = p.read(&ta, &td1.id).await.unwrap().unwrap();
    assert!(read1.is_ours(STACK, ENV, &ta));
    assert!(
        diff("aws_ecs_task_definition", &td_desired, &read1).is_empty(),
        "{:?}",
        diff("aws_ecs_task_definition", &td_desired, &read1)
    );
    let by_family = p.find(&ta, &family).await.unwrap().unwrap();
    assert_eq!(by_family.id, td1.id);

    let mut td_after = td_desired.clone();
    td_after.insert(
        "containers".into(),
        json!([{"name": "web", "image": "nginx:1.28", "port_mappings": [{"container_port": 80}]}]),
    );
    let td2 = p
        .update(&update_request(&ta, &td1.id, &read1.attributes, &td_after))
        .await
        .unwrap();
    assert_ne!(td2.id, td1.id, "a new revision has a new id");
    assert_eq!(td2.attributes["revision"], json!(2));
    assert!(
        p.read(&ta, &td1.id).await.unwrap().is_none(),
        "old revision deregistered"
    );
    let read2 = p.read(&ta, &td2.id).await.unwrap().unwrap();
    assert!(
        diff("aws_ecs_task_definition", &td_after, &read2).is_empty(),
        "{:?}",
        diff("aws_ecs_task_definition", &td_after, &read2)
    );

    // Tags alone do not register a revision.
    let mut td_tags = td_after.clone();
    td_tags.insert("tags".into(), json!({"app": "web2"}));
    let td3 = p
        .update(&update_request(&ta, &td2.id, &read2.attributes, &td_tags))
        .await
        .unwrap();
    assert_eq!(td3.id, td2.id);
    assert_eq!(td3.attributes["tags"], json!({"app": "web2"}));

    // Networking for the service comes from a CloudFormation stack's
    // outputs (moto checks that subnets exist).
    let na = addr("aws_cloudformation_stack", "net");
    let net = p
        .create(&create_request(
            &na,
            attrs(json!({"name": unique("net"), "template_body": NETWORK})),
        ))
        .await
        .unwrap();
    let subnet = net.attributes["outputs"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_string();
    let sg = net.attributes["outputs"]["SgId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        subnet.starts_with("subnet-") && sg.starts_with("sg-"),
        "{subnet} {sg}"
    );

    // Service on the cluster, updated in place.
    let sa = addr("aws_ecs_service", "web");
    let svc_desired = attrs(json!({
        "name": "web",
        "cluster": cluster_name,
        "task_definition": td2.id,
        "desired_count": 1,
        "launch_type": "FARGATE",
        "network_configuration": {"subnets": [subnet], "security_groups": [sg], "assign_public_ip": true},
        "tags": {"svc": "web"},
    }));
    let svc = p
        .create(&create_request(&sa, svc_desired.clone()))
        .await
        .unwrap();
    assert!(
        svc.id.contains(&format!("service/{cluster_name}/web")),
        "{}",
        svc.id
    );
    let svc_live = p.read(&sa, &svc.id).await.unwrap().unwrap();
    assert!(svc_live.is_ours(STACK, ENV, &sa), "{:?}", svc_live.tags);
    assert!(
        diff("aws_ecs_service", &svc_desired, &svc_live).is_empty(),
        "{:?}",
        diff("aws_ecs_service", &svc_desired, &svc_live)
    );
    assert!(
        p.find(&sa, "web").await.unwrap().is_none(),
        "services have no identity"
    );

    let mut svc_after = svc_desired.clone();
    svc_after.insert("desired_count".into(), json!(3));
    let svc2 = p
        .update(&update_request(
            &sa,
            &svc.id,
            &svc_live.attributes,
            &svc_after,
        ))
        .await
        .unwrap();
    assert_eq!(svc2.id, svc.id);
    assert_eq!(svc2.attributes["desired_count"], json!(3));

    // Tear down in dependency order.
    p.delete(&DeleteRequest {
        address: sa.clone(),
        id: svc.id.clone(),
        attributes: svc2.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&sa, &svc.id).await.unwrap().is_none());
    p.delete(&DeleteRequest {
        address: ta.clone(),
        id: td2.id.clone(),
        attributes: td3.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&ta, &td2.id).await.unwrap().is_none());
    p.delete(&DeleteRequest {
        address: ca.clone(),
        id: cluster_name.clone(),
        attributes: cluster.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&ca, &cluster_name).await.unwrap().is_none());
}

#[tokio::test]
async fn lambda_function_from_folder() {
    server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fn/lib")).unwrap();
    std::fs::write(
        dir.path().join("fn/index.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("fn/lib/util.py"), "X = 1\n").unwrap();
    let p = provider(dir.path()).await;

    let role_name = unique("fnrole");
    let ra = addr("aws_iam_role", "fn");
    let role = p
        .create(&create_request(
            &ra,
            attrs(json!({"name": role_name, "assume_role_services": ["lambda.amazonaws.com"]})),
        ))
        .await
        .unwrap();
    let role_arn = role.attributes["arn"].as_str().unwrap().to_string();

    let name = unique("fn");
    let la = addr("aws_lambda_function", "fn");
    let desired = attrs(json!({
        "name": name,
        "role": role_arn,
        "runtime": "python3.12",
        "handler": "index.handler",
        "source": "fn",
        "memory_size": 256,
        "timeout": 10,
        "environment": {"LEVEL": "info"},
        "tags": {"team": "core"},
    }));
    let created = p
        .create(&create_request(&la, desired.clone()))
        .await
        .unwrap();
    let local = zip_path(&dir.path().join("fn")).unwrap();
    assert_eq!(created.attributes["code_sha256"], json!(local.sha256));
    let live = p.read(&la, &name).await.unwrap().unwrap();
    assert!(live.is_ours(STACK, ENV, &la));
    assert_eq!(
        live.attributes["tags"],
        json!({"team": "core"}),
        "cairn:source stays out of user tags"
    );
    assert!(
        diff("aws_lambda_function", &desired, &live).is_empty(),
        "{:?}",
        diff("aws_lambda_function", &desired, &live)
    );

    // A changed file shows as a diff in `source`…
    std::fs::write(dir.path().join("fn/lib/util.py"), "X = 2\n").unwrap();
    let changed = p.read(&la, &name).await.unwrap().unwrap();
    assert_eq!(
        diff("aws_lambda_function", &desired, &changed)
            .keys()
            .collect::<Vec<_>>(),
        vec!["source"]
    );
    // …and an update uploads it, after which there is no diff again.
    let mut after = desired.clone();
    after.insert("memory_size".into(), json!(512));
    let updated = p
        .update(&update_request(&la, &name, &changed.attributes, &after))
        .await
        .unwrap();
    let new_local = zip_path(&dir.path().join("fn")).unwrap();
    assert_ne!(new_local.sha256, local.sha256);
    assert_eq!(updated.attributes["code_sha256"], json!(new_local.sha256));
    assert!(
        diff("aws_lambda_function", &after, &updated).is_empty(),
        "{:?}",
        diff("aws_lambda_function", &after, &updated)
    );

    p.delete(&DeleteRequest {
        address: la.clone(),
        id: name.clone(),
        attributes: updated.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&la, &name).await.unwrap().is_none());
}

const TEMPLATE: &str = r#"{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Parameters": {"QueueName": {"Type": "String"}},
  "Resources": {
    "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "QueueName"}}}
  },
  "Outputs": {
    "QueueName": {"Value": {"Fn::GetAtt": ["Queue", "QueueName"]}},
    "Greeting": {"Value": "hello"},
    "Param": {"Value": {"Ref": "QueueName"}}
  }
}
"#;

#[tokio::test]
async fn cloudformation_stack_with_outputs() {
    server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cfn")).unwrap();
    std::fs::write(dir.path().join("cfn/queue.json"), TEMPLATE).unwrap();
    let p = provider(dir.path()).await;
    let name = unique("stack");
    let queue = unique("queue");
    let a = addr("aws_cloudformation_stack", "queue");
    let desired = attrs(json!({
        "name": name,
        "template": "cfn/queue.json",
        "parameters": {"QueueName": queue},
        "tags": {"team": "core"},
    }));
    let created = p
        .create(&create_request(&a, desired.clone()))
        .await
        .unwrap();
    assert_eq!(created.attributes["status"], json!("CREATE_COMPLETE"));
    assert_eq!(created.attributes["outputs"]["Greeting"], json!("hello"));
    assert_eq!(created.attributes["outputs"]["QueueName"], json!(queue));
    let live = p.read(&a, &name).await.unwrap().unwrap();
    assert!(live.is_ours(STACK, ENV, &a));
    assert!(
        diff("aws_cloudformation_stack", &desired, &live).is_empty(),
        "{:?}",
        diff("aws_cloudformation_stack", &desired, &live)
    );

    // Update with a new parameter value.
    let queue2 = unique("queue");
    let mut after = desired.clone();
    after.insert("parameters".into(), json!({"QueueName": queue2}));
    let updated = p
        .update(&update_request(&a, &name, &live.attributes, &after))
        .await
        .unwrap();
    assert_eq!(updated.attributes["status"], json!("UPDATE_COMPLETE"));
    assert_eq!(updated.attributes["outputs"]["Param"], json!(queue2));
    assert_eq!(
        updated.attributes["parameters"],
        json!({"QueueName": queue2})
    );

    // An edited template file reads back as different.
    std::fs::write(
        dir.path().join("cfn/queue.json"),
        TEMPLATE.replace("hello", "bye"),
    )
    .unwrap();
    let edited = p.read(&a, &name).await.unwrap().unwrap();
    assert_eq!(
        diff("aws_cloudformation_stack", &after, &edited)
            .keys()
            .collect::<Vec<_>>(),
        vec!["template"]
    );

    p.delete(&DeleteRequest {
        address: a.clone(),
        id: name.clone(),
        attributes: updated.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&a, &name).await.unwrap().is_none());
}
