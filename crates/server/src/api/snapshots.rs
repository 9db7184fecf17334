//! Snapshots of a collection: create, list, restore, delete. The same operations as
//! `mnemo snapshot`; snapshots stay on the server's disk, beside its data directory.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mnemo_store::SnapshotInfo;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
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
pub(crate) async fn list(state: Shared, Path(name): Path<String>) -> ApiResult<Json<SnapshotList>> {
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
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<SnapshotInfo>)> {
    let info = state
        .run(move |engine| Ok(engine.create_snapshot(&name)?))
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
    Path((name, snapshot)): Path<(String, String)>,
) -> ApiResult<Json<SnapshotInfo>> {
    let info = state
        .run(move |engine| Ok(engine.restore_snapshot(&name, &snapshot)?))
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
    Path((name, snapshot)): Path<(String, String)>,
) -> ApiResult<Json<SnapshotDeleted>> {
    let deleted_name = snapshot.clone();
    let collection = name.clone();
    let existed = state
        .run(move |engine| Ok(engine.delete_snapshot(&collection, &deleted_name)?))
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

/// Download a snapshot: the tar archive, streamed, with its BLAKE3 in `x-blake3`. Restore it
/// elsewhere with `mnemo snapshot restore FILE --collection NAME`.
#[utoipa::path(operation_id = "download_snapshot", get, path = "/api/v1/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path, description = "Collection name"),
           ("snapshot" = String, Path, description = "Snapshot name, as listed")),
    responses((status = 200, content_type = "application/x-tar", body = Vec<u8>,
               description = "The snapshot archive")))]
pub(crate) async fn download(
    state: Shared,
    Path((name, snapshot)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (path, info) = state
        .run(move |engine| Ok(engine.store().snapshot_file(&name, &snapshot)?))
        .await?;
    send_snapshot(&path, info)
}

/// The snapshot file at `path`, streamed from a blocking thread a few chunks ahead of the
/// client, with its size and checksum in the headers.
pub(crate) fn send_snapshot(path: &std::path::Path, info: SnapshotInfo) -> ApiResult<Response> {
    let file = std::fs::File::open(path).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    // Read on a blocking thread, a few chunks ahead of the client.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut file = std::io::BufReader::new(file);
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let sent = match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    sender.blocking_send(Ok(Bytes::from(chunk)))
                }
                Err(e) => sender.blocking_send(Err(e)),
            };
            if sent.is_err() {
                return; // the client went away
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_LENGTH, info.size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.snapshot\"", info.name),
            ),
            (header::HeaderName::from_static("x-blake3"), info.checksum),
        ],
        Body::from_stream(Chunks(receiver)),
    )
        .into_response())
}

/// The chunks a reader thread sends, as a body stream.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
