//! Index jobs, for every door that starts indexing in the background (the REST API today; the
//! MCP server and the plan watcher next): paths checked against the folders the service may
//! read, one bounded queue, and one worker thread that runs them in turn, because the
//! incremental index assumes a single writer per collection. A job is followed by its id and
//! can be cancelled; finished ones are kept a while.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::{Engine, EngineError, IndexOptions, IndexProgress, IndexSummary, Result, Scope};

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
}

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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JobQueue {
    fn add(&self, paths: &[PathBuf], options: &IndexOptions) -> Tracked {
        let mut collections = vec![options.tasks_collection.clone()];
        if options.passages {
            collections.push(options.passages_collection.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
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
        let tracked = self.add(&paths, &options);
        let queued = lock(&tracked.job).clone();
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
            engine,
            paths,
            options,
            tracked,
            finished: Box::new(finished),
        };
        match sender.try_send(message) {
            Ok(()) => Ok(queued),
            Err(refused) => {
                lock(&self.jobs).remove(&queued.id);
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
    pub fn cancel(&self, id: u64) -> Result<Job> {
        let tracked = lock(&self.jobs)
            .get(&id)
            .cloned()
            .ok_or(EngineError::UnknownJob(id))?;
        tracked.cancel.store(true, Ordering::SeqCst);
        let mut job = lock(&tracked.job);
        if job.state == JobState::Queued {
            job.state = JobState::Cancelled;
            job.finished_at = Some(now());
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
        {
            let mut job = lock(&tracked.job);
            job.state = JobState::Running;
            job.started_at = Some(now());
        }
        let progress = JobProgress(tracked.clone());
        let result = engine.index(&paths, &options, &progress);
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
    }
}

struct JobProgress(Tracked);

impl IndexProgress for JobProgress {
    fn start(&self, files: usize) {
        lock(&self.0.job).files_total = files;
    }

    fn files_done(&self, files: usize, embedded: usize) {
        let mut job = lock(&self.0.job);
        job.files_done = files;
        job.embedded = embedded;
    }

    fn phase(&self, name: &str) {
        lock(&self.0.job).phase = Some(name.to_owned());
    }

    fn cancelled(&self) -> bool {
        self.0.cancel.load(Ordering::SeqCst)
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
