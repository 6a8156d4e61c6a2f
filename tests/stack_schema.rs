//! The JSON Schema of the stack format: the committed file is current, and
//! it accepts valid stacks and rejects malformed ones.
//!
//! `CAIRN_UPDATE_SCHEMA=1 cargo test --test stack_schema` rewrites
//! `schemas/stack.schema.json`.

use std::path::Path;

use serde_json::{Value, json};

fn schema_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/stack.schema.json")
}

fn rendered() -> String {
    let mut text = serde_json::to_string_pretty(&cairn::stack::json_schema()).unwrap();
    text.push('\n');
    text
}

#[test]
fn schema_file_is_current() {
    let want = rendered();
    if std::env::var("CAIRN_UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(schema_path(), &want).unwrap();
    }
    let have = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        have == want,
        "schemas/stack.schema.json is stale: run `CAIRN_UPDATE_SCHEMA=1 cargo test --test stack_schema`"
    );
}

fn validator() -> jsonschema::Validator {
    let schema = cairn::stack::json_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::draft7::new(&schema).unwrap()
}

fn toml_json(text: &str) -> Value {
    toml::from_str::<Value>(text).unwrap()
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| e.to_string()).collect()
}

#[test]
fn accepts_the_valid_stacks() {
    let v = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let doc = toml_json(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(errors(&v, &doc), Vec::<String>::new(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn rejects_malformed_stacks() {
    let v = validator();
    let base = json!({"stack": {"name": "demo"}});
    assert!(v.is_valid(&base));
    let bad = [
        json!({}),
        json!({"stack": {"name": "my stack"}}),
        json!({"stack": {"name": "d"}, "resorce": {}}),
        json!({"stack": {"name": "d"}, "resource": {"sim_role": {"r": {"name": "x", "if_exists": "resue"}}}}),
        json!({"stack": {"name": "d"}, "resource": {"sim_role": {"r": {"name": "x", "depends_on": ["nodot"]}}}}),
        json!({"stack": {"name": "d"}, "resource": {"local_file": {"f": {"pth": "x"}}}}),
        json!({"stack": {"name": "d"}, "resource": {"local_file": {"f": {"path": 1}}}}),
        json!({"stack": {"name": "d"}, "check": {"c": {"retries": 1}}}),
        json!({"stack": {"name": "d"}, "state": {"backend": "s3", "bucket": "b"}}),
        json!({"stack": {"name": "d"}, "state": {"backend": "s4"}}),
        json!({"stack": {"name": "d"}, "provider": {"sim": {"wrld": "w"}}}),
        json!({"stack": {"name": "d"}, "provider": {"gcp": {}}}),
        json!({"stack": {"name": "d"}, "env": {"prod": {"prefix": "p"}}}),
        json!({"stack": {"name": "d", "sensitive": ["PASSWORD"]}}),
    ];
    for doc in bad {
        assert!(!v.is_valid(&doc), "accepted {doc}");
    }
    let good = [
        json!({"stack": {"name": "d"}, "resource": {"sim_role": {"r": {"name": "x", "if_exists": ["reuse", "unique"], "anything": {"a": 1}}}}}),
        json!({"stack": {"name": "d"}, "resource": {"local_file": {"f": {"path": "p", "depends_on": ["sim_role.r"]}}}}),
        json!({"stack": {"name": "d"}, "state": {"backend": "s3", "bucket": "b", "key": "k", "region": "r"}}),
        json!({"stack": {"name": "d"}, "state": {"dir": ".state"}}),
        json!({"stack": {"name": "d", "sensitive": ["env.PW", "var.token"]}, "check": {"c": {"command": "true", "interval_s": 0.5}}}),
    ];
    for doc in good {
        assert_eq!(errors(&v, &doc), Vec::<String>::new(), "{doc}");
    }
}

#[test]
fn attributes_carry_descriptions_for_completion() {
    let schema = cairn::stack::json_schema();
    let path = &schema["properties"]["resource"]["properties"]["local_file"]["additionalProperties"]
        ["properties"]["path"];
    assert_eq!(path["type"], "string");
    assert!(path["description"].as_str().unwrap().contains("relative"));
    assert!(
        schema["definitions"]["StackTable"]["properties"]["name"]["description"]
            .as_str()
            .is_some()
    );
}
