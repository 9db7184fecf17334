//! mnemo's relational store: what an agent's memory needs beside the vector store — each
//! memory's record (text, metadata, scope, times, content hash, author) and the full history
//! of every change to it, kept after the memory itself is deleted. SQLite by default (one file,
//! in-process); PostgreSQL for a memory shared between machines. Both implement
//! `MemoryRecords` with the same tables and the same answers (the same tests run on both).
//!
//! Which memories an agent may see (a user's memories by all of that user's agents, a run's by
//! that run only), deduplication and embedding are the engine's: this crate stores and finds
//! records by exact fields.

mod events;
mod model;
mod postgres;
mod sqlite;

pub use events::{
    Event, EventLog, EventQuery, MAX_EVENT_TYPE_BYTES, MAX_EVENT_TYPES, NewEvent, Retention,
    StoredJob,
};
pub use model::{
    Change, HistoryEntry, ListQuery, MAX_SCOPE_ID_BYTES, Memory, Scope, Version, timestamp,
};
pub use postgres::PostgresRecords;
pub use sqlite::SqliteRecords;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("the memory database {path}: {message}")]
    Database { path: String, message: String },
    #[error(
        "the memory database {path} has schema version {found}; this build reads version {expected}"
    )]
    SchemaVersion {
        path: String,
        found: i64,
        expected: i64,
    },
    #[error("a memory needs at least one of user_id, agent_id and run_id")]
    NoScope,
    #[error("`{0}` is empty: leave a scope field out rather than give it empty")]
    EmptyScopeField(&'static str),
    #[error("`{field}` is {bytes} bytes long; at most {max} are kept", max = model::MAX_SCOPE_ID_BYTES)]
    ScopeFieldTooLong { field: &'static str, bytes: usize },
    #[error("memory {0} exists already, or its text does in its scope")]
    Exists(String),
    #[error("{0}")]
    InvalidEventType(String),
    #[error("stored {id} is damaged: {message}")]
    Corrupt { id: String, message: String },
}

pub type Result<T, E = RecordsError> = std::result::Result<T, E>;

/// Where memories and their history are kept, beside the event log. Every method is one
/// transaction: a change, its history entry and its event are written together or not at all.
pub trait MemoryRecords: EventLog {
    /// Stores a new memory and its `Added` history entry; `Exists` when the id is taken or
    /// the same text is already in the same scope (a racing writer got there first).
    fn add(&self, memory: &Memory) -> Result<()>;
    /// The memory of exactly `scope` whose content hash is `content_hash`, if any.
    fn find_same(&self, scope: &Scope, content_hash: &str) -> Result<Option<Memory>>;
    fn get(&self, id: &str) -> Result<Option<Memory>>;
    /// Replaces the text and metadata of `id` (`Updated`, before and after kept); the memory
    /// as it was and as it is, or `None` when there is no such memory.
    fn update(
        &self,
        id: &str,
        change: &Version,
        actor: &str,
        at: &str,
    ) -> Result<Option<(Memory, Memory)>>;
    /// Removes `id` (`Deleted` or `Expired` in its history, with what it was); the memory
    /// removed, or `None`.
    fn remove(&self, id: &str, change: Change, actor: &str, at: &str) -> Result<Option<Memory>>;
    /// Memories matching `query`, oldest first.
    fn list(&self, query: &ListQuery) -> Result<Vec<Memory>>;
    /// Every change of `id`, in order, also after its deletion.
    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>>;
    /// Writes a memory and its history as they were elsewhere (an import): its id, times and
    /// every history entry kept (each given a new sequence number here). `false`, writing
    /// nothing, when the id is taken or the same text is in the same scope already.
    fn restore(&self, memory: &Memory, history: &[HistoryEntry]) -> Result<bool>;
    /// Ids of memories whose `expires_at` is at or before `now`, at most `limit`.
    fn expired(&self, now: &str, limit: usize) -> Result<Vec<String>>;
}
