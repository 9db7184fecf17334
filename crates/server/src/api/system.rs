//! The server about itself: liveness, readiness, metrics, and the API's description.

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

/// Liveness: the process answers. No key needed.
#[utoipa::path(operation_id = "health", get, path = "/health", tag = "server", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`: the model is loaded and the store answers.
    pub status: &'static str,
    pub model: String,
    pub dimensions: usize,
    pub collections: usize,
}

/// Readiness: the model is loaded and the store answers and can keep what it acknowledges;
/// 503 `unavailable` when not (a failed sync to disk keeps it unready until a restart).
/// No key needed.
#[utoipa::path(operation_id = "ready", get, path = "/ready", tag = "server", security(()),
    responses((status = 200, body = Readiness)))]
pub(crate) async fn ready(state: Shared) -> ApiResult<Json<Readiness>> {
    let collections = state
        .run(|engine| {
            engine.store().health()?;
            Ok(engine.store().list_collections()?.len())
        })
        .await
        .map_err(|err| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("not ready: {}", err.message),
            )
        })?;
    Ok(Json(Readiness {
        status: "ready",
        model: state.engine.model_id().to_owned(),
        dimensions: state.engine.dim(),
        collections,
    }))
}

/// Prometheus metrics (text exposition format). Needs a key with `read` when keys are set.
#[utoipa::path(operation_id = "metrics", get, path = "/metrics", tag = "server",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(state: Shared) -> ApiResult<impl IntoResponse> {
    let metrics = state.metrics.clone();
    let supervisor = state.supervisor.clone();
    let text = state
        .run(move |engine| Ok(metrics.render(engine, supervisor.as_deref())))
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// This API's OpenAPI 3.1 description, generated from the code. No key needed.
#[utoipa::path(operation_id = "openapi", get, path = "/openapi.json", tag = "server", security(()),
    responses((status = 200, content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
}

/// Interactive documentation of this API, served from the binary, working offline.
#[utoipa::path(operation_id = "docs", get, path = "/docs", tag = "server", security(()),
    responses((status = 200, content_type = "text/html", body = String)))]
pub(crate) async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
