//! One end-to-end test's world: its own moto server, a temporary stack
//! folder, the `cairn` binary pointed at the server, and raw SDK clients to
//! make "hand-made" objects and check what cairn did.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::moto::MotoServer;

pub use super::run::Run;

pub struct World {
    pub server: MotoServer,
    pub dir: tempfile::TempDir,
    config: aws_config::SdkConfig,
}

/// The shipped `stacks/` folder.
pub fn stacks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl World {
    /// A fresh moto server and an empty stack folder.
    pub async fn start() -> World {
        let server = MotoServer::start();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(server.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        World {
            server,
            dir: tempfile::tempdir().unwrap(),
            config,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Copies a shipped stack and its fixtures into the folder.
    pub fn shipped(&self, file: &str) -> &World {
        std::fs::copy(stacks_dir().join(file), self.path(file)).unwrap();
        copy_dir(&stacks_dir().join("fixtures"), &self.path("fixtures"));
        self
    }

    /// Writes a file of the folder.
    pub fn write(&self, rel: &str, text: &str) -> &World {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Runs `cairn` in the folder against the server.
    pub fn cairn(&self, args: &[&str]) -> Run {
        self.cairn_at(&self.server.endpoint(), args)
    }

    /// Runs `cairn` with another endpoint (a proxy in front of the server).
    pub fn cairn_at(&self, endpoint: &str, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .current_dir(self.dir.path())
            .envs(self.server.env())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .output()
            .expect("run cairn");
        Run::from(output)
    }

    /// Deletes every state file of `stack` (the state file, its backup and
    /// the journal, whose committed records are state too), as a lost
    /// laptop or a wiped CI cache would; returns how many there were.
    pub fn lose_state(&self, stack: &str) -> usize {
        let prefix = format!("{stack}.default.");
        let mut lost = 0;
        for entry in std::fs::read_dir(self.path(".cairn")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && !name.ends_with(".lock") {
                std::fs::remove_file(&path).unwrap();
                lost += 1;
            }
        }
        lost
    }

    /// The stack's committed state (the state file with the journal's
    /// committed records replayed), loaded as cairn loads it.
    pub async fn state(&self, stack: &str) -> serde_json::Value {
        use cairn::state::Backend;
        let backend = cairn::state::LocalBackend::new(self.path(".cairn"), stack, "default");
        let loaded = backend.load().await.expect("state loads");
        serde_json::to_value(&loaded.state).expect("state encodes")
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config)
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config)
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.config)
    }

    #[cfg(feature = "aws-ec2")]
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }

    #[cfg_attr(not(feature = "aws-ec2"), allow(dead_code))]
    pub fn eks(&self) -> aws_sdk_eks::Client {
        aws_sdk_eks::Client::new(&self.config)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A role made by hand (no cairn tags) that `ecs-tasks` may assume.
    pub async fn manual_role(&self, name: &str, managed: &[&str]) {
        let iam = self.iam();
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(TRUST_ECS_TASKS)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("owner")
                    .value("ops")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        for arn in managed {
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(*arn)
                .send()
                .await
                .unwrap();
        }
    }

    /// The role's tags, or `None` if it does not exist.
    pub async fn role_tags(&self, name: &str) -> Option<Vec<(String, String)>> {
        let out = self.iam().get_role().role_name(name).send().await.ok()?;
        let role = out.role()?;
        let mut tags: Vec<(String, String)> = role
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        Some(tags)
    }

    /// Managed policies attached to a role.
    pub async fn role_policies(&self, name: &str) -> Vec<String> {
        let out = self
            .iam()
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        let mut arns: Vec<String> = out
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        arns.sort();
        arns
    }

    /// Names of all roles.
    pub async fn role_names(&self) -> Vec<String> {
        let out = self.iam().list_roles().send().await.unwrap();
        let mut names: Vec<String> = out
            .roles()
            .iter()
            .map(|r| r.role_name().to_string())
            .collect();
        names.sort();
        names
    }

    /// Names of all ECR repositories.
    pub async fn repository_names(&self) -> Vec<String> {
        let out = self.ecr().describe_repositories().send().await.unwrap();
        let mut names: Vec<String> = out
            .repositories()
            .iter()
            .filter_map(|r| r.repository_name().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Tags of an ECR repository.
    pub async fn repository_tags(&self, arn: &str) -> Vec<(String, String)> {
        let out = self
            .ecr()
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let mut tags: Vec<(String, String)> = out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        tags
    }

    /// Whether a bucket keeps versions. moto 5.2 names the answer's root
    /// element differently from S3, which the SDK refuses to parse: then
    /// the raw body of the successful answer is read instead.
    #[cfg_attr(not(feature = "aws-ec2"), allow(dead_code))]
    pub async fn bucket_versioning(&self, name: &str) -> bool {
        match self.s3().get_bucket_versioning().bucket(name).send().await {
            Ok(out) => out.status().map(|s| s.as_str()) == Some("Enabled"),
            Err(e) => {
                let raw = e.raw_response().expect("an answer from the server");
                assert_eq!(raw.status().as_u16(), 200, "{e:?}");
                let body = raw.body().bytes().unwrap_or_default();
                String::from_utf8_lossy(body).contains("<Status>Enabled</Status>")
            }
        }
    }

    /// Names of all S3 buckets.
    pub async fn bucket_names(&self) -> Vec<String> {
        let out = self.s3().list_buckets().send().await.unwrap();
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect()
    }
}

pub const TRUST_ECS_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

pub const EXEC_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
