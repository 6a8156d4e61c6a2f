//! Helpers shared by the S3 state backend tests: buckets on the moto
//! server, raw object access behind the backend's back, journal records.
#![allow(dead_code)]

use aws_sdk_s3::primitives::ByteStream;
use cairn::model::Address;
use cairn::provider::Operation;
use cairn::state::{Backend, JournalEntry, Ownership, ResourceState, S3Backend, State};
use serde_json::json;

use crate::support::aws::{sdk_config, server, unique};

pub const KEY: &str = "stacks/demo.dev.state.json";

pub async fn raw() -> aws_sdk_s3::Client {
    let config = sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// A new, empty bucket.
pub async fn bucket() -> String {
    server();
    let name = unique("state");
    raw()
        .await
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    name
}

pub async fn backend(bucket: &str) -> S3Backend {
    backend_for(bucket, "demo").await
}

pub async fn backend_for(bucket: &str, stack: &str) -> S3Backend {
    S3Backend::connect(
        bucket,
        KEY,
        Some("us-east-1"),
        Some(&server().endpoint()),
        stack,
        "dev",
    )
    .await
    .unwrap()
}

pub async fn keys(bucket: &str) -> Vec<String> {
    let out = raw()
        .await
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// The object under `key`, if there is one.
pub async fn try_get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = raw()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

pub async fn get(bucket: &str, key: &str) -> Vec<u8> {
    try_get(bucket, key)
        .await
        .unwrap_or_else(|| panic!("no object s3://{bucket}/{key}"))
}

pub async fn put_raw(bucket: &str, key: &str, body: Vec<u8>) {
    raw()
        .await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

pub fn serial_of(bytes: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["serial"]
        .as_u64()
        .unwrap()
}

pub fn addr(name: &str) -> Address {
    Address::new("sim_role", name)
}

pub fn resource(id: &str) -> ResourceState {
    ResourceState {
        id: id.to_string(),
        ownership: Ownership::Created,
        attributes: cairn::model::Attrs::from([("name".to_string(), json!(id))]),
        depends_on: vec![],
        identity: Some(id.to_string()),
    }
}

pub fn put(name: &str, id: &str) -> JournalEntry {
    JournalEntry::Put {
        address: addr(name),
        resource: resource(id),
    }
}

pub fn intent(name: &str) -> JournalEntry {
    JournalEntry::Intent {
        address: addr(name),
        operation: Operation::Create,
        identity: Some(name.to_string()),
        id: None,
    }
}

pub async fn commit_next(b: &S3Backend, mut state: State) -> State {
    state.serial += 1;
    b.commit(&state).await.unwrap();
    state
}
