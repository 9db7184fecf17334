//! Webhooks against a real HTTP endpoint on loopback: events posted in the log's order, each
//! signed (HMAC-SHA256 of the body), retried after 503s honouring `Retry-After`, a 400 skipped
//! with a `webhook.rejected` event, a type filter, and the cursor kept across a restart of the
//! service (nothing sent twice, nothing missed while it was down).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mnemo_engine::components::Supervisor;
use mnemo_engine::webhooks::{SIGNATURE_HEADER, Webhook, signature};
use mnemo_engine::{DENSE_VECTOR, Engine, EventQuery, ServiceSettings};
use mnemo_records::SqliteRecords;
use mnemo_store::{CollectionConfig, Distance};
use serde_json::{Value, json};

const SECRET: &str = "a shared secret";

/// One request as the endpoint saw it, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
    status: u16,
    at: Instant,
}

/// An HTTP/1.1 endpoint answering 503 (with `Retry-After: 1`) to the first two requests of
/// each path, 400 to `collection.deleted` events, 200 to the rest; one request per connection.
fn endpoint() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut headers = BTreeMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let length: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut log = log.lock().unwrap();
            let text = String::from_utf8(body).unwrap();
            assert_eq!(
                headers[&SIGNATURE_HEADER.to_ascii_lowercase()],
                signature(SECRET, text.as_bytes()),
                "the signature is the HMAC of the body as sent"
            );
            let body: Value = serde_json::from_str(&text).unwrap();
            let earlier = log.iter().filter(|r: &&Received| r.path == path).count();
            let status = if earlier < 2 {
                503
            } else if body["type"] == "collection.deleted" {
                400
            } else {
                200
            };
            log.push(Received {
                path,
                headers,
                body,
                status,
                at: Instant::now(),
            });
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, received)
}

fn service(dir: &std::path::Path, url: &str) -> (Arc<Engine>, Arc<Supervisor>) {
    let records = Arc::new(SqliteRecords::open(&dir.join("memory.sqlite")).unwrap());
    let engine = Arc::new(common::engine(&dir.join("data")).with_records(records));
    let webhook = |name: &str, types: &[&str]| Webhook {
        name: name.to_owned(),
        url: format!("{url}/{name}"),
        secret: Some(SECRET.to_owned()),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        timeout: Duration::from_secs(5),
    };
    let settings = ServiceSettings {
        webhooks: vec![webhook("all", &[]), webhook("tests-only", &["test"])],
        drift_every: None,
        ..ServiceSettings::default()
    };
    let components = engine.service_components(&settings, |_| {});
    let supervisor =
        Arc::new(Supervisor::new(Arc::clone(&engine), components, Duration::from_secs(1)).unwrap());
    supervisor.start().unwrap();
    (engine, supervisor)
}

/// The bodies `path` accepted (200), in order.
fn accepted(received: &Mutex<Vec<Received>>, path: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path && r.status == 200)
        .map(|r| r.body.clone())
        .collect()
}

fn wait_for(received: &Mutex<Vec<Received>>, path: &str, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !accepted(received, path)
        .iter()
        .any(|body| body["type"] == kind)
    {
        assert!(
            Instant::now() < deadline,
            "{kind} never reached {path}: {:?}",
            received.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn types(bodies: &[Value]) -> Vec<&str> {
    bodies
        .iter()
        .map(|body| body["type"].as_str().unwrap())
        .collect()
}

#[test]
fn events_are_posted_signed_in_order_retried_and_resumed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = endpoint();
    let before = {
        let records = SqliteRecords::open(&dir.path().join("memory.sqlite")).unwrap();
        let engine = common::engine(&dir.path().join("data")).with_records(Arc::new(records));
        // Before any webhook existed: not sent (a new webhook starts at the log's end).
        engine.emit("test.before", None, json!({})).unwrap().id
    };
    let (engine, supervisor) = service(dir.path(), &url);
    // Give the webhooks their first pass, which pins their cursors at the log's end.
    std::thread::sleep(Duration::from_millis(1500));
    let one = engine.emit("test.one", None, json!({ "n": 1 })).unwrap();
    let config =
        CollectionConfig::default().with_vector(DENSE_VECTOR, engine.dim(), Distance::Cosine);
    engine.create_collection("notes", &config).unwrap();
    assert!(engine.delete_collection("notes").unwrap());
    engine.emit("test.two", None, json!({ "n": 2 })).unwrap();
    wait_for(&received, "/all", "test.two");
    wait_for(&received, "/tests-only", "test.two");

    let all = accepted(&received, "/all");
    let sent = types(&all);
    let mut expected = ["test.one", "collection.created", "drift.pinned", "test.two"].into_iter();
    let mut next = expected.next();
    for kind in &sent {
        if Some(*kind) == next {
            next = expected.next();
        }
    }
    assert_eq!(next, None, "each, in the order written: {sent:?}");
    assert!(sent.iter().all(|kind| !kind.starts_with("webhook.")));
    assert!(!types(&all).contains(&"test.before"));
    assert!(
        !types(&all).contains(&"collection.deleted"),
        "refused with 400"
    );
    let ids: Vec<i64> = all.iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in the log's order: {ids:?}"
    );
    assert!(ids[0] > before);
    // The first two tries were answered 503: the same event was sent again, once accepted.
    let log = received.lock().unwrap().clone();
    let to_all: Vec<&Received> = log.iter().filter(|r| r.path == "/all").collect();
    assert_eq!(
        (to_all[0].status, to_all[1].status, to_all[2].status),
        (503, 503, 200)
    );
    assert_eq!(to_all[0].body, to_all[2].body, "the same event, sent again");
    let waited = to_all[1].at - to_all[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured: {waited:?}"
    );
    for request in &log {
        assert_eq!(
            request.headers["x-mnemo-delivery"],
            request.body["id"].to_string()
        );
        assert_eq!(
            request.headers["x-mnemo-event"],
            request.body["type"].as_str().unwrap()
        );
        assert_eq!(request.headers["content-type"], "application/json");
    }
    let rejected = engine
        .events(&EventQuery {
            after: 0,
            types: vec!["webhook.rejected".to_owned()],
            limit: 10,
        })
        .unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].subject.as_deref(), Some("all"));
    assert_eq!(rejected[0].data["status"], 400);
    assert_eq!(
        types(&accepted(&received, "/tests-only")),
        ["test.one", "test.two"]
    );
    assert!(one.id < rejected[0].id);

    // Down: an event written meanwhile is sent after the restart; nothing is sent twice.
    supervisor.stop();
    drop(supervisor);
    engine.emit("test.three", None, json!({ "n": 3 })).unwrap();
    drop(engine);
    let (_engine, supervisor) = service(dir.path(), &url);
    wait_for(&received, "/tests-only", "test.three");
    wait_for(&received, "/all", "test.three");
    supervisor.stop();
    assert_eq!(
        types(&accepted(&received, "/tests-only")),
        ["test.one", "test.two", "test.three"]
    );
    let all = accepted(&received, "/all");
    let ids: Vec<i64> = all.iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "nothing twice: {ids:?}"
    );
}
