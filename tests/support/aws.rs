//! Shared setup for the AWS provider tests: one moto server per test
//! binary, the environment pointing the SDK at it, and helpers to build the
//! provider and compare desired with live attributes as the engine does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use cairn::model::{Address, Attrs};
use cairn::provider::aws::{AwsProvider, normalize};
use cairn::provider::{CreateRequest, LiveObject, ProviderContext, ownership_tags};
use serde_json::json;

use super::moto::MotoServer;

static SERVER: OnceLock<MotoServer> = OnceLock::new();

pub const STACK: &str = "teststack";
pub const ENV: &str = "default";

/// The binary's moto server; the first call starts it and points the SDK's
/// environment at it (before any test reads the environment).
pub fn server() -> &'static MotoServer {
    SERVER.get_or_init(|| {
        let server = MotoServer::start();
        for (k, v) in server.env() {
            // SAFETY: runs once, inside the OnceLock initialiser, before any
            // test has built an SDK client (every test calls `server()` first).
            unsafe { std::env::set_var(k, v) };
        }
        server
    })
}

/// A provider talking to the moto server, with `dir` as the stack folder.
pub async fn provider(dir: &Path) -> AwsProvider {
    let server = server();
    let settings = Attrs::from([
        ("endpoint_url".into(), json!(server.endpoint())),
        ("region".into(), json!("us-east-1")),
        ("retry_timeout_s".into(), json!(30)),
    ]);
    let ctx = ProviderContext {
        stack: STACK.into(),
        env: ENV.into(),
        dir: dir.to_path_buf(),
    };
    AwsProvider::new(&settings, &ctx).await.expect("provider")
}

/// A raw SDK configuration for "manual" objects made outside cairn.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(server().endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

pub fn addr(type_name: &str, name: &str) -> Address {
    Address::new(type_name, name)
}

pub fn attrs(value: serde_json::Value) -> Attrs {
    serde_json::from_value(value).expect("attributes")
}

pub fn create_request(address: &Address, attributes: Attrs) -> CreateRequest {
    CreateRequest {
        tags: ownership_tags(STACK, ENV, address),
        address: address.clone(),
        attributes,
    }
}

/// The desired attributes that differ from live ones, comparing as the
/// engine should: only keys the stack sets, both sides normalised.
pub fn diff(type_name: &str, desired: &Attrs, live: &LiveObject) -> BTreeMap<String, String> {
    let d = normalize(type_name, desired);
    let l = normalize(type_name, &live.attributes);
    d.iter()
        .filter(|(k, v)| l.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), format!("desired {v} live {:?}", l.get(k))))
        .collect()
}

/// A unique-enough name for one test (tests share one server).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}
