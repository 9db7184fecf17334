//! The long-lived parts of a service (the store, the model, the job runner, the plan watcher,
//! the periodic sweeps, the alert evaluator, …) behind one interface, and the supervisor that
//! runs them: started in dependency order, probed every few seconds, restarted with backoff
//! when a probe fails (each step an event), paused and resumed on request, stopped in reverse
//! order. `mnemo components --dry-run` checks the same list without starting anything.

use crate::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::Engine;

/// One long-lived part of the service.
pub trait Component: Send + Sync {
    fn name(&self) -> &str;
    /// What it does, in a few words (for listings).
    fn description(&self) -> String;
    /// Components that must run before this one starts.
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether its configuration can work, without starting anything (`--dry-run`).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    fn start(&self) -> Result<(), String>;
    fn stop(&self);
    /// Whether it works now: a short account, or what is wrong.
    fn probe(&self) -> Result<String, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ComponentState {
    Stopped,
    Running,
    /// Its last probe failed; it is restarted with backoff.
    Unhealthy,
    /// Stopped on request; not probed nor restarted until resumed.
    Paused,
}

/// A component as the supervisor sees it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentStatus {
    pub name: String,
    pub description: String,
    pub depends_on: Vec<String>,
    pub state: ComponentState,
    /// The last probe's account, or what was wrong.
    pub detail: String,
    pub last_check: Option<String>,
    pub last_error: Option<String>,
    pub restarts: u64,
    pub started_at: Option<String>,
}

/// What may be asked of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentAction {
    Restart,
    Pause,
    Resume,
}

impl ComponentAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "restart" => Some(Self::Restart),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("no component `{0}`")]
    Unknown(String),
    #[error("component `{component}` depends on `{missing}`, which is not configured")]
    MissingDependency { component: String, missing: String },
    #[error("components depend on each other in a circle: {0}")]
    Cycle(String),
    #[error("component `{component}`: {message}")]
    Failed { component: String, message: String },
}

/// The first wait before restarting a failed component; doubled after each failed restart.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Entry {
    component: Arc<dyn Component>,
    status: Mutex<ComponentStatus>,
    /// When the next restart may be tried, and the wait after it.
    backoff: Mutex<(Instant, Duration)>,
}

/// Runs components; one per service.
pub struct Supervisor {
    engine: Arc<Engine>,
    /// In start order.
    entries: Vec<Arc<Entry>>,
    probe_every: Duration,
    stopping: Arc<(Mutex<bool>, Condvar)>,
    started: AtomicBool,
}

fn now() -> String {
    mnemo_records::timestamp(chrono::Utc::now())
}

impl Supervisor {
    /// The supervisor of `components`, ordered so that each starts after what it depends on;
    /// an unknown dependency or a circle is refused.
    pub fn new(
        engine: Arc<Engine>,
        components: Vec<Arc<dyn Component>>,
        probe_every: Duration,
    ) -> Result<Self, ComponentError> {
        let ordered = start_order(components)?;
        let entries = ordered
            .into_iter()
            .map(|component| {
                Arc::new(Entry {
                    status: Mutex::new(ComponentStatus {
                        name: component.name().to_owned(),
                        description: component.description(),
                        depends_on: component.depends_on(),
                        state: ComponentState::Stopped,
                        detail: String::new(),
                        last_check: None,
                        last_error: None,
                        restarts: 0,
                        started_at: None,
                    }),
                    backoff: Mutex::new((Instant::now(), FIRST_BACKOFF)),
                    component,
                })
            })
            .collect();
        Ok(Self {
            engine,
            entries,
            probe_every,
            stopping: Arc::new((Mutex::new(false), Condvar::new())),
            started: AtomicBool::new(false),
        })
    }

    /// Each component's configuration check, in start order, starting nothing.
    pub fn dry_run(&self) -> Vec<(ComponentStatus, Result<(), String>)> {
        self.entries
            .iter()
            .map(|entry| (lock(&entry.status).clone(), entry.component.check()))
            .collect()
    }

    /// Starts every component in order (each checked first), then probes them in the
    /// background. A component that fails to start stops the start: those started are
    /// stopped again, in reverse.
    pub fn start(self: &Arc<Self>) -> Result<(), ComponentError> {
        for (index, entry) in self.entries.iter().enumerate() {
            let name = entry.component.name().to_owned();
            let outcome = entry
                .component
                .check()
                .and_then(|()| entry.component.start());
            if let Err(message) = outcome {
                self.engine.emit(
                    "component.failed",
                    Some(name.clone()),
                    json!({ "error": message, "while": "starting" }),
                );
                for started in self.entries[..index].iter().rev() {
                    started.component.stop();
                    lock(&started.status).state = ComponentState::Stopped;
                }
                return Err(ComponentError::Failed {
                    component: name,
                    message,
                });
            }
            self.mark_started(entry);
            self.engine.emit("component.started", Some(name), json!({}));
        }
        self.started.store(true, Ordering::SeqCst);
        let supervisor = Arc::clone(self);
        std::thread::Builder::new()
            .name("mnemo-supervisor".into())
            .spawn(move || supervisor.watch())
            .map(drop)
            .map_err(|err| ComponentError::Failed {
                component: "supervisor".to_owned(),
                message: err.to_string(),
            })
    }

    fn mark_started(&self, entry: &Entry) {
        let mut status = lock(&entry.status);
        status.state = ComponentState::Running;
        status.started_at = Some(now());
        status.detail = "started".to_owned();
    }

    /// Stops every component, in reverse order.
    pub fn stop(&self) {
        {
            let (stopping, wake) = &*self.stopping;
            *lock(stopping) = true;
            wake.notify_all();
        }
        if !self.started.swap(false, Ordering::SeqCst) {
            return;
        }
        for entry in self.entries.iter().rev() {
            let was_running = lock(&entry.status).state != ComponentState::Paused;
            entry.component.stop();
            lock(&entry.status).state = ComponentState::Stopped;
            if was_running {
                self.engine.emit(
                    "component.stopped",
                    Some(entry.component.name().to_owned()),
                    json!({}),
                );
            }
        }
    }

    pub fn statuses(&self) -> Vec<ComponentStatus> {
        self.entries
            .iter()
            .map(|entry| lock(&entry.status).clone())
            .collect()
    }

    pub fn status(&self, name: &str) -> Result<ComponentStatus, ComponentError> {
        Ok(lock(&self.entry(name)?.status).clone())
    }

    fn entry(&self, name: &str) -> Result<&Arc<Entry>, ComponentError> {
        self.entries
            .iter()
            .find(|entry| entry.component.name() == name)
            .ok_or_else(|| ComponentError::Unknown(name.to_owned()))
    }

    /// Restarts, pauses or resumes one component (`component.restarted`, `.paused`,
    /// `.resumed`); its status after.
    pub fn act(
        &self,
        name: &str,
        action: ComponentAction,
        actor: &str,
    ) -> Result<ComponentStatus, ComponentError> {
        let entry = self.entry(name)?;
        let failed = |message: String| ComponentError::Failed {
            component: name.to_owned(),
            message,
        };
        match action {
            ComponentAction::Pause => {
                entry.component.stop();
                let mut status = lock(&entry.status);
                status.state = ComponentState::Paused;
                status.detail = format!("paused by {actor}");
                drop(status);
                self.engine.emit(
                    "component.paused",
                    Some(name.to_owned()),
                    json!({ "actor": actor }),
                );
            }
            ComponentAction::Resume | ComponentAction::Restart => {
                if action == ComponentAction::Restart {
                    entry.component.stop();
                }
                entry.component.start().map_err(failed)?;
                self.mark_started(entry);
                let (kind, restarts) = if action == ComponentAction::Restart {
                    let mut status = lock(&entry.status);
                    status.restarts += 1;
                    ("component.restarted", status.restarts)
                } else {
                    ("component.resumed", lock(&entry.status).restarts)
                };
                self.engine.emit(
                    kind,
                    Some(name.to_owned()),
                    json!({ "actor": actor, "restarts": restarts }),
                );
            }
        }
        Ok(lock(&entry.status).clone())
    }

    /// Probes every running component each `probe_every`, until stopped.
    fn watch(&self) {
        loop {
            {
                let (stopping, wake) = &*self.stopping;
                let guard = lock(stopping);
                let (guard, _) = wake
                    .wait_timeout_while(guard, self.probe_every, |stopping| !*stopping)
                    .unwrap_or_else(PoisonError::into_inner);
                if *guard {
                    return;
                }
            }
            for entry in &self.entries {
                self.probe(entry);
            }
        }
    }

    /// One probe of `entry`, and what follows from it: unhealthy, restarted with backoff,
    /// recovered.
    fn probe(&self, entry: &Entry) {
        let state = lock(&entry.status).state;
        if matches!(state, ComponentState::Paused | ComponentState::Stopped) {
            return;
        }
        let name = entry.component.name().to_owned();
        let outcome = entry.component.probe();
        let mut status = lock(&entry.status);
        status.last_check = Some(now());
        match outcome {
            Ok(detail) => {
                status.detail = detail;
                if status.state == ComponentState::Unhealthy {
                    status.state = ComponentState::Running;
                    drop(status);
                    *lock(&entry.backoff) = (Instant::now(), FIRST_BACKOFF);
                    self.engine
                        .emit("component.recovered", Some(name), json!({}));
                }
            }
            Err(problem) => {
                status.detail = problem.clone();
                status.last_error = Some(problem.clone());
                if status.state == ComponentState::Running {
                    status.state = ComponentState::Unhealthy;
                    self.engine.emit(
                        "component.unhealthy",
                        Some(name.clone()),
                        json!({ "error": problem }),
                    );
                }
                drop(status);
                self.restart_after_backoff(entry, &name);
            }
        }
    }

    fn restart_after_backoff(&self, entry: &Entry, name: &str) {
        let mut backoff = lock(&entry.backoff);
        if Instant::now() < backoff.0 {
            return;
        }
        let wait = backoff.1;
        *backoff = (Instant::now() + wait, (wait * 2).min(MAX_BACKOFF));
        drop(backoff);
        entry.component.stop();
        let started = entry.component.start();
        let restarts = {
            let mut status = lock(&entry.status);
            status.restarts += 1;
            status.restarts
        };
        match started {
            Ok(()) => {
                self.engine.emit(
                    "component.restarted",
                    Some(name.to_owned()),
                    json!({ "restarts": restarts, "next_wait_seconds": wait.as_secs() * 2 }),
                );
            }
            Err(message) => {
                lock(&entry.status).last_error = Some(message.clone());
                self.engine.emit(
                    "component.failed",
                    Some(name.to_owned()),
                    json!({ "error": message, "while": "restarting", "restarts": restarts }),
                );
            }
        }
    }

    /// Restarts since start, per component.
    pub fn restarts(&self) -> BTreeMap<String, u64> {
        self.entries
            .iter()
            .map(|entry| {
                let status = lock(&entry.status);
                (status.name.clone(), status.restarts)
            })
            .collect()
    }
}

/// `components` ordered so that each comes after its dependencies (in the given order
/// otherwise).
fn start_order(
    components: Vec<Arc<dyn Component>>,
) -> Result<Vec<Arc<dyn Component>>, ComponentError> {
    let names: Vec<String> = components.iter().map(|c| c.name().to_owned()).collect();
    for component in &components {
        for dependency in component.depends_on() {
            if !names.contains(&dependency) {
                return Err(ComponentError::MissingDependency {
                    component: component.name().to_owned(),
                    missing: dependency,
                });
            }
        }
    }
    let mut ordered: Vec<Arc<dyn Component>> = Vec::new();
    let mut left = components;
    while !left.is_empty() {
        let ready = left.iter().position(|component| {
            component
                .depends_on()
                .iter()
                .all(|dependency| ordered.iter().any(|done| done.name() == dependency))
        });
        match ready {
            Some(index) => ordered.push(left.remove(index)),
            None => {
                let circle: Vec<&str> = left.iter().map(|c| c.name()).collect();
                return Err(ComponentError::Cycle(circle.join(", ")));
            }
        }
    }
    Ok(ordered)
}

/// A component that does one thing every `interval` on its own thread (a sweep, an
/// evaluation): unhealthy when its last run failed or its thread stopped.
pub struct Periodic {
    name: String,
    description: String,
    depends_on: Vec<String>,
    interval: Duration,
    work: Arc<dyn Fn() -> Result<String, String> + Send + Sync>,
    running: Mutex<Option<PeriodicThread>>,
    last: Arc<Mutex<Option<Result<String, String>>>>,
}

struct PeriodicThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl Periodic {
    pub fn new(
        name: &str,
        description: &str,
        interval: Duration,
        depends_on: &[&str],
        work: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description: format!("{description} (every {})", human(interval)),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            interval,
            work: Arc::new(work),
            running: Mutex::new(None),
            last: Arc::new(Mutex::new(None)),
        }
    }
}

fn human(interval: Duration) -> String {
    let seconds = interval.as_secs();
    if seconds >= 3600 && seconds.is_multiple_of(3600) {
        format!("{} h", seconds / 3600)
    } else if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{} min", seconds / 60)
    } else {
        format!("{} s", interval.as_secs_f64())
    }
}

impl Component for Periodic {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn depends_on(&self) -> Vec<String> {
        self.depends_on.clone()
    }

    fn check(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("its interval is zero".to_owned());
        }
        Ok(())
    }

    fn start(&self) -> Result<(), String> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (work, last, interval) = (
            Arc::clone(&self.work),
            Arc::clone(&self.last),
            self.interval,
        );
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("mnemo-{}", self.name))
            .spawn(move || {
                loop {
                    *lock(&last) = Some(work());
                    let (stopped, wake) = &*signal;
                    let guard = lock(stopped);
                    let (guard, _) = wake
                        .wait_timeout_while(guard, interval, |stopped| !*stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                }
            })
            .map_err(|err| format!("cannot start its thread: {err}"))?;
        *running = Some(PeriodicThread { stop, thread });
        Ok(())
    }

    fn stop(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let (stopped, wake) = &*running.stop;
        *lock(stopped) = true;
        wake.notify_all();
        let _ = running.thread.join();
    }

    fn probe(&self) -> Result<String, String> {
        match lock(&self.running).as_ref() {
            None => return Err("not running".to_owned()),
            Some(running) if running.thread.is_finished() => {
                return Err("its thread stopped".to_owned());
            }
            Some(_) => {}
        }
        lock(&self.last)
            .clone()
            .unwrap_or_else(|| Ok("starting".to_owned()))
    }
}

/// A component whose life is the process's (the store, the model): nothing to start or stop,
/// a probe that says whether it works.
pub struct Probed {
    name: String,
    description: String,
    depends_on: Vec<String>,
    probe: Box<dyn Fn() -> Result<String, String> + Send + Sync>,
}

impl Probed {
    pub fn new(
        name: &str,
        description: String,
        depends_on: &[&str],
        probe: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.to_owned(),
            description,
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            probe: Box::new(probe),
        }
    }
}

impl Component for Probed {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn depends_on(&self) -> Vec<String> {
        self.depends_on.clone()
    }

    fn start(&self) -> Result<(), String> {
        // Started means it answers: a store that is down at start is said at once.
        (self.probe)().map(drop)
    }

    fn stop(&self) {}

    fn probe(&self) -> Result<String, String> {
        (self.probe)()
    }
}
