//! Drift canaries: a pinned set of texts whose vectors are stored when a collection of the
//! model's vectors is created, and embedded again at start and every few minutes. mnemo's
//! encoder is exact and deterministic, so the same text must give the same vector: a cosine
//! distance above [`DRIFT_THRESHOLD`] means the vectors written before and the queries embedded
//! now no longer agree, and searches silently lose quality. What could have changed is
//! recorded beside the vectors (the model's files by sha256, the backend, the hardware, mnemo's
//! version), so the alert says which did.
//!
//! Canaries are kept in the relational store's state table (`canaries/{collection}`): an
//! engine without one keeps none, and says so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::models::CollectionModel;
use crate::{DENSE_VECTOR, Engine, EngineError, Result};

/// Above this cosine distance between a canary's pinned vector and today's, the model drifted.
pub const DRIFT_THRESHOLD: f64 = 1e-4;

const STATE_PREFIX: &str = "canaries/";

/// The canary texts: French and English, short and long (one beyond the model's word
/// pieces, so truncation is covered), accents, code, numbers, a Markdown task line.
pub const CANARY_TEXTS: &[&str] = &[
    "Add a retry with backoff to the embedding client",
    "Migrer la base de données vers PostgreSQL 16 avant la fin du trimestre",
    "- [ ] **P0** Corriger la fuite mémoire du serveur MCP (#142)",
    "Qdrant",
    "Les tâches bloquées apparaissent en rouge ; les tâches terminées sont grisées.",
    "fn main() { println!(\"{}\", 2 + 2); }",
    "Mesurer la latence p99 : objectif < 50 ms pour 10 000 requêtes/s, sinon rollback.",
    "Über-naïve façade: Ελληνικά, русский, 日本語, emoji 🚀 and numbers 3.14159",
    "The plan moves embeddings to a local GPU to leave the cloud API; the phase report \
     says the migration is 45% done, the vector store holds 1.2 million points, and the \
     team still has to write the rollback procedure, the load tests and the monitoring \
     dashboards. Each of these tasks has an owner, a priority and a deadline, and the \
     review on Friday decides whether phase 3 starts. The memory of the agents keeps what \
     each session learned, scoped by user, agent and run, and forgets what expired. \
     Duplicated tasks across plans are merged when their titles mean the same thing, even \
     when one is written in French and the other in English, which is the whole point of \
     searching by meaning rather than by keywords. Long texts are cut at the model's \
     limit of word pieces, and this sentence is here to make sure that the cut happens \
     at the same place every time, on every machine, with every backend that mnemo runs. \
     Le plan de développement décrit ensuite les gestionnaires qui partagent une seule \
     interface, le bus d'événements dont les événements critiques sont persistés, la \
     passerelle qui les liste, la surveillance par Prometheus avec ses alertes, les \
     vérifications de santé et la reprise automatique après une panne. Chaque phase a son \
     rapport, chaque rapport annonce une progression, et la progression annoncée ne dit \
     pas toujours la vérité : c'est pourquoi mnemo la recalcule à partir des tâches \
     elles-mêmes, terminées, en cours, bloquées ou ouvertes, et montre l'écart.",
];

/// What could make the same text embed differently, recorded when canaries are pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelFingerprint {
    pub model: String,
    /// sha256 of each file of the model folder that the encoder reads.
    pub files: BTreeMap<String, String>,
    pub backend: String,
    /// The processor: architecture, model name and the vector instructions used.
    pub hardware: String,
    pub mnemo_version: String,
}

/// The canaries of one collection, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PinnedCanaries {
    collection: String,
    pinned_at: String,
    fingerprint: ModelFingerprint,
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

/// One collection's canaries embedded again.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanaryCheck {
    pub collection: String,
    pub pinned_at: String,
    /// The largest cosine distance between a pinned vector and today's.
    pub max_distance: f64,
    /// The canary text that moved most (its first words).
    pub worst_text: String,
    pub drifted: bool,
    /// What differs from when the canaries were pinned, in words (empty: nothing recorded).
    pub changes: Vec<String>,
}

/// The last check of every collection's canaries.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftReport {
    pub checked_at: String,
    pub threshold: f64,
    pub collections: Vec<CanaryCheck>,
}

impl DriftReport {
    pub fn max_distance(&self) -> f64 {
        self.collections
            .iter()
            .map(|check| check.max_distance)
            .fold(0.0, f64::max)
    }

    pub fn drifted(&self) -> impl Iterator<Item = &CanaryCheck> {
        self.collections.iter().filter(|check| check.drifted)
    }
}

/// The files of a model folder that decide its vectors.
const MODEL_FILES: &[&str] = &[
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// Hashes already computed, by path, with the length and modification time they were
/// computed at: a model file is hashed again only when it changed on disk, not at every
/// collection created or every check.
type HashCache = Mutex<HashMap<PathBuf, (u64, Option<SystemTime>, String)>>;

fn hash_cache() -> &'static HashCache {
    static CACHE: OnceLock<HashCache> = OnceLock::new();
    CACHE.get_or_init(HashCache::default)
}

fn sha256_cached(path: &Path) -> std::io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    let stamp = (metadata.len(), metadata.modified().ok());
    let mut cache = crate::lock(hash_cache());
    if let Some((len, modified, hash)) = cache.get(path)
        && (*len, *modified) == stamp
        && stamp.1.is_some()
    {
        return Ok(hash.clone());
    }
    let hash = mnemo_embed::catalog::sha256_file(path)?;
    cache.insert(path.to_owned(), (stamp.0, stamp.1, hash.clone()));
    Ok(hash)
}

/// The processor, as far as it can change a floating-point result.
fn hardware() -> String {
    let mut parts = vec![std::env::consts::ARCH.to_owned()];
    #[cfg(target_os = "linux")]
    if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(name) = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
    {
        parts.push(name.1.trim().to_owned());
    }
    #[cfg(target_arch = "x86_64")]
    {
        let features: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        parts.push(format!("[{}]", features.join(",")));
    }
    parts.join(" ")
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 1.0;
    }
    1.0 - dot / (norm_a.sqrt() * norm_b.sqrt())
}

fn short(text: &str) -> String {
    let mut words: String = text.chars().take(48).collect();
    if words.len() < text.len() {
        words.push('…');
    }
    words
}

/// What differs between two fingerprints, in words.
fn changes(pinned: &ModelFingerprint, now: &ModelFingerprint) -> Vec<String> {
    let mut changes = Vec::new();
    if pinned.model != now.model {
        changes.push(format!("model: {} → {}", pinned.model, now.model));
    }
    let names: std::collections::BTreeSet<&String> =
        pinned.files.keys().chain(now.files.keys()).collect();
    for name in names {
        match (pinned.files.get(name), now.files.get(name)) {
            (Some(before), Some(after)) if before != after => changes.push(format!(
                "model file {name}: sha256 {} → {}",
                &before[..before.len().min(12)],
                &after[..after.len().min(12)]
            )),
            (Some(_), None) => changes.push(format!("model file {name}: gone")),
            (None, Some(_)) => changes.push(format!("model file {name}: new")),
            _ => {}
        }
    }
    if pinned.backend != now.backend {
        changes.push(format!("backend: {} → {}", pinned.backend, now.backend));
    }
    if pinned.hardware != now.hardware {
        changes.push(format!("hardware: {} → {}", pinned.hardware, now.hardware));
    }
    if pinned.mnemo_version != now.mnemo_version {
        changes.push(format!(
            "mnemo: {} → {}",
            pinned.mnemo_version, now.mnemo_version
        ));
    }
    changes
}

impl Engine {
    /// What the vectors of this engine's model depend on, now.
    pub fn model_fingerprint(&self) -> Result<ModelFingerprint> {
        self.fingerprint_of(&self.default_model())
    }

    /// What the vectors of `model` depend on, now.
    fn fingerprint_of(&self, model: &CollectionModel) -> Result<ModelFingerprint> {
        let mut files = BTreeMap::new();
        for name in MODEL_FILES {
            let Some(dir) = model.embedder.model_dir() else {
                break;
            };
            let path = dir.join(name);
            if path.is_file() {
                let hash = sha256_cached(&path).map_err(|err| EngineError::UnreadablePath {
                    path: path.display().to_string(),
                    reason: err.to_string(),
                })?;
                files.insert((*name).to_owned(), hash);
            }
        }
        Ok(ModelFingerprint {
            model: model.id.clone(),
            files,
            backend: model.embedder.backend_name(),
            hardware: hardware(),
            mnemo_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }

    /// Whether `collection` holds its model's vectors (its `dense` vector, or its only one,
    /// has the model's dimension): those are the collections whose canaries mean something.
    fn holds_model_vectors(&self, collection: &str, model: &CollectionModel) -> Result<bool> {
        let config = self.store().collection_config(collection)?;
        let params = config
            .vectors
            .get(DENSE_VECTOR)
            .or_else(|| config.vectors.get(""));
        Ok(params.is_some_and(|params| params.size == model.dim()))
    }

    /// Stores the canaries of `collection` with today's vectors (`drift.pinned`), unless it
    /// has some or holds no vectors of this model; whether it pinned.
    pub fn pin_canaries(&self, collection: &str) -> Result<bool> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        let key = format!("{STATE_PREFIX}{collection}");
        if records.state(&key)?.is_some() {
            return Ok(false);
        }
        let model = self.collection_model(collection)?;
        if !self.holds_model_vectors(collection, &model)? {
            return Ok(false);
        }
        let fingerprint = self.fingerprint_of(&model)?;
        let vectors = model.embedder.embed(CANARY_TEXTS)?.into_vecs();
        let pinned = PinnedCanaries {
            collection: collection.to_owned(),
            pinned_at: mnemo_records::timestamp(chrono::Utc::now()),
            fingerprint,
            texts: CANARY_TEXTS.iter().map(|text| (*text).to_owned()).collect(),
            vectors,
        };
        let event = mnemo_records::NewEvent::new(
            "drift.pinned",
            Some(collection.to_owned()),
            json!({ "model": pinned.fingerprint.model, "texts": pinned.texts.len(),
                    "backend": pinned.fingerprint.backend }),
        );
        let value = serde_json::to_value(&pinned).map_err(|err| {
            EngineError::Records(mnemo_records::RecordsError::Corrupt {
                id: format!("state `{key}`"),
                message: err.to_string(),
            })
        })?;
        records.put_state(&key, &value, Some(&event))?;
        Ok(true)
    }

    /// Forgets the canaries of a deleted collection.
    pub(crate) fn forget_canaries(&self, collection: &str) {
        if let Some(records) = &self.records
            && let Err(err) = records.delete_state(&format!("{STATE_PREFIX}{collection}"))
        {
            eprintln!("warning: the canaries of `{collection}` could not be removed: {err}");
        }
    }

    /// Embeds every collection's canaries again and compares them with the pinned vectors
    /// (pinning those of collections that have none yet, and forgetting those of collections
    /// gone); the report is kept for the alerts ([`Engine::drift_report`]).
    pub fn check_drift(&self) -> Result<DriftReport> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        for collection in self.store().list_collections()? {
            self.pin_canaries(&collection)?;
        }
        let collections = self.store().list_collections()?;
        let mut fresh: BTreeMap<(String, Vec<String>), Vec<Vec<f32>>> = BTreeMap::new();
        let mut checks = Vec::new();
        for key in records.state_keys(STATE_PREFIX)? {
            let collection = &key[STATE_PREFIX.len()..];
            if !collections.iter().any(|name| name == collection) {
                records.delete_state(&key)?;
                continue;
            }
            let Some(value) = records.state(&key)? else {
                continue;
            };
            let pinned: PinnedCanaries = serde_json::from_value(value).map_err(|err| {
                mnemo_records::RecordsError::Corrupt {
                    id: format!("state `{key}`"),
                    message: format!("not canaries: {err}"),
                }
            })?;
            let model = self.collection_model(collection)?;
            let now = self.fingerprint_of(&model)?;
            let fresh_key = (model.id.clone(), pinned.texts.clone());
            if !fresh.contains_key(&fresh_key) {
                let vectors = model.embedder.embed(&pinned.texts)?.into_vecs();
                fresh.insert(fresh_key.clone(), vectors);
            }
            let today = &fresh[&fresh_key];
            let (mut worst, mut max_distance) = (0, 0.0f64);
            for (index, (before, after)) in pinned.vectors.iter().zip(today).enumerate() {
                let distance = if before.len() == after.len() {
                    cosine_distance(before, after)
                } else {
                    1.0
                };
                if distance > max_distance {
                    (worst, max_distance) = (index, distance);
                }
            }
            checks.push(CanaryCheck {
                collection: collection.to_owned(),
                pinned_at: pinned.pinned_at.clone(),
                max_distance,
                worst_text: short(&pinned.texts[worst]),
                drifted: max_distance > DRIFT_THRESHOLD,
                changes: changes(&pinned.fingerprint, &now),
            });
        }
        let report = DriftReport {
            checked_at: mnemo_records::timestamp(chrono::Utc::now()),
            threshold: DRIFT_THRESHOLD,
            collections: checks,
        };
        *crate::lock(&self.drift) = Some(report.clone());
        Ok(report)
    }

    /// The last drift check, if one ran.
    pub fn drift_report(&self) -> Option<DriftReport> {
        crate::lock(&self.drift).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> ModelFingerprint {
        ModelFingerprint {
            model: "m".into(),
            files: [("model.safetensors".to_owned(), "a".repeat(64))].into(),
            backend: "cpu (fused, 2 threads)".into(),
            hardware: "x86_64 [avx2,fma]".into(),
            mnemo_version: "0.1.0".into(),
        }
    }

    #[test]
    fn changes_name_what_differs() {
        let pinned = fingerprint();
        assert!(changes(&pinned, &pinned).is_empty());
        let mut now = fingerprint();
        now.files.insert("model.safetensors".into(), "b".repeat(64));
        now.hardware = "aarch64".into();
        let said = changes(&pinned, &now);
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].starts_with("model file model.safetensors: sha256 aaaaaaaaaaaa → bbbbbbbbbbbb")
        );
        assert_eq!(said[1], "hardware: x86_64 [avx2,fma] → aarch64");
    }

    #[test]
    fn cosine_distance_of_equal_and_opposite_vectors() {
        assert!(cosine_distance(&[1.0, 2.0], &[1.0, 2.0]).abs() < 1e-12);
        assert!((cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-12);
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 0.0]), 1.0);
    }
}
