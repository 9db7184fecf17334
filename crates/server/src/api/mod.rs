//! The routes: collections, points, search, indexing jobs, snapshots, OpenAI-compatible embeddings,
//! health, metrics and the API's own documentation. Each module holds its routes' handlers
//! and the request and response types the OpenAPI document is generated from.

pub(crate) mod collections;
pub(crate) mod components;
pub(crate) mod embeddings;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod memories;
pub(crate) mod migration;
pub(crate) mod points;
pub mod routes;
pub(crate) mod search;
pub(crate) mod snapshots;
pub(crate) mod system;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mnemo_engine::{Engine, KeyRing};
use mnemo_store::CollectionConfig;
use serde_json::json;

use crate::auth::RateLimiter;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::metrics::Metrics;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    keys: KeyRing,
    limiter: RateLimiter,
    pub metrics: Metrics,
    /// Places for blocking work, and how many requests wait for one.
    working: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    /// Places for open event streams.
    streams: Arc<tokio::sync::Semaphore>,
    /// The service's components, when it runs them.
    pub supervisor: Option<Arc<mnemo_engine::components::Supervisor>>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> Self {
        let places = config.max_concurrent_requests;
        Self {
            engine,
            keys: KeyRing::new(config.keys.clone()),
            limiter: RateLimiter::new(config.rate_limit),
            config,
            metrics: Metrics::new(),
            working: Arc::new(tokio::sync::Semaphore::new(places)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
            supervisor: None,
        }
    }

    /// Runs `work` with the engine on the blocking pool, within the request timeout, once one
    /// of `max_concurrent_requests` places is free; with `max_queued_requests` waiting
    /// already, 503 at once. The place is held until the work ends, even past a timeout: work
    /// that cannot be interrupted still counts, so abandoned requests cannot pile up.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Engine) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let started = std::time::Instant::now();
        let place = match self.working.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                // Counted while it waits, and uncounted however the wait ends: a client that
                // goes away drops this future mid-wait.
                let waiting = Waiting::enter(&self.waiting);
                if waiting.ahead >= self.config.max_queued_requests {
                    return Err(busy(format!(
                        "{} requests are running and {} waiting; retry in a second",
                        self.config.max_concurrent_requests, self.config.max_queued_requests
                    )));
                }
                let acquired = tokio::time::timeout(
                    self.config.request_timeout,
                    self.working.clone().acquire_owned(),
                )
                .await;
                drop(waiting);
                match acquired {
                    Ok(Ok(place)) => place,
                    _ => return Err(self.timed_out()),
                }
            }
        };
        let engine = self.engine.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _place = place;
            work(&engine)
        });
        let left = self
            .config
            .request_timeout
            .saturating_sub(started.elapsed());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ApiError::new(
                ErrorCode::Internal,
                format!("the request's worker stopped: {join}"),
            )),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> ApiError {
        ApiError::new(
            ErrorCode::Timeout,
            format!(
                "the request took longer than {} s",
                self.config.request_timeout.as_secs_f64()
            ),
        )
    }

    /// The caller a key's secret (or none) is.
    pub(crate) fn identify(
        &self,
        secret: Option<&str>,
    ) -> Result<mnemo_engine::Principal, mnemo_engine::AccessError> {
        self.keys.identify(secret)
    }

    /// One request of `caller`'s rate, or 429 with when to retry.
    pub(crate) fn take_rate(&self, caller: &mnemo_engine::Principal) -> ApiResult<()> {
        self.limiter.take(caller.name()).map_err(|seconds| {
            let mut err = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many requests for `{}`; retry in {seconds} s",
                    caller.name()
                ),
            )
            .with_details(json!({ "retry_after_seconds": seconds }));
            err.retry_after = Some(seconds);
            err
        })
    }

    pub(crate) fn check_batch(&self, what: &str, count: usize) -> ApiResult<()> {
        self.metrics.observe_batch(what, count);
        if count > self.config.max_batch {
            return Err(ApiError::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "{count} {what} in one request; the limit is {}",
                    self.config.max_batch
                ),
            )
            .with_details(json!({ "count": count, "limit": self.config.max_batch })));
        }
        Ok(())
    }
}

/// One request waiting for a place; `ahead` is how many waited before it.
struct Waiting<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        let ahead = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self { count, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(crate) type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let collection = "/api/v1/collections/{name}";
    let api = Router::new()
        .route("/api/v1/collections", get(collections::list))
        .route(
            collection,
            get(collections::info)
                .put(collections::create)
                .delete(collections::delete),
        )
        .route(&format!("{collection}/points"), put(points::upsert))
        .route(&format!("{collection}/points/get"), post(points::get))
        .route(&format!("{collection}/points/delete"), post(points::delete))
        .route(&format!("{collection}/points/scroll"), post(points::scroll))
        .route(&format!("{collection}/points/count"), post(points::count))
        .route(&format!("{collection}/search"), post(search::search))
        .route(&format!("{collection}/search/batch"), post(search::batch))
        .route(&format!("{collection}/similar"), post(search::similar))
        .route(
            &format!("{collection}/duplicates"),
            post(search::duplicates),
        )
        .route(
            &format!("{collection}/snapshots"),
            get(snapshots::list).post(snapshots::create),
        )
        .route(
            &format!("{collection}/snapshots/{{snapshot}}"),
            get(snapshots::download).delete(snapshots::delete),
        )
        .route(
            &format!("{collection}/snapshots/{{snapshot}}/restore"),
            post(snapshots::restore),
        )
        .route(
            &format!("{collection}/migration"),
            get(migration::status).post(migration::start),
        )
        .route(
            &format!("{collection}/migration/switch"),
            post(migration::switch),
        )
        .route("/api/v1/tasks", get(search::tasks))
        .route("/api/v1/index", post(jobs::start))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::status).delete(jobs::cancel))
        .route("/api/v1/memories", post(memories::add))
        .route("/api/v1/memories/search", post(memories::search))
        .route("/api/v1/memories/delete", post(memories::delete_many))
        .route(
            "/api/v1/memories/{id}",
            get(memories::get)
                .put(memories::update)
                .delete(memories::delete),
        )
        .route("/api/v1/memories/{id}/history", get(memories::history))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/components", get(components::list))
        .route("/api/v1/components/{name}", get(components::get))
        .route(
            "/api/v1/components/{name}/actions/{action}",
            post(components::act),
        )
        .route("/api/v1/config", get(components::config))
        .route("/api/v1/alerts", get(components::alerts))
        .route("/api/v1/events/stream", get(events::stream))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(embeddings::models))
        .route("/metrics", get(system::metrics))
        .route_service(
            crate::mcp::MCP_PATH,
            crate::mcp::http_service(
                state.clone(),
                state.config.mcp_hosts(),
                state.config.mcp_allowed_origins.clone(),
            ),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/openapi.json", get(system::openapi))
        .route("/docs", get(system::docs))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// Counts every answer by route template, method and status, and times it.
async fn measure(State(state): Shared, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    state.metrics.observe_request(
        route.as_deref().unwrap_or("unmatched"),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Who is asking, whether they may ask now, and whether the route's row of the access table
/// (`routes.rs`) lets them: before the handler, so a refused request's body is never read.
async fn guard(State(state): Shared, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let caller = match state.identify(secret) {
        Ok(caller) => caller,
        Err(err) => return ApiError::from(err).into_response(),
    };
    if let Err(err) = state.take_rate(&caller) {
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
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| routes::access_of(request.method().as_str(), path.as_str()));
    if let Some(access) = route {
        let (mut parts, body) = request.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, &state).await;
        let collection = params.as_ref().ok().and_then(|params| {
            params
                .iter()
                .find(|(key, _)| *key == "name")
                .map(|(_, value)| value.to_owned())
        });
        if let Err(err) = routes::check(access, &caller, collection.as_deref()) {
            return ApiError::from(err).into_response();
        }
        request = Request::from_parts(parts, body);
    }
    let limit = BodyLimit(state.config.body_limit_bytes);
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(limit);
    next.run(request).await
}

/// 503 with `Retry-After: 1`: the server is at its limit now, not broken.
pub(crate) fn busy(message: String) -> ApiError {
    let mut error = ApiError::new(ErrorCode::Unavailable, message);
    error.retry_after = Some(1);
    error
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
            Err(rejection) => Err(refused_json(rejection.body_text())),
        }
    }
}

/// The error for a body that is not this route's JSON: 400, except a body nested past the
/// JSON reader's depth limit, which is well-formed but refused (422, naming the limit).
fn refused_json(message: String) -> ApiError {
    if message.contains("recursion limit exceeded") {
        return ApiError::new(
            ErrorCode::Unprocessable,
            format!(
                "the JSON body nests deeper than {MAX_JSON_DEPTH} levels, the most it may (filters nest at most {}): {message}",
                mnemo_store::MAX_FILTER_DEPTH
            ),
        );
    }
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// serde_json's nesting limit, which it applies to every body before our types see it.
const MAX_JSON_DEPTH: usize = 128;

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
                refused_json(format!(
                    "Failed to deserialize the JSON body into the target type: {err}"
                ))
            })
    }
}

#[derive(Clone, Copy)]
struct BodyLimit(usize);

pub(crate) fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unprocessable, message)
}

pub(crate) fn default_true() -> bool {
    true
}

pub(crate) fn default_limit() -> usize {
    10
}

/// The dense vector a request means: the one it names, or the collection's only one, or
/// `dense`.
pub(crate) fn vector_name(config: &CollectionConfig, using: Option<&str>) -> ApiResult<String> {
    config
        .dense_vector(using)
        .map(str::to_owned)
        .map_err(|choice| unprocessable(choice.message("name one with `using`")))
}
