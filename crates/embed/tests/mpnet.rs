//! all-mpnet-base-v2 against sentence-transformers' own output: the 400 texts of the shared
//! fixtures embedded by sentence-transformers 6.2.0 (`bench/make-mpnet-fixtures.py`, the
//! versions of `../shared/bench/requirements.txt`), kept zstd-compressed beside this test.
//!
//! The model must be installed: `make model` fetches it (`mnemo models fetch all-mpnet-base-v2`).

use mnemo_embed::{Backend, EmbedError, Embedder, EmbedderOptions, model_dir_for};
use serde_json::Value;

const MODEL: &str = "all-mpnet-base-v2";

fn load(backend: Backend) -> Result<Embedder, EmbedError> {
    let options = EmbedderOptions {
        backend,
        ..EmbedderOptions::default()
    };
    Embedder::load(&model_dir_for(MODEL), options)
}

struct Reference {
    text: String,
    n_tokens: usize,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mpnet-reference.jsonl.zst");
    let compressed = std::fs::read(&path).expect("the MPNet fixture");
    let body = zstd::decode_all(compressed.as_slice()).expect("zstd");
    let body = String::from_utf8(body).expect("UTF-8");
    body.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("fixture line is JSON");
            Reference {
                text: row["text"].as_str().expect("text").to_owned(),
                n_tokens: row["n_tokens"].as_u64().expect("n_tokens") as usize,
                embedding: row["embedding"]
                    .as_array()
                    .expect("embedding")
                    .iter()
                    .map(|v| v.as_f64().expect("float") as f32)
                    .collect(),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn every_reference_text_matches_sentence_transformers() {
    let refs = references();
    assert_eq!(refs.len(), 400, "the fixture has 400 rows");
    let embedder =
        load(Backend::Cpu).unwrap_or_else(|e| panic!("fetch the model first (`make model`): {e}"));
    assert_eq!(embedder.dim(), 768);
    assert_eq!(embedder.max_seq_length(), Some(384));
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let got = embedder.embed(&texts).expect("embedding the fixture texts");
    let mut cosines: Vec<(f64, usize)> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (cosine(got.row(i), &r.embedding), i))
        .collect();
    cosines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (min, row) = cosines[0];
    let median = cosines[cosines.len() / 2].0;
    println!(
        "all-mpnet-base-v2 parity over {} texts: min cosine {min:.12} (1 - min = {:.1e}, row {row}), median {median:.12}",
        refs.len(),
        1.0 - min
    );
    assert!(min >= 0.9999, "min cosine {min} below 0.9999 at row {row}");

    let limit = 384;
    for (i, r) in refs.iter().enumerate() {
        let count = got.token_counts()[i];
        if r.n_tokens > limit {
            assert!(
                count > limit && count <= r.n_tokens,
                "token count of row {i}: {count}"
            );
        } else {
            assert_eq!(count, r.n_tokens, "token count of row {i}");
        }
    }
    let truncated: Vec<usize> = (0..refs.len())
        .filter(|&i| refs[i].n_tokens > limit)
        .collect();
    assert!(!truncated.is_empty(), "the fixture exercises truncation");
    assert_eq!(got.truncated(), truncated.as_slice());
}

#[test]
fn the_same_text_alone_or_in_a_batch_and_the_pad_token_in_a_text() {
    let embedder =
        load(Backend::Cpu).unwrap_or_else(|e| panic!("fetch the model first (`make model`): {e}"));
    // `<pad>` is a special token of MPNet's tokenizer: its position is the padding index.
    let texts = ["Migrer les vecteurs vers Qdrant", "a <pad> b", "🚀"];
    let together = embedder.embed(&texts).expect("batch");
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder.embed(&[text]).expect("single");
        let diff = alone
            .row(0)
            .iter()
            .zip(together.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-6, "text {i} differs by {diff}");
    }
}

#[test]
fn candle_refuses_mpnet_by_name() {
    let err = load(Backend::CandleCpu)
        .err()
        .expect("candle runs BERT only");
    let message = err.to_string();
    assert!(
        message.contains("MPNet") && message.contains("cpu backend"),
        "{message}"
    );
}
