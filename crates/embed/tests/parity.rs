//! The embedder against sentence-transformers' own output (`shared/fixtures`), and the fused
//! CPU encoder against candle-transformers' BERT on texts the fixtures do not hold.
//!
//! These tests use the real model: `make model` fetches it (`make test` does so first).

use mnemo_embed::{Backend, EmbedError, Embedder, EmbedderOptions, default_model_dir};
use mnemo_testkit::shared_dir;
use serde_json::Value;

fn load(backend: Backend) -> Embedder {
    let options = EmbedderOptions {
        backend,
        ..EmbedderOptions::default()
    };
    Embedder::load(&default_model_dir(), options)
        .unwrap_or_else(|e| panic!("the model must be fetched first (`make model`): {e}"))
}

struct Reference {
    text: String,
    n_tokens: usize,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = shared_dir().join("fixtures/minilm-reference.jsonl");
    let body = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} (set MNEMO_SHARED_DIR): {e}", path.display()));
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

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_reference_text_matches_sentence_transformers() {
    let refs = references();
    assert_eq!(refs.len(), 400, "the fixture has 400 rows");
    let embedder = load(Backend::Cpu);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let got = embedder.embed(&texts).expect("embedding the fixture texts");
    assert_eq!(got.len(), refs.len());
    assert_eq!(got.dim(), 384);

    let mut cosines: Vec<f64> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| cosine(got.row(i), &r.embedding))
        .collect();
    let worst = refs
        .iter()
        .enumerate()
        .map(|(i, r)| max_abs_diff(got.row(i), &r.embedding))
        .fold(0.0, f32::max);
    let (min_index, _) = cosines
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("rows");
    let min_text: String = refs[min_index].text.chars().take(60).collect();
    cosines.sort_by(f64::total_cmp);
    let (min, median) = (cosines[0], cosines[cosines.len() / 2]);
    println!(
        "parity over {} texts: min cosine {min:.9} (1 - min = {:.1e}, row {min_index}: {min_text:?}), median {median:.9}, max |diff| {worst:.2e}",
        refs.len(),
        1.0 - min
    );
    assert!(
        min >= 0.9999,
        "min cosine {min} below 0.9999 at row {min_index}"
    );

    for (i, r) in refs.iter().enumerate() {
        let count = got.token_counts()[i];
        if r.n_tokens > 256 {
            // Cut before tokenizing: past the window, and never more than the whole text.
            assert!(
                count > 256 && count <= r.n_tokens,
                "token count of row {i}: {count}"
            );
        } else {
            assert_eq!(count, r.n_tokens, "token count of row {i}");
        }
    }
    let expected_truncated: Vec<usize> = (0..refs.len())
        .filter(|&i| refs[i].n_tokens > 256)
        .collect();
    assert_eq!(got.truncated(), expected_truncated.as_slice());
    assert_eq!(
        expected_truncated.len(),
        32,
        "the fixture has 32 texts over 256 word pieces"
    );
}

#[test]
fn candle_reference_backend_matches_sentence_transformers_too() {
    let refs = references();
    let embedder = load(Backend::CandleCpu);
    let sample: Vec<&Reference> = refs.iter().step_by(5).collect();
    let texts: Vec<&str> = sample.iter().map(|r| r.text.as_str()).collect();
    let got = embedder.embed(&texts).expect("candle embeds");
    for (i, r) in sample.iter().enumerate() {
        let c = cosine(got.row(i), &r.embedding);
        assert!(c >= 0.9999, "candle row {i}: cosine {c}");
    }
}

/// Texts the fixtures do not hold: the task lines past the first 3,000 of the benchmark
/// file, plus corpus paragraphs of every size. The fused encoder and candle's BERT are two
/// independent implementations of the same pipeline; they must agree everywhere.
#[test]
fn fused_encoder_agrees_with_candle_on_unseen_texts() {
    let tasks =
        std::fs::read_to_string(shared_dir().join("bench/tasks-public.txt")).expect("tasks file");
    let mut texts: Vec<String> = tasks
        .lines()
        .skip(20_000)
        .step_by(37)
        .filter(|t| !t.trim().is_empty())
        .take(120)
        .map(str::to_owned)
        .collect();
    // Long texts too: whole plan files cut at growing sizes, to cover 2..256+ word pieces.
    let plan = std::fs::read_to_string(shared_dir().join("seeds/002_9d49f9aeb5c21e00.txt"))
        .expect("seed plan");
    for size in [40, 300, 700, 1500, 4000] {
        texts.push(plan.chars().skip(size).take(size).collect());
    }
    let fused = load(Backend::Cpu).embed(&texts).expect("fused");
    let candle = load(Backend::CandleCpu).embed(&texts).expect("candle");
    let mut min = 1.0f64;
    for i in 0..texts.len() {
        min = min.min(cosine(fused.row(i), candle.row(i)));
        let diff = max_abs_diff(fused.row(i), candle.row(i));
        assert!(diff < 1e-5, "text {i}: max |diff| {diff}");
    }
    println!(
        "fused vs candle over {} unseen texts: min cosine {min:.9}",
        texts.len()
    );
    assert!(
        !fused.truncated().is_empty(),
        "the long texts exercise truncation"
    );
}

#[test]
fn a_text_embeds_the_same_alone_and_in_any_batch() {
    let embedder = load(Backend::Cpu);
    let texts = [
        "Migrer les vecteurs vers Qdrant",
        "a",
        "Écrire les tests d'intégration du client unifié avec un serveur réel et un vrai port",
        "🚀",
    ];
    let together = embedder.embed(&texts).expect("batch");
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder.embed(&[text]).expect("single");
        let diff = max_abs_diff(alone.row(0), together.row(i));
        assert!(
            diff < 1e-6,
            "text {i} differs by {diff} between batch and alone"
        );
        let norm: f32 = alone.row(0).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn empty_and_blank_texts_are_refused_with_their_index() {
    let embedder = load(Backend::Cpu);
    for (texts, index) in [
        (vec!["fine", "", "also fine"], 1),
        (vec!["fine", "ok", " \t\n "], 2),
        (vec!["\u{3000}"], 0),
    ] {
        match embedder.embed(&texts) {
            Err(EmbedError::EmptyText { index: got }) => assert_eq!(got, index, "{texts:?}"),
            other => panic!("expected EmptyText for {texts:?}, got {other:?}"),
        }
    }
    let empty: [&str; 0] = [];
    assert!(embedder.embed(&empty).expect("nothing to do").is_empty());
}

#[test]
fn token_counts_include_special_tokens_and_ignore_the_window() {
    let embedder = load(Backend::Cpu);
    assert_eq!(embedder.count_tokens("a").expect("count"), 3);
    let long = "word ".repeat(1000);
    assert_eq!(embedder.count_tokens(&long).expect("count"), 1002);
    assert_eq!(embedder.max_seq_length(), Some(256));
}

#[test]
fn a_missing_model_folder_says_how_to_fetch_it() {
    let dir = std::env::temp_dir().join("mnemo-no-such-model-dir");
    let error = Embedder::load(&dir, EmbedderOptions::default())
        .err()
        .expect("must fail");
    let message = error.to_string();
    assert!(message.contains("make model"), "{message}");
    assert!(message.contains(&dir.display().to_string()), "{message}");
}
