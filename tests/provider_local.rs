//! The `local` provider on real files and real `sh` commands in temp folders.

use std::collections::BTreeMap;
use std::path::Path;

use cairn::model::{Address, Attrs};
use cairn::provider::local::LocalProvider;
use cairn::provider::{
    CreateRequest, DeleteRequest, ErrorKind, Provider, ProviderContext, UpdateRequest,
};
use serde_json::{Value, json};

fn local(dir: &Path) -> LocalProvider {
    let ctx = ProviderContext {
        stack: "demo".into(),
        env: "dev".into(),
        dir: dir.to_path_buf(),
    };
    LocalProvider::new(&Attrs::new(), &ctx).unwrap()
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

fn attrs(v: Value) -> Attrs {
    serde_json::from_value(v).unwrap()
}

fn create(address: &str, a: Value) -> CreateRequest {
    CreateRequest {
        address: addr(address),
        attributes: attrs(a),
        tags: cairn::model::Tags::new(),
    }
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn file_create_read_find_update_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let p = local(tmp.path());
    let a = addr("local_file.conf");
    assert_eq!(p.find(&a, "out/app.conf").await.unwrap(), None);

    let created = p
        .create(&create(
            "local_file.conf",
            json!({"path": "out/app.conf", "content": "port = 1\n", "mode": "0600"}),
        ))
        .await
        .unwrap();
    let full = tmp.path().join("out/app.conf");
    assert_eq!(std::fs::read_to_string(&full).unwrap(), "port = 1\n");
    assert_eq!(created.id, "out/app.conf");
    assert_eq!(created.attributes["content"], json!("port = 1\n"));
    assert_eq!(created.attributes["path"], json!("out/app.conf"));
    assert_eq!(created.attributes["id"], json!("out/app.conf"));
    assert!(created.tags.is_empty());
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&full), 0o600);
        assert_eq!(created.attributes["mode"], json!("0600"));
    }
    // No temp files left behind.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("out")).unwrap().count(),
        1
    );

    assert_eq!(
        p.read(&a, "out/app.conf").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        p.find(&a, "out/app.conf").await.unwrap(),
        Some(created.clone())
    );

    // Someone edits the file: read shows the drift.
    std::fs::write(&full, "port = 2\n").unwrap();
    let drifted = p.read(&a, "out/app.conf").await.unwrap().unwrap();
    assert_eq!(drifted.attributes["content"], json!("port = 2\n"));

    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: created.id.clone(),
            before: drifted.attributes.clone(),
            after: attrs(json!({"path": "out/app.conf", "content": "port = 3\n", "mode": "0640"})),
            tags: cairn::model::Tags::new(),
        })
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&full).unwrap(), "port = 3\n");
    assert_eq!(updated.attributes["content"], json!("port = 3\n"));
    #[cfg(unix)]
    assert_eq!(mode_of(&full), 0o640);

    // Moving is a replacement, not an update.
    let err = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: created.id.clone(),
            before: updated.attributes.clone(),
            after: attrs(json!({"path": "elsewhere", "content": ""})),
            tags: cairn::model::Tags::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);

    let del = DeleteRequest {
        address: a.clone(),
        id: created.id.clone(),
        attributes: updated.attributes.clone(),
    };
    p.delete(&del).await.unwrap();
    assert!(!full.exists());
    assert_eq!(p.read(&a, "out/app.conf").await.unwrap(), None);
    p.delete(&del).await.unwrap(); // already gone: fine
}

#[tokio::test]
async fn file_defaults_and_odd_content() {
    let tmp = tempfile::tempdir().unwrap();
    let p = local(tmp.path());
    let a = addr("local_file.empty");
    let created = p
        .create(&create("local_file.empty", json!({"path": "empty"})))
        .await
        .unwrap();
    assert_eq!(created.attributes["content"], json!(""));
    assert_eq!(std::fs::read(tmp.path().join("empty")).unwrap(), b"");

    // An existing file's mode is kept when the stack sets none.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = tmp.path().join("empty");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o751)).unwrap();
        p.create(&create(
            "local_file.empty",
            json!({"path": "empty", "content": "x"}),
        ))
        .await
        .unwrap();
        assert_eq!(mode_of(&path), 0o751);
    }

    std::fs::write(tmp.path().join("bin"), [0x66, 0xff, 0x6f]).unwrap();
    let lossy = p.read(&a, "bin").await.unwrap().unwrap();
    assert_eq!(lossy.attributes["content"], json!("f\u{fffd}o"));

    let err = p
        .create(&create(
            "local_file.bad",
            json!({"path": "x", "mode": "999"}),
        ))
        .await
        .unwrap_err();
    assert!(err.message.contains("octal"), "{}", err.message);
    let err = p
        .create(&create("local_file.bad", json!({"content": "x"})))
        .await
        .unwrap_err();
    assert!(err.message.contains("path"), "{}", err.message);
    std::fs::create_dir(tmp.path().join("adir")).unwrap();
    let err = p.read(&a, "adir").await.unwrap_err();
    assert!(err.message.contains("adir"), "{}", err.message);
}

#[tokio::test]
async fn command_stdout_and_registry_survive_the_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let a = addr("local_command.build");
    let created = {
        let p = local(tmp.path());
        p.create(&create(
            "local_command.build",
            json!({"command": "echo built > marker; printf 'v1 %s\\n' \"$CAIRN_ADDRESS\"",
                   "triggers": {"rev": 1}}),
        ))
        .await
        .unwrap()
    };
    assert!(created.id.starts_with("cmd-"), "{}", created.id);
    assert_eq!(
        created.attributes["stdout"],
        json!("v1 local_command.build")
    );
    assert_eq!(created.attributes["id"], json!(created.id));
    assert_eq!(created.attributes["triggers"], json!({"rev": 1}));
    // Ran in the stack's folder.
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("marker")).unwrap(),
        "built\n"
    );

    // A new provider (a later run) reads it back from the registry.
    let p = local(tmp.path());
    assert!(
        p.registry_path()
            .ends_with(".cairn/local/demo.dev.commands.json")
    );
    assert_eq!(
        p.read(&a, &created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(p.read(&a, "cmd-unknown").await.unwrap(), None);
    assert_eq!(p.find(&a, "anything").await.unwrap(), None);

    // Two runs of one command get different ids.
    let again = p
        .create(&create("local_command.build", json!({"command": "true"})))
        .await
        .unwrap();
    assert_ne!(again.id, created.id);
    assert_eq!(again.attributes["stdout"], json!(""));
    assert!(p.read(&a, &created.id).await.unwrap().is_some());
}

#[tokio::test]
async fn failing_command_reports_code_and_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let p = local(tmp.path());
    let err = p
        .create(&create(
            "local_command.bad",
            json!({"command": "echo starting; echo first >&2; echo 'it broke' >&2; exit 3"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("local_command.bad"), "{}", err.message);
    assert!(
        err.message.contains("exited with code 3"),
        "{}",
        err.message
    );
    assert!(err.message.contains("it broke"), "{}", err.message);
    let quoted = err.message.split("last lines of stderr:").nth(1).unwrap();
    assert_eq!(quoted.trim(), "first\nit broke");
    // Nothing recorded for a failed command.
    assert!(!p.registry_path().exists());
}

#[tokio::test]
async fn destroy_command_runs_on_delete_and_its_failure_keeps_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let p = local(tmp.path());
    let a = addr("local_command.svc");
    let created = p
        .create(&create(
            "local_command.svc",
            json!({"command": "echo token-42", "destroy_command": "exit 1"}),
        ))
        .await
        .unwrap();

    // Update changes the destroy command, keeps stdout and id.
    let mut after = attrs(json!({"command": "echo token-42",
        "destroy_command": "echo \"$CAIRN_ID $CAIRN_STDOUT\" > destroyed"}));
    after.insert("stdout".into(), json!("stale"));
    let del = DeleteRequest {
        address: a.clone(),
        id: created.id.clone(),
        attributes: created.attributes.clone(),
    };
    // The recorded destroy command fails: delete fails, the record stays.
    let err = p.delete(&del).await.unwrap_err();
    assert!(err.message.contains("destroy_command"), "{}", err.message);
    assert!(p.read(&a, &created.id).await.unwrap().is_some());

    let updated = p
        .update(&UpdateRequest {
            address: a.clone(),
            id: created.id.clone(),
            before: created.attributes.clone(),
            after,
            tags: cairn::model::Tags::new(),
        })
        .await
        .unwrap();
    assert_eq!(updated.attributes["stdout"], json!("token-42"));
    assert_eq!(p.read(&a, &created.id).await.unwrap(), Some(updated));

    p.delete(&del).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("destroyed")).unwrap(),
        format!("{} token-42\n", created.id)
    );
    assert_eq!(p.read(&a, &created.id).await.unwrap(), None);
    // Deleting again: no record, no destroy command to run from the
    // request either, so nothing happens.
    std::fs::remove_file(tmp.path().join("destroyed")).unwrap();
    p.delete(&DeleteRequest {
        address: a.clone(),
        id: created.id.clone(),
        attributes: attrs(json!({"command": "true"})),
    })
    .await
    .unwrap();
    assert!(!tmp.path().join("destroyed").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_all_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let p = std::sync::Arc::new(local(tmp.path()));
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                p.create(&create(
                    &format!("local_command.c{i}"),
                    json!({"command": format!("echo {i}")}),
                ))
                .await
                .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().id);
    }
    let registry: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(p.registry_path()).unwrap()).unwrap();
    assert_eq!(registry.len(), 24);
    for id in ids {
        assert!(registry.contains_key(&id));
    }
}

#[test]
fn settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ProviderContext {
        stack: "s".into(),
        env: "e".into(),
        dir: tmp.path().to_path_buf(),
    };
    let err = LocalProvider::new(&attrs(json!({"root": "/"})), &ctx)
        .err()
        .unwrap();
    assert!(err.contains("no settings"), "{err}");
}
