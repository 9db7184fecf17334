//! `mnemo-bench http`: the REST API under load on loopback beside the library doing the same
//! work in the same process and run — vector search at 100k points (QPS, p50, p99 for 1, 8
//! and 64 concurrent clients), and text search beside the embedder's own single-query rate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mnemo_embed::DEFAULT_MODEL_NAME;
use mnemo_engine::{Engine, QueryRequest};
use mnemo_server::{RateLimit, ServerConfig};
use mnemo_store::{
    CollectionConfig, Distance, EmbeddedStore, OpenOptions, Point, PointId, Vector, VectorStore,
};
use serde_json::json;

use mnemo::args::ModelArgs;

use crate::stats::{Rng, percentile_ms, thread_cpu_seconds};
use crate::workload::{Topics, search_request};

#[derive(Args)]
pub struct HttpArgs {
    /// Points in the collection searched
    #[arg(long, default_value_t = 100_000)]
    points: usize,
    /// Concurrent clients, one measurement each
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64])]
    clients: Vec<usize>,
    /// Seconds each measurement runs
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// HNSW beam width, the same for both paths
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Queries for the text search, one per line (more than the query cache's 1,024, so that
    /// every one is embedded) [default: ../shared/bench/tasks-public.txt]
    #[arg(long)]
    texts: Option<PathBuf>,
    /// Where to build the store [default: a temporary folder, removed after]
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

const COLLECTION: &str = "bench";
const DIM: usize = 384;
/// Distinct queries cycled through; text queries beyond the cache's capacity.
const QUERIES: usize = 2_000;

/// Latencies of every call made by `clients` workers in `seconds`.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
    /// CPU seconds the load generator itself used (HTTP runs), from `/proc/thread-self/stat`.
    client_cpu: Option<f64>,
}

impl Run {
    fn qps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Cores the load generator kept busy, taken from the server on the same machine.
    fn client_cores(&self) -> String {
        self.client_cpu.map_or("-".to_owned(), |cpu| {
            format!("{:.2}", cpu / self.elapsed.as_secs_f64())
        })
    }

    fn cells(&mut self) -> String {
        self.latencies.sort();
        format!(
            "{:>8.0} {:>8.3} {:>8.3}",
            self.qps(),
            percentile_ms(&self.latencies, 0.50),
            percentile_ms(&self.latencies, 0.99)
        )
    }
}

/// `clients` threads each calling `work(i)`, `i` taken from `next`, until the time is up.
fn in_process(
    clients: usize,
    seconds: f64,
    next: &AtomicUsize,
    work: impl Fn(usize) -> bool + Sync,
) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let work = &work;
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let call = Instant::now();
                        if work(i) {
                            latencies.push(call.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    collect(results, started.elapsed())
}

fn collect(results: Vec<(Vec<Duration>, usize)>, elapsed: Duration) -> Run {
    let mut run = Run {
        latencies: Vec::new(),
        elapsed,
        errors: 0,
        client_cpu: None,
    };
    for (latencies, errors) in results {
        run.latencies.extend(latencies);
        run.errors += errors;
    }
    run
}

/// `clients` concurrent requests in flight on one client thread (so the load generator takes
/// at most one core from the server), each posting `bodies[i % len]`, `i` taken from `next`,
/// until the time is up.
fn over_http(
    url: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    next: &Arc<AtomicUsize>,
    clients: usize,
    seconds: f64,
) -> Run {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(_) => return collect(Vec::new(), Duration::from_secs(1)),
    };
    let cpu_before = thread_cpu_seconds();
    let mut run = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let client = client.clone();
                let url = url.to_owned();
                let bodies = bodies.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let call = Instant::now();
                        let sent = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[i % bodies.len()].clone())
                            .send()
                            .await;
                        let ok = match sent {
                            Ok(response) if response.status().is_success() => {
                                response.bytes().await.is_ok()
                            }
                            _ => false,
                        };
                        if ok {
                            latencies.push(call.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or_default());
        }
        collect(results, started.elapsed())
    });
    run.client_cpu = thread_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    run
}

fn read_texts(args: &HttpArgs) -> anyhow::Result<Vec<String>> {
    let path = args
        .texts
        .clone()
        .unwrap_or_else(|| PathBuf::from("../shared/bench/tasks-public.txt"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the text queries {}", path.display()))?;
    let mut texts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let mut seen = std::collections::HashSet::new();
    texts.retain(|text| seen.insert(text.clone()));
    if texts.len() < 5_000 {
        anyhow::bail!(
            "{} holds {} distinct lines; 5,000 are needed so that no text query repeats",
            path.display(),
            texts.len()
        );
    }
    // The file runs in stretches (one plan's long tasks, another's short ones): shuffled, every
    // run of consecutive queries has the same mix, so the columns of a row are comparable.
    let mut rng = Rng(2026);
    for i in (1..texts.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        texts.swap(i, j);
    }
    Ok(texts)
}

pub fn run(args: HttpArgs) -> anyhow::Result<()> {
    let texts = read_texts(&args)?;
    let temporary = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().join("data"));
    let mut rng = Rng(42);
    let topics = Topics::new(DIM, &mut rng);
    eprintln!("storing {} clustered {DIM}-d vectors ...", args.points);
    let store = Arc::new(EmbeddedStore::open(&dir, OpenOptions::default())?);
    store.create_collection(COLLECTION, &CollectionConfig::single(DIM, Distance::Cosine))?;
    let mut stored = 0;
    while stored < args.points {
        let count = (args.points - stored).min(10_000);
        let points = topics
            .sample(count, &mut rng)
            .into_iter()
            .enumerate()
            .map(|(offset, vector)| {
                let n = (stored + offset) as u64;
                Point {
                    id: PointId::Num(n),
                    vectors: [(String::new(), Vector::Dense(vector))].into(),
                    payload: json!({"n": n}),
                }
            })
            .collect();
        store.upsert(COLLECTION, points)?;
        stored += count;
    }
    eprintln!("building the HNSW index ...");
    store.optimize(COLLECTION)?;
    let queries = topics.sample(QUERIES, &mut rng);
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(args.model.load(None, None)?),
        DEFAULT_MODEL_NAME,
    ));

    let config = ServerConfig {
        bind: "127.0.0.1:0".parse()?,
        rate_limit: RateLimit {
            per_second: 1e12,
            burst: 1e12,
        },
        ..ServerConfig::default()
    };
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = server.spawn(mnemo_server::serve(
        engine.clone(),
        config,
        move |listening| {
            let _ = address_tx.send(listening.url.clone());
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let address = address_rx
        .recv_timeout(Duration::from_secs(30))
        .context("the server did not start")?;
    let url = format!("{address}/api/v1/collections/{COLLECTION}/search");

    // Both paths must answer the same: same ef, same results, hence the same recall.
    let vector_bodies: Arc<Vec<Vec<u8>>> = queries
        .iter()
        .map(|query| {
            json!({"vector": query, "limit": 10, "ef": args.ef, "with_payload": false})
                .to_string()
                .into_bytes()
        })
        .collect::<Vec<_>>()
        .into();
    let checker = reqwest::blocking::Client::new();
    let mut same = 0;
    for (query, body) in queries.iter().zip(vector_bodies.iter()).take(50) {
        let local: Vec<PointId> = store
            .search(COLLECTION, search_request(query, args.ef, None))?
            .into_iter()
            .map(|hit| hit.id)
            .collect();
        let answer: serde_json::Value = checker
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()?
            .json()?;
        let remote: Vec<PointId> = answer["result"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .filter_map(|hit| serde_json::from_value(hit["id"].clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        same += usize::from(local == remote);
    }

    println!(
        "mnemo-bench http: {} points, {DIM}-d, ef {}, {} s per measurement, {} cores; the same {QUERIES} queries both ways",
        args.points,
        args.ef,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("identical top-10 over HTTP and in-process: {same}/50 queries");
    println!();
    println!("vector search");
    println!(
        "{:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>10} | {:>12}",
        "clients",
        "lib QPS",
        "p50 ms",
        "p99 ms",
        "HTTP QPS",
        "p50 ms",
        "p99 ms",
        "HTTP/lib",
        "client cores"
    );
    let mut errors = 0;
    for &clients in &args.clients {
        let next = Arc::new(AtomicUsize::new(0));
        let mut library = in_process(clients, args.seconds, &next, |i| {
            store
                .search(
                    COLLECTION,
                    search_request(&queries[i % queries.len()], args.ef, None),
                )
                .is_ok()
        });
        let mut http = over_http(&url, &vector_bodies, &next, clients, args.seconds);
        errors += library.errors + http.errors;
        println!(
            "{clients:>8} | {} | {} | {:>9.1}% | {:>12}",
            library.cells(),
            http.cells(),
            100.0 * http.qps() / library.qps().max(f64::MIN_POSITIVE),
            http.client_cores()
        );
    }

    println!();
    println!(
        "text search: {} distinct texts, each asked once over HTTP while they last (the query cache must miss)",
        texts.len()
    );
    println!(
        "one text per forward pass (what every query cost before queries were batched), then the engine's query in-process, then over HTTP"
    );
    println!(
        "{:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>10} | {:>12}",
        "clients",
        "embed/s",
        "p50 ms",
        "p99 ms",
        "lib QPS",
        "p50 ms",
        "p99 ms",
        "HTTP QPS",
        "p50 ms",
        "p99 ms",
        "HTTP/embed",
        "client cores"
    );
    let text_bodies: Arc<Vec<Vec<u8>>> = texts
        .iter()
        .map(|text| {
            json!({"text": text, "limit": 10, "with_payload": false})
                .to_string()
                .into_bytes()
        })
        .collect::<Vec<_>>()
        .into();
    // One count through every text run: no text is asked twice while texts last.
    let next_text = Arc::new(AtomicUsize::new(0));
    for &clients in &args.clients {
        // The same texts as the engine's run that follows (the embedder has no cache).
        let start = next_text.load(Ordering::Relaxed);
        let mut embedder = in_process(clients, args.seconds, &AtomicUsize::new(start), |i| {
            engine
                .embedder()
                .embed(&[texts[i % texts.len()].as_str()])
                .is_ok()
        });
        let mut library = in_process(clients, args.seconds, &next_text, |i| {
            let request = QueryRequest {
                limit: 10,
                with_payload: false,
                ..QueryRequest::text(COLLECTION, &texts[i % texts.len()])
            };
            engine.query(&request).is_ok()
        });
        let mut http = over_http(&url, &text_bodies, &next_text, clients, args.seconds);
        errors += embedder.errors + library.errors + http.errors;
        println!(
            "{clients:>8} | {} | {} | {} | {:>9.1}% | {:>12}",
            embedder.cells(),
            library.cells(),
            http.cells(),
            100.0 * http.qps() / embedder.qps().max(f64::MIN_POSITIVE),
            http.client_cores()
        );
    }
    let cache = engine.query_cache().stats();
    println!(
        "query cache during the text runs: {} hits, {} misses",
        cache.hits, cache.misses
    );
    println!("failed calls: {errors}");
    let _ = stop_tx.send(());
    server
        .block_on(serving)
        .context("the server's task")?
        .context("the server")?;
    Ok(())
}
