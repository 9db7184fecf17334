//! Search by vector or text (dense, hybrid, keyword), batches of searches, similar items,
//! and the listing of indexed tasks.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::{Extension, Json};
use mnemo_engine::{
    DuplicateCluster, Engine, QueryRequest, SearchMode, SearchOptions, TaskQuery, parse_filter,
};
use mnemo_store::{Filter, PointId, ScoredPoint, Vector};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, Shared, default_limit, default_true, unprocessable};
use crate::error::{ApiError, ApiResult, ErrorCode};
use mnemo_engine::{Principal, Scope};

/// Give `vector` or `text`. A text search of a collection made by `mnemo index` runs the
/// engine's search (`mode` dense, hybrid or keyword); of any other collection, the text is
/// embedded and searched like a vector.
#[derive(Deserialize, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    vector: Option<Vec<f32>>,
    text: Option<String>,
    /// The dense vector to search; by default the collection's only one, or `dense`.
    using: Option<String>,
    filter: Option<Filter>,
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, maximum = 10_000, default = 10)]
    limit: usize,
    /// Results to skip; `offset + limit` is at most 10,000.
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
    score_threshold: Option<f32>,
    #[serde(default)]
    mode: SearchMode,
    /// HNSW beam width (vector searches).
    ef: Option<usize>,
    /// Exact scan instead of HNSW (vector searches).
    #[serde(default)]
    exact: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Hit {
    pub id: PointId,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<BTreeMap<String, Vector>>,
}

impl Hit {
    fn new(hit: ScoredPoint, with_payload: bool) -> Self {
        Self {
            id: hit.id,
            score: hit.score,
            payload: with_payload.then_some(hit.payload),
            vector: (!hit.vectors.is_empty()).then_some(hit.vectors),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    /// Best first.
    pub result: Vec<Hit>,
}

fn run_search(engine: &Engine, collection: &str, body: SearchBody) -> ApiResult<Vec<Hit>> {
    let with_payload = body.with_payload;
    let request = QueryRequest {
        collection: collection.to_owned(),
        text: body.text,
        vector: body.vector,
        using: body.using,
        filter: body.filter,
        limit: body.limit,
        offset: body.offset,
        with_payload,
        with_vector: body.with_vector,
        score_threshold: body.score_threshold,
        mode: body.mode,
        ef: body.ef,
        exact: body.exact,
    };
    Ok(engine
        .query(&request)?
        .into_iter()
        .map(|hit| Hit::new(hit, with_payload))
        .collect())
}

/// Search a collection by vector or by text.
#[utoipa::path(operation_id = "search", post, path = "/api/v1/collections/{name}/search", tag = "search",
    params(("name" = String, Path, description = "Collection name")),
    request_body = SearchBody,
    responses((status = 200, body = SearchResult)))]
pub(crate) async fn search(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<SearchResult>> {
    let result = state
        .run(move |engine| run_search(engine, &name, body))
        .await?;
    Ok(Json(SearchResult { result }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    searches: Vec<SearchBody>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    /// One list of hits per search, in the order asked.
    pub results: Vec<Vec<Hit>>,
}

/// Many searches in one request, answered in parallel; one bad search fails the batch with
/// its index in the error.
#[utoipa::path(operation_id = "search_batch", post, path = "/api/v1/collections/{name}/search/batch", tag = "search",
    params(("name" = String, Path, description = "Collection name")),
    request_body = BatchBody,
    responses((status = 200, body = BatchResult)))]
pub(crate) async fn batch(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BatchBody>,
) -> ApiResult<Json<BatchResult>> {
    state.check_batch("searches", body.searches.len())?;
    let results = state
        .run(move |engine| {
            use rayon::prelude::*;
            body.searches
                .into_par_iter()
                .enumerate()
                .map(|(index, search)| {
                    run_search(engine, &name, search).map_err(|err| ApiError {
                        message: format!("search {index}: {}", err.message),
                        details: json!({ "index": index, "details": err.details }),
                        ..err
                    })
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(BatchResult { results }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarBody {
    /// A point id, or a task id from `mnemo tasks --json`.
    id: String,
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, maximum = 10_000, default = 10)]
    limit: usize,
    filter: Option<Filter>,
    score_threshold: Option<f32>,
}

/// The items nearest to one already stored (itself left out).
#[utoipa::path(operation_id = "similar", post, path = "/api/v1/collections/{name}/similar", tag = "search",
    params(("name" = String, Path, description = "Collection name")),
    request_body = SimilarBody,
    responses((status = 200, body = SearchResult)))]
pub(crate) async fn similar(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SimilarBody>,
) -> ApiResult<Json<SearchResult>> {
    mnemo_engine::check_limit(body.limit)?;
    let hits = state
        .run(move |engine| {
            let options = SearchOptions {
                collection: name,
                limit: body.limit,
                filter: body.filter.unwrap_or_default(),
                mode: SearchMode::Dense,
                score_threshold: body.score_threshold,
            };
            Ok(engine.similar(&body.id, &options)?)
        })
        .await?;
    let result = hits.into_iter().map(|hit| Hit::new(hit, true)).collect();
    Ok(Json(SearchResult { result }))
}

fn default_threshold() -> f32 {
    0.9
}

fn default_neighbours() -> usize {
    10
}

fn default_clusters() -> usize {
    50
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesBody {
    /// Least cosine similarity for two items to count as duplicates, in (0, 1].
    #[serde(default = "default_threshold")]
    #[schema(default = 0.9, exclusive_minimum = 0.0, maximum = 1.0)]
    threshold: f32,
    /// Neighbours followed per item (1 to 100).
    #[serde(default = "default_neighbours")]
    #[schema(default = 10, minimum = 1, maximum = 100)]
    neighbours: usize,
    /// Only items matching this.
    filter: Option<Filter>,
    /// Clusters returned, largest first (1 to 10,000).
    #[serde(default = "default_clusters")]
    #[schema(default = 50, minimum = 1, maximum = 10_000)]
    limit: usize,
}

#[derive(Serialize, ToSchema)]
pub struct DuplicatesResult {
    /// Clusters found in all, of which `clusters` holds the largest `limit`.
    pub total: usize,
    pub clusters: Vec<DuplicateCluster>,
}

/// Clusters of near-duplicate items, as `mnemo dupes` finds them. One search per item: on a
/// large collection this can take longer than the request timeout.
#[utoipa::path(operation_id = "duplicates", post, path = "/api/v1/collections/{name}/duplicates", tag = "search",
    params(("name" = String, Path, description = "Collection name")),
    request_body = DuplicatesBody,
    responses((status = 200, body = DuplicatesResult)))]
pub(crate) async fn duplicates(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DuplicatesBody>,
) -> ApiResult<Json<DuplicatesResult>> {
    mnemo_engine::check_duplicate_threshold(body.threshold)?;
    if !(1..=100).contains(&body.neighbours) {
        return Err(unprocessable(format!(
            "neighbours {} is out of range: 1 to 100",
            body.neighbours
        )));
    }
    mnemo_engine::check_limit(body.limit)?;
    let mut clusters = state
        .run(move |engine| {
            let filter = body.filter.unwrap_or_default();
            Ok(engine.duplicates(&name, body.threshold, body.neighbours, &filter)?)
        })
        .await?;
    let total = clusters.len();
    clusters.truncate(body.limit);
    Ok(Json(DuplicatesResult { total, clusters }))
}

/// The filters of `mnemo tasks`, and those of `mnemo search --filter`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskListing {
    /// The collection `mnemo index` wrote (default `tasks`).
    collection: Option<String>,
    /// Statuses, separated by commas: open, in_progress, blocked, cancelled, done.
    status: Option<String>,
    /// A glob on the task's file path, e.g. `**/plans/*v5*.md`.
    file: Option<String>,
    /// Text a heading above the task contains (case-insensitive).
    section: Option<String>,
    /// An expression of `mnemo search --filter`, e.g. `priority <= 1 and mvp = true`.
    filter: Option<String>,
    /// Tasks per page (1 to 10,000; default 100).
    limit: Option<usize>,
    /// The `next_offset` of the page before.
    offset: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskList {
    /// Each with the fields of `mnemo tasks --json` and its `point_id`.
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<Map<String, Value>>,
    /// Where the next page starts; null after the last.
    pub next_offset: Option<PointId>,
}

/// The indexed tasks, filtered as `mnemo tasks` filters, a page at a time in a stable order.
#[utoipa::path(operation_id = "list_tasks", get, path = "/api/v1/tasks", tag = "search", params(TaskListing),
    responses((status = 200, body = TaskList)))]
pub(crate) async fn tasks(
    state: Shared,
    Extension(caller): Extension<Principal>,
    query: Result<Query<TaskListing>, QueryRejection>,
) -> ApiResult<Json<TaskList>> {
    let Query(listing) =
        query.map_err(|err| ApiError::new(ErrorCode::InvalidRequest, err.body_text()))?;
    let collection = listing
        .collection
        .clone()
        .unwrap_or_else(|| mnemo_engine::TASKS_COLLECTION.to_owned());
    caller.authorize(Scope::Read, Some(&collection))?;
    let query = task_query(collection, listing)?;
    let page = state
        .run(move |engine| Ok(engine.list_tasks(&query)?))
        .await?;
    Ok(Json(TaskList {
        tasks: page.tasks,
        next_offset: page.next_offset,
    }))
}

fn task_query(collection: String, listing: TaskListing) -> ApiResult<TaskQuery> {
    let mut statuses = Vec::new();
    for name in listing.status.iter().flat_map(|list| list.split(',')) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let status = mnemo_text::Status::parse(name).ok_or_else(|| {
            unprocessable(format!(
                "status: unknown `{name}`; expected one of {}",
                mnemo_text::Status::names()
            ))
        })?;
        statuses.push(status);
    }
    let file = listing
        .file
        .map(|pattern| {
            globset::Glob::new(&pattern)
                .map(|glob| glob.compile_matcher())
                .map_err(|err| unprocessable(format!("file: {err}")))
        })
        .transpose()?;
    let filter = match listing.filter.as_deref() {
        Some(expression) if !expression.trim().is_empty() => {
            parse_filter(expression).map_err(|err| unprocessable(format!("filter: {err}")))?
        }
        _ => Filter::default(),
    };
    let limit = listing.limit.unwrap_or(100);
    mnemo_engine::check_limit(limit)?;
    let offset = listing
        .offset
        .filter(|offset| !offset.is_empty())
        .map(|offset| {
            offset.parse::<PointId>().map_err(|_| {
                unprocessable(format!(
                    "offset: `{offset}` is not a point id (an integer or a UUID)"
                ))
            })
        })
        .transpose()?;
    Ok(TaskQuery {
        collection,
        statuses,
        file,
        section: listing.section.filter(|section| !section.is_empty()),
        filter,
        limit,
        offset,
    })
}
