//! `mnemo serve` as clients meet it: the real binary on a free loopback port, the real model
//! and store, a real HTTP client.
//!
//! Two settings serve `scripts/compare-behaviour.sh --rest`, which runs these tests against
//! two builds and compares their answers: `MNEMO_BIN` runs another mnemo binary than this
//! build's, and `MNEMO_RECORD_ANSWERS=FILE` appends every answer `call` gets to FILE (what
//! differs from run to run blanked: times, durations, ports, temporary paths, snapshot names).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// This build's mnemo, or the one `MNEMO_BIN` names.
fn mnemo_bin() -> std::path::PathBuf {
    std::env::var_os("MNEMO_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mnemo").into())
}

/// Appends one answer to `MNEMO_RECORD_ANSWERS`, if set.
fn record(method: &reqwest::Method, url: &str, status: StatusCode, body: &Value) {
    let Some(file) = std::env::var_os("MNEMO_RECORD_ANSWERS") else {
        return;
    };
    let path = url.find("/api/").or_else(|| {
        url.rfind(":")
            .and_then(|colon| url[colon..].find('/').map(|slash| colon + slash))
    });
    let path = path.map_or(url, |start| &url[start..]);
    let line = format!(
        "{method} {} {status} {}\n",
        blank_volatile(path),
        blank_volatile(&steady(body).to_string())
    );
    use std::io::Write;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("the answers file opens");
    out.write_all(line.as_bytes())
        .expect("the answer is recorded");
}

/// `body` with the values that differ between two runs of the same build blanked.
fn steady(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let volatile = key.ends_with("_seconds")
                        || key.ends_with("_at")
                        || ["created", "checksum", "size", "name"].contains(&key.as_str())
                            && value.is_string() | value.is_number();
                    let value = if volatile {
                        Value::from("<varies>")
                    } else {
                        steady(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(steady).collect()),
        other => other.clone(),
    }
}

/// Temporary folders, snapshot names and the times they hold, in a text, blanked.
fn blank_volatile(text: &str) -> String {
    let text = blank_times(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/.tmp") {
        out.push_str(&rest[..start]);
        out.push_str("/<tmp>");
        let tail = &rest[start + 5..];
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    match out.find("/snapshots/") {
        Some(at) if !out[at + 11..].starts_with('<') => {
            let name_end = out[at + 11..]
                .find(['/', ' ', '"'])
                .map_or(out.len(), |end| at + 11 + end);
            format!("{}<snapshot>{}", &out[..at + 11], &out[name_end..])
        }
        _ => out,
    }
}

/// Each `YYYYMMDDTHHMMSS.mmmZ` (a snapshot name's time) replaced by `<time>`.
fn blank_times(text: &str) -> String {
    let shape = "00000000T000000.000Z";
    let fits = |window: &[u8]| {
        window.len() == shape.len()
            && window.iter().zip(shape.bytes()).all(|(&byte, expected)| {
                if expected == b'0' {
                    byte.is_ascii_digit()
                } else {
                    byte == expected
                }
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut copied = 0;
    while at + shape.len() <= bytes.len() {
        if fits(&bytes[at..at + shape.len()]) {
            out.push_str(&text[copied..at]);
            out.push_str("<time>");
            at += shape.len();
            copied = at;
        } else {
            at += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

struct Server {
    child: Child,
    base: String,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(mnemo_bin())
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
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
        Server {
            child,
            base,
            stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, value) = call_unrecorded(client, method.clone(), url, key, body);
    record(&method, url, status, &value);
    (status, value)
}

/// `call` for answers whose number varies between runs (a job polled until it ends).
fn call_unrecorded(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("the server answers");
    let status = response.status();
    let text = response.text().expect("a body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[test]
fn collections_points_and_search_over_http() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    let client = Client::new();
    let at = |path: &str| server.url(path);
    let send = |method: Method, path: &str, body: Option<Value>| {
        call(&client, method, &at(path), None, body)
    };

    assert_eq!(send(Method::GET, "/health", None).0, StatusCode::OK);
    let (status, ready) = send(Method::GET, "/ready", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["dimensions"], 384);

    // A collection for the server's model, then one of our own layout.
    let (status, _) = send(Method::PUT, "/api/v1/collections/notes", None);
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(Method::PUT, "/api/v1/collections/notes", None);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "collection_exists")
    );
    let (status, _) = send(
        Method::PUT,
        "/api/v1/collections/small",
        Some(json!({"vectors": {"size": 3, "distance": "Dot"}})),
    );
    assert_eq!(status, StatusCode::CREATED);

    // Points given as text are embedded by the server.
    let (status, body) = send(
        Method::PUT,
        "/api/v1/collections/notes/points",
        Some(json!({"points": [
            {"id": 1, "text": "Ajouter un cache LRU aux requêtes", "payload": {"status": "open"}},
            {"id": 2, "text": "Écrire la documentation de l'API", "payload": {"status": "done"}},
            {"id": "6f1c1b2e-5a3d-4c1e-9f00-000000000003", "text": "Mesurer la latence du cache", "payload": {"status": "open"}}
        ]})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["written"].as_u64(), body["embedded"].as_u64()),
        (Some(3), Some(3))
    );

    // A bad point refuses its batch, and names it.
    let (status, body) = send(
        Method::PUT,
        "/api/v1/collections/notes/points",
        Some(json!({"points": [
            {"id": 4, "text": "fine"},
            {"id": 5, "vector": [0.1, 0.2]}
        ]})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("point 1 (id 5)"),
        "{body}"
    );
    let (_, count) = send(Method::POST, "/api/v1/collections/notes/points/count", None);
    assert_eq!(
        count["count"], 3,
        "nothing of the refused batch was written"
    );

    let (status, found) = send(
        Method::POST,
        "/api/v1/collections/notes/search",
        Some(
            json!({"text": "mise en cache", "limit": 2, "filter": {"must": [{"key": "status", "match": {"value": "open"}}]}}),
        ),
    );
    assert_eq!(status, StatusCode::OK, "{found}");
    let hits = found["result"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h["payload"]["status"] == "open"));
    assert!(hits[0]["score"].as_f64().unwrap() >= hits[1]["score"].as_f64().unwrap());

    // Filters nested past what is read: refused as unprocessable, the limit named, whether
    // the JSON reader's depth (128) or the filter's (64) stops them.
    for (depth, limit) in [(200, "128 levels"), (70, "at most 64")] {
        let mut filter = json!({"must": [{"key": "status", "match": {"value": "open"}}]});
        for _ in 0..depth {
            filter = json!({"must": [filter]});
        }
        let (status, refused) = send(
            Method::POST,
            "/api/v1/collections/notes/search",
            Some(json!({"text": "mise en cache", "filter": filter})),
        );
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(limit), "depth {depth}: {message}");
    }

    // The same text through /v1/embeddings, then searched by vector: the same first hit.
    let (status, embedded) = send(
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": ["mise en cache"], "model": "all-MiniLM-L6-v2"})),
    );
    assert_eq!(status, StatusCode::OK, "{embedded}");
    let vector = embedded["data"][0]["embedding"].clone();
    assert_eq!(vector.as_array().unwrap().len(), 384);
    assert!(embedded["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let (_, by_vector) = send(
        Method::POST,
        "/api/v1/collections/notes/search",
        Some(json!({"vector": vector, "limit": 1, "with_vector": true})),
    );
    assert_eq!(by_vector["result"][0]["id"], hits[0]["id"]);
    assert_eq!(
        by_vector["result"][0]["vector"][""]
            .as_array()
            .unwrap()
            .len(),
        384
    );

    let (status, batch) = send(
        Method::POST,
        "/api/v1/collections/notes/search/batch",
        Some(
            json!({"searches": [{"text": "documentation", "limit": 1}, {"text": "latence", "limit": 1}]}),
        ),
    );
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch["results"][0][0]["id"], 2);
    assert_eq!(
        batch["results"][1][0]["id"],
        "6f1c1b2e-5a3d-4c1e-9f00-000000000003"
    );

    let (_, got) = send(
        Method::POST,
        "/api/v1/collections/notes/points/get",
        Some(json!({"ids": [2, 99]})),
    );
    assert_eq!(got["points"].as_array().unwrap().len(), 1);
    let (_, page) = send(
        Method::POST,
        "/api/v1/collections/notes/points/scroll",
        Some(json!({"limit": 2})),
    );
    assert_eq!(page["points"].as_array().unwrap().len(), 2);
    assert!(!page["next_offset"].is_null());

    let (status, _) = send(
        Method::POST,
        "/api/v1/collections/notes/points/delete",
        Some(json!({"filter": {"must": [{"key": "status", "match": {"value": "done"}}]}})),
    );
    assert_eq!(status, StatusCode::OK);
    let (_, count) = send(Method::POST, "/api/v1/collections/notes/points/count", None);
    assert_eq!(count["count"], 2);

    // Client mistakes: JSON errors with stable codes, never a 5xx.
    let (status, body) = call(
        &client,
        Method::POST,
        &at("/api/v1/collections/notes/search"),
        None,
        Some(json!({"vector": "nope"})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, body) = send(
        Method::POST,
        "/api/v1/collections/missing/search",
        Some(json!({"text": "x"})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "collection_not_found")
    );
    let (status, body) = send(
        Method::POST,
        "/api/v1/collections/notes/search",
        Some(json!({"text": "x", "limit": 0})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable")
    );
    let (status, body) = send(Method::GET, "/api/v1/nowhere", None);
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = send(Method::DELETE, "/api/v1/collections/notes/search", None);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, body) = send(
        Method::POST,
        "/v1/embeddings",
        Some(json!({"input": "x", "model": "text-embedding-3-small"})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "model_not_found")
    );

    let (status, _) = send(Method::DELETE, "/api/v1/collections/small", None);
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = send(Method::GET, "/api/v1/collections", None);
    assert_eq!(
        listed["collections"],
        json!([{"name": "notes", "points": 2}])
    );

    // SIGTERM: a clean stop that flushes the store.
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut server.stdout, &mut rest).unwrap();
    assert!(rest.contains("stopped; the store is flushed"), "{rest}");
}

fn key_lines(name: &str, secret: &str, scopes: &str, collections: Option<&str>) -> String {
    let hash = format!("blake3:{}", blake3::hash(secret.as_bytes()).to_hex());
    let mut lines =
        format!("[[keys]]\nname = \"{name}\"\nhash = \"{hash}\"\nscopes = [{scopes}]\n");
    if let Some(collections) = collections {
        lines.push_str(&format!("collections = [{collections}]\n"));
    }
    lines
}

#[test]
fn keys_scopes_and_limits() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!(
            "body_limit_bytes = 4096\nmax_batch = 4\n[rate_limit]\nper_second = 0.2\nburst = 30\n{}{}{}",
            key_lines("admin", "admin-secret", "\"admin\"", None),
            key_lines("reader", "reader-secret", "\"read\"", Some("\"notes\"")),
            key_lines("writer", "writer-secret", "\"read\", \"write\"", None),
        ),
    )
    .unwrap();
    let store = data.path().join("store");
    let server = Server::start(&store, &["--config", config.to_str().unwrap()]);
    let client = Client::new();
    let at = |path: &str| server.url(path);

    let (status, body) = call(&client, Method::GET, &at("/api/v1/collections"), None, None);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = call(
        &client,
        Method::GET,
        &at("/api/v1/collections"),
        Some("guess"),
        None,
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(
        call(&client, Method::GET, &at("/health"), None, None).0,
        StatusCode::OK
    );

    let admin = Some("admin-secret");
    for name in ["notes", "private"] {
        let (status, body) = call(
            &client,
            Method::PUT,
            &at(&format!("/api/v1/collections/{name}")),
            admin,
            None,
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The `api-key` header works as Qdrant's does.
    let listed = client
        .get(at("/api/v1/collections"))
        .header("api-key", "reader-secret")
        .send()
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().unwrap();
    assert_eq!(
        listed["collections"],
        json!([{"name": "notes", "points": 0}]),
        "a key sees only its collections"
    );

    let reader = Some("reader-secret");
    let points = json!({"points": [{"id": 1, "text": "bonjour"}]});
    let (status, body) = call(
        &client,
        Method::PUT,
        &at("/api/v1/collections/notes/points"),
        reader,
        Some(points.clone()),
    );
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = call(
        &client,
        Method::POST,
        &at("/api/v1/collections/private/points/count"),
        reader,
        None,
    );
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let writer = Some("writer-secret");
    let (status, body) = call(
        &client,
        Method::PUT,
        &at("/api/v1/collections/notes/points"),
        writer,
        Some(points),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &client,
        Method::DELETE,
        &at("/api/v1/collections/notes"),
        writer,
        None,
    );
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    // Limits: batch size, body size.
    let many: Vec<Value> = (0..5).map(|i| json!({"id": i, "text": "x"})).collect();
    let (status, body) = call(
        &client,
        Method::PUT,
        &at("/api/v1/collections/notes/points"),
        writer,
        Some(json!({ "points": many })),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large")
    );
    let big = json!({"points": [{"id": 1, "text": "x".repeat(5000)}]});
    let (status, body) = call(
        &client,
        Method::PUT,
        &at("/api/v1/collections/notes/points"),
        writer,
        Some(big),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    // The reader's bucket runs dry: 429 with Retry-After; the admin's is untouched.
    let mut limited = None;
    for _ in 0..40 {
        let response = client
            .post(at("/api/v1/collections/notes/points/count"))
            .bearer_auth("reader-secret")
            .send()
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the rate limit answers 429 within 40 requests");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().unwrap();
    assert_eq!(code(&body), "rate_limited");
    let (status, _) = call(
        &client,
        Method::GET,
        &at("/api/v1/collections"),
        admin,
        None,
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_public_address_without_keys_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(mnemo_bin())
        .args(["serve", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env_remove("MNEMO_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without API keys"),
        "{stderr}"
    );
}

/// Waits for an index job to finish, and returns its last state.
fn finished_job(client: &Client, url: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let (status, job) = call_unrecorded(client, reqwest::Method::GET, url, None, None);
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            record(&reqwest::Method::GET, url, status, &job);
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not finish: {job}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn index_jobs_task_listing_metrics_and_the_api_description() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let plans = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans");
    let plans = plans.canonicalize().unwrap();
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!("index_roots = [{:?}]\n", plans.display().to_string()),
    )
    .unwrap();
    let server = Server::start(
        &data.path().join("store"),
        &["--config", config.to_str().unwrap()],
    );
    let client = Client::new();
    let at = |path: &str| server.url(path);
    let send = |method: Method, path: &str, body: Option<Value>| {
        call(&client, method, &at(path), None, body)
    };

    // Outside the roots: refused whether the path exists or not; inside but missing: 422.
    for outside in ["/etc", "../../../../etc", "/no/such/folder"] {
        let (status, body) = send(
            Method::POST,
            "/api/v1/index",
            Some(json!({"paths": [outside]})),
        );
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{outside}"
        );
    }
    let (status, body) = send(
        Method::POST,
        "/api/v1/index",
        Some(json!({"paths": ["missing.md"]})),
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
        "{body}"
    );

    let response = client
        .post(at("/api/v1/index"))
        .json(&json!({"paths": ["."], "tasks_only": true}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = response.json().unwrap();
    assert_eq!(location, format!("/api/v1/jobs/{}", job["id"]));
    let job = finished_job(&client, &at(&location));
    assert_eq!(job["state"], "succeeded", "{job}");
    let indexed = job["summary"]["tasks"].as_u64().unwrap();
    assert!(indexed >= 10, "{job}");
    assert_eq!(job["files_done"], job["files_total"]);
    let (status, jobs) = send(Method::GET, "/api/v1/jobs", None);
    assert_eq!(
        (status, jobs["jobs"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, body) = send(Method::GET, "/api/v1/jobs/77", None);
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // Listing: pages of 3 open tasks cover every open task once.
    let (_, open) = send(
        Method::POST,
        "/api/v1/collections/tasks/points/count",
        Some(json!({"filter": {"must": [{"key": "status", "match": {"value": "open"}}]}})),
    );
    let open = open["count"].as_u64().unwrap();
    assert!(open > 3, "{open}");
    let mut seen = std::collections::BTreeSet::new();
    let mut offset = String::new();
    loop {
        let (status, page) = send(
            Method::GET,
            &format!("/api/v1/tasks?status=open&limit=3&offset={offset}"),
            None,
        );
        assert_eq!(status, StatusCode::OK, "{page}");
        let tasks = page["tasks"].as_array().unwrap();
        assert!(tasks.len() <= 3);
        for task in tasks {
            assert_eq!(task["status"], "open", "{task}");
            assert!(task.get("file_key").is_none(), "bookkeeping leaked: {task}");
            assert!(seen.insert(task["point_id"].as_str().unwrap().to_owned()));
        }
        match page["next_offset"].as_str() {
            Some(next) => offset = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, open);
    let (status, page) = send(
        Method::GET,
        "/api/v1/tasks?file=**/roadmap-notes.md&limit=100",
        None,
    );
    assert_eq!(status, StatusCode::OK);
    let from_notes = page["tasks"].as_array().unwrap();
    assert!(!from_notes.is_empty() && (from_notes.len() as u64) < indexed);
    assert!(
        from_notes
            .iter()
            .all(|task| task["file"].as_str().unwrap().ends_with("roadmap-notes.md"))
    );
    for (query, expected) in [
        ("status=someday", "unprocessable"),
        ("limit=0", "unprocessable"),
        ("filter=priority%20%3C%3D", "unprocessable"),
        ("colour=blue", "invalid_request"),
    ] {
        let (status, body) = send(Method::GET, &format!("/api/v1/tasks?{query}"), None);
        assert!(status.is_client_error(), "{query}: {status}");
        assert_eq!(code(&body), expected, "{query}: {body}");
    }

    // Metrics count what was just asked.
    let response = client.get(at("/metrics")).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = response.text().unwrap();
    for line in [
        "mnemo_http_requests_total{method=\"POST\",route=\"/api/v1/index\",status=\"202\"} 1",
        "mnemo_http_requests_total{method=\"POST\",route=\"/api/v1/index\",status=\"403\"} 3",
        &format!("mnemo_collection_points{{collection=\"tasks\"}} {indexed}"),
        "mnemo_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/tasks\"",
        "mnemo_process_resident_memory_bytes ",
        "mnemo_query_cache{counter=\"hits\"}",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }

    // The description and its page need no key and are served by the binary itself.
    let (status, document) = send(Method::GET, "/openapi.json", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/api/v1/tasks"]["get"].is_object());
    let response = client.get(at("/docs")).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().unwrap();
    assert!(
        page.contains("openapi.json") && !page.contains("https://"),
        "the page fetches nothing from elsewhere"
    );
}

fn mnemo(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(mnemo_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("MNEMO_API_KEY")
        .output()
        .expect("mnemo runs")
}

fn ids_of(output: &std::process::Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let hit: Value = serde_json::from_str(line).expect("JSON lines");
            hit["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

#[test]
fn the_cli_asks_the_server_that_holds_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let store = data.path().join("store");
    let plans = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plans")
        .canonicalize()
        .unwrap();
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!("index_roots = [{:?}]\n", plans.display().to_string()),
    )
    .unwrap();
    let mut server = Server::start(&store, &["--config", config.to_str().unwrap()]);
    let plans_arg = plans.to_str().unwrap();

    let indexed = mnemo(&["index", plans_arg, "--tasks-only", "--json"], &store);
    assert!(
        indexed.status.success(),
        "{}",
        String::from_utf8_lossy(&indexed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&indexed.stderr)
            .contains("held by mnemo serve at http://127.0.0.1:")
    );
    let summary: Value = serde_json::from_slice(&indexed.stdout).unwrap();
    assert!(summary["tasks"].as_u64().unwrap() >= 10, "{summary}");

    let query = [
        "search",
        "mettre en cache les réponses",
        "--mode",
        "hybrid",
        "--limit",
        "5",
        "--json",
    ];
    let through_server = ids_of(&mnemo(&query, &store));
    assert_eq!(through_server.len(), 5);
    let similar = ids_of(&mnemo(
        &["similar", &through_server[0], "--limit", "3", "--json"],
        &store,
    ));
    assert!(!similar.contains(&through_server[0]));
    let dupes_query = ["dupes", "--threshold", "0.3", "--json"];
    let dupes = mnemo(&dupes_query, &store);
    assert!(
        dupes.status.success(),
        "{}",
        String::from_utf8_lossy(&dupes.stderr)
    );
    let dupes_through_server = String::from_utf8_lossy(&dupes.stdout).into_owned();
    assert!(!dupes_through_server.is_empty());

    // Memories too: added, searched and traced through the server that holds the directory.
    let added = mnemo(
        &[
            "memory",
            "add",
            "Deploys wait for the QA sign-off",
            "--user-id",
            "ops",
        ],
        &store,
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added: Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(added["status"], "added", "{added}");
    let id = added["id"].as_str().unwrap().to_owned();
    let found = mnemo(
        &["memory", "search", "when can we deploy", "--user-id", "ops"],
        &store,
    );
    let found: Value = serde_json::from_slice(
        String::from_utf8_lossy(&found.stdout)
            .lines()
            .next()
            .unwrap_or("null")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(found["memory"]["id"], id.as_str(), "{found}");
    let history = mnemo(&["memory", "history", &id], &store);
    assert!(String::from_utf8_lossy(&history.stdout).contains("\"added\""));
    let export = mnemo(&["memory", "export"], &store);
    assert!(!export.status.success());
    assert!(String::from_utf8_lossy(&export.stderr).contains("stop it to export"));

    // Stopped, the server leaves the directory to the CLI, which answers the same.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut server.stdout, &mut rest).unwrap();
    assert!(rest.contains("stopped; the store is flushed"), "{rest}");
    assert_eq!(ids_of(&mnemo(&query, &store)), through_server);
    let local_dupes = mnemo(&dupes_query, &store);
    assert_eq!(
        String::from_utf8_lossy(&local_dupes.stdout),
        dupes_through_server
    );
}

#[test]
fn snapshots_over_http_and_through_the_cli() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let client = Client::new();
    let send = |method: Method, path: &str, body: Option<Value>| {
        call(&client, method, &server.url(path), None, body)
    };
    let (status, _) = send(
        Method::PUT,
        "/api/v1/collections/s",
        Some(json!({"vectors": {"size": 2, "distance": "Dot"}})),
    );
    assert_eq!(status, StatusCode::CREATED);
    let points = |ids: std::ops::Range<u64>| json!({"points": ids.map(|i| json!({"id": i, "vector": [i as f32, 1.0]})).collect::<Vec<_>>()});
    send(
        Method::PUT,
        "/api/v1/collections/s/points",
        Some(points(0..10)),
    );

    let (status, created) = send(Method::POST, "/api/v1/collections/s/snapshots", None);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["points"], 10);
    assert_eq!(created["checksum"].as_str().map(str::len), Some(64));
    let name = created["name"].as_str().unwrap().to_owned();
    let (_, listed) = send(Method::GET, "/api/v1/collections/s/snapshots", None);
    assert_eq!(listed["snapshots"][0]["name"], name.as_str());
    // Downloaded whole, it is the archive its checksum names; restored from the file elsewhere.
    let response = client
        .get(server.url(&format!("/api/v1/collections/s/snapshots/{name}")))
        .send()
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let header = response.headers()["x-blake3"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let archive = response.bytes().expect("the archive");
    assert_eq!(blake3::hash(&archive).to_hex().as_str(), header);
    assert_eq!(created["checksum"].as_str(), Some(header.as_str()));
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("downloaded.snapshot");
    std::fs::write(&file, &archive).unwrap();
    let other_data = elsewhere.path().join("data");
    let restored = mnemo(
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--collection",
            "copy",
        ],
        &other_data,
    );
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(String::from_utf8_lossy(&restored.stdout).contains("10 points"));

    send(
        Method::PUT,
        "/api/v1/collections/s/points",
        Some(points(10..25)),
    );
    let count = || {
        call(
            &client,
            Method::POST,
            &server.url("/api/v1/collections/s/points/count"),
            None,
            Some(json!({})),
        )
        .1["count"]
            .as_u64()
    };
    assert_eq!(count(), Some(25));
    let (status, restored) = send(
        Method::POST,
        &format!("/api/v1/collections/s/snapshots/{name}/restore"),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(count(), Some(10));

    let (status, body) = send(
        Method::POST,
        "/api/v1/collections/s/snapshots/nope/restore",
        None,
    );
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = send(
        Method::POST,
        "/api/v1/collections/s/snapshots/..%2Fx/restore",
        None,
    );
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // The CLI finds the server holding the data directory and goes through it.
    let listed = mnemo(&["snapshot", "list", "--collection", "s"], data.path());
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&name));
    let created = mnemo(
        &["snapshot", "create", "--collection", "s", "--json"],
        data.path(),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let (status, body) = send(
        Method::DELETE,
        &format!("/api/v1/collections/s/snapshots/{name}"),
        None,
    );
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, _) = send(
        Method::DELETE,
        &format!("/api/v1/collections/s/snapshots/{name}"),
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = send(Method::GET, "/api/v1/collections/s/snapshots", None);
    assert_eq!(listed["snapshots"].as_array().map(Vec::len), Some(1));
}

/// Every route of the server's access table (the README's route table), called by keys that
/// lack its scope, by an admin key limited to another collection, and without a key: each is
/// refused as its row says, before its body is read. Then the rows whose rule the handler
/// applies: an index job into a new collection needs admin; jobs and metrics are hidden from
/// a key limited to some collections.
#[test]
fn every_route_refuses_what_its_access_row_refuses() {
    use mnemo_server::api::routes::{CollectionRule, ROUTES};
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let plans = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plans")
        .canonicalize()
        .unwrap();
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!(
            "index_roots = [{:?}]\n{}{}{}{}",
            plans.display().to_string(),
            key_lines("admin", "admin-secret", "\"admin\"", None),
            key_lines("reader", "reader-secret", "\"read\"", None),
            key_lines("writer", "writer-secret", "\"read\", \"write\"", None),
            key_lines(
                "elsewhere",
                "elsewhere-secret",
                "\"admin\"",
                Some("\"other\"")
            ),
        ),
    )
    .unwrap();
    let server = Server::start(
        &data.path().join("store"),
        &["--config", config.to_str().unwrap()],
    );
    let client = Client::new();
    let send = |method: &str, path: &str, key: Option<&str>, body: Option<Value>| {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        call_unrecorded(&client, method, &server.url(path), key, body)
    };
    let (status, _) = send(
        "PUT",
        "/api/v1/collections/notes",
        Some("admin-secret"),
        None,
    );
    assert_eq!(status, StatusCode::CREATED);

    let mut checked = 0;
    for route in ROUTES {
        let path = route
            .path
            .replace("{name}", "notes")
            .replace("{snapshot}", "none")
            .replace("{id}", "1");
        let at = format!("{} {}", route.method, route.path);
        let Some(scope) = route.scope else {
            let (status, _) = send(route.method, &path, None, None);
            assert!(status.is_success(), "{at} without a key: {status}");
            continue;
        };
        let (status, body) = send(route.method, &path, None, None);
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{at}"
        );
        let lesser: &[&str] = match scope.name() {
            "admin" => &["reader-secret", "writer-secret"],
            "write" => &["reader-secret"],
            _ => &[],
        };
        for key in lesser {
            let (status, body) = send(route.method, &path, Some(key), None);
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{at} with {key}: {body}"
            );
            assert!(
                body["error"]["message"].as_str().unwrap().contains("scope"),
                "{at}: {body}"
            );
        }
        let (status, body) = send(route.method, &path, Some("elsewhere-secret"), None);
        match route.collections {
            CollectionRule::Path
            | CollectionRule::All
            | CollectionRule::Query
            | CollectionRule::Memories => {
                assert_eq!(
                    (status, code(&body)),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{at} limited elsewhere: {body}"
                );
            }
            _ => assert_ne!(
                status,
                StatusCode::FORBIDDEN,
                "{at} limited elsewhere: {body}"
            ),
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked} routes checked");

    // Indexing creates a collection that does not exist: admin only.
    let index = |key: &str, collection: &str| {
        send(
            "POST",
            "/api/v1/index",
            Some(key),
            Some(
                json!({"paths": [plans.display().to_string()], "tasks_only": true, "collection": collection}),
            ),
        )
    };
    let (status, body) = index("writer-secret", "fresh");
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs `admin`"),
        "{body}"
    );
    let (status, job) = index("admin-secret", "fresh");
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["collections"], json!(["fresh"]));
    let job_url = format!("/api/v1/jobs/{}", job["id"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while send("GET", &job_url, Some("admin-secret"), None).1["state"] != "succeeded" {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not succeed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, body) = index("writer-secret", "fresh");
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "once it exists, writing suffices: {body}"
    );

    // Jobs of collections a key may not use do not exist for it.
    let (status, _) = send("GET", &job_url, Some("elsewhere-secret"), None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = send("GET", "/api/v1/jobs", Some("elsewhere-secret"), None);
    assert_eq!(listed["jobs"], json!([]));
    let (_, listed) = send("GET", "/api/v1/jobs", Some("reader-secret"), None);
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2));
}

/// Agents' memories over REST: added (201), the same text again unchanged (200, same id), a
/// near-duplicate written and its twin listed as similar, searched by scope, updated with
/// history, forgotten one and by scope; the records survive a restart, and the vectors agree.
#[test]
fn memories_over_http() {
    memories_over_http_with(&[]);
}

/// The same, the records on a real PostgreSQL server (`--db postgres://...`).
#[test]
fn memories_over_http_on_postgres() {
    let Some(postgres) = mnemo_testkit::Postgres::start() else {
        return;
    };
    memories_over_http_with(&["--db", &postgres.url()]);
}

fn memories_over_http_with(extra: &[&str]) {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let store = data.path().join("store");
    let client = Client::new();
    let first_id;
    {
        let server = Server::start(&store, extra);
        let send = |method: Method, path: &str, body: Option<Value>| {
            call_unrecorded(&client, method, &server.url(path), None, body)
        };
        let (status, added) = send(
            Method::POST,
            "/api/v1/memories",
            Some(
                json!({"text": "Standup is at 10:00 on Mondays", "user_id": "alice", "metadata": {"topic": "meetings"}}),
            ),
        );
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["status"], "added");
        first_id = added["id"].as_str().unwrap().to_owned();
        let (status, again) = send(
            Method::POST,
            "/api/v1/memories",
            Some(json!({"text": "Standup is at 10:00 on Mondays", "user_id": "alice"})),
        );
        assert_eq!(
            (status, again["status"].as_str()),
            (StatusCode::OK, Some("unchanged"))
        );
        assert_eq!(again["id"], added["id"]);
        let (status, twin) = send(
            Method::POST,
            "/api/v1/memories",
            Some(json!({"text": "Standup is at 11:00 on Mondays", "user_id": "alice"})),
        );
        assert_eq!(status, StatusCode::CREATED, "{twin}");
        assert_eq!(twin["similar"][0]["id"], added["id"], "{twin}");
        let (status, refused) = send(
            Method::POST,
            "/api/v1/memories",
            Some(json!({"text": "nobody's"})),
        );
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            "{refused}"
        );
        let (status, found) = send(
            Method::POST,
            "/api/v1/memories/search",
            Some(
                json!({"query": "when is the standup", "user_id": "alice", "agent_id": "planner", "filter": {"must": [{"key": "topic", "match": {"value": "meetings"}}]}}),
            ),
        );
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["result"].as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found["result"][0]["memory"]["id"], added["id"]);
        let (_, bobs) = send(
            Method::POST,
            "/api/v1/memories/search",
            Some(json!({"query": "when is the standup", "user_id": "bob"})),
        );
        assert_eq!(bobs["result"], json!([]), "alice's memories are not bob's");
        let (status, updated) = send(
            Method::PUT,
            &format!("/api/v1/memories/{first_id}"),
            Some(json!({"text": "Standup is at 09:30 on Mondays"})),
        );
        assert_eq!(status, StatusCode::OK, "{updated}");
        let (status, missing) = send(Method::GET, "/api/v1/memories/not-an-id", None);
        assert_eq!(
            (status, code(&missing)),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    // Restarted on the same data directory: the records, their history and vectors are there.
    let server = Server::start(&store, extra);
    let send = |method: Method, path: &str, body: Option<Value>| {
        call_unrecorded(&client, method, &server.url(path), None, body)
    };
    let (status, memory) = send(Method::GET, &format!("/api/v1/memories/{first_id}"), None);
    assert_eq!(status, StatusCode::OK, "{memory}");
    assert_eq!(memory["text"], "Standup is at 09:30 on Mondays");
    let (_, found) = send(
        Method::POST,
        "/api/v1/memories/search",
        Some(json!({"query": "standup time", "user_id": "alice"})),
    );
    assert_eq!(found["result"].as_array().map(Vec::len), Some(2), "{found}");
    let (status, deleted) = send(
        Method::POST,
        "/api/v1/memories/delete",
        Some(json!({"user_id": "alice"})),
    );
    assert_eq!(
        (status, deleted["deleted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{deleted}"
    );
    let (_, history) = send(
        Method::GET,
        &format!("/api/v1/memories/{first_id}/history"),
        None,
    );
    let changes: Vec<&str> = history["history"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["change"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(changes, ["added", "updated", "deleted"], "{history}");
    assert_eq!(
        history["history"][1]["before"]["text"],
        "Standup is at 10:00 on Mondays"
    );
}

/// Index jobs run one at a time from a bounded queue: a queued job cancelled never starts, a
/// running one stops between two chunks of files, and a full queue answers 503 with
/// `Retry-After`.
#[test]
fn index_jobs_queue_and_cancel() {
    let data = tempfile::tempdir().unwrap();
    let plans = data.path().join("plans");
    std::fs::create_dir(&plans).unwrap();
    common::write_plans(&plans, 240);
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        format!("index_roots = [{:?}]\n", plans.display().to_string()),
    )
    .unwrap();
    let server = Server::start(
        &data.path().join("store"),
        &["--config", config.to_str().unwrap()],
    );
    let client = Client::new();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        call_unrecorded(&client, method, &server.url(path), None, body)
    };
    let submit = || {
        send(
            reqwest::Method::POST,
            "/api/v1/index",
            Some(json!({"paths": [plans.display().to_string()], "tasks_only": true})),
        )
    };
    let (status, running) = submit();
    assert_eq!(status, StatusCode::ACCEPTED, "{running}");
    let (status, waiting) = submit();
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    let waiting_url = format!("/api/v1/jobs/{}", waiting["id"]);
    let (status, cancelled) = send(reqwest::Method::DELETE, &waiting_url, None);
    assert_eq!(
        (status, &cancelled["state"]),
        (StatusCode::OK, &json!("cancelled")),
        "{cancelled}"
    );

    // The queue holds 16: more submissions are refused with Retry-After, not piled up.
    let mut accepted = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let response = client
            .post(server.url("/api/v1/index"))
            .json(&json!({"paths": [plans.display().to_string()], "tasks_only": true}))
            .send()
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response);
            break;
        }
        let job: Value = response.json().unwrap();
        accepted.push(job["id"].clone());
    }
    let refused = refused.expect("a full queue refuses");
    assert_eq!(refused.headers()["retry-after"], "1");
    for id in &accepted {
        send(reqwest::Method::DELETE, &format!("/api/v1/jobs/{id}"), None);
    }

    // The running job stops between two chunks of files.
    let running_url = format!("/api/v1/jobs/{}", running["id"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while send(reqwest::Method::GET, &running_url, None).1["state"] == "queued" {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    send(reqwest::Method::DELETE, &running_url, None);
    let job = loop {
        let (_, job) = send(reqwest::Method::GET, &running_url, None);
        if job["state"] != "running" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("cancelled after"),
        "{job}"
    );
    assert!(job["files_done"].as_u64().unwrap() < 240, "{job}");
    let (_, never) = send(reqwest::Method::GET, &waiting_url, None);
    assert_eq!(
        (&never["state"], &never["started_at"]),
        (&json!("cancelled"), &Value::Null)
    );
}

/// With every place for work taken and no room to wait, a request is answered 503 with
/// `Retry-After` at once; the one holding the place finishes.
#[test]
fn a_server_at_its_limit_says_when_to_retry() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("mnemo.toml");
    std::fs::write(
        &config,
        "max_concurrent_requests = 1\nmax_queued_requests = 0\n",
    )
    .unwrap();
    let server = Server::start(
        &data.path().join("store"),
        &["--config", config.to_str().unwrap()],
    );
    let url = server.url("/v1/embeddings");
    let slow = json!({"model": "all-MiniLM-L6-v2", "input": (0..256).map(|i| format!("texte numéro {i} ").repeat(40)).collect::<Vec<_>>()});
    let busy = std::thread::scope(|scope| {
        // No client timeout: on a loaded machine the long request may take more than
        // reqwest's 30 s, and what is tested is the other request's refusal.
        let holder = scope.spawn(|| {
            Client::builder()
                .timeout(None)
                .build()
                .unwrap()
                .post(&url)
                .json(&slow)
                .send()
                .unwrap()
                .status()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let refused = Client::new()
            .post(&url)
            .json(&json!({"model": "all-MiniLM-L6-v2", "input": "bonjour"}))
            .send()
            .unwrap();
        let status = refused.status();
        let retry = refused.headers().get("retry-after").cloned();
        let body: Value = refused.json().unwrap();
        assert_eq!(holder.join().unwrap(), StatusCode::OK);
        (status, retry, body)
    });
    assert_eq!(busy.0, StatusCode::SERVICE_UNAVAILABLE, "{}", busy.2);
    assert_eq!(busy.1.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(code(&busy.2), "unavailable");
}
