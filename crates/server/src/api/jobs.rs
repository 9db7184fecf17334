//! Indexing Markdown on the server's disk as background jobs: `POST /api/v1/index` answers at
//! once with a job, `GET /api/v1/jobs/{id}` tells how far it got. Jobs run one at a time
//! (the engine's incremental index assumes one writer per collection); later ones wait.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::{Extension, Json};
use mnemo_engine::{IndexOptions, IndexProgress, IndexSummary};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{ApiJson, Shared, unprocessable};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Finished jobs kept for `GET /api/v1/jobs/{id}`; older ones are forgotten.
const FINISHED_KEPT: usize = 100;

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

#[derive(Serialize, Clone, Copy, PartialEq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for the job before it to finish.
    Queued,
    Running,
    Succeeded,
    Failed,
}

#[derive(Serialize, Clone, ToSchema)]
pub struct Job {
    pub id: u64,
    pub state: JobState,
    /// The paths as resolved on the server.
    pub paths: Vec<String>,
    pub tasks_only: bool,
    /// What the indexer is doing now (`embedding`, `optimizing`, …).
    pub phase: Option<String>,
    pub files_total: usize,
    pub files_done: usize,
    /// Texts embedded so far.
    pub embedded: usize,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The indexer's summary once succeeded.
    pub summary: Option<IndexSummary>,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Default)]
pub struct JobRegistry {
    next_id: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Arc<Mutex<Job>>>>,
    /// Held by the running job.
    writer: Arc<Mutex<()>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JobRegistry {
    fn add(&self, paths: &[PathBuf], tasks_only: bool) -> Arc<Mutex<Job>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Mutex::new(Job {
            id,
            state: JobState::Queued,
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
            tasks_only,
            phase: None,
            files_total: 0,
            files_done: 0,
            embedded: 0,
            created_at: now(),
            started_at: None,
            finished_at: None,
            summary: None,
            error: None,
        }));
        let mut jobs = lock(&self.jobs);
        let finished: Vec<u64> = jobs
            .iter()
            .filter(|(_, job)| matches!(lock(job).state, JobState::Succeeded | JobState::Failed))
            .map(|(id, _)| *id)
            .collect();
        for old in finished
            .iter()
            .take(finished.len().saturating_sub(FINISHED_KEPT))
        {
            jobs.remove(old);
        }
        jobs.insert(id, job.clone());
        job
    }

    fn get(&self, id: u64) -> Option<Job> {
        lock(&self.jobs).get(&id).map(|job| lock(job).clone())
    }

    fn all(&self) -> Vec<Job> {
        lock(&self.jobs)
            .values()
            .map(|job| lock(job).clone())
            .collect()
    }
}

struct JobProgress(Arc<Mutex<Job>>);

impl IndexProgress for JobProgress {
    fn start(&self, files: usize) {
        lock(&self.0).files_total = files;
    }

    fn files_done(&self, files: usize, embedded: usize) {
        let mut job = lock(&self.0);
        job.files_done = files;
        job.embedded = embedded;
    }

    fn phase(&self, name: &str) {
        lock(&self.0).phase = Some(name.to_owned());
    }
}

/// `path` made absolute (relative ones from the first root) and resolved, if it is under
/// one of `roots`; 403 if not, 422 if it does not exist.
fn resolve_under_roots(path: &str, roots: &[PathBuf]) -> ApiResult<PathBuf> {
    let outside = || {
        ApiError::new(
            ErrorCode::Forbidden,
            format!("`{path}` is not under a folder this server may index"),
        )
        .with_details(json!({ "path": path }))
    };
    let Some(first) = roots.first() else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this server indexes nothing: its configuration lists no `index_roots`",
        ));
    };
    let asked = FsPath::new(path);
    let absolute = if asked.is_absolute() {
        asked.to_path_buf()
    } else {
        first.join(asked)
    };
    let roots: Vec<PathBuf> = roots
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .collect();
    match absolute.canonicalize() {
        Ok(resolved) if roots.iter().any(|root| resolved.starts_with(root)) => Ok(resolved),
        Ok(_) => Err(outside()),
        // Whether a path outside the roots exists is none of the client's business.
        Err(_)
            if !roots
                .iter()
                .any(|root| lexical(&absolute).starts_with(root)) =>
        {
            Err(outside())
        }
        Err(err) => Err(unprocessable(format!("`{path}` cannot be read: {err}"))),
    }
}

/// `path` with `.` and `..` folded away without touching the disk (for paths that do not
/// exist): `root/../../etc` must not count as under `root`.
fn lexical(path: &FsPath) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Start indexing files or folders on the server; the answer is the queued job.
#[utoipa::path(operation_id = "start_index_job", post, path = "/api/v1/index", tag = "indexing",
    request_body = IndexRequest,
    responses((status = 202, body = Job, headers(("Location" = String, description = "The job's URL")))))]
pub(crate) async fn start(
    state: Shared,
    Extension(caller): Extension<Caller>,
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
    caller.require_collection(Scope::Write, &options.tasks_collection)?;
    if options.passages {
        caller.require_collection(Scope::Write, &options.passages_collection)?;
    }
    if request.paths.is_empty() {
        return Err(unprocessable("`paths` is empty"));
    }
    state.check_batch("paths", request.paths.len())?;
    let paths = request
        .paths
        .iter()
        .map(|path| resolve_under_roots(path, &state.config.index_roots))
        .collect::<ApiResult<Vec<_>>>()?;
    let job = state.jobs.add(&paths, request.tasks_only);
    let snapshot = lock(&job).clone();
    let engine = state.engine.clone();
    let writer = state.jobs.writer.clone();
    let metrics = state.metrics.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("index-job-{}", snapshot.id))
        .spawn(move || {
            let _writing = lock(&writer);
            {
                let mut job = lock(&job);
                job.state = JobState::Running;
                job.started_at = Some(now());
            }
            let result = engine.index(&paths, &options, &JobProgress(job.clone()));
            let mut job = lock(&job);
            job.finished_at = Some(now());
            job.phase = None;
            match result {
                Ok(summary) => {
                    metrics.observe_indexed(&summary);
                    job.state = JobState::Succeeded;
                    job.summary = Some(summary);
                }
                Err(err) => {
                    job.state = JobState::Failed;
                    job.error = Some(err.to_string());
                }
            }
        });
    if let Err(err) = spawned {
        return Err(ApiError::new(
            ErrorCode::Internal,
            format!("cannot start the indexing thread: {err}"),
        ));
    }
    let location = format!("/api/v1/jobs/{}", snapshot.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(snapshot),
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
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<JobList>> {
    caller.require(Scope::Read)?;
    Ok(Json(JobList {
        jobs: state.jobs.all(),
    }))
}

/// One indexing job: its state, progress, and summary or error once finished.
#[utoipa::path(operation_id = "get_job", get, path = "/api/v1/jobs/{id}", tag = "indexing",
    params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, body = Job)))]
pub(crate) async fn status(
    state: Shared,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    caller.require(Scope::Read)?;
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no job `{id}`"));
    let number: u64 = id.parse().map_err(|_| not_found())?;
    state.jobs.get(number).map(Json).ok_or_else(not_found)
}
