//! Index jobs, for every door that starts indexing in the background (the REST API today; the
//! MCP server and the plan watcher next): paths checked against the folders the service may
//! read, one bounded queue, and one worker thread that runs them in turn, because the
//! incremental index assumes a single writer per collection. A job is followed by its id and
//! can be cancelled; finished ones are kept a while.
//!
//! With an event log (the engine's relational store), each job is stored with its every state
//! change and the event saying it (`job.queued`, `job.started`, `job.progress`,
//! `job.finished`, `job.failed`, `job.cancelled`, `job.resumed`), written before the
//! change is answered: a queued job survives a restart, and one that was running goes on
//! (indexing is incremental: what it wrote is found current) — [`Engine::resume_jobs`].

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mnemo_records::{NewEvent, StoredJob};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Engine, EngineError, IndexOptions, IndexProgress, IndexSummary, Result, Scope, lock};

/// Finished jobs kept for [`JobQueue::get`]; older ones are forgotten.
const FINISHED_KEPT: usize = 100;

/// Jobs that may wait behind the running one; beyond, a submission is refused (and may be
/// retried later) rather than piling up.
pub const QUEUED_JOBS: usize = 16;

#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    /// Waiting for the job before it to finish.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Cancelled while queued, or stopped between chunks of files while running.
    Cancelled,
}

impl JobState {
    fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The least time between two `job.progress` events of one job.
const PROGRESS_EVENT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Clone)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: u64,
    pub state: JobState,
    /// The paths as resolved on the server.
    pub paths: Vec<String>,
    pub tasks_only: bool,
    /// The collections it writes: tasks, then passages unless `tasks_only`.
    pub collections: Vec<String>,
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
pub struct JobQueue {
    next_id: AtomicU64,
    /// Whether `next_id` was moved past the ids stored by earlier runs.
    ids_continued: AtomicBool,
    jobs: Mutex<BTreeMap<u64, Tracked>>,
    /// The worker's queue, made with the worker on the first submission.
    worker: Mutex<Option<SyncSender<Queued>>>,
}

/// A job as followed, and the flag that cancels it.
#[derive(Clone)]
struct Tracked {
    job: Arc<Mutex<Job>>,
    cancel: Arc<AtomicBool>,
}

/// A job waiting for the worker.
struct Queued {
    engine: Arc<Engine>,
    paths: Vec<PathBuf>,
    options: IndexOptions,
    tracked: Tracked,
    finished: Box<dyn FnOnce(&IndexSummary) + Send>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl JobQueue {
    fn add(&self, id: u64, paths: &[PathBuf], options: &IndexOptions) -> Tracked {
        let mut collections = vec![options.tasks_collection.clone()];
        if options.passages {
            collections.push(options.passages_collection.clone());
        }
        let job = Arc::new(Mutex::new(Job {
            id,
            state: JobState::Queued,
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
            tasks_only: !options.passages,
            collections,
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
            .filter(|(_, tracked)| lock(&tracked.job).state.is_finished())
            .map(|(id, _)| *id)
            .collect();
        for old in finished
            .iter()
            .take(finished.len().saturating_sub(FINISHED_KEPT))
        {
            jobs.remove(old);
        }
        let tracked = Tracked {
            job,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        jobs.insert(id, tracked.clone());
        tracked
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        lock(&self.jobs)
            .get(&id)
            .map(|tracked| lock(&tracked.job).clone())
    }

    /// Running and queued jobs, and the last finished ones, oldest first.
    pub fn all(&self) -> Vec<Job> {
        lock(&self.jobs)
            .values()
            .map(|tracked| lock(&tracked.job).clone())
            .collect()
    }

    /// Queues indexing `paths` (already resolved: [`resolve_under_roots`]) with `engine`; the
    /// job as queued. `finished` is called with the summary of a job that succeeded. Refused
    /// with [`EngineError::JobQueueFull`] when [`QUEUED_JOBS`] jobs wait already.
    pub fn submit(
        &self,
        engine: Arc<Engine>,
        paths: Vec<PathBuf>,
        options: IndexOptions,
        finished: impl FnOnce(&IndexSummary) + Send + 'static,
    ) -> Result<Job> {
        if let Some(records) = engine.records.as_ref() {
            self.continue_stored_ids(records.as_ref())?;
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.enqueue(id, engine, paths, options, Box::new(finished), "job.queued")
    }

    /// Moves the ids past those stored by earlier runs, once: a job id is never given twice.
    /// Marked done only once read, so that a failed read is tried again at the next job.
    fn continue_stored_ids(&self, records: &dyn mnemo_records::MemoryRecords) -> Result<()> {
        if self.ids_continued.load(Ordering::SeqCst) {
            return Ok(());
        }
        let stored = u64::try_from(records.last_job_id()?).unwrap_or(0);
        self.next_id.fetch_max(stored, Ordering::SeqCst);
        self.ids_continued.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Queues job `id` (`event` says why: queued, or resumed after a restart), stored with
    /// its event before it is answered.
    fn enqueue(
        &self,
        id: u64,
        engine: Arc<Engine>,
        paths: Vec<PathBuf>,
        options: IndexOptions,
        finished: Box<dyn FnOnce(&IndexSummary) + Send>,
        event: &str,
    ) -> Result<Job> {
        let tracked = self.add(id, &paths, &options);
        let queued = lock(&tracked.job).clone();
        if let Err(err) = engine.save_job(&queued, &options, event, json!({})) {
            lock(&self.jobs).remove(&id);
            return Err(err);
        }
        let mut worker = lock(&self.worker);
        let sender = match worker.as_ref() {
            Some(sender) => sender.clone(),
            None => {
                let (sender, receiver) = sync_channel(QUEUED_JOBS);
                std::thread::Builder::new()
                    .name("index-jobs".into())
                    .spawn(move || run_jobs(receiver))
                    .map_err(EngineError::JobThread)?;
                worker.insert(sender).clone()
            }
        };
        let message = Queued {
            engine: Arc::clone(&engine),
            paths,
            options: options.clone(),
            tracked,
            finished,
        };
        match sender.try_send(message) {
            Ok(()) => Ok(queued),
            Err(refused) => {
                lock(&self.jobs).remove(&queued.id);
                let mut refused_job = queued.clone();
                refused_job.state = JobState::Failed;
                refused_job.error = Some("the queue of index jobs was full".to_owned());
                // Best effort: the submission is refused either way.
                let _ = engine.save_job(&refused_job, &options, "job.failed", json!({}));
                Err(match refused {
                    TrySendError::Full(_) => EngineError::JobQueueFull {
                        queued: QUEUED_JOBS,
                    },
                    TrySendError::Disconnected(_) => {
                        *worker = None;
                        EngineError::WorkerPanicked("index jobs")
                    }
                })
            }
        }
    }

    /// Cancels a job: a queued one at once, a running one between two chunks of files (what
    /// it wrote stays). A finished job is left as it is. The job as it stands.
    pub fn cancel(&self, engine: &Engine, id: u64) -> Result<Job> {
        let tracked = lock(&self.jobs)
            .get(&id)
            .cloned()
            .ok_or(EngineError::UnknownJob(id))?;
        tracked.cancel.store(true, Ordering::SeqCst);
        let mut job = lock(&tracked.job);
        if job.state == JobState::Queued {
            job.state = JobState::Cancelled;
            job.finished_at = Some(now());
            engine.save_job(&job, &options_of(&job), "job.cancelled", json!({}))?;
        }
        Ok(job.clone())
    }
}

/// The worker: each job in turn, until the queue is dropped with its engine.
fn run_jobs(queue: Receiver<Queued>) {
    for queued in queue {
        let Queued {
            engine,
            paths,
            options,
            tracked,
            finished,
        } = queued;
        if tracked.cancel.load(Ordering::SeqCst) {
            continue;
        }
        let started = {
            let mut job = lock(&tracked.job);
            job.state = JobState::Running;
            job.started_at = Some(now());
            job.clone()
        };
        if let Err(err) = engine.save_job(&started, &options, "job.started", json!({})) {
            eprintln!(
                "warning: job {} started, but its state is not stored: {err}",
                started.id
            );
        }
        let progress = JobProgress {
            tracked: tracked.clone(),
            engine: Arc::clone(&engine),
            last_event: Mutex::new(Instant::now()),
        };
        let result = engine.index(&paths, &options, &progress);
        let ended = {
            let mut job = lock(&tracked.job);
            job.finished_at = Some(now());
            job.phase = None;
            match result {
                Ok(summary) => {
                    finished(&summary);
                    job.state = JobState::Succeeded;
                    job.summary = Some(summary);
                }
                Err(err) => {
                    job.state = if matches!(err, EngineError::Cancelled { .. }) {
                        JobState::Cancelled
                    } else {
                        JobState::Failed
                    };
                    job.error = Some(err.to_string());
                }
            }
            job.clone()
        };
        if let Some(summary) = &ended.summary
            && summary.written + summary.removed > 0
        {
            engine.emit(
                "index.changed",
                Some(ended.id.to_string()),
                json!({
                    "collections": ended.collections,
                    "files": summary.files - summary.files_unchanged,
                    "written": summary.written,
                    "removed": summary.removed,
                }),
            );
        }
        let event = match ended.state {
            JobState::Succeeded => "job.finished".to_owned(),
            state => format!("job.{}", state.as_str()),
        };
        let details = match &ended.summary {
            Some(summary) => json!({ "summary": summary }),
            None => json!({}),
        };
        if let Err(err) = engine.save_job(&ended, &options, &event, details) {
            eprintln!(
                "warning: job {} ended, but its state is not stored: {err}",
                ended.id
            );
        }
    }
}

struct JobProgress {
    tracked: Tracked,
    engine: Arc<Engine>,
    last_event: Mutex<Instant>,
}

impl IndexProgress for JobProgress {
    fn start(&self, files: usize) {
        lock(&self.tracked.job).files_total = files;
    }

    fn files_done(&self, files: usize, embedded: usize) {
        let job = {
            let mut job = lock(&self.tracked.job);
            job.files_done = files;
            job.embedded = embedded;
            job.clone()
        };
        let mut last_event = lock(&self.last_event);
        if last_event.elapsed() >= PROGRESS_EVENT_INTERVAL {
            *last_event = Instant::now();
            self.engine.emit(
                "job.progress",
                Some(job.id.to_string()),
                json!({ "files_done": files, "files_total": job.files_total, "embedded": embedded }),
            );
        }
    }

    fn phase(&self, name: &str) {
        lock(&self.tracked.job).phase = Some(name.to_owned());
    }

    fn cancelled(&self) -> bool {
        self.tracked.cancel.load(Ordering::SeqCst)
    }
}

/// What a stored job was asked, to run it again after a restart.
fn job_request(job: &Job, options: &IndexOptions) -> Value {
    json!({
        "paths": job.paths,
        "tasks_collection": options.tasks_collection,
        "passages_collection": options.passages_collection,
        "passages": options.passages,
    })
}

/// The options of a job as it is listed (its collections and whether passages are written).
fn options_of(job: &Job) -> IndexOptions {
    let mut options = IndexOptions::default();
    if let Some(tasks) = job.collections.first() {
        options.tasks_collection = tasks.clone();
    }
    if let Some(passages) = job.collections.get(1) {
        options.passages_collection = passages.clone();
    }
    options.passages = !job.tasks_only;
    options
}

impl Engine {
    /// Stores `job` as it stands and appends `event` (with `details` beside its paths and
    /// collections), together; nothing without an event log.
    fn save_job(
        &self,
        job: &Job,
        options: &IndexOptions,
        event: &str,
        details: Value,
    ) -> Result<()> {
        let Some(records) = self.records.as_ref() else {
            return Ok(());
        };
        let id = i64::try_from(job.id).unwrap_or(i64::MAX);
        let mut data = json!({
            "state": job.state.as_str(),
            "paths": job.paths,
            "collections": job.collections,
        });
        if let Some(error) = &job.error {
            data["error"] = json!(error);
        }
        if let (Value::Object(data), Value::Object(details)) = (&mut data, details) {
            data.extend(details);
        }
        let stored = StoredJob {
            id,
            state: job.state.as_str().to_owned(),
            request: job_request(job, options),
            error: job.error.clone(),
            created_at: job.created_at.clone(),
            updated_at: now(),
        };
        records.save_job(
            &stored,
            &NewEvent::new(event, Some(job.id.to_string()), data),
        )?;
        Ok(())
    }

    /// Queues again the jobs a previous run of the service left queued or running (a running
    /// one goes on from what it wrote: `job.resumed`), each checked again against `roots`; a
    /// job that cannot be is stored as failed with the reason. The jobs queued.
    pub fn resume_jobs(
        self: &Arc<Self>,
        roots: &[PathBuf],
        finished: impl Fn(&IndexSummary) + Clone + Send + 'static,
    ) -> Result<Vec<Job>> {
        let Some(records) = self.records.as_ref() else {
            return Ok(Vec::new());
        };
        let stored = records.unfinished_jobs()?;
        let queue = self.jobs();
        queue.continue_stored_ids(records.as_ref())?;
        let mut resumed = Vec::new();
        for job in stored {
            let id = u64::try_from(job.id).unwrap_or(0);
            let request = &job.request;
            let text =
                |field: &str, default: &str| request[field].as_str().unwrap_or(default).to_owned();
            let options = IndexOptions {
                tasks_collection: text("tasks_collection", crate::TASKS_COLLECTION),
                passages_collection: text("passages_collection", crate::PASSAGES_COLLECTION),
                passages: request["passages"].as_bool().unwrap_or(true),
                ..IndexOptions::default()
            };
            let paths: Result<Vec<PathBuf>> = request["paths"]
                .as_array()
                .map(|paths| {
                    paths
                        .iter()
                        .map(|path| resolve_under_roots(path.as_str().unwrap_or(""), roots))
                        .collect()
                })
                .unwrap_or_else(|| Err(EngineError::MalformedQuery("no paths".to_owned())));
            let event = if job.state == "running" {
                "job.resumed"
            } else {
                "job.requeued"
            };
            let outcome = paths.and_then(|paths| {
                queue.enqueue(
                    id,
                    Arc::clone(self),
                    paths,
                    options.clone(),
                    Box::new(finished.clone()),
                    event,
                )
            });
            match outcome {
                Ok(job) => resumed.push(job),
                Err(err) => {
                    let reason = format!("not resumed after the restart: {err}");
                    let failed = StoredJob {
                        state: JobState::Failed.as_str().to_owned(),
                        error: Some(reason.clone()),
                        updated_at: now(),
                        ..job.clone()
                    };
                    records.save_job(
                        &failed,
                        &NewEvent::new(
                            "job.failed",
                            Some(id.to_string()),
                            json!({ "state": "failed", "error": reason }),
                        ),
                    )?;
                }
            }
        }
        Ok(resumed)
    }
}

impl Engine {
    /// The scope indexing into `collections` needs: `write`, or `admin` when one of them does
    /// not exist yet (indexing creates it, and creating a collection is an admin's).
    pub fn scope_to_index_into(&self, collections: &[&str]) -> Result<Scope> {
        let existing = self.store().list_collections()?;
        let creates = collections
            .iter()
            .any(|wanted| !existing.iter().any(|name| name == wanted));
        Ok(if creates { Scope::Admin } else { Scope::Write })
    }
}

/// `path` made absolute (relative ones from the first root) and resolved, if it is under one
/// of `roots`: the folders a service may index on its own disk.
pub fn resolve_under_roots(path: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let outside = || EngineError::OutsideIndexRoots {
        path: path.to_owned(),
    };
    let Some(first) = roots.first() else {
        return Err(EngineError::NoIndexRoots);
    };
    let asked = Path::new(path);
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
        Err(err) => Err(EngineError::UnreadablePath {
            path: path.to_owned(),
            reason: err.to_string(),
        }),
    }
}

/// `path` with `.` and `..` folded away without touching the disk (for paths that do not
/// exist): `root/../../etc` must not count as under `root`.
fn lexical(path: &Path) -> PathBuf {
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
