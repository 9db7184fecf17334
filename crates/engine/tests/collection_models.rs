//! The model is a property of each collection: one engine holds collections of two real
//! models, indexes and queries each with its own, keeps that across a restart, and an alias
//! moves a name from one collection to another in one write.

mod common;

use std::fs;

use mnemo_engine::{IndexOptions, Quiet, SearchMode, SearchOptions};
use mnemo_store::{DENSE_VECTOR, REGISTRY_COLLECTION, ScrollRequest, Vector, VectorSelection};

const MPNET: &str = "all-mpnet-base-v2";
const MINILM: &str = "all-MiniLM-L6-v2";

const PLAN: &str = "# Plan\n\n## Phase 1\n\n- [ ] **1.1** Écrire le client HTTP pour l'API de recherche\n- [ ] **1.2** Ajouter un cache LRU devant la base\n- [x] **1.3** Mesurer la latence des requêtes\n\n## Phase 2\n\n- [ ] **2.1** Documenter le déploiement sur Kubernetes\n- [ ] **2.2** Write the release notes\n";

fn options(collection: &str) -> IndexOptions {
    IndexOptions {
        tasks_collection: collection.to_owned(),
        passages: false,
        ..IndexOptions::default()
    }
}

fn search(engine: &mnemo_engine::Engine, collection: &str, query: &str) -> Vec<String> {
    engine
        .search(
            query,
            &SearchOptions {
                collection: collection.to_owned(),
                limit: 3,
                mode: SearchMode::Dense,
                ..SearchOptions::default()
            },
        )
        .unwrap()
        .iter()
        .map(|hit| hit.payload["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn collections_of_two_models_each_answer_with_their_own() {
    assert!(
        mnemo_embed::model_dir_for(MPNET).exists(),
        "{MPNET} is needed: `make model` installs it"
    );
    let data = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    fs::write(plans.path().join("plan.md"), PLAN).unwrap();
    {
        let engine = common::engine(data.path());
        engine
            .index(&[plans.path().to_owned()], &options("small"), &Quiet)
            .unwrap();
        let mpnet = engine.model_named(MPNET).unwrap();
        engine.ensure_collection_for("large", &mpnet).unwrap();
        let summary = engine
            .index(&[plans.path().to_owned()], &options("large"), &Quiet)
            .unwrap();
        assert_eq!(summary.tasks, 5);

        // Each collection's points carry its model and vectors of its dimension.
        for (collection, model, dimension) in [("small", MINILM, 384), ("large", MPNET, 768)] {
            let mut request = ScrollRequest::new(10);
            request.with_vectors = VectorSelection::Names(vec![DENSE_VECTOR.to_owned()]);
            let page = engine.store().scroll(collection, request).unwrap();
            assert_eq!(page.points.len(), 5);
            for record in &page.points {
                assert_eq!(record.payload["model"], model, "{collection}");
                let Some(Vector::Dense(vector)) = record.vectors.get(DENSE_VECTOR) else {
                    panic!("{collection}: no dense vector");
                };
                assert_eq!(vector.len(), dimension, "{collection}");
            }
            assert_eq!(engine.collection_model(collection).unwrap().id, model);
            let binding = engine.registry().binding(collection).unwrap();
            assert_eq!(
                (binding.model.as_str(), binding.dimension),
                (model, dimension)
            );
            assert_eq!(binding.provider, "local");
        }
        // Queries are embedded by the collection's model: the same question finds the same
        // task in both (a MiniLM query vector could not even be compared with MPNet's).
        for collection in ["small", "large"] {
            assert_eq!(
                search(&engine, collection, "a cache in front of the database")[0],
                "Ajouter un cache LRU devant la base",
                "{collection}"
            );
        }
        let served = engine.served_models();
        let of = |name: &str| served.iter().find(|m| m.name == name).unwrap().clone();
        assert!(of(MPNET).loaded && of(MPNET).collections == vec!["large".to_owned()]);
        assert_eq!(of(MINILM).collections, vec!["small".to_owned()]);

        // A second index run of the same files embeds nothing: the model matches.
        let again = engine
            .index(&[plans.path().to_owned()], &options("large"), &Quiet)
            .unwrap();
        assert_eq!(again.embedded, 0);
    }

    // After a restart the engine still knows which model each collection needs.
    let engine = common::engine(data.path());
    assert_eq!(engine.collection_model("large").unwrap().id, MPNET);
    assert_eq!(
        search(&engine, "large", "Kubernetes deployment docs")[0],
        "Documenter le déploiement sur Kubernetes"
    );

    // An alias: one name, moved between collections in one write; listings show the names
    // people use, never the registry.
    engine.registry().set_alias("plans", "small").unwrap();
    assert_eq!(engine.collection_model("plans").unwrap().id, MINILM);
    let listed = engine.store().list_collections().unwrap();
    assert_eq!(listed, vec!["large".to_owned(), "plans".to_owned()]);
    engine.registry().set_alias("plans", "large").unwrap();
    assert_eq!(engine.collection_model("plans").unwrap().id, MPNET);
    assert_eq!(
        search(&engine, "plans", "release notes")[0],
        "Write the release notes"
    );
    assert!(
        !engine
            .store()
            .list_collections()
            .unwrap()
            .contains(&REGISTRY_COLLECTION.to_owned())
    );
    assert!(
        engine
            .store()
            .upsert(REGISTRY_COLLECTION, Vec::new())
            .is_err(),
        "the registry is not writable through the store"
    );
    assert!(engine.registry().set_alias("other", "missing").is_err());
}
