//! Queries asked at the same moment are embedded in one forward pass: each caller still gets
//! its own text's vector (the same as that text embedded alone), and one caller's bad query
//! fails that caller only.

mod common;

use std::sync::{Arc, Barrier};

#[test]
fn concurrent_queries_get_their_own_vectors_and_their_own_errors() {
    let data = tempfile::tempdir().unwrap();
    let engine = Arc::new(common::engine(data.path()));
    // 24 callers and one with an empty query, released together, twice (the second round
    // meets a worker that expects a batch); new texts each round, so the cache misses.
    for round in 0..2 {
        let texts: Vec<String> = (0..24)
            .map(|i| match i % 3 {
                0 => format!("Ajouter un cache LRU pour les embeddings, tâche {round}.{i}"),
                1 => format!("Write the migration guide for release {round}.{i}"),
                _ => format!("Corriger la fuite mémoire du serveur {i} sous charge ({round})"),
            })
            .collect();
        let alone: Vec<Vec<f32>> = texts
            .iter()
            .map(|text| {
                engine
                    .embedder()
                    .embed(&[text.as_str()])
                    .unwrap()
                    .row(0)
                    .to_vec()
            })
            .collect();
        let start = Arc::new(Barrier::new(texts.len() + 1));
        let callers: Vec<_> = texts
            .iter()
            .cloned()
            .chain(std::iter::once("   ".to_owned()))
            .map(|text| {
                let engine = Arc::clone(&engine);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    engine.query_vector(&text)
                })
            })
            .collect();
        let answers: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        for (i, expected) in alone.iter().enumerate() {
            let got = answers[i].as_ref().expect("a good query is answered");
            let cosine: f32 = got.iter().zip(expected).map(|(a, b)| a * b).sum();
            assert!(
                cosine > 0.9999,
                "query {i}: cosine {cosine} with its vector alone"
            );
        }
        let refused = answers[texts.len()].as_ref().unwrap_err().to_string();
        assert!(refused.contains("empty"), "{refused}");
    }
}
