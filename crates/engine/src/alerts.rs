//! The built-in alert evaluator: rules over the store's health, the disk, the event log and
//! the components, evaluated every few seconds by the `alerts` component. An alert that starts
//! firing is an `alert.fired` event, one that stops an `alert.resolved`; those firing are
//! listed (`GET /api/v1/alerts`) and exported as `mnemo_alert{name,severity}`.
//!
//! The same rules, for those who run Prometheus, are in `deploy/prometheus/alerts.yml`, over
//! the metrics the server exports.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mnemo_records::EventQuery;
use serde::Serialize;
use serde_json::json;

use crate::{Engine, Result, lock};

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
    /// The p99 of the searches of the last minute above this, ...
    pub search_p99_max: Duration,
    /// ... at every evaluation for this long: `search_latency_high`.
    pub search_p99_for: Duration,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            data_dir: None,
            disk_free_min_bytes: 1 << 30,
            restarts_in_ten_minutes: 3,
            search_p99_max: Duration::from_millis(500),
            search_p99_for: Duration::from_secs(300),
        }
    }
}

/// A webhook failing this long is an alert.
const WEBHOOK_FAILING_AFTER: Duration = Duration::from_secs(600);

/// The searches of the last minute are what the latency rule looks at.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many searches in the window, the oldest are forgotten (a bound on memory: the
/// p99 of the newest 65,536 is the p99 that matters).
const MAX_LATENCY_SAMPLES: usize = 1 << 16;
/// Fewer searches than this in the window say nothing about a p99.
const MIN_LATENCY_SAMPLES: usize = 20;

/// How long the recent searches took.
#[derive(Default)]
pub(crate) struct SearchLatencies {
    samples: Mutex<VecDeque<(Instant, Duration)>>,
    /// Since when the p99 has been above the threshold at every evaluation.
    breached_since: Mutex<Option<Instant>>,
}

impl SearchLatencies {
    fn record(&self, at: Instant, took: Duration) {
        let mut samples = lock(&self.samples);
        if samples.len() == MAX_LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((at, took));
    }

    /// The p99 of the searches of the last minute before `now` and how many there were; none
    /// when too few.
    fn p99(&self, now: Instant) -> Option<(Duration, usize)> {
        let mut samples = lock(&self.samples);
        while samples
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > LATENCY_WINDOW)
        {
            samples.pop_front();
        }
        if samples.len() < MIN_LATENCY_SAMPLES {
            return None;
        }
        let mut took: Vec<Duration> = samples.iter().map(|(_, took)| *took).collect();
        let rank = (took.len() * 99).div_ceil(100) - 1;
        let (_, p99, _) = took.select_nth_unstable(rank);
        Some((*p99, samples.len()))
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
    pub(crate) searches: SearchLatencies,
    /// Webhooks whose endpoint fails: since when, and the last error.
    pub(crate) webhooks_failing: Mutex<BTreeMap<String, (Instant, String)>>,
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
    /// Runs a search, its time kept for the latency rule.
    pub(crate) fn timed_search<T>(&self, search: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = search();
        self.alerts.searches.record(started, started.elapsed());
        result
    }

    /// The p99 of the searches of the last minute, and how many there were (none when fewer
    /// than 20).
    pub fn search_p99(&self) -> Option<(Duration, usize)> {
        self.alerts.searches.p99(Instant::now())
    }

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
        let now = Instant::now();
        let mut breached_since = lock(&self.alerts.searches.breached_since);
        match self.alerts.searches.p99(now) {
            Some((p99, count)) if p99 > rules.search_p99_max => {
                let since = *breached_since.get_or_insert(now);
                if now.duration_since(since) >= rules.search_p99_for {
                    wanted.insert(
                        "search_latency_high",
                        (
                            "warning",
                            format!(
                                "p99 of the {count} searches of the last minute: {} ms \
                                 (threshold {} ms, above it for {} s)",
                                p99.as_millis(),
                                rules.search_p99_max.as_millis(),
                                now.duration_since(since).as_secs()
                            ),
                        ),
                    );
                }
            }
            _ => *breached_since = None,
        }
        drop(breached_since);
        let failing_webhooks: Vec<String> = lock(&self.alerts.webhooks_failing)
            .iter()
            .filter(|(_, (since, _))| now.duration_since(*since) >= WEBHOOK_FAILING_AFTER)
            .map(|(name, (since, error))| {
                format!(
                    "webhook `{name}` failing for {} min: {error}",
                    now.duration_since(*since).as_secs() / 60
                )
            })
            .collect();
        if !failing_webhooks.is_empty() {
            wanted.insert("webhook_failing", ("warning", failing_webhooks.join(" | ")));
        }
        if let Some(report) = self.drift_report() {
            let drifted: Vec<String> = report
                .drifted()
                .map(|check| {
                    let cause = if check.changes.is_empty() {
                        "nothing recorded changed (same model files, backend, hardware and mnemo \
                         version): the numerics differ for another reason"
                            .to_owned()
                    } else {
                        format!("changed since then: {}", check.changes.join("; "))
                    };
                    format!(
                        "collection `{}`: canary cosine distance {:.2e} (threshold {:.0e}, text \
                         \"{}\") since they were pinned at {}; {cause}",
                        check.collection,
                        check.max_distance,
                        report.threshold,
                        check.worst_text,
                        check.pinned_at
                    )
                })
                .collect();
            if !drifted.is_empty() {
                wanted.insert("embedding_drift", ("critical", drifted.join(" | ")));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_of_the_last_minute_only_and_only_with_enough_searches() {
        let latencies = SearchLatencies::default();
        let start = Instant::now();
        for i in 0..19 {
            latencies.record(start, Duration::from_millis(i));
        }
        assert_eq!(latencies.p99(start), None, "19 searches say nothing");
        // 100 searches: 98 fast, 2 slow; the p99 is the 99th, a slow one.
        for i in 0..81 {
            latencies.record(start, Duration::from_millis(if i < 79 { 5 } else { 900 }));
        }
        let (p99, count) = latencies.p99(start).unwrap();
        assert_eq!(count, 100);
        assert_eq!(p99, Duration::from_millis(900));
        // A minute and a bit later they are forgotten.
        let later = start + LATENCY_WINDOW + Duration::from_secs(1);
        assert_eq!(latencies.p99(later), None);
        assert!(lock(&latencies.samples).is_empty());
    }

    #[test]
    fn the_window_is_bounded() {
        let latencies = SearchLatencies::default();
        let now = Instant::now();
        for _ in 0..MAX_LATENCY_SAMPLES + 10 {
            latencies.record(now, Duration::from_millis(1));
        }
        assert_eq!(lock(&latencies.samples).len(), MAX_LATENCY_SAMPLES);
    }
}
