//! `mnemo serve` left to run on its own, as its operator meets it: the real binary, model and
//! store. The event stream read by a real SSE client across a kill -9 and a restart (every
//! event the log lists arrives once, in order), a plan saved the way editors save (a
//! temporary file renamed over it) found by search with no one asking, components listed,
//! paused and resumed, and the store's component going unhealthy when its Qdrant node dies,
//! then recovering when it is back.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, config: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .args(extra)
            .env_remove("MNEMO_API_KEY")
            .stdout(Stdio::piped())
            .spawn()
            .expect("mnemo serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Keep reading, so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        Server { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Value {
        let response = Client::new().get(self.url(path)).send().expect("answers");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().expect("JSON")
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let response = Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .expect("answers");
        let status = response.status();
        let body: Value = response.json().expect("JSON");
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// A search's hits' titles; none while the collection does not exist yet.
    fn search_titles(&self, text: &str) -> Vec<String> {
        let response = Client::new()
            .post(self.url("/api/v1/collections/tasks/search"))
            .json(&json!({"text": text, "limit": 1}))
            .send()
            .expect("answers");
        if response.status() == 404 {
            return Vec::new();
        }
        assert!(
            response.status().is_success(),
            "search: {}",
            response.status()
        );
        titles(&response.json().expect("JSON"))
    }

    fn component(&self, name: &str) -> Value {
        self.get(&format!("/api/v1/components/{name}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `url` as server-sent events on a thread, sending each event's id and JSON; the
/// channel closes when the stream ends (the server died).
fn follow(url: String, last_event_id: Option<i64>) -> Receiver<(i64, Value)> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        let client = Client::builder().timeout(None).build().expect("client");
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let Ok(response) = request.send() else {
            return;
        };
        assert_eq!(response.status(), 200);
        let (mut id, mut data) = (None, String::new());
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().parse::<i64>().ok();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            } else if line.is_empty() {
                if let Some(id) = id.take() {
                    let event: Value = serde_json::from_str(&data).expect("JSON data");
                    if sender.send((id, event)).is_err() {
                        return;
                    }
                }
                data.clear();
            }
        }
    });
    receiver
}

/// Events from `stream` until one matches `wanted`, within `within`.
fn until(
    stream: &Receiver<(i64, Value)>,
    seen: &mut Vec<(i64, Value)>,
    within: Duration,
    wanted: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (id, event) = stream
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the awaited event did not come; seen {seen:?}"));
        let matched = wanted(&event);
        seen.push((id, event));
        if matched {
            return;
        }
    }
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn titles(hits: &Value) -> Vec<String> {
    hits["result"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| hit["payload"]["title"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn events_survive_a_kill_and_the_watcher_indexes_an_atomic_save() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plans = dir.path().join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    std::fs::write(
        plans.join("roadmap.md"),
        "# Feuille de route\n\n## Phase 1\n\n- [x] Écrire le lecteur de plans\n- [ ] Mesurer la recherche\n",
    )
    .unwrap();
    let config = dir.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!(
            "index_roots = [{:?}]\nwatch = [\"plans\"]\nprobe_interval_secs = 1\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();

    let server = Server::start(&data, &config, &[]);
    let components: Vec<String> = server.get("/api/v1/components")["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    for wanted in [
        "store",
        "embedder",
        "records",
        "index-jobs",
        "memory-expiry",
        "event-retention",
        "watcher",
        "mcp",
    ] {
        assert!(
            components.iter().any(|c| c == wanted),
            "{wanted} in {components:?}"
        );
    }
    // Dependencies first.
    let position = |name: &str| components.iter().position(|c| c == name).unwrap();
    assert!(position("store") < position("watcher"));
    assert!(position("index-jobs") < position("watcher"));
    assert_eq!(server.component("watcher")["state"], "running");

    let mut seen = Vec::new();
    let stream = follow(server.url("/api/v1/events/stream?after=0"), None);
    // On start, the watcher brings the index up to date with what changed while it was away.
    until(&stream, &mut seen, Duration::from_secs(60), |e| {
        e["type"] == "job.finished"
    });
    assert!(
        server
            .search_titles("lecteur de plans")
            .first()
            .is_some_and(|t| t.contains("lecteur"))
    );

    // An editor's atomic save: the new text in a temporary file, renamed over the plan.
    let saved = Instant::now();
    let temporary = plans.join(".roadmap.md.swp");
    std::fs::write(
        &temporary,
        "# Feuille de route\n\n## Phase 1\n\n- [x] Écrire le lecteur de plans\n- [ ] Mesurer la recherche\n- [ ] Calibrer le détecteur de zorglubs quantiques\n",
    )
    .unwrap();
    std::fs::rename(&temporary, plans.join("roadmap.md")).unwrap();
    wait_for(
        "the saved task to be found",
        Duration::from_secs(60),
        || {
            let hits = server.post(
                "/api/v1/collections/tasks/search",
                json!({"text": "détecteur de zorglubs", "limit": 1}),
            );
            titles(&hits)
                .first()
                .is_some_and(|t| t.contains("zorglubs"))
        },
    );
    eprintln!(
        "an atomic save was found by search {:?} after the rename",
        saved.elapsed()
    );
    until(&stream, &mut seen, Duration::from_secs(30), |e| {
        e["type"] == "job.finished"
    });
    assert!(seen.iter().any(|(_, e)| e["type"] == "files.changed"));
    assert!(seen.iter().any(|(_, e)| e["type"] == "collection.created"));

    server.post(
        "/api/v1/memories",
        json!({"text": "Alice prefers French plans", "user_id": "alice"}),
    );
    until(&stream, &mut seen, Duration::from_secs(30), |e| {
        e["type"] == "memory.added"
    });

    // Pause and resume a component: each an event.
    let client = Client::new();
    let paused: Value = client
        .post(server.url("/api/v1/components/watcher/actions/pause"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(paused["state"], "paused");
    let resumed: Value = client
        .post(server.url("/api/v1/components/watcher/actions/resume"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resumed["state"], "running");
    until(&stream, &mut seen, Duration::from_secs(30), |e| {
        e["type"] == "component.resumed"
    });
    let unknown = client
        .post(server.url("/api/v1/components/watcher/actions/explode"))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let config_seen = server.get("/api/v1/config");
    assert_eq!(config_seen["watch"], json!(["plans"]));

    // kill -9, then a new server on the same data: the stream resumes after the last event
    // received.
    let last_received = seen.last().unwrap().0;
    drop(server);
    let server = Server::start(&data, &config, &[]);
    let stream = follow(server.url("/api/v1/events/stream"), Some(last_received));
    server.post(
        "/api/v1/memories",
        json!({"text": "Bob reads the English ones", "user_id": "bob"}),
    );
    until(&stream, &mut seen, Duration::from_secs(30), |e| {
        e["type"] == "memory.added" && e["data"]["user_id"] == "bob"
    });
    let received: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    let listed: Vec<i64> = server.get("/api/v1/events?after=0&limit=1000")["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_i64().unwrap())
        .filter(|id| *id <= *received.last().unwrap())
        .collect();
    assert_eq!(
        received, listed,
        "every event once, in order, across the restart"
    );
    // The component events of the second start are in the log too.
    let components_started = server.get("/api/v1/events?type=component.started&limit=1000");
    assert!(components_started["events"].as_array().unwrap().len() >= 16);
    let bad = Client::new()
        .get(server.url("/api/v1/events?type=DROP%20TABLE"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 422);
}

#[test]
fn the_store_goes_unhealthy_when_its_qdrant_dies_and_recovers() {
    let Some(mut qdrant) = mnemo_testkit::Qdrant::single() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mnemo.toml");
    std::fs::write(&config, "probe_interval_secs = 1\n").unwrap();
    let location = qdrant.location();
    let server = Server::start(&dir.path().join("data"), &config, &["--store", &location]);
    assert_eq!(server.component("store")["state"], "running");

    qdrant.nodes[0].kill();
    wait_for("the store to be unhealthy", Duration::from_secs(60), || {
        server.component("store")["state"] == "unhealthy"
    });
    qdrant.nodes[0].start();
    qdrant.nodes[0].wait_ready();
    wait_for("the store to recover", Duration::from_secs(90), || {
        server.component("store")["state"] == "running"
    });
    let events = server.get("/api/v1/events?type=component&limit=1000");
    let of_store: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["subject"] == "store")
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    let unhealthy = of_store.iter().position(|t| *t == "component.unhealthy");
    let recovered = of_store.iter().position(|t| *t == "component.recovered");
    assert!(
        matches!((unhealthy, recovered), (Some(u), Some(r)) if u < r),
        "{of_store:?}"
    );
    assert!(server.component("store")["restarts"].as_u64().unwrap() >= 1);
}
