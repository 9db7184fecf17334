//! Snapshots of a collection: create, list, restore, delete. The same operations as
//! `mnemo snapshot`; snapshots stay on the server's disk, beside its data directory.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use mnemo_store::SnapshotInfo;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Serialize, ToSchema)]
pub struct SnapshotList {
    /// Oldest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// The collection's snapshots, oldest first (also of a collection deleted since).
#[utoipa::path(operation_id = "list_snapshots", get, path = "/api/v1/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = SnapshotList)))]
pub(crate) async fn list(
    state: Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<SnapshotList>> {
    caller.require_collection(Scope::Read, &name)?;
    let snapshots = state
        .run(move |engine| Ok(engine.store().list_snapshots(&name)?))
        .await?;
    Ok(Json(SnapshotList { snapshots }))
}

/// Take a consistent, checksummed snapshot while writes go on (they pause for the copy of
/// the collection's files only).
#[utoipa::path(operation_id = "create_snapshot", post, path = "/api/v1/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 201, body = SnapshotInfo)))]
pub(crate) async fn create(
    state: Shared,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<SnapshotInfo>)> {
    caller.require_collection(Scope::Admin, &name)?;
    let info = state
        .run(move |engine| Ok(engine.store().create_snapshot(&name)?))
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Replace the collection (or create it) with one of its snapshots, after verifying the
/// archive's checksum and every file in it; a damaged snapshot is refused and changes nothing.
#[utoipa::path(operation_id = "restore_snapshot", post, path = "/api/v1/collections/{name}/snapshots/{snapshot}/restore", tag = "snapshots",
    params(("name" = String, Path, description = "Collection name"),
           ("snapshot" = String, Path, description = "Snapshot name, as listed")),
    responses((status = 200, body = SnapshotInfo)))]
pub(crate) async fn restore(
    state: Shared,
    Extension(caller): Extension<Caller>,
    Path((name, snapshot)): Path<(String, String)>,
) -> ApiResult<Json<SnapshotInfo>> {
    caller.require_collection(Scope::Admin, &name)?;
    let info = state
        .run(move |engine| Ok(engine.store().restore_snapshot(&name, &snapshot)?))
        .await?;
    Ok(Json(info))
}

#[derive(Serialize, ToSchema)]
pub struct SnapshotDeleted {
    pub name: String,
    pub deleted: bool,
}

/// Delete a snapshot.
#[utoipa::path(operation_id = "delete_snapshot", delete, path = "/api/v1/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path, description = "Collection name"),
           ("snapshot" = String, Path, description = "Snapshot name, as listed")),
    responses((status = 200, body = SnapshotDeleted)))]
pub(crate) async fn delete(
    state: Shared,
    Extension(caller): Extension<Caller>,
    Path((name, snapshot)): Path<(String, String)>,
) -> ApiResult<Json<SnapshotDeleted>> {
    caller.require_collection(Scope::Admin, &name)?;
    let deleted_name = snapshot.clone();
    let collection = name.clone();
    let existed = state
        .run(move |engine| Ok(engine.store().delete_snapshot(&collection, &deleted_name)?))
        .await?;
    if !existed {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("collection `{name}` has no snapshot `{snapshot}`"),
        ));
    }
    Ok(Json(SnapshotDeleted {
        name: snapshot,
        deleted: true,
    }))
}
