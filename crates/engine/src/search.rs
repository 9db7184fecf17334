//! Questions to the index: semantic and hybrid search, tasks similar to a task, and clusters
//! of near-duplicate tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mnemo_store::{
    Condition, Filter, MatchValue, NearestQuery, PayloadSelection, PointId, ScoredPoint,
    SearchRequest, SparseVector, Vector, VectorSelection,
};
use serde_json::Value;

use crate::{
    DENSE_VECTOR, Engine, EngineError, FILE_KEY_FIELD, KEYWORD_VECTOR, Result, TITLE_VECTOR, bm25,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SearchMode {
    /// Nearest vectors of the model.
    #[default]
    Dense,
    /// Dense and BM25 keyword results fused by reciprocal rank.
    Hybrid,
    /// BM25 keyword results alone.
    Keyword,
}

impl SearchMode {
    pub const ALL: [SearchMode; 3] = [Self::Dense, Self::Hybrid, Self::Keyword];

    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Hybrid => "hybrid",
            Self::Keyword => "keyword",
        }
    }
}

impl std::str::FromStr for SearchMode {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| format!("unknown mode `{name}`: use dense, hybrid or keyword"))
    }
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub collection: String,
    pub limit: usize,
    pub filter: Filter,
    pub mode: SearchMode,
    pub score_threshold: Option<f32>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            collection: crate::TASKS_COLLECTION.to_owned(),
            limit: 10,
            filter: Filter::default(),
            mode: SearchMode::Dense,
            score_threshold: None,
        }
    }
}

/// A cluster of near-duplicate points, largest clusters first.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DuplicateCluster {
    /// The lowest similarity between a member and the member it was linked through.
    pub min_score: f32,
    pub members: Vec<ScoredPoint>,
}

/// The least similarity two items must have to count as duplicates: above 0, at most 1.
pub fn check_duplicate_threshold(threshold: f32) -> Result<()> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(EngineError::InvalidQuery(format!(
            "threshold {threshold} is out of range: above 0, at most 1"
        )));
    }
    Ok(())
}

/// HNSW beam width of the engine's searches: recall@10 0.9998 at 100k points in
/// `mnemo-bench store` (32 gives 0.996 in 60 % of the time).
const SEARCH_EF: usize = 64;

/// The keyword hits whose share of the query weighs the keyword list in a fusion.
const COVERAGE_HITS: usize = 3;

/// How many candidates each list contributes to a hybrid fusion, per result asked.
const FUSION_DEPTH: usize = 5;

/// For a query holding an identifier (`2.1.2.1`, `plan-dev-v57.md`), the keyword list outweighs
/// the model's: the model sees such strings as noise, BM25 matches them exactly.
const IDENTIFIER_KEYWORD_WEIGHT: f32 = 3.0;

/// Whether some word of `query` is an identifier: digits joined by dots (a task number), or a
/// name with an extension or a path separator.
fn looks_like_identifier(query: &str) -> bool {
    query.split_whitespace().any(|word| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        bm25::is_dotted_number(word) || word.contains('/') || bm25::file_stem(word).is_some()
    })
}

impl Engine {
    /// The query's vector, from the cache when it was asked recently, else embedded together
    /// with the queries that other callers are asking at the same moment.
    pub fn query_vector(&self, query: &str) -> Result<Vec<f32>> {
        if let Some(vector) = self.query_cache().get(query) {
            return Ok(vector);
        }
        let vector = self.query_batcher.embed(query)?;
        self.query_cache().put(query, vector.clone());
        Ok(vector)
    }

    /// The query's vector by the model of `collection` (see [`Engine::collection_model`]).
    pub fn query_vector_in(&self, collection: &str, query: &str) -> Result<Vec<f32>> {
        let model = self.collection_model(collection)?;
        if model.id == self.model_id() {
            return self.query_vector(query);
        }
        // Keyed by model too: the same words have another vector in another model.
        let key = format!("{}\u{0}{query}", model.id);
        if let Some(vector) = self.query_cache().get(&key) {
            return Ok(vector);
        }
        let vector = model
            .embedder
            .embed(&[query])?
            .into_vecs()
            .pop()
            .unwrap_or_default();
        self.query_cache().put(&key, vector.clone());
        Ok(vector)
    }

    /// The model's vectors `collection` has (`dense`, and `title` where `mnemo index` made
    /// it): an imported collection has `dense` alone. `keywords`: it must also have `bm25`.
    fn model_vectors(&self, collection: &str, keywords: bool) -> Result<Vec<&'static str>> {
        let config = self.store().collection_config(collection)?;
        let names: Vec<&'static str> = [DENSE_VECTOR, TITLE_VECTOR]
            .into_iter()
            .filter(|name| config.vectors.contains_key(*name))
            .collect();
        if names.is_empty() {
            return Err(EngineError::IncompatibleCollection {
                name: mnemo_store::unpinned(collection).to_owned(),
                reason: format!("it has no `{DENSE_VECTOR}` vector to search by text"),
            });
        }
        let model = self.collection_model(collection)?;
        if let Some(params) = config.vectors.get(names[0])
            && params.size != model.dim()
        {
            let made_by: Vec<&str> = mnemo_embed::MODELS
                .iter()
                .filter(|model| model.dimension == params.size)
                .map(|model| model.name)
                .collect();
            let hint = if made_by.is_empty() {
                String::new()
            } else {
                format!(
                    " (of {}: give `--model {}`)",
                    made_by.join(" or "),
                    made_by[0]
                )
            };
            return Err(EngineError::IncompatibleCollection {
                name: mnemo_store::unpinned(collection).to_owned(),
                reason: format!(
                    "its vectors have {} dimensions{hint}, and the model {} makes {}",
                    params.size,
                    model.id,
                    model.dim()
                ),
            });
        }
        if keywords && !config.sparse_vectors.contains_key(KEYWORD_VECTOR) {
            return Err(EngineError::IncompatibleCollection {
                name: mnemo_store::unpinned(collection).to_owned(),
                reason: format!(
                    "it has no `{KEYWORD_VECTOR}` keyword vector (only `mnemo index` makes one): \
                     search it with --mode dense"
                ),
            });
        }
        Ok(names)
    }

    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<ScoredPoint>> {
        self.log_query(&options.collection, query);
        self.timed_search(|| self.search_untimed(query, options))
    }

    pub(crate) fn search_untimed(
        &self,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<ScoredPoint>> {
        let filter = (!options.filter.is_empty()).then(|| options.filter.clone());
        // Resolved once: an alias moved during the search must not give the query vector of
        // one model and the collection of another.
        let resolved = self.registry().pin(&options.collection);
        let collection = &resolved;
        let mut hits = match options.mode {
            SearchMode::Dense => {
                let names = self.model_vectors(collection, false)?;
                let vector = self.query_vector_in(collection, query)?;
                let mut requests = model_requests(&names, &vector, filter, options.limit);
                for request in &mut requests {
                    request.score_threshold = options.score_threshold;
                }
                let answers = self.store().search_batch(collection, requests)?;
                let mut hits = best_of_each_point(answers);
                hits.truncate(options.limit);
                hits
            }
            SearchMode::Keyword => {
                let mut request =
                    keyword_request(&bm25::query_vector(query), filter, options.limit);
                request.score_threshold = options.score_threshold;
                self.store().search(collection, request)?
            }
            SearchMode::Hybrid => {
                let keyword_weight = if looks_like_identifier(query) {
                    IDENTIFIER_KEYWORD_WEIGHT
                } else {
                    1.0
                };
                let names = self.model_vectors(collection, true)?;
                let vector = self.query_vector_in(collection, query)?;
                let keywords = bm25::query_vector(query);
                let depth = (options.limit * FUSION_DEPTH).max(50);
                let mut requests =
                    hybrid_requests(&names, &vector, &keywords, filter, depth, false);
                let lists = requests.len();
                // A query made of file names or task numbers: the items of those files and the
                // tasks of those numbers, nearest first, are a third list. BM25 alone ranks a
                // task that mentions `plan-dev-v42.md` or `(1.1)` above the items themselves.
                let named = named_items_filter(query);
                if !named.is_empty() {
                    let named = named.and(options.filter.clone());
                    requests.extend(model_requests(&names, &vector, Some(named), depth));
                }
                let mut answers = self.store().search_batch(collection, requests)?;
                let named_items: HashSet<PointId> = answers
                    .drain(lists.min(answers.len())..)
                    .flatten()
                    .map(|hit| hit.id)
                    .collect();
                let candidates: BTreeSet<PointId> = answers
                    .into_iter()
                    .flatten()
                    .map(|hit| hit.id)
                    .chain(named_items.iter().copied())
                    .collect();
                if candidates.is_empty() {
                    Vec::new()
                } else {
                    // Each list cut at `depth` may keep different ones of many equal points
                    // (twenty copies of a task text): ranked again over the union of their
                    // candidates, every candidate has its place in every list.
                    let count = candidates.len();
                    let within = Filter::must([Condition::has_id(candidates)]);
                    let mut answers = self.store().search_batch(
                        collection,
                        hybrid_requests(&names, &vector, &keywords, Some(within), count, true),
                    )?;
                    let keyword_hits = answers.pop().unwrap_or_default();
                    let keyword_weight = keyword_weight
                        * self.keyword_coverage(collection, &keywords, &keyword_hits)?;
                    let model_hits = best_of_each_point(answers);
                    let named_hits = model_hits
                        .iter()
                        .filter(|hit| named_items.contains(&hit.id))
                        .cloned()
                        .collect();
                    let fused = reciprocal_rank_fusion(
                        &[
                            (model_hits, 1.0),
                            (keyword_hits, keyword_weight),
                            (named_hits, IDENTIFIER_KEYWORD_WEIGHT),
                        ],
                        options.limit,
                    );
                    self.with_payloads(collection, fused)?
                }
            }
        };
        for hit in &mut hits {
            strip_internal_fields(&mut hit.payload);
        }
        Ok(hits)
    }

    /// How far the keyword list may speak in a fusion, 0 to 1: the square of the largest share
    /// of the query's term weight that one of the first [`COVERAGE_HITS`] keyword hits holds.
    /// A paraphrase shares few of a task's words, and BM25 then ranks first whatever holds one
    /// common word; a query that repeats a task's words keeps the list's whole weight.
    /// (Measured by `bench/eval-french.sh`: squared, English paraphrases in hybrid mode find
    /// their task in the top 10 three times as often as with the list at full weight.)
    fn keyword_coverage(
        &self,
        collection: &str,
        wanted: &SparseVector,
        keyword_hits: &[ScoredPoint],
    ) -> Result<f32> {
        let total: f32 = wanted.values.iter().sum();
        if total <= 0.0 || keyword_hits.is_empty() {
            return Ok(0.0);
        }
        let ids: Vec<PointId> = keyword_hits
            .iter()
            .take(COVERAGE_HITS)
            .map(|hit| hit.id)
            .collect();
        let records = self.store().get(
            collection,
            &ids,
            PayloadSelection::None,
            VectorSelection::Names(vec![KEYWORD_VECTOR.to_owned()]),
        )?;
        let best = records
            .iter()
            .filter_map(|record| match record.vectors.get(KEYWORD_VECTOR) {
                Some(Vector::Sparse(held)) => Some(
                    wanted
                        .indices
                        .iter()
                        .zip(&wanted.values)
                        .filter(|(term, _)| held.indices.contains(term))
                        .map(|(_, weight)| weight)
                        .sum::<f32>(),
                ),
                _ => None,
            })
            .fold(0.0_f32, f32::max);
        Ok((best / total).clamp(0.0, 1.0).powi(2))
    }

    /// `hits` with their payloads, in the same order.
    fn with_payloads(&self, collection: &str, hits: Vec<ScoredPoint>) -> Result<Vec<ScoredPoint>> {
        let ids: Vec<PointId> = hits.iter().map(|h| h.id).collect();
        let mut payloads: HashMap<PointId, serde_json::Map<String, Value>> = self
            .store()
            .get(
                collection,
                &ids,
                PayloadSelection::All,
                VectorSelection::None,
            )?
            .into_iter()
            .map(|record| (record.id, record.payload))
            .collect();
        Ok(hits
            .into_iter()
            .filter_map(|mut hit| {
                // A point deleted between the search and this read is left out.
                hit.payload = payloads.remove(&hit.id)?;
                Some(hit)
            })
            .collect())
    }

    /// The point with this point id, or failing that, the task or passage with this id.
    pub fn find_point(&self, collection: &str, id: &str) -> Result<PointId> {
        if let Ok(point_id) = id.parse::<PointId>() {
            let found = self.store().get(
                collection,
                &[point_id],
                PayloadSelection::None,
                VectorSelection::None,
            )?;
            if !found.is_empty() {
                return Ok(point_id);
            }
        }
        let mut request = mnemo_store::ScrollRequest::new(1);
        request.filter = Some(Filter::must([Condition::matches("id", id)]));
        request.with_payload = PayloadSelection::None;
        let page = self.store().scroll(collection, request)?;
        page.points
            .first()
            .map(|r| r.id)
            .ok_or_else(|| EngineError::UnknownItem {
                collection: collection.to_owned(),
                id: id.to_owned(),
            })
    }

    /// The points nearest to point `id` (a point id or a task id), itself excluded.
    pub fn similar(&self, id: &str, options: &SearchOptions) -> Result<Vec<ScoredPoint>> {
        let point_id = self.find_point(&options.collection, id)?;
        let records = self.store().get(
            &options.collection,
            &[point_id],
            PayloadSelection::None,
            VectorSelection::Names(vec![DENSE_VECTOR.to_owned()]),
        )?;
        let vector = records
            .into_iter()
            .next()
            .and_then(|r| r.vectors.get(DENSE_VECTOR).cloned())
            .ok_or_else(|| EngineError::UnknownItem {
                collection: options.collection.clone(),
                id: id.to_owned(),
            })?;
        let mut request = SearchRequest::new(
            NearestQuery {
                using: DENSE_VECTOR.to_owned(),
                vector,
            },
            options.limit,
        );
        request.ef = Some(SEARCH_EF);
        request.filter =
            Some(Filter::must_not([Condition::has_id([point_id])]).and(options.filter.clone()));
        request.score_threshold = options.score_threshold;
        let mut hits = self.store().search(&options.collection, request)?;
        for hit in &mut hits {
            strip_internal_fields(&mut hit.payload);
        }
        Ok(hits)
    }

    /// Groups of points whose vectors are at least `threshold` similar (cosine), linked
    /// transitively, across files; largest first. `neighbours` bounds the links followed per
    /// point.
    /// `threshold` must pass [`check_duplicate_threshold`].
    pub fn duplicates(
        &self,
        collection: &str,
        threshold: f32,
        neighbours: usize,
        filter: &Filter,
    ) -> Result<Vec<DuplicateCluster>> {
        check_duplicate_threshold(threshold)?;
        let mut ids: Vec<PointId> = Vec::new();
        let mut index_of: HashMap<PointId, usize> = HashMap::new();
        let mut parent: Vec<usize> = Vec::new();
        let mut best_link: Vec<f32> = Vec::new();
        let mut batch: Vec<(PointId, Vec<f32>)> = Vec::new();
        let mut links: Vec<(PointId, PointId, f32)> = Vec::new();
        let flush = |batch: &mut Vec<(PointId, Vec<f32>)>,
                     links: &mut Vec<(PointId, PointId, f32)>|
         -> Result<()> {
            let requests = batch
                .iter()
                .map(|(id, vector)| {
                    let mut request = SearchRequest::new(
                        NearestQuery {
                            using: DENSE_VECTOR.to_owned(),
                            vector: Vector::Dense(vector.clone()),
                        },
                        neighbours,
                    );
                    request.filter =
                        Some(Filter::must_not([Condition::has_id([*id])]).and(filter.clone()));
                    request.score_threshold = Some(threshold);
                    request.ef = Some(SEARCH_EF);
                    request.with_payload = PayloadSelection::None;
                    request
                })
                .collect();
            let answers = self.store().search_batch(collection, requests)?;
            for ((id, _), hits) in batch.iter().zip(answers) {
                links.extend(hits.into_iter().map(|hit| (*id, hit.id, hit.score)));
            }
            batch.clear();
            Ok(())
        };
        let mut failure = None;
        self.scroll_all(collection, filter.clone(), &[], &[DENSE_VECTOR], |record| {
            if failure.is_some() {
                return;
            }
            if let Some(Vector::Dense(vector)) = record.vectors.get(DENSE_VECTOR) {
                index_of.insert(record.id, ids.len());
                ids.push(record.id);
                parent.push(parent.len());
                best_link.push(f32::INFINITY);
                batch.push((record.id, vector.clone()));
                if batch.len() == 256
                    && let Err(err) = flush(&mut batch, &mut links)
                {
                    failure = Some(err);
                }
            }
        })?;
        if let Some(err) = failure {
            return Err(err);
        }
        flush(&mut batch, &mut links)?;

        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (a, b, score) in &links {
            let (Some(&a), Some(&b)) = (index_of.get(a), index_of.get(b)) else {
                continue;
            };
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
            best_link[a] = best_link[a].min(*score);
            best_link[b] = best_link[b].min(*score);
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..ids.len() {
            let r = root(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        let mut clusters = Vec::new();
        for members in groups.into_values().filter(|m| m.len() > 1) {
            let member_ids: Vec<PointId> = members.iter().map(|&i| ids[i]).collect();
            let records = self.store().get(
                collection,
                &member_ids,
                PayloadSelection::All,
                VectorSelection::None,
            )?;
            let min_score = members
                .iter()
                .map(|&i| best_link[i])
                .fold(f32::INFINITY, f32::min);
            let members = records
                .into_iter()
                .map(|mut record| {
                    strip_internal_fields(&mut record.payload);
                    let score = index_of.get(&record.id).map_or(0.0, |&i| best_link[i]);
                    ScoredPoint {
                        id: record.id,
                        score,
                        payload: record.payload,
                        vectors: BTreeMap::new(),
                    }
                })
                .collect();
            clusters.push(DuplicateCluster { min_score, members });
        }
        clusters.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then(b.min_score.total_cmp(&a.min_score))
        });
        Ok(clusters)
    }
}

/// The searches of the model's vectors: a task whose body is long has, beside the vector of
/// its title and body, one of its title alone, and a point scores its better match.
fn model_requests(
    names: &[&str],
    vector: &[f32],
    filter: Option<Filter>,
    limit: usize,
) -> Vec<SearchRequest> {
    names
        .iter()
        .map(|using| {
            let mut request = SearchRequest::new(
                NearestQuery {
                    using: (*using).to_owned(),
                    vector: Vector::Dense(vector.to_vec()),
                },
                limit,
            );
            request.ef = Some(SEARCH_EF);
            request.filter = filter.clone();
            request
        })
        .collect()
}

/// A search of the keyword vectors for `keywords` (a query's `bm25::query_vector`).
pub(crate) fn keyword_request(
    keywords: &SparseVector,
    filter: Option<Filter>,
    limit: usize,
) -> SearchRequest {
    let mut request = SearchRequest::new(
        NearestQuery {
            using: KEYWORD_VECTOR.to_owned(),
            vector: Vector::Sparse(keywords.clone()),
        },
        limit,
    );
    request.filter = filter;
    request
}

/// The items a query made of identifiers names: those of the files it names, the tasks of the
/// numbers it names. Empty when it names none.
fn named_items_filter(query: &str) -> Filter {
    let keywords = |values: Vec<String>| {
        values
            .into_iter()
            .map(MatchValue::Keyword)
            .collect::<Vec<_>>()
    };
    let names = bm25::named(query);
    let (files, numbers) = (keywords(names.files), keywords(names.numbers));
    let mut named = Filter::default();
    if !files.is_empty() {
        named.should.push(Condition::any(FILE_KEY_FIELD, files));
    }
    if !numbers.is_empty() {
        named.should.push(Condition::any("number", numbers));
    }
    named
}

/// The model's searches and the keyword search, without payloads; `exact` over a small set of
/// candidates.
fn hybrid_requests(
    names: &[&str],
    vector: &[f32],
    keywords: &SparseVector,
    filter: Option<Filter>,
    limit: usize,
    exact: bool,
) -> Vec<SearchRequest> {
    let keywords = keyword_request(keywords, filter.clone(), limit);
    let mut requests = model_requests(names, vector, filter, limit);
    requests.push(keywords);
    for request in &mut requests {
        request.with_payload = PayloadSelection::None;
        request.exact = exact;
    }
    requests
}

/// One ranking from several, each point at its best score. Each list holds the `limit` best of
/// its vector, so the first `limit` of the merge are exact: a point that belongs there has its
/// best score in some list, where fewer than `limit` points beat it.
fn best_of_each_point(lists: Vec<Vec<ScoredPoint>>) -> Vec<ScoredPoint> {
    let mut best: HashMap<PointId, ScoredPoint> = HashMap::new();
    for hit in lists.into_iter().flatten() {
        match best.get(&hit.id) {
            Some(kept) if kept.score >= hit.score => {}
            _ => {
                best.insert(hit.id, hit);
            }
        }
    }
    let mut merged: Vec<ScoredPoint> = best.into_values().collect();
    merged.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    merged
}

/// Scores closer than this are the same: a text embedded in two batches of different shapes
/// may differ in the last bits.
const SAME_SCORE: f32 = 1e-6;

/// The reciprocal-rank constant of Cormack et al. (and Qdrant): ranks 1 and 2 of one list
/// weigh nearly alike, so a point high in every list beats one first in a single list.
const RRF_K: f32 = 60.0;

/// Weighted reciprocal rank fusion: a point scores the sum over the lists of
/// `weight / (RRF_K + rank)`, ranks from 1. Points with equal scores in a list share its rank
/// (1, 2, 2, 4): twenty copies of one task text are equally near the query, and the order the
/// store happened to list them in must not decide which of them the other list can lift.
pub(crate) fn reciprocal_rank_fusion(
    lists: &[(Vec<ScoredPoint>, f32)],
    limit: usize,
) -> Vec<ScoredPoint> {
    let mut scores: HashMap<PointId, f32> = HashMap::new();
    for (hits, weight) in lists {
        let mut rank = 0;
        for (position, hit) in hits.iter().enumerate() {
            let tied = position > 0 && hits[position - 1].score - hit.score <= SAME_SCORE;
            if !tied {
                rank = position + 1;
            }
            *scores.entry(hit.id).or_default() += weight / (RRF_K + rank as f32);
        }
    }
    let mut fused: Vec<ScoredPoint> = scores
        .into_iter()
        .map(|(id, score)| ScoredPoint {
            id,
            score,
            payload: serde_json::Map::new(),
            vectors: BTreeMap::new(),
        })
        .collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    fused.truncate(limit);
    fused
}

/// Bookkeeping fields of the index, not of the task.
pub(crate) fn strip_internal_fields(payload: &mut serde_json::Map<String, Value>) {
    for field in ["dirs", "payload_hash", "index_format", FILE_KEY_FIELD] {
        payload.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: PointId::Num(id),
            score,
            payload: serde_json::Map::new(),
            vectors: BTreeMap::new(),
        }
    }

    #[test]
    fn equal_scores_share_a_rank_in_the_fusion() {
        // 1, 2 and 3 tie in the model's list; the keyword list prefers 3, then 4.
        let model = vec![hit(1, 0.9), hit(2, 0.9), hit(3, 0.9), hit(4, 0.5)];
        let keywords = vec![hit(3, 7.0), hit(4, 6.0)];
        let fused = reciprocal_rank_fusion(&[(model, 1.0), (keywords, 1.0)], 3);
        let ids: Vec<_> = fused.iter().map(|h| h.id).collect();
        assert_eq!(ids, [PointId::Num(3), PointId::Num(4), PointId::Num(1)]);
        assert!((fused[0].score - 2.0 / 61.0).abs() < 1e-7);
        assert!((fused[1].score - (1.0 / 64.0 + 1.0 / 62.0)).abs() < 1e-7);
    }

    #[test]
    fn a_point_keeps_its_best_score_of_several_lists() {
        let merged = best_of_each_point(vec![
            vec![hit(1, 0.8), hit(2, 0.7)],
            vec![hit(2, 0.95), hit(3, 0.6)],
        ]);
        let ranked: Vec<_> = merged.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(
            ranked,
            [
                (PointId::Num(2), 0.95),
                (PointId::Num(1), 0.8),
                (PointId::Num(3), 0.6)
            ]
        );
    }

    #[test]
    fn identifiers_are_told_from_prose() {
        for query in [
            "2.1.2.1",
            "tâche 3.4 du plan",
            "plan-dev-v57.md",
            "voir docs/api",
            "(1.2)",
        ] {
            assert!(looks_like_identifier(query), "{query}");
        }
        for query in ["ajouter des tests", "v2 du cache", "1 2 3", "fin."] {
            assert!(!looks_like_identifier(query), "{query}");
        }
    }
}
