//! Searches in Qdrant's shapes: `search` and its batch, `recommend`, and the universal `query`
//! (nearest by vector, id or document; prefetches, rescoring and fusion by `rrf` or `dbsf`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::Path;
use axum::response::Response;
use mnemo_engine::Engine;
use mnemo_store::{
    CollectionConfig, Condition, Distance, Filter, NearestQuery, PayloadSelection, PointId,
    ScoredPoint, SearchRequest, Vector, VectorSelection,
};
use serde_json::{Map, Value, json};

use super::collections::answer;
use super::convert::{
    PayloadOut, VectorIn, embed_documents, read_count, read_filter, read_limit,
    read_vector_selection, refuse_present, scored_json,
};
use super::{Body, QdrantError, QdrantResult, Shared, Started, run};

/// How deep prefetches nest, and how many one request holds in all.
const MAX_PREFETCH_DEPTH: usize = 8;
const MAX_PREFETCHES: usize = 64;

/// Qdrant's default `k` of reciprocal rank fusion: a point at rank `r` (from 0) adds
/// `1 / (k + r)`.
const DEFAULT_RRF_K: f32 = 2.0;

/// What a query asks at one level.
#[derive(Debug, Clone)]
enum QueryKind {
    Nearest(VectorIn),
    /// The nearest `candidates`, of which `limit` are picked by maximal marginal relevance:
    /// each next one the most relevant after its likeness to those picked is taken off,
    /// weighed by `diversity` (0: relevance alone, 1: difference alone).
    Mmr {
        vector: VectorIn,
        diversity: f32,
        candidates: Option<usize>,
    },
    /// Qdrant's `average_vector` recommendation: closer to the positives' mean, away from
    /// the negatives'.
    Recommend {
        positive: Vec<VectorIn>,
        negative: Vec<VectorIn>,
    },
    Rrf {
        k: f32,
        weights: Vec<f32>,
    },
    Dbsf,
}

/// One level of a query, with the prefetches it reads from.
#[derive(Debug, Clone)]
struct Plan {
    prefetch: Vec<Plan>,
    query: Option<QueryKind>,
    using: Option<String>,
    filter: Option<Filter>,
    score_threshold: Option<f32>,
    limit: usize,
    offset: usize,
    ef: Option<usize>,
    exact: bool,
}

/// What the top level returns of each point.
struct Shown {
    payload: PayloadOut,
    vectors: VectorSelection,
}

impl Shown {
    fn read(body: &Map<String, Value>) -> QdrantResult<Self> {
        Ok(Self {
            payload: PayloadOut::read(body.get("with_payload"), false)?,
            vectors: read_vector_selection(
                body.get("with_vector").or_else(|| body.get("with_vectors")),
                false,
            )?,
        })
    }

    fn render(&self, points: Vec<ScoredPoint>) -> Vec<Value> {
        points
            .into_iter()
            .map(|point| scored_json(point, &self.payload, &self.vectors))
            .collect()
    }
}

fn read_params(body: &Map<String, Value>) -> QdrantResult<(Option<usize>, bool)> {
    let Some(params) = body.get("params") else {
        return Ok((None, false));
    };
    let params = params
        .as_object()
        .ok_or_else(|| QdrantError::bad("`params`: expected {\"hnsw_ef\", \"exact\"}"))?;
    let ef = read_count(params, "hnsw_ef", 0)?;
    let exact = params
        .get("exact")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(((ef > 0).then_some(ef), exact))
}

fn read_threshold(body: &Map<String, Value>) -> QdrantResult<Option<f32>> {
    body.get("score_threshold")
        .map(|value| {
            value
                .as_f64()
                .map(|threshold| threshold as f32)
                .ok_or_else(|| QdrantError::bad("`score_threshold`: expected a number"))
        })
        .transpose()
}

/// Members of search requests this door does not serve.
const REFUSED_IN_SEARCHES: &[&str] = &["lookup_from", "shard_key", "group_by"];

/// A query request (`/points/query` or a prefetch), `depth` levels down; `budget` counts the
/// prefetches left for the whole request.
fn read_plan(
    body: &Map<String, Value>,
    at: &str,
    depth: usize,
    budget: &mut usize,
) -> QdrantResult<Plan> {
    refuse_present(body, REFUSED_IN_SEARCHES)?;
    let mut prefetch = Vec::new();
    if let Some(value) = body.get("prefetch") {
        if depth >= MAX_PREFETCH_DEPTH {
            return Err(QdrantError::bad(format!(
                "{at}.prefetch: prefetches nest at most {MAX_PREFETCH_DEPTH} levels deep"
            )));
        }
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for (index, item) in items.into_iter().enumerate() {
            if *budget == 0 {
                return Err(QdrantError::bad(format!(
                    "a query holds at most {MAX_PREFETCHES} prefetches"
                )));
            }
            *budget -= 1;
            let inner = item.as_object().ok_or_else(|| {
                QdrantError::bad(format!("{at}.prefetch[{index}]: expected an object"))
            })?;
            prefetch.push(read_plan(
                inner,
                &format!("{at}.prefetch[{index}]"),
                depth + 1,
                budget,
            )?);
        }
    }
    let (ef, exact) = read_params(body)?;
    let (limit, offset) = read_limit(body, 10)?;
    let query = body
        .get("query")
        .map(|query| read_query(query, &format!("{at}.query")))
        .transpose()?;
    Ok(Plan {
        prefetch,
        query,
        using: body.get("using").and_then(Value::as_str).map(str::to_owned),
        filter: read_filter(body.get("filter"), &format!("{at}.filter"))?,
        score_threshold: read_threshold(body)?,
        limit,
        offset,
        ef,
        exact,
    })
}

fn read_query(value: &Value, at: &str) -> QdrantResult<QueryKind> {
    let Some(members) = value.as_object() else {
        return Ok(QueryKind::Nearest(VectorIn::read(value, at, true)?));
    };
    if let Some(nearest) = members.get("nearest") {
        let vector = VectorIn::read(nearest, &format!("{at}.nearest"), true)?;
        let Some(mmr) = members.get("mmr") else {
            return Ok(QueryKind::Nearest(vector));
        };
        let mmr = mmr.as_object().ok_or_else(|| {
            QdrantError::bad(format!(
                "{at}.mmr: expected {{\"diversity\", \"candidates_limit\"}}"
            ))
        })?;
        let diversity = match mmr.get("diversity") {
            None => 0.5,
            Some(value) => value
                .as_f64()
                .filter(|d| (0.0..=1.0).contains(d))
                .ok_or_else(|| {
                    QdrantError::bad(format!("{at}.mmr.diversity: expected a number from 0 to 1"))
                })? as f32,
        };
        let candidates = mmr
            .contains_key("candidates_limit")
            .then(|| read_count(mmr, "candidates_limit", 0))
            .transpose()?;
        if candidates.is_some_and(|count| count > mnemo_engine::MAX_RESULTS) {
            return Err(QdrantError::bad(format!(
                "{at}.mmr.candidates_limit: at most {}",
                mnemo_engine::MAX_RESULTS
            )));
        }
        return Ok(QueryKind::Mmr {
            vector,
            diversity,
            candidates,
        });
    }
    if let Some(fusion) = members.get("fusion") {
        return match fusion.as_str() {
            Some("rrf") => Ok(QueryKind::Rrf {
                k: DEFAULT_RRF_K,
                weights: Vec::new(),
            }),
            Some("dbsf") => Ok(QueryKind::Dbsf),
            _ => Err(QdrantError::bad(format!(
                "{at}.fusion: expected \"rrf\" or \"dbsf\", found {fusion}"
            ))),
        };
    }
    if let Some(rrf) = members.get("rrf") {
        let k = match rrf.get("k") {
            None => DEFAULT_RRF_K,
            Some(k) => k
                .as_u64()
                .filter(|k| (1..=1_000_000).contains(k))
                .map(|k| k as f32)
                .ok_or_else(|| {
                    QdrantError::bad(format!("{at}.rrf.k: expected an integer from 1"))
                })?,
        };
        let weights = match rrf.get("weights") {
            None => Vec::new(),
            Some(weights) => weights
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|weight| weight.as_f64().map(|w| w as f32))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    QdrantError::bad(format!("{at}.rrf.weights: expected a list of numbers"))
                })?,
        };
        return Ok(QueryKind::Rrf { k, weights });
    }
    if let Some(recommend) = members.get("recommend") {
        let recommend = recommend.as_object().ok_or_else(|| {
            QdrantError::bad(format!(
                "{at}.recommend: expected {{\"positive\", \"negative\"}}"
            ))
        })?;
        return read_recommend(recommend, &format!("{at}.recommend"));
    }
    for other in [
        "discover", "context", "order_by", "sample", "formula", "mmr",
    ] {
        if members.contains_key(other) {
            return Err(QdrantError::unsupported(format!("{at}: `{other}` queries")));
        }
    }
    Ok(QueryKind::Nearest(VectorIn::read(value, at, true)?))
}

fn read_recommend(body: &Map<String, Value>, at: &str) -> QdrantResult<QueryKind> {
    if let Some(strategy) = body.get("strategy").and_then(Value::as_str)
        && strategy != "average_vector"
    {
        return Err(QdrantError::unsupported(format!(
            "{at}.strategy `{strategy}` (mnemo serves `average_vector`)"
        )));
    }
    let examples = |key: &str| -> QdrantResult<Vec<VectorIn>> {
        match body.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| VectorIn::read(item, &format!("{at}.{key}[{index}]"), true))
                .collect(),
            Some(_) => Err(QdrantError::bad(format!(
                "{at}.{key}: expected a list of point ids or vectors"
            ))),
        }
    };
    let positive = examples("positive")?;
    if positive.is_empty() {
        return Err(QdrantError::bad(format!(
            "{at}.positive: give at least one example"
        )));
    }
    Ok(QueryKind::Recommend {
        positive,
        negative: examples("negative")?,
    })
}

/// Runs plans on one collection: vectors resolved (documents embedded, ids looked up),
/// prefetches first, then the level's own query over their results.
struct Executor<'a> {
    engine: &'a Engine,
    collection: String,
    config: CollectionConfig,
}

/// A query vector ready for the store, and the points it must not return (the examples
/// given by id).
struct Resolved {
    query: NearestQuery,
    exclude: Vec<PointId>,
}

impl Executor<'_> {
    fn vector_name(&self, using: Option<&str>, sparse: bool) -> QdrantResult<String> {
        if sparse {
            return match using {
                Some(name) => Ok(name.to_owned()),
                None if self.config.sparse_vectors.len() == 1 => Ok(self
                    .config
                    .sparse_vectors
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_default()),
                None => Err(QdrantError::bad(
                    "a sparse query names its vector with `using`",
                )),
            };
        }
        self.config
            .dense_vector(using)
            .map(str::to_owned)
            .map_err(|choice| QdrantError::bad(choice.message("name one with `using`")))
    }

    /// The stored vector `using` of the point `id`.
    fn vector_of(&self, id: PointId, using: Option<&str>) -> QdrantResult<(String, Vector)> {
        let sparse = using.is_some_and(|name| self.config.sparse_vectors.contains_key(name));
        let name = self.vector_name(using, sparse)?;
        let record = self
            .engine
            .store()
            .get(
                &self.collection,
                &[id],
                PayloadSelection::None,
                VectorSelection::Names(vec![name.clone()]),
            )?
            .pop()
            .ok_or_else(|| {
                QdrantError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    format!("Not found: No point with id {id} found"),
                )
            })?;
        let vector = record
            .vectors
            .get(&name)
            .cloned()
            .ok_or_else(|| QdrantError::bad(format!("point {id} has no vector `{name}`")))?;
        Ok((name, vector))
    }

    fn resolve(&self, kind: &QueryKind, using: Option<&str>) -> QdrantResult<Resolved> {
        match kind {
            QueryKind::Mmr { vector, .. } => {
                self.resolve(&QueryKind::Nearest(vector.clone()), using)
            }
            QueryKind::Nearest(VectorIn::Id(id)) => {
                let (using, vector) = self.vector_of(*id, using)?;
                Ok(Resolved {
                    query: NearestQuery { using, vector },
                    exclude: vec![*id],
                })
            }
            QueryKind::Nearest(vector) => {
                let vector = vector.clone().into_vector("query")?;
                let sparse = matches!(vector, Vector::Sparse(_));
                Ok(Resolved {
                    query: NearestQuery {
                        using: self.vector_name(using, sparse)?,
                        vector,
                    },
                    exclude: Vec::new(),
                })
            }
            QueryKind::Recommend { positive, negative } => {
                let using_name = self.vector_name(using, false)?;
                let mut exclude = Vec::new();
                let mut dense = |examples: &[VectorIn]| -> QdrantResult<Vec<Vec<f32>>> {
                    examples
                        .iter()
                        .map(|example| {
                            let vector = match example {
                                VectorIn::Id(id) => {
                                    exclude.push(*id);
                                    self.vector_of(*id, Some(&using_name))?.1
                                }
                                other => other.clone().into_vector("recommend")?,
                            };
                            match vector {
                                Vector::Dense(values) => Ok(values),
                                Vector::Sparse(_) => {
                                    Err(QdrantError::unsupported("recommending by sparse vectors"))
                                }
                            }
                        })
                        .collect()
                };
                let positive = dense(positive)?;
                let negative = dense(negative)?;
                Ok(Resolved {
                    query: NearestQuery {
                        using: using_name,
                        vector: Vector::Dense(average_vector(&positive, &negative)?),
                    },
                    exclude,
                })
            }
            QueryKind::Rrf { .. } | QueryKind::Dbsf => {
                Err(QdrantError::bad("a fusion query needs prefetches to fuse"))
            }
        }
    }

    /// The points of `plan`, best first; `outer` is the filter of the levels above (Qdrant
    /// applies a query's filter to its prefetches too). The top level asks for `shown`.
    fn execute(
        &self,
        plan: &Plan,
        outer: Option<&Filter>,
        shown: Option<(&PayloadSelection, &VectorSelection)>,
    ) -> QdrantResult<Vec<ScoredPoint>> {
        let filter = match (outer, &plan.filter) {
            (Some(outer), Some(own)) => Some(outer.clone().and(own.clone())),
            (Some(outer), None) => Some(outer.clone()),
            (None, own) => own.clone(),
        };
        let take = plan.limit + plan.offset;
        let Some(kind) = &plan.query else {
            return Err(QdrantError::unsupported(
                "a query without `query` (listing points: use scroll)",
            ));
        };
        let fused = match kind {
            QueryKind::Rrf { .. } | QueryKind::Dbsf => {
                if plan.prefetch.is_empty() {
                    return Err(QdrantError::bad("a fusion query needs prefetches to fuse"));
                }
                let lists = plan
                    .prefetch
                    .iter()
                    .map(|inner| {
                        let descending = self.larger_is_better(inner);
                        Ok((self.execute(inner, filter.as_ref(), None)?, descending))
                    })
                    .collect::<QdrantResult<Vec<_>>>()?;
                let mut fused = match kind {
                    QueryKind::Rrf { k, weights } => rrf(&lists, *k, weights),
                    _ => dbsf(&lists),
                };
                if let Some(threshold) = plan.score_threshold {
                    fused.retain(|point| point.score >= threshold);
                }
                fused.truncate(take);
                Some(fused)
            }
            QueryKind::Mmr {
                diversity,
                candidates,
                ..
            } => {
                let mut request =
                    self.nearest_request(kind, plan, filter.clone(), candidates.unwrap_or(take))?;
                request.offset = 0;
                request.with_vectors = VectorSelection::Names(vec![request.query.using.clone()]);
                let query = request.query.clone();
                let found = self.engine.store().search(&self.collection, request)?;
                let mut picked =
                    self.maximal_marginal_relevance(found, &query, 1.0 - diversity, take);
                for point in &mut picked {
                    point.vectors.clear();
                }
                Some(picked)
            }
            _ => None,
        };
        let mut points = match fused {
            Some(points) => points,
            None => {
                let mut request = self.nearest_request(kind, plan, filter, plan.limit)?;
                request.with_payload = shown.map_or(PayloadSelection::None, |s| s.0.clone());
                request.with_vectors = shown.map_or(VectorSelection::None, |s| s.1.clone());
                return Ok(self.engine.store().search(&self.collection, request)?);
            }
        };
        if shown.is_none() {
            return Ok(points);
        }
        // The top level of a fusion: the offset, then the payloads and vectors asked for.
        points.drain(..plan.offset.min(points.len()));
        let (payload, vectors) = shown.unwrap_or((&PayloadSelection::None, &VectorSelection::None));
        if *payload != PayloadSelection::None || *vectors != VectorSelection::None {
            let ids: Vec<PointId> = points.iter().map(|point| point.id).collect();
            let records: HashMap<PointId, mnemo_store::Record> = self
                .engine
                .store()
                .get(&self.collection, &ids, payload.clone(), vectors.clone())?
                .into_iter()
                .map(|record| (record.id, record))
                .collect();
            for point in &mut points {
                if let Some(record) = records.get(&point.id) {
                    point.payload = record.payload.clone();
                    point.vectors = record.vectors.clone();
                }
            }
        }
        Ok(points)
    }

    /// The store's search for a nearest (or recommendation) query at `plan`'s level: the
    /// vector resolved, restricted to what the prefetches found when there are some, the
    /// examples given by id left out.
    fn nearest_request(
        &self,
        kind: &QueryKind,
        plan: &Plan,
        filter: Option<Filter>,
        limit: usize,
    ) -> QdrantResult<SearchRequest> {
        let resolved = self.resolve(kind, plan.using.as_deref())?;
        let mut filter = filter;
        if !plan.prefetch.is_empty() {
            // Rescoring: the nearest among what the prefetches found.
            let mut candidates = BTreeSet::new();
            for inner in &plan.prefetch {
                for point in self.execute(inner, filter.as_ref(), None)? {
                    candidates.insert(point.id);
                }
            }
            let only = Filter::must([Condition::has_id(candidates)]);
            filter = Some(match filter {
                Some(filter) => filter.and(only),
                None => only,
            });
        }
        if !resolved.exclude.is_empty() {
            let without = Filter {
                must_not: vec![Condition::has_id(resolved.exclude.iter().copied())],
                ..Filter::default()
            };
            filter = Some(match filter {
                Some(filter) => filter.and(without),
                None => without,
            });
        }
        let mut request = SearchRequest::new(resolved.query, limit);
        request.offset = plan.offset;
        request.filter = filter;
        request.score_threshold = plan.score_threshold;
        request.ef = plan.ef;
        request.exact = plan.exact;
        request.with_payload = PayloadSelection::None;
        Ok(request)
    }

    /// Picks `limit` of `found` (with their vectors) greedily: the most relevant first, then
    /// each time the one whose `lambda`·relevance − (1 − `lambda`)·(likeness to the nearest
    /// one picked) is highest. Likeness is the collection's own similarity; points keep their
    /// search scores, in the order picked.
    fn maximal_marginal_relevance(
        &self,
        found: Vec<ScoredPoint>,
        query: &NearestQuery,
        lambda: f32,
        limit: usize,
    ) -> Vec<ScoredPoint> {
        let distance = self
            .config
            .vectors
            .get(&query.using)
            .map_or(Distance::Dot, |params| params.distance);
        let vectors: Vec<Option<&Vector>> = found
            .iter()
            .map(|point| point.vectors.get(&query.using))
            .collect();
        let relevance: Vec<f32> = vectors
            .iter()
            .map(|vector| {
                vector.map_or(f32::NEG_INFINITY, |v| {
                    similarity(distance, &query.vector, v)
                })
            })
            .collect();
        let mut remaining: Vec<usize> =
            (0..found.len()).filter(|&i| vectors[i].is_some()).collect();
        let mut picked: Vec<usize> = Vec::with_capacity(limit);
        while picked.len() < limit && !remaining.is_empty() {
            let value = |candidate: usize| -> f32 {
                if picked.is_empty() {
                    return relevance[candidate];
                }
                let likeness = picked
                    .iter()
                    .filter_map(|&chosen| {
                        Some(similarity(distance, vectors[candidate]?, vectors[chosen]?))
                    })
                    .fold(f32::NEG_INFINITY, f32::max);
                lambda * relevance[candidate] - (1.0 - lambda) * likeness
            };
            let (position, _) = remaining
                .iter()
                .enumerate()
                .map(|(position, &candidate)| (position, value(candidate)))
                .fold((0, f32::NEG_INFINITY), |best, next| {
                    if next.1 >= best.1 { next } else { best }
                });
            picked.push(remaining.swap_remove(position));
        }
        let mut found: Vec<Option<ScoredPoint>> = found.into_iter().map(Some).collect();
        picked
            .into_iter()
            .filter_map(|index| found[index].take())
            .collect()
    }

    /// Whether a level's scores grow with relevance (every distance but Euclid and
    /// Manhattan, and every fusion).
    fn larger_is_better(&self, plan: &Plan) -> bool {
        match &plan.query {
            Some(QueryKind::Nearest(VectorIn::Sparse(_))) => true,
            Some(QueryKind::Nearest(_) | QueryKind::Mmr { .. } | QueryKind::Recommend { .. }) => {
                let name = self.vector_name(plan.using.as_deref(), false).ok();
                let distance = name
                    .and_then(|name| self.config.vectors.get(&name))
                    .map(|params| params.distance);
                !matches!(distance, Some(Distance::Euclid | Distance::Manhattan))
            }
            _ => true,
        }
    }
}

/// How alike two vectors are under `distance`, larger meaning closer (stored cosine vectors
/// are unit length, so cosine is their dot product once the query is normalized too).
fn similarity(distance: Distance, a: &Vector, b: &Vector) -> f32 {
    match (a, b) {
        (Vector::Dense(a), Vector::Dense(b)) => {
            let dot = || a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
            match distance {
                Distance::Dot => dot(),
                Distance::Cosine => {
                    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let product = norm(a) * norm(b);
                    if product > 0.0 { dot() / product } else { 0.0 }
                }
                Distance::Euclid => -a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f32>()
                    .sqrt(),
                Distance::Manhattan => -a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>(),
            }
        }
        (Vector::Sparse(a), Vector::Sparse(b)) => {
            let values: HashMap<u32, f32> = a
                .indices
                .iter()
                .copied()
                .zip(a.values.iter().copied())
                .collect();
            b.indices
                .iter()
                .zip(&b.values)
                .filter_map(|(index, value)| values.get(index).map(|v| v * value))
                .sum()
        }
        _ => 0.0,
    }
}

/// `2 · mean(positive) − mean(negative)`, or the positives' mean alone: Qdrant's
/// `average_vector` strategy.
fn average_vector(positive: &[Vec<f32>], negative: &[Vec<f32>]) -> QdrantResult<Vec<f32>> {
    let mean = |vectors: &[Vec<f32>]| -> QdrantResult<Vec<f32>> {
        let dim = vectors.first().map_or(0, Vec::len);
        let mut sum = vec![0.0f32; dim];
        for vector in vectors {
            if vector.len() != dim {
                return Err(QdrantError::bad(
                    "recommendation examples have different dimensions",
                ));
            }
            for (total, value) in sum.iter_mut().zip(vector) {
                *total += value;
            }
        }
        let count = vectors.len().max(1) as f32;
        Ok(sum.into_iter().map(|total| total / count).collect())
    };
    let positive_mean = mean(positive)?;
    if negative.is_empty() {
        return Ok(positive_mean);
    }
    let negative_mean = mean(negative)?;
    if negative_mean.len() != positive_mean.len() {
        return Err(QdrantError::bad(
            "recommendation examples have different dimensions",
        ));
    }
    Ok(positive_mean
        .iter()
        .zip(&negative_mean)
        .map(|(pos, neg)| pos + (pos - neg))
        .collect())
}

/// Reciprocal rank fusion: each list adds `weight / (k + rank)` to its points (rank from 0).
fn rrf(lists: &[(Vec<ScoredPoint>, bool)], k: f32, weights: &[f32]) -> Vec<ScoredPoint> {
    let mut fused: Vec<ScoredPoint> = Vec::new();
    let mut at: HashMap<PointId, usize> = HashMap::new();
    for (index, (points, _)) in lists.iter().enumerate() {
        let weight = weights.get(index).copied().unwrap_or(1.0);
        for (rank, point) in points.iter().enumerate() {
            let score = weight / (k + rank as f32);
            add_score(&mut fused, &mut at, point, score);
        }
    }
    sort_best_first(&mut fused);
    fused
}

/// Distribution-based score fusion: each list's scores mapped to [0, 1] between its mean
/// ∓ 3 sample standard deviations (inverted where smaller is better), then summed.
fn dbsf(lists: &[(Vec<ScoredPoint>, bool)]) -> Vec<ScoredPoint> {
    let mut fused: Vec<ScoredPoint> = Vec::new();
    let mut at: HashMap<PointId, usize> = HashMap::new();
    for (points, larger_is_better) in lists {
        let normalized = normalize_distribution(points, *larger_is_better);
        for (point, score) in points.iter().zip(normalized) {
            add_score(&mut fused, &mut at, point, score);
        }
    }
    sort_best_first(&mut fused);
    fused
}

fn normalize_distribution(points: &[ScoredPoint], larger_is_better: bool) -> Vec<f32> {
    if points.len() < 2 {
        return vec![0.5; points.len()];
    }
    let count = points.len() as f32;
    let mean = points.iter().map(|point| point.score).sum::<f32>() / count;
    let variance = points
        .iter()
        .map(|point| (point.score - mean).powi(2))
        .sum::<f32>()
        / (count - 1.0);
    let deviation = variance.sqrt();
    let (low, high) = (mean - 3.0 * deviation, mean + 3.0 * deviation);
    if low == high {
        return vec![0.5; points.len()];
    }
    points
        .iter()
        .map(|point| {
            if larger_is_better {
                (point.score - low) / (high - low)
            } else {
                (high - point.score) / (high - low)
            }
        })
        .collect()
}

fn add_score(
    fused: &mut Vec<ScoredPoint>,
    at: &mut HashMap<PointId, usize>,
    point: &ScoredPoint,
    score: f32,
) {
    match at.get(&point.id) {
        Some(&index) => fused[index].score += score,
        None => {
            at.insert(point.id, fused.len());
            fused.push(ScoredPoint {
                id: point.id,
                score,
                payload: Map::new(),
                vectors: BTreeMap::new(),
            });
        }
    }
}

fn sort_best_first(points: &mut [ScoredPoint]) {
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
}

async fn run_plans(
    state: &Shared,
    name: String,
    plans: Vec<(Plan, Shown)>,
) -> QdrantResult<Vec<Vec<Value>>> {
    run(state, move |engine| {
        let config = engine.store().collection_config(&name)?;
        let executor = Executor {
            engine,
            collection: name,
            config,
        };
        let mut plans = plans;
        embed_documents(
            engine,
            plans.iter_mut().flat_map(|(plan, _)| plan_vectors(plan)),
        )?;
        plans
            .iter()
            .map(|(plan, shown)| {
                let points = executor.execute(
                    plan,
                    None,
                    Some((&shown.payload.selection, &shown.vectors)),
                )?;
                Ok(shown.render(points))
            })
            .collect()
    })
    .await
}

/// Every vector a plan holds, its prefetches' included: the documents among them are
/// embedded together.
fn plan_vectors(plan: &mut Plan) -> Vec<&mut VectorIn> {
    let mut vectors = Vec::new();
    let mut pending = vec![plan];
    while let Some(plan) = pending.pop() {
        match &mut plan.query {
            Some(QueryKind::Nearest(vector) | QueryKind::Mmr { vector, .. }) => {
                vectors.push(vector)
            }
            Some(QueryKind::Recommend { positive, negative }) => {
                vectors.extend(positive.iter_mut());
                vectors.extend(negative.iter_mut());
            }
            _ => {}
        }
        pending.extend(plan.prefetch.iter_mut());
    }
    vectors
}

fn read_query_request(body: &Map<String, Value>, at: &str) -> QdrantResult<(Plan, Shown)> {
    let mut budget = MAX_PREFETCHES;
    Ok((read_plan(body, at, 0, &mut budget)?, Shown::read(body)?))
}

/// `POST /collections/{collection}/points/query`: `{"points": [...]}`.
pub(crate) async fn query(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        let plan = read_query_request(&body, "query request")?;
        let mut lists = run_plans(&state, name, vec![plan]).await?;
        Ok(json!({ "points": lists.pop().unwrap_or_default() }))
    }
    .await;
    answer(started, found)
}

/// The requests of a batch body (`{"searches": [...]}`), checked against the batch limit.
fn batch_items<'a>(
    state: &Shared,
    body: &'a Map<String, Value>,
) -> QdrantResult<Vec<&'a Map<String, Value>>> {
    let searches = body
        .get("searches")
        .and_then(Value::as_array)
        .ok_or_else(|| QdrantError::bad("`searches`: expected a list of requests"))?;
    state
        .check_batch("queries", searches.len())
        .map_err(QdrantError::from)?;
    searches
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_object()
                .ok_or_else(|| QdrantError::bad(format!("searches[{index}]: expected an object")))
        })
        .collect()
}

/// `POST /collections/{collection}/points/query/batch`: one `{"points"}` per request.
pub(crate) async fn query_batch(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        let plans = batch_items(&state, &body)?
            .into_iter()
            .enumerate()
            .map(|(index, item)| read_query_request(item, &format!("searches[{index}]")))
            .collect::<QdrantResult<Vec<_>>>()?;
        let lists = run_plans(&state, name, plans).await?;
        Ok(Value::Array(
            lists
                .into_iter()
                .map(|points| json!({ "points": points }))
                .collect(),
        ))
    }
    .await;
    answer(started, found)
}

/// A `search` request (`{"vector": [...] | {"name", "vector"}, ...}`) as a plan. Unlike
/// `query`, a search returns no payload unless asked, as in Qdrant.
fn read_search(body: &Map<String, Value>, at: &str) -> QdrantResult<(Plan, Shown)> {
    refuse_present(body, REFUSED_IN_SEARCHES)?;
    let vector = body
        .get("vector")
        .ok_or_else(|| QdrantError::bad(format!("{at}.vector: the query vector is missing")))?;
    let (using, vector) = match vector.as_object() {
        Some(named) if named.contains_key("name") && named.contains_key("vector") => (
            named.get("name").and_then(Value::as_str).map(str::to_owned),
            VectorIn::read(&named["vector"], &format!("{at}.vector.vector"), false)?,
        ),
        _ => (
            None,
            VectorIn::read(vector, &format!("{at}.vector"), false)?,
        ),
    };
    let (ef, exact) = read_params(body)?;
    let (limit, offset) = read_limit(body, 10)?;
    let plan = Plan {
        prefetch: Vec::new(),
        query: Some(QueryKind::Nearest(vector)),
        using,
        filter: read_filter(body.get("filter"), &format!("{at}.filter"))?,
        score_threshold: read_threshold(body)?,
        limit,
        offset,
        ef,
        exact,
    };
    Ok((plan, Shown::read(body)?))
}

/// `POST /collections/{collection}/points/search`: a list of scored points.
pub(crate) async fn search(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        let plan = read_search(&body, "search")?;
        let mut lists = run_plans(&state, name, vec![plan]).await?;
        Ok(Value::Array(lists.pop().unwrap_or_default()))
    }
    .await;
    answer(started, found)
}

/// `POST /collections/{collection}/points/search/batch`: one list per request.
pub(crate) async fn search_batch(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        let plans = batch_items(&state, &body)?
            .into_iter()
            .enumerate()
            .map(|(index, item)| read_search(item, &format!("searches[{index}]")))
            .collect::<QdrantResult<Vec<_>>>()?;
        let lists = run_plans(&state, name, plans).await?;
        Ok(Value::Array(lists.into_iter().map(Value::Array).collect()))
    }
    .await;
    answer(started, found)
}

/// `POST /collections/{collection}/points/recommend`: `{"positive", "negative", "using",
/// ...}` with the `average_vector` strategy.
pub(crate) async fn recommend(
    state: Shared,
    started: Started,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Response {
    let found = async {
        refuse_present(&body, REFUSED_IN_SEARCHES)?;
        let (ef, exact) = read_params(&body)?;
        let (limit, offset) = read_limit(&body, 10)?;
        let plan = Plan {
            prefetch: Vec::new(),
            query: Some(read_recommend(&body, "recommend")?),
            using: body.get("using").and_then(Value::as_str).map(str::to_owned),
            filter: read_filter(body.get("filter"), "filter")?,
            score_threshold: read_threshold(&body)?,
            limit,
            offset,
            ef,
            exact,
        };
        let mut lists = run_plans(&state, name, vec![(plan, Shown::read(&body)?)]).await?;
        Ok(Value::Array(lists.pop().unwrap_or_default()))
    }
    .await;
    answer(started, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: u64, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: PointId::Num(id),
            score,
            payload: Map::new(),
            vectors: BTreeMap::new(),
        }
    }

    /// Qdrant's figures for two lists sharing their second point: 1/(2+1) twice.
    #[test]
    fn rrf_adds_one_over_k_plus_rank() {
        let first = vec![point(1, 0.9), point(3, 0.7), point(4, 0.5)];
        let second = vec![point(2, 0.9), point(3, 0.7), point(4, 0.5)];
        let fused = rrf(&[(first, true), (second, true)], DEFAULT_RRF_K, &[]);
        assert_eq!(fused[0].id, PointId::Num(3));
        assert!((fused[0].score - 2.0 / 3.0).abs() < 1e-6);
        assert!((fused[1].score - 0.5).abs() < 1e-6);
    }

    /// One point alone is 0.5; a list whose smaller scores are better is turned around.
    #[test]
    fn dbsf_normalizes_each_list_by_its_spread() {
        assert_eq!(normalize_distribution(&[point(1, 3.0)], true), vec![0.5]);
        let list = [point(1, 1.0), point(2, 2.0), point(3, 3.0)];
        let larger = normalize_distribution(&list, true);
        let smaller = normalize_distribution(&list, false);
        assert!(larger[2] > larger[0] && smaller[0] > smaller[2]);
        assert!((larger[1] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn average_vector_moves_away_from_the_negatives() {
        let query = average_vector(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[vec![1.0, 1.0]])
            .expect("same dimensions");
        assert_eq!(query, vec![0.0, 0.0]);
        assert!(average_vector(&[vec![1.0]], &[vec![1.0, 2.0]]).is_err());
    }
}
