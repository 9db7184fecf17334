//! Qdrant's own REST API (the 1.18 shapes) over mnemo's engine, on a listener of its own, so
//! that programs written for Qdrant (`qdrant-client`, LangChain's and LlamaIndex's
//! `QdrantVectorStore`) work unchanged against `mnemo serve`, with the model built in: wherever
//! Qdrant takes a vector, a `{"text", "model"}` document is embedded here.
//!
//! A door like the REST API: requests are translated into store calls, `CollectionConfig` and
//! the engine's collection and snapshot calls (which write the events); keys, scopes, rate
//! limits, the body limit and the places for blocking work are `AppState`'s, shared with the
//! REST API. Answers are Qdrant's `{"result", "status", "time"}` envelopes and errors
//! `{"status": {"error"}, "time"}`; what the subset does not serve says so in that shape.

mod collections;
mod convert;
mod points;
mod query;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use mnemo_engine::{Engine, Principal, Scope};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::error::{ApiError, ErrorCode};

/// The Qdrant version whose API this door speaks: clients compare it with their own.
pub const QDRANT_VERSION: &str = "1.18.1";

type Shared = State<Arc<AppState>>;

/// Qdrant's REST API, answered by `state`'s engine.
pub fn router(state: Arc<AppState>) -> Router {
    let collection = "/collections/{collection}";
    let points = "/collections/{collection}/points";
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/collections", get(collections::list))
        .route("/aliases", get(collections::all_aliases))
        .route("/collections/aliases", post(collections::change_aliases))
        .route(
            collection,
            get(collections::info)
                .put(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(&format!("{collection}/exists"), get(collections::exists))
        .route(
            &format!("{collection}/aliases"),
            get(collections::collection_aliases),
        )
        .route(
            &format!("{collection}/index"),
            put(collections::create_index),
        )
        .route(
            &format!("{collection}/index/{{field}}"),
            delete(collections::delete_index),
        )
        .route(
            &format!("{collection}/snapshots"),
            get(collections::list_snapshots).post(collections::create_snapshot),
        )
        .route(
            &format!("{collection}/snapshots/{{snapshot}}"),
            get(collections::download_snapshot).delete(collections::delete_snapshot),
        )
        .route(points, put(points::upsert).post(points::retrieve))
        .route(&format!("{points}/{{id}}"), get(points::get_one))
        .route(&format!("{points}/delete"), post(points::delete))
        .route(
            &format!("{points}/payload"),
            post(points::set_payload).put(points::overwrite_payload),
        )
        .route(
            &format!("{points}/payload/delete"),
            post(points::delete_payload),
        )
        .route(
            &format!("{points}/payload/clear"),
            post(points::clear_payload),
        )
        .route(&format!("{points}/vectors"), put(points::update_vectors))
        .route(
            &format!("{points}/vectors/delete"),
            post(points::delete_vectors),
        )
        .route(&format!("{points}/scroll"), post(points::scroll))
        .route(&format!("{points}/count"), post(points::count))
        .route(&format!("{points}/search"), post(query::search))
        .route(&format!("{points}/search/batch"), post(query::search_batch))
        .route(&format!("{points}/recommend"), post(query::recommend))
        .route(&format!("{points}/query"), post(query::query))
        .route(&format!("{points}/query/batch"), post(query::query_batch))
        .fallback(unsupported)
        .method_not_allowed_fallback(unsupported)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.body_limit_bytes,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Who asks (Qdrant's `api-key` header or `Authorization: Bearer`, mapped to mnemo's keys),
/// whether they may ask now, and whether their key's scope and collections allow the route:
/// before the handler, so that a refused request's body is never read.
async fn guard(State(state): Shared, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let scope = scope_of(request.method().as_str(), request.uri().path());
    if scope.is_none() {
        // The version and health probes answer without a key, as Qdrant's do.
        return next.run(request).await;
    }
    let headers = request.headers();
    let secret = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim);
    let caller = match state.identify(secret) {
        Ok(caller) => caller,
        Err(err) => return QdrantError::from(err).at(started).into_response(),
    };
    if let Err(err) = state.take_rate(&caller) {
        return QdrantError::from(err).at(started).into_response();
    }
    let collection = collection_in_path(request.uri().path());
    let allowed = match (scope, collection.as_deref()) {
        (None, _) => Ok(()),
        (Some(scope), Some(collection)) => caller.authorize(scope, Some(collection)),
        // Aliases name collections in their body: changing them needs every collection.
        (Some(scope), None) if request.uri().path() == "/collections/aliases" => {
            if caller.is_restricted() {
                Err(mnemo_engine::AccessError::CollectionsLimited {
                    key: caller.name().to_owned(),
                })
            } else {
                caller.authorize(scope, None)
            }
        }
        (Some(scope), None) => caller.authorize(scope, None),
    };
    if let Err(err) = allowed {
        return QdrantError::from(ApiError::from(err))
            .at(started)
            .into_response();
    }
    request.extensions_mut().insert(Started(started));
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(header::CONTENT_TYPE)
            != Some(&HeaderValue::from_static("application/json"))
    {
        response = QdrantError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {} bytes",
                state.config.body_limit_bytes
            ),
        )
        .at(started)
        .into_response();
    }
    response
}

/// The scope a route needs: reading for reads and for searches sent by POST, writing for
/// points, administration for collections, aliases, indexes and snapshots. `None`: open.
fn scope_of(method: &str, path: &str) -> Option<Scope> {
    if matches!(path, "/" | "/healthz" | "/livez" | "/readyz") {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reads = [
        "scroll",
        "count",
        "search",
        "batch",
        "recommend",
        "query",
        "exists",
    ];
    match (method, segments.as_slice()) {
        ("GET", _) => Some(Scope::Read),
        ("POST", ["collections", _, "points"]) => Some(Scope::Read),
        ("POST", [.., last]) if reads.contains(last) => Some(Scope::Read),
        (_, ["collections", _, "points", ..]) => Some(Scope::Write),
        _ => Some(Scope::Admin),
    }
}

/// The collection a path names (`/collections/{collection}/...`), decoded.
fn collection_in_path(path: &str) -> Option<String> {
    let mut segments = path.trim_start_matches('/').split('/');
    if segments.next() != Some("collections") {
        return None;
    }
    let name = segments.next().filter(|name| !name.is_empty())?;
    if name == "aliases" && segments.next().is_none() {
        return None;
    }
    Some(percent_decode(name))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(byte) = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// When the request reached the door: answers say how long they took, as Qdrant's do.
#[derive(Clone, Copy)]
pub(crate) struct Started(Instant);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Started {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Started>()
            .copied()
            .unwrap_or(Started(Instant::now())))
    }
}

impl Started {
    fn seconds(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }

    /// `{"result": result, "status": "ok", "time": seconds}`.
    pub(crate) fn ok(self, result: Value) -> Response {
        Json(json!({ "result": result, "status": "ok", "time": self.seconds() })).into_response()
    }
}

/// The caller, as the guard identified them.
pub(crate) struct Caller(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = QdrantError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| QdrantError::new(StatusCode::UNAUTHORIZED, "no caller"))
    }
}

/// An error in Qdrant's shape: `{"status": {"error": message}, "time": seconds}`.
#[derive(Debug)]
pub(crate) struct QdrantError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    seconds: f64,
}

pub(crate) type QdrantResult<T> = Result<T, QdrantError>;

impl QdrantError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            seconds: 0.0,
        }
    }

    /// A request the client got wrong (Qdrant's 400, "Wrong input").
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Wrong input: {}", message.into()),
        )
    }

    /// A part of Qdrant's API this door does not serve.
    pub(crate) fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::bad(format!(
            "{what} is not supported by mnemo's Qdrant API (mnemo {}, speaking Qdrant {QDRANT_VERSION}'s REST API: see `GET /`)",
            env!("CARGO_PKG_VERSION")
        ))
    }

    fn at(mut self, started: Instant) -> Self {
        self.seconds = started.elapsed().as_secs_f64();
        self
    }
}

impl From<ApiError> for QdrantError {
    fn from(err: ApiError) -> Self {
        // Qdrant answers every refused input with 400; the other statuses are the same.
        let (status, prefix) = match err.code {
            ErrorCode::Unprocessable | ErrorCode::InvalidRequest | ErrorCode::BatchTooLarge => {
                (StatusCode::BAD_REQUEST, "Wrong input: ")
            }
            ErrorCode::CollectionNotFound | ErrorCode::NotFound | ErrorCode::ModelNotFound => {
                (StatusCode::NOT_FOUND, "Not found: ")
            }
            ErrorCode::CollectionExists => (StatusCode::CONFLICT, "Wrong input: "),
            ErrorCode::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Service internal error: ",
            ),
            other => (other.status(), ""),
        };
        Self {
            status,
            message: format!("{prefix}{}", err.message),
            retry_after: err.retry_after,
            seconds: 0.0,
        }
    }
}

impl From<mnemo_store::StoreError> for QdrantError {
    fn from(err: mnemo_store::StoreError) -> Self {
        if let mnemo_store::StoreError::UnknownAlias(_) = err {
            return Self::new(StatusCode::NOT_FOUND, format!("Not found: {err}"));
        }
        ApiError::from(err).into()
    }
}

impl From<mnemo_engine::EngineError> for QdrantError {
    fn from(err: mnemo_engine::EngineError) -> Self {
        ApiError::from(err).into()
    }
}

impl From<mnemo_engine::AccessError> for QdrantError {
    fn from(err: mnemo_engine::AccessError) -> Self {
        ApiError::from(err).into()
    }
}

impl From<mnemo_embed::EmbedError> for QdrantError {
    fn from(err: mnemo_embed::EmbedError) -> Self {
        ApiError::from(err).into()
    }
}

impl IntoResponse for QdrantError {
    fn into_response(self) -> Response {
        let body = json!({ "status": { "error": self.message }, "time": self.seconds });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Runs `work` with the engine as the REST API does (a place among the concurrent requests,
/// the request timeout), in Qdrant's error shape.
pub(crate) async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Engine) -> QdrantResult<T> + Send + 'static,
) -> QdrantResult<T> {
    state
        .run(move |engine| Ok(work(engine)))
        .await
        .map_err(QdrantError::from)?
}

/// A JSON body in one of Qdrant's request shapes. `null` members are taken as absent, as
/// Qdrant's own reader does, except inside payloads, where a `null` is a value.
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = QdrantError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| QdrantError::new(rejection.status(), rejection.body_text()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut value: Value = serde_json::from_slice(text)
            .map_err(|err| QdrantError::bad(format!("Format error in JSON body: {err}")))?;
        drop_nulls(&mut value);
        serde_json::from_value(value)
            .map(Body)
            .map_err(|err| QdrantError::bad(format!("Format error in JSON body: {err}")))
    }
}

/// Removes `null` members of objects, outside payloads. serde_json's reader has bounded the
/// nesting already (128 levels), and this walks it with its own stack.
fn drop_nulls(value: &mut Value) {
    let mut pending: Vec<&mut Value> = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(members) => {
                members.retain(|_, member| !member.is_null());
                for (key, member) in members.iter_mut() {
                    if key != "payload" && key != "payloads" {
                        pending.push(member);
                    }
                }
            }
            Value::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// `?wait=true` and the other query parameters of writes, which change nothing here: every
/// write is applied before it is answered.
static OPERATIONS: AtomicU64 = AtomicU64::new(0);

/// What a write answers: `{"operation_id", "status": "completed"}`.
pub(crate) fn update_result() -> Value {
    json!({
        "operation_id": OPERATIONS.fetch_add(1, Ordering::Relaxed),
        "status": "completed",
    })
}

/// `GET /`: what clients check the version of; `mnemo` says who answers.
async fn root() -> Response {
    Json(json!({
        "title": "qdrant - vector search engine",
        "version": QDRANT_VERSION,
        "mnemo": {
            "version": env!("CARGO_PKG_VERSION"),
            "about": "mnemo's embedded store speaking Qdrant's REST API; documents ({\"text\", \"model\"}) are embedded locally",
        },
    }))
    .into_response()
}

async fn healthz() -> &'static str {
    "healthz check passed"
}

async fn readyz(State(state): Shared) -> Response {
    let ready = run(&state, |engine| Ok(engine.store().health()?)).await;
    match ready {
        Ok(()) => "all shards are ready".into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, err.message).into_response(),
    }
}

async fn unsupported(request: Request) -> QdrantError {
    let message = format!(
        "{} {} is not a route mnemo's Qdrant API serves (mnemo {}, speaking Qdrant {QDRANT_VERSION}'s REST API for collections, aliases, payload indexes, points, search, query and snapshots)",
        request.method(),
        request.uri().path(),
        env!("CARGO_PKG_VERSION"),
    );
    QdrantError::new(StatusCode::NOT_FOUND, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Searches sent by POST only read; point writes write; the rest administers.
    #[test]
    fn each_route_needs_the_scope_of_what_it_does() {
        let cases = [
            ("GET", "/", None),
            ("GET", "/readyz", None),
            ("GET", "/collections/c", Some(Scope::Read)),
            ("POST", "/collections/c/points", Some(Scope::Read)),
            (
                "POST",
                "/collections/c/points/query/batch",
                Some(Scope::Read),
            ),
            ("POST", "/collections/c/points/scroll", Some(Scope::Read)),
            ("PUT", "/collections/c/points", Some(Scope::Write)),
            (
                "POST",
                "/collections/c/points/payload/clear",
                Some(Scope::Write),
            ),
            ("POST", "/collections/c/points/delete", Some(Scope::Write)),
            ("PUT", "/collections/c", Some(Scope::Admin)),
            ("POST", "/collections/aliases", Some(Scope::Admin)),
            ("PUT", "/collections/c/index", Some(Scope::Admin)),
            ("POST", "/collections/c/snapshots", Some(Scope::Admin)),
        ];
        for (method, path, scope) in cases {
            assert_eq!(scope_of(method, path), scope, "{method} {path}");
        }
    }

    #[test]
    fn the_collection_is_read_from_the_path_decoded() {
        assert_eq!(
            collection_in_path("/collections/my%2Dnotes/points"),
            Some("my-notes".to_owned())
        );
        assert_eq!(collection_in_path("/collections/aliases"), None);
        assert_eq!(collection_in_path("/aliases"), None);
        assert_eq!(collection_in_path("/collections"), None);
    }

    /// `null` is "not given" in requests, but a value inside payloads.
    #[test]
    fn nulls_are_dropped_outside_payloads() {
        let mut body = json!({
            "filter": {"must": null, "should": [{"key": "a", "match": {"value": 1}, "range": null}]},
            "points": [{"id": 1, "payload": {"kept": null}}],
            "offset": null,
        });
        drop_nulls(&mut body);
        assert_eq!(
            body,
            json!({
                "filter": {"should": [{"key": "a", "match": {"value": 1}}]},
                "points": [{"id": 1, "payload": {"kept": null}}],
            })
        );
    }
}
