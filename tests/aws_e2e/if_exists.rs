//! `if_exists` beside hand-made AWS objects: an IAM role or ECR repository
//! made through the API (no cairn tags) holds a name the stack wants. Each
//! policy is planned, applied and destroyed, and the hand-made object is
//! checked through the API afterwards: untouched, except for `adopt`.

use serde_json::Value;

use crate::harness::{EXEC_POLICY, World};

/// A role, a repository and a task definition using both; `role_policy` and
/// `repo_policy` are `if_exists = …` lines (or empty).
fn stack(role_policy: &str, repo_policy: &str, role_extra: &str) -> String {
    format!(
        r#"
[stack]
name = "ie"

[provider.aws]
region = "us-east-1"

[resource.aws_iam_role.exec]
name = "manual-exec"
assume_role_services = ["ecs-tasks.amazonaws.com"]
managed_policy_arns = ["{EXEC_POLICY}"]
{role_extra}
{role_policy}

[resource.aws_ecr_repository.images]
name = "manual/images"
{repo_policy}

[resource.aws_ecs_task_definition.app]
family = "ie-app"
execution_role_arn = "${{aws_iam_role.exec.arn}}"
containers = [{{ name = "app", image = "${{aws_ecr_repository.images.uri}}:1", memory = 128 }}]
"#
    )
}

const HAND_MADE_TAGS: [(&str, &str); 1] = [("owner", "ops")];

fn hand_made_tags() -> Option<Vec<(String, String)>> {
    Some(
        HAND_MADE_TAGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

async fn task_definitions(w: &World) -> Vec<String> {
    let out = w
        .ecs()
        .list_task_definitions()
        .family_prefix("ie-app")
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    out.task_definition_arns().to_vec()
}

async fn execution_role_of_app(w: &World) -> String {
    let out = w
        .ecs()
        .describe_task_definition()
        .task_definition("ie-app")
        .send()
        .await
        .unwrap();
    out.task_definition()
        .and_then(|t| t.execution_role_arn())
        .unwrap()
        .to_string()
}

async fn role_arn(w: &World, name: &str) -> String {
    let out = w.iam().get_role().role_name(name).send().await.unwrap();
    out.role().unwrap().arn().to_string()
}

/// A hand-made ECR repository (no tags); returns its ARN.
async fn manual_repository(w: &World, name: &str) -> String {
    let out = w
        .ecr()
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap();
    out.repository()
        .and_then(|r| r.repository_arn())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn reuse_uses_the_hand_made_role_and_destroy_leaves_it() {
    let w = World::start().await;
    w.manual_role("manual-exec", &[EXEC_POLICY]).await;
    w.write("stack.toml", &stack(r#"if_exists = "reuse""#, "", ""));
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("= aws_iam_role.exec reuse"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(
        execution_role_of_app(&w).await,
        role_arn(&w, "manual-exec").await
    );
    assert_eq!(w.role_tags("manual-exec").await, hand_made_tags());
    w.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);

    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(w.role_tags("manual-exec").await, hand_made_tags());
    assert_eq!(w.role_policies("manual-exec").await, [EXEC_POLICY]);
    assert!(task_definitions(&w).await.is_empty());
    assert_eq!(w.repository_names().await, Vec::<String>::new());
}

#[tokio::test]
async fn adopt_updates_and_tags_the_hand_made_role_and_destroy_deletes_it() {
    let w = World::start().await;
    w.manual_role("manual-exec", &[]).await;
    w.write(
        "stack.toml",
        &stack(
            r#"if_exists = "adopt""#,
            "",
            r#"tags = { team = "platform" }"#,
        ),
    );
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("> aws_iam_role.exec adopt"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let tags = w.role_tags("manual-exec").await.unwrap();
    for (k, v) in [
        ("cairn:stack", "ie"),
        ("cairn:address", "aws_iam_role.exec"),
        ("team", "platform"),
    ] {
        assert!(tags.contains(&(k.into(), v.into())), "{tags:?}");
    }
    assert_eq!(w.role_policies("manual-exec").await, [EXEC_POLICY]);
    w.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);

    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(w.role_tags("manual-exec").await, None, "adopted: deleted");
}

#[tokio::test]
async fn unique_creates_a_second_role_beside_the_hand_made_one() {
    let w = World::start().await;
    w.manual_role("manual-exec", &[]).await;
    w.write("stack.toml", &stack(r#"if_exists = "unique""#, "", ""));
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("* aws_iam_role.exec create unique"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let names = w.role_names().await;
    assert_eq!(names.len(), 2, "{names:?}");
    let unique = names.iter().find(|n| *n != "manual-exec").unwrap().clone();
    assert!(unique.starts_with("manual-exec-"), "{unique}");
    assert_eq!(execution_role_of_app(&w).await, role_arn(&w, &unique).await);
    assert_eq!(w.role_policies(&unique).await, [EXEC_POLICY]);
    assert_eq!(w.role_tags("manual-exec").await, hand_made_tags());
    assert!(w.role_policies("manual-exec").await.is_empty());
    w.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);

    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(w.role_names().await, ["manual-exec"]);
    assert_eq!(w.role_tags("manual-exec").await, hand_made_tags());
}

#[tokio::test]
async fn skip_leaves_the_hand_made_repository_and_skips_its_dependents() {
    let w = World::start().await;
    let arn = manual_repository(&w, "manual/images").await;
    w.write("stack.toml", &stack("", r#"if_exists = "skip""#, ""));
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("! aws_ecr_repository.images skip"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("! aws_ecs_task_definition.app skip"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(task_definitions(&w).await.is_empty());
    assert!(w.role_tags("manual-exec").await.is_some(), "role created");
    assert!(
        w.repository_tags(&arn).await.is_empty(),
        "repository untouched"
    );

    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    assert_eq!(w.repository_names().await, ["manual/images"]);
    assert!(w.repository_tags(&arn).await.is_empty());
    assert_eq!(w.role_names().await, Vec::<String>::new());
}

#[tokio::test]
async fn fail_stops_before_any_change_naming_the_object() {
    let w = World::start().await;
    let arn = manual_repository(&w, "manual/images").await;
    w.write("stack.toml", &stack("", "", ""));
    let plan = w.cairn(&["plan", "stack.toml"]).code(1);
    assert!(plan.stderr.contains("manual/images"), "{}", plan.stderr);
    let apply = w.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    assert!(
        apply.stderr.contains("aws_ecr_repository.images"),
        "{}",
        apply.stderr
    );
    assert_eq!(
        w.role_names().await,
        Vec::<String>::new(),
        "nothing created"
    );
    assert!(task_definitions(&w).await.is_empty());
    assert_eq!(w.repository_names().await, ["manual/images"]);
    assert!(w.repository_tags(&arn).await.is_empty());
}

#[tokio::test]
async fn a_chain_falls_back_from_reuse_to_unique_to_skip() {
    let w = World::start().await;
    // Differs from the stack (no managed policy): not reusable.
    w.manual_role("manual-exec", &[]).await;
    let chain = r#"if_exists = ["reuse", "unique", "skip"]"#;
    w.write("stack.toml", &stack(chain, "", ""));
    let plan = w.cairn(&["plan", "stack.toml", "--json"]).ok();
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let action = &v["steps"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "aws_iam_role.exec")
        .unwrap()
        .clone();
    assert_eq!(action["action"], "create_unique", "{action}");
    let unique = action["unique_name"].as_str().unwrap().to_string();

    // Someone made the unique name by hand too: the chain ends in skip.
    w.manual_role(&unique, &[]).await;
    let plan = w.cairn(&["plan", "stack.toml"]).ok();
    assert!(
        plan.stdout.contains("! aws_iam_role.exec skip"),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    assert!(task_definitions(&w).await.is_empty());
    w.cairn(&["destroy", "stack.toml", "--auto-approve"]).ok();
    let mut expected = vec!["manual-exec".to_string(), unique.clone()];
    expected.sort();
    assert_eq!(w.role_names().await, expected);
    for name in expected {
        assert_eq!(w.role_tags(&name).await, hand_made_tags());
        assert!(w.role_policies(&name).await.is_empty());
    }
    assert_eq!(w.repository_names().await, Vec::<String>::new());
}

#[tokio::test]
async fn existing_setup_reuses_matching_shared_pieces_and_makes_its_own_copy_otherwise() {
    let w = World::start().await;
    w.shipped("existing-setup.toml");
    // Hand-made: the execution role without its managed policy (so it does
    // not match), the shared cluster and the shared repository (which do).
    w.manual_role("ecsTaskExecutionRole", &[]).await;
    w.ecs()
        .create_cluster()
        .cluster_name("shared")
        .send()
        .await
        .unwrap();
    let repo_arn = manual_repository(&w, "shared/base-images").await;

    let plan = w.cairn(&["plan", "existing-setup.toml"]).ok();
    for line in [
        "* aws_iam_role.execution create unique",
        "= aws_ecs_cluster.shared reuse",
        "= aws_ecr_repository.base reuse",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    w.cairn(&["apply", "existing-setup.toml", "--auto-approve"])
        .ok();
    let services = w
        .ecs()
        .list_services()
        .cluster("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(services.service_arns().len(), 1, "{services:?}");
    let td = w
        .ecs()
        .describe_task_definition()
        .task_definition("billing")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    let image = td.container_definitions()[0].image().unwrap();
    assert!(
        image.ends_with("/shared/base-images:python-3.12"),
        "{image}"
    );
    let exec = td.execution_role_arn().unwrap();
    assert!(exec.contains(":role/ecsTaskExecutionRole-"), "{exec}");
    w.cairn(&["plan", "existing-setup.toml", "--detailed-exitcode"])
        .code(0);

    w.cairn(&["destroy", "existing-setup.toml", "--auto-approve"])
        .ok();
    assert_eq!(w.role_names().await, ["ecsTaskExecutionRole"]);
    assert_eq!(w.role_tags("ecsTaskExecutionRole").await, hand_made_tags());
    assert_eq!(w.repository_names().await, ["shared/base-images"]);
    assert!(w.repository_tags(&repo_arn).await.is_empty());
    let clusters = w
        .ecs()
        .describe_clusters()
        .clusters("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.clusters()[0].status(), Some("ACTIVE"));
    assert_eq!(w.bucket_names().await, Vec::<String>::new());
}
