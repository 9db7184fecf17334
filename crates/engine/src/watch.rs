//! Plans kept current: folders watched through the operating system's file notifications
//! (the `notify` crate: inotify, FSEvents, ReadDirectoryChangesW), bursts of changes gathered
//! until the folder is quiet, then one incremental index job per burst on the engine's job
//! queue, the same single writer the REST API uses.
//!
//! A job indexes the watched folders the changes fell in, whole: unchanged files are found
//! current by their hash without being read twice, deleted and renamed files are removed
//! as a run over their folder removes them, and an editor's atomic save (a temporary file
//! renamed over the plan) is one more change like any other. A `git checkout` touching 500
//! files is one burst, so one job. When the watcher starts, one job catches up with what
//! changed while nothing watched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::json;

use crate::components::Component;
use crate::jobs::JobState;
use crate::{Engine, IndexOptions, IndexSummary, lock};

/// Quiet time that ends a burst.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// The longest a burst is gathered before its job is queued anyway.
pub const MAX_BURST: Duration = Duration::from_secs(2);
/// Changed files named in a `files.changed` event; beyond, only counted.
const FILES_NAMED: usize = 20;

type Finished = Arc<dyn Fn(&IndexSummary) + Send + Sync>;

/// The plan watcher, as a component of a service.
pub struct PlanWatcher {
    engine: Arc<Engine>,
    /// Canonical folders (or files) watched.
    paths: Vec<PathBuf>,
    options: IndexOptions,
    finished: Finished,
    running: Mutex<Option<Running>>,
}

struct Running {
    // Dropping the watcher closes the channel, which ends the thread.
    _watcher: notify::RecommendedWatcher,
    thread: std::thread::JoinHandle<()>,
}

impl PlanWatcher {
    /// Watches `paths` (already resolved under the service's roots), indexing with `options`
    /// into the engine; `finished` is told each job's summary.
    pub fn new(
        engine: Arc<Engine>,
        paths: Vec<PathBuf>,
        options: IndexOptions,
        finished: impl Fn(&IndexSummary) + Send + Sync + 'static,
    ) -> Self {
        Self {
            engine,
            paths,
            options,
            finished: Arc::new(finished),
            running: Mutex::new(None),
        }
    }
}

impl Component for PlanWatcher {
    fn name(&self) -> &str {
        "watcher"
    }

    fn description(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        format!("re-indexes {} when they change", paths.join(", "))
    }

    fn depends_on(&self) -> Vec<String> {
        vec!["store".to_owned(), "index-jobs".to_owned()]
    }

    fn check(&self) -> Result<(), String> {
        for path in &self.paths {
            if !path.exists() {
                return Err(format!("{} does not exist", path.display()));
            }
        }
        Ok(())
    }

    fn start(&self) -> Result<(), String> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let (sender, receiver) = channel();
        let mut watcher = notify::recommended_watcher(sender)
            .map_err(|err| format!("cannot watch files: {err}"))?;
        for path in &self.paths {
            watcher
                .watch(path, RecursiveMode::Recursive)
                .map_err(|err| format!("cannot watch {}: {err}", path.display()))?;
        }
        let burst = Burst {
            engine: Arc::clone(&self.engine),
            roots: self.paths.clone(),
            options: self.options.clone(),
            finished: Arc::clone(&self.finished),
        };
        // What changed while nothing watched is caught up first.
        burst.submit(&self.paths.iter().cloned().collect());
        let thread = std::thread::Builder::new()
            .name("mnemo-watcher".into())
            .spawn(move || burst.run(&receiver))
            .map_err(|err| format!("cannot start its thread: {err}"))?;
        *running = Some(Running {
            _watcher: watcher,
            thread,
        });
        Ok(())
    }

    fn stop(&self) {
        if let Some(running) = lock(&self.running).take() {
            let Running { _watcher, thread } = running;
            drop(_watcher);
            let _ = thread.join();
        }
    }

    fn probe(&self) -> Result<String, String> {
        match lock(&self.running).as_ref() {
            None => Err("not running".to_owned()),
            Some(running) if running.thread.is_finished() => Err("its thread stopped".to_owned()),
            Some(_) => {
                for path in &self.paths {
                    if !path.exists() {
                        return Err(format!("{} is gone", path.display()));
                    }
                }
                Ok(format!("watching {} paths", self.paths.len()))
            }
        }
    }
}

/// The watcher's thread: gathers a burst, then queues its job.
struct Burst {
    engine: Arc<Engine>,
    roots: Vec<PathBuf>,
    options: IndexOptions,
    finished: Finished,
}

impl Burst {
    fn run(&self, events: &Receiver<notify::Result<notify::Event>>) {
        loop {
            // Wait for the first change of a burst.
            let mut changed = BTreeSet::new();
            match events.recv() {
                Ok(event) => self.gather(event, &mut changed),
                Err(_) => return,
            }
            let first = Instant::now();
            loop {
                let left = MAX_BURST.saturating_sub(first.elapsed());
                if left.is_zero() {
                    break;
                }
                match events.recv_timeout(DEBOUNCE.min(left)) {
                    Ok(event) => self.gather(event, &mut changed),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            if !changed.is_empty() {
                self.submit(&changed);
            }
        }
    }

    /// Adds the plan files (or folders, for a folder renamed or removed) an event touched.
    fn gather(&self, event: notify::Result<notify::Event>, changed: &mut BTreeSet<PathBuf>) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                // The kernel's queue overflowed, or a folder went: index everything watched.
                eprintln!(
                    "warning: file notifications: {err}; the watched folders are indexed again"
                );
                changed.extend(self.roots.iter().cloned());
                return;
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            let relevant = is_markdown(&path)
                // A folder renamed or removed takes its plans with it.
                || (matches!(event.kind, EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_)))
                    && path.extension().is_none());
            if relevant {
                changed.insert(path);
            }
        }
    }

    fn submit(&self, changed: &BTreeSet<PathBuf>) {
        let roots: Vec<PathBuf> = self
            .roots
            .iter()
            .filter(|root| changed.iter().any(|path| path.starts_with(root)))
            .cloned()
            .collect();
        if roots.is_empty() {
            return;
        }
        let named: Vec<String> = changed
            .iter()
            .take(FILES_NAMED)
            .map(|path| path.display().to_string())
            .collect();
        self.engine.emit(
            "files.changed",
            None,
            json!({ "count": changed.len(), "files": named, "watched": roots }),
        );
        // A job for the same folders still waiting will see these changes too.
        let display: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
        let waiting = self
            .engine
            .jobs()
            .all()
            .iter()
            .any(|job| job.state == JobState::Queued && job.paths == display);
        if waiting {
            return;
        }
        let finished = Arc::clone(&self.finished);
        let submitted = self.engine.jobs().submit(
            Arc::clone(&self.engine),
            roots,
            self.options.clone(),
            move |summary| finished(summary),
        );
        if let Err(err) = submitted {
            eprintln!("warning: the watcher could not queue its index job: {err}");
        }
    }
}

fn is_markdown(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("md") || ext.eq_ignore_ascii_case("markdown"))
}
