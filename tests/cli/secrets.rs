//! Secrets: values the stack declares sensitive never reach the terminal,
//! logs or JSON, and state files are private to their owner.

use crate::support::Project;

const SECRET: &str = "hunter2-s3cr3t";

const STACK: &str = r#"
[stack]
name = "sec"
sensitive = ["env.DB_PASSWORD"]

[provider.sim]
world = ".cairn/world.json"

[resource.sim_db.main]
name = "db"
password = "${env.DB_PASSWORD}"
dsn = "postgres://app:${env.DB_PASSWORD}@db:5432/app"

[resource.sim_app.web]
name = "web"
database = "${sim_db.main.dsn}"

[output]
dsn = "${sim_db.main.dsn}"
"#;

fn run(p: &Project, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(p.root())
        .env("DB_PASSWORD", SECRET)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn sensitive_values_are_masked_everywhere_they_are_shown() {
    let p = Project::new();
    p.stack(STACK);
    for args in [
        vec!["plan", "stack.toml"],
        vec!["plan", "stack.toml", "--json"],
        vec!["apply", "stack.toml", "--auto-approve"],
        vec!["apply", "stack.toml", "--auto-approve", "--json"],
        vec!["output", "stack.toml"],
        vec!["output", "stack.toml", "--json"],
        vec!["output", "stack.toml", "dsn"],
        vec!["state", "show", "stack.toml", "sim_db.main"],
        vec!["plan", "stack.toml", "--destroy"],
    ] {
        let (code, text) = run(&p, &args);
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(
            !text.contains(SECRET),
            "{args:?} printed the secret:\n{text}"
        );
        if args[0] == "plan" && args.len() == 2 {
            assert!(text.contains("(sensitive)"), "{text}");
        }
    }
    // The world really got the value.
    let db = p.object("sim_db", "db").unwrap();
    assert_eq!(db["attributes"]["password"], SECRET);
}

#[cfg(unix)]
#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.stack(STACK);
    let (code, text) = run(&p, &["apply", "stack.toml", "--auto-approve"]);
    assert_eq!(code, 0, "{text}");
    for f in ["sec.default.state.json", "sec.default.state.json.bak"] {
        let path = p.path(&format!(".cairn/{f}"));
        if path.exists() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
        }
    }
    let (code, _) = run(&p, &["plan", "stack.toml", "--out", "plan.json"]);
    assert_eq!(code, 0);
    let mode = std::fs::metadata(p.path("plan.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "saved plans hold the values they will apply");
}
