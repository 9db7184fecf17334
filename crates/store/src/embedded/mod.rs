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
//! take and to let the WAL be truncated. With `Durability::Fsync`, each write also syncs its
//! collection's write-ahead log before it is acknowledged, and so survives a power loss.

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

mod convert;
mod layout;
mod snapshots;
mod vector_store;

use convert::*;
use layout::*;

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
    /// What an acknowledged write survives.
    pub durability: Durability,
    /// How often collections written since are optimised in the background (segments merged,
    /// deleted versions vacuumed, HNSW built past the indexing threshold), as a Qdrant server
    /// does; `None`: only when `optimize` is called (`mnemo index` calls it at its end).
    pub optimize_interval: Option<Duration>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            flush_interval: Some(Duration::from_secs(5)),
            search_threads: None,
            durability: Durability::default(),
            optimize_interval: None,
        }
    }
}

/// When a write is acknowledged, relative to the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Once in the write-ahead log (the page cache): it survives the process being killed;
    /// a power loss may take what the last periodic sync (`flush_interval`) did not reach.
    #[default]
    Periodic,
    /// Once the write-ahead log is synced to disk: it survives a power loss too, at the cost
    /// of one sync per write (`mnemo-bench store --durability fsync` measures it).
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "periodic" => Ok(Self::Periodic),
            "fsync" => Ok(Self::Fsync),
            other => Err(StoreError::UnknownDurability(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Periodic => "periodic",
            Self::Fsync => "fsync",
        })
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
    /// Written since the background optimiser last looked at it.
    written: std::sync::atomic::AtomicBool,
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
    flusher: Option<Ticker>,
    optimizer: Option<Ticker>,
    /// Held for the store's lifetime: the OS releases it when the process dies, however it dies.
    /// Flock'ed while open; holds the pid, then what `announce` says.
    lock: File,
    /// One lock per collection name, held by a snapshot or a restore for its whole length:
    /// two of them on one collection would share staging folders and archive names.
    maintenance: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Why a sync to disk failed, set for good by the first failure (periodic or asked for):
    /// the system may have dropped the data of a failed sync, and a later good sync would not
    /// bring it back, so from then on no write is acknowledged.
    sync_failure: SyncFailure,
}

type SyncFailure = Arc<Mutex<Option<String>>>;

/// `result` of a sync to disk, its failure remembered in `failure`.
fn remember_sync(result: Result<()>, failure: &SyncFailure) -> Result<()> {
    if let Err(err) = &result {
        let mut failure = failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failure.is_none() {
            *failure = Some(err.to_string());
        }
    }
    result
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
        let sync_failure = SyncFailure::default();
        let flusher = options
            .flush_interval
            .map(|every| {
                let (collections, failure) = (Arc::clone(&collections), Arc::clone(&sync_failure));
                Ticker::start("mnemo-flush", every, move || {
                    if let Err(err) = remember_sync(flush_all(&collections), &failure) {
                        eprintln!("error: periodic sync to disk failed; no more writes are acknowledged: {err}");
                    }
                })
            })
            .transpose()
            .map_err(|e| StoreError::io(root, e))?;
        let optimizer = options
            .optimize_interval
            .map(|every| {
                let collections = Arc::clone(&collections);
                Ticker::start("mnemo-optimize", every, move || {
                    optimize_written(&collections);
                })
            })
            .transpose()
            .map_err(|e| StoreError::io(root, e))?;
        Ok(Self {
            root: root.to_owned(),
            collections,
            options,
            flusher,
            optimizer,
            lock,
            maintenance: Mutex::new(HashMap::new()),
            sync_failure,
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

    /// `NotDurable` once a sync to disk has failed: every write asks first.
    fn check_synced(&self) -> Result<()> {
        let failure = self
            .sync_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failure.as_ref() {
            Some(reason) => Err(StoreError::NotDurable(reason.clone())),
            None => Ok(()),
        }
    }

    /// Under `Durability::Fsync`, syncs the write-ahead log of `name` that a write has just
    /// appended to; the caller still holds the collection's gate, so its files stay put. A
    /// failure is remembered for good, like a failed flush, and the write is not acknowledged.
    fn sync_written(&self, name: &str) -> Result<()> {
        if self.options.durability != Durability::Fsync {
            return Ok(());
        }
        let wal = self
            .root
            .join(COLLECTIONS_DIR)
            .join(name)
            .join(SHARD_DIR)
            .join(qdrant_edge::WAL_PATH);
        remember_sync(sync_folder_files(&wal), &self.sync_failure)
    }

    /// Every collection synced to disk; a failure is remembered for good.
    fn sync(&self) -> Result<()> {
        remember_sync(flush_all(&self.collections), &self.sync_failure)
    }

    /// The lock a snapshot or a restore of `name` holds while it runs.
    fn maintenance(&self, name: &str) -> Arc<Mutex<()>> {
        let mut locks = self
            .maintenance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(name.to_owned()).or_default())
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
        if let Some(optimizer) = self.optimizer.take() {
            optimizer.stop();
        }
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // Each shard flushes itself when dropped.
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

/// Optimises each collection written since the last round; planning finds nothing to do
/// for most, and that costs little. A failure is said and left for the next round: the
/// collection still answers from the segments it has.
fn optimize_written(collections: &Collections) {
    let snapshot: Vec<(String, Arc<Collection>)> = read(collections)
        .iter()
        .map(|(name, c)| (name.clone(), Arc::clone(c)))
        .collect();
    for (name, collection) in snapshot {
        if !collection
            .written
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            continue;
        }
        let Ok(_changing) = collection.changing(&name) else {
            continue;
        };
        if let Err(err) = collection.shard.optimize() {
            eprintln!("warning: background optimisation of collection `{name}` failed: {err}");
        }
    }
}

/// Runs a task on a timer, on a thread of its own, until stopped.
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Ticker {
    fn start(
        name: &str,
        every: Duration,
        mut task: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
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
                    task();
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
