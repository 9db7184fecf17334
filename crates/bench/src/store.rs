//! `mnemo-bench store`: the store under a synthetic workload (100k clustered 384-d vectors by
//! default), beside exact search measured in the same run; with `--store`, the same workload on
//! the embedded store and each Qdrant location, side by side.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mnemo_store::{
    CollectionConfig, Condition, Distance, EmbeddedStore, FieldType, Filter, OpenOptions, Point,
    PointId, QdrantStore, Vector, VectorStore,
};
use serde_json::json;

use crate::stats::{Rng, percentile_ms, rss_kib};
use crate::workload::{Topics, exact_top, ids, recall, search_request};

#[derive(Args)]
pub struct StoreArgs {
    /// Points to store
    #[arg(long, default_value_t = 100_000)]
    points: usize,
    /// Dimensions
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Queries timed (and checked against exact search)
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// HNSW beam widths to measure at search time; QPS and filtered search use the smallest
    /// one that reaches recall@10 0.99
    #[arg(long, value_delimiter = ',', default_values_t = [16, 32, 64, 128])]
    ef: Vec<usize>,
    /// Where to build the store [default: a temporary folder, removed after]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Also run the workload on this store (repeatable): a Qdrant server or cluster,
    /// qdrant://HOST:PORT[,...][?shards=N&replication=N]; the figures are printed side by side
    /// with the embedded store's, measured in the same run
    #[arg(long = "store", value_name = "LOCATION")]
    stores: Vec<String>,
    /// Internal: open the store in DIR, search it, print this process's memory (the steady
    /// figure is measured in a fresh process, without the bench's own data)
    #[arg(long, hide = true)]
    reopen_only: Option<PathBuf>,
}

fn disk_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The reopened store in a process of its own: what a user's next process costs.
fn reopen_only(dir: &Path, dim: usize, queries: usize) -> anyhow::Result<()> {
    let store = EmbeddedStore::open(dir, OpenOptions::default())?;
    let opened_mib = rss_kib("VmRSS:") as f64 / 1024.0;
    let mut rng = Rng(42);
    let topics = Topics::new(dim, &mut rng);
    let mut rng = Rng(7);
    for query in topics.sample(queries, &mut rng) {
        store.search("bench", search_request(&query, 64, None))?;
    }
    let searched_mib = rss_kib("VmRSS:") as f64 / 1024.0;
    println!(
        "{}",
        json!({"opened_mib": opened_mib, "searched_mib": searched_mib})
    );
    Ok(())
}

/// Runs `reopen_only` in a child process; (RSS after opening, RSS after searching) in MiB.
fn steady_rss_in_fresh_process(
    dir: &Path,
    dim: usize,
    queries: usize,
) -> anyhow::Result<(f64, f64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args([
            "store",
            "--dim",
            &dim.to_string(),
            "--queries",
            &queries.to_string(),
            "--reopen-only",
        ])
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the reopening process failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| report[name].as_f64().unwrap_or(0.0);
    Ok((field("opened_mib"), field("searched_mib")))
}

/// Creates the bench collection (afresh) with its payload indexes and upserts `vectors` in
/// batches of 1000; the time spent in upserts.
fn load(store: &dyn VectorStore, dim: usize, vectors: &[Vec<f32>]) -> anyhow::Result<Duration> {
    store.delete_collection("bench")?;
    store.create_collection("bench", &CollectionConfig::single(dim, Distance::Cosine))?;
    for field in ["half", "percent"] {
        store.create_payload_index("bench", field, FieldType::Bool)?;
    }
    store.create_payload_index("bench", "group", FieldType::Integer)?;
    eprintln!("upserting ...");
    let mut upserting = Duration::ZERO;
    for (start, chunk) in (0..).step_by(1000).zip(vectors.chunks(1000)) {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(offset, v)| {
                let n = start + offset as u64;
                let payload = json!({"n": n, "half": n.is_multiple_of(2), "percent": n.is_multiple_of(100), "group": n % 50, "title": format!("point {n}")});
                Point { id: PointId::Num(n), vectors: [(String::new(), Vector::Dense(v.clone()))].into(), payload }
            })
            .collect();
        let started = Instant::now();
        store.upsert("bench", points)?;
        upserting += started.elapsed();
    }
    Ok(upserting)
}

/// All of `queries` searched by `threads` threads at once.
fn queries_per_second(
    store: &dyn VectorStore,
    queries: &[Vec<f32>],
    ef: usize,
    threads: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for query in queries.iter().skip(t).step_by(threads) {
                        store.search("bench", search_request(query, ef, None))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a search thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(queries.len() as f64 / started.elapsed().as_secs_f64())
}

/// One store's figures in the side-by-side comparison.
struct StoreFigures {
    name: String,
    points_per_second: f64,
    indexed_seconds: f64,
    indexed_vectors: usize,
    p50_ms: f64,
    p95_ms: f64,
    recall: f64,
    qps: f64,
}

/// The workload on one store: load, wait until indexed (the embedded store builds its index
/// when asked; a Qdrant server's optimizers do it by themselves), then search.
fn measure(
    name: &str,
    store: &Arc<dyn VectorStore>,
    args: &StoreArgs,
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    ef: usize,
) -> anyhow::Result<StoreFigures> {
    eprintln!("{name}:");
    let upserting = load(store.as_ref(), args.dim, vectors)?;
    eprintln!("indexing ...");
    let started = Instant::now();
    store.optimize("bench")?;
    let mut info = store.collection_info("bench")?;
    // `optimize` returns when the store's optimizers are idle; then wait until (nearly)
    // every vector is in HNSW, or until the count has not moved for a while (below its
    // indexing threshold a server leaves a collection unindexed and searches it by full scan).
    let mut last_change = Instant::now();
    let mut indexed_seconds = started.elapsed().as_secs_f64();
    while info.indexed_vectors < vectors.len() * 99 / 100
        && last_change.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(250));
        let now = store.collection_info("bench")?;
        if now.indexed_vectors != info.indexed_vectors {
            last_change = Instant::now();
            indexed_seconds = started.elapsed().as_secs_f64();
        }
        info = now;
    }
    eprintln!("searching ...");
    for query in queries.iter().take(50) {
        store.search("bench", search_request(query, ef, None))?;
    }
    let mut latencies = Vec::with_capacity(queries.len());
    let mut recall_sum = 0.0;
    for (query, truth) in queries.iter().zip(truth) {
        let started = Instant::now();
        let hits = store.search("bench", search_request(query, ef, None))?;
        latencies.push(started.elapsed());
        recall_sum += recall(&ids(&hits), truth);
    }
    latencies.sort();
    let qps = queries_per_second(store.as_ref(), queries, ef, 2)?;
    store.delete_collection("bench")?;
    Ok(StoreFigures {
        name: name.to_owned(),
        points_per_second: vectors.len() as f64 / upserting.as_secs_f64(),
        indexed_seconds,
        indexed_vectors: info.indexed_vectors,
        p50_ms: percentile_ms(&latencies, 0.5),
        p95_ms: percentile_ms(&latencies, 0.95),
        recall: recall_sum / queries.len() as f64,
        qps,
    })
}

/// The stored vectors and the queries: clustered, the same in every run.
fn workload(args: &StoreArgs) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = Rng(42);
    eprintln!(
        "generating {} clustered {}-d vectors ...",
        args.points, args.dim
    );
    let topics = Topics::new(args.dim, &mut rng);
    let vectors = topics.sample(args.points, &mut rng);
    let queries = topics.sample(args.queries, &mut rng);
    (vectors, queries)
}

/// The same workload on the embedded store and on each `--store`, printed side by side.
fn compare(args: &StoreArgs) -> anyhow::Result<()> {
    let ef = args.ef.iter().copied().max().unwrap_or(64).min(64);
    let (vectors, queries) = workload(args);
    eprintln!("exact search (recall's ground truth) ...");
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|query| exact_top(&vectors, query, |_| true))
        .collect();
    let temporary = tempfile::tempdir()?;
    let mut rows = Vec::new();
    {
        let embedded: Arc<dyn VectorStore> = Arc::new(EmbeddedStore::open(
            &temporary.path().join("data"),
            OpenOptions::default(),
        )?);
        rows.push(measure(
            "embedded", &embedded, args, &vectors, &queries, &truth, ef,
        )?);
    }
    for location in &args.stores {
        let store: Arc<dyn VectorStore> = Arc::new(
            QdrantStore::open(location, std::env::var("MNEMO_QDRANT_API_KEY").ok())
                .with_context(|| format!("cannot use the store {location}"))?,
        );
        rows.push(measure(
            location, &store, args, &vectors, &queries, &truth, ef,
        )?);
    }
    println!(
        "store bench, side by side: {} points × {} dims, clustered, cosine; {} queries, ef {ef}, 2 search threads for QPS",
        args.points, args.dim, args.queries
    );
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5);
    println!(
        "  {:<width$} {:>12} {:>14} {:>9} {:>9} {:>8} {:>10}",
        "store", "upsert pt/s", "indexed after", "p50 ms", "p95 ms", "QPS", "recall@10"
    );
    for row in &rows {
        println!(
            "  {:<width$} {:>12.0} {:>12.1} s {:>9.3} {:>9.3} {:>8.0} {:>10.4}",
            row.name,
            row.points_per_second,
            row.indexed_seconds,
            row.p50_ms,
            row.p95_ms,
            row.qps,
            row.recall
        );
    }
    for row in &rows {
        if row.indexed_vectors < args.points {
            println!(
                "  note: {} had {} of {} vectors in HNSW when searched",
                row.name, row.indexed_vectors, args.points
            );
        }
    }
    Ok(())
}

pub fn run(args: StoreArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.reopen_only {
        return reopen_only(dir, args.dim, args.queries);
    }
    if !args.stores.is_empty() {
        return compare(&args);
    }
    let temporary = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().join("data"));
    let (vectors, queries) = workload(&args);
    let rss = |when: &str| eprintln!("  RSS {when}: {} MiB", rss_kib("VmRSS:") / 1024);
    rss("with the vectors generated");

    let store = EmbeddedStore::open(&dir, OpenOptions::default())?;
    let upserting = load(&store, args.dim, &vectors)?;
    let upsert_seconds = upserting.as_secs_f64();
    rss("after upserting");
    eprintln!("building the index ...");
    let started = Instant::now();
    store.optimize("bench")?;
    let index_seconds = started.elapsed().as_secs_f64();
    rss("after indexing");
    store.flush()?;
    let peak_rss_mib = rss_kib("VmHWM:") as f64 / 1024.0;
    let info = store.collection_info("bench")?;
    drop(store);
    let disk_mib = disk_bytes(&dir) as f64 / (1024.0 * 1024.0);

    eprintln!("exact search (the baseline) ...");
    let mut exact_latencies = Vec::new();
    let mut truth = Vec::new();
    for query in &queries {
        let started = Instant::now();
        truth.push(exact_top(&vectors, query, |_| true));
        exact_latencies.push(started.elapsed());
    }
    let filter_sample = queries.len().min(200);
    let selective: [(&str, u64); 2] = [("half", 2), ("percent", 100)];
    let filtered_truth: Vec<Vec<Vec<u64>>> = selective
        .iter()
        .map(|(_, modulus)| {
            queries
                .iter()
                .take(filter_sample)
                .map(|query| exact_top(&vectors, query, |i| (i as u64).is_multiple_of(*modulus)))
                .collect()
        })
        .collect();
    drop(vectors);

    eprintln!("reopening in a fresh process ...");
    let (fresh_opened_mib, fresh_searched_mib) =
        steady_rss_in_fresh_process(&dir, args.dim, args.queries)?;

    // Reopened here too, for the latency figures.
    rss("after closing the store");
    let store = Arc::new(EmbeddedStore::open(&dir, OpenOptions::default())?);
    rss("after reopening");
    eprintln!("HNSW search ...");
    for query in queries.iter().take(50) {
        store.search("bench", search_request(query, 64, None))?; // warm-up
    }
    let mut by_ef = Vec::new();
    for &ef in &args.ef {
        let mut latencies = Vec::new();
        let mut answers = Vec::new();
        for query in &queries {
            let started = Instant::now();
            let hits = store.search("bench", search_request(query, ef, None))?;
            latencies.push(started.elapsed());
            answers.push(ids(&hits));
        }
        latencies.sort();
        by_ef.push((ef, latencies, answers));
    }
    let mut store_exact = Vec::new();
    for query in queries.iter().take(100) {
        let mut request = search_request(query, 64, None);
        request.exact = true;
        let started = Instant::now();
        store.search("bench", request)?;
        store_exact.push(started.elapsed());
    }
    rss("after the exact searches");
    let rows: Vec<(usize, f64, f64, f64)> = by_ef
        .iter()
        .map(|(ef, latencies, answers)| {
            let recall = answers
                .iter()
                .zip(&truth)
                .map(|(found, truth)| recall(found, truth))
                .sum::<f64>()
                / queries.len() as f64;
            (
                *ef,
                percentile_ms(latencies, 0.5),
                percentile_ms(latencies, 0.95),
                recall,
            )
        })
        .collect();
    let chosen = rows
        .iter()
        .find(|row| row.3 >= 0.99)
        .or(rows.last())
        .map_or(64, |row| row.0);

    let threads = 2;
    let qps = queries_per_second(store.as_ref(), &queries, chosen, threads)?;

    let mut filtered = Vec::new();
    for ((field, modulus), truths) in selective.iter().zip(&filtered_truth) {
        let filter = Filter::must([Condition::matches(field, true)]);
        let mut latencies = Vec::new();
        let mut recall_sum = 0.0;
        for (query, truth) in queries.iter().zip(truths) {
            let started = Instant::now();
            let hits =
                store.search("bench", search_request(query, chosen, Some(filter.clone())))?;
            latencies.push(started.elapsed());
            recall_sum += recall(&ids(&hits), truth);
        }
        latencies.sort();
        filtered.push((
            field,
            100 / modulus,
            percentile_ms(&latencies, 0.5),
            recall_sum / filter_sample as f64,
        ));
    }

    exact_latencies.sort();
    store_exact.sort();
    let points_per_second = args.points as f64 / upsert_seconds;
    let report = json!({
        "points": args.points, "dim": args.dim, "queries": args.queries,
        "upsert_points_per_second": points_per_second,
        "seconds_from_last_upsert_to_indexed": index_seconds,
        "indexed_vectors": info.indexed_vectors,
        "search": rows.iter().map(|(ef, p50, p95, r)| json!({"ef": ef, "p50_ms": p50, "p95_ms": p95, "recall_at_10": r})).collect::<Vec<_>>(),
        "ef_for_qps_and_filters": chosen,
        "qps_2_threads": qps,
        "exact_scan_p50_ms": percentile_ms(&exact_latencies, 0.5),
        "store_exact_p50_ms": percentile_ms(&store_exact, 0.5),
        "filtered": filtered.iter().map(|(f, pct, p50, r)| json!({"field": f, "selectivity_percent": pct, "p50_ms": p50, "recall_at_10": r})).collect::<Vec<_>>(),
        "peak_rss_mib": peak_rss_mib, "fresh_process_rss_after_open_mib": fresh_opened_mib, "fresh_process_rss_after_searching_mib": fresh_searched_mib, "disk_mib": disk_mib,
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "store bench: {} points × {} dims, clustered, cosine; {} queries",
        args.points, args.dim, args.queries
    );
    println!("  upsert                         {points_per_second:>10.0} points/s");
    println!(
        "  last upsert → fully indexed    {index_seconds:>10.1} s  ({} vectors in HNSW)",
        info.indexed_vectors
    );
    for (ef, p50, p95, r) in &rows {
        println!(
            "  search, ef {ef:<4}                {p50:>10.3} / {p95:.3} ms p50 / p95, recall@10 {r:.4}"
        );
    }
    println!("  QPS, {threads} threads, ef {chosen:<4}       {qps:>10.0}");
    for (field, pct, p50, r) in &filtered {
        println!("  filtered p50, {pct:>2}% ({field:<7})     {p50:>10.3} ms  (recall@10 {r:.4})");
    }
    println!(
        "  baseline: exact scan p50       {:>10.3} ms  (flat loop in this process)",
        percentile_ms(&exact_latencies, 0.5)
    );
    println!(
        "  baseline: store exact=true p50 {:>10.3} ms",
        percentile_ms(&store_exact, 0.5)
    );
    println!(
        "  peak RSS                       {peak_rss_mib:>10.0} MiB (while indexing, the bench's {:.0} MiB of vectors included)",
        (args.points * args.dim * 4) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  RSS, a fresh process: opened / after {} searches {fresh_opened_mib:>5.0} / {fresh_searched_mib:.0} MiB",
        args.queries
    );
    println!("  disk                           {disk_mib:>10.0} MiB");
    Ok(())
}
