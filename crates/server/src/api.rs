//! The routes: collections, points, search, OpenAI-compatible embeddings, health.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use mnemo_engine::{DENSE_VECTOR, Engine, KEYWORD_VECTOR, SearchMode, SearchOptions, TITLE_VECTOR};
use mnemo_store::{
    CollectionConfig, Distance, Filter, NearestQuery, PayloadSelection, Point, PointId,
    PointSelector, ScoredPoint, ScrollRequest, SearchRequest, SparseVectorParams, Vector,
    VectorParams, VectorSelection,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, KeyRing, RateLimiter, Scope};
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The most results one search may ask for.
const MAX_LIMIT: usize = 10_000;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    keys: KeyRing,
    limiter: RateLimiter,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> Self {
        Self {
            engine,
            keys: KeyRing::new(config.keys.clone()),
            limiter: RateLimiter::new(config.rate_limit),
            config,
        }
    }
}

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/collections", get(list_collections))
        .route(
            "/api/v1/collections/{name}",
            get(collection_info)
                .put(create_collection)
                .delete(delete_collection),
        )
        .route(
            "/api/v1/collections/{name}/points",
            axum::routing::put(upsert_points),
        )
        .route("/api/v1/collections/{name}/points/get", post(get_points))
        .route(
            "/api/v1/collections/{name}/points/delete",
            post(delete_points),
        )
        .route(
            "/api/v1/collections/{name}/points/scroll",
            post(scroll_points),
        )
        .route(
            "/api/v1/collections/{name}/points/count",
            post(count_points),
        )
        .route("/api/v1/collections/{name}/search", post(search))
        .route(
            "/api/v1/collections/{name}/search/batch",
            post(search_batch),
        )
        .route("/api/v1/collections/{name}/similar", post(similar))
        .route("/v1/embeddings", post(embeddings))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit_bytes,
        ))
        .with_state(state)
}

/// Who is asking, and whether they may ask now.
async fn guard(State(state): Shared, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let caller = match state.keys.identify(secret) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    if let Err(seconds) = state.limiter.take(caller.name()) {
        let mut err = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many requests for `{}`; retry in {seconds} s",
                caller.name()
            ),
        )
        .with_details(json!({ "retry_after_seconds": seconds }));
        err.retry_after = Some(seconds);
        return err.into_response();
    }
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > state.config.body_limit_bytes
    {
        return too_large(state.config.body_limit_bytes).into_response();
    }
    let limit = BodyLimit(state.config.body_limit_bytes);
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(limit);
    next.run(request).await
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
    .with_details(json!({ "limit_bytes": limit }))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// JSON in, with our errors for what the client got wrong.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request.extensions().get::<BodyLimit>().map(|limit| limit.0);
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large(limit.unwrap_or_default()))
            }
            Err(rejection) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                rejection.body_text(),
            )),
        }
    }
}

/// An optional body: none, or only whitespace, is `None`.
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let limit = request.extensions().get::<BodyLimit>().map(|limit| limit.0);
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(limit.unwrap_or_default())
                } else {
                    ApiError::new(ErrorCode::InvalidRequest, rejection.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(|value| Some(Self(value)))
            .map_err(|err| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("Failed to deserialize the JSON body into the target type: {err}"),
                )
            })
    }
}

#[derive(Clone, Copy)]
struct BodyLimit(usize);

/// Runs `work` on the blocking pool within the request timeout.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let task = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(state.config.request_timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ApiError::new(
            ErrorCode::Internal,
            format!("the request's worker stopped: {join}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorCode::Timeout,
            format!(
                "the request took longer than {} s",
                state.config.request_timeout.as_secs_f64()
            ),
        )),
    }
}

fn check_batch(state: &AppState, what: &str, count: usize) -> ApiResult<()> {
    if count > state.config.max_batch {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "{count} {what} in one request; the limit is {}",
                state.config.max_batch
            ),
        )
        .with_details(json!({ "count": count, "limit": state.config.max_batch })));
    }
    Ok(())
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unprocessable, message)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): Shared) -> ApiResult<Json<Value>> {
    let engine = state.engine.clone();
    let collections = blocking(&state, move || Ok(engine.store().list_collections()?)).await?;
    Ok(Json(json!({
        "status": "ready",
        "model": state.engine.model_id(),
        "dimensions": state.engine.dim(),
        "collections": collections.len(),
    })))
}

async fn list_collections(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let engine = state.engine.clone();
    let collections = blocking(&state, move || {
        let mut out = Vec::new();
        for name in engine.store().list_collections()? {
            if caller.may_see(&name) {
                let points = engine.store().count(&name, None)?;
                out.push(json!({ "name": name, "points": points }));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "collections": collections })))
}

async fn collection_info(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    let engine = state.engine.clone();
    let info = blocking(&state, move || Ok(engine.store().collection_info(&name)?)).await?;
    let status = if info.indexed_vectors >= info.points {
        "indexed"
    } else {
        "indexing"
    };
    Ok(Json(json!({
        "name": info.name,
        "config": info.config,
        "points": info.points,
        "indexed_vectors": info.indexed_vectors,
        "segments": info.segments,
        "payload_indexes": info.payload_indexes,
        "status": status,
    })))
}

/// A collection's vectors: Qdrant's `{"size", "distance"}` for one unnamed vector, or a map
/// of names to those; omitted, one unnamed vector of the server's model.
#[derive(Deserialize)]
#[serde(untagged)]
enum VectorsConfig {
    Single(VectorParams),
    Named(BTreeMap<String, VectorParams>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateCollection {
    vectors: Option<VectorsConfig>,
    #[serde(default)]
    sparse_vectors: BTreeMap<String, SparseVectorParams>,
}

async fn create_collection(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Option<ApiJson<CreateCollection>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_collection(Scope::Admin, &name)?;
    let body = body.map(|ApiJson(body)| body).unwrap_or_default();
    let vectors = match body.vectors {
        None => [(
            String::new(),
            VectorParams {
                size: state.engine.dim(),
                distance: Distance::Cosine,
            },
        )]
        .into(),
        Some(VectorsConfig::Single(params)) => [(String::new(), params)].into(),
        Some(VectorsConfig::Named(named)) => named,
    };
    let config = CollectionConfig {
        vectors,
        sparse_vectors: body.sparse_vectors,
    };
    let engine = state.engine.clone();
    let created = name.clone();
    blocking(&state, move || {
        Ok(engine.store().create_collection(&created, &config)?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "created": true })),
    ))
}

async fn delete_collection(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Admin, &name)?;
    let engine = state.engine.clone();
    let deleted = name.clone();
    let existed = blocking(&state, move || {
        Ok(engine.store().delete_collection(&deleted)?)
    })
    .await?;
    if !existed {
        return Err(ApiError::new(
            ErrorCode::CollectionNotFound,
            format!("collection `{name}` does not exist"),
        ));
    }
    Ok(Json(json!({ "name": name, "deleted": true })))
}

/// A point's vector: a list for the collection's one vector (or the one `using` names), or
/// a map of names to dense lists or sparse `{"indices", "values"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum VectorInput {
    Unnamed(Vec<f32>),
    Named(BTreeMap<String, Vector>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointInput {
    id: PointId,
    vector: Option<VectorInput>,
    /// Embedded by the server when no vector is given.
    text: Option<String>,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertBody {
    points: Vec<PointInput>,
    /// The vector a list or a text fills; by default the collection's only dense vector.
    using: Option<String>,
}

/// The dense vector a request means: the one it names, or the collection's only one, or the
/// engine's `dense`.
fn vector_name(config: &CollectionConfig, using: Option<&str>) -> ApiResult<String> {
    if let Some(name) = using {
        if config.vectors.contains_key(name) {
            return Ok(name.to_owned());
        }
        return Err(unprocessable(format!(
            "the collection has no dense vector `{name}`; it has {}",
            names_of(config)
        )));
    }
    if config.vectors.len() == 1 {
        return Ok(config.vectors.keys().next().cloned().unwrap_or_default());
    }
    if config.vectors.contains_key(DENSE_VECTOR) {
        return Ok(DENSE_VECTOR.to_owned());
    }
    Err(unprocessable(format!(
        "the collection has several dense vectors ({}); name one with `using`",
        names_of(config)
    )))
}

fn names_of(config: &CollectionConfig) -> String {
    config
        .vectors
        .keys()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn upsert_points(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpsertBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Write, &name)?;
    check_batch(&state, "points", body.points.len())?;
    let engine = state.engine.clone();
    let summary = blocking(&state, move || {
        let config = engine.store().collection_info(&name)?.config;
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut points = Vec::with_capacity(body.points.len());
        let mut default_name: Option<String> = None;
        let mut name_for = |using: Option<&str>| -> ApiResult<String> {
            if let Some(name) = &default_name {
                return Ok(name.clone());
            }
            let name = vector_name(&config, using)?;
            default_name = Some(name.clone());
            Ok(name)
        };
        for (index, input) in body.points.into_iter().enumerate() {
            let vectors = match (input.vector, input.text) {
                (Some(VectorInput::Named(named)), _) => named,
                (Some(VectorInput::Unnamed(values)), _) => {
                    [(name_for(body.using.as_deref())?, Vector::Dense(values))].into()
                }
                (None, Some(text)) => {
                    texts.push((index, text));
                    BTreeMap::new()
                }
                (None, None) => {
                    return Err(unprocessable(format!(
                        "point {index} (id {}): give `vector` or `text`",
                        input.id
                    )));
                }
            };
            points.push(Point {
                id: input.id,
                vectors,
                payload: input.payload,
            });
        }
        let embedded = texts.len();
        if let Some((index, _)) = texts.iter().find(|(_, text)| text.trim().is_empty()) {
            return Err(unprocessable(format!(
                "point {index}: `text` is empty; there is nothing to embed"
            )));
        }
        if !texts.is_empty() {
            let using = name_for(body.using.as_deref())?;
            let strings: Vec<&str> = texts.iter().map(|(_, text)| text.as_str()).collect();
            let embeddings = engine.embedder().embed(&strings)?;
            for ((index, _), row) in texts.iter().zip(embeddings.rows()) {
                points[*index]
                    .vectors
                    .insert(using.clone(), Vector::Dense(row.to_vec()));
            }
        }
        let summary = engine.store().upsert(&name, points)?;
        Ok(json!({
            "written": summary.written,
            "duplicates_replaced": summary.duplicates_replaced,
            "embedded": embedded,
        }))
    })
    .await?;
    Ok(Json(summary))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBody {
    ids: Vec<PointId>,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

fn selections(with_payload: bool, with_vector: bool) -> (PayloadSelection, VectorSelection) {
    (
        if with_payload {
            PayloadSelection::All
        } else {
            PayloadSelection::None
        },
        if with_vector {
            VectorSelection::All
        } else {
            VectorSelection::None
        },
    )
}

async fn get_points(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GetBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    check_batch(&state, "ids", body.ids.len())?;
    let engine = state.engine.clone();
    let records = blocking(&state, move || {
        let (payload, vectors) = selections(body.with_payload, body.with_vector);
        Ok(engine.store().get(&name, &body.ids, payload, vectors)?)
    })
    .await?;
    Ok(Json(json!({ "points": records })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    ids: Option<Vec<PointId>>,
    filter: Option<Filter>,
}

async fn delete_points(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Write, &name)?;
    let selector = match (body.ids, body.filter) {
        (Some(ids), None) => {
            check_batch(&state, "ids", ids.len())?;
            PointSelector::Ids(ids)
        }
        (None, Some(filter)) => PointSelector::Filter(filter),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give either `ids` or `filter`",
            ));
        }
    };
    let engine = state.engine.clone();
    let remaining = blocking(&state, move || {
        engine.store().delete(&name, selector)?;
        Ok(engine.store().count(&name, None)?)
    })
    .await?;
    Ok(Json(json!({ "deleted": true, "points": remaining })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrollBody {
    filter: Option<Filter>,
    #[serde(default = "default_page")]
    limit: usize,
    offset: Option<PointId>,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

fn default_page() -> usize {
    100
}

async fn scroll_points(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ScrollBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    check_limit(body.limit)?;
    let engine = state.engine.clone();
    let page = blocking(&state, move || {
        let (with_payload, with_vectors) = selections(body.with_payload, body.with_vector);
        let request = ScrollRequest {
            filter: body.filter,
            limit: body.limit,
            offset: body.offset,
            with_payload,
            with_vectors,
        };
        Ok(engine.store().scroll(&name, request)?)
    })
    .await?;
    Ok(Json(
        json!({ "points": page.points, "next_offset": page.next }),
    ))
}

fn check_limit(limit: usize) -> ApiResult<()> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(unprocessable(format!(
            "limit {limit} is out of range: 1 to {MAX_LIMIT}"
        )));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CountBody {
    filter: Option<Filter>,
}

async fn count_points(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Option<ApiJson<CountBody>>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    let body = body.map(|ApiJson(body)| body).unwrap_or_default();
    let engine = state.engine.clone();
    let count = blocking(&state, move || {
        Ok(engine.store().count(&name, body.filter.as_ref())?)
    })
    .await?;
    Ok(Json(json!({ "count": count })))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    vector: Option<Vec<f32>>,
    text: Option<String>,
    using: Option<String>,
    filter: Option<Filter>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
    score_threshold: Option<f32>,
    #[serde(default)]
    mode: SearchMode,
    ef: Option<usize>,
    #[serde(default)]
    exact: bool,
}

fn default_limit() -> usize {
    10
}

fn hit_json(hit: ScoredPoint, with_payload: bool) -> Value {
    let mut out = json!({ "id": hit.id, "score": hit.score });
    if with_payload {
        out["payload"] = Value::Object(hit.payload);
    }
    if !hit.vectors.is_empty() {
        out["vector"] = json!(hit.vectors);
    }
    out
}

/// Whether `config` is laid out as the engine's task and passage collections.
fn is_engine_collection(config: &CollectionConfig) -> bool {
    config.vectors.contains_key(DENSE_VECTOR)
        && config.vectors.contains_key(TITLE_VECTOR)
        && config.sparse_vectors.contains_key(KEYWORD_VECTOR)
}

fn run_search(engine: &Engine, collection: &str, body: SearchBody) -> ApiResult<Vec<Value>> {
    check_limit(body.limit)?;
    let wanted = body.limit.saturating_add(body.offset);
    if wanted > MAX_LIMIT {
        return Err(unprocessable(format!(
            "offset + limit is {wanted}; at most {MAX_LIMIT}"
        )));
    }
    let config = engine.store().collection_info(collection)?.config;
    let with_payload = body.with_payload;
    let hits = match (&body.vector, &body.text) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give either `vector` or `text`",
            ));
        }
        (None, Some(text)) if is_engine_collection(&config) || body.mode != SearchMode::Dense => {
            if body.with_vector || body.ef.is_some() || body.exact || body.using.is_some() {
                return Err(unprocessable(
                    "`with_vector`, `ef`, `exact` and `using` apply to vector searches; a text search of an indexed collection chooses them",
                ));
            }
            let options = SearchOptions {
                collection: collection.to_owned(),
                limit: wanted,
                filter: body.filter.clone().unwrap_or_default(),
                mode: body.mode,
                score_threshold: body.score_threshold,
            };
            let mut hits = engine.search(text, &options)?;
            hits.drain(..body.offset.min(hits.len()));
            hits
        }
        (vector, text) => {
            if body.mode != SearchMode::Dense {
                return Err(unprocessable(
                    "hybrid and keyword modes need `text`, and a collection made by `mnemo index`",
                ));
            }
            let vector = match (vector, text) {
                (Some(vector), _) => vector.clone(),
                (None, Some(text)) => engine.query_vector(text)?,
                (None, None) => Vec::new(),
            };
            let using = vector_name(&config, body.using.as_deref())?;
            let mut request = SearchRequest::new(
                NearestQuery {
                    using,
                    vector: Vector::Dense(vector),
                },
                body.limit,
            );
            request.offset = body.offset;
            request.filter = body.filter.clone();
            request.score_threshold = body.score_threshold;
            request.ef = body.ef;
            request.exact = body.exact;
            let (payload, vectors) = selections(with_payload, body.with_vector);
            request.with_payload = payload;
            request.with_vectors = vectors;
            engine.store().search(collection, request)?
        }
    };
    Ok(hits
        .into_iter()
        .map(|hit| hit_json(hit, with_payload))
        .collect())
}

async fn search(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    let engine = state.engine.clone();
    let hits = blocking(&state, move || run_search(&engine, &name, body)).await?;
    Ok(Json(json!({ "result": hits })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    searches: Vec<SearchBody>,
}

async fn search_batch(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BatchBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    check_batch(&state, "searches", body.searches.len())?;
    let engine = state.engine.clone();
    let results = blocking(&state, move || {
        use rayon::prelude::*;
        body.searches
            .into_par_iter()
            .enumerate()
            .map(|(index, search)| {
                run_search(&engine, &name, search).map_err(|err| ApiError {
                    message: format!("search {index}: {}", err.message),
                    details: json!({ "index": index, "details": err.details }),
                    ..err
                })
            })
            .collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarBody {
    /// A point id, or a task id from `mnemo tasks --json`.
    id: String,
    #[serde(default = "default_limit")]
    limit: usize,
    filter: Option<Filter>,
    score_threshold: Option<f32>,
}

async fn similar(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SimilarBody>,
) -> ApiResult<Json<Value>> {
    caller.require_collection(Scope::Read, &name)?;
    check_limit(body.limit)?;
    let engine = state.engine.clone();
    let hits = blocking(&state, move || {
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
    let hits: Vec<Value> = hits.into_iter().map(|hit| hit_json(hit, true)).collect();
    Ok(Json(json!({ "result": hits })))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    input: EmbeddingInput,
    model: String,
    #[serde(default)]
    encoding_format: EncodingFormat,
    /// OpenAI's optional `dimensions`: only the model's own is possible. Its other optional
    /// fields (`user`) change nothing and are ignored.
    dimensions: Option<usize>,
}

/// `POST /v1/embeddings`, as OpenAI's: the official clients work against it.
async fn embeddings(
    State(state): Shared,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<EmbeddingsBody>,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let model = state.engine.model_id().to_owned();
    let asked = body.model.rsplit('/').next().unwrap_or_default();
    if !asked.eq_ignore_ascii_case(&model) {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!(
                "model `{}` is not served here; this server embeds with `{model}`",
                body.model
            ),
        ));
    }
    if let Some(dimensions) = body.dimensions
        && dimensions != state.engine.dim()
    {
        return Err(unprocessable(format!(
            "`{model}` gives {} dimensions, not {dimensions}",
            state.engine.dim()
        )));
    }
    let texts = match body.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    if texts.is_empty() {
        return Err(unprocessable("`input` is empty"));
    }
    check_batch(&state, "inputs", texts.len())?;
    let engine = state.engine.clone();
    let format = body.encoding_format;
    let (data, tokens) = blocking(&state, move || {
        let embeddings = engine.embedder().embed(&texts)?;
        let tokens: usize = embeddings.token_counts().iter().sum();
        let data: Vec<Value> = embeddings
            .rows()
            .enumerate()
            .map(|(index, row)| {
                let embedding = match format {
                    EncodingFormat::Float => json!(row),
                    EncodingFormat::Base64 => {
                        let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                };
                json!({ "object": "embedding", "index": index, "embedding": embedding })
            })
            .collect();
        Ok((data, tokens))
    })
    .await?;
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}
