//! The AWS provider against a real moto server: IAM roles, ECR
//! repositories and S3 buckets, tags and ownership, foreign objects, error
//! kinds and messages.
#![cfg(feature = "aws")]

mod support;

use cairn::provider::aws::{canonical_policy, policies_equivalent};
use cairn::provider::{DeleteRequest, ErrorKind, Provider, UpdateRequest};
use serde_json::json;
use support::aws::*;

const TRUST_ECS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn s3_read_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::{bucket}/*"}}]}}"#
    )
}

#[tokio::test]
async fn iam_role_create_read_update_delete() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let name = unique("role");
    let a = addr("aws_iam_role", "exec");
    let desired = attrs(json!({
        "name": name,
        "assume_role_services": ["ecs-tasks.amazonaws.com"],
        "managed_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
        "inline_policies": {"read": s3_read_policy("b1")},
        "tags": {"team": "core"},
    }));
    let created = p
        .create(&create_request(&a, desired.clone()))
        .await
        .unwrap();
    assert_eq!(created.id, name);
    let arn = created.attributes["arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:iam::") && arn.ends_with(&format!(":role/{name}")),
        "{arn}"
    );

    let live = p.read(&a, &name).await.unwrap().expect("role exists");
    assert!(live.is_ours(STACK, ENV, &a), "{:?}", live.tags);
    assert_eq!(live.tags.get("team").map(String::as_str), Some("core"));
    assert_eq!(
        live.attributes["tags"],
        json!({"team": "core"}),
        "no cairn:* keys in attributes"
    );
    assert_eq!(live.attributes["path"], json!("/"));
    assert_eq!(
        live.attributes["assume_role_services"],
        json!(["ecs-tasks.amazonaws.com"])
    );
    assert!(policies_equivalent(
        live.attributes["assume_role_policy"].as_str().unwrap(),
        TRUST_ECS
    ));
    assert!(
        diff("aws_iam_role", &desired, &live).is_empty(),
        "{:?}",
        diff("aws_iam_role", &desired, &live)
    );
    let found = p.find(&a, &name).await.unwrap().expect("found by name");
    assert_eq!(found.id, name);

    // Same policy written differently: still no diff.
    let mut reformatted = desired.clone();
    reformatted.insert(
        "inline_policies".into(),
        json!({"read": "{\"Statement\":{\"Resource\":[\"arn:aws:s3:::b1/*\"],\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\"},\n \"Version\":\"2012-10-17\"}"}),
    );
    assert!(diff("aws_iam_role", &reformatted, &live).is_empty());

    // Update: new inline policy text, managed policy detached, tags changed.
    let after = attrs(json!({
        "name": name,
        "assume_role_services": ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"],
        "managed_policy_arns": [],
        "inline_policies": {"write": s3_read_policy("b2").replace("GetObject", "PutObject")},
        "tags": {"team": "platform"},
    }));
    assert!(!diff("aws_iam_role", &after, &live).is_empty());
    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: name.clone(),
            before: live.attributes.clone(),
            after: after.clone(),
            tags: cairn::provider::ownership_tags(STACK, ENV, &a),
        })
        .await
        .unwrap();
    assert!(
        diff("aws_iam_role", &after, &updated).is_empty(),
        "{:?}",
        diff("aws_iam_role", &after, &updated)
    );
    assert_eq!(updated.attributes["managed_policy_arns"], json!([]));
    assert_eq!(updated.attributes["tags"], json!({"team": "platform"}));
    assert!(updated.is_ours(STACK, ENV, &a));

    let del = DeleteRequest {
        address: a.clone(),
        id: name.clone(),
        attributes: updated.attributes.clone(),
    };
    p.delete(&del).await.unwrap();
    assert!(p.read(&a, &name).await.unwrap().is_none());
    p.delete(&del)
        .await
        .expect("deleting a missing role succeeds");
}

#[tokio::test]
async fn manual_role_is_found_foreign_then_adopted() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let name = unique("manual");
    let iam = aws_sdk_iam::Client::new(&sdk_config().await);
    iam.create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST_ECS)
        .send()
        .await
        .unwrap();
    let a = addr("aws_iam_role", "manual");
    let found = p.find(&a, &name).await.unwrap().expect("manual role found");
    assert!(!found.is_cairn_managed());
    assert!(!found.is_ours(STACK, ENV, &a));
    assert_eq!(
        found.attributes["assume_role_services"],
        json!(["ecs-tasks.amazonaws.com"])
    );

    // Adoption: an update with the ownership tags makes it ours.
    let desired = attrs(json!({"name": name, "assume_role_policy": TRUST_ECS}));
    let adopted = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: name.clone(),
            before: found.attributes.clone(),
            after: desired.clone(),
            tags: cairn::provider::ownership_tags(STACK, ENV, &a),
        })
        .await
        .unwrap();
    assert!(adopted.is_ours(STACK, ENV, &a), "{:?}", adopted.tags);
    assert_eq!(adopted.attributes["tags"], json!({}));
    let again = p.read(&a, &name).await.unwrap().unwrap();
    assert!(again.is_ours(STACK, ENV, &a));
    assert!(diff("aws_iam_role", &desired, &again).is_empty());
}

#[test]
fn policy_documents_compare_by_meaning() {
    let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    let b = "{ \"Statement\": [ { \"Resource\": [\"*\"], \"Action\": [\"s3:ListBucket\", \"s3:GetObject\"], \"Effect\": \"Allow\" } ],\n  \"Version\": \"2012-10-17\" }";
    assert!(policies_equivalent(a, b));
    assert_eq!(canonical_policy(a), canonical_policy(b));
    assert!(!policies_equivalent(a, &a.replace("Allow", "Deny")));
    assert!(canonical_policy("not json").is_none());
}

#[tokio::test]
async fn ecr_repository_lifecycle_and_invalid_name() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let name = unique("team/app");
    let a = addr("aws_ecr_repository", "app");
    let desired = attrs(
        json!({"name": name, "image_tag_mutability": "IMMUTABLE", "scan_on_push": false, "tags": {"app": "web"}}),
    );
    let created = p
        .create(&create_request(&a, desired.clone()))
        .await
        .unwrap();
    let uri = created.attributes["uri"].as_str().unwrap();
    assert!(
        uri.ends_with(&format!("/{name}")) && uri.contains(".dkr.ecr."),
        "{uri}"
    );
    let live = p.read(&a, &name).await.unwrap().unwrap();
    assert!(live.is_ours(STACK, ENV, &a));
    assert!(
        diff("aws_ecr_repository", &desired, &live).is_empty(),
        "{:?}",
        diff("aws_ecr_repository", &desired, &live)
    );

    // (moto ignores turning scan_on_push off: the SDK omits `false`.)
    let after = attrs(
        json!({"name": name, "image_tag_mutability": "MUTABLE", "scan_on_push": true, "tags": {"app": "api"}}),
    );
    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: name.clone(),
            before: live.attributes.clone(),
            after: after.clone(),
            tags: cairn::provider::ownership_tags(STACK, ENV, &a),
        })
        .await
        .unwrap();
    assert!(
        diff("aws_ecr_repository", &after, &updated).is_empty(),
        "{:?}",
        diff("aws_ecr_repository", &after, &updated)
    );
    assert_eq!(updated.tags.get("app").map(String::as_str), Some("api"));

    let del = DeleteRequest {
        address: a.clone(),
        id: name.clone(),
        attributes: updated.attributes,
    };
    p.delete(&del).await.unwrap();
    assert!(p.read(&a, &name).await.unwrap().is_none());
    p.delete(&del).await.unwrap();

    // An invalid name is a fatal error naming the operation.
    let bad = p
        .create(&create_request(&a, attrs(json!({"name": "Invalid Name!"}))))
        .await
        .expect_err("invalid repository name");
    assert_eq!(bad.kind, ErrorKind::Fatal, "{bad:?}");
    assert!(
        bad.message.starts_with("ecr:CreateRepository: "),
        "{}",
        bad.message
    );
    // And static validation catches it before any call.
    let problems = cairn::provider::aws::validate(&a, &attrs(json!({"name": "Invalid Name!"})));
    assert_eq!(problems.len(), 1);
}

#[tokio::test]
async fn s3_bucket_versioning_and_tags() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let name = unique("bucket");
    let a = addr("aws_s3_bucket", "data");
    let desired = attrs(json!({"name": name, "versioning": true, "tags": {"tier": "hot"}}));
    let created = p
        .create(&create_request(&a, desired.clone()))
        .await
        .unwrap();
    assert_eq!(
        created.attributes["arn"],
        json!(format!("arn:aws:s3:::{name}"))
    );
    let live = p.read(&a, &name).await.unwrap().unwrap();
    assert!(live.is_ours(STACK, ENV, &a));
    assert!(
        diff("aws_s3_bucket", &desired, &live).is_empty(),
        "{:?}",
        diff("aws_s3_bucket", &desired, &live)
    );

    let after = attrs(json!({"name": name, "versioning": false, "tags": {"owner": "me"}}));
    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: name.clone(),
            before: live.attributes.clone(),
            after: after.clone(),
            tags: cairn::provider::ownership_tags(STACK, ENV, &a),
        })
        .await
        .unwrap();
    assert!(
        diff("aws_s3_bucket", &after, &updated).is_empty(),
        "{:?}",
        diff("aws_s3_bucket", &after, &updated)
    );
    assert!(!updated.tags.contains_key("tier"));
    assert!(updated.is_ours(STACK, ENV, &a));

    p.delete(&DeleteRequest {
        address: a.clone(),
        id: name.clone(),
        attributes: updated.attributes,
    })
    .await
    .unwrap();
    assert!(p.read(&a, &name).await.unwrap().is_none());
}

#[tokio::test]
async fn a_bucket_with_objects_is_kept_unless_force_destroy() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    let s3 = {
        let config = aws_sdk_s3::config::Builder::from(&sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    };
    let name = unique("full-bucket");
    let a = addr("aws_s3_bucket", "full");
    let desired = attrs(json!({"name": name, "versioning": true}));
    let live = p
        .create(&create_request(&a, desired.clone()))
        .await
        .unwrap();
    assert_eq!(live.attributes["force_destroy"], json!(false));
    for (key, body) in [("a.txt", "1"), ("a.txt", "2"), ("b/c.txt", "3")] {
        s3.put_object()
            .bucket(&name)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket(&name)
        .key("b/c.txt")
        .send()
        .await
        .unwrap();
    let delete = |attributes: cairn::model::Attrs| DeleteRequest {
        address: a.clone(),
        id: name.clone(),
        attributes,
    };
    let err = p
        .delete(&delete(live.attributes.clone()))
        .await
        .unwrap_err();
    assert!(err.message.contains("BucketNotEmpty"), "{err}");
    assert!(
        p.read(&a, &name).await.unwrap().is_some(),
        "the data was kept"
    );

    let mut forced = desired.clone();
    forced.insert("force_destroy".into(), json!(true));
    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: name.clone(),
            before: live.attributes.clone(),
            after: forced.clone(),
            tags: cairn::provider::ownership_tags(STACK, ENV, &a),
        })
        .await
        .unwrap();
    assert!(diff("aws_s3_bucket", &forced, &updated).is_empty());
    assert_eq!(
        updated.tags.get("cairn:force-destroy").map(String::as_str),
        Some("true")
    );
    // Destroy reads the bucket, not the stack: the flag comes from the tag.
    let read = p.read(&a, &name).await.unwrap().unwrap();
    p.delete(&delete(read.attributes)).await.unwrap();
    assert!(p.read(&a, &name).await.unwrap().is_none());
}

#[tokio::test]
async fn missing_objects_read_as_none() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    for (t, id) in [
        ("aws_iam_role", "no-such-role"),
        ("aws_ecr_repository", "no-such-repo"),
        ("aws_ecs_cluster", "no-such-cluster"),
        ("aws_ecs_task_definition", "no-such-family"),
        (
            "aws_ecs_service",
            "arn:aws:ecs:us-east-1:123456789012:service/no-cluster/no-service",
        ),
        ("aws_lambda_function", "no-such-function"),
        ("aws_cloudformation_stack", "no-such-stack"),
        ("aws_s3_bucket", "no-such-bucket-cairn"),
    ] {
        let a = addr(t, "x");
        let got = p.read(&a, id).await;
        assert!(matches!(got, Ok(None)), "{t}: {got:?}");
    }
}

#[tokio::test]
async fn a_fresh_server_resets() {
    let own = support::moto::MotoServer::start();
    own.reset();
    assert!(own.endpoint().starts_with("http://127.0.0.1:"));
    let env = own.env();
    assert!(
        env.iter()
            .any(|(k, v)| k == "AWS_ENDPOINT_URL" && *v == own.endpoint())
    );
}
