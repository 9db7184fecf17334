//! The service's components over HTTP (`GET /api/v1/components`, one by name, and the
//! admin's restart, pause and resume), and the configuration in effect with its secrets left
//! out (`GET /api/v1/config`).

use axum::extract::Path;
use axum::{Extension, Json};
use mnemo_engine::Principal;
use mnemo_engine::components::{ComponentAction, ComponentError, ComponentStatus, Supervisor};
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Serialize, ToSchema)]
pub struct ComponentList {
    /// In start order.
    pub components: Vec<ComponentStatus>,
}

fn supervisor(state: &super::AppState) -> ApiResult<&Supervisor> {
    state.supervisor.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this server runs no supervised components",
        )
    })
}

impl From<ComponentError> for ApiError {
    fn from(err: ComponentError) -> Self {
        let code = match err {
            ComponentError::Unknown(_) => ErrorCode::NotFound,
            ComponentError::Failed { .. } => ErrorCode::Unavailable,
            ComponentError::MissingDependency { .. } | ComponentError::Cycle(_) => {
                ErrorCode::Internal
            }
        };
        ApiError::new(code, err.to_string())
    }
}

/// The service's components, their state and health, in start order.
#[utoipa::path(operation_id = "list_components", get, path = "/api/v1/components", tag = "operations",
    responses((status = 200, body = ComponentList)))]
pub(crate) async fn list(state: Shared) -> ApiResult<Json<ComponentList>> {
    Ok(Json(ComponentList {
        components: supervisor(&state)?.statuses(),
    }))
}

/// One component.
#[utoipa::path(operation_id = "get_component", get, path = "/api/v1/components/{name}", tag = "operations",
    params(("name" = String, Path, description = "The component's name, as listed")),
    responses((status = 200, body = ComponentStatus)))]
pub(crate) async fn get(
    state: Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<ComponentStatus>> {
    Ok(Json(supervisor(&state)?.status(&name)?))
}

/// Restart, pause or resume a component (a paused one is neither probed nor restarted).
#[utoipa::path(operation_id = "act_on_component", post, path = "/api/v1/components/{name}/actions/{action}", tag = "operations",
    params(("name" = String, Path, description = "The component's name, as listed"),
           ("action" = String, Path, description = "`restart`, `pause` or `resume`")),
    responses((status = 200, body = ComponentStatus)))]
pub(crate) async fn act(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<ComponentStatus>> {
    let action = ComponentAction::parse(&action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("`{action}` is not an action: restart, pause or resume"),
        )
    })?;
    let supervisor = state.supervisor.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this server runs no supervised components",
        )
    })?;
    let actor = caller.name().to_owned();
    // Stopping a component may wait for its thread: off the async workers.
    let status = tokio::task::spawn_blocking(move || supervisor.act(&name, action, &actor))
        .await
        .map_err(|err| ApiError::new(ErrorCode::Internal, err.to_string()))??;
    Ok(Json(status))
}

#[derive(Serialize, ToSchema)]
pub struct AlertList {
    /// The alerts firing now.
    pub alerts: Vec<mnemo_engine::alerts::Alert>,
}

/// The alerts firing now (each also an `alert.fired` event, and `alert.resolved` when it stops).
#[utoipa::path(operation_id = "list_alerts", get, path = "/api/v1/alerts", tag = "operations",
    responses((status = 200, body = AlertList)))]
pub(crate) async fn alerts(state: Shared) -> Json<AlertList> {
    Json(AlertList {
        alerts: state.engine.alerts(),
    })
}

/// The configuration in effect, secrets left out.
#[utoipa::path(operation_id = "get_config", get, path = "/api/v1/config", tag = "operations",
    responses((status = 200, body = Object)))]
pub(crate) async fn config(state: Shared) -> Json<serde_json::Value> {
    Json(state.config.redacted())
}
