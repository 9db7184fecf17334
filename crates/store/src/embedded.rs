//! The embedded backend: Qdrant's engine in-process, one `qdrant-edge` shard per collection,
//! every collection under one data directory:
//!
//! ```text
//! DATA_DIR/
//!   mnemo.json                     {"layout_version": 1}: refused if another version
//!   lock                           held (flock) by the process that opened the directory; holds its pid
//!   collections/NAME/collection.json   our collection config
//!   collections/NAME/shard/        the qdrant-edge shard (segments, WAL, its own config)
//! ```
//!
//! The engine writes every update to its write-ahead log before answering, so an acknowledged
//! write survives the process being killed; it does not sync to disk by itself, so a flusher
//! thread calls `flush` every `flush_interval` (and on drop) to bound what a power loss could
//! take and to let the WAL be truncated.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use qdrant_edge::{
    CountRequest, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, JsonPath,
    Modifier, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointInsertOperations,
    PointOperations, QueryBatchRequest, QueryEnum, QueryRequest, RetrieveRequest, ScoringQuery,
    SearchParams, UpdateOperation, VectorInternal, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::VectorStore;
use crate::error::{Result, StoreError};
use crate::filter::Filter;
use crate::model::{
    CollectionConfig, CollectionInfo, Distance, FieldType, NearestQuery, PayloadSelection, Point,
    PointId, PointSelector, Record, ScoredPoint, ScrollPage, ScrollRequest, SearchRequest,
    SparseVector, UpsertSummary, Vector, VectorSelection,
};
use crate::snapshot::{
    self, SNAPSHOT_EXTENSION, SnapshotInfo, check_snapshot_name, checksum_path, copy_tree,
};
use crate::validate::{check_collection_name, check_query, check_vector_selection, prepare_batch};

/// The on-disk layout this build reads and writes. Bump it when the layout changes; a
/// directory with another version is refused rather than misread.
pub const LAYOUT_VERSION: u64 = 1;

const LAYOUT_FILE: &str = "mnemo.json";
const LOCK_FILE: &str = "lock";
const COLLECTIONS_DIR: &str = "collections";
const COLLECTION_FILE: &str = "collection.json";
const SHARD_DIR: &str = "shard";
const SNAPSHOTS_DIR: &str = "snapshots";
/// `.NAME.replaced`: a collection a restore moved aside.
const REPLACED_SUFFIX: &str = ".replaced";
/// `.SNAPSHOT.staging`: the copy a snapshot packs.
const STAGED_SUFFIX: &str = ".staging";

#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How often everything is synced to disk; `None`: only on drop and on `flush`.
    pub flush_interval: Option<Duration>,
    /// Threads each collection may use for one search (per-segment parallelism).
    pub search_threads: Option<usize>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            flush_interval: Some(Duration::from_secs(5)),
            search_threads: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct LayoutFile {
    layout_version: u64,
}

#[derive(Serialize, Deserialize)]
struct CollectionFile {
    layout_version: u64,
    config: CollectionConfig,
}

struct Collection {
    config: CollectionConfig,
    shard: EdgeShard,
    /// Taken shared by everything that changes the shard's files (writes, flushes,
    /// optimisation), exclusively by a snapshot while it copies them.
    gate: RwLock<()>,
    /// Set when the collection is deleted or replaced by a restore: a write that got this
    /// collection before must not land in files that are gone.
    retired: std::sync::atomic::AtomicBool,
}

impl Collection {
    /// Holds off snapshots for the duration of a change to the shard's files.
    fn changing(&self, name: &str) -> Result<std::sync::RwLockReadGuard<'_, ()>> {
        let guard = self
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Replaced(name.to_owned()));
        }
        Ok(guard)
    }

    /// Waits for changes in progress to finish and refuses later ones.
    fn retire(&self) {
        let _pause = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

type Collections = RwLock<BTreeMap<String, Arc<Collection>>>;

pub struct EmbeddedStore {
    root: PathBuf,
    collections: Arc<Collections>,
    options: OpenOptions,
    flusher: Option<Flusher>,
    /// Held for the store's lifetime: the OS releases it when the process dies, however it dies.
    /// Flock'ed while open; holds the pid, then what `announce` says.
    lock: File,
}

impl EmbeddedStore {
    /// Writes `holder` into the lock file after this process's pid, for the next process that
    /// finds the directory locked: `mnemo serve` announces where it listens, so that the CLI
    /// can ask it instead. One line; replaces what was announced before.
    pub fn announce(&self, holder: &str) -> Result<()> {
        let path = self.root.join(LOCK_FILE);
        let holder = holder.replace(['\n', '\r'], " ");
        let mut file = &self.lock;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}\n{holder}\n", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(|e| StoreError::io(&path, e))
    }

    /// Opens (creating if needed) the data directory `root`, taking its lock, and loads every
    /// collection, replaying what their write-ahead logs hold beyond the last flush.
    pub fn open(root: &Path, options: OpenOptions) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        let lock = take_lock(root)?;
        check_layout(root)?;
        let collections_dir = root.join(COLLECTIONS_DIR);
        fs::create_dir_all(&collections_dir).map_err(|e| StoreError::io(&collections_dir, e))?;
        put_back_interrupted_restores(&collections_dir)?;
        drop_interrupted_snapshots(&root.join(SNAPSHOTS_DIR))?;
        let mut collections = BTreeMap::new();
        let entries =
            fs::read_dir(&collections_dir).map_err(|e| StoreError::io(&collections_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&collections_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') {
                // A creation or deletion that did not finish: never visible, safe to drop.
                fs::remove_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            let collection = load_collection(&name, &path, &options)?;
            collections.insert(name, Arc::new(collection));
        }
        let collections = Arc::new(RwLock::new(collections));
        let flusher = options
            .flush_interval
            .map(|every| Flusher::start(Arc::clone(&collections), every))
            .transpose()
            .map_err(|e| StoreError::io(root, e))?;
        Ok(Self {
            root: root.to_owned(),
            collections,
            options,
            flusher,
            lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshots_dir(&self, collection: &str) -> Result<PathBuf> {
        check_collection_name(collection)?;
        Ok(self.root.join(SNAPSHOTS_DIR).join(collection))
    }

    fn snapshot_path(&self, collection: &str, name: &str) -> Result<PathBuf> {
        check_snapshot_name(name)?;
        Ok(self
            .snapshots_dir(collection)?
            .join(format!("{name}.{SNAPSHOT_EXTENSION}")))
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        read(&self.collections)
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownCollection(name.to_owned()))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // Each shard flushes itself when dropped.
    }
}

fn read(
    collections: &Collections,
) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>> {
    collections
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(
    collections: &Collections,
) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Collection>>> {
    collections
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take_lock(root: &Path) -> Result<File> {
    let path = root.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let mut lines = text.lines().map(str::trim);
            let pid = lines.next().filter(|pid| !pid.is_empty());
            let holder = lines.next().filter(|line| !line.is_empty());
            return Err(StoreError::Locked {
                path: root.to_owned(),
                pid: pid.unwrap_or("unknown").to_owned(),
                holder: holder.map(str::to_owned),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    written.map_err(|e| StoreError::io(&path, e))?;
    Ok(file)
}

fn check_layout(root: &Path) -> Result<()> {
    let path = root.join(LAYOUT_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let layout: LayoutFile = parse_json(&path, &bytes)?;
            check_version(root, layout.layout_version)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = fs::read_dir(root).map_err(|e| StoreError::io(root, e))?;
            let foreign = entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .find(|name| name != LOCK_FILE);
            if let Some(name) = foreign {
                return Err(StoreError::NotADataDir {
                    path: root.to_owned(),
                    reason: format!(
                        "it holds `{name}` but no {LAYOUT_FILE}; mnemo only creates data directories in empty folders"
                    ),
                });
            }
            write_json_atomically(
                &path,
                &LayoutFile {
                    layout_version: LAYOUT_VERSION,
                },
            )
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A directory written by another layout is refused, never read.
fn check_version(dir: &Path, found: u64) -> Result<()> {
    if found == LAYOUT_VERSION {
        return Ok(());
    }
    Err(StoreError::LayoutVersion {
        path: dir.to_owned(),
        found,
        expected: LAYOUT_VERSION,
    })
}

fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    written.map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A restore moves the collection aside (`.NAME.replaced`), then the restored one into place,
/// and acknowledges only after both. Killed between the two, it leaves no `NAME`: the
/// collection that was there comes back, with everything it had acknowledged. Killed after
/// both, the aside copy is dropped. (Run under the data directory's lock, before loading.)
fn put_back_interrupted_restores(collections_dir: &Path) -> Result<()> {
    let entries = fs::read_dir(collections_dir).map_err(|e| StoreError::io(collections_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(collections_dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name
            .strip_prefix('.')
            .and_then(|rest| rest.strip_suffix(REPLACED_SUFFIX))
        else {
            continue;
        };
        let aside = entry.path();
        let dir = collections_dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&aside).map_err(|e| StoreError::io(&aside, e))?;
        } else {
            fs::rename(&aside, &dir).map_err(|e| StoreError::io(&dir, e))?;
            sync_dir(collections_dir)?;
        }
    }
    Ok(())
}

/// A snapshot killed while it was taken leaves its staged copy and its partial archive; no
/// snapshot is being taken while the data directory's lock is being taken, so both go.
fn drop_interrupted_snapshots(snapshots_dir: &Path) -> Result<()> {
    let collections = match fs::read_dir(snapshots_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(snapshots_dir, e)),
    };
    for collection in collections {
        let collection = collection.map_err(|e| StoreError::io(snapshots_dir, e))?;
        if !collection.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = collection.path();
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') && name.ends_with(STAGED_SUFFIX) {
                fs::remove_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
            } else if name.ends_with(snapshot::PARTIAL_SUFFIX) {
                fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

fn load_collection(name: &str, dir: &Path, options: &OpenOptions) -> Result<Collection> {
    let path = dir.join(COLLECTION_FILE);
    let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
    let file: CollectionFile = parse_json(&path, &bytes)?;
    check_version(dir, file.layout_version)?;
    let shard_dir = dir.join(SHARD_DIR);
    let shard = EdgeShard::load(&shard_dir, Some(edge_config(&file.config, options)))
        .map_err(|e| backend(name, "open", e))?;
    Ok(Collection {
        config: file.config,
        shard,
        gate: RwLock::new(()),
        retired: false.into(),
    })
}

fn edge_config(config: &CollectionConfig, options: &OpenOptions) -> EdgeConfig {
    let mut builder = EdgeConfig::builder();
    for (name, params) in &config.vectors {
        let distance = match params.distance {
            Distance::Cosine => qdrant_edge::Distance::Cosine,
            Distance::Dot => qdrant_edge::Distance::Dot,
            Distance::Euclid => qdrant_edge::Distance::Euclid,
            Distance::Manhattan => qdrant_edge::Distance::Manhattan,
        };
        builder = builder.vector(
            name.clone(),
            EdgeVectorParams::builder(params.size, distance).build(),
        );
    }
    for (name, params) in &config.sparse_vectors {
        let mut sparse = EdgeSparseVectorParams::builder();
        if params.idf {
            sparse = sparse.modifier(Modifier::Idf);
        }
        builder = builder.sparse_vector(name.clone(), sparse.build());
    }
    if let Some(threads) = options.search_threads {
        builder = builder.max_search_threads(threads);
    }
    builder.build()
}

fn backend(collection: &str, operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        collection: collection.to_owned(),
        operation,
        message: error.to_string(),
    }
}

fn edge_id(id: PointId) -> qdrant_edge::PointId {
    match id {
        PointId::Num(n) => qdrant_edge::PointId::NumId(n),
        PointId::Uuid(u) => qdrant_edge::PointId::Uuid(u),
    }
}

fn our_id(id: qdrant_edge::PointId) -> PointId {
    match id {
        qdrant_edge::PointId::NumId(n) => PointId::Num(n),
        qdrant_edge::PointId::Uuid(u) => PointId::Uuid(u),
    }
}

fn edge_filter(filter: &Filter) -> Result<qdrant_edge::Filter> {
    let json = serde_json::to_value(filter).map_err(|e| StoreError::BadFilter(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| StoreError::BadFilter(e.to_string()))
}

fn edge_filter_opt(filter: Option<&Filter>) -> Result<Option<qdrant_edge::Filter>> {
    filter
        .filter(|f| !f.is_empty())
        .map(edge_filter)
        .transpose()
}

fn json_path(key: &str) -> Result<JsonPath> {
    JsonPath::try_from(key)
        .map_err(|_| StoreError::BadFilter(format!("`{key}` is not a valid payload key")))
}

fn edge_with_payload(selection: &PayloadSelection) -> Result<WithPayloadInterface> {
    Ok(match selection {
        PayloadSelection::All => WithPayloadInterface::Bool(true),
        PayloadSelection::None => WithPayloadInterface::Bool(false),
        PayloadSelection::Fields(fields) => WithPayloadInterface::Fields(
            fields.iter().map(|f| json_path(f)).collect::<Result<_>>()?,
        ),
    })
}

fn edge_with_vector(selection: &VectorSelection) -> WithVector {
    match selection {
        VectorSelection::None => WithVector::Bool(false),
        VectorSelection::All => WithVector::Bool(true),
        VectorSelection::Names(names) => WithVector::Selector(names.clone()),
    }
}

fn edge_sparse(sparse: &SparseVector) -> qdrant_edge::SparseVector {
    qdrant_edge::SparseVector {
        indices: sparse.indices.clone(),
        values: sparse.values.clone(),
    }
}

fn edge_query(query: &NearestQuery) -> ScoringQuery {
    let vector = match &query.vector {
        Vector::Dense(values) => VectorInternal::Dense(values.clone()),
        Vector::Sparse(sparse) => VectorInternal::Sparse(edge_sparse(sparse)),
    };
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(query.using.clone()),
    }))
}

fn our_vectors(vectors: Option<VectorStructInternal>) -> BTreeMap<String, Vector> {
    let from_internal = |vector: VectorInternal| match vector {
        VectorInternal::Dense(values) => Some(Vector::Dense(values)),
        VectorInternal::Sparse(s) => Some(Vector::Sparse(SparseVector {
            indices: s.indices,
            values: s.values,
        })),
        VectorInternal::MultiDense(_) => None,
    };
    match vectors {
        None | Some(VectorStructInternal::MultiDense(_)) => BTreeMap::new(),
        Some(VectorStructInternal::Single(values)) => {
            BTreeMap::from([(String::new(), Vector::Dense(values))])
        }
        Some(VectorStructInternal::Named(named)) => named
            .into_iter()
            .filter_map(|(name, v)| from_internal(v).map(|v| (name, v)))
            .collect(),
    }
}

fn our_payload(payload: Option<qdrant_edge::Payload>) -> Map<String, Value> {
    payload.map(|p| p.0).unwrap_or_default()
}

impl VectorStore for EmbeddedStore {
    fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()> {
        check_collection_name(name)?;
        config.validate()?;
        let mut collections = write(&self.collections);
        if collections.contains_key(name) {
            return Err(StoreError::CollectionExists(name.to_owned()));
        }
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        // Built aside and renamed into place: a crash leaves no half-made collection.
        let staging = self
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".{name}.creating"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        }
        fs::create_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        let shard = EdgeShard::new(&staging.join(SHARD_DIR), edge_config(config, &self.options))
            .map_err(|e| backend(name, "create", e))?;
        shard.flush().map_err(|e| backend(name, "create", e))?;
        drop(shard);
        write_json_atomically(
            &staging.join(COLLECTION_FILE),
            &CollectionFile {
                layout_version: LAYOUT_VERSION,
                config: config.clone(),
            },
        )?;
        fs::rename(&staging, &dir).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        let collection = load_collection(name, &dir, &self.options)?;
        collections.insert(name.to_owned(), Arc::new(collection));
        Ok(())
    }

    fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut collections = write(&self.collections);
        let Some(collection) = collections.remove(name) else {
            return Ok(false);
        };
        collection.retire();
        drop(collection);
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        let doomed = self
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".{name}.deleting"));
        fs::rename(&dir, &doomed).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        fs::remove_dir_all(&doomed).map_err(|e| StoreError::io(&doomed, e))?;
        Ok(true)
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        Ok(read(&self.collections).keys().cloned().collect())
    }

    fn collection_config(&self, name: &str) -> Result<CollectionConfig> {
        Ok(self.collection(name)?.config.clone())
    }

    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        let collection = self.collection(name)?;
        let info = collection
            .shard
            .info()
            .map_err(|e| backend(name, "info", e))?;
        Ok(CollectionInfo {
            name: name.to_owned(),
            config: collection.config.clone(),
            points: info.points_count,
            indexed_vectors: info.indexed_vectors_count,
            segments: info.segments_count,
            payload_indexes: info
                .payload_schema
                .iter()
                .map(|(key, index)| {
                    (
                        key.to_string(),
                        format!("{:?}", index.data_type).to_lowercase(),
                    )
                })
                .collect(),
        })
    }

    fn upsert(&self, collection_name: &str, points: Vec<Point>) -> Result<UpsertSummary> {
        let collection = self.collection(collection_name)?;
        let (points, duplicates_replaced) = prepare_batch(&collection.config, points)?;
        let written = points.len();
        if written == 0 {
            return Ok(UpsertSummary {
                written,
                duplicates_replaced,
            });
        }
        let points = points
            .into_iter()
            .map(|point| {
                let vectors: HashMap<String, VectorPersisted> = point
                    .vectors
                    .into_iter()
                    .map(|(name, vector)| {
                        let vector = match vector {
                            Vector::Dense(values) => VectorPersisted::Dense(values),
                            Vector::Sparse(sparse) => VectorPersisted::Sparse(edge_sparse(&sparse)),
                        };
                        (name, vector)
                    })
                    .collect();
                let payload = match point.payload {
                    Value::Object(map) => Some(qdrant_edge::Payload(map)),
                    _ => None,
                };
                qdrant_edge::PointStructPersisted {
                    id: edge_id(point.id),
                    vector: VectorStructPersisted::Named(vectors),
                    payload,
                }
            })
            .collect();
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(operation)
            .map_err(|e| backend(collection_name, "upsert", e))?;
        Ok(UpsertSummary {
            written,
            duplicates_replaced,
        })
    }

    fn delete(&self, collection_name: &str, selector: PointSelector) -> Result<()> {
        let collection = self.collection(collection_name)?;
        let operation = match selector {
            PointSelector::Ids(ids) if ids.is_empty() => return Ok(()),
            PointSelector::Ids(ids) => PointOperations::DeletePoints {
                ids: ids.into_iter().map(edge_id).collect(),
            },
            PointSelector::Filter(filter) => {
                PointOperations::DeletePointsByFilter(edge_filter(&filter)?)
            }
        };
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(UpdateOperation::PointOperation(operation))
            .map_err(|e| backend(collection_name, "delete", e))
    }

    fn get(
        &self,
        collection_name: &str,
        ids: &[PointId],
        with_payload: PayloadSelection,
        with_vectors: VectorSelection,
    ) -> Result<Vec<Record>> {
        let collection = self.collection(collection_name)?;
        check_vector_selection(&collection.config, &with_vectors)?;
        let request = RetrieveRequest {
            point_ids: ids.iter().copied().map(edge_id).collect(),
            with_payload: Some(edge_with_payload(&with_payload)?),
            with_vector: Some(edge_with_vector(&with_vectors)),
        };
        let records = collection
            .shard
            .retrieve(request)
            .map_err(|e| backend(collection_name, "get", e))?;
        let mut by_id: HashMap<PointId, Record> = records
            .into_iter()
            .map(|r| {
                let id = our_id(r.id);
                (
                    id,
                    Record {
                        id,
                        payload: our_payload(r.payload),
                        vectors: our_vectors(r.vector),
                    },
                )
            })
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn count(&self, collection_name: &str, filter: Option<&Filter>) -> Result<usize> {
        let collection = self.collection(collection_name)?;
        let request = CountRequest {
            filter: edge_filter_opt(filter)?,
            exact: true,
        };
        collection
            .shard
            .count(request)
            .map_err(|e| backend(collection_name, "count", e))
    }

    fn scroll(&self, collection_name: &str, request: ScrollRequest) -> Result<ScrollPage> {
        let collection = self.collection(collection_name)?;
        check_vector_selection(&collection.config, &request.with_vectors)?;
        let edge_request = qdrant_edge::ScrollRequest {
            offset: request.offset.map(edge_id),
            limit: Some(request.limit),
            filter: edge_filter_opt(request.filter.as_ref())?,
            with_payload: Some(edge_with_payload(&request.with_payload)?),
            with_vector: edge_with_vector(&request.with_vectors),
            order_by: None,
        };
        let (records, next) = collection
            .shard
            .scroll(edge_request)
            .map_err(|e| backend(collection_name, "scroll", e))?;
        Ok(ScrollPage {
            points: records
                .into_iter()
                .map(|r| Record {
                    id: our_id(r.id),
                    payload: our_payload(r.payload),
                    vectors: our_vectors(r.vector),
                })
                .collect(),
            next: next.map(our_id),
        })
    }

    fn search_batch(
        &self,
        collection_name: &str,
        requests: Vec<SearchRequest>,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        let collection = self.collection(collection_name)?;
        let mut queries = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            check_query(&collection.config, index, &request.query)?;
            let mut query = QueryRequest::new(request.limit);
            query.query = Some(edge_query(&request.query));
            query.filter = edge_filter_opt(request.filter.as_ref())?;
            query.offset = request.offset;
            query.score_threshold = request.score_threshold;
            query.params = Some(SearchParams {
                hnsw_ef: request.ef,
                exact: request.exact,
                ..SearchParams::default()
            });
            query.with_payload = edge_with_payload(&request.with_payload)?;
            check_vector_selection(&collection.config, &request.with_vectors)?;
            query.with_vector = edge_with_vector(&request.with_vectors);
            queries.push(query);
        }
        let answers = collection
            .shard
            .query_batch(QueryBatchRequest { queries })
            .map_err(|e| backend(collection_name, "search", e))?;
        Ok(answers
            .into_iter()
            .map(|hits| hits.into_iter().map(scored).collect())
            .collect())
    }

    fn create_payload_index(
        &self,
        collection_name: &str,
        field: &str,
        field_type: FieldType,
    ) -> Result<()> {
        let collection = self.collection(collection_name)?;
        let schema = match field_type {
            FieldType::Keyword => PayloadSchemaType::Keyword,
            FieldType::Integer => PayloadSchemaType::Integer,
            FieldType::Float => PayloadSchemaType::Float,
            FieldType::Bool => PayloadSchemaType::Bool,
            FieldType::Datetime => PayloadSchemaType::Datetime,
            FieldType::Uuid => PayloadSchemaType::Uuid,
            FieldType::Text => PayloadSchemaType::Text,
        };
        let operation = UpdateOperation::FieldIndexOperation(
            qdrant_edge::FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                field_name: json_path(field)?,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            }),
        );
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(operation)
            .map_err(|e| backend(collection_name, "create payload index", e))
    }

    fn flush(&self) -> Result<()> {
        flush_all(&self.collections)
    }

    fn create_snapshot(&self, collection: &str) -> Result<SnapshotInfo> {
        self.take_snapshot(collection)
    }

    fn list_snapshots(&self, collection: &str) -> Result<Vec<SnapshotInfo>> {
        let dir = self.snapshots_dir(collection)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut snapshots = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
            let is_snapshot = path.extension().is_some_and(|e| e == SNAPSHOT_EXTENSION)
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if is_snapshot {
                snapshots.push(snapshot::describe(&path)?);
            }
        }
        snapshots.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
        Ok(snapshots)
    }

    fn delete_snapshot(&self, collection: &str, name: &str) -> Result<bool> {
        let path = self.snapshot_path(collection, name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        let checksum = checksum_path(&path);
        match fs::remove_file(&checksum) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&checksum, e)),
            _ => Ok(true),
        }
    }

    fn snapshot_file(&self, collection: &str, name: &str) -> Result<(PathBuf, SnapshotInfo)> {
        let path = self.snapshot_path(collection, name)?;
        if !path.is_file() {
            return Err(StoreError::UnknownSnapshot {
                collection: collection.to_owned(),
                name: name.to_owned(),
            });
        }
        let info = snapshot::describe(&path)?;
        Ok((path, info))
    }

    fn restore_snapshot(&self, collection: &str, name: &str) -> Result<SnapshotInfo> {
        let path = self.snapshot_path(collection, name)?;
        if !path.is_file() {
            return Err(StoreError::UnknownSnapshot {
                collection: collection.to_owned(),
                name: name.to_owned(),
            });
        }
        self.restore_from(collection, &path)
    }

    fn restore_snapshot_file(&self, collection: &str, archive: &Path) -> Result<SnapshotInfo> {
        self.restore_from(collection, archive)
    }

    fn optimize(&self, collection_name: &str) -> Result<bool> {
        let collection = self.collection(collection_name)?;
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .optimize()
            .map_err(|e| backend(collection_name, "optimize", e))
    }
}

impl EmbeddedStore {
    fn take_snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        let collection = self.collection(name)?;
        let dir = self.snapshots_dir(name)?;
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let now = chrono::Utc::now();
        let created = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stamp = now.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let mut snapshot_name = format!("{name}-{stamp}");
        let mut n = 1;
        while dir
            .join(format!("{snapshot_name}.{SNAPSHOT_EXTENSION}"))
            .exists()
        {
            n += 1;
            snapshot_name = format!("{name}-{stamp}-{n}");
        }
        let staged = dir.join(format!(".{snapshot_name}{STAGED_SUFFIX}"));
        if staged.exists() {
            fs::remove_dir_all(&staged).map_err(|e| StoreError::io(&staged, e))?;
        }
        let collection_dir = self.root.join(COLLECTIONS_DIR).join(name);
        let copied = (|| {
            let _pause = collection
                .gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if collection.retired.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Replaced(name.to_owned()));
            }
            collection
                .shard
                .flush()
                .map_err(|e| backend(name, "snapshot", e))?;
            let points = collection
                .shard
                .info()
                .map_err(|e| backend(name, "snapshot", e))?
                .points_count;
            copy_tree(&collection_dir.join(SHARD_DIR), &staged.join(SHARD_DIR))?;
            fs::copy(
                collection_dir.join(COLLECTION_FILE),
                staged.join(COLLECTION_FILE),
            )
            .map_err(|e| StoreError::io(&collection_dir, e))?;
            Ok(points)
        })();
        let packed = copied.and_then(|points| {
            let archive = dir.join(format!("{snapshot_name}.{SNAPSHOT_EXTENSION}"));
            snapshot::pack(&staged, &archive, name, &created, points, LAYOUT_VERSION)
        });
        let _ = fs::remove_dir_all(&staged);
        packed
    }

    fn restore_from(&self, name: &str, archive: &Path) -> Result<SnapshotInfo> {
        check_collection_name(name)?;
        let collections_dir = self.root.join(COLLECTIONS_DIR);
        let staging = collections_dir.join(format!(".{name}.restoring"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        }
        let info = snapshot::unpack_verified(archive, &staging, LAYOUT_VERSION)?;
        let config_path = staging.join(COLLECTION_FILE);
        let config_ok = fs::read(&config_path)
            .map_err(|e| StoreError::io(&config_path, e))
            .and_then(|bytes| parse_json::<CollectionFile>(&config_path, &bytes));
        if let Err(err) = config_ok {
            let _ = fs::remove_dir_all(&staging);
            return Err(StoreError::DamagedSnapshot {
                path: archive.to_owned(),
                reason: err.to_string(),
            });
        }
        let dir = collections_dir.join(name);
        let replaced = collections_dir.join(format!(".{name}{REPLACED_SUFFIX}"));
        let mut collections = write(&self.collections);
        let old = collections.remove(name);
        if let Some(old) = &old {
            old.retire();
            fs::rename(&dir, &replaced).map_err(|e| StoreError::io(&dir, e))?;
        }
        let swapped = fs::rename(&staging, &dir)
            .map_err(|e| StoreError::io(&dir, e))
            .and_then(|()| sync_dir(&collections_dir))
            .and_then(|()| load_collection(name, &dir, &self.options));
        match swapped {
            Ok(collection) => {
                collections.insert(name.to_owned(), Arc::new(collection));
                drop(collections);
                drop(old);
                if replaced.exists() {
                    fs::remove_dir_all(&replaced).map_err(|e| StoreError::io(&replaced, e))?;
                }
                Ok(info)
            }
            Err(err) => {
                // Put the collection that was there back. The failed one is moved out of the
                // way whole first: a kill in the middle never leaves half of it under the name
                // (which would make the next open drop the collection moved aside).
                if fs::rename(&dir, &staging).is_ok() {
                    let _ = fs::remove_dir_all(&staging);
                }
                if old.is_some() {
                    drop(old);
                    fs::rename(&replaced, &dir).map_err(|e| StoreError::io(&dir, e))?;
                    let collection = load_collection(name, &dir, &self.options)?;
                    collections.insert(name.to_owned(), Arc::new(collection));
                }
                Err(err)
            }
        }
    }
}

fn scored(hit: qdrant_edge::ScoredPoint) -> ScoredPoint {
    ScoredPoint {
        id: our_id(hit.id),
        score: hit.score,
        payload: our_payload(hit.payload),
        vectors: our_vectors(hit.vector),
    }
}

fn flush_all(collections: &Collections) -> Result<()> {
    let snapshot: Vec<(String, Arc<Collection>)> = read(collections)
        .iter()
        .map(|(name, c)| (name.clone(), Arc::clone(c)))
        .collect();
    for (name, collection) in snapshot {
        // A collection deleted meanwhile has nothing left to flush.
        let Ok(_changing) = collection.changing(&name) else {
            continue;
        };
        collection
            .shard
            .flush()
            .map_err(|e| backend(&name, "flush", e))?;
    }
    Ok(())
}

/// Syncs every collection on a timer until stopped.
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Flusher {
    fn start(collections: Arc<Collections>, every: Duration) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mnemo-flush".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                loop {
                    let guard = stopped
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (guard, _) = wake
                        .wait_timeout_while(guard, every, |stopped| !*stopped)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    if let Err(err) = flush_all(&collections) {
                        eprintln!("warning: periodic flush failed: {err}");
                    }
                }
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}
