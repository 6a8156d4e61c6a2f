//! The example stack of the format's documentation resolves, with
//! environments and `--var` overrides applied and dependencies exact.

use std::path::Path;

use cairn::model::{Address, Policy, ResolveOptions, Stack, StateConfig, resolve};
use serde_json::json;

const DEMO: &str = "tests/fixtures/valid/demo.toml";

fn demo(opts: &ResolveOptions) -> Stack {
    let raw = cairn::stack::load(Path::new(DEMO)).unwrap();
    match resolve(&raw, opts) {
        Ok(s) => s,
        Err(e) => panic!("{}", cairn::diagnostic::render::render_human(&e.0, false)),
    }
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

fn resource<'s>(stack: &'s Stack, address: &str) -> &'s cairn::model::Resource {
    stack
        .resources
        .iter()
        .find(|r| r.address == addr(address))
        .unwrap()
}

#[test]
fn demo_resolves_with_defaults() {
    let s = demo(&ResolveOptions::default());
    assert_eq!(s.name, "demo");
    assert_eq!(s.env, "default");
    assert_eq!(s.dir, Path::new("tests/fixtures/valid"));
    let order: Vec<String> = s.resources.iter().map(|r| r.address.to_string()).collect();
    assert_eq!(
        order,
        [
            "sim_role.exec",
            "sim_cluster.main",
            "local_file.config",
            "sim_task.api"
        ]
    );

    let exec = resource(&s, "sim_role.exec");
    assert_eq!(exec.attrs["name"], json!("demo-exec"));
    assert_eq!(exec.if_exists, [Policy::Reuse, Policy::Unique]);
    assert!(!exec.attrs.contains_key("if_exists"));
    assert!(exec.depends_on.is_empty());

    let main = resource(&s, "sim_cluster.main");
    assert_eq!(main.attrs["size"], json!(2));
    assert_eq!(main.if_exists, [Policy::Fail]);
    assert!(main.depends_on.is_empty());

    let config = resource(&s, "local_file.config");
    assert_eq!(config.attrs["path"], json!("out/demo.json"));
    assert_eq!(
        config.attrs["content"],
        json!("{\"cluster\": \"${sim_cluster.main.id}\"}")
    );
    assert_eq!(config.depends_on, [addr("sim_cluster.main")]);

    let api = resource(&s, "sim_task.api");
    assert_eq!(
        api.depends_on,
        [
            addr("local_file.config"),
            addr("sim_cluster.main"),
            addr("sim_role.exec")
        ]
    );
    assert_eq!(api.attrs["role"], json!("${sim_role.exec.arn}"));
    assert!(!api.attrs.contains_key("depends_on"));
    let keys: Vec<&String> = api.attr_spans.keys().collect();
    assert_eq!(keys, ["cluster", "name", "role"]);
    assert_eq!(
        &s.source.text[api.attr_spans.get("role").unwrap().clone()],
        "\"${sim_role.exec.arn}\""
    );
    assert_eq!(&s.source.text[api.span.clone()], "[resource.sim_task.api]");

    let sim = &s.providers["sim"];
    assert_eq!(sim.settings["world"], json!(".cairn/world.json"));
    assert_eq!(sim.settings["latency_ms"], json!(20));
    assert_eq!(&s.source.text[sim.span.clone()], "[provider.sim]");

    assert_eq!(s.checks.len(), 1);
    assert_eq!(s.checks[0].name, "config_written");
    assert_eq!(s.checks[0].command, "test -s out/demo.json");
    assert_eq!((s.checks[0].retries, s.checks[0].interval_s), (0, 1.0));
    assert_eq!(s.outputs["task"], json!("${sim_task.api.id}"));
    assert_eq!(s.state, StateConfig::Local);
    assert!(s.sensitive_values.is_empty());
}

#[test]
fn production_env_and_cli_vars() {
    let prod = demo(&ResolveOptions {
        env: Some("production".into()),
        ..Default::default()
    });
    assert_eq!(prod.env, "production");
    assert_eq!(
        resource(&prod, "sim_role.exec").attrs["name"],
        json!("prod-exec")
    );
    assert_eq!(
        resource(&prod, "local_file.config").attrs["path"],
        json!("out/prod.json")
    );
    assert_eq!(prod.checks[0].command, "test -s out/prod.json");

    // `--var` wins over the environment; numbers stay numbers.
    let s = demo(&ResolveOptions {
        env: Some("production".into()),
        vars: vec![
            ("prefix".into(), "cli".into()),
            ("replicas".into(), "5".into()),
        ],
        ..Default::default()
    });
    assert_eq!(resource(&s, "sim_task.api").attrs["name"], json!("cli-api"));
    assert_eq!(resource(&s, "sim_cluster.main").attrs["size"], json!(5));

    let s = demo(&ResolveOptions {
        vars: vec![("replicas".into(), "many".into())],
        ..Default::default()
    });
    assert_eq!(
        resource(&s, "sim_cluster.main").attrs["size"],
        json!("many")
    );
}

#[test]
fn unknown_env_is_an_error() {
    let raw = cairn::stack::load(Path::new(DEMO)).unwrap();
    let opts = ResolveOptions {
        env: Some("staging".into()),
        ..Default::default()
    };
    let e = resolve(&raw, &opts).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].help.as_deref().unwrap().contains("`production`"));
}
