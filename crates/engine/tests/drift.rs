//! Drift canaries on the real model, the embedded store and SQLite: pinned when a collection
//! is created, unchanged when only the backend or the thread count changes (the encoder is
//! exact), and an `embedding_drift` alert naming the model file when the weights changed.

mod common;

use std::path::Path;
use std::sync::Arc;

use mnemo_embed::{Backend, DEFAULT_MODEL_NAME, Embedder, EmbedderOptions};
use mnemo_engine::alerts::AlertRules;
use mnemo_engine::drift::{CANARY_TEXTS, DRIFT_THRESHOLD};
use mnemo_engine::{DENSE_VECTOR, Engine, EventQuery};
use mnemo_records::{EventLog, SqliteRecords};
use mnemo_store::{CollectionConfig, Distance, EmbeddedStore, OpenOptions};

fn engine_with(dir: &Path, embedder: Embedder) -> Engine {
    let records = Arc::new(SqliteRecords::open(&dir.join("memory.sqlite")).unwrap());
    let store = EmbeddedStore::open(&dir.join("data"), OpenOptions::default()).unwrap();
    Engine::new(Arc::new(store), Arc::new(embedder), DEFAULT_MODEL_NAME).with_records(records)
}

fn load(model_dir: &Path, options: EmbedderOptions) -> Embedder {
    Embedder::load(model_dir, options).expect("the model is needed (make model)")
}

/// A copy of the model whose embedding LayerNorm bias moved a little: the same files but
/// one, as after a bad download or a silent upgrade.
fn altered_copy(model_dir: &Path, into: &Path) {
    std::fs::create_dir_all(into.join("1_Pooling")).unwrap();
    for entry in std::fs::read_dir(model_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, into.join(path.file_name().unwrap())).unwrap();
        }
    }
    let pooling = model_dir.join("1_Pooling/config.json");
    if pooling.is_file() {
        std::fs::copy(&pooling, into.join("1_Pooling/config.json")).unwrap();
    }
    let weights_path = into.join("model.safetensors");
    let mut weights = std::fs::read(&weights_path).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&weights[8..8 + header_len]).unwrap();
    let (name, tensor) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.ends_with("embeddings.LayerNorm.bias"))
        .expect("a BERT model has an embedding LayerNorm");
    assert_eq!(tensor["dtype"], "F32", "{name}");
    let start = 8 + header_len + tensor["data_offsets"][0].as_u64().unwrap() as usize;
    let end = 8 + header_len + tensor["data_offsets"][1].as_u64().unwrap() as usize;
    for (index, value) in weights[start..end].chunks_exact_mut(4).enumerate() {
        let moved = f32::from_le_bytes(value.try_into().unwrap()) + 0.02 * (index % 3) as f32;
        value.copy_from_slice(&moved.to_le_bytes());
    }
    std::fs::write(&weights_path, weights).unwrap();
}

#[test]
fn canaries_catch_changed_weights_and_not_a_changed_backend() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = common::embedder()
        .model_dir()
        .expect("a local model")
        .to_owned();
    let dim;
    {
        let engine = engine_with(dir.path(), load(&model_dir, EmbedderOptions::default()));
        dim = engine.dim();
        let long = CANARY_TEXTS.iter().map(|t| t.len()).max().unwrap();
        let long = CANARY_TEXTS.iter().find(|t| t.len() == long).unwrap();
        assert!(
            engine.embedder().count_tokens(long).unwrap()
                > engine.embedder().max_seq_length().expect("a local model"),
            "one canary must be cut by the model"
        );
        let config = CollectionConfig::default().with_vector(DENSE_VECTOR, dim, Distance::Cosine);
        engine.create_collection("notes", &config).unwrap();
        // A collection of other vectors has no canaries: they would mean nothing.
        let other = CollectionConfig::default().with_vector("", 3, Distance::Dot);
        engine.create_collection("points3", &other).unwrap();
        let pinned = engine
            .events(&EventQuery {
                after: 0,
                types: vec!["drift.pinned".to_owned()],
                limit: 10,
            })
            .unwrap();
        assert_eq!(pinned.len(), 1, "{pinned:?}");
        assert_eq!(pinned[0].subject.as_deref(), Some("notes"));

        let report = engine.check_drift().unwrap();
        assert_eq!(report.collections.len(), 1);
        assert!(report.collections[0].max_distance < 1e-9, "{report:?}");
        assert!(report.collections[0].changes.is_empty(), "{report:?}");
        let firing = engine.evaluate_alerts(&AlertRules::default()).unwrap();
        assert!(firing.iter().all(|alert| alert.name != "embedding_drift"));
    }
    {
        // Another backend and one thread: recorded as changed, but no drift.
        let options = EmbedderOptions {
            backend: Backend::CandleCpu,
            threads: 1,
            ..EmbedderOptions::default()
        };
        let engine = engine_with(dir.path(), load(&model_dir, options));
        let report = engine.check_drift().unwrap();
        let check = &report.collections[0];
        eprintln!(
            "candle on 1 thread: largest canary distance {:.2e}",
            check.max_distance
        );
        assert!(!check.drifted, "{report:?}");
        assert!(check.max_distance < DRIFT_THRESHOLD / 10.0, "{report:?}");
        assert!(check.changes.iter().any(|c| c.starts_with("backend:")));
    }
    let altered = dir.path().join("altered-model");
    altered_copy(&model_dir, &altered);
    {
        let engine = engine_with(dir.path(), load(&altered, EmbedderOptions::default()));
        let report = engine.check_drift().unwrap();
        let check = &report.collections[0];
        eprintln!(
            "altered weights: largest canary distance {:.2e}",
            check.max_distance
        );
        assert!(check.drifted, "{report:?}");
        assert_eq!(
            check.changes.len(),
            1,
            "only the weights changed: {:?}",
            check.changes
        );
        assert!(check.changes[0].starts_with("model file model.safetensors: sha256"));
        let firing = engine.evaluate_alerts(&AlertRules::default()).unwrap();
        let drift = firing
            .iter()
            .find(|alert| alert.name == "embedding_drift")
            .expect("the drift alert fires");
        assert_eq!(drift.severity, "critical");
        assert!(drift.summary.contains("`notes`"), "{}", drift.summary);
        assert!(
            drift.summary.contains("model.safetensors"),
            "{}",
            drift.summary
        );
        let fired = engine
            .events(&EventQuery {
                after: 0,
                types: vec!["alert.fired".to_owned()],
                limit: 10,
            })
            .unwrap();
        assert!(
            fired
                .iter()
                .any(|event| event.subject.as_deref() == Some("embedding_drift"))
        );

        // A deleted collection's canaries go with it.
        assert!(engine.delete_collection("notes").unwrap());
        assert!(engine.check_drift().unwrap().collections.is_empty());
    }
    let records = SqliteRecords::open(&dir.path().join("memory.sqlite")).unwrap();
    assert!(records.state_keys("canaries/").unwrap().is_empty());
}

/// A collection moved to another model is not drift: its canaries are pinned again at the
/// switch, with the new model's vectors.
#[test]
fn a_switch_to_another_model_pins_the_canaries_again() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(
        plans.path().join("plan.md"),
        "# Plan\n\n- [ ] Écrire le client HTTP\n- [ ] Ajouter le cache\n",
    )
    .unwrap();
    let engine = engine_with(
        dir.path(),
        load(
            &mnemo_embed::default_model_dir(),
            EmbedderOptions::default(),
        ),
    );
    let tasks_only = mnemo_engine::IndexOptions {
        passages: false,
        ..mnemo_engine::IndexOptions::default()
    };
    engine
        .index(
            &[plans.path().to_owned()],
            &tasks_only,
            &mnemo_engine::Quiet,
        )
        .unwrap();
    engine
        .migrate_collection(
            &mnemo_engine::MigrateOptions {
                collection: "tasks".into(),
                to: "all-mpnet-base-v2".into(),
                max_texts_per_second: None,
                eval: Vec::new(),
            },
            &mnemo_engine::Quiet,
        )
        .unwrap();
    engine.switch_model("tasks", false).unwrap();
    let report = engine.check_drift().unwrap();
    let tasks = report
        .collections
        .iter()
        .find(|check| check.collection == "tasks")
        .expect("`tasks` is checked");
    assert!(!tasks.drifted, "{tasks:?}");
    assert!(tasks.max_distance < 1e-6, "{tasks:?}");
}
