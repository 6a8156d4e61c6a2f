//! The local backend's snapshots, written a few records per commit: no
//! commit writes more than twice the records it changed, loads stay
//! correct and bounded through whole sequences of runs, and a crash at
//! any step of a snapshot's finish, or a snapshot torn anywhere, loses
//! nothing.
#[path = "support/sequence.rs"]
mod sequence;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::model::Address;
use cairn::state::{Backend, LocalBackend, Ownership, ResourceState, State};
use sequence::{Run, changed_bytes, step_run};
use serde_json::json;

fn backend(dir: &Path) -> LocalBackend {
    LocalBackend::new(dir.join(".cairn"), "demo", "dev")
}

fn addr(i: usize) -> Address {
    Address::new("sim_role", format!("r{i:04}"))
}

fn resource(i: usize, version: usize) -> ResourceState {
    ResourceState {
        id: format!("id-{i}"),
        ownership: Ownership::Created,
        attributes: cairn::model::Attrs::from([
            ("name".to_string(), json!(format!("role-{i}"))),
            ("version".to_string(), json!(version)),
            ("policy".to_string(), json!("x".repeat(40 + i % 90))),
        ]),
        depends_on: vec![],
        identity: Some(format!("role-{i}")),
    }
}

/// One run as apply makes it (lock, load, an intent and an outcome per
/// change, commit); returns the committed state, the bytes this backend
/// wrote and the bytes of the records it added or changed.
async fn run(dir: &Path, r: &Run) -> (State, u64, u64) {
    let b = backend(dir);
    b.lock(&cairn::state::LockInfo::new("apply"), Duration::ZERO)
        .await
        .unwrap();
    let before = b.load().await.unwrap().state;
    let mut state = before.clone();
    for (intent, outcome) in r.records(&before, addr, resource) {
        let entries = [intent, outcome];
        b.append(&entries).await.unwrap();
        entries.iter().for_each(|e| state.apply_entry(e));
    }
    state.serial += 1;
    b.commit(&state).await.unwrap();
    b.unlock().await.unwrap();
    let changed = changed_bytes(&before, &state);
    (state, b.bytes_written(), changed)
}

/// The bytes of every state file and segment a load reads.
fn load_bytes(dir: &Path) -> u64 {
    let b = backend(dir);
    let mut paths: Vec<PathBuf> = vec![b.state_path().to_path_buf()];
    paths.extend(b.journal_paths().map(Path::to_path_buf));
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn no_commit_writes_more_than_twice_its_changed_records_and_loads_stay_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 300;
    let create = Run {
        puts: (0..n).map(|i| (i, 0)).collect(),
        removes: vec![],
    };
    let (mut last, _, _) = run(tmp.path(), &create).await;
    let mut finished = 0;
    let mut worst: f64 = 0.0;
    for step in 1..=80 {
        let (state, written, changed) = run(tmp.path(), &step_run(n, step)).await;
        let ratio = written as f64 / changed as f64;
        worst = worst.max(ratio);
        assert!(
            written <= 2 * changed,
            "step {step}: wrote {written} bytes for {changed} changed"
        );
        let loaded = backend(tmp.path()).load().await.unwrap();
        assert_eq!(loaded.state, state, "step {step}");
        assert_eq!(loaded.replayed, 0);
        // A load reads the state file and at most a bounded journal.
        let state_size = serde_json::to_vec(&state).unwrap().len() as u64;
        let read = load_bytes(tmp.path());
        assert!(
            read <= 8 * state_size,
            "step {step}: a load reads {read} bytes for a state of {state_size}"
        );
        if backend(tmp.path()).state_path().exists()
            && !tmp.path().join(".cairn/demo.dev.state.json.next").exists()
        {
            finished += 1;
        }
        last = state;
    }
    assert!(last.resources.len() >= n);
    // Snapshots did happen (the state file exists), and more than once.
    let b = backend(tmp.path());
    assert!(b.state_path().exists());
    assert!(
        b.backup_path().exists(),
        "a second snapshot replaced a first"
    );
    assert!(finished > 0);
    assert!(
        worst > 1.5,
        "snapshots used their budget (worst {worst:.2})"
    );
}

/// Copies the `.cairn` folder of `from` into a new temporary folder.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    std::fs::create_dir(to.path().join(".cairn")).unwrap();
    for entry in std::fs::read_dir(from.join(".cairn")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            to.path().join(".cairn").join(entry.file_name()),
        )
        .unwrap();
    }
    to
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join(".cairn"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(name, _)| !name.ends_with(".lock"))
        .collect()
}

fn set_files(dir: &Path, wanted: &BTreeMap<String, Vec<u8>>) {
    for (name, _) in files(dir) {
        std::fs::remove_file(dir.join(".cairn").join(name)).unwrap();
    }
    for (name, bytes) in wanted {
        std::fs::write(dir.join(".cairn").join(name), bytes).unwrap();
    }
}

/// Runs steps until the next one finishes a snapshot; returns the folder
/// just before that step, the step and the state before it.
async fn before_a_finish(n: usize) -> (tempfile::TempDir, usize, State) {
    let tmp = tempfile::tempdir().unwrap();
    let create = Run {
        puts: (0..n).map(|i| (i, 0)).collect(),
        removes: vec![],
    };
    let (mut last, _, _) = run(tmp.path(), &create).await;
    for step in 1..200 {
        let copy = copy_dir(tmp.path());
        let (state, _, _) = run(tmp.path(), &step_run(n, step)).await;
        if backend(tmp.path()).state_path().exists() {
            return (copy, step, last);
        }
        last = state;
    }
    panic!("no snapshot finished");
}

#[tokio::test]
async fn a_crash_at_each_step_of_a_snapshot_finish_loses_nothing() {
    let n = 200;
    let (dir, step, _) = before_a_finish(n).await;
    let before = files(dir.path());
    assert!(
        before.contains_key("demo.dev.state.json.next"),
        "a snapshot in progress"
    );
    assert_eq!(
        before.keys().filter(|k| k.contains(".journal")).count(),
        2,
        "two segments: {:?}",
        before.keys()
    );
    let (committed, _, _) = run(dir.path(), &step_run(n, step)).await;
    let after = files(dir.path());
    assert!(!after.contains_key("demo.dev.state.json.next"));
    let snapshot = after["demo.dev.state.json"].clone();
    let retired = after["demo.dev.journal.bak"].clone();
    let (old_name, active_name) = if after.contains_key("demo.dev.journal") {
        ("demo.dev.journal.1", "demo.dev.journal")
    } else {
        ("demo.dev.journal", "demo.dev.journal.1")
    };
    assert!(before.contains_key(old_name) && before.contains_key(active_name));
    // The files at each point of the finish: the commit's records in the
    // active segment, then the complete snapshot beside it, then the
    // backup, then the rename, then the retired segment.
    let mut marker = before.clone();
    marker.insert(active_name.to_string(), after[active_name].clone());
    let mut footer = marker.clone();
    footer.insert("demo.dev.state.json.next".to_string(), snapshot.clone());
    let mut torn_footer = marker.clone();
    torn_footer.insert(
        "demo.dev.state.json.next".to_string(),
        snapshot[..snapshot.len() - 3].to_vec(),
    );
    let mut renamed = marker.clone();
    renamed.remove("demo.dev.state.json.next");
    renamed.insert("demo.dev.state.json".to_string(), snapshot.clone());
    let mut backed_up = footer.clone();
    if let Some(old) = before.get("demo.dev.state.json") {
        backed_up.insert("demo.dev.state.json.bak".to_string(), old.clone());
        renamed.insert("demo.dev.state.json.bak".to_string(), old.clone());
    }
    assert_eq!(renamed[old_name], retired);
    for (label, crash) in [
        ("after the marker", &marker),
        ("after the footer", &footer),
        ("in the footer", &torn_footer),
        ("after the backup", &backed_up),
        ("after the rename", &renamed),
        ("after the retire", &after),
    ] {
        set_files(dir.path(), crash);
        let loaded = backend(dir.path()).load().await.unwrap();
        assert_eq!(loaded.state, committed, "{label}");
        // The next runs go on, finish what was left and agree.
        let mut last = committed.clone();
        for next in step + 1..step + 25 {
            let (state, written, changed) = run(dir.path(), &step_run(n, next)).await;
            assert!(written <= 2 * changed, "{label}, step {next}");
            assert_eq!(
                backend(dir.path()).load().await.unwrap().state,
                state,
                "{label}"
            );
            last = state;
        }
        assert!(!files(dir.path()).contains_key(old_name) || last.serial > committed.serial);
    }
}

#[tokio::test]
async fn a_snapshot_torn_anywhere_is_resumed_and_the_state_is_intact() {
    let n = 120;
    let (dir, step, _) = before_a_finish(n).await;
    let before = files(dir.path());
    let next = before["demo.dev.state.json.next"].clone();
    // Cuts in the header, in records, at line ends, and none.
    let line_end = next.iter().position(|b| *b == b'\n').unwrap() + 1;
    let cuts = [
        0,
        5,
        line_end,
        line_end + 7,
        next.len() / 2,
        next.len() - 1,
        next.len(),
    ];
    for cut in cuts {
        let mut torn = before.clone();
        torn.insert("demo.dev.state.json.next".to_string(), next[..cut].to_vec());
        set_files(dir.path(), &torn);
        let mut last = backend(dir.path()).load().await.unwrap().state;
        let mut finished = false;
        for s in step..step + 25 {
            let (state, written, changed) = run(dir.path(), &step_run(n, s)).await;
            assert!(written <= 2 * changed, "cut {cut}, step {s}");
            assert_eq!(
                backend(dir.path()).load().await.unwrap().state,
                state,
                "cut {cut}"
            );
            finished |= !dir.path().join(".cairn/demo.dev.state.json.next").exists();
            last = state;
        }
        assert!(finished, "cut {cut}: the snapshot finished");
        assert_eq!(backend(dir.path()).load().await.unwrap().state, last);
    }
    // Garbage instead of a snapshot: it starts over.
    let mut garbage = before.clone();
    garbage.insert(
        "demo.dev.state.json.next".to_string(),
        b"{garbage\n\0\0\n".to_vec(),
    );
    set_files(dir.path(), &garbage);
    for s in step..step + 25 {
        let (state, _, _) = run(dir.path(), &step_run(n, s)).await;
        assert_eq!(backend(dir.path()).load().await.unwrap().state, state);
    }
}

#[tokio::test]
async fn runs_that_change_nothing_still_bound_the_journal() {
    // Each run journals a put of a record it leaves as it was: nothing
    // changed, so no budget for the snapshot. Once the newer segment
    // reaches its bound, a commit finishes the snapshot at once.
    let tmp = tempfile::tempdir().unwrap();
    let n = 20;
    let create = Run {
        puts: (0..n).map(|i| (i, 0)).collect(),
        removes: vec![],
    };
    let (_, _, _) = run(tmp.path(), &create).await;
    let same = Run {
        puts: vec![(0, 0), (1, 0)],
        removes: vec![],
    };
    let mut forced = None;
    for step in 1..400 {
        let (state, written, changed) = run(tmp.path(), &same).await;
        assert_eq!(changed, 0);
        assert_eq!(backend(tmp.path()).load().await.unwrap().state, state);
        let state_size = serde_json::to_vec(&state).unwrap().len() as u64;
        assert!(load_bytes(tmp.path()) <= 8 * state_size, "step {step}");
        if backend(tmp.path()).state_path().exists() {
            forced = Some((step, written));
            break;
        }
    }
    let (step, written) = forced.expect("the snapshot was finished at once");
    assert!(step > 5, "a snapshot waits for the journal to grow");
    assert!(written > 0);
}
