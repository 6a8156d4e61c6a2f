//! No input makes the engine's pure stages panic: random edits of the
//! example stack go through parsing, resolution, the dependency graph, the
//! diff (against an empty state and world) and every renderer; every
//! problem is a diagnostic pointing into the file.

use cairn::diagnostic::render::{render_github, render_human, to_json};
use cairn::model::{ResolveOptions, resolve};
use proptest::prelude::*;

const DEMO: &str = include_str!("fixtures/valid/demo.toml");
const PIECES: &[&str] = &[
    "$",
    "${",
    "}",
    "$${",
    "\"",
    "\\",
    "'",
    "[",
    "]",
    ".",
    "=",
    "\n",
    "é",
    "😀",
    "\\u00e9",
    "\"\"\"",
    "${var.",
    "${sim_role.exec",
    ".arn}",
    "[resource.sim_x.y]\n",
    "depends_on = [\"",
    "if_exists = ",
    "#",
    " ",
    "0x",
    "1e9",
    "nan",
    "{",
    ",",
];

fn edit(text: &str, edits: &[(usize, usize, usize)]) -> String {
    let mut s = text.to_string();
    for &(pos, del, piece) in edits {
        let mut at = pos % (s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + del % 4).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        s.replace_range(at..end, PIECES[piece % PIECES.len()]);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]
    #[test]
    fn edits_never_panic(edits in prop::collection::vec((0usize..2000, 0usize..8, 0usize..64), 1..6)) {
        let text = edit(DEMO, &edits);
        let opts = ResolveOptions {
            env: Some("production".into()),
            vars: vec![("replicas".into(), "3".into())],
            ..Default::default()
        };
        let diags = match cairn::stack::parse("fuzz.toml", text) {
            Ok(raw) => match resolve(&raw, &opts).and_then(|stack| {
                let graph = cairn::model::dependency_graph(&stack)?;
                Ok((stack, graph))
            }) {
                Ok((stack, graph)) => {
                    let state = cairn::state::State::new(&stack.name, &stack.env);
                    let live = cairn::plan::Live::new();
                    let input = cairn::plan::DiffInput { stack: &stack, graph: &graph, state: &state, live: &live };
                    match cairn::plan::diff(&input) {
                        Ok(plan) => {
                            prop_assert!(!cairn::plan::render::human(&plan).is_empty());
                            cairn::plan::render::json(&plan);
                            return Ok(());
                        }
                        Err(d) => d,
                    }
                }
                Err(d) => d,
            },
            Err(d) => d,
        };
        prop_assert!(diags.has_errors());
        // Problems in the file point into it; only problems with the
        // command line (`--env`) have no place in the file.
        for d in diags.0.iter().filter(|d| d.code != "cairn::unknown_env") {
            prop_assert!(d.source.is_some() && !d.labels.is_empty(), "no span: {}", d.message);
        }
        let human = render_human(&diags.0, false);
        prop_assert!(!human.is_empty());
        render_github(&diags.0);
        prop_assert_eq!(to_json(&diags.0).as_array().map(Vec::len), Some(diags.0.len()));
    }
}
