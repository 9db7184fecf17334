//! Prometheus metrics: what the server answered and how fast, what it embedded, batch sizes,
//! the query cache, points per collection and the process's memory.

use std::time::Duration;

use mnemo_engine::{Engine, IndexSummary};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Cheap to clone: every collector is shared.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    embedded_texts: IntCounter,
    embedded_tokens: IntCounter,
    batch_size: HistogramVec,
    cache: IntGaugeVec,
    points: IntGaugeVec,
    resident_bytes: IntGauge,
    /// 1 while the store can keep what it acknowledges, 0 once a sync to disk failed: the
    /// figure to alert on.
    store_durable: IntGauge,
    index_seconds: Histogram,
    component_up: IntGaugeVec,
    component_restarts: IntGaugeVec,
    alert: IntGaugeVec,
    event_write_failures: IntGauge,
    drift_distance: GaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("mnemo".into()), None).expect("a static prefix is valid");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )
        .expect("static metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response head",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("static metric");
        let embedded_texts = IntCounter::new(
            "embedded_texts_total",
            "Texts run through the model for requests and index jobs (queries: see query_cache)",
        )
        .expect("static metric");
        let embedded_tokens = IntCounter::new(
            "embedded_tokens_total",
            "Tokens of the texts embedded for /v1/embeddings and text upserts",
        )
        .expect("static metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("batch_size", "Items per batched request").buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
            &["kind"],
        )
        .expect("static metric");
        let cache = IntGaugeVec::new(
            Opts::new(
                "query_cache",
                "The query embedding cache: hits, misses (queries embedded) and entries",
            ),
            &["counter"],
        )
        .expect("static metric");
        let points = IntGaugeVec::new(
            Opts::new("collection_points", "Points per collection"),
            &["collection"],
        )
        .expect("static metric");
        let resident_bytes = IntGauge::new("process_resident_memory_bytes", "Resident set size")
            .expect("static metric");
        let store_durable = IntGauge::new(
            "store_durable",
            "1 while the store keeps what it acknowledges; 0 after a failed sync to disk (writes are then refused)",
        )
        .expect("static metric");
        let component_up = IntGaugeVec::new(
            Opts::new(
                "component_up",
                "1 while a component runs and its last probe passed",
            ),
            &["name"],
        )
        .expect("static metric");
        let component_restarts = IntGaugeVec::new(
            Opts::new(
                "component_restarts",
                "Restarts of a component since the process started",
            ),
            &["name"],
        )
        .expect("static metric");
        let alert = IntGaugeVec::new(
            Opts::new("alert", "1 for each built-in alert firing"),
            &["name", "severity"],
        )
        .expect("static metric");
        let event_write_failures = IntGauge::new(
            "event_write_failures",
            "Events that could not be written to the durable log since the process started",
        )
        .expect("static metric");
        let drift_distance = GaugeVec::new(
            Opts::new(
                "embedding_drift_distance",
                "The largest cosine distance between a collection's drift canaries as pinned and \
                 as embedded at the last check (above 1e-4: the model's vectors changed)",
            ),
            &["collection"],
        )
        .expect("static metric");
        let index_seconds = Histogram::with_opts(
            HistogramOpts::new("index_job_duration_seconds", "Indexing jobs, start to end")
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1200.0]),
        )
        .expect("static metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(embedded_texts.clone()),
            Box::new(embedded_tokens.clone()),
            Box::new(batch_size.clone()),
            Box::new(cache.clone()),
            Box::new(points.clone()),
            Box::new(resident_bytes.clone()),
            Box::new(store_durable.clone()),
            Box::new(index_seconds.clone()),
            Box::new(component_up.clone()),
            Box::new(component_restarts.clone()),
            Box::new(alert.clone()),
            Box::new(event_write_failures.clone()),
            Box::new(drift_distance.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            latency,
            embedded_texts,
            embedded_tokens,
            batch_size,
            cache,
            points,
            resident_bytes,
            store_durable,
            index_seconds,
            component_up,
            component_restarts,
            alert,
            event_write_failures,
            drift_distance,
        }
    }

    /// `route` must be a route template (or `unmatched`): labels come from closed sets, so that
    /// no client can grow the registry. The method is one HTTP defines, else `other`.
    pub fn observe_request(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_embedding(&self, texts: usize, tokens: usize) {
        self.embedded_texts.inc_by(texts as u64);
        self.embedded_tokens.inc_by(tokens as u64);
    }

    pub fn observe_batch(&self, kind: &str, size: usize) {
        self.batch_size
            .with_label_values(&[kind])
            .observe(size as f64);
    }

    pub fn observe_indexed(&self, summary: &IndexSummary) {
        self.embedded_texts.inc_by(summary.embedded as u64);
        self.index_seconds.observe(summary.total_seconds);
    }

    /// The text exposition, with the gauges read now. A collection that cannot be counted is
    /// left out rather than failing the scrape.
    pub fn render(
        &self,
        engine: &Engine,
        supervisor: Option<&mnemo_engine::components::Supervisor>,
    ) -> String {
        self.component_up.reset();
        self.component_restarts.reset();
        for status in supervisor.map(|s| s.statuses()).unwrap_or_default() {
            let up = status.state == mnemo_engine::components::ComponentState::Running;
            self.component_up
                .with_label_values(&[&status.name])
                .set(i64::from(up));
            self.component_restarts
                .with_label_values(&[&status.name])
                .set(status.restarts as i64);
        }
        self.alert.reset();
        for alert in engine.alerts() {
            self.alert
                .with_label_values(&[&alert.name, &alert.severity])
                .set(1);
        }
        self.event_write_failures
            .set(engine.event_failures() as i64);
        self.drift_distance.reset();
        for check in engine
            .drift_report()
            .map(|r| r.collections)
            .unwrap_or_default()
        {
            self.drift_distance
                .with_label_values(&[&check.collection])
                .set(check.max_distance);
        }
        let stats = engine.query_cache().stats();
        self.cache
            .with_label_values(&["hits"])
            .set(stats.hits as i64);
        self.cache
            .with_label_values(&["misses"])
            .set(stats.misses as i64);
        self.cache
            .with_label_values(&["entries"])
            .set(stats.entries as i64);
        self.points.reset();
        for name in engine.store().list_collections().unwrap_or_default() {
            if let Ok(count) = engine.store().count(&name, None) {
                self.points.with_label_values(&[&name]).set(count as i64);
            }
        }
        self.store_durable
            .set(i64::from(engine.store().health().is_ok()));
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.set(bytes as i64);
        }
        let mut out = Vec::new();
        // Encoding into memory fails only on a broken metric, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `VmRSS` of `/proc/self/status`; `None` off Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A request's method as a metric label: one of HTTP's own, or `other` for anything a client
/// invents (a made-up method of 8 KB per request would otherwise be a new series each time).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        let metrics = Metrics::new();
        for i in 0..3_000 {
            let name = format!("M{i}{}", "X".repeat(8_000));
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            metrics.observe_request("unmatched", &method, 404, Duration::from_millis(1));
        }
        metrics.observe_request("/health", &Method::GET, 200, Duration::from_millis(1));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                r#"mnemo_http_requests_total{method="other",route="unmatched",status="404"} 3000"#
            ),
            "{}",
            &text[..text.len().min(2_000)]
        );
        assert!(text.contains(r#"method="GET",route="/health""#));
        assert!(text.len() < 20_000, "{} bytes", text.len());
    }
}
