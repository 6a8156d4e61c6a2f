//! The `cairn` binary against a real moto server: the shipped AWS stacks
//! applied, re-planned, destroyed and checked through the AWS API; every
//! `if_exists` policy beside hand-made objects; drift; rollback of a failed
//! run; a lost state file; and what a no-change plan costs in API calls.
//!
//! Each test starts its own server, so tests run in parallel without seeing
//! each other's objects. A missing `moto_server` fails the tests.
#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;
#[path = "support/run.rs"]
mod run;

#[path = "aws_e2e/harness.rs"]
mod harness;
#[path = "aws_e2e/proxy.rs"]
mod proxy;

use harness::{EXEC_POLICY, World};
use proxy::{CountingProxy, Fault};
use serde_json::Value;

const LAMBDA_BASIC: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
const ECS_LAMBDA_ROLES: [&str; 3] = ["starter-lambda", "starter-task", "starter-task-execution"];

fn outputs(w: &World, stack_file: &str) -> Value {
    let run = w.cairn(&["output", stack_file, "--json"]).ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Loses the state of the applied `stack_file` (stack `stack`); then a plan
/// must take back `objects` objects by their cairn tags and create nothing,
/// and its apply must give the outputs `before` and leave nothing to do.
/// Returns the plan's output for further checks.
fn lose_state_and_take_back(
    w: &World,
    stack_file: &str,
    stack: &str,
    objects: usize,
    before: &Value,
) -> String {
    assert!(w.lose_state(stack) > 0, "no state files found");
    let plan = w.cairn(&["plan", stack_file]).ok();
    assert_eq!(
        plan.stdout.matches("found by its cairn tags").count(),
        objects,
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains(" create\n"), "{}", plan.stdout);
    w.cairn(&["apply", stack_file, "--auto-approve"]).ok();
    assert_eq!(&outputs(w, stack_file), before, "same objects taken back");
    w.cairn(&["plan", stack_file, "--detailed-exitcode"])
        .code(0);
    plan.stdout
}

#[tokio::test]
async fn ecs_lambda_stack_applies_in_order_replans_clean_and_destroys() {
    let w = World::start().await;
    w.shipped("ecs-lambda.toml");
    w.cairn(&["validate", "ecs-lambda.toml"]).ok();
    let apply = w
        .cairn(&["apply", "ecs-lambda.toml", "--auto-approve"])
        .ok();

    // Order, from the progress lines: every role (and the repository) is
    // created before the task definition starts; the task definition and
    // the cluster before the Lambda function starts.
    let td_start = apply.line_of("+ aws_ecs_task_definition.worker: create…");
    let fn_start = apply.line_of("+ aws_lambda_function.starter: create…");
    for done in [
        "aws_iam_role.task_execution: created",
        "aws_iam_role.task: created",
        "aws_ecr_repository.worker: created",
    ] {
        assert!(apply.line_of(done) < td_start, "{done}\n{}", apply.stderr);
    }
    for done in [
        "aws_iam_role.lambda: created",
        "aws_ecs_cluster.main: created",
        "aws_ecs_task_definition.worker: created",
    ] {
        assert!(apply.line_of(done) < fn_start, "{done}\n{}", apply.stderr);
    }

    // Every object, through the API.
    for name in ECS_LAMBDA_ROLES {
        let tags = w.role_tags(name).await.expect("role exists");
        assert!(
            tags.contains(&("cairn:stack".into(), "ecs-lambda".into())),
            "{name}: {tags:?}"
        );
    }
    let tags = w.role_tags("starter-lambda").await.unwrap();
    assert!(tags.contains(&("app".into(), "starter".into())), "{tags:?}");
    assert_eq!(
        w.role_policies("starter-task-execution").await,
        [EXEC_POLICY]
    );
    assert_eq!(w.role_policies("starter-lambda").await, [LAMBDA_BASIC]);
    let inline = w
        .iam()
        .list_role_policies()
        .role_name("starter-lambda")
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["run-task"]);

    let out = outputs(&w, "ecs-lambda.toml");
    let repos = w
        .ecr()
        .describe_repositories()
        .repository_names("starter/worker")
        .send()
        .await
        .unwrap();
    let repo = &repos.repositories()[0];
    assert_eq!(repo.repository_uri(), out["repository_uri"].as_str());
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|c| c.scan_on_push()),
        Some(true)
    );

    let clusters = w
        .ecs()
        .describe_clusters()
        .clusters("starter-cluster")
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.clusters()[0].status(), Some("ACTIVE"));
    assert_eq!(
        clusters.clusters()[0].cluster_arn(),
        out["cluster_arn"].as_str()
    );

    let td = w
        .ecs()
        .describe_task_definition()
        .task_definition("starter-worker")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(
        td.task_definition_arn(),
        out["task_definition_arn"].as_str()
    );
    assert_eq!(
        td.execution_role_arn(),
        out["task_execution_role_arn"].as_str()
    );
    assert_eq!(td.task_role_arn(), out["task_role_arn"].as_str());
    let image = format!("{}:latest", out["repository_uri"].as_str().unwrap());
    assert_eq!(td.container_definitions()[0].image(), Some(image.as_str()));

    let f = w
        .lambda()
        .get_function_configuration()
        .function_name("starter-run-worker")
        .send()
        .await
        .unwrap();
    assert_eq!(f.function_arn(), out["function_arn"].as_str());
    assert_eq!(f.role(), out["lambda_role_arn"].as_str());
    assert_eq!(f.handler(), Some("handler.handler"));
    let vars = f.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(vars["CLUSTER_NAME"], "starter-cluster");
    assert_eq!(
        Some(vars["TASK_DEFINITION_ARN"].as_str()),
        out["task_definition_arn"].as_str()
    );

    // Nothing to do on a second look.
    w.cairn(&["plan", "ecs-lambda.toml", "--detailed-exitcode"])
        .code(0);

    // Destroy: the function goes before the roles it runs as.
    let destroy = w
        .cairn(&["destroy", "ecs-lambda.toml", "--auto-approve"])
        .ok();
    let fn_gone = destroy.line_of("aws_lambda_function.starter: deleted");
    assert!(fn_gone < destroy.line_of("- aws_iam_role.lambda: delete…"));
    assert!(
        destroy.line_of("aws_ecs_task_definition.worker: deleted")
            < destroy.line_of("- aws_iam_role.task_execution: delete…")
    );
    assert_eq!(w.role_names().await, Vec::<String>::new());
    assert_eq!(w.repository_names().await, Vec::<String>::new());
    let clusters = w
        .ecs()
        .describe_clusters()
        .clusters("starter-cluster")
        .send()
        .await
        .unwrap();
    assert!(
        clusters
            .clusters()
            .iter()
            .all(|c| c.status() == Some("INACTIVE")),
        "{clusters:?}"
    );
    let td = w
        .ecs()
        .describe_task_definition()
        .task_definition(out["task_definition_arn"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        td.task_definition()
            .and_then(|t| t.status())
            .map(|s| s.as_str()),
        Some("INACTIVE")
    );
    assert!(
        w.lambda()
            .get_function()
            .function_name("starter-run-worker")
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        w.state("ecs-lambda").await["resources"],
        serde_json::json!({})
    );
}

#[tokio::test]
async fn a_no_change_plan_makes_few_read_calls_only() {
    let w = World::start().await;
    w.shipped("ecs-lambda.toml");
    w.cairn(&["apply", "ecs-lambda.toml", "--auto-approve"])
        .ok();

    let proxy = CountingProxy::start(w.server.port());
    let plan = w.cairn_at(
        &proxy.endpoint(),
        &["plan", "ecs-lambda.toml", "--detailed-exitcode"],
    );
    let calls = proxy.take();
    plan.code(0);
    let listing: Vec<String> = calls.iter().map(|c| c.action.clone()).collect();
    eprintln!("{} calls: {listing:#?}", calls.len());
    let mutating: Vec<&String> = calls
        .iter()
        .filter(|c| c.is_mutating())
        .map(|c| &c.action)
        .collect();
    assert!(mutating.is_empty(), "mutating calls: {mutating:?}");
    // 7 resources: three roles (3 reads each, plus one per inline policy),
    // the repository (2), cluster, task definition and function (1 each):
    // 15. The `unique` name of the task execution role is not probed: state
    // owns that role, so its `if_exists` chain cannot run.
    assert!(!calls.is_empty(), "the plan read nothing live");
    assert!(calls.len() <= 3 * 7, "{} calls: {listing:#?}", calls.len());
    // Each object is read once: one describe per object, no second look.
    let count = |action: &str| listing.iter().filter(|a| a.as_str() == action).count();
    for (action, n) in [
        ("iam:GetRole", 3),
        ("ecr:DescribeRepositories", 1),
        ("ecs:DescribeClusters", 1),
        ("ecs:DescribeTaskDefinition", 1),
        ("GET /2015-03-31/functions/starter-run-worker", 1),
    ] {
        assert_eq!(count(action), n, "{action}: {listing:#?}");
    }
}

#[tokio::test]
async fn drift_in_tags_shows_as_an_update_and_apply_fixes_it() {
    let w = World::start().await;
    w.write(
        "stack.toml",
        r#"
[stack]
name = "drift"
[provider.aws]
region = "us-east-1"
[resource.aws_ecr_repository.app]
name = "drift/app"
tags = { team = "core" }
"#,
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let arn = w.state("drift").await["resources"]["aws_ecr_repository.app"]["attributes"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    w.ecr()
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecr::types::Tag::builder()
                .key("team")
                .value("someone-else")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let plan = w
        .cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(2);
    assert!(
        plan.stdout.contains("~ aws_ecr_repository.app update"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(r#"~ tags = {"team":"someone-else"} → {"team":"core"}"#),
        "{}",
        plan.stdout
    );
    w.cairn(&["apply", "stack.toml", "--auto-approve"]).ok();
    let tags = w.repository_tags(&arn).await;
    assert!(tags.contains(&("team".into(), "core".into())), "{tags:?}");
    assert!(tags.iter().any(|(k, _)| k == "cairn:stack"), "{tags:?}");
    w.cairn(&["plan", "stack.toml", "--detailed-exitcode"])
        .code(0);
}

#[tokio::test]
async fn a_failure_mid_apply_rolls_back_every_object_the_run_created() {
    let w = World::start().await;
    // The repository's name is only known at apply time (it holds a
    // computed ARN), so validation cannot reject it: CreateRepository does.
    w.write(
        "stack.toml",
        r#"
[stack]
name = "rb"
[provider.aws]
region = "us-east-1"
[resource.aws_iam_role.first]
name = "rb-first"
assume_role_services = ["lambda.amazonaws.com"]
[resource.aws_s3_bucket.first]
name = "rb-first-bucket"
[resource.aws_ecr_repository.bad]
name = "Bad_Name-${aws_s3_bucket.first.arn}"
tags = { role = "${aws_iam_role.first.arn}" }
"#,
    );
    w.cairn(&["validate", "stack.toml"]).ok();
    let run = w.cairn(&["apply", "stack.toml", "--auto-approve"]).code(1);
    // Both were created before the failure, then deleted again.
    assert!(
        run.line_of("aws_iam_role.first: created") < run.line_of("aws_ecr_repository.bad: create…")
    );
    assert!(
        run.line_of("aws_s3_bucket.first: created")
            < run.line_of("aws_ecr_repository.bad: create…")
    );
    assert!(
        run.stderr
            .contains("aws_ecr_repository.bad: create failed: ecr:CreateRepository"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Rolled back 2 resources"),
        "{}",
        run.stderr
    );
    assert!(w.role_tags("rb-first").await.is_none(), "role left behind");
    assert_eq!(w.bucket_names().await, Vec::<String>::new());
    assert_eq!(w.repository_names().await, Vec::<String>::new());
    assert_eq!(w.state("rb").await["resources"], serde_json::json!({}));
}

#[tokio::test]
async fn losing_the_state_file_creates_no_duplicates() {
    let w = World::start().await;
    w.shipped("ecs-lambda.toml");
    let first = outputs_after_apply(&w);
    lose_state_and_take_back(&w, "ecs-lambda.toml", "ecs-lambda", 7, &first);

    assert_eq!(w.role_names().await, ECS_LAMBDA_ROLES);
    assert_eq!(w.repository_names().await, ["starter/worker"]);
    let revisions = w
        .ecs()
        .list_task_definitions()
        .family_prefix("starter-worker")
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 1, "{revisions:?}");
    let functions = w.lambda().list_functions().send().await.unwrap();
    assert_eq!(functions.functions().len(), 1);
    let clusters = w.ecs().list_clusters().send().await.unwrap();
    assert_eq!(clusters.cluster_arns().len(), 1);
}

fn outputs_after_apply(w: &World) -> Value {
    w.cairn(&["apply", "ecs-lambda.toml", "--auto-approve"])
        .ok();
    outputs(w, "ecs-lambda.toml")
}

#[path = "aws_e2e/if_exists.rs"]
mod if_exists;

#[cfg(feature = "aws-ec2")]
#[path = "aws_e2e/network.rs"]
mod network;

#[test]
fn every_shipped_aws_stack_validates_in_every_env() {
    for stack in [
        "ecs-lambda.toml",
        "existing-setup.toml",
        "eks-platform.toml",
    ] {
        for env in ["default", "production"] {
            let path = harness::stacks_dir().join(stack);
            let mut args = vec!["validate".to_string(), path.display().to_string()];
            if env != "default" {
                args.extend(["--env".to_string(), env.to_string()]);
            }
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(&args)
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("is valid"),
                "{stack} --env {env}\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[tokio::test]
async fn iam_propagation_delays_and_throttling_are_retried_until_they_pass() {
    // moto never delays or throttles: the proxy answers the first calls
    // with the errors AWS gives in those cases, then lets them through.
    let w = World::start().await;
    w.shipped("ecs-lambda.toml");
    let proxy = CountingProxy::with_faults(
        w.server.port(),
        vec![
            Fault::role_not_assumable(2),
            Fault::iam_throttling("CreateRole", 4),
        ],
    );
    let apply = w
        .cairn_at(
            &proxy.endpoint(),
            &["apply", "ecs-lambda.toml", "--auto-approve"],
        )
        .ok();
    assert_eq!(proxy.faults_left(), [0, 0], "every fault was answered");
    assert!(
        apply
            .stderr
            .contains("cannot be assumed by Lambda. — retrying in"),
        "{}",
        apply.stderr
    );
    let function = w
        .lambda()
        .get_function()
        .function_name("starter-run-worker")
        .send()
        .await
        .unwrap();
    assert!(function.configuration().is_some());
    assert_eq!(w.role_names().await.len(), 3);
}

#[tokio::test]
async fn a_propagation_delay_beyond_the_retry_budget_fails_and_rolls_back() {
    let w = World::start().await;
    w.shipped("ecs-lambda.toml");
    let proxy =
        CountingProxy::with_faults(w.server.port(), vec![Fault::role_not_assumable(10_000)]);
    let run = w
        .cairn_at(
            &proxy.endpoint(),
            &[
                "apply",
                "ecs-lambda.toml",
                "--auto-approve",
                "--retry-timeout",
                "2",
            ],
        )
        .code(1);
    assert!(
        run.stderr
            .contains("aws_lambda_function.starter: create failed: lambda:CreateFunction"),
        "{}",
        run.stderr
    );
    let attempts = proxy
        .take()
        .iter()
        .filter(|c| c.action == "POST /2015-03-31/functions")
        .count();
    assert!(attempts >= 2, "retried before giving up: {attempts}");
    assert!(run.stderr.contains("Rolled back"), "{}", run.stderr);
    assert_eq!(w.role_names().await, Vec::<String>::new());
}
