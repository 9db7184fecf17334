//! mnemo's engine: what the CLI and the server do, over a [`VectorStore`] and an [`Embedder`].
//!
//! - [`Engine::index`]: Markdown → tasks and passages → vectors → store, incrementally
//!   ([`index`] explains how unchanged text is never embedded twice).
//! - [`Engine::search`] (dense or hybrid), [`Engine::similar`], [`Engine::duplicates`].
//! - [`parse_filter`]: the small filter language of `--filter`.
//!
//! Collections made by the engine hold two vectors per point: `dense` (the model's, cosine)
//! and `bm25` (keyword weights, scored with IDF by the store), and the payload of
//! `mnemo tasks --json` plus `kind`, `model`, `indexed_at` and bookkeeping fields.

mod bm25;
mod cache;
mod filter_expr;
mod index;
mod listing;
mod payload;
mod search;
mod sources;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{CacheStats, QueryCache};
pub use filter_expr::{FilterError, parse_filter};
pub use index::{IndexOptions, IndexProgress, IndexSummary, Quiet};
pub use listing::{TaskPage, TaskQuery};
use mnemo_embed::Embedder;
pub use mnemo_store::VectorStore;
pub use payload::{passage_json, task_json};
pub use search::{DuplicateCluster, SearchMode, SearchOptions};
pub use sources::{Skipped, SourceFile, collect_sources};

pub const TASKS_COLLECTION: &str = "tasks";
pub const PASSAGES_COLLECTION: &str = "passages";
/// The model's vector in engine collections.
pub const DENSE_VECTOR: &str = "dense";
/// The model's vector of a task's title alone, in engine collections, for the tasks whose
/// `dense` vector embeds a body too.
pub const TITLE_VECTOR: &str = "title";
/// The payload field holding an item's file name as `bm25::named` gives names.
pub(crate) const FILE_KEY_FIELD: &str = "file_key";
/// The BM25 keyword vector in engine collections.
pub const KEYWORD_VECTOR: &str = "bm25";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] mnemo_store::StoreError),
    #[error(transparent)]
    Embed(#[from] mnemo_embed::EmbedError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("no point or task with id `{id}` in collection `{collection}`")]
    UnknownItem { collection: String, id: String },
    #[error("collection `{name}` cannot be used for mnemo's tasks: {reason}")]
    IncompatibleCollection { name: String, reason: String },
    #[error("the {0} thread stopped unexpectedly")]
    WorkerPanicked(&'static str),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The engine: one store, one model, shared by every caller of a process.
pub struct Engine {
    store: Arc<dyn VectorStore>,
    embedder: Arc<Embedder>,
    model_id: String,
    query_cache: QueryCache,
}

impl Engine {
    /// `model_id` names the model in payloads and keys the reuse of stored vectors: two
    /// different models must never share one.
    pub fn new(store: Arc<dyn VectorStore>, embedder: Arc<Embedder>, model_id: &str) -> Self {
        Self {
            store,
            embedder,
            model_id: model_id.to_owned(),
            query_cache: QueryCache::new(1024, Duration::from_secs(600)),
        }
    }

    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    pub fn query_cache(&self) -> &QueryCache {
        &self.query_cache
    }
}
