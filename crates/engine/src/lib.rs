//! mnemo's engine: what the CLI and the server do, over a [`VectorStore`] and an [`Embedder`].
//!
//! - [`Engine::index`]: Markdown → tasks and passages → vectors → store, incrementally
//!   ([`index`] explains how unchanged text is never embedded twice).
//! - [`Engine::search`] (dense or hybrid), [`Engine::similar`], [`Engine::duplicates`].
//! - [`Engine::query`]: one search as every door receives it (text or vector, any
//!   collection, paged); [`check_limit`] and [`MAX_RESULTS`] bound it.
//! - [`parse_filter`]: the small filter language of `--filter`.
//! - [`access`]: who may do what to which collection ([`Principal::authorize`]), for every door.
//! - [`JobQueue`] (`Engine::jobs`): background index jobs, one writer at a time, for every
//!   door that starts them; [`resolve_under_roots`] keeps them in the folders allowed.
//!
//! Collections made by the engine hold two vectors per point: `dense` (the model's, cosine)
//! and `bm25` (keyword weights, scored with IDF by the store), and the payload of
//! `mnemo tasks --json` plus `kind`, `model`, `indexed_at` and bookkeeping fields.

pub mod access;
pub mod alerts;
mod batcher;
mod bm25;
mod cache;
pub mod components;
pub mod drift;
mod events;
mod filter_expr;
mod index;
mod jobs;
mod listing;
pub mod memory;
pub mod migrate;
pub mod models;
mod payload;
mod query;
mod query_log;
mod search;
mod service;
mod sources;
mod watch;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

pub use access::{API_KEY_ENV, AccessError, ApiKey, KeyRing, MemoryOwner, Principal, Scope};
pub use cache::{CacheStats, QueryCache};
pub use events::MAX_EVENTS_PER_READ;
pub use filter_expr::{FilterError, parse_filter};
pub use index::{IndexOptions, IndexProgress, IndexSummary, Quiet, task_embed_text};
pub use jobs::{Job, JobQueue, JobState, resolve_under_roots};
pub use listing::{TaskPage, TaskQuery, under_section};
pub use migrate::{LabelledQuery, MigrateOptions, MigrationReport, MigrationState};
use mnemo_embed::Embedder;
pub use mnemo_records::{Event, EventQuery};
pub use models::{CollectionModel, ServedModel};
pub use service::ServiceSettings;
pub use watch::PlanWatcher;

use crate::batcher::QueryBatcher;
pub use mnemo_store::{DENSE_VECTOR, RegisteredStore, VectorStore};
pub use payload::{passage_json, task_json};
pub use query::{MAX_RESULTS, QueryRequest, check_limit};
pub use search::{DuplicateCluster, SearchMode, SearchOptions, check_duplicate_threshold};
pub use sources::{Skipped, SourceFile, collect_sources, parse_in_parallel, parse_sources};

pub const TASKS_COLLECTION: &str = "tasks";
pub const PASSAGES_COLLECTION: &str = "passages";
/// The model's vector of a task's title alone, in engine collections, for the tasks whose
/// `dense` vector embeds a body too.
pub const TITLE_VECTOR: &str = "title";
/// The payload field holding an item's file name as `bm25::named` gives names.
pub(crate) const FILE_KEY_FIELD: &str = "file_key";
/// The BM25 keyword vector in engine collections.
pub const KEYWORD_VECTOR: &str = "bm25";

/// Whether `config` is laid out as the engine's task and passage collections (`mnemo index`
/// made it): the model's `dense` and `title` vectors and the `bm25` keyword vector.
pub fn is_engine_layout(config: &mnemo_store::CollectionConfig) -> bool {
    config.vectors.contains_key(DENSE_VECTOR)
        && config.vectors.contains_key(TITLE_VECTOR)
        && config.sparse_vectors.contains_key(KEYWORD_VECTOR)
}

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
    #[error(transparent)]
    Records(#[from] mnemo_records::RecordsError),
    #[error("this engine has no memory store (the relational store of agents' memories)")]
    MemoryStoreMissing,
    #[error("this engine keeps no event log (it has no relational store)")]
    EventLogMissing,
    #[error("unknown model `{0}`: `mnemo models list` shows the models mnemo runs")]
    UnknownModel(String),
    #[error("the model {0} is not installed on this machine: `mnemo models fetch {0}` installs it")]
    ModelNotInstalled(String),
    #[error("no memory with id `{0}`")]
    UnknownMemory(String),
    #[error("cannot start a background thread (indexing, query embedding): {0}")]
    JobThread(std::io::Error),
    #[error(
        "indexing was cancelled after {files_done} of {files} files; what was written stays, \
         and running it again goes on from there"
    )]
    Cancelled { files_done: usize, files: usize },
    #[error("{queued} index jobs are waiting already; try again later")]
    JobQueueFull { queued: usize },
    #[error("no job `{0}`")]
    UnknownJob(u64),
    /// The request does not say what to search.
    #[error("{0}")]
    MalformedQuery(String),
    /// The request says it, but it cannot be done (out of range, options that conflict).
    #[error("{0}")]
    InvalidQuery(String),
    #[error("`{path}` is not under a folder this server may index")]
    OutsideIndexRoots { path: String },
    #[error("this server indexes nothing: its configuration lists no `index_roots`")]
    NoIndexRoots,
    #[error("`{path}` cannot be read: {reason}")]
    UnreadablePath { path: String, reason: String },
    #[error(transparent)]
    Access(#[from] AccessError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Locks `mutex`, also after a thread panicked while holding it: every state the engine keeps
/// behind a mutex is whole between two statements, so a poisoned lock holds nothing half-done.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The engine: one store, one model, shared by every caller of a process.
pub struct Engine {
    /// The store behind the registry of collections' models and aliases.
    store: Arc<RegisteredStore>,
    embedder: Arc<Embedder>,
    model_id: String,
    query_cache: QueryCache,
    query_batcher: QueryBatcher,
    jobs: JobQueue,
    /// Agents' memories' records and history, when the engine serves memories.
    records: Option<Arc<dyn mnemo_records::MemoryRecords>>,
    /// Events that could not be written since start.
    event_failures: std::sync::atomic::AtomicU64,
    /// The alerts firing.
    alerts: alerts::AlertBoard,
    /// The last check of the drift canaries.
    drift: std::sync::Mutex<Option<drift::DriftReport>>,
    /// Other models' embedders, loaded on first use.
    models: models::ModelPool,
    /// Recent text queries per collection, when kept.
    query_log: query_log::QueryLog,
    /// Collections a thread of this process is migrating to another model.
    migrations_running: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Engine {
    /// `model_id` names the model in payloads and keys the reuse of stored vectors: two
    /// different models must never share one.
    pub fn new(store: Arc<dyn VectorStore>, embedder: Arc<Embedder>, model_id: &str) -> Self {
        Self {
            store: Arc::new(RegisteredStore::new(store)),
            query_batcher: QueryBatcher::new(Arc::clone(&embedder)),
            embedder,
            model_id: model_id.to_owned(),
            query_cache: QueryCache::new(1024, Duration::from_secs(600)),
            jobs: JobQueue::default(),
            records: None,
            event_failures: std::sync::atomic::AtomicU64::new(0),
            alerts: alerts::AlertBoard::default(),
            drift: std::sync::Mutex::new(None),
            models: models::ModelPool::default(),
            query_log: Default::default(),
            migrations_running: Default::default(),
        }
    }

    /// This engine serving agents' memories from `records` (and the vector store's
    /// `memories` collection).
    pub fn with_records(mut self, records: Arc<dyn mnemo_records::MemoryRecords>) -> Self {
        self.records = Some(records);
        self
    }

    /// The store, where names are those people use (an alias goes to its collection).
    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    /// The models of the collections and their aliases.
    pub fn registry(&self) -> &RegisteredStore {
        &self.store
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

    /// The background index jobs of this engine's service.
    pub fn jobs(&self) -> &JobQueue {
        &self.jobs
    }
}
