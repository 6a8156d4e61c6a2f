//! The `[provider.aws]` settings and the SDK clients built from them.
//!
//! Credentials, region and endpoint come from the standard AWS chain
//! (environment, profiles, `AWS_ENDPOINT_URL`); the settings only override.
//! TLS uses rustls with the `ring` crypto provider (no aws-lc, no old hyper).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::model::Attrs;

/// The settings `[provider.aws]` accepts.
pub const SETTINGS: &[&str] = &["region", "profile", "endpoint_url", "retry_timeout_s"];

/// Default eventual-consistency retry budget.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(120);

/// Parsed `[provider.aws]` settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub retry_timeout: Option<Duration>,
}

/// Checks the settings: (setting, message) for each problem.
pub fn validate_config(settings: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (key, value) in settings {
        let ok = match key.as_str() {
            "region" | "profile" | "endpoint_url" => {
                value.as_str().is_some_and(|s| !s.trim().is_empty())
            }
            "retry_timeout_s" => value.as_f64().is_some_and(|n| n >= 0.0 && n.is_finite()),
            _ => {
                problems.push((
                    key.clone(),
                    format!(
                        "unknown setting `{key}` of provider `aws`: known settings are {}",
                        SETTINGS.join(", ")
                    ),
                ));
                continue;
            }
        };
        if !ok {
            let expected = match key.as_str() {
                "retry_timeout_s" => "a non-negative number of seconds",
                "endpoint_url" => "a URL (string)",
                _ => "a non-empty string",
            };
            problems.push((key.clone(), format!("`{key}` must be {expected}")));
        }
    }
    if let Some(url) = settings.get("endpoint_url").and_then(|v| v.as_str())
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push((
            "endpoint_url".into(),
            format!("`endpoint_url` must start with http:// or https:// (got `{url}`)"),
        ));
    }
    problems
}

impl Settings {
    /// Parses settings, failing with the first problem `validate_config` finds.
    pub fn parse(settings: &Attrs) -> Result<Settings, String> {
        let problems = validate_config(settings);
        if let Some((key, message)) = problems.into_iter().next() {
            return Err(if key.is_empty() {
                message
            } else {
                format!("{key}: {message}")
            });
        }
        let text = |k: &str| settings.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Settings {
            region: text("region"),
            profile: text("profile"),
            endpoint_url: text("endpoint_url"),
            retry_timeout: settings
                .get("retry_timeout_s")
                .and_then(|v| v.as_f64())
                .map(Duration::from_secs_f64),
        })
    }
}

/// One client per service the provider uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub eks: aws_sdk_eks::Client,
    #[cfg(feature = "aws-ec2")]
    pub ec2: aws_sdk_ec2::Client,
    /// The region the clients use.
    pub region: String,
}

/// Loads the shared SDK configuration and builds the clients.
pub async fn connect(settings: &Settings) -> Result<Clients, String> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile.clone());
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let config = loader.load().await;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
        "no AWS region: set `region` in [provider.aws], AWS_REGION, or a profile region".to_string()
    })?;
    // A custom endpoint (moto, LocalStack, MinIO) rarely serves
    // virtual-hosted bucket names.
    let path_style = config.endpoint_url().is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(path_style)
        .build();
    Ok(Clients {
        iam: aws_sdk_iam::Client::new(&config),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        ecs: aws_sdk_ecs::Client::new(&config),
        ecr: aws_sdk_ecr::Client::new(&config),
        lambda: aws_sdk_lambda::Client::new(&config),
        cloudformation: aws_sdk_cloudformation::Client::new(&config),
        eks: aws_sdk_eks::Client::new(&config),
        #[cfg(feature = "aws-ec2")]
        ec2: aws_sdk_ec2::Client::new(&config),
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked() {
        let good = Attrs::from([
            ("region".into(), json!("eu-west-1")),
            ("retry_timeout_s".into(), json!(30)),
            ("endpoint_url".into(), json!("http://127.0.0.1:5000")),
        ]);
        assert!(validate_config(&good).is_empty());
        let parsed = Settings::parse(&good).unwrap();
        assert_eq!(parsed.retry_timeout, Some(Duration::from_secs(30)));
        let bad = Attrs::from([
            ("regoin".into(), json!("x")),
            ("retry_timeout_s".into(), json!(-1)),
            ("endpoint_url".into(), json!("localhost")),
        ]);
        let problems = validate_config(&bad);
        let mut keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["endpoint_url", "regoin", "retry_timeout_s"]);
        assert!(Settings::parse(&bad).is_err());
    }
}
