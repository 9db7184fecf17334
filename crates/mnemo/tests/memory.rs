//! `mnemo index`, `search`, `similar` and `dupes` as a user runs them: the real binary, the
//! real model, a data directory on disk.

mod common;

use common::{json_lines, mnemo, stderr, stdout};
use serde_json::Value;

const PLAN: &str = "# Plan v1\n\n## Phase 1: Cache\n\n- [ ] **1.1** Écrire le client HTTP P1\n- [ ] **1.2** Ajouter le cache LRU pour les requêtes\n- [x] **1.3** Mesurer le taux de succès du cache\n\n## Phase 2\n\n- [ ] **2.1** Documenter l'API REST\n";
const COPY: &str =
    "# Plan v2\n\n- [ ] Ajouter le cache LRU pour les requêtes\n- [ ] Préparer la démo\n";

#[test]
fn index_then_ask() {
    let data = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    std::fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    std::fs::write(notes.path().join("copy.md"), COPY).unwrap();
    let folder = notes.path().to_str().unwrap();

    let index = mnemo(data.path(), &["index", folder]);
    assert!(index.status.success(), "{}", stderr(&index));
    let summary = stdout(&index);
    assert!(summary.starts_with("indexed 2 files: 6 tasks"), "{summary}");
    let again = mnemo(data.path(), &["index", folder, "--json"]);
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        (again["embedded"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(6))
    );

    let search = mnemo(
        data.path(),
        &[
            "search",
            "mettre en cache les réponses",
            "--json",
            "--limit",
            "3",
        ],
    );
    assert!(search.status.success(), "{}", stderr(&search));
    let hits = json_lines(&search);
    assert_eq!(hits.len(), 3);
    for field in [
        "score",
        "id",
        "title",
        "status",
        "file",
        "line",
        "section_path",
        "task_id",
        "model",
        "indexed_at",
    ] {
        assert!(
            hits[0].get(field).is_some(),
            "hit without `{field}`: {}",
            hits[0]
        );
    }
    assert!(
        hits[0]["title"].as_str().unwrap().contains("cache"),
        "{}",
        hits[0]
    );

    let table = mnemo(
        data.path(),
        &[
            "search",
            "documentation",
            "--filter",
            "status=open and priority>=P0",
        ],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(stdout(&table).contains("plan.md:"), "{}", stdout(&table));

    let hybrid = mnemo(
        data.path(),
        &[
            "search", "1.3", "--mode", "hybrid", "--json", "--limit", "1",
        ],
    );
    assert_eq!(json_lines(&hybrid)[0]["number"], "1.3");
    let by_name = mnemo(
        data.path(),
        &["search", "copy.md", "--mode", "keyword", "--json"],
    );
    let by_name = json_lines(&by_name);
    assert!(!by_name.is_empty());
    assert!(
        by_name
            .iter()
            .all(|hit| hit["file"].as_str().unwrap().ends_with("copy.md")),
        "only the items of copy.md hold its name: {by_name:?}"
    );

    let done = mnemo(
        data.path(),
        &["search", "cache", "--filter", "status=done", "--json"],
    );
    assert!(json_lines(&done).iter().all(|h| h["status"] == "done"));
    assert_eq!(json_lines(&done).len(), 1);

    let similar = mnemo(
        data.path(),
        &[
            "similar",
            hits[0]["task_id"].as_str().unwrap(),
            "--json",
            "--limit",
            "2",
        ],
    );
    assert!(similar.status.success(), "{}", stderr(&similar));
    assert!(
        json_lines(&similar)
            .iter()
            .all(|h| h["task_id"] != hits[0]["task_id"])
    );

    let dupes = mnemo(data.path(), &["dupes", "--threshold", "0.99", "--json"]);
    let clusters = json_lines(&dupes);
    assert_eq!(
        clusters.len(),
        1,
        "the cache task is in both files: {}",
        stdout(&dupes)
    );
    assert_eq!(clusters[0]["members"].as_array().unwrap().len(), 2);
}

#[test]
fn mistakes_are_named_and_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    std::fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    assert!(
        mnemo(data.path(), &["index", notes.path().to_str().unwrap()])
            .status
            .success()
    );

    let bad_filter = mnemo(
        data.path(),
        &[
            "search",
            "cache",
            "--filter",
            "status=open and priority<=urgent",
        ],
    );
    assert_eq!(bad_filter.status.code(), Some(1));
    let message = stderr(&bad_filter);
    assert!(
        message.contains("filter, column 27: unknown priority `urgent`"),
        "{message}"
    );

    let unknown = mnemo(data.path(), &["search", "cache", "--collection", "nope"]);
    assert!(
        stderr(&unknown).contains("run `mnemo index PATH...` first"),
        "{}",
        stderr(&unknown)
    );
    assert!(
        stderr(&unknown).contains("collection `nope` does not exist"),
        "{}",
        stderr(&unknown)
    );
    let missing_task = mnemo(data.path(), &["similar", "no-such-task"]);
    assert!(
        stderr(&missing_task).contains("no point or task with id `no-such-task`"),
        "{}",
        stderr(&missing_task)
    );

    let missing_path = mnemo(
        data.path(),
        &["index", notes.path().join("absent.md").to_str().unwrap()],
    );
    assert_eq!(
        missing_path.status.code(),
        Some(3),
        "{}",
        stderr(&missing_path)
    );
    assert!(
        stderr(&missing_path).contains("absent.md"),
        "{}",
        stderr(&missing_path)
    );

    // Another process holds the directory: told who.
    let holder =
        mnemo_store::EmbeddedStore::open(data.path(), mnemo_store::OpenOptions::default()).unwrap();
    let locked = mnemo(data.path(), &["search", "cache"]);
    assert_eq!(locked.status.code(), Some(1));
    assert!(
        stderr(&locked).contains(&format!("is locked by process {}", std::process::id())),
        "{}",
        stderr(&locked)
    );
    drop(holder);
    let search = mnemo(data.path(), &["search", "cache", "--json"]);
    assert_eq!(
        json_lines(&search).len(),
        4,
        "everything indexed is still there"
    );
}

/// Ctrl-C stops `mnemo index` between two chunks of files: exit status 130, a message that
/// says what happened, and what was written before stays searchable.
#[test]
fn ctrl_c_stops_indexing_at_a_safe_point() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    common::write_plans(plans.path(), 240);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(["index", "--tasks-only"])
        .arg(plans.path())
        .env("MNEMO_DATA_DIR", data.path())
        .env_remove("MNEMO_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let interrupted = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut errors = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{errors}");
    assert!(errors.contains("indexing was cancelled after"), "{errors}");
    assert!(
        interrupted.elapsed() < std::time::Duration::from_secs(60),
        "it stopped at the next chunk, not at the end"
    );
    let found = mnemo(
        data.path(),
        &["search", "vérifier le module", "--json", "--limit", "1"],
    );
    assert_eq!(json_lines(&found).len(), 1, "{}", stderr(&found));
}
