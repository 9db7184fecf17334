//! Remote embedders against a second real `mnemo serve` (its OpenAI-compatible
//! `/v1/embeddings`): batches and concurrency, the backend's 429s waited out as its
//! `Retry-After` says, a dimension that does not match caught on the first answer, a
//! collection of the remote model, and the backend killed in the middle of a request.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

struct Server(common::Served);

impl Server {
    fn start(data: &Path, config: &Path) -> Server {
        Server(common::Served::start(
            data,
            &["--config".as_ref(), config.as_os_str()],
        ))
    }

    fn base(&self) -> &str {
        &self.0.base
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client")
            .post(self.0.url(path))
            .json(body)
            .send()
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        Client::new()
            .get(self.0.url(path))
            .send()
            .expect("answers")
            .json()
            .expect("JSON")
    }

    fn text(&self, path: &str) -> String {
        Client::new()
            .get(self.0.url(path))
            .send()
            .expect("answers")
            .text()
            .expect("text")
    }

    fn kill(&mut self) {
        self.0.kill();
    }
}

fn embeddings(answer: &Value) -> Vec<Vec<f64>> {
    answer["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| {
            item["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

fn texts(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("Tâche {i} : écrire le module numéro {i} du plan de développement"))
        .collect()
}

#[test]
fn a_remote_model_served_by_another_mnemo() {
    let dir = tempfile::tempdir().unwrap();
    // The backend: a small rate limit, so that a burst of batches meets 429s.
    let backend_config = dir.path().join("backend.toml");
    std::fs::write(&backend_config, "[rate_limit]\nper_second = 4\nburst = 2\n").unwrap();
    let mut backend = Server::start(&dir.path().join("backend"), &backend_config);

    let front_config = dir.path().join("front.toml");
    std::fs::write(
        &front_config,
        format!(
            r#"
[models.team-minilm]
provider = "openai"
url = "{base}/v1"
model = "all-MiniLM-L6-v2"
dimension = 384
batch_size = 4
max_concurrency = 3
timeout = 10
max_attempts = 8

[models.mislabelled]
provider = "openai"
url = "{base}"
model = "all-MiniLM-L6-v2"
dimension = 768
max_attempts = 2
"#,
            base = backend.base()
        ),
    )
    .unwrap();
    let front = Server::start(&dir.path().join("front"), &front_config);

    // 24 texts in batches of 4, 3 at once, against 4 requests/s: some batches are refused
    // with 429 and sent again after the backend's Retry-After; all come back, in order,
    // equal to the front's own copy of the model.
    let input = texts(24);
    let (status, remote) = front.post(
        "/v1/embeddings",
        &json!({"model": "team-minilm", "input": input}),
    );
    assert_eq!(status, 200, "{remote}");
    assert_eq!(remote["model"], "team-minilm");
    let (status, local) = front.post(
        "/v1/embeddings",
        &json!({"model": "all-MiniLM-L6-v2", "input": input}),
    );
    assert_eq!(status, 200, "{local}");
    let (remote, local) = (embeddings(&remote), embeddings(&local));
    assert_eq!(remote.len(), 24);
    for (index, (a, b)) in remote.iter().zip(&local).enumerate() {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(dot > 0.999_999, "text {index}: cosine {dot}");
    }
    // The backend's own limit applies to this read too: wait for a token.
    let mut metrics = backend.text("/metrics");
    for _ in 0..10 {
        if !metrics.contains("rate_limited") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        metrics = backend.text("/metrics");
    }
    let refused = metrics
        .lines()
        .filter(|line| {
            line.starts_with("mnemo_http_requests_total") && line.contains("status=\"429\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        refused >= 1.0,
        "the backend never said 429: the test did not test retries:\n{metrics}"
    );

    // The model is listed, and a collection of it embeds its queries there.
    let models = front.get("/v1/models");
    let listed = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "team-minilm")
        .cloned()
        .unwrap_or_else(|| panic!("not listed: {models}"));
    assert_eq!(listed["provider"], "openai");
    let client = Client::new();
    let created = client
        .put(format!("{}/api/v1/collections/shared-notes", front.base()))
        .json(&json!({"model": "team-minilm"}))
        .send()
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let info = front.get("/api/v1/collections/shared-notes");
    assert_eq!(info["model"]["model"], "team-minilm", "{info}");
    assert_eq!(info["model"]["provider"], "openai", "{info}");
    assert_eq!(info["model"]["dimension"], 384, "{info}");
    let (status, answer) = front.post(
        "/api/v1/collections/shared-notes/search",
        &json!({"text": "le module de recherche", "limit": 3}),
    );
    assert_eq!(status, 200, "{answer}");

    // A model that is not what the configuration says: caught on the first answer.
    let (status, answer) = front.post(
        "/v1/embeddings",
        &json!({"model": "mislabelled", "input": ["bonjour"]}),
    );
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("384 dimensions") && message.contains("says 768"),
        "{message}"
    );

    // The backend killed while a long request is on its way: a clear error naming it,
    // in bounded time, and the front keeps serving its own model.
    let long = texts(400);
    let started = Instant::now();
    let (status, answer) = std::thread::scope(|scope| {
        let request = scope.spawn(|| {
            front.post(
                "/v1/embeddings",
                &json!({"model": "team-minilm", "input": long}),
            )
        });
        std::thread::sleep(Duration::from_millis(400));
        backend.kill();
        request.join().expect("the request thread")
    });
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("team-minilm") && message.contains("/v1/embeddings"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    let (status, _) = front.post(
        "/v1/embeddings",
        &json!({"model": "all-MiniLM-L6-v2", "input": ["toujours là"]}),
    );
    assert_eq!(status, 200);
}
