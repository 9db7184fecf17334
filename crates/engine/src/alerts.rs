//! The built-in alert evaluator: rules over the store's health, the disk, the event log and
//! the components, evaluated every few seconds by the `alerts` component. An alert that starts
//! firing is an `alert.fired` event, one that stops an `alert.resolved`; those firing are
//! listed (`GET /api/v1/alerts`) and exported as `mnemo_alert{name,severity}`.
//!
//! Rules that need a rate over time windows of request latencies (p99 of searches) are
//! Prometheus's: `deploy/prometheus/alerts.yml` holds them beside these.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mnemo_records::EventQuery;
use serde::Serialize;
use serde_json::json;

use crate::{Engine, Result};

/// The thresholds of the rules.
#[derive(Debug, Clone)]
pub struct AlertRules {
    /// The folder whose disk is watched (the data directory).
    pub data_dir: Option<PathBuf>,
    /// Below this many free bytes on that disk: `disk_free_low`.
    pub disk_free_min_bytes: u64,
    /// At least this many restarts of one component within ten minutes:
    /// `component_restarting`.
    pub restarts_in_ten_minutes: usize,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            data_dir: None,
            disk_free_min_bytes: 1 << 30,
            restarts_in_ten_minutes: 3,
        }
    }
}

/// One alert firing.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub name: String,
    /// `critical` (data at risk, or nothing works) or `warning`.
    pub severity: String,
    pub summary: String,
    /// When it started firing.
    pub since: String,
    /// The section of docs/runbook.md that says what to do.
    pub runbook: String,
}

/// The alerts firing, and what the last evaluation saw of failed event writes.
#[derive(Default)]
pub struct AlertBoard {
    firing: Mutex<BTreeMap<String, Alert>>,
    event_failures_seen: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The free bytes of the disk holding `path`.
#[cfg(unix)]
pub fn disk_free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer of the right type, read only on success.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

#[cfg(not(unix))]
pub fn disk_free_bytes(_path: &std::path::Path) -> Option<u64> {
    None
}

impl Engine {
    /// The alerts firing now, by name.
    pub fn alerts(&self) -> Vec<Alert> {
        lock(&self.alerts.firing).values().cloned().collect()
    }

    /// Evaluates every rule once; the alerts firing after it. Each change is an event.
    pub fn evaluate_alerts(&self, rules: &AlertRules) -> Result<Vec<Alert>> {
        let mut wanted: BTreeMap<&str, (&str, String)> = BTreeMap::new();
        if let Err(err) = self.store().list_collections() {
            wanted.insert(
                "store_unavailable",
                ("critical", format!("the store does not answer: {err}")),
            );
        }
        if let Err(err) = self.store().health() {
            wanted.insert("writes_failing", ("critical", err.to_string()));
        }
        let failures = self.event_failures();
        let seen = self
            .alerts
            .event_failures_seen
            .swap(failures, Ordering::Relaxed);
        if failures > seen {
            wanted.insert(
                "writes_failing",
                (
                    "critical",
                    format!(
                        "{} events could not be written since the last evaluation",
                        failures - seen
                    ),
                ),
            );
        }
        if let Some(free) = rules.data_dir.as_deref().and_then(disk_free_bytes)
            && free < rules.disk_free_min_bytes
        {
            wanted.insert(
                "disk_free_low",
                (
                    "warning",
                    format!(
                        "{} MiB free on the data directory's disk (threshold {} MiB)",
                        free >> 20,
                        rules.disk_free_min_bytes >> 20
                    ),
                ),
            );
        }
        if self.keeps_events() {
            let last = self.last_event_id()?;
            let recent = |types: &[&str]| {
                self.events(&EventQuery {
                    after: (last - 5000).max(0),
                    types: types.iter().map(|t| (*t).to_owned()).collect(),
                    limit: crate::MAX_EVENTS_PER_READ,
                })
            };
            let ended = recent(&["job.finished", "job.failed"])?;
            if let Some(failed) = ended.last().filter(|event| event.kind == "job.failed") {
                wanted.insert(
                    "index_jobs_failing",
                    (
                        "warning",
                        format!(
                            "the last index job ({}) failed: {}",
                            failed.subject.as_deref().unwrap_or("?"),
                            failed.data["error"].as_str().unwrap_or("no reason")
                        ),
                    ),
                );
            }
            let ten_minutes_ago =
                mnemo_records::timestamp(chrono::Utc::now() - chrono::Duration::minutes(10));
            let mut restarts: BTreeMap<String, usize> = BTreeMap::new();
            for event in recent(&["component.restarted", "component.failed"])? {
                if event.at >= ten_minutes_ago {
                    *restarts
                        .entry(event.subject.unwrap_or_default())
                        .or_default() += 1;
                }
            }
            let restarting: Vec<String> = restarts
                .into_iter()
                .filter(|(_, count)| *count >= rules.restarts_in_ten_minutes)
                .map(|(name, count)| format!("{name} ({count} times)"))
                .collect();
            if !restarting.is_empty() {
                wanted.insert(
                    "component_restarting",
                    (
                        "warning",
                        format!(
                            "restarted in the last ten minutes: {}",
                            restarting.join(", ")
                        ),
                    ),
                );
            }
        }
        let mut firing = lock(&self.alerts.firing);
        let resolved: Vec<String> = firing
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in resolved {
            if let Some(alert) = firing.remove(&name) {
                self.emit(
                    "alert.resolved",
                    Some(name),
                    json!({ "severity": alert.severity, "since": alert.since }),
                );
            }
        }
        for (name, (severity, summary)) in wanted {
            if firing.contains_key(name) {
                if let Some(alert) = firing.get_mut(name) {
                    alert.summary = summary;
                }
                continue;
            }
            let alert = Alert {
                name: name.to_owned(),
                severity: severity.to_owned(),
                summary,
                since: mnemo_records::timestamp(chrono::Utc::now()),
                runbook: format!("docs/runbook.md#{}", name.replace('_', "-")),
            };
            self.emit(
                "alert.fired",
                Some(name.to_owned()),
                json!({ "severity": alert.severity, "summary": alert.summary, "runbook": alert.runbook }),
            );
            firing.insert(name.to_owned(), alert);
        }
        Ok(firing.values().cloned().collect())
    }
}
