//! Questions to the index: semantic and hybrid search, tasks similar to a task, and clusters
//! of near-duplicate tasks.

use std::collections::{BTreeMap, HashMap};

use mnemo_store::{
    Condition, Filter, FusionRequest, FusionSource, NearestQuery, PayloadSelection, PointId,
    ScoredPoint, SearchRequest, Vector, VectorSelection,
};
use serde_json::Value;

use crate::{DENSE_VECTOR, Engine, EngineError, KEYWORD_VECTOR, Result, bm25};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Nearest vectors of the model.
    #[default]
    Dense,
    /// Dense and BM25 keyword results fused by reciprocal rank.
    Hybrid,
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
#[derive(Debug, Clone, serde::Serialize)]
pub struct DuplicateCluster {
    /// The lowest similarity between a member and the member it was linked through.
    pub min_score: f32,
    pub members: Vec<ScoredPoint>,
}

/// HNSW beam width of the engine's searches: recall@10 0.9998 at 100k points in
/// `mnemo bench store` (32 gives 0.996 in 60 % of the time).
const SEARCH_EF: usize = 64;

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
        let numbered = word.contains('.')
            && word
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        let named = word.contains('/')
            || word.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty()
                    && (1..=8).contains(&ext.len())
                    && ext.chars().all(|c| c.is_ascii_alphanumeric())
                    && ext.chars().any(|c| c.is_ascii_alphabetic())
            });
        numbered || named
    })
}

impl Engine {
    /// The query's vector, from the cache when it was asked recently.
    pub fn query_vector(&self, query: &str) -> Result<Vec<f32>> {
        if let Some(vector) = self.query_cache().get(query) {
            return Ok(vector);
        }
        let vector = self
            .embedder()
            .embed(&[query])?
            .rows()
            .next()
            .map(<[f32]>::to_vec)
            .unwrap_or_default();
        self.query_cache().put(query, vector.clone());
        Ok(vector)
    }

    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<ScoredPoint>> {
        let dense = NearestQuery {
            using: DENSE_VECTOR.to_owned(),
            vector: Vector::Dense(self.query_vector(query)?),
        };
        let filter = (!options.filter.is_empty()).then(|| options.filter.clone());
        let mut hits = match options.mode {
            SearchMode::Dense => {
                let mut request = SearchRequest::new(dense, options.limit);
                request.ef = Some(SEARCH_EF);
                request.filter = filter;
                request.score_threshold = options.score_threshold;
                self.store().search(&options.collection, request)?
            }
            SearchMode::Hybrid => {
                let keywords = NearestQuery {
                    using: KEYWORD_VECTOR.to_owned(),
                    vector: Vector::Sparse(bm25::query_vector(query)),
                };
                let depth = (options.limit * FUSION_DEPTH).max(50);
                let keyword_weight = if looks_like_identifier(query) {
                    IDENTIFIER_KEYWORD_WEIGHT
                } else {
                    1.0
                };
                self.store().search_fused(
                    &options.collection,
                    FusionRequest {
                        sources: vec![
                            FusionSource {
                                query: dense,
                                limit: depth,
                                weight: 1.0,
                            },
                            FusionSource {
                                query: keywords,
                                limit: depth,
                                weight: keyword_weight,
                            },
                        ],
                        filter,
                        limit: options.limit,
                        with_payload: PayloadSelection::All,
                    },
                )?
            }
        };
        for hit in &mut hits {
            strip_internal_fields(&mut hit.payload);
        }
        Ok(hits)
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
    pub fn duplicates(
        &self,
        collection: &str,
        threshold: f32,
        neighbours: usize,
        filter: &Filter,
    ) -> Result<Vec<DuplicateCluster>> {
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
        self.scroll_all(collection, filter.clone(), &[], true, |record| {
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

/// Bookkeeping fields of the index, not of the task.
fn strip_internal_fields(payload: &mut serde_json::Map<String, Value>) {
    for field in ["dirs", "payload_hash", "index_format"] {
        payload.remove(field);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_told_from_prose() {
        for query in [
            "2.1.2.1",
            "tâche 3.4 du plan",
            "plan-dev-v57.md",
            "voir docs/api",
            "(1.2)",
        ] {
            assert!(super::looks_like_identifier(query), "{query}");
        }
        for query in ["ajouter des tests", "v2 du cache", "1 2 3", "fin."] {
            assert!(!super::looks_like_identifier(query), "{query}");
        }
    }
}
