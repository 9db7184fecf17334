//! Indexing Markdown on the server's disk as background jobs: `POST /api/v1/index` answers at
//! once with a job, `GET /api/v1/jobs/{id}` tells how far it got. The engine's job queue runs
//! them one at a time and keeps paths within the configured `index_roots`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::{Extension, Json};
use mnemo_engine::{IndexOptions, Job, Principal, Scope, resolve_under_roots};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, AppState, Shared, unprocessable};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexRequest {
    /// Files or folders on the server, under one of its configured `index_roots`. A
    /// relative path is taken from the first root.
    paths: Vec<String>,
    /// Index tasks only, not prose passages.
    #[serde(default)]
    tasks_only: bool,
    /// The tasks collection (default `tasks`).
    collection: Option<String>,
    /// The passages collection (default `passages`).
    passages_collection: Option<String>,
}

/// Start indexing files or folders on the server; the answer is the queued job.
#[utoipa::path(operation_id = "start_index_job", post, path = "/api/v1/index", tag = "indexing",
    request_body = IndexRequest,
    responses((status = 202, body = Job, headers(("Location" = String, description = "The job's URL")))))]
pub(crate) async fn start(
    state: Shared,
    Extension(caller): Extension<Principal>,
    ApiJson(request): ApiJson<IndexRequest>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Job>)> {
    let options = IndexOptions {
        tasks_collection: request
            .collection
            .unwrap_or_else(|| mnemo_engine::TASKS_COLLECTION.to_owned()),
        passages_collection: request
            .passages_collection
            .unwrap_or_else(|| mnemo_engine::PASSAGES_COLLECTION.to_owned()),
        passages: !request.tasks_only,
        ..IndexOptions::default()
    };
    let mut collections = vec![options.tasks_collection.clone()];
    if options.passages {
        collections.push(options.passages_collection.clone());
    }
    // Writing needs `write`; indexing into a collection that does not exist creates it, which
    // needs `admin`: the engine says which, and the key is checked once against it.
    let named = collections.clone();
    let scope = state
        .run(move |engine| {
            let named: Vec<&str> = named.iter().map(String::as_str).collect();
            Ok(engine.scope_to_index_into(&named)?)
        })
        .await?;
    for collection in &collections {
        caller.authorize(scope, Some(collection))?;
    }
    if request.paths.is_empty() {
        return Err(unprocessable("`paths` is empty"));
    }
    state.check_batch("paths", request.paths.len())?;
    let paths = request
        .paths
        .iter()
        .map(|path| resolve_under_roots(path, &state.config.index_roots))
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = state.metrics.clone();
    let job = state
        .engine
        .jobs()
        .submit(state.engine.clone(), paths, options, move |summary| {
            metrics.observe_indexed(summary)
        })?;
    let location = format!("/api/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Running and queued jobs, and the last finished ones, oldest first.
    pub jobs: Vec<Job>,
}

/// The indexing jobs this server knows of.
#[utoipa::path(operation_id = "list_jobs", get, path = "/api/v1/jobs", tag = "indexing",
    responses((status = 200, body = JobList)))]
pub(crate) async fn list(
    state: Shared,
    Extension(caller): Extension<Principal>,
) -> ApiResult<Json<JobList>> {
    let mut jobs = state.engine.jobs().all();
    jobs.retain(|job| visible(&caller, job));
    Ok(Json(JobList { jobs }))
}

/// One indexing job: its state, progress, and summary or error once finished.
#[utoipa::path(operation_id = "get_job", get, path = "/api/v1/jobs/{id}", tag = "indexing",
    params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, body = Job)))]
pub(crate) async fn status(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    visible_job(&state, &caller, &id).map(Json)
}

/// The job `id` names, if it is one `caller` may know of; else 404, as for no job at all.
fn visible_job(state: &AppState, caller: &Principal, id: &str) -> ApiResult<Job> {
    id.parse::<u64>()
        .ok()
        .and_then(|number| state.engine.jobs().get(number))
        .filter(|job| visible(caller, job))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no job `{id}`")))
}

/// Whether `caller` may know of `job`: every collection it writes is one of the caller's. To
/// any other key the job does not exist.
fn visible(caller: &Principal, job: &Job) -> bool {
    job.collections
        .iter()
        .all(|collection| caller.may_see(collection))
}

/// Cancel a job: a queued one at once, a running one between two chunks of files (what it
/// wrote stays; indexing the same paths again goes on from there). The answer is the job as
/// it stands; a finished job is left as it was.
#[utoipa::path(operation_id = "cancel_job", delete, path = "/api/v1/jobs/{id}", tag = "indexing",
    params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, body = Job)))]
pub(crate) async fn cancel(
    state: Shared,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    let job = visible_job(&state, &caller, &id)?;
    for collection in &job.collections {
        caller.authorize(Scope::Write, Some(collection))?;
    }
    Ok(Json(state.engine.jobs().cancel(&state.engine, job.id)?))
}
