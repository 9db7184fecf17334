//! `mnemo bench ...`: throughput and latency figures, printed for people and as JSON for
//! scripts that put them beside a baseline.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use mnemo_text::ParseOptions;

use crate::ModelArgs;
use mnemo_engine::{Skipped, collect_sources};

use crate::tasks_cmd::parse_sources;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Embedding speed: a warm-up, then the median of timed runs over a text file, and the
    /// latency of single texts embedded one at a time.
    Embed(BenchEmbedArgs),
    /// Plan reading speed: the median of timed runs reading and parsing every Markdown
    /// file under the paths (what `mnemo tasks --summary` does, without the printing).
    Tasks(BenchTasksArgs),
    /// The embedded store under a synthetic workload (100k clustered 384-d vectors by default):
    /// upsert rate, time to indexed, search latency and recall against exact search, filtered
    /// search, QPS, memory and disk.
    Store(crate::bench_store::BenchStoreArgs),
    /// Indexing a corpus into a fresh store: the time split (parse, embed, store, HNSW build)
    /// beside the model alone on the same texts, then a warm re-index.
    Index(crate::bench_store::BenchIndexArgs),
    /// The REST API on loopback beside the library in the same run: vector search at 100k
    /// points and text search, QPS and p50/p99 for 1, 8 and 64 concurrent clients.
    Http(crate::bench_http::BenchHttpArgs),
    /// Importing a generated legacy task_vectors.json (50 MB and 500 MB by default):
    /// MB/s, points/s, peak memory against the vectors' size.
    Import(crate::bench_import::BenchImportArgs),
}

#[derive(Args)]
pub struct BenchTasksArgs {
    /// Markdown files or folders
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Timed runs (the median is reported)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BenchEmbedArgs {
    /// Text file, one text per line (blank lines are skipped)
    #[arg(long)]
    texts: PathBuf,
    /// Use only the first N texts
    #[arg(long)]
    limit: Option<usize>,
    /// Texts in one forward batch at most
    #[arg(long)]
    batch_size: Option<usize>,
    /// Word pieces in one forward batch at most
    #[arg(long)]
    batch_tokens: Option<usize>,
    /// Timed runs (the median is reported)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Texts embedded one at a time for the latency figures (0 to skip)
    #[arg(long, default_value_t = 200)]
    single: usize,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Embed(args) => bench_embed(args),
        BenchCommand::Tasks(args) => bench_tasks(args),
        BenchCommand::Store(args) => crate::bench_store::store(args),
        BenchCommand::Index(args) => crate::bench_store::index(args),
        BenchCommand::Http(args) => crate::bench_http::http(args),
        BenchCommand::Import(args) => crate::bench_import::run(args),
    }
}

fn bench_tasks(args: BenchTasksArgs) -> anyhow::Result<()> {
    let (files, Skipped(skipped)) = collect_sources(&args.paths);
    if !skipped.is_empty() {
        bail!(
            "cannot benchmark on unreadable inputs: {}",
            skipped.join("; ")
        );
    }
    let bytes: u64 = files
        .iter()
        .map(|file| std::fs::metadata(&file.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    let options = ParseOptions::default();
    let run_once = || {
        let start = Instant::now();
        let (documents, Skipped(unreadable)) = parse_sources(&files, &options);
        let seconds = start.elapsed().as_secs_f64();
        let tasks: usize = documents.iter().map(|(_, d)| d.tasks.len()).sum();
        let passages: usize = documents.iter().map(|(_, d)| d.passages.len()).sum();
        (seconds, tasks, passages, unreadable)
    };
    // A file that cannot be parsed would shrink the work while the figures still count
    // its bytes: refuse it, as an unreadable path is refused above.
    let (_, tasks, passages, unreadable) = run_once();
    if !unreadable.is_empty() {
        bail!(
            "cannot benchmark on unreadable inputs: {}",
            unreadable.join("; ")
        );
    }
    let mut seconds: Vec<f64> = (0..args.repeat).map(|_| run_once().0).collect();
    let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let median_s = median(&mut seconds);
    let threads = rayon::current_num_threads();
    if args.json {
        let row = json!({
            "engine": "mnemo",
            "files": files.len(),
            "bytes": bytes,
            "tasks": tasks,
            "passages": passages,
            "threads": threads,
            "median_ms": median_s * 1e3,
            "best_ms": best * 1e3,
            "mb_per_s": bytes as f64 / 1e6 / median_s,
        });
        println!("{row}");
        return Ok(());
    }
    println!(
        "{} files, {:.1} MB, {tasks} tasks, {passages} passages, {threads} threads",
        files.len(),
        bytes as f64 / 1e6
    );
    println!(
        "median {:.1} ms (best {:.1} ms) over {} runs: {:.1} MB/s, {:.0} files/s",
        median_s * 1e3,
        best * 1e3,
        args.repeat,
        bytes as f64 / 1e6 / median_s,
        files.len() as f64 / median_s
    );
    Ok(())
}

fn bench_embed(args: BenchEmbedArgs) -> anyhow::Result<()> {
    let body = std::fs::read_to_string(&args.texts)
        .with_context(|| format!("cannot read {}", args.texts.display()))?;
    let mut texts: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(limit) = args.limit {
        texts.truncate(limit);
    }
    if texts.is_empty() {
        bail!("{} holds no texts", args.texts.display());
    }
    let embedder = args.model.load(args.batch_size, args.batch_tokens)?;

    let warm_up = &texts[..texts.len().min(256)];
    embedder.embed(warm_up).context("warm-up")?;

    let mut seconds = Vec::new();
    let mut cpu_seconds = Vec::new();
    let mut tokens = 0;
    for _ in 0..args.repeat {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let embeddings = embedder.embed(&texts)?;
        seconds.push(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu_start, process_cpu_seconds()) {
            cpu_seconds.push(b - a);
        }
        let window = embedder.max_seq_length();
        tokens = embeddings
            .token_counts()
            .iter()
            .map(|&n| n.min(window))
            .sum::<usize>();
    }
    let median_s = median(&mut seconds.clone());
    let median_cpu = (!cpu_seconds.is_empty()).then(|| median(&mut cpu_seconds.clone()));

    let mut latencies_ms: Vec<f64> = texts
        .iter()
        .take(args.single)
        .map(|text| {
            let start = Instant::now();
            embedder
                .embed(&[text])
                .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    latencies_ms.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies_ms, 0.50);
    let p95 = percentile(&latencies_ms, 0.95);

    let texts_per_s = texts.len() as f64 / median_s;
    let tokens_per_s = tokens as f64 / median_s;
    if args.json {
        let report = json!({
            "engine": "mnemo",
            "backend": embedder.backend_name(),
            "threads": embedder.threads(),
            "texts": texts.len(),
            "tokens": tokens,
            "batch_size": args.batch_size,
            "seconds_median": median_s,
            "seconds_all": seconds,
            "cpu_seconds_median": median_cpu,
            "texts_per_s": texts_per_s,
            "tokens_per_s": tokens_per_s,
            "single_texts": latencies_ms.len(),
            "single_p50_ms": p50,
            "single_p95_ms": p95,
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "mnemo bench embed: {} texts, {tokens} word pieces, {}",
        texts.len(),
        embedder.backend_name()
    );
    let runs: Vec<String> = seconds.iter().map(|s| format!("{s:.2}")).collect();
    println!(
        "  runs (s):     {}  (median {median_s:.2})",
        runs.join(", ")
    );
    println!("  throughput:   {texts_per_s:.1} texts/s, {tokens_per_s:.0} word pieces/s");
    if let Some(cpu) = median_cpu {
        println!(
            "  CPU time:     {cpu:.2} s per run ({:.1} texts per CPU-second)",
            texts.len() as f64 / cpu
        );
    }
    if !latencies_ms.is_empty() {
        println!(
            "  single text:  p50 {p50:.2} ms, p95 {p95:.2} ms over {} texts one at a time",
            latencies_ms.len()
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// User plus system CPU time of this process, all threads, from `/proc` (Linux only).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every mainstream architecture.
    Some((utime + stime) / 100.0)
}
