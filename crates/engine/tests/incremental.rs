//! Re-indexing embeds only what changed: an edited task, a ticked box, a renamed file, a
//! deleted file, each checked by what the summary counts and what the store holds.

mod common;

use std::fs;
use std::path::Path;

use mnemo_engine::{IndexOptions, IndexSummary, Quiet, SearchMode, SearchOptions};

const PLAN: &str = "# Plan\n\n## Phase 1\n\nLe cache doit tenir la charge.\n\n- [ ] **1.1** Écrire le client HTTP\n- [ ] **1.2** Ajouter le cache LRU\n  - [x] **1.2.1** Mesurer le taux de succès\n\n## Phase 2\n\n- [ ] **2.1** Documenter l'API\n";
const OTHER: &str = "# Notes\n\n- [ ] Préparer la démo\n- [ ] Relire la documentation\n";

fn index(engine: &mnemo_engine::Engine, root: &Path) -> IndexSummary {
    engine
        .index(&[root.to_owned()], &IndexOptions::default(), &Quiet)
        .unwrap()
}

fn titles(engine: &mnemo_engine::Engine) -> Vec<String> {
    let hits = engine
        .search(
            "plan",
            &SearchOptions {
                limit: 100,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    let mut titles: Vec<String> = hits
        .iter()
        .map(|h| h.payload["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    titles.sort();
    titles
}

#[test]
fn only_what_changed_is_embedded_and_what_is_gone_is_removed() {
    let data = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    let root = notes.path();
    fs::write(root.join("plan.md"), PLAN).unwrap();
    fs::write(root.join("other.md"), OTHER).unwrap();
    let engine = common::engine(data.path());

    let first = index(&engine, root);
    assert_eq!((first.files, first.tasks), (2, 6));
    assert!(first.passages >= 1, "the prose line is a passage");
    assert_eq!(first.embedded, first.tasks + first.passages);
    assert_eq!(engine.store().count("tasks", None).unwrap(), 6);

    let again = index(&engine, root);
    assert_eq!(
        (
            again.embedded,
            again.reused,
            again.removed,
            again.files_unchanged
        ),
        (0, 0, 0, 2)
    );

    // One title edited: that task is embedded (it is a new task: its id follows its words) and
    // the old one removed; its sub-task's id follows its parent's, so it is replaced too, with
    // the vector it had; the rest of the file is rewritten with the vectors it had (the file's
    // hash is in their payloads).
    fs::write(
        root.join("plan.md"),
        PLAN.replace("Ajouter le cache LRU", "Ajouter un cache LFU"),
    )
    .unwrap();
    let edited = index(&engine, root);
    assert_eq!((edited.embedded, edited.removed), (1, 2));
    assert_eq!(
        edited.reused,
        3 + 1,
        "the rest of plan.md: 3 tasks and its passage"
    );
    assert_eq!(edited.files_unchanged, 1);
    assert!(titles(&engine).contains(&"Ajouter un cache LFU".to_owned()));
    assert!(!titles(&engine).contains(&"Ajouter le cache LRU".to_owned()));

    // A box ticked: the status changes, nothing is embedded.
    fs::write(
        root.join("plan.md"),
        PLAN.replace("Ajouter le cache LRU", "Ajouter un cache LFU")
            .replace("- [ ] **2.1**", "- [x] **2.1**"),
    )
    .unwrap();
    let ticked = index(&engine, root);
    assert_eq!((ticked.embedded, ticked.removed), (0, 0));
    let done = engine
        .search(
            "Documenter l'API",
            &SearchOptions {
                limit: 1,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(done[0].payload["status"], "done");

    // Renamed: new ids (the file is part of them), vectors reused, old points removed.
    fs::rename(root.join("other.md"), root.join("renamed.md")).unwrap();
    let renamed = index(&engine, root);
    assert_eq!(renamed.embedded, 0, "a renamed file keeps its vectors");
    assert_eq!(renamed.reused, 2);
    assert_eq!(renamed.removed, 2);
    assert_eq!(engine.store().count("tasks", None).unwrap(), 6);

    // Deleted: its points go.
    fs::remove_file(root.join("renamed.md")).unwrap();
    let deleted = index(&engine, root);
    assert_eq!((deleted.embedded, deleted.removed), (0, 2));
    assert_eq!(engine.store().count("tasks", None).unwrap(), 4);

    // A file given alone is its own scope: the folder's other files are not touched.
    fs::write(root.join("other.md"), OTHER).unwrap();
    let alone = engine
        .index(&[root.join("plan.md")], &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!(
        (
            alone.files,
            alone.files_unchanged,
            alone.embedded,
            alone.removed
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(
        engine.store().count("tasks", None).unwrap(),
        4,
        "other.md is not indexed by indexing plan.md"
    );
    let other = engine
        .index(&[root.join("other.md")], &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!((other.files, other.removed), (1, 0));
    assert_eq!(engine.store().count("tasks", None).unwrap(), 6);
}

#[test]
fn passages_are_indexed_when_a_tasks_only_index_is_widened() {
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine(data.path());
    let notes = tempfile::tempdir().unwrap();
    fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    let paths = [notes.path().to_owned()];
    let tasks_only = IndexOptions {
        passages: false,
        ..IndexOptions::default()
    };
    let first = engine.index(&paths, &tasks_only, &Quiet).unwrap();
    assert_eq!((first.tasks, first.embedded), (4, 4));
    let widened = engine
        .index(&paths, &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!(
        widened.files_unchanged, 0,
        "the file is read again for its passages"
    );
    assert_eq!(
        (widened.embedded, widened.reused),
        (1, 4),
        "the passage is embedded, the tasks keep their vectors"
    );
    assert_eq!(engine.store().count("passages", None).unwrap(), 1);
}

#[test]
fn a_collection_for_other_vectors_is_refused_and_left_alone() {
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine(data.path());
    let config = mnemo_store::CollectionConfig::single(3, mnemo_store::Distance::Dot);
    engine.store().create_collection("tasks", &config).unwrap();
    let notes = tempfile::tempdir().unwrap();
    fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    let err = engine
        .index(&[notes.path().to_owned()], &IndexOptions::default(), &Quiet)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("collection `tasks` cannot be used for mnemo's tasks"),
        "{err}"
    );
    assert_eq!(engine.store().count("tasks", None).unwrap(), 0);
}

#[test]
fn bare_checkboxes_are_indexed_under_their_heading() {
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine(data.path());
    let notes = tempfile::tempdir().unwrap();
    fs::write(
        notes.path().join("todo.md"),
        "# Migration Qdrant\n\n- [ ]\n- [x]   \n",
    )
    .unwrap();
    let summary = engine
        .index(&[notes.path().to_owned()], &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!((summary.tasks, summary.embedded, summary.reused), (2, 1, 1));
    let hits = engine
        .search("migration", &SearchOptions::default())
        .unwrap();
    assert_eq!(hits.len(), 2);
}

#[test]
fn a_task_with_a_body_is_found_by_its_title_alone() {
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine(data.path());
    let notes = tempfile::tempdir().unwrap();
    // The task with a body, and a bodiless task whose title is nearly the same: by the vector
    // of title and body alone, the second would answer the first's title.
    let plan = "# Supervision\n\n\
        - [ ] **3.3.1** Implémentation des règles de recommandation\n  \
        Concevoir l'architecture du moteur, écrire le langage de définition, brancher les \
        métriques de performance et documenter chaque module PowerShell.\n\n\
        # Estimations\n\n\
        - [ ] **3.3.1** Implémentation des règles de recommandation (2h)\n";
    fs::write(notes.path().join("plan.md"), plan).unwrap();
    let paths = [notes.path().to_owned()];
    let first = engine
        .index(&paths, &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!(first.tasks, 2);
    assert_eq!(
        first.embedded, 3,
        "two tasks and the title of the one with a body"
    );
    for mode in [SearchMode::Dense, SearchMode::Hybrid] {
        let hits = engine
            .search(
                "Implémentation des règles de recommandation",
                &SearchOptions {
                    limit: 2,
                    mode,
                    ..SearchOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            hits[0].payload["title"], "Implémentation des règles de recommandation",
            "{mode:?}"
        );
        if mode == SearchMode::Dense {
            assert!(
                hits[0].score > 0.999,
                "the title's own vector: {}",
                hits[0].score
            );
        }
    }

    // Moved: every vector, the title's included, is reused.
    fs::rename(notes.path().join("plan.md"), notes.path().join("moved.md")).unwrap();
    let moved = engine
        .index(&paths, &IndexOptions::default(), &Quiet)
        .unwrap();
    assert_eq!((moved.embedded, moved.reused), (0, 3));
}

#[test]
fn an_index_of_an_older_analysis_is_analysed_again_without_embedding() {
    use mnemo_store::{PayloadSelection, PointSelector, Vector, VectorSelection};

    let data = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    fs::write(notes.path().join("plan.md"), PLAN).unwrap();
    let engine = common::engine(data.path());
    let first = index(&engine, notes.path());

    // The points as an older build left them: another index format, keyword vectors of
    // another analysis (here: none at all).
    let mut request = mnemo_store::ScrollRequest::new(100);
    request.with_payload = PayloadSelection::All;
    request.with_vectors = VectorSelection::All;
    let page = engine.store().scroll("tasks", request).unwrap();
    let ids: Vec<_> = page.points.iter().map(|record| record.id).collect();
    let tasks = ids.len();
    assert!(
        tasks > 0 && tasks < first.written,
        "tasks, and a passage left as it is"
    );
    let older: Vec<mnemo_store::Point> = page
        .points
        .into_iter()
        .map(|record| {
            let mut payload = record.payload;
            payload.insert("index_format".into(), serde_json::json!(2));
            payload.insert(
                "payload_hash".into(),
                serde_json::json!("of an older build"),
            );
            let mut vectors = record.vectors;
            vectors.insert(
                "bm25".into(),
                Vector::Sparse(mnemo_store::SparseVector {
                    indices: vec![],
                    values: vec![],
                }),
            );
            mnemo_store::Point {
                id: record.id,
                vectors,
                payload: serde_json::Value::Object(payload),
            }
        })
        .collect();
    engine
        .store()
        .delete("tasks", PointSelector::Ids(ids))
        .unwrap();
    engine.store().upsert("tasks", older).unwrap();

    let upgraded = index(&engine, notes.path());
    assert_eq!(upgraded.files_unchanged, 0, "an older format is read again");
    assert_eq!(upgraded.embedded, 0, "its vectors are reused");
    assert_eq!(upgraded.written, tasks, "every task rewritten");

    // The new analysis answers: French inflections and English stop words meet the titles.
    let found = engine
        .search(
            "l'ajout des caches",
            &SearchOptions {
                mode: SearchMode::Keyword,
                limit: 1,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(found[0].payload["title"], "Ajouter le cache LRU");
}
