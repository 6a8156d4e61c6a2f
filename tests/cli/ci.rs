//! Running inside GitHub Actions (`GITHUB_ACTIONS=true`): `cairn plan`
//! appends a Markdown summary to `$GITHUB_STEP_SUMMARY`, and stack-file
//! problems are printed as `::error file=…,line=…,col=…` annotations.

use std::process::{Command, Stdio};

use crate::support::{Project, Run};

const STACK: &str = r#"
[stack]
name = "ci"

[provider.sim]
world = ".cairn/world.json"

[resource.sim_role.exec]
name = "exec"

[resource.sim_task.api]
name = "api"
role = "${sim_role.exec.arn}"
"#;

/// Runs `cairn` as a GitHub Actions step would, with the step summary file
/// at `summary` in the project.
fn in_github(p: &Project, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(p.root())
        .env("NO_COLOR", "1")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", p.path("summary.md"))
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    Run::from(output)
}

fn summary(p: &Project) -> String {
    std::fs::read_to_string(p.path("summary.md")).unwrap_or_default()
}

#[test]
fn plan_appends_a_markdown_summary_to_the_step_summary() {
    let p = Project::new();
    p.stack(STACK);
    p.file("summary.md", "## earlier step\n\n");
    in_github(&p, &["plan", "stack.toml"]).ok();
    let text = summary(&p);
    assert!(text.starts_with("## earlier step\n\n"), "appends: {text}");
    assert!(
        text.contains("### cairn plan: `ci` (env `default`)"),
        "{text}"
    );
    assert!(
        text.contains("| step | action | address | reason |"),
        "{text}"
    );
    assert!(
        text.contains("| 1 | `+` create | `sim_role.exec` |"),
        "{text}"
    );
    assert!(
        text.contains("| 2 | `+` create | `sim_task.api` |"),
        "{text}"
    );

    // Applied, a second plan appends a no-change summary without a table.
    in_github(&p, &["apply", "stack.toml", "--auto-approve"]).ok();
    let before = summary(&p);
    in_github(&p, &["plan", "stack.toml", "--detailed-exitcode"]).code(0);
    let added = summary(&p)[before.len()..].to_string();
    assert!(added.contains("### cairn plan: `ci`"), "{added}");
    assert!(!added.contains("| step |"), "{added}");
}

#[test]
fn no_summary_outside_github_actions() {
    let p = Project::new();
    p.stack(STACK);
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["plan", "stack.toml"])
        .current_dir(p.root())
        .env_remove("GITHUB_ACTIONS")
        .env("GITHUB_STEP_SUMMARY", p.path("summary.md"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!p.path("summary.md").exists());
}

#[test]
fn an_invalid_stack_prints_error_annotations_with_positions() {
    let p = Project::new();
    p.stack(
        r#"[stack]
name = "ci"

[provider.sim]
world = ".cairn/world.json"

[resource.sim_task.api]
name = "api"
role = "${sim_role.missing.arn}"
if_exists = "reuse-or-whatever"
"#,
    );
    let run = in_github(&p, &["validate", "stack.toml"]).code(1);
    let annotations: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 2, "{}", run.stdout);
    assert!(
        annotations
            .iter()
            .any(|l| l.starts_with("::error file=stack.toml,line=9,col=")
                && l.contains("undefined_resource")
                && l.contains("sim_role.missing")),
        "{annotations:#?}"
    );
    assert!(
        annotations
            .iter()
            .any(|l| l.starts_with("::error file=stack.toml,line=10,col=")
                && l.contains("bad_if_exists")),
        "{annotations:#?}"
    );
    // The human report still goes to stderr.
    assert!(run.stderr.contains("sim_role.missing"), "{}", run.stderr);
    // A valid stack prints none.
    p.stack(STACK);
    let run = in_github(&p, &["validate", "stack.toml"]).ok();
    assert!(!run.stdout.contains("::error"), "{}", run.stdout);
}
