//! `mnemo-bench soak`: a real `mnemo serve` (a child process on loopback) under mixed clients
//! for a bounded time — text and vector searches, upserts, OpenAI embeddings, index jobs, and
//! one client sending every kind of hostile input mnemo has been hardened against — then three
//! verdicts: the server's resident memory at the end within 10 % of its level after the first
//! minute (or the first tenth of a shorter run), no answer 5xx other than 503 with
//! `Retry-After`, and every acknowledged upsert read back. Exits non-zero when one fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::stats::Rng;

#[derive(Args)]
pub struct SoakArgs {
    /// How long the clients run
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// The mnemo binary to serve
    #[arg(long, default_value = "target/release/mnemo")]
    mnemo: PathBuf,
    /// Plans the index jobs read (copied into the server's index root)
    #[arg(long, default_value = "../shared/corpus")]
    corpus: PathBuf,
    /// Requests sent at most, all clients together (the run also stops there)
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Plan files copied for the index jobs: enough for real work, few enough that the first
    /// job ends early and the later ones re-index (what a watched folder costs)
    #[arg(long, default_value_t = 40)]
    plan_files: usize,
}

const DIM: usize = 384;
const COLLECTION: &str = "soak";
/// Upserts rewrite ids within this space, so that the data stops growing after the first
/// minute and memory can be judged; each write carries a version to check the last one.
const ID_SPACE: u64 = 20_000;
const WRITERS: u64 = 2;

/// What every client counts.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    by_status: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Answers 5xx that are not a 503 with `Retry-After`: one line each (the first 20).
    server_errors: Mutex<Vec<String>>,
    transport_errors: AtomicU64,
    /// Each id's last acknowledged version (ids are split between writers, so each id has
    /// one writer and its writes are in order).
    acknowledged: Mutex<BTreeMap<u64, u64>>,
    writes_acknowledged: AtomicU64,
}

impl Tally {
    fn record(&self, client: &'static str, what: &str, status: StatusCode, retry_after: bool) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((client, status.as_u16()))
            .or_default() += 1;
        let allowed = status == StatusCode::SERVICE_UNAVAILABLE && retry_after;
        if status.is_server_error() && !allowed {
            let mut errors = self
                .server_errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if errors.len() < 20 {
                errors.push(format!("{client}: {what} answered {status}"));
            } else {
                errors.push(String::new());
            }
        }
    }
}

/// What every client task holds.
#[derive(Clone)]
struct Kit {
    client: Client,
    tally: Arc<Tally>,
    texts: Arc<Vec<String>>,
    base: String,
    /// Whether the run goes on: neither stopped, nor past its time or request budget.
    running: Arc<dyn Fn() -> bool + Send + Sync>,
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(mnemo: &Path, work: &Path, corpus_root: &Path) -> anyhow::Result<Server> {
    let config = work.join("mnemo.toml");
    std::fs::write(
        &config,
        format!(
            "index_roots = [{:?}]\n[rate_limit]\nper_second = 1000000\nburst = 1000000\n",
            corpus_root.display().to_string()
        ),
    )?;
    let mut child = Command::new(mnemo)
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(work.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", mnemo.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => bail!("mnemo serve exited before listening"),
        }
    };
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(Server { child, base })
}

fn server_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn copy_corpus(from: &Path, to: &Path, at_most: usize) -> anyhow::Result<usize> {
    let mut copied = 0;
    for entry in walkdir::WalkDir::new(from)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
    {
        if copied == at_most {
            break;
        }
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "md") {
            let target = to.join(path.strip_prefix(from)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(path, &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// The task lines of the corpus, as queries.
fn queries(corpus: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(corpus)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.path().extension().is_some_and(|ext| ext == "md")
            && let Ok(text) = std::fs::read_to_string(entry.path())
        {
            lines.extend(
                text.lines()
                    .filter_map(|line| line.trim().strip_prefix("- [ ]"))
                    .map(|task| task.trim().to_owned())
                    .filter(|task| task.len() > 10),
            );
        }
    }
    if lines.is_empty() {
        lines.push("Ajouter un cache LRU pour les embeddings".into());
    }
    lines
}

fn vector(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.normal()).collect()
}

async fn send(
    client: &Client,
    tally: &Tally,
    name: &'static str,
    method: Method,
    url: String,
    body: Option<Vec<u8>>,
) -> Option<(StatusCode, Value)> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let mut request = client.request(method.clone(), &url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            tally.record(name, &format!("{method} {url}"), status, retry_after);
            let value = response.json::<Value>().await.unwrap_or(Value::Null);
            Some((status, value))
        }
        Err(_) => {
            tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Every kind of input the service was hardened against, one after another.
fn hostile_requests(base: &str) -> Vec<(Method, String, Option<Vec<u8>>)> {
    let collection = format!("{base}/api/v1/collections/{COLLECTION}");
    let deep_filter = format!("{}{}", "(".repeat(60_000), "status:open");
    let mut nested = json!({"must": [{"key": "status", "match": {"value": "open"}}]});
    for _ in 0..200 {
        nested = json!({"must": [nested]});
    }
    let method = |name: String| Method::from_bytes(name.as_bytes()).unwrap_or(Method::PATCH);
    vec![
        (method("X".repeat(8192)), format!("{base}/health"), None),
        (
            Method::GET,
            format!("{base}/api/v1/tasks?filter={}", deep_filter),
            None,
        ),
        (
            Method::POST,
            format!("{collection}/search"),
            Some(
                json!({"vector": vec![0.1; DIM], "filter": nested})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        (
            Method::POST,
            format!("{collection}/search"),
            Some(
                json!({"text": "a ".repeat(1_000_000)})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        (
            Method::POST,
            format!("{base}/v1/embeddings"),
            Some(
                json!({"model": "all-MiniLM-L6-v2", "input": "mot ".repeat(500_000)})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        (
            Method::PUT,
            format!("{collection}/points"),
            Some(vec![b'['; 40 * 1024 * 1024]),
        ),
        (
            Method::PUT,
            format!("{collection}/points"),
            Some(b"{\"points\": [{\"id\": 1, \"vector\": [NaN]}]}".to_vec()),
        ),
        (
            Method::PUT,
            format!("{collection}/points"),
            Some(
                json!({"points": [{"id": 1, "vector": [1.0, 2.0]}]})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        (
            Method::POST,
            format!("{collection}/search"),
            Some(
                json!({"vector": vec![0.1; DIM], "limit": 1_000_000_000u64})
                    .to_string()
                    .into_bytes(),
            ),
        ),
        (
            Method::POST,
            format!("{base}/api/v1/collections/nope/search"),
            Some(json!({"text": "x"}).to_string().into_bytes()),
        ),
        (
            Method::POST,
            format!("{base}/api/v1/index"),
            Some(json!({"paths": ["/etc"]}).to_string().into_bytes()),
        ),
        (
            Method::POST,
            format!("{collection}/snapshots/..%2F..%2Fetc/restore"),
            None,
        ),
        (Method::DELETE, format!("{base}/api/v1/jobs/999999"), None),
        (
            Method::POST,
            format!("{collection}/points/get"),
            Some(b"{\"ids\": [1, 2, ".to_vec()),
        ),
    ]
}

pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let corpus_root = work.path().join("plans");
    let files = copy_corpus(&args.corpus, &corpus_root, args.plan_files)
        .with_context(|| format!("cannot copy the plans of {}", args.corpus.display()))?;
    let texts = Arc::new(queries(&corpus_root));
    let server = start_server(&args.mnemo, work.path(), &corpus_root)?;
    let pid = server.child.id();
    let base = server.base.clone();
    println!(
        "mnemo-bench soak: {} s against {base} (pid {pid}); {files} plan files, {} queries; at most {} requests",
        args.seconds,
        texts.len(),
        args.max_requests
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tally = Arc::new(Tally::default());
    let outcome = runtime.block_on(soak(&args, &base, pid, &texts, &tally))?;
    drop(server);

    let statuses = tally
        .by_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    println!();
    println!("{:<10} {:>6} {:>10}", "client", "status", "answers");
    for ((client, status), count) in &statuses {
        println!("{client:<10} {status:>6} {count:>10}");
    }
    let server_errors = tally
        .server_errors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    println!(
        "requests {} · transport errors {} (the hostile client's oversized bodies, cut off by the server) · points written and acknowledged {} · ids {} · read back at their last acknowledged version {}",
        tally.requests.load(Ordering::Relaxed),
        tally.transport_errors.load(Ordering::Relaxed),
        tally.writes_acknowledged.load(Ordering::Relaxed),
        outcome.acknowledged,
        outcome.read_back
    );
    println!(
        "server RSS: {:.1} MiB after the settling period, {:.1} MiB at the end ({:+.1} %), peak seen {:.1} MiB",
        outcome.settled_mib,
        outcome.final_mib,
        100.0 * (outcome.final_mib / outcome.settled_mib.max(f64::MIN_POSITIVE) - 1.0),
        outcome.peak_mib
    );
    let mut failed = Vec::new();
    if outcome.final_mib > outcome.settled_mib * 1.10 {
        failed.push("resident memory grew more than 10 %".to_owned());
    }
    if !server_errors.is_empty() {
        failed.push(format!(
            "{} answers 5xx other than 503 with Retry-After: {}",
            server_errors.len(),
            server_errors
                .iter()
                .filter(|line| !line.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if outcome.read_back != outcome.acknowledged {
        failed.push(format!(
            "{} acknowledged points did not read back",
            outcome.acknowledged - outcome.read_back
        ));
    }
    if !outcome.alive {
        failed.push("the server died".into());
    }
    if failed.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        bail!("soak failed: {}", failed.join(" · "))
    }
}

struct Outcome {
    settled_mib: f64,
    final_mib: f64,
    peak_mib: f64,
    acknowledged: usize,
    read_back: usize,
    alive: bool,
}

async fn soak(
    args: &SoakArgs,
    base: &str,
    pid: u32,
    texts: &Arc<Vec<String>>,
    tally: &Arc<Tally>,
) -> anyhow::Result<Outcome> {
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let created = client
        .put(format!("{base}/api/v1/collections/{COLLECTION}"))
        .send()
        .await?;
    if !created.status().is_success() {
        bail!("creating the collection answered {}", created.status());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let max_requests = args.max_requests;
    let running: Arc<dyn Fn() -> bool + Send + Sync> = {
        let stop = Arc::clone(&stop);
        let tally = Arc::clone(tally);
        Arc::new(move || {
            !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && tally.requests.load(Ordering::Relaxed) < max_requests
        })
    };
    let kit = Kit {
        client: client.clone(),
        tally: Arc::clone(tally),
        texts: Arc::clone(texts),
        base: base.to_owned(),
        running: Arc::clone(&running),
    };

    // Searchers: text on the indexed plans, and vector on the soak collection.
    for searcher in 0..4u64 {
        let Kit {
            client,
            tally,
            texts,
            base,
            running,
        } = kit.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(100 + searcher);
            let mut i = searcher as usize * 997;
            while running() {
                i += 1;
                let body = if searcher % 2 == 0 {
                    json!({"text": texts[i % texts.len()], "limit": 10, "mode": "hybrid"})
                } else {
                    json!({"vector": vector(&mut rng), "limit": 10})
                };
                let collection = if searcher % 2 == 0 {
                    "tasks"
                } else {
                    COLLECTION
                };
                send(
                    &client,
                    &tally,
                    "search",
                    Method::POST,
                    format!("{base}/api/v1/collections/{collection}/search"),
                    Some(body.to_string().into_bytes()),
                )
                .await;
            }
        }));
    }
    // Upserters: 64 points a batch, each writer on its own ids; the last acknowledged
    // version of each id kept.
    for writer in 0..WRITERS {
        let Kit {
            client,
            tally,
            base,
            running,
            ..
        } = kit.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(200 + writer);
            let mut version = 0u64;
            let mut slot = 0u64;
            while running() {
                version += 1;
                let ids: Vec<u64> = (0..64)
                    .map(|k| ((slot + k) * WRITERS + writer) % ID_SPACE)
                    .collect();
                slot = (slot + 64) % (ID_SPACE / WRITERS);
                let points: Vec<Value> = ids
                    .iter()
                    .map(|&id| json!({"id": id, "vector": vector(&mut rng), "payload": {"version": version}}))
                    .collect();
                let answer = send(
                    &client,
                    &tally,
                    "upsert",
                    Method::PUT,
                    format!("{base}/api/v1/collections/{COLLECTION}/points"),
                    Some(json!({"points": points}).to_string().into_bytes()),
                )
                .await;
                if answer.is_some_and(|(status, _)| status.is_success()) {
                    tally.writes_acknowledged.fetch_add(64, Ordering::Relaxed);
                    let mut acknowledged = tally
                        .acknowledged
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for id in ids {
                        acknowledged.insert(id, version);
                    }
                }
            }
        }));
    }
    // OpenAI embeddings, eight texts a request.
    {
        let Kit {
            client,
            tally,
            texts,
            base,
            running,
        } = kit.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while running() {
                let input: Vec<&String> = (0..8).map(|k| &texts[(i + k) % texts.len()]).collect();
                i += 8;
                send(
                    &client,
                    &tally,
                    "embeddings",
                    Method::POST,
                    format!("{base}/v1/embeddings"),
                    Some(
                        json!({"model": "all-MiniLM-L6-v2", "input": input})
                            .to_string()
                            .into_bytes(),
                    ),
                )
                .await;
            }
        }));
    }
    // Index jobs: the plans re-indexed, then followed until done, again and again.
    {
        let Kit {
            client,
            tally,
            base,
            running,
            ..
        } = kit.clone();
        tasks.push(tokio::spawn(async move {
            while running() {
                let started = send(
                    &client,
                    &tally,
                    "index",
                    Method::POST,
                    format!("{base}/api/v1/index"),
                    Some(json!({"paths": ["."]}).to_string().into_bytes()),
                )
                .await;
                let Some((StatusCode::ACCEPTED, job)) = started else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let id = match &job["id"] {
                    Value::String(id) => id.clone(),
                    other => other.to_string(),
                };
                while running() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let state = send(
                        &client,
                        &tally,
                        "index",
                        Method::GET,
                        format!("{base}/api/v1/jobs/{id}"),
                        None,
                    )
                    .await;
                    let finished = state.is_none_or(|(_, job)| {
                        !matches!(job["state"].as_str(), Some("queued" | "running"))
                    });
                    if finished {
                        break;
                    }
                }
            }
        }));
    }
    // The hostile client.
    {
        let Kit {
            client,
            tally,
            running,
            ..
        } = kit.clone();
        let requests = hostile_requests(base);
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while running() {
                let (method, url, body) = &requests[i % requests.len()];
                i += 1;
                send(
                    &client,
                    &tally,
                    "hostile",
                    method.clone(),
                    url.clone(),
                    body.clone(),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // Memory: the level once settled (after a minute, or a tenth of a shorter run), the end.
    let settle = Duration::from_secs((args.seconds / 10).clamp(1, 60));
    let mut settled_mib = None;
    let mut peak_mib: f64 = 0.0;
    let mut last_report = Instant::now();
    let mut alive = true;
    while running() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = server_rss_mib(pid);
        if rss == 0.0 {
            alive = false;
            stop.store(true, Ordering::Relaxed);
            break;
        }
        peak_mib = peak_mib.max(rss);
        if settled_mib.is_none() && started.elapsed() >= settle {
            settled_mib = Some(rss);
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "{:>4} s: {} requests, RSS {rss:.1} MiB",
                started.elapsed().as_secs(),
                tally.requests.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let final_mib = server_rss_mib(pid);
    alive &= final_mib > 0.0;

    // Every acknowledged point, read back at its last acknowledged version (or a later one,
    // from a write whose answer was lost).
    let acknowledged: Vec<(u64, u64)> = tally
        .acknowledged
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(&id, &version)| (id, version))
        .collect();
    let mut read_back = 0;
    for chunk in acknowledged.chunks(1000) {
        let ids: Vec<u64> = chunk.iter().map(|(id, _)| *id).collect();
        let answer = client
            .post(format!("{base}/api/v1/collections/{COLLECTION}/points/get"))
            .json(&json!({"ids": ids}))
            .send()
            .await?
            .json::<Value>()
            .await?;
        let found: BTreeMap<u64, u64> = answer["points"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|point| {
                Some((point["id"].as_u64()?, point["payload"]["version"].as_u64()?))
            })
            .collect();
        read_back += chunk
            .iter()
            .filter(|(id, version)| found.get(id).is_some_and(|stored| stored >= version))
            .count();
    }
    Ok(Outcome {
        settled_mib: settled_mib.unwrap_or(final_mib),
        final_mib,
        peak_mib,
        acknowledged: acknowledged.len(),
        read_back,
        alive,
    })
}
