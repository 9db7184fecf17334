use std::path::PathBuf;

use crate::PointId;

/// Everything a store operation can refuse or fail with. Input mistakes name the point by its
/// index in the batch the caller passed, so a caller can point at the record that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("collection `{0}` does not exist")]
    UnknownCollection(String),
    #[error("collection `{0}` already exists")]
    CollectionExists(String),
    #[error(
        "invalid collection name `{0}`: use 1 to 64 ASCII letters, digits, `-` or `_`, not starting with `_` or `-`"
    )]
    InvalidCollectionName(String),
    #[error("invalid collection config: {0}")]
    InvalidConfig(String),
    #[error(
        "unknown durability `{0}`: use \"periodic\" (synced every few seconds; the default) or \"fsync\" (each write synced before it is acknowledged)"
    )]
    UnknownDurability(String),
    #[error(
        "point {index} (id {id}): vector `{name}` has {found} dimensions, the collection expects {expected}"
    )]
    WrongDimension {
        index: usize,
        id: PointId,
        name: String,
        expected: usize,
        found: usize,
    },
    #[error(
        "point {index} (id {id}): vector `{name}` holds a non-finite value ({value}) at position {position}"
    )]
    NonFiniteValue {
        index: usize,
        id: PointId,
        name: String,
        position: usize,
        value: f32,
    },
    #[error(
        "point {index} (id {id}): vector `{name}` is all zeros, which has no direction under cosine distance"
    )]
    ZeroVector {
        index: usize,
        id: PointId,
        name: String,
    },
    #[error(
        "point {index} (id {id}): the collection has no vector named `{name}` (it has: {known})"
    )]
    UnknownVector {
        index: usize,
        id: PointId,
        name: String,
        known: String,
    },
    #[error("the collection has no vector named `{name}` (it has: {known})")]
    NoSuchVector { name: String, known: String },
    #[error("point {index} (id {id}) has no dense vector; it needs at least one of {names}")]
    MissingVector {
        index: usize,
        id: PointId,
        names: String,
    },
    #[error(
        "point {index} (id {id}): vector `{name}` is {found}, the collection declares it {expected}"
    )]
    WrongVectorKind {
        index: usize,
        id: PointId,
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("point {index} (id {id}): sparse vector `{name}` is malformed: {reason}")]
    BadSparseVector {
        index: usize,
        id: PointId,
        name: String,
        reason: String,
    },
    #[error("point {index} (id {id}): the payload must be a JSON object, found {found}")]
    PayloadNotObject {
        index: usize,
        id: PointId,
        found: &'static str,
    },
    #[error(
        "point {index} (id {id}): payload key `{key}` begins with `{prefix}`, which this store keeps for its own fields"
    )]
    ReservedPayloadKey {
        index: usize,
        id: crate::PointId,
        key: String,
        prefix: &'static str,
    },
    #[error("query {index}: {reason}")]
    BadQuery { index: usize, reason: String },
    #[error("invalid filter: {0}")]
    BadFilter(String),
    #[error("invalid point id `{0}`: expected an unsigned integer or a UUID")]
    BadPointId(String),
    #[error("data directory {path} is locked by process {pid}{}; stop it or use another --data-dir", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        path: PathBuf,
        pid: String,
        /// What the holder announced (`EmbeddedStore::announce`): a server's address.
        holder: Option<String>,
    },
    #[error(
        "data directory {path} has layout version {found}, this mnemo reads version {expected}; \
         export it with the mnemo that wrote it, or use a new --data-dir"
    )]
    LayoutVersion {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("{path} is not a mnemo data directory ({reason})")]
    NotADataDir { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("snapshot {path} is damaged, nothing was restored: {reason}")]
    DamagedSnapshot { path: PathBuf, reason: String },
    #[error(
        "invalid snapshot name `{0}`: use ASCII letters, digits, `-`, `_`, `.` or `:`, not starting with `.`"
    )]
    BadSnapshotName(String),
    #[error("collection `{collection}` has no snapshot `{name}`")]
    UnknownSnapshot { collection: String, name: String },
    #[error(
        "collection `{0}` was deleted or replaced by a restore while this write waited; retry it"
    )]
    Replaced(String),
    #[error(
        "this store acknowledges no more writes: a sync to disk failed ({0}), so what it \
         acknowledged since the last good sync may not survive a power loss; restart it once \
         the disk is sound"
    )]
    NotDurable(String),
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    #[error("alias `{0}` does not exist")]
    UnknownAlias(String),
    #[error("store location `{location}`: {reason}")]
    BadLocation { location: String, reason: String },
    /// A remote node could not be reached or answered too slowly, every attempt.
    #[error(
        "Qdrant at {nodes} is unavailable: {operation} on collection `{collection}` failed {attempts} time(s); last error: {last}"
    )]
    Unavailable {
        nodes: String,
        operation: &'static str,
        collection: String,
        attempts: u32,
        last: String,
    },
    /// Every node's circuit breaker is open: the call was refused without being sent.
    #[error(
        "Qdrant at {nodes} is failing: {operation} on collection `{collection}` was not sent (circuit breaker open after repeated failures; next try in {retry_in_ms} ms)"
    )]
    CircuitOpen {
        nodes: String,
        operation: &'static str,
        collection: String,
        retry_in_ms: u64,
    },
    /// A remote node refused the request as invalid.
    #[error("Qdrant at {node} refused {operation} on collection `{collection}`: {message}")]
    Rejected {
        node: String,
        operation: &'static str,
        collection: String,
        message: String,
    },
    /// A remote node failed the request on its side.
    #[error("Qdrant at {node} failed {operation} on collection `{collection}`: {message}")]
    Remote {
        node: String,
        operation: &'static str,
        collection: String,
        message: String,
    },
    /// The engine underneath refused or failed; the message is its own.
    #[error("storage engine, collection `{collection}`, {operation}: {message}")]
    Backend {
        collection: String,
        operation: &'static str,
        message: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether the store could not be reached (as opposed to refusing or failing the request):
    /// a service answers these with 503 and the caller may retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::CircuitOpen { .. }
                | Self::Replaced(_)
                | Self::NotDurable(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the caller's input was at fault (as opposed to the disk or the engine): a
    /// service answers these with 4xx.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::Io { .. }
                | Self::Corrupt { .. }
                | Self::Backend { .. }
                | Self::Replaced(_)
                | Self::Unsupported(_)
                | Self::Unavailable { .. }
                | Self::CircuitOpen { .. }
                | Self::Remote { .. }
        )
    }
}
