//! Unit tests of resolution on small stacks written inline.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::model::{Address, Policy, StateConfig};

fn raw(text: &str) -> RawStack {
    crate::stack::parse("stacks/t.toml", text.to_string()).unwrap()
}

fn ok(text: &str) -> Stack {
    match resolve(&raw(text), &ResolveOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("{}", crate::diagnostic::render::render_human(&e.0, false)),
    }
}

/// The codes of the errors, and the text each primary label points at.
fn errors(text: &str, opts: &ResolveOptions) -> Vec<(&'static str, String)> {
    let r = raw(text);
    let Err(e) = resolve(&r, opts) else {
        panic!("expected errors")
    };
    e.0.iter()
        .map(|d| {
            let at = d
                .labels
                .first()
                .map(|l| r.source.text[l.span.clone()].to_string())
                .unwrap_or_default();
            (d.code, at)
        })
        .collect()
}

fn err(text: &str) -> Vec<(&'static str, String)> {
    errors(text, &ResolveOptions::default())
}

const HEAD: &str = "[stack]\nname = \"t\"\n";

#[test]
fn variables_env_and_cli_overrides() {
    let text = format!(
        "{HEAD}[vars]\nprefix = \"demo\"\nn = 2\n[env.prod.vars]\nprefix = \"prod\"\n\
         [resource.sim_a.x]\nname = \"${{var.prefix}}-x\"\nsize = \"${{var.n}}\"\nlit = \"$${{var.n}}\"\n"
    );
    let s = ok(&text);
    assert_eq!(s.env, "default");
    assert_eq!(s.resources[0].attrs["name"], json!("demo-x"));
    assert_eq!(s.resources[0].attrs["size"], json!(2));
    assert_eq!(s.resources[0].attrs["lit"], json!("$${var.n}"));
    let opts = ResolveOptions {
        env: Some("prod".into()),
        vars: vec![("n".into(), "7".into()), ("n".into(), "true".into())],
        ..Default::default()
    };
    let s = resolve(&raw(&text), &opts).unwrap();
    assert_eq!(s.env, "prod");
    assert_eq!(s.resources[0].attrs["name"], json!("prod-x"));
    assert_eq!(s.resources[0].attrs["size"], json!(true));
    let opts = ResolveOptions {
        vars: vec![("prefix".into(), "a${b".into()), ("n".into(), "1.5".into())],
        ..Default::default()
    };
    let s = resolve(&raw(&text), &opts).unwrap();
    assert_eq!(s.resources[0].attrs["name"], json!("a$${b-x"));
    assert_eq!(s.resources[0].attrs["size"], json!(1.5));
}

#[test]
fn unknown_env_lists_known_ones() {
    let text = format!("{HEAD}[env.production.vars]\na = 1\n[env.staging.vars]\na = 2\n");
    let opts = ResolveOptions {
        env: Some("prodution".into()),
        ..Default::default()
    };
    let e = resolve(&raw(&text), &opts).unwrap_err();
    assert_eq!(e.0[0].code, "cairn::unknown_env");
    let help = e.0[0].help.clone().unwrap();
    assert!(help.contains("did you mean `production`?"), "{help}");
    assert!(help.contains("`staging`"), "{help}");
    // Without any [env] table, any env name is fine.
    let opts = ResolveOptions {
        env: Some("anything".into()),
        ..Default::default()
    };
    assert_eq!(resolve(&raw(HEAD), &opts).unwrap().env, "anything");
}

#[test]
fn environment_and_sensitive_values() {
    let text = "[stack]\nname = \"t\"\nsensitive = [\"env.PW\", \"var.token\"]\n[vars]\ntoken = \"tok-${env.USER_X}\"\n\
         [resource.sim_db.d]\nname = \"db\"\npassword = \"${env.PW}\"\n";
    let opts = ResolveOptions {
        environment: BTreeMap::from([
            ("PW".into(), "s3cret".into()),
            ("USER_X".into(), "u".into()),
        ]),
        ..Default::default()
    };
    let s = resolve(&raw(text), &opts).unwrap();
    assert_eq!(s.resources[0].attrs["password"], json!("s3cret"));
    assert_eq!(s.sensitive_values, ["s3cret", "tok-u"]);
    let e = err(text);
    assert_eq!(e[0], ("cairn::unset_env", "${env.USER_X}".into()));
    assert_eq!(e[1], ("cairn::unset_env", "${env.PW}".into()));
}

#[test]
fn depends_on_collects_references_and_explicit_entries() {
    let text = format!(
        "{HEAD}[resource.sim_b.b]\nname = \"b\"\n[resource.sim_a.a]\nname = \"a\"\n\
         x = {{ y = [\"${{sim_b.b.id}}\", \"${{sim_b.b.arn}}\"] }}\ndepends_on = [\"sim_c.c\", \"sim_b.b\"]\n\
         if_exists = \"reuse\"\n[resource.sim_c.c]\nname = \"c\"\n"
    );
    let s = ok(&text);
    let a = &s.resources[1];
    assert_eq!(a.address, Address::new("sim_a", "a"));
    assert_eq!(
        a.depends_on,
        [Address::new("sim_b", "b"), Address::new("sim_c", "c")]
    );
    assert_eq!(a.if_exists, [Policy::Reuse]);
    assert!(!a.attrs.contains_key("depends_on") && !a.attrs.contains_key("if_exists"));
    assert_eq!(&s.source.text[a.span.clone()], "[resource.sim_a.a]");
    assert_eq!(
        &s.source.text[a.attr_spans.get("name").unwrap().clone()],
        "\"a\""
    );
    assert_eq!(s.resources[0].if_exists, [Policy::Fail]);
    let g = cycle::find_cycle(&s.resources);
    assert!(g.is_none());
}

#[test]
fn schema_checks_on_closed_types() {
    let text = format!(
        "{HEAD}[resource.local_file.f]\npth = \"x\"\ncontent = 3\nid = \"i\"\nmode = \"999\"\n"
    );
    let e = err(&text);
    let codes: Vec<&str> = e.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            "cairn::missing_attribute",
            "cairn::unknown_attribute",
            "cairn::attribute_type",
            "cairn::computed_attribute",
            "cairn::invalid_attribute",
        ]
    );
    assert_eq!(e[0].1, "[resource.local_file.f]");
    assert_eq!(e[1].1, "pth");
    assert_eq!(e[2].1, "3");
    assert_eq!(e[4].1, "\"999\"");
}

#[test]
fn unknown_types() {
    let e = err(&format!(
        "{HEAD}[resource.sin_role.r]\nname = \"x\"\n[resource.local_fil.f]\npath = \"p\"\n"
    ));
    assert_eq!(e[0], ("cairn::unknown_type", "sin_role".into()));
    assert_eq!(e[1], ("cairn::unknown_type", "local_fil".into()));
    let r = raw(&format!("{HEAD}[resource.sin_role.r]\nname = \"x\"\n"));
    let d = resolve(&r, &ResolveOptions::default()).unwrap_err();
    assert_eq!(d.0[0].help.as_deref(), Some("did you mean `sim_role`?"));
}

#[test]
fn references_are_checked() {
    let text = format!(
        "{HEAD}[vars]\nprefix = \"p\"\n[resource.sim_a.a]\nname = \"a\"\nextra = 1\n\
         [resource.local_file.f]\npath = \"${{sim_a.b.id}}\"\ncontent = \"${{sim_a.a.extr}}${{sim_a.a.extra}}${{var.prefx}}\"\n\
         depends_on = [\"sim_a.zz\", \"nope\"]\n[output]\no = \"${{local_file.f.idd}}\"\n\
         [check.c]\ncommand = \"${{sim_x.y.id}}\"\n"
    );
    let e = err(&text);
    assert_eq!(
        e,
        [
            ("cairn::undefined_resource", "${sim_a.b.id}".into()),
            ("cairn::undefined_attribute", "${sim_a.a.extr}".into()),
            ("cairn::undefined_var", "${var.prefx}".into()),
            ("cairn::undefined_resource", "\"sim_a.zz\"".into()),
            ("cairn::bad_depends_on", "\"nope\"".into()),
            ("cairn::undefined_attribute", "${local_file.f.idd}".into()),
            ("cairn::undefined_resource", "${sim_x.y.id}".into()),
        ]
    );
}

#[test]
fn malformed_template_points_inside_the_string() {
    let e = err(&format!(
        "{HEAD}[resource.sim_a.a]\nname = \"x-${{var.prefix\"\n"
    ));
    assert_eq!(e, [("cairn::bad_template", "${var.prefix".into())]);
    let e = err(&format!(
        "{HEAD}[resource.sim_a.a]\nname = \"\\\"q\\\" ${{nope}}\"\n"
    ));
    assert_eq!(e, [("cairn::bad_template", "${nope}".into())]);
}

#[test]
fn identity_conflicts_name_both() {
    let text = format!(
        "{HEAD}[vars]\np = \"x\"\n[resource.sim_a.one]\nname = \"${{var.p}}-n\"\n\
         [resource.sim_a.two]\nname = \"x-n\"\n[resource.sim_b.other]\nname = \"x-n\"\n"
    );
    let r = raw(&text);
    let e = resolve(&r, &ResolveOptions::default()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let d = &e.0[0];
    assert_eq!(d.code, "cairn::duplicate_identity");
    let texts: Vec<&str> = d.labels.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["claimed again here", "first claimed here"]);
    assert_eq!(&r.source.text[d.labels[1].span.clone()], "\"${var.p}-n\"");
}

#[test]
fn if_exists_validation() {
    let e = err(&format!(
        "{HEAD}[resource.sim_a.a]\nname = \"a\"\nif_exists = [\"reuse\", \"reus\", \"fail\", \"adopt\", \"reuse\"]\n\
         [resource.sim_a.b]\nname = \"b\"\nif_exists = []\n"
    ));
    assert_eq!(
        e,
        [
            ("cairn::bad_if_exists", "\"reus\"".into()),
            ("cairn::bad_if_exists", "\"fail\"".into()),
            ("cairn::bad_if_exists", "\"reuse\"".into()),
            ("cairn::bad_if_exists", "[]".into()),
        ]
    );
}

#[test]
fn checks_outputs_state_and_providers() {
    let text = format!(
        "{HEAD}[vars]\nb = \"bk\"\n[provider.sim]\nworld = \"w-${{var.b}}.json\"\n\
         [check.c]\ncommand = \"true ${{sim_a.a.id}}\"\nretries = 3\ninterval_s = 0.5\n\
         [resource.sim_a.a]\nname = \"a\"\n[output]\nx = 1\n\
         [state]\nbackend = \"s3\"\nbucket = \"${{var.b}}\"\nkey = \"k\"\n"
    );
    let s = ok(&text);
    assert_eq!(s.providers["sim"].settings["world"], json!("w-bk.json"));
    assert_eq!(s.checks[0].command, "true ${sim_a.a.id}");
    assert_eq!((s.checks[0].retries, s.checks[0].interval_s), (3, 0.5));
    assert_eq!(s.outputs["x"], json!(1));
    assert_eq!(
        s.state,
        StateConfig::S3 {
            bucket: "bk".into(),
            key: "k".into(),
            region: None,
            endpoint_url: None
        }
    );
    assert_eq!(s.dir, std::path::PathBuf::from("stacks"));
    let s = ok(&format!("{HEAD}[state]\ndir = \"st\"\n"));
    assert_eq!(
        s.state,
        StateConfig::LocalDir {
            dir: "stacks/st".into()
        }
    );
    assert_eq!(ok(HEAD).state, StateConfig::Local);

    let e = err(&format!(
        "{HEAD}[provider.sim]\nworld = 3\nlatncy_ms = 1\n[provider.gcp]\n\
         [check.c]\nretries = -1\ncomand = \"x\"\n[state]\nbackend = \"s3\"\ndir = \"x\"\n"
    ));
    let codes: Vec<(&str, &str)> = e.iter().map(|(c, t)| (*c, t.as_str())).collect();
    assert_eq!(
        codes,
        [
            ("cairn::provider_config", "world"),
            ("cairn::provider_config", "latncy_ms"),
            ("cairn::provider_config", "gcp"),
            ("cairn::bad_check", "[check.c]"),
            ("cairn::out_of_range", "-1"),
            ("cairn::unknown_key", "comand"),
            ("cairn::state_config", "[state]"),
            ("cairn::state_config", "[state]"),
            ("cairn::state_config", "dir"),
        ]
    );
}

#[test]
fn stack_table_problems() {
    let e = err("[stack]\nnme = \"x\"\n");
    assert_eq!(
        e,
        [
            ("cairn::missing_key", "[stack]".into()),
            ("cairn::unknown_key", "nme".into())
        ]
    );
    let e = err("");
    assert_eq!(e, [("cairn::missing_stack", String::new())]);
    let e = err("[stack]\nname = \"bad name\"\n[resource.sim_a.\"😀\"]\nname = \"a\"\n");
    assert_eq!(
        e,
        [
            ("cairn::invalid_name", "\"bad name\"".into()),
            ("cairn::invalid_name", "\"😀\"".into())
        ]
    );
}

#[test]
fn cycles_are_found_with_their_path() {
    let text = format!(
        "{HEAD}[resource.sim_a.a]\nname = \"a\"\nx = \"${{sim_b.b.id}}\"\n\
         [resource.sim_b.b]\nname = \"b\"\ndepends_on = [\"sim_c.c\"]\n\
         [resource.sim_c.c]\nname = \"c\"\ny = \"${{sim_a.a.arn}}\"\n[resource.sim_d.d]\nname = \"d\"\n"
    );
    let s = ok(&text);
    let path = cycle::find_cycle(&s.resources).unwrap();
    let names: Vec<String> = path.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["sim_a.a", "sim_b.b", "sim_c.c"]);
    let d = dependency_graph(&s).unwrap_err();
    assert_eq!(
        d.0[0].message,
        "dependency cycle: sim_a.a → sim_b.b → sim_c.c → sim_a.a"
    );
    let labels: Vec<&str> = d.0[0]
        .labels
        .iter()
        .map(|l| &s.source.text[l.span.clone()])
        .collect();
    assert_eq!(
        labels,
        [
            "\"${sim_b.b.id}\"",
            "[resource.sim_b.b]",
            "\"${sim_a.a.arn}\""
        ]
    );
    let e = err(&format!(
        "{HEAD}[resource.sim_a.a]\nname = \"a\"\nx = \"${{sim_a.a.id}}\"\n"
    ));
    assert_eq!(e, [("cairn::self_reference", "${sim_a.a.id}".into())]);
}

#[test]
fn long_chain_and_many_resources_resolve_quickly() {
    let mut text = String::from(HEAD);
    let n = 20_000;
    for i in 0..n {
        text.push_str(&format!("[resource.sim_r.r{i}]\nname = \"r{i}\"\n"));
        if i > 0 {
            text.push_str(&format!("prev = \"${{sim_r.r{}.id}}\"\n", i - 1));
        }
    }
    let start = std::time::Instant::now();
    let s = ok(&text);
    assert_eq!(s.resources.len(), n);
    assert!(cycle::find_cycle(&s.resources).is_none());
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}
