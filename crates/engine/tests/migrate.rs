//! Moving a collection to another real model: the shadow built and compared (hit@k and MRR
//! on labelled queries), writes made meanwhile reaching it, the switch done while searches
//! run (none fails), the way back, and a migration whose points cannot be embedded rolled
//! back.

mod common;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mnemo_engine::{
    Engine, IndexOptions, LabelledQuery, MigrateOptions, Quiet, SearchMode, SearchOptions,
};
use mnemo_store::{CollectionConfig, Distance, Point, PointId};
use serde_json::json;

const MPNET: &str = "all-mpnet-base-v2";
const MINILM: &str = "all-MiniLM-L6-v2";

fn plans(dir: &std::path::Path) {
    fs::write(
        dir.join("backend.md"),
        "# Backend\n\n## Phase 1\n\n- [ ] **1.1** Ajouter un cache LRU devant la base\n- [ ] **1.2** Écrire le client HTTP de l'API\n- [x] **1.3** Mesurer la latence des requêtes\n",
    )
    .unwrap();
    fs::write(
        dir.join("ops.md"),
        "# Ops\n\n- [ ] Documenter le déploiement sur Kubernetes\n- [ ] Configurer les alertes Prometheus\n- [ ] Sauvegarder la base chaque nuit\n",
    )
    .unwrap();
}

fn search(engine: &mnemo_engine::Engine, query: &str) -> mnemo_engine::Result<Vec<String>> {
    Ok(engine
        .search(
            query,
            &SearchOptions {
                limit: 3,
                mode: SearchMode::Hybrid,
                ..SearchOptions::default()
            },
        )?
        .iter()
        .map(|hit| hit.payload["model"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[test]
fn a_collection_moves_to_another_model_while_it_is_searched() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    plans(folder.path());
    let engine = common::engine(data.path());
    let tasks_only = IndexOptions {
        passages: false,
        ..IndexOptions::default()
    };
    engine
        .index(&[folder.path().to_owned()], &tasks_only, &Quiet)
        .unwrap();

    let options = MigrateOptions {
        collection: "tasks".into(),
        to: MPNET.into(),
        max_texts_per_second: None,
        eval: vec![
            LabelledQuery {
                query: "a cache in front of the database".into(),
                expected: vec!["backend.md:5".into()],
            },
            LabelledQuery {
                query: "nightly backups".into(),
                expected: vec!["ops.md:5".into()],
            },
        ],
    };
    let report = engine.migrate_collection(&options, &Quiet).unwrap();
    assert_eq!(report.method, "index");
    assert_eq!(report.target, "tasks--all-mpnet-base-v2");
    assert_eq!((report.points_source, report.points_target), (6, 6));
    assert_eq!(report.failed, 0);
    assert_eq!(report.ab.eval.len(), 4, "two models, two modes");
    for score in &report.ab.eval {
        assert!(score.mrr > 0.0 && score.hit_at_10 > 0.0, "{score:?}");
    }
    assert!((0.0..=1.0).contains(&report.ab.canary_top10_overlap));
    let state = engine.migration_state("tasks").unwrap().unwrap();
    assert_eq!(state.state, "built");

    // A migration run again goes on from what is there: nothing to embed.
    let again = engine.migrate_collection(&options, &Quiet).unwrap();
    assert_eq!(again.embedded, 0, "{again:?}");

    // Written before the switch: reaches the shadow too.
    fs::write(
        folder.path().join("ops.md"),
        "# Ops\n\n- [ ] Documenter le déploiement sur Kubernetes\n- [ ] Configurer les alertes Prometheus\n- [ ] Sauvegarder la base chaque nuit\n- [ ] Tester la restauration des sauvegardes\n",
    )
    .unwrap();
    engine
        .index(&[folder.path().to_owned()], &tasks_only, &Quiet)
        .unwrap();
    assert_eq!(engine.store().count("tasks", None).unwrap(), 7);
    assert_eq!(
        engine
            .store()
            .count("tasks--all-mpnet-base-v2", None)
            .unwrap(),
        7
    );

    // Searches run on other threads while the name moves back and forth: none fails, and
    // each reads one model's collection whole.
    let stop = AtomicBool::new(false);
    let (searches, failures) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match search(&engine, "restauration des sauvegardes") {
                        Ok(models)
                            if !models.is_empty() && models.iter().all(|m| m == &models[0]) => {}
                        Ok(models) => panic!("a mixed or empty answer: {models:?}"),
                        Err(err) => {
                            eprintln!("search failed: {err}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    searches.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for _ in 0..5 {
            engine.switch_model("tasks", false).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            engine.switch_model("tasks", true).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        engine.switch_model("tasks", false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(searches.load(Ordering::Relaxed) > 10);

    // Switched: `tasks` is the MPNet collection, searched and indexed with MPNet.
    assert_eq!(engine.collection_model("tasks").unwrap().id, MPNET);
    assert_eq!(search(&engine, "sauvegardes").unwrap()[0], MPNET);
    assert!(
        engine
            .switch_model("tasks", false)
            .unwrap_err()
            .to_string()
            .contains("switched")
    );
    // ... and back.
    engine.switch_model("tasks", true).unwrap();
    assert_eq!(engine.collection_model("tasks").unwrap().id, MINILM);
    assert_eq!(search(&engine, "sauvegardes").unwrap()[0], MINILM);
}

/// A `notes` collection (made anew) of `count` points, the first `without_text` of which carry
/// no text to embed again; the error of migrating it to MPNet.
fn migrate_notes_failing(engine: &Engine, count: u64, without_text: u64) -> String {
    if engine
        .store()
        .list_collections()
        .unwrap()
        .contains(&"notes".to_owned())
    {
        engine.delete_collection("notes").unwrap();
    }
    engine
        .create_collection_for(
            "notes",
            &CollectionConfig::single(384, Distance::Cosine),
            &engine.default_model(),
        )
        .unwrap();
    let points: Vec<Point> = (0..count)
        .map(|i| {
            let mut payload = serde_json::Map::new();
            if i >= without_text {
                payload.insert("text".into(), json!(format!("note numéro {i}")));
            }
            Point::dense(PointId::Num(i), "", vec![1.0; 384], payload)
        })
        .collect();
    engine.store().upsert("notes", points).unwrap();
    let err = engine
        .migrate_collection(
            &MigrateOptions {
                collection: "notes".into(),
                to: MPNET.into(),
                max_texts_per_second: None,
                eval: Vec::new(),
            },
            &Quiet,
        )
        .unwrap_err()
        .to_string();
    assert!(
        !engine
            .store()
            .list_collections()
            .unwrap()
            .contains(&"notes--all-mpnet-base-v2".to_owned()),
        "the shadow is deleted"
    );
    err
}

#[test]
fn a_migration_that_cannot_embed_its_points_is_rolled_back() {
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine(data.path());
    // Ten points, of which four carry no text to embed again (40 % > 5 %).
    let err = migrate_notes_failing(&engine, 10, 4);
    assert!(err.contains("4 of 10"), "{err}");

    // A bad migration stops as soon as its failures pass 5 %, not at its end: of 1,000 points
    // whose first 200 have no text, the first page of 256 is the last one read.
    let err = migrate_notes_failing(&engine, 1000, 200);
    assert!(err.contains("200 of 256"), "{err}");
    assert_eq!(
        engine.migration_state("notes").unwrap().unwrap().state,
        "rolled_back"
    );
    assert_eq!(engine.collection_model("notes").unwrap().id, MINILM);
}
