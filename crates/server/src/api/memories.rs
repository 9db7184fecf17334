//! Agents' memories over REST: add, search, get, update, delete one or by scope, history. The
//! engine (`mnemo_engine::memory`) holds every rule; this module translates.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mnemo_engine::memory::{AddStatus, MemoryQuery, NewMemory};
use mnemo_engine::{Principal, SearchMode};
use mnemo_records::{HistoryEntry, Memory, Scope};
use mnemo_store::Filter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{ApiJson, Shared, unprocessable};
use crate::error::ApiResult;

/// The scope named by a request's three fields.
pub(crate) fn scope(
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
) -> Scope {
    Scope {
        user_id,
        agent_id,
        run_id,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    text: String,
    /// Whose memory: at least one of `user_id`, `agent_id` and `run_id`.
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    /// A JSON object kept with the memory and filterable in searches.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    /// RFC 3339; the memory is never returned after it, and deleted by the next sweep.
    expires_at: Option<String>,
    /// Near-duplicates at or above this cosine come back as `similar` (default 0.9).
    similar_threshold: Option<f32>,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarView {
    id: String,
    text: String,
    score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct AddedView {
    id: String,
    /// `added`, or `unchanged` when the same text was in the same scope (its id returned).
    status: String,
    /// Memories of the same visibility close in meaning; the new one was written all the same.
    similar: Vec<SimilarView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MemoryView {
    id: String,
    text: String,
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    created_at: String,
    updated_at: String,
    expires_at: Option<String>,
    author: String,
}

impl From<Memory> for MemoryView {
    fn from(memory: Memory) -> Self {
        Self {
            id: memory.id,
            text: memory.text,
            metadata: memory.metadata,
            user_id: memory.scope.user_id,
            agent_id: memory.scope.agent_id,
            run_id: memory.scope.run_id,
            created_at: memory.created_at,
            updated_at: memory.updated_at,
            expires_at: memory.expires_at,
            author: memory.author,
        }
    }
}

/// A time given as RFC 3339 in the request's `field`.
pub(crate) fn time_field(field: &str, text: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|err| unprocessable(format!("`{field}` {text:?} is not RFC 3339: {err}")))
    })
    .transpose()
}

/// Add a memory. The same text in the same scope answers the existing id (`unchanged`);
/// near-duplicates are listed as `similar`, never dropped.
#[utoipa::path(operation_id = "add_memory", post, path = "/api/v1/memories", tag = "memories",
    request_body = AddRequest, responses((status = 201, body = AddedView), (status = 200, body = AddedView)))]
pub(crate) async fn add(
    state: Shared,
    Extension(caller): Extension<Principal>,
    ApiJson(request): ApiJson<AddRequest>,
) -> ApiResult<(StatusCode, Json<AddedView>)> {
    let new = NewMemory {
        expires_at: time_field("expires_at", request.expires_at.as_deref())?,
        scope: caller.memory_scope(scope(request.user_id, request.agent_id, request.run_id))?,
        text: request.text,
        metadata: request.metadata,
        actor: caller.name().to_owned(),
        similar_threshold: request.similar_threshold,
    };
    let added = state
        .run(move |engine| Ok(engine.add_memory(&new)?))
        .await?;
    let (status, status_name) = match added.status {
        AddStatus::Added => (StatusCode::CREATED, "added"),
        AddStatus::Unchanged => (StatusCode::OK, "unchanged"),
    };
    Ok((
        status,
        Json(AddedView {
            id: added.id,
            status: status_name.to_owned(),
            similar: added
                .similar
                .into_iter()
                .map(|similar| SimilarView {
                    id: similar.id,
                    text: similar.text,
                    score: similar.score,
                })
                .collect(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    query: String,
    /// Who asks: memories whose scope fields are each unset or equal to these are seen.
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    /// Also the memories of narrower scopes (a user's search then sees all of that user's
    /// agents and runs).
    #[serde(default)]
    wider: bool,
    /// On the memories' metadata, Qdrant's filter shape.
    filter: Option<Filter>,
    #[serde(default = "default_limit")]
    limit: usize,
    score_threshold: Option<f32>,
    /// `dense` (by meaning), `hybrid` (meaning and keywords fused by rank) or `keyword`.
    #[serde(default)]
    mode: SearchMode,
    /// RFC 3339: only memories created at or after this time.
    created_after: Option<String>,
    /// RFC 3339: only memories created before this time.
    created_before: Option<String>,
}

fn default_limit() -> usize {
    10
}

#[derive(Serialize, ToSchema)]
pub struct FoundView {
    memory: MemoryView,
    score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SearchAnswer {
    result: Vec<FoundView>,
}

/// Memories visible to the scope given, by meaning, best first; expired ones never.
#[utoipa::path(operation_id = "search_memories", post, path = "/api/v1/memories/search", tag = "memories",
    request_body = SearchRequest, responses((status = 200, body = SearchAnswer)))]
pub(crate) async fn search(
    state: Shared,
    Extension(caller): Extension<Principal>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchAnswer>> {
    let query = MemoryQuery {
        scope: caller.memory_scope(scope(request.user_id, request.agent_id, request.run_id))?,
        text: request.query,
        wider: request.wider,
        filter: request.filter,
        limit: request.limit,
        score_threshold: request.score_threshold,
        mode: request.mode,
        created_after: time_field("created_after", request.created_after.as_deref())?,
        created_before: time_field("created_before", request.created_before.as_deref())?,
    };
    let found = state
        .run(move |engine| Ok(engine.search_memories(&query)?))
        .await?;
    Ok(Json(SearchAnswer {
        result: found
            .into_iter()
            .map(|found| FoundView {
                memory: found.memory.into(),
                score: found.score,
            })
            .collect(),
    }))
}

/// One memory.
#[utoipa::path(operation_id = "get_memory", get, path = "/api/v1/memories/{id}", tag = "memories",
    params(("id" = String, Path, description = "The memory's id")),
    responses((status = 200, body = MemoryView)))]
pub(crate) async fn get(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemoryView>> {
    let memory = state
        .run(move |engine| Ok(engine.memory_for(&caller, &id)?))
        .await?;
    Ok(Json(memory.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    text: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

/// New text or metadata for a memory, embedded again; the old ones stay in its history.
#[utoipa::path(operation_id = "update_memory", put, path = "/api/v1/memories/{id}", tag = "memories",
    params(("id" = String, Path, description = "The memory's id")),
    request_body = UpdateRequest, responses((status = 200, body = MemoryView)))]
pub(crate) async fn update(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateRequest>,
) -> ApiResult<Json<MemoryView>> {
    let actor = caller.name().to_owned();
    let memory = state
        .run(move |engine| {
            engine.memory_for(&caller, &id)?;
            Ok(engine.update_memory(&id, request.text.as_deref(), request.metadata, &actor)?)
        })
        .await?;
    Ok(Json(memory.into()))
}

/// Forget a memory: it is gone from searches at once; its history stays.
#[utoipa::path(operation_id = "delete_memory", delete, path = "/api/v1/memories/{id}", tag = "memories",
    params(("id" = String, Path, description = "The memory's id")),
    responses((status = 200, body = MemoryView)))]
pub(crate) async fn delete(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemoryView>> {
    let actor = caller.name().to_owned();
    let memory = state
        .run(move |engine| {
            engine.memory_for(&caller, &id)?;
            Ok(engine.delete_memory(&id, &actor)?)
        })
        .await?;
    Ok(Json(memory.into()))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedCount {
    deleted: usize,
}

/// Which memories to forget: a scope, a metadata filter, or both (at least one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteManyRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    /// On the memories' metadata, Qdrant's filter shape.
    filter: Option<Filter>,
}

/// Forget every memory of a scope ("everything about user X"), or whose metadata matches a
/// filter: the fields given must all match; how many were deleted.
#[utoipa::path(operation_id = "delete_memories", post, path = "/api/v1/memories/delete", tag = "memories",
    request_body = DeleteManyRequest, responses((status = 200, body = DeletedCount)))]
pub(crate) async fn delete_many(
    state: Shared,
    Extension(caller): Extension<Principal>,
    ApiJson(request): ApiJson<DeleteManyRequest>,
) -> ApiResult<Json<DeletedCount>> {
    let actor = caller.name().to_owned();
    let scope = caller.memory_scope(scope(request.user_id, request.agent_id, request.run_id))?;
    let deleted = state
        .run(move |engine| Ok(engine.delete_memories(&scope, request.filter.as_ref(), &actor)?))
        .await?;
    Ok(Json(DeletedCount { deleted }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryView {
    sequence: i64,
    /// added, updated, deleted or expired
    change: String,
    /// The text, metadata and expiry before the change (none for `added`).
    #[schema(value_type = Option<Object>)]
    before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    after: Option<Value>,
    actor: String,
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryAnswer {
    history: Vec<HistoryView>,
}

impl From<HistoryEntry> for HistoryView {
    fn from(entry: HistoryEntry) -> Self {
        Self {
            sequence: entry.sequence,
            change: entry.change.as_str().to_owned(),
            before: entry.before,
            after: entry.after,
            actor: entry.actor,
            at: entry.at,
        }
    }
}

/// Every change of a memory, also after it was deleted.
#[utoipa::path(operation_id = "memory_history", get, path = "/api/v1/memories/{id}/history", tag = "memories",
    params(("id" = String, Path, description = "The memory's id")),
    responses((status = 200, body = HistoryAnswer)))]
pub(crate) async fn history(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryAnswer>> {
    let history = state
        .run(move |engine| Ok(engine.memory_history_for(&caller, &id)?))
        .await?;
    Ok(Json(HistoryAnswer {
        history: history.into_iter().map(HistoryView::from).collect(),
    }))
}
