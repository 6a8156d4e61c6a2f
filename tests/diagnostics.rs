//! The diagnostics corpus: every stack under `tests/fixtures/invalid/` must
//! be rejected, and what a user sees (the human report) is snapshotted so
//! each message and the place it points at can be reviewed.
//!
//! A fixture may start with `#! env=NAME`, `#! var=K=V` or `#! environ=K=V`
//! lines to set the resolve options.

use std::path::Path;

use cairn::diagnostic::Diagnostics;
use cairn::diagnostic::render::render_human;
use cairn::model::{ResolveOptions, dependency_graph, resolve};

fn options(text: &str) -> ResolveOptions {
    let mut opts = ResolveOptions::default();
    for line in text.lines().take_while(|l| l.starts_with("#!")) {
        let directive = line.trim_start_matches("#!").trim();
        let (kind, rest) = directive.split_once('=').expect("directive KIND=VALUE");
        match kind {
            "env" => opts.env = Some(rest.to_string()),
            "var" | "environ" => {
                let (k, v) = rest.split_once('=').expect("K=V");
                let pair = (k.to_string(), v.to_string());
                if kind == "var" {
                    opts.vars.push(pair);
                } else {
                    opts.environment.insert(pair.0, pair.1);
                }
            }
            other => panic!("unknown directive {other}"),
        }
    }
    opts
}

/// Everything that is wrong with the stack at `path`.
fn problems(path: &Path) -> Diagnostics {
    let text = std::fs::read_to_string(path).unwrap();
    let rel = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .to_path_buf();
    let opts = options(&text);
    let raw = match cairn::stack::parse(rel, text) {
        Ok(raw) => raw,
        Err(d) => return d,
    };
    let stack = match resolve(&raw, &opts) {
        Ok(stack) => stack,
        Err(d) => return d,
    };
    match dependency_graph(&stack) {
        Ok(_) => Diagnostics::default(),
        Err(d) => d,
    }
}

#[test]
fn invalid_stacks() {
    insta::glob!("fixtures/invalid/*.toml", |path| {
        let diags = problems(path);
        assert!(diags.has_errors(), "{} should be rejected", path.display());
        for d in &diags.0 {
            assert!(d.source.is_some() || d.code == "cairn::unknown_env" || d.labels.is_empty());
        }
        insta::assert_snapshot!(render_human(&diags.0, false));
    });
}

#[test]
fn corpus_is_large_enough() {
    let n = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid"))
        .unwrap()
        .count();
    assert!(n >= 30, "only {n} invalid fixtures");
}

#[test]
fn other_renderings_of_one_fixture() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/many_problems.toml");
    let diags = problems(&path);
    insta::assert_snapshot!(cairn::diagnostic::render::render_github(&diags.0));
    insta::assert_json_snapshot!(cairn::diagnostic::render::to_json(&diags.0));
}
