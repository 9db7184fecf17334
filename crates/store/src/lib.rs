//! mnemo's vector store: the [`VectorStore`] trait in Qdrant's data model (collections, points
//! with named dense and sparse vectors and a JSON payload, filters in Qdrant's JSON shape) and
//! its embedded backend, [`EmbeddedStore`], which runs Qdrant's own engine (`qdrant-edge`)
//! in-process over a data directory.
//!
//! Every backend validates a write batch whole before applying any of it (see
//! [`StoreError`]): a bad point refuses its batch, names the point by index, and leaves what
//! was stored untouched.

mod embedded;
mod error;
mod filter;
mod model;
mod qdrant;
mod registry;
mod snapshot;
mod validate;

use std::path::{Path, PathBuf};

pub use embedded::{Durability, EmbeddedStore, LAYOUT_VERSION, OpenOptions};
pub use error::{Result, StoreError};
pub use filter::{
    Condition, FieldCondition, Filter, KeyRef, MAX_FILTER_DEPTH, Match, MatchValue,
    NestedCondition, Range,
};
pub use model::{
    CollectionConfig, CollectionInfo, DENSE_VECTOR, DenseVectorChoice, Distance, FieldType,
    NearestQuery, PayloadSelection, Point, PointChange, PointId, PointSelector, Record,
    ScoredPoint, ScrollPage, ScrollRequest, SearchRequest, SparseVector, SparseVectorParams,
    UpsertSummary, Vector, VectorParams, VectorSelection,
};
pub use qdrant::{BreakerState, NodeMetrics, QdrantOptions, QdrantStore, ResiliencePolicy};
pub use registry::{
    Alias, AliasChange, ModelBinding, REGISTRY_COLLECTION, RegisteredStore, unpinned,
};
pub use snapshot::{MAX_RESTORED_BYTES, SnapshotInfo, checksum_path as snapshot_checksum_path};
pub use validate::json_type;

/// A store of collections of points. All methods take `&self` and implementations are
/// `Send + Sync`: one store serves every thread of a process.
///
/// Writes are durable when they return `Ok`: they survive the process being killed. Batches
/// are all-or-nothing: validation happens before anything is written, and the backend applies
/// a batch as one operation. Within a batch, of points sharing an id the last one wins.
pub trait VectorStore: Send + Sync {
    fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()>;
    /// Whether there was such a collection.
    fn delete_collection(&self, name: &str) -> Result<bool>;
    fn list_collections(&self) -> Result<Vec<String>>;
    fn collection_info(&self, name: &str) -> Result<CollectionInfo>;
    /// The collection's vectors alone: what a request needs to be checked, without the
    /// counts `collection_info` gathers from every segment.
    fn collection_config(&self, name: &str) -> Result<CollectionConfig> {
        Ok(self.collection_info(name)?.config)
    }

    fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<UpsertSummary>;
    fn delete(&self, collection: &str, selector: PointSelector) -> Result<()>;
    /// The points that exist among `ids`, in the order of `ids`.
    fn get(
        &self,
        collection: &str,
        ids: &[PointId],
        with_payload: PayloadSelection,
        with_vectors: VectorSelection,
    ) -> Result<Vec<Record>>;
    fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<usize>;
    fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage>;

    fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<ScoredPoint>> {
        Ok(self
            .search_batch(collection, vec![request])?
            .pop()
            .unwrap_or_default())
    }
    /// Answers, in order, one list per request.
    fn search_batch(
        &self,
        collection: &str,
        requests: Vec<SearchRequest>,
    ) -> Result<Vec<Vec<ScoredPoint>>>;

    /// Changes the payload or the vectors of the points `selector` picks, keeping the rest of
    /// each point; how many points were changed. Points are read and written back a page at a
    /// time, each page as one batch: a change that fails part way leaves the pages before it
    /// changed. A selector by id skips ids that do not exist.
    fn update_points(
        &self,
        collection: &str,
        selector: &PointSelector,
        change: &PointChange,
    ) -> Result<usize> {
        const PAGE: usize = 256;
        let mut changed = 0;
        let mut apply = |records: Vec<Record>| -> Result<()> {
            if records.is_empty() {
                return Ok(());
            }
            let points: Vec<Point> = records.into_iter().map(|r| change.apply(r)).collect();
            changed += points.len();
            self.upsert(collection, points)?;
            Ok(())
        };
        match selector {
            PointSelector::Ids(ids) => {
                for chunk in ids.chunks(PAGE) {
                    let records = self.get(
                        collection,
                        chunk,
                        PayloadSelection::All,
                        VectorSelection::All,
                    )?;
                    apply(records)?;
                }
            }
            PointSelector::Filter(filter) => {
                let mut request = ScrollRequest::new(PAGE);
                request.filter = Some(filter.clone());
                request.with_vectors = VectorSelection::All;
                loop {
                    let page = self.scroll(collection, request.clone())?;
                    apply(page.points)?;
                    match page.next {
                        Some(next) => request.offset = Some(next),
                        None => break,
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Indexes a payload field so filters on it are fast. Idempotent.
    fn create_payload_index(
        &self,
        collection: &str,
        field: &str,
        field_type: FieldType,
    ) -> Result<()>;

    /// Makes everything written so far durable against power loss (not only process death).
    fn flush(&self) -> Result<()>;
    /// Whether the store can still keep what it acknowledges: an embedded store whose sync
    /// to disk failed answers `NotDurable` here, and to every write, until it is restarted.
    fn health(&self) -> Result<()> {
        Ok(())
    }
    /// Builds the vector and payload indexes of what was written since the last call; searches
    /// keep working meanwhile. Whether anything was done.
    fn optimize(&self, collection: &str) -> Result<bool>;

    /// The health of the remote nodes behind this store (breaker state, failures, retries);
    /// empty for a store that has none.
    fn node_metrics(&self) -> Vec<NodeMetrics> {
        Vec::new()
    }

    /// A consistent point-in-time copy of `collection`, checksummed, taken while writes go on:
    /// they wait for the copy of the collection's files, not for the packing of the snapshot.
    fn create_snapshot(&self, _collection: &str) -> Result<SnapshotInfo> {
        Err(StoreError::Unsupported("snapshots"))
    }
    /// The snapshots of `collection` (which need not exist any more), oldest first.
    fn list_snapshots(&self, _collection: &str) -> Result<Vec<SnapshotInfo>> {
        Err(StoreError::Unsupported("snapshots"))
    }
    /// Whether there was such a snapshot.
    fn delete_snapshot(&self, _collection: &str, _name: &str) -> Result<bool> {
        Err(StoreError::Unsupported("snapshots"))
    }
    /// The snapshot's file, to hand out (a download), and what it holds.
    fn snapshot_file(&self, _collection: &str, _name: &str) -> Result<(PathBuf, SnapshotInfo)> {
        Err(StoreError::Unsupported("snapshots"))
    }
    /// Replaces `collection` (or creates it) with its snapshot `name`, after verifying it.
    fn restore_snapshot(&self, _collection: &str, _name: &str) -> Result<SnapshotInfo> {
        Err(StoreError::Unsupported("snapshots"))
    }
    /// Replaces `collection` (or creates it) with the snapshot file `archive`, which may have
    /// been taken of another collection or on another machine.
    fn restore_snapshot_file(&self, _collection: &str, _archive: &Path) -> Result<SnapshotInfo> {
        Err(StoreError::Unsupported("snapshots"))
    }
}
