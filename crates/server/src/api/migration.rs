//! Moving a collection to another model over REST: the same migration as `mnemo model
//! migrate`, run on a thread of the server's, followed by its state here and its
//! `model.migration.*` events; then the switch, one write.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use mnemo_engine::{LabelledQuery, MigrateOptions, MigrationState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, Shared};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Labelled queries an evaluation may carry at most.
const MAX_EVAL_QUERIES: usize = 1_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartMigration {
    /// The model to move the collection to (an installed or configured one).
    pub to: String,
    /// Texts embedded per second at most.
    pub throttle: Option<f64>,
    /// Labelled queries for hit@1, hit@10 and MRR of both models in the report.
    #[serde(default)]
    pub eval: Vec<LabelledQuery>,
}

#[derive(Serialize, ToSchema)]
pub struct MigrationStatus {
    /// Whether this server is building the shadow collection now.
    pub running: bool,
    /// The last migration's state and report; absent before the first.
    pub migration: Option<MigrationState>,
}

/// Start building a shadow of the collection with another model (202); follow it with `GET`
/// on the same path or the `model.migration.*` events. Nothing switches until `…/switch`.
#[utoipa::path(operation_id = "start_migration", post, path = "/api/v1/collections/{name}/migration", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = StartMigration,
    responses((status = 202, body = MigrationStatus)))]
pub(crate) async fn start(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<StartMigration>,
) -> ApiResult<(StatusCode, Json<MigrationStatus>)> {
    if body.eval.len() > MAX_EVAL_QUERIES {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "`eval` holds {} queries; at most {MAX_EVAL_QUERIES}",
                body.eval.len()
            ),
        ));
    }
    if let Some(rate) = body.throttle
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(ApiError::new(
            ErrorCode::Unprocessable,
            "`throttle` must be a number of texts per second above 0",
        ));
    }
    let engine = state.engine.clone();
    let options = MigrateOptions {
        collection: name.clone(),
        to: body.to,
        max_texts_per_second: body.throttle,
        eval: body.eval,
    };
    let status = state
        .run(move |_| {
            engine.start_migration(options)?;
            Ok(MigrationStatus {
                running: true,
                migration: engine.migration_state(&name)?,
            })
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// The collection's last migration: its state, and its report once built.
#[utoipa::path(operation_id = "get_migration", get, path = "/api/v1/collections/{name}/migration", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = MigrationStatus)))]
pub(crate) async fn status(
    state: Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<MigrationStatus>> {
    let status = state
        .run(move |engine| {
            Ok(MigrationStatus {
                running: engine.is_migrating(&name),
                migration: engine.migration_state(&name)?,
            })
        })
        .await?;
    Ok(Json(status))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// Back to the collection the migration replaced.
    #[serde(default)]
    pub back: bool,
}

/// Point the collection's name at the collection its migration built (or, `back`, at the one
/// it replaced) in one write: searches running meanwhile read one or the other, never fail.
#[utoipa::path(operation_id = "switch_migration", post, path = "/api/v1/collections/{name}/migration/switch", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body(content = Option<Switch>),
    responses((status = 200, body = MigrationState)))]
pub(crate) async fn switch(
    state: Shared,
    Path(name): Path<String>,
    body: Option<ApiJson<Switch>>,
) -> ApiResult<Json<MigrationState>> {
    let back = body.map(|ApiJson(body)| body).unwrap_or_default().back;
    let switched = state
        .run(move |engine| Ok(engine.switch_model(&name, back)?))
        .await?;
    Ok(Json(switched))
}
