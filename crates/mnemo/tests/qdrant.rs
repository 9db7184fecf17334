//! The binary on a real Qdrant node: `--store qdrant://...` gives the same answers as the
//! embedded store, a running server's errors name the node, and `mnemo migrate-store` copies
//! collections there and back without changing a bit.

mod common;

use std::path::Path;

use common::{mnemo, ok};
use mnemo_testkit::Qdrant;
use serde_json::Value;

const PLAN: &str = "# Plan\n\n## Phase 1: Cache\n\n- [ ] **1.1** Écrire le client HTTP P1\n- [ ] **1.2** Ajouter le cache LRU pour les requêtes\n- [x] **1.3** Mesurer le taux de succès du cache\n\n## Phase 2\n\n- [ ] **2.1** Documenter l'API REST\n- [ ] **2.2** Préparer la démo de la recherche\n";

/// An export's points, by line, as JSON (key order aside).
fn exported(data: &Path, collection: &str, file: &Path) -> Vec<Value> {
    ok(mnemo(
        data,
        &[
            "export",
            "--collection",
            collection,
            "-o",
            file.to_str().unwrap(),
        ],
    ));
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn the_same_answers_on_qdrant_and_a_lossless_round_trip() {
    let Some(qdrant) = Qdrant::single() else {
        return;
    };
    let location = qdrant.nodes[0].location();
    let notes = tempfile::tempdir().unwrap();
    std::fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    let folder = notes.path().to_str().unwrap();
    let embedded = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();

    ok(mnemo(embedded.path(), &["index", folder]));
    let indexed = ok(mnemo(
        embedded.path(),
        &["index", folder, "--store", &location, "--json"],
    ));
    let indexed: Value = serde_json::from_str(&indexed).unwrap();
    assert_eq!(indexed["tasks"], 5, "{indexed}");
    for (query, mode) in [("mettre en cache les réponses", "dense"), ("2.1", "hybrid")] {
        let ask = |extra: &[&str]| {
            let mut args = vec!["search", query, "--mode", mode, "--json", "--limit", "3"];
            args.extend_from_slice(extra);
            ok(mnemo(embedded.path(), &args))
        };
        let here: Vec<Value> = ask(&[])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let there: Vec<Value> = ask(&["--store", &location])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids = |hits: &[Value]| hits.iter().map(|h| h["id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&here), ids(&there), "{query} ({mode})");
        assert!(!here.is_empty());
    }

    // embedded → Qdrant (over what `index` put there) → a new data directory: the exports of
    // the first and the last are the same points, bit for bit.
    let to_qdrant = ok(mnemo(
        embedded.path(),
        &[
            "migrate-store",
            "--from",
            "embedded",
            "--to",
            &location,
            "--replace",
        ],
    ));
    assert!(to_qdrant.contains("identical bit for bit"), "{to_qdrant}");
    let back = scratch.path().join("back");
    let from_qdrant = ok(mnemo(
        embedded.path(),
        &[
            "migrate-store",
            "--from",
            &location,
            "--to",
            back.to_str().unwrap(),
            "--json",
        ],
    ));
    let report: Value = serde_json::from_str(&from_qdrant).unwrap();
    for collection in report.as_array().unwrap() {
        assert_eq!(collection["points"], collection["target_points"]);
        assert_eq!(collection["sampled"], collection["identical"]);
    }
    for collection in ["tasks", "passages"] {
        let first = exported(
            embedded.path(),
            collection,
            &scratch.path().join(format!("{collection}-1.jsonl")),
        );
        let last = exported(
            &back,
            collection,
            &scratch.path().join(format!("{collection}-2.jsonl")),
        );
        if collection == "tasks" {
            assert_eq!(first.len(), 5);
        }
        assert_eq!(first, last, "{collection}");
    }

    // The same store on both sides is refused before anything is read.
    let refused = mnemo(
        embedded.path(),
        &["migrate-store", "--from", "embedded", "--to", "embedded"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("are the same store"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A node that is gone: a clear error naming it and the operation, soon.
    let dead = "qdrant://127.0.0.1:1?timeout_ms=500&retries=1";
    let started = std::time::Instant::now();
    let failed = mnemo(embedded.path(), &["search", "cache", "--store", dead]);
    assert!(!failed.status.success());
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(
        message.contains("Qdrant at 127.0.0.1:1 is unavailable"),
        "{message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
