//! What a collection is for beyond its vectors, kept in the store beside them: the model each
//! collection's vectors come from, and aliases (a name that points at a collection, moved in
//! one write). qdrant-edge has neither collection metadata nor aliases, so mnemo keeps both in
//! a small collection of its own, [`REGISTRY_COLLECTION`], on every backend alike: the
//! registry travels with the store (copies, migrations between stores) and needs nothing else.
//!
//! [`RegisteredStore`] wraps any store: every call naming a collection goes to the collection
//! its alias points at, and listings show the names people use, not the registry nor the
//! collections hidden behind an alias.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    CollectionConfig, CollectionInfo, Distance, FieldType, Filter, NodeMetrics, PayloadSelection,
    Point, PointId, PointSelector, Record, Result, ScoredPoint, ScrollPage, ScrollRequest,
    SearchRequest, SnapshotInfo, StoreError, UpsertSummary, Vector, VectorSelection, VectorStore,
};

/// The collection holding the registry. Reserved: no one else may create it.
pub const REGISTRY_COLLECTION: &str = "mnemo-registry";

/// The model a collection's vectors come from: queries must be embedded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelBinding {
    /// The model's name in mnemo (`all-MiniLM-L6-v2`, or a configured remote model).
    pub model: String,
    pub dimension: usize,
    /// How token vectors become one (`mean`).
    pub pooling: String,
    /// Who computes it: `local` (this process) or a remote provider (`openai`, `tei`, `ollama`).
    pub provider: String,
}

/// One change of a list of alias changes applied together ([`RegisteredStore::change_aliases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasChange {
    /// Points `alias` at `collection` (moving it if it pointed elsewhere).
    Create {
        alias: String,
        collection: String,
    },
    Delete {
        alias: String,
    },
    /// Gives the alias `from` the name `to`, pointing where `from` pointed.
    Rename {
        from: String,
        to: String,
    },
}

/// An alias and the collection it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alias {
    pub alias: String,
    pub collection: String,
}

#[derive(Default)]
struct Registry {
    aliases: BTreeMap<String, String>,
    bindings: BTreeMap<String, ModelBinding>,
    /// Entries of other kinds (a migration's state), by kind and name.
    others: BTreeMap<(String, String), Map<String, Value>>,
    loaded: Option<Instant>,
}

/// A store whose collections have models and aliases (see the module's documentation).
pub struct RegisteredStore {
    inner: Arc<dyn VectorStore>,
    registry: RwLock<Registry>,
    /// How old the registry read may get before it is read again: `None` when this process is
    /// the store's only writer (embedded), a few seconds when other servers share it.
    refresh: Option<Duration>,
}

/// Ends a name [`RegisteredStore::pin`] resolved: no collection name holds it.
const PINNED: char = '!';

/// The collection's name as people gave it, from a name [`RegisteredStore::pin`] made: what
/// an error message shows.
pub fn unpinned(name: &str) -> &str {
    name.strip_suffix(PINNED).unwrap_or(name)
}

/// How long a registry read holds on a store other servers share.
const SHARED_REFRESH: Duration = Duration::from_secs(2);

const KIND_ALIAS: &str = "alias";
const KIND_BINDING: &str = "binding";

/// A stable id for a registry entry: FNV-1a of its kind and name.
fn entry_id(kind: &str, name: &str) -> PointId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in kind.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    PointId::Num(hash)
}

fn entry(kind: &str, name: &str, mut fields: Map<String, Value>) -> Point {
    fields.insert("kind".into(), json!(kind));
    fields.insert("name".into(), json!(name));
    let mut vectors = BTreeMap::new();
    vectors.insert(String::new(), Vector::Dense(vec![1.0]));
    Point {
        id: entry_id(kind, name),
        vectors,
        payload: Value::Object(fields),
    }
}

impl RegisteredStore {
    /// Wraps `inner`. The registry is read on first use, and read again every few seconds
    /// when the store has remote nodes (other servers may share it and change it).
    pub fn new(inner: Arc<dyn VectorStore>) -> Self {
        let refresh = (!inner.node_metrics().is_empty()).then_some(SHARED_REFRESH);
        Self {
            inner,
            registry: RwLock::new(Registry::default()),
            refresh,
        }
    }

    /// The store underneath, where names are collections' own.
    pub fn inner(&self) -> &Arc<dyn VectorStore> {
        &self.inner
    }

    fn registry_exists(&self) -> Result<bool> {
        Ok(self
            .inner
            .list_collections()?
            .iter()
            .any(|c| c == REGISTRY_COLLECTION))
    }

    fn reload(&self) -> Result<()> {
        let mut fresh = Registry {
            loaded: Some(Instant::now()),
            ..Registry::default()
        };
        if self.registry_exists()? {
            let mut request = ScrollRequest::new(256);
            request.with_payload = PayloadSelection::All;
            loop {
                let page = self.inner.scroll(REGISTRY_COLLECTION, request.clone())?;
                for record in page.points {
                    let name = record.payload.get("name").and_then(Value::as_str);
                    match (record.payload.get("kind").and_then(Value::as_str), name) {
                        (Some(KIND_ALIAS), Some(name)) => {
                            if let Some(target) =
                                record.payload.get("collection").and_then(Value::as_str)
                            {
                                fresh.aliases.insert(name.to_owned(), target.to_owned());
                            }
                        }
                        (Some(KIND_BINDING), Some(name)) => {
                            if let Ok(binding) =
                                serde_json::from_value(Value::Object(record.payload.clone()))
                            {
                                fresh.bindings.insert(name.to_owned(), binding);
                            }
                        }
                        (Some(kind), Some(name)) => {
                            fresh
                                .others
                                .insert((kind.to_owned(), name.to_owned()), record.payload.clone());
                        }
                        _ => {}
                    }
                }
                match page.next {
                    Some(next) => request.offset = Some(next),
                    None => break,
                }
            }
        }
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    fn read<T>(&self, view: impl FnOnce(&Registry) -> T) -> T {
        let loaded = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .loaded;
        let stale = match (loaded, self.refresh) {
            (None, _) => true,
            (Some(at), Some(every)) => at.elapsed() > every,
            (Some(_), None) => false,
        };
        if stale && let Err(err) = self.reload() {
            // A shared store that does not answer: the last registry read stays in force until
            // the next try, one interval later, rather than every call asking again (each
            // fails with the store's own error meanwhile). A store of this process alone is
            // asked again at the next call.
            if self.refresh.is_some() {
                self.registry
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .loaded = Some(Instant::now());
            }
            eprintln!("warning: the collection registry could not be read again: {err}");
        }
        view(
            &self
                .registry
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn write_entry(&self, point: Point) -> Result<()> {
        self.write_entries(vec![point])
    }

    fn write_entries(&self, points: Vec<Point>) -> Result<()> {
        if !self.registry_exists()? {
            match self.inner.create_collection(
                REGISTRY_COLLECTION,
                &CollectionConfig::single(1, Distance::Dot),
            ) {
                Ok(()) | Err(StoreError::CollectionExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        self.inner.upsert(REGISTRY_COLLECTION, points)?;
        self.reload()
    }

    /// The collection `name` means: its alias's target, or itself.
    pub fn resolve(&self, name: &str) -> String {
        if let Some(physical) = name.strip_suffix(PINNED) {
            return physical.to_owned();
        }
        self.read(|registry| {
            registry
                .aliases
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned())
        })
    }

    /// The collection `name` means now, in a form every later call of this store takes as
    /// that collection whatever the aliases become: what one search resolves once, so that
    /// an alias moved in the middle cannot give it one model's query vector and another
    /// model's collection. (A collection hidden by an alias of its own name stays reachable
    /// this way.)
    pub fn pin(&self, name: &str) -> String {
        format!("{}{PINNED}", self.resolve(name))
    }

    /// Every alias, by name.
    pub fn aliases(&self) -> Vec<Alias> {
        self.read(|registry| {
            registry
                .aliases
                .iter()
                .map(|(alias, collection)| Alias {
                    alias: alias.clone(),
                    collection: collection.clone(),
                })
                .collect()
        })
    }

    /// Points `alias` at `collection` in one write: a reader sees the old target or the new,
    /// never neither. The alias may share its name with a collection, which it then hides.
    pub fn set_alias(&self, alias: &str, collection: &str) -> Result<()> {
        crate::validate::check_collection_name(alias)?;
        if !self
            .inner
            .list_collections()?
            .iter()
            .any(|c| c == collection)
        {
            return Err(StoreError::UnknownCollection(collection.to_owned()));
        }
        let mut fields = Map::new();
        fields.insert("collection".into(), json!(collection));
        self.write_entry(entry(KIND_ALIAS, alias, fields))
    }

    /// Whether there was such an alias.
    pub fn delete_alias(&self, alias: &str) -> Result<bool> {
        if !self.read(|registry| registry.aliases.contains_key(alias)) {
            return Ok(false);
        }
        self.inner.delete(
            REGISTRY_COLLECTION,
            PointSelector::Ids(vec![entry_id(KIND_ALIAS, alias)]),
        )?;
        self.reload()?;
        Ok(true)
    }

    /// Applies `changes` in order, all or none, in one write: each is checked against the
    /// aliases the earlier ones leave (a rename of an alias created in the same list works), and
    /// a list with one wrong change (an unknown alias or collection, a bad name) changes nothing.
    pub fn change_aliases(&self, changes: &[AliasChange]) -> Result<()> {
        let collections = self.inner.list_collections()?;
        let mut aliases = self.read(|registry| registry.aliases.clone());
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for change in changes {
            match change {
                AliasChange::Create { alias, collection } => {
                    crate::validate::check_collection_name(alias)?;
                    reserved(alias)?;
                    let target = aliases.get(collection).unwrap_or(collection);
                    if target == REGISTRY_COLLECTION || !collections.contains(target) {
                        return Err(StoreError::UnknownCollection(collection.clone()));
                    }
                    aliases.insert(alias.clone(), target.clone());
                    touched.insert(alias.clone());
                }
                // As in Qdrant, deleting an alias that is not there is no error.
                AliasChange::Delete { alias } => {
                    if aliases.remove(alias).is_some() {
                        touched.insert(alias.clone());
                    }
                }
                AliasChange::Rename { from, to } => {
                    crate::validate::check_collection_name(to)?;
                    reserved(to)?;
                    let target = aliases
                        .remove(from)
                        .ok_or_else(|| StoreError::UnknownAlias(from.clone()))?;
                    aliases.insert(to.clone(), target);
                    touched.insert(from.clone());
                    touched.insert(to.clone());
                }
            }
        }
        // An alias deleted is written as an entry without a target, which reading skips: the
        // whole list is then one upsert, which the store applies whole or not at all.
        let entries: Vec<Point> = touched
            .iter()
            .map(|alias| {
                let mut fields = Map::new();
                if let Some(target) = aliases.get(alias) {
                    fields.insert("collection".into(), json!(target));
                }
                entry(KIND_ALIAS, alias, fields)
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.write_entries(entries)
    }

    /// The model of the collection `name` means (or a pinned name), when one was recorded.
    pub fn binding(&self, name: &str) -> Option<ModelBinding> {
        let collection = self.resolve(name);
        self.read(|registry| registry.bindings.get(&collection).cloned())
    }

    /// Records the model of the collection `collection` (its own name, not an alias).
    pub fn bind(&self, collection: &str, binding: &ModelBinding) -> Result<()> {
        let Value::Object(fields) = serde_json::to_value(binding)
            .map_err(|err| StoreError::InvalidConfig(err.to_string()))?
        else {
            return Err(StoreError::InvalidConfig("a binding is an object".into()));
        };
        self.write_entry(entry(KIND_BINDING, collection, fields))
    }

    /// An entry of another kind than aliases and models (a migration's state), as it was put.
    pub fn entry(&self, kind: &str, name: &str) -> Option<Map<String, Value>> {
        self.read(|registry| {
            registry
                .others
                .get(&(kind.to_owned(), name.to_owned()))
                .cloned()
        })
    }

    /// Writes an entry of `kind` (not `alias` nor `binding`) under `name`, in one write.
    pub fn put_entry(&self, kind: &str, name: &str, fields: Map<String, Value>) -> Result<()> {
        if kind == KIND_ALIAS || kind == KIND_BINDING {
            return Err(StoreError::InvalidConfig(format!(
                "`{kind}` entries are written by their own calls"
            )));
        }
        self.write_entry(entry(kind, name, fields))
    }

    fn forget(&self, collection: &str) -> Result<()> {
        let mut ids = vec![entry_id(KIND_BINDING, collection)];
        ids.extend(self.read(|registry| {
            registry
                .aliases
                .iter()
                .filter(|(_, target)| *target == collection)
                .map(|(alias, _)| entry_id(KIND_ALIAS, alias))
                .collect::<Vec<_>>()
        }));
        if self.registry_exists()? {
            self.inner
                .delete(REGISTRY_COLLECTION, PointSelector::Ids(ids))?;
        }
        self.reload()
    }
}

fn reserved(name: &str) -> Result<()> {
    if name == REGISTRY_COLLECTION {
        return Err(StoreError::InvalidConfig(format!(
            "`{REGISTRY_COLLECTION}` is mnemo's own collection (models and aliases)"
        )));
    }
    Ok(())
}

impl VectorStore for RegisteredStore {
    fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()> {
        reserved(name)?;
        self.inner.create_collection(&self.resolve(name), config)
    }

    /// Deletes the collection `name` means, its model and the aliases that pointed at it.
    fn delete_collection(&self, name: &str) -> Result<bool> {
        reserved(name)?;
        let collection = self.resolve(name);
        let existed = self.inner.delete_collection(&collection)?;
        self.forget(&collection)?;
        Ok(existed)
    }

    /// The names people use: collections, with those an alias hides or points at shown once
    /// under the alias's name.
    fn list_collections(&self) -> Result<Vec<String>> {
        let collections = self.inner.list_collections()?;
        let (aliases, targets): (Vec<String>, Vec<String>) = self.read(|registry| {
            registry
                .aliases
                .iter()
                .filter(|(_, target)| collections.contains(target))
                .map(|(alias, target)| (alias.clone(), target.clone()))
                .unzip()
        });
        let mut names: Vec<String> = collections
            .into_iter()
            .filter(|c| c != REGISTRY_COLLECTION && !targets.contains(c) && !aliases.contains(c))
            .collect();
        names.extend(aliases);
        names.sort();
        Ok(names)
    }

    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        self.inner.collection_info(&self.resolve(name))
    }

    fn collection_config(&self, name: &str) -> Result<CollectionConfig> {
        self.inner.collection_config(&self.resolve(name))
    }

    fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<UpsertSummary> {
        reserved(collection)?;
        self.inner.upsert(&self.resolve(collection), points)
    }

    fn delete(&self, collection: &str, selector: PointSelector) -> Result<()> {
        reserved(collection)?;
        self.inner.delete(&self.resolve(collection), selector)
    }

    fn get(
        &self,
        collection: &str,
        ids: &[PointId],
        with_payload: PayloadSelection,
        with_vectors: VectorSelection,
    ) -> Result<Vec<Record>> {
        self.inner
            .get(&self.resolve(collection), ids, with_payload, with_vectors)
    }

    fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<usize> {
        self.inner.count(&self.resolve(collection), filter)
    }

    fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage> {
        self.inner.scroll(&self.resolve(collection), request)
    }

    fn search(&self, collection: &str, request: SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.inner.search(&self.resolve(collection), request)
    }

    fn search_batch(
        &self,
        collection: &str,
        requests: Vec<SearchRequest>,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        self.inner.search_batch(&self.resolve(collection), requests)
    }

    fn create_payload_index(
        &self,
        collection: &str,
        field: &str,
        field_type: FieldType,
    ) -> Result<()> {
        self.inner
            .create_payload_index(&self.resolve(collection), field, field_type)
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn health(&self) -> Result<()> {
        self.inner.health()
    }

    fn optimize(&self, collection: &str) -> Result<bool> {
        self.inner.optimize(&self.resolve(collection))
    }

    fn node_metrics(&self) -> Vec<NodeMetrics> {
        self.inner.node_metrics()
    }

    fn create_snapshot(&self, collection: &str) -> Result<SnapshotInfo> {
        self.inner.create_snapshot(&self.resolve(collection))
    }

    fn list_snapshots(&self, collection: &str) -> Result<Vec<SnapshotInfo>> {
        self.inner.list_snapshots(&self.resolve(collection))
    }

    fn delete_snapshot(&self, collection: &str, name: &str) -> Result<bool> {
        self.inner.delete_snapshot(&self.resolve(collection), name)
    }

    fn snapshot_file(&self, collection: &str, name: &str) -> Result<(PathBuf, SnapshotInfo)> {
        self.inner.snapshot_file(&self.resolve(collection), name)
    }

    fn restore_snapshot(&self, collection: &str, name: &str) -> Result<SnapshotInfo> {
        reserved(collection)?;
        self.inner.restore_snapshot(&self.resolve(collection), name)
    }

    fn restore_snapshot_file(&self, collection: &str, archive: &Path) -> Result<SnapshotInfo> {
        reserved(collection)?;
        self.inner
            .restore_snapshot_file(&self.resolve(collection), archive)
    }
}
