//! The remote backend: a Qdrant server or cluster over gRPC (`qdrant-client`), behind the same
//! [`VectorStore`] trait as the embedded engine. Batches are checked here before they are
//! sent, with the same rules and messages as the embedded backend; searches, fusion, payload
//! indexes and snapshots are Qdrant's own (query API, RRF, field indexes, snapshots).
//!
//! The trait is synchronous and Qdrant's client is async: the store owns a small tokio
//! runtime and every call waits on a task spawned there, which works from plain threads and
//! from inside another runtime's blocking pool alike.

mod convert;
mod location;
mod resilience;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    self as grpc, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, DeleteSnapshotRequestBuilder, GetPointsBuilder, PointsIdsList,
    QueryBatchPointsBuilder, QueryPointsBuilder, ScrollPointsBuilder, SearchParamsBuilder,
    UpsertPointsBuilder, points_selector::PointsSelectorOneOf,
};
use qdrant_client::{Qdrant, QdrantError};
use tonic::Code;

pub use location::QdrantOptions;
pub use resilience::{BreakerState, NodeMetrics, ResiliencePolicy};

use self::resilience::{Admission, Breaker};
use crate::error::{Result, StoreError};
use crate::validate::{check_collection_name, check_query, check_vector_selection, prepare_batch};
use crate::{
    CollectionConfig, CollectionInfo, FieldType, Filter, PayloadSelection, PointId, PointSelector,
    Record, ScoredPoint, ScrollPage, ScrollRequest, SearchRequest, SnapshotInfo, UpsertSummary,
    VectorSelection, VectorStore,
};

/// How long `optimize` waits for the server's optimizers.
const OPTIMIZE_WAIT: Duration = Duration::from_secs(1800);

/// Why `restore_snapshot` is refused here, in the words of `StoreError::Unsupported`.
const RESTORE_ON_QDRANT: &str = "restoring snapshots: on a Qdrant server, restore with Qdrant's own recover API (PUT /collections/NAME/snapshots/recover); create, list and delete work";

/// How long the counts behind a term's IDF (points that have the sparse vector: 6 ms at 30k
/// points; points that have the term: up to 2 ms for a common one) are reused. This store's
/// own writes forget them at once; other clients' writes are seen within this time.
const TERM_COUNTS_TTL: Duration = Duration::from_secs(2);

/// Beyond this many remembered counts, the stale ones are dropped.
const TERM_COUNTS_KEPT: usize = 50_000;

struct Node {
    /// `host:port`, as the user wrote it: what errors and metrics name.
    name: String,
    client: Qdrant,
    breaker: Breaker,
}

/// A Qdrant server or cluster. Cheap to share; one per process is enough (connections are
/// pooled and reused).
pub struct QdrantStore {
    nodes: Arc<Vec<Node>>,
    /// The node that answered last: calls start there.
    preferred: Arc<AtomicUsize>,
    options: QdrantOptions,
    runtime: Option<tokio::runtime::Runtime>,
    /// Collection configs, so a batch is checked without a round trip. Forgotten when the
    /// server says the collection is gone.
    configs: RwLock<HashMap<String, Known>>,
    /// Recent counts for IDF: (collection, sparse vector, term or `None` for the vector itself)
    /// → when counted, how many points have it.
    term_counts: Mutex<HashMap<TermKey, (Instant, u64)>>,
}

/// A collection, one of its sparse vectors, and one term of it (`None`: the vector itself).
type TermKey = (String, String, Option<u32>);

/// What the store knows of a collection.
#[derive(Clone)]
struct Known {
    config: CollectionConfig,
    /// The sparse vectors whose queries this store weighs by IDF over the whole collection.
    weighed_here: Arc<BTreeSet<String>>,
}

/// How one failed attempt is handled.
enum Failure {
    /// The node is unwell or overloaded: try again (another node first).
    Retry(String),
    /// The node is there but the request outran its deadline: a heavy request, not a sick
    /// node. Neither counted against the node's breaker (a few heavy reads would otherwise
    /// open every node's breaker for everyone) nor sent again (it would be as heavy there).
    Slow(String),
    /// The answer is final.
    Final(StoreError),
}

/// Calls that must not be sent twice: a second one would do the work again (each creates a
/// snapshot of its own). Every other call of this store is idempotent: writes carry their
/// point ids, and a create that finds its collection made counts as done.
const SENT_ONCE: [&str; 1] = ["create snapshot"];

impl QdrantStore {
    /// Connects (lazily: nothing is sent until the first call) to the nodes of `options`.
    pub fn connect(options: QdrantOptions) -> Result<Self> {
        if options.nodes.is_empty() {
            return Err(StoreError::BadLocation {
                location: String::new(),
                reason: "no Qdrant node given".into(),
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mnemo-qdrant")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("tokio runtime", e))?;
        let mut nodes = Vec::with_capacity(options.nodes.len());
        for url in &options.nodes {
            let name = url
                .split_once("://")
                .map_or(url.as_str(), |(_, rest)| rest)
                .to_owned();
            let mut builder = Qdrant::from_url(url)
                .timeout(options.policy.timeout)
                .connect_timeout(options.policy.connect_timeout)
                .keep_alive_while_idle()
                .skip_compatibility_check();
            if let Some(key) = &options.api_key {
                builder = builder.api_key(key.clone());
            }
            // Building a channel needs a runtime context (it registers timers).
            let client = {
                let _context = runtime.enter();
                builder.build()
            }
            .map_err(|e| StoreError::BadLocation {
                location: url.clone(),
                reason: e.to_string(),
            })?;
            nodes.push(Node {
                name,
                client,
                breaker: Breaker::new(&options.policy),
            });
        }
        Ok(Self {
            nodes: Arc::new(nodes),
            preferred: Arc::new(AtomicUsize::new(0)),
            options,
            runtime: Some(runtime),
            configs: RwLock::new(HashMap::new()),
            term_counts: Mutex::new(HashMap::new()),
        })
    }

    /// Parses `location` (`qdrant://host:port,...`) and connects.
    pub fn open(location: &str, api_key: Option<String>) -> Result<Self> {
        let mut options = QdrantOptions::from_url(location)?;
        options.api_key = api_key;
        Self::connect(options)
    }

    pub fn options(&self) -> &QdrantOptions {
        &self.options
    }

    /// Asks every node whether it is up; the first answer's version, or the error.
    pub fn ping(&self) -> Result<String> {
        self.call("health check", "-", |client| async move {
            client.health_check().await.map(|reply| reply.version)
        })
    }

    /// Creates `name` on the deployment with `replication` copies of each shard (Qdrant's
    /// default when `None`); `CollectionExists` if it was there.
    fn send_create(
        &self,
        name: &str,
        config: &CollectionConfig,
        replication: Option<u32>,
    ) -> Result<()> {
        let mut builder = CreateCollectionBuilder::new(name);
        if let Some(vectors) = convert::vectors_config(config)? {
            builder = builder.vectors_config(vectors);
        }
        if let Some(sparse) = convert::sparse_vectors_config(config) {
            builder = builder.sparse_vectors_config(sparse);
        }
        if let Some(n) = self.options.shard_number {
            builder = builder.shard_number(n);
        }
        if let Some(n) = replication {
            builder = builder.replication_factor(n);
        }
        if let Some(n) = self.options.write_consistency_factor {
            builder = builder.write_consistency_factor(n);
        }
        let request = builder.build();
        // A create whose answer was lost may have happened: its retry finding the collection
        // made is a success, not "already exists".
        let tries = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let outcome = self.call("create collection", name, move |client| {
            let request = request.clone();
            let tries = Arc::clone(&tries);
            async move {
                let retried = tries.fetch_add(1, Ordering::Relaxed) > 0;
                match client.create_collection(request).await {
                    Ok(_) => Ok(true),
                    Err(err) if retried && already_exists(&err) => Ok(true),
                    Err(err) if already_exists(&err) => Ok(false),
                    Err(err) => Err(err),
                }
            }
        });
        if !outcome? {
            return Err(StoreError::CollectionExists(name.to_owned()));
        }
        Ok(())
    }

    /// How many peers hold a shard of `collection`: the node asked and those it names.
    fn peers_holding(&self, collection: &str) -> Result<usize> {
        let name = collection.to_owned();
        let info = self.call("collection cluster info", collection, move |client| {
            let name = name.clone();
            async move { client.collection_cluster_info(name).await }
        })?;
        let peers: BTreeSet<u64> = std::iter::once(info.peer_id)
            .chain(info.remote_shards.iter().map(|shard| shard.peer_id))
            .collect();
        Ok(peers.len())
    }

    fn node_names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs `attempt` against the nodes with the retry policy, waiting for its end.
    fn call<T, F, Fut>(&self, operation: &'static str, collection: &str, attempt: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Qdrant) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        let nodes = Arc::clone(&self.nodes);
        let preferred = Arc::clone(&self.preferred);
        let policy = self.options.policy.clone();
        let collection = collection.to_owned();
        let all_nodes = self.node_names();
        let max_attempts = if SENT_ONCE.contains(&operation) {
            1
        } else {
            policy.max_attempts
        };
        let work = async move {
            let mut last = String::new();
            let mut attempts = 0;
            let mut shortest_refusal: Option<Duration> = None;
            while attempts < max_attempts {
                // Start at the node that answered last; skip those whose breaker refuses.
                let start = preferred.load(Ordering::Relaxed);
                let mut chosen = None;
                for offset in 0..nodes.len() {
                    let index = (start + offset) % nodes.len();
                    match nodes[index].breaker.admit() {
                        Admission::Go => {
                            chosen = Some(index);
                            break;
                        }
                        Admission::Refused(wait) => {
                            shortest_refusal = Some(shortest_refusal.map_or(wait, |s| s.min(wait)));
                        }
                    }
                }
                let Some(index) = chosen else {
                    if attempts == 0 {
                        return Err(StoreError::CircuitOpen {
                            nodes: all_nodes,
                            operation,
                            collection,
                            retry_in_ms: shortest_refusal.unwrap_or_default().as_millis() as u64,
                        });
                    }
                    break;
                };
                let node = &nodes[index];
                if attempts > 0 {
                    node.breaker.retried();
                }
                attempts += 1;
                let deadline = policy.timeout + policy.connect_timeout;
                let outcome = tokio::time::timeout(deadline, attempt(node.client.clone())).await;
                let failure = match outcome {
                    Ok(Ok(value)) => {
                        node.breaker.succeeded();
                        preferred.store(index, Ordering::Relaxed);
                        return Ok(value);
                    }
                    Ok(Err(err)) => classify(err, &node.name, operation, &collection),
                    Err(_) => Failure::Slow(format!(
                        "{}: no answer within {} ms",
                        node.name,
                        deadline.as_millis()
                    )),
                };
                match failure {
                    Failure::Final(err) => {
                        node.breaker.answered();
                        return Err(err);
                    }
                    Failure::Slow(message) => {
                        node.breaker.answered();
                        return Err(StoreError::Unavailable {
                            nodes: all_nodes,
                            operation,
                            collection,
                            attempts,
                            last: message,
                        });
                    }
                    Failure::Retry(message) => {
                        node.breaker.failed();
                        last = message;
                        preferred.store((index + 1) % nodes.len(), Ordering::Relaxed);
                        if attempts < max_attempts {
                            tokio::time::sleep(policy.backoff(attempts)).await;
                        }
                    }
                }
            }
            Err(StoreError::Unavailable {
                nodes: all_nodes,
                operation,
                collection,
                attempts,
                last,
            })
        };
        self.block(work)
    }

    /// Sends `request` with the retry policy (a copy of it per attempt), forgetting the cached
    /// config when the server says the collection is gone.
    fn send<R, T, F, Fut>(
        &self,
        operation: &'static str,
        collection: &str,
        request: R,
        send: F,
    ) -> Result<T>
    where
        R: Clone + Send + 'static,
        T: Send + 'static,
        F: Fn(Qdrant, R) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        let outcome = self.call(operation, collection, move |client| {
            send(client, request.clone())
        });
        self.checked(collection, outcome)
    }

    fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Unsupported("calls after the store was dropped"));
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver.recv().unwrap_or_else(|_| {
            Err(StoreError::Unsupported(
                "a call whose task was dropped (the store is shutting down)",
            ))
        })
    }

    fn cached(&self, collection: &str) -> Option<Known> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(collection)
            .cloned()
    }

    fn remember(&self, collection: &str, known: Known) {
        self.configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(collection.to_owned(), known);
    }

    fn forget(&self, collection: &str) {
        self.configs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(collection);
        self.forget_counts(collection);
    }

    fn forget_counts(&self, collection: &str) {
        self.term_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(name, _, _), _| name != collection);
    }

    /// The collection's config, from the cache or the server.
    fn known(&self, collection: &str) -> Result<Known> {
        if let Some(known) = self.cached(collection) {
            return Ok(known);
        }
        let info = self.fetch_info(collection)?;
        Ok(self.learn(collection, &info))
    }

    fn learn(&self, collection: &str, info: &grpc::CollectionInfo) -> Known {
        let indexed: Vec<&str> = info.payload_schema.keys().map(String::as_str).collect();
        let (config, weighed_here) =
            convert::our_config(info.config.clone().and_then(|c| c.params), &indexed);
        let known = Known {
            config,
            weighed_here: Arc::new(weighed_here),
        };
        self.remember(collection, known.clone());
        known
    }

    /// The sparse queries of `queries` on vectors weighed here, weighed by each term's inverse
    /// document frequency over the whole collection, with the formula of Qdrant's `idf`
    /// modifier (so both backends score alike): `ln((n - df + 0.5) / (df + 0.5) + 1)`, where
    /// `n` counts the points that have the vector and `df` those whose vector has the term.
    fn weigh_by_idf<'a>(
        &self,
        collection: &str,
        known: &Known,
        queries: impl IntoIterator<Item = &'a mut crate::NearestQuery>,
    ) -> Result<()> {
        let mut sparse_queries: Vec<(&str, &mut crate::SparseVector)> = queries
            .into_iter()
            .filter_map(|query| match &mut query.vector {
                crate::Vector::Sparse(sparse) if known.weighed_here.contains(&query.using) => {
                    Some((query.using.as_str(), sparse))
                }
                _ => None,
            })
            .collect();
        // Every (vector, term) of the batch and each vector's `n`, unless counted a moment ago,
        // counted once, sent together.
        let mut counted: HashMap<TermKey, f32> = HashMap::new();
        let mut wanted: BTreeSet<TermKey> = BTreeSet::new();
        {
            let recent = self.term_counts.lock().unwrap_or_else(|e| e.into_inner());
            for (vector, sparse) in &sparse_queries {
                let keys = std::iter::once(None)
                    .chain(sparse.indices.iter().copied().map(Some))
                    .map(|term| (collection.to_owned(), (*vector).to_owned(), term));
                for key in keys {
                    match recent.get(&key) {
                        Some(&(when, count)) if when.elapsed() < TERM_COUNTS_TTL => {
                            counted.insert(key, count as f32);
                        }
                        _ => {
                            wanted.insert(key);
                        }
                    }
                }
            }
        }
        let wanted: Vec<TermKey> = wanted.into_iter().collect();
        let counts = if wanted.is_empty() {
            Vec::new()
        } else {
            let filters: Vec<grpc::Filter> = wanted
                .iter()
                .map(|(_, vector, term)| {
                    let field = convert::terms_field(vector);
                    match term {
                        None => grpc::Filter::must_not([grpc::Condition::is_empty(field)]),
                        Some(term) => {
                            grpc::Filter::must([grpc::Condition::matches(field, i64::from(*term))])
                        }
                    }
                })
                .collect();
            let name = collection.to_owned();
            let counts = self.call("count terms", collection, move |client| {
                let filters = filters.clone();
                let name = name.clone();
                async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (position, filter) in filters.into_iter().enumerate() {
                        let client = client.clone();
                        let request = CountPointsBuilder::new(name.clone())
                            .filter(filter)
                            .exact(true)
                            .build();
                        tasks.spawn(async move {
                            let answer = client.count(request).await?;
                            Ok::<_, QdrantError>((position, answer.result.map_or(0, |r| r.count)))
                        });
                    }
                    let mut counts = vec![0_u64; tasks.len()];
                    while let Some(joined) = tasks.join_next().await {
                        let (position, count) = joined.map_err(|e| {
                            QdrantError::ConversionError(format!("a count task failed: {e}"))
                        })??;
                        counts[position] = count;
                    }
                    Ok(counts)
                }
            });
            self.checked(collection, counts)?
        };
        {
            let mut recent = self.term_counts.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() > TERM_COUNTS_KEPT {
                recent.retain(|_, (counted, _)| counted.elapsed() < TERM_COUNTS_TTL);
            }
            let now = Instant::now();
            for (key, count) in wanted.into_iter().zip(counts) {
                recent.insert(key.clone(), (now, count));
                counted.insert(key, count as f32);
            }
        }
        let count = |vector: &str, term: Option<u32>| {
            counted
                .get(&(collection.to_owned(), vector.to_owned(), term))
                .copied()
                .unwrap_or(0.0)
        };
        for (vector, sparse) in &mut sparse_queries {
            let n = count(vector, None);
            for (weight, &term) in sparse.values.iter_mut().zip(&sparse.indices) {
                let df = count(vector, Some(term));
                *weight *= ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            }
        }
        Ok(())
    }

    /// Forgets the cached config when the server says the collection does not exist.
    fn checked<T>(&self, collection: &str, result: Result<T>) -> Result<T> {
        if matches!(result, Err(StoreError::UnknownCollection(_))) {
            self.forget(collection);
        }
        result
    }

    fn field_index(&self, collection: &str, field: &str, field_type: FieldType) -> Result<()> {
        let request = CreateFieldIndexCollectionBuilder::new(
            collection,
            field,
            convert::field_type(field_type),
        )
        .wait(true)
        .build();
        self.send(
            "create payload index",
            collection,
            request,
            |client, request| async move { client.create_field_index(request).await },
        )
        .map(|_| ())
    }

    fn fetch_info(&self, name: &str) -> Result<grpc::CollectionInfo> {
        let request = grpc::GetCollectionInfoRequest {
            collection_name: name.to_owned(),
        };
        let info = self.send(
            "collection info",
            name,
            request,
            |client, request| async move { client.collection_info(request).await },
        )?;
        info.result.ok_or_else(|| StoreError::Remote {
            node: self.node_names(),
            operation: "collection info",
            collection: name.to_owned(),
            message: "the answer holds no collection".into(),
        })
    }
}

impl Drop for QdrantStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside another runtime that panics. Background
        // shutdown does neither.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What an error means for the retry loop.
fn classify(err: QdrantError, node: &str, operation: &'static str, collection: &str) -> Failure {
    let status = match err {
        QdrantError::ResponseError { status } => status,
        QdrantError::ResourceExhaustedError { status, .. } => status,
        other => {
            return Failure::Final(StoreError::Remote {
                node: node.to_owned(),
                operation,
                collection: collection.to_owned(),
                message: other.to_string(),
            });
        }
    };
    let message = status.message().to_owned();
    // The client reports a connection it could not open, or one that broke, as Internal or
    // Unknown with the transport's words: the node is unreachable, not failing the request.
    let transport = matches!(status.code(), Code::Internal | Code::Unknown)
        && (message.starts_with("Failed to connect") || message.contains("transport error"));
    match status.code() {
        _ if transport => Failure::Retry(format!("{node}: {message}")),
        Code::DeadlineExceeded => Failure::Slow(format!("{node}: {message} (deadline exceeded)")),
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Cancelled => {
            Failure::Retry(format!(
                "{node}: {} ({})",
                if message.is_empty() {
                    "no message"
                } else {
                    message.as_str()
                },
                code_name(status.code())
            ))
        }
        Code::NotFound if message.contains("Collection") || message.contains("collection") => {
            Failure::Final(StoreError::UnknownCollection(collection.to_owned()))
        }
        Code::AlreadyExists => Failure::Final(StoreError::CollectionExists(collection.to_owned())),
        Code::InvalidArgument
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unauthenticated
        | Code::PermissionDenied => Failure::Final(StoreError::Rejected {
            node: node.to_owned(),
            operation,
            collection: collection.to_owned(),
            message: format!("{message} ({})", code_name(status.code())),
        }),
        code => Failure::Final(StoreError::Remote {
            node: node.to_owned(),
            operation,
            collection: collection.to_owned(),
            message: format!("{message} ({})", code_name(code)),
        }),
    }
}

fn already_exists(err: &QdrantError) -> bool {
    match err {
        QdrantError::ResponseError { status } => {
            status.code() == Code::AlreadyExists || status.message().contains("already exists")
        }
        _ => false,
    }
}

fn code_name(code: Code) -> String {
    format!("{code:?}").to_lowercase()
}

impl VectorStore for QdrantStore {
    fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()> {
        check_collection_name(name)?;
        config.validate()?;
        let chosen = self.options.replication_factor;
        self.send_create(name, config, chosen)?;
        // One address given and no replication chosen: the address may be one node of a
        // cluster, where a collection of one copy fails every search when any node dies.
        // Qdrant spreads a new collection's shards over every peer, so its shard placement
        // says whether there are others; then the collection is made again with 2 copies,
        // as when several nodes are listed.
        if chosen.is_none() {
            let peers = self.peers_holding(name);
            if peers.as_ref().is_ok_and(|peers| *peers > 1) {
                self.delete_collection(name)?;
                self.send_create(name, config, Some(2))?;
            }
        }
        // The terms index of each sparse vector weighed by IDF; without it the collection
        // would not be what was asked, so it goes again if one cannot be made.
        let weighed_here: BTreeSet<String> = config
            .sparse_vectors
            .iter()
            .filter(|(_, p)| p.idf)
            .map(|(name, _)| name.clone())
            .collect();
        for vector in &weighed_here {
            let made = self.field_index(name, &convert::terms_field(vector), FieldType::Integer);
            if let Err(err) = made {
                let _ = self.delete_collection(name);
                return Err(err);
            }
        }
        self.remember(
            name,
            Known {
                config: config.clone(),
                weighed_here: Arc::new(weighed_here),
            },
        );
        Ok(())
    }

    fn delete_collection(&self, name: &str) -> Result<bool> {
        self.forget(name);
        let exists = {
            let name = name.to_owned();
            self.call("delete collection", &name.clone(), move |client| {
                let name = name.clone();
                async move {
                    let exists = client.collection_exists(&name).await?;
                    if exists {
                        client.delete_collection(&name).await?;
                    }
                    Ok(exists)
                }
            })?
        };
        Ok(exists)
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        let answer = self.call("list collections", "*", |client| async move {
            client.list_collections().await
        })?;
        let mut names: Vec<String> = answer.collections.into_iter().map(|c| c.name).collect();
        names.sort();
        Ok(names)
    }

    fn collection_config(&self, name: &str) -> Result<CollectionConfig> {
        self.known(name).map(|known| known.config)
    }

    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        let info = self.fetch_info(name)?;
        let config = self.learn(name, &info).config;
        Ok(CollectionInfo {
            name: name.to_owned(),
            config,
            points: info.points_count.unwrap_or_default() as usize,
            indexed_vectors: info.indexed_vectors_count.unwrap_or_default() as usize,
            segments: info.segments_count as usize,
            payload_indexes: info
                .payload_schema
                .into_iter()
                .filter(|(key, _)| !key.starts_with(convert::RESERVED_PREFIX))
                .map(|(key, schema)| (key, convert::payload_type_name(schema.data_type)))
                .collect::<BTreeMap<_, _>>(),
        })
    }

    fn upsert(&self, collection: &str, points: Vec<crate::Point>) -> Result<UpsertSummary> {
        let known = self.known(collection)?;
        // Before the batch is checked and deduplicated, so the index is the caller's.
        for (index, point) in points.iter().enumerate() {
            if let Some(key) = point.payload.as_object().and_then(|payload| {
                payload
                    .keys()
                    .find(|key| key.starts_with(convert::RESERVED_PREFIX))
            }) {
                return Err(StoreError::ReservedPayloadKey {
                    index,
                    id: point.id,
                    key: key.clone(),
                    prefix: convert::RESERVED_PREFIX,
                });
            }
        }
        let (points, duplicates_replaced) = prepare_batch(&known.config, points)?;
        let written = points.len();
        if written == 0 {
            return Ok(UpsertSummary {
                written,
                duplicates_replaced,
            });
        }
        // Points carry their ids: a batch sent twice (a retry after a lost answer) writes the
        // same points again, never copies of them.
        let request = UpsertPointsBuilder::new(
            collection,
            points
                .into_iter()
                .map(|point| convert::point(point, &known.weighed_here))
                .collect::<Vec<_>>(),
        )
        .wait(true)
        .build();
        self.send(
            "upsert",
            collection,
            request,
            |client, request| async move { client.upsert_points(request).await },
        )?;
        self.forget_counts(collection);
        Ok(UpsertSummary {
            written,
            duplicates_replaced,
        })
    }

    fn delete(&self, collection: &str, selector: PointSelector) -> Result<()> {
        self.collection_config(collection)?;
        let selector = match selector {
            PointSelector::Ids(ids) if ids.is_empty() => return Ok(()),
            PointSelector::Ids(ids) => PointsSelectorOneOf::Points(PointsIdsList {
                ids: ids.into_iter().map(convert::point_id).collect(),
            }),
            PointSelector::Filter(filter) => PointsSelectorOneOf::Filter(convert::filter(&filter)?),
        };
        let request = DeletePointsBuilder::new(collection)
            .points(selector)
            .wait(true)
            .build();
        self.send(
            "delete",
            collection,
            request,
            |client, request| async move { client.delete_points(request).await },
        )?;
        self.forget_counts(collection);
        Ok(())
    }

    fn get(
        &self,
        collection: &str,
        ids: &[PointId],
        with_payload: PayloadSelection,
        with_vectors: VectorSelection,
    ) -> Result<Vec<Record>> {
        let config = self.collection_config(collection)?;
        check_vector_selection(&config, &with_vectors)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = GetPointsBuilder::new(
            collection,
            ids.iter()
                .copied()
                .map(convert::point_id)
                .collect::<Vec<_>>(),
        )
        .with_payload(convert::with_payload(&with_payload))
        .with_vectors(convert::with_vectors(&with_vectors))
        .build();
        let answer = self.send("get", collection, request, |client, request| async move {
            client.get_points(request).await
        })?;
        let mut by_id = HashMap::with_capacity(answer.result.len());
        for point in answer.result {
            let record = convert::record(point)?;
            by_id.insert(record.id, record);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<usize> {
        let mut builder = CountPointsBuilder::new(collection).exact(true);
        if let Some(filter) = convert::filter_opt(filter)? {
            builder = builder.filter(filter);
        }
        let request = builder.build();
        let answer = self.send("count", collection, request, |client, request| async move {
            client.count(request).await
        })?;
        Ok(answer.result.map_or(0, |r| r.count as usize))
    }

    fn scroll(&self, collection: &str, request: ScrollRequest) -> Result<ScrollPage> {
        let config = self.collection_config(collection)?;
        check_vector_selection(&config, &request.with_vectors)?;
        let limit = u32::try_from(request.limit).unwrap_or(u32::MAX);
        let mut builder = ScrollPointsBuilder::new(collection)
            .limit(limit)
            .with_payload(convert::with_payload(&request.with_payload))
            .with_vectors(convert::with_vectors(&request.with_vectors));
        if let Some(filter) = convert::filter_opt(request.filter.as_ref())? {
            builder = builder.filter(filter);
        }
        if let Some(offset) = request.offset {
            builder = builder.offset(convert::point_id(offset));
        }
        let message = builder.build();
        let answer = self.send(
            "scroll",
            collection,
            message,
            |client, message| async move { client.scroll(message).await },
        )?;
        Ok(ScrollPage {
            points: answer
                .result
                .into_iter()
                .map(convert::record)
                .collect::<Result<_>>()?,
            next: answer
                .next_page_offset
                .map(|id| convert::our_point_id(Some(id)))
                .transpose()?,
        })
    }

    fn search_batch(
        &self,
        collection: &str,
        mut requests: Vec<SearchRequest>,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        let known = self.known(collection)?;
        let config = &known.config;
        for (index, request) in requests.iter().enumerate() {
            check_query(config, index, &request.query)?;
            check_vector_selection(config, &request.with_vectors)?;
        }
        self.weigh_by_idf(
            collection,
            &known,
            requests.iter_mut().map(|r| &mut r.query),
        )?;
        let mut queries = Vec::with_capacity(requests.len());
        for request in &requests {
            let mut params = SearchParamsBuilder::default().exact(request.exact);
            if let Some(ef) = request.ef {
                params = params.hnsw_ef(ef as u64);
            }
            let mut builder = QueryPointsBuilder::new(collection)
                .query(convert::query_vector(&request.query.vector))
                .using(request.query.using.clone())
                .limit(request.limit as u64)
                .offset(request.offset as u64)
                .params(params)
                .with_payload(convert::with_payload(&request.with_payload))
                .with_vectors(convert::with_vectors(&request.with_vectors));
            if let Some(filter) = convert::filter_opt(request.filter.as_ref())? {
                builder = builder.filter(filter);
            }
            if let Some(threshold) = request.score_threshold {
                builder = builder.score_threshold(threshold);
            }
            queries.push(builder.build());
        }
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryBatchPointsBuilder::new(collection, queries).build();
        let answer = self.send(
            "search",
            collection,
            request,
            |client, request| async move { client.query_batch(request).await },
        )?;
        answer
            .result
            .into_iter()
            .map(|batch| batch.result.into_iter().map(convert::scored).collect())
            .collect()
    }

    fn create_payload_index(
        &self,
        collection: &str,
        field: &str,
        field_type: FieldType,
    ) -> Result<()> {
        if field.starts_with(convert::RESERVED_PREFIX) {
            return Err(StoreError::BadFilter(format!(
                "payload field `{field}` begins with `{}`, which this store keeps for its own fields",
                convert::RESERVED_PREFIX
            )));
        }
        self.field_index(collection, field, field_type)
    }

    fn node_metrics(&self) -> Vec<NodeMetrics> {
        self.nodes
            .iter()
            .map(|node| node.breaker.metrics(&node.name))
            .collect()
    }

    /// Qdrant writes its write-ahead log before it acknowledges a write (`wait`), so there is
    /// nothing left to flush from here.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Qdrant's optimizers index new segments by themselves: this waits until they are done
    /// (the collection is green twice in a row, since they start a moment after a write).
    fn optimize(&self, collection: &str) -> Result<bool> {
        let deadline = Instant::now() + OPTIMIZE_WAIT;
        let mut waited = false;
        let mut greens = 0;
        while greens < 2 {
            let info = self.fetch_info(collection)?;
            if info.status == grpc::CollectionStatus::Green as i32 {
                greens += 1;
            } else {
                greens = 0;
                waited = true;
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Remote {
                    node: self.node_names(),
                    operation: "optimize",
                    collection: collection.to_owned(),
                    message: format!(
                        "still optimizing after {} s; searches work meanwhile",
                        OPTIMIZE_WAIT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(waited)
    }

    fn create_snapshot(&self, collection: &str) -> Result<SnapshotInfo> {
        let points = self.count(collection, None)?;
        let name = collection.to_owned();
        let answer = self.send(
            "create snapshot",
            collection,
            name,
            |client, name| async move { client.create_snapshot(name).await },
        )?;
        let description = answer
            .snapshot_description
            .ok_or_else(|| StoreError::Remote {
                node: self.node_names(),
                operation: "create snapshot",
                collection: collection.to_owned(),
                message: "the answer describes no snapshot".into(),
            })?;
        Ok(snapshot_info(collection, description, points))
    }

    fn list_snapshots(&self, collection: &str) -> Result<Vec<SnapshotInfo>> {
        let name = collection.to_owned();
        let answer = self.send(
            "list snapshots",
            collection,
            name,
            |client, name| async move { client.list_snapshots(name).await },
        )?;
        let mut snapshots: Vec<SnapshotInfo> = answer
            .snapshot_descriptions
            .into_iter()
            .map(|d| snapshot_info(collection, d, 0))
            .collect();
        snapshots.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(snapshots)
    }

    // A server's snapshots live on its nodes (one node's shards each, in a cluster) and are
    // restored with Qdrant's own recover API, which the gRPC client does not carry.
    fn snapshot_file(&self, _collection: &str, _name: &str) -> Result<(PathBuf, SnapshotInfo)> {
        Err(StoreError::Unsupported(
            "downloading snapshots (they stay on the Qdrant nodes; use Qdrant's snapshot API)",
        ))
    }

    fn restore_snapshot(&self, _collection: &str, _name: &str) -> Result<SnapshotInfo> {
        Err(StoreError::Unsupported(RESTORE_ON_QDRANT))
    }

    fn restore_snapshot_file(&self, _collection: &str, _archive: &Path) -> Result<SnapshotInfo> {
        Err(StoreError::Unsupported(RESTORE_ON_QDRANT))
    }

    fn delete_snapshot(&self, collection: &str, name: &str) -> Result<bool> {
        if !self
            .list_snapshots(collection)?
            .iter()
            .any(|s| s.name == name)
        {
            return Ok(false);
        }
        let request = DeleteSnapshotRequestBuilder::new(collection, name).build();
        self.send(
            "delete snapshot",
            collection,
            request,
            |client, request| async move { client.delete_snapshot(request).await },
        )
        .map(|_| true)
    }
}

/// Qdrant's description of a snapshot. Its checksum is Qdrant's (SHA-256), and the point
/// count is only known when the snapshot was just taken.
fn snapshot_info(
    collection: &str,
    description: grpc::SnapshotDescription,
    points: usize,
) -> SnapshotInfo {
    let created = description
        .creation_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    SnapshotInfo {
        name: description.name,
        collection: collection.to_owned(),
        created,
        size: description.size.max(0) as u64,
        checksum: description.checksum.unwrap_or_default(),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: tonic::Status) -> Failure {
        classify(
            QdrantError::ResponseError { status },
            "q1:6334",
            "search",
            "tasks",
        )
    }

    #[test]
    fn a_request_past_its_deadline_is_slow_not_a_sick_node() {
        assert!(matches!(
            status(tonic::Status::deadline_exceeded("took too long")),
            Failure::Slow(_)
        ));
        assert!(matches!(
            status(tonic::Status::unavailable("restarting")),
            Failure::Retry(_)
        ));
        assert!(matches!(
            status(tonic::Status::invalid_argument("bad vector")),
            Failure::Final(_)
        ));
        assert!(SENT_ONCE.contains(&"create snapshot"));
    }
}
