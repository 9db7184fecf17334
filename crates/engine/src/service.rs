//! The components of a long-running service over this engine (`mnemo serve`, `mnemo watch`),
//! built from its settings in one place so that every door that runs a service runs the same.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::alerts::AlertRules;
use crate::components::{Component, Periodic, Probed};
use crate::jobs::JobState;
use crate::watch::PlanWatcher;
use crate::{Engine, IndexOptions, IndexSummary};

/// What a service runs, beside the store and the model.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Folders (or files) re-indexed when they change; already resolved under the roots.
    pub watch: Vec<PathBuf>,
    /// Events older than this many days are removed (none: kept by age).
    pub events_keep_days: Option<u32>,
    /// At most this many events are kept (none: kept by count).
    pub events_keep_last: Option<u64>,
    /// How often components are probed.
    pub probe_every: Duration,
    /// How often expired memories are swept.
    pub memory_sweep_every: Duration,
    /// How often the drift canaries are embedded again (besides at start); none: never.
    pub drift_every: Option<Duration>,
    /// Endpoints the event log is posted to.
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// How often the alert rules are evaluated, and their thresholds.
    pub alerts_every: Duration,
    pub alert_rules: AlertRules,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            watch: Vec::new(),
            events_keep_days: Some(90),
            events_keep_last: Some(1_000_000),
            probe_every: Duration::from_secs(5),
            memory_sweep_every: Duration::from_secs(60),
            drift_every: Some(Duration::from_secs(600)),
            webhooks: Vec::new(),
            alerts_every: Duration::from_secs(15),
            alert_rules: AlertRules::default(),
        }
    }
}

impl Engine {
    /// The components of a service over this engine, as `settings` asks; `indexed` is told
    /// each index job's summary (the server counts them in its metrics).
    pub fn service_components(
        self: &Arc<Self>,
        settings: &ServiceSettings,
        indexed: impl Fn(&IndexSummary) + Send + Sync + Clone + 'static,
    ) -> Vec<Arc<dyn Component>> {
        let mut components: Vec<Arc<dyn Component>> = Vec::new();
        let engine = Arc::clone(self);
        components.push(Arc::new(Probed::new(
            "store",
            "the vector store: collections and their points".to_owned(),
            &[],
            move || {
                engine
                    .store()
                    .list_collections()
                    .map(|names| format!("{} collections", names.len()))
                    .map_err(|err| err.to_string())
            },
        )));
        let engine = Arc::clone(self);
        components.push(Arc::new(Probed::new(
            "embedder",
            format!("the model {} ({} dimensions)", self.model_id(), self.dim()),
            &[],
            move || Ok(format!("{} loaded", engine.model_id())),
        )));
        let mut with_records = false;
        if self.keeps_events() {
            with_records = true;
            let engine = Arc::clone(self);
            components.push(Arc::new(Probed::new(
                "records",
                "the relational store: memories, their history, the event log, jobs".to_owned(),
                &[],
                move || {
                    engine
                        .last_event_id()
                        .map(|id| format!("event log at id {id}"))
                        .map_err(|err| err.to_string())
                },
            )));
        }
        let engine = Arc::clone(self);
        components.push(Arc::new(Probed::new(
            "index-jobs",
            "runs index jobs one at a time".to_owned(),
            &["store", "embedder"],
            move || {
                let jobs = engine.jobs().all();
                let count = |state: JobState| jobs.iter().filter(|job| job.state == state).count();
                Ok(format!(
                    "{} running, {} queued",
                    count(JobState::Running),
                    count(JobState::Queued)
                ))
            },
        )));
        if with_records {
            let engine = Arc::clone(self);
            components.push(Arc::new(Periodic::new(
                "memory-expiry",
                "deletes expired memories",
                settings.memory_sweep_every,
                &["store", "records", "embedder"],
                move || {
                    engine
                        .sweep_expired_memories(chrono::Utc::now())
                        .map(|swept| format!("{swept} expired memories deleted at the last sweep"))
                        .map_err(|err| err.to_string())
                },
            )));
            let engine = Arc::clone(self);
            let (days, keep) = (settings.events_keep_days, settings.events_keep_last);
            let keeps = match (days, keep) {
                (Some(days), Some(keep)) => format!("{days} days, at most {keep} events"),
                (Some(days), None) => format!("{days} days"),
                (None, Some(keep)) => format!("at most {keep} events"),
                (None, None) => "everything".to_owned(),
            };
            components.push(Arc::new(Periodic::new(
                "event-retention",
                &format!("keeps {keeps} in the event log"),
                Duration::from_secs(3600),
                &["records"],
                move || {
                    engine
                        .prune_events(days, keep)
                        .map(|removed| format!("{removed} events removed at the last pass"))
                        .map_err(|err| err.to_string())
                },
            )));
            if self.query_log.keeps() {
                let engine = Arc::clone(self);
                components.push(Arc::new(Periodic::new(
                    "query-log",
                    "writes the recent queries kept for model migrations' reports",
                    Duration::from_secs(10),
                    &["records"],
                    move || {
                        engine
                            .flush_query_log()
                            .map(|written| format!("{written} collections' queries written"))
                            .map_err(|err| err.to_string())
                    },
                )));
            }
            for webhook in &settings.webhooks {
                components.push(self.webhook_component(webhook.clone()));
            }
            if let Some(every) = settings.drift_every {
                let engine = Arc::clone(self);
                components.push(Arc::new(Periodic::new(
                    "drift-canary",
                    "embeds the pinned canary texts again and compares them with their stored \
                     vectors",
                    every,
                    &["store", "records", "embedder"],
                    move || {
                        engine
                            .check_drift()
                            .map(|report| {
                                format!(
                                    "{} collections checked, largest distance {:.1e}, {} drifted",
                                    report.collections.len(),
                                    report.max_distance(),
                                    report.drifted().count()
                                )
                            })
                            .map_err(|err| err.to_string())
                    },
                )));
            }
        }
        let engine = Arc::clone(self);
        let rules = settings.alert_rules.clone();
        components.push(Arc::new(Periodic::new(
            "alerts",
            "evaluates the alert rules",
            settings.alerts_every,
            &[],
            move || {
                engine
                    .evaluate_alerts(&rules)
                    .map(|firing| format!("{} alerts firing", firing.len()))
                    .map_err(|err| err.to_string())
            },
        )));
        if !settings.watch.is_empty() {
            let options = IndexOptions {
                // The embedded store of a service optimises in the background.
                optimize: false,
                ..IndexOptions::default()
            };
            components.push(Arc::new(PlanWatcher::new(
                Arc::clone(self),
                settings.watch.clone(),
                options,
                indexed,
            )));
        }
        components
    }
}
