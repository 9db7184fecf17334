//! `mnemo-bench embed`: embedding speed, a warm-up, then the median of timed runs over a text
//! file, and the latency of single texts embedded one at a time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use mnemo::args::ModelArgs;
use serde_json::json;

use crate::stats::{median, percentile, process_cpu_seconds};

#[derive(Args)]
pub struct EmbedArgs {
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

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
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
        let window = embedder.max_seq_length().unwrap_or(usize::MAX);
        tokens = embeddings
            .token_counts()
            .iter()
            .map(|&n| n.min(window))
            .sum::<usize>();
    }
    let median_s = median(&seconds);
    let median_cpu = (!cpu_seconds.is_empty()).then(|| median(&cpu_seconds));

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
        "mnemo-bench embed: {} texts, {tokens} word pieces, {}",
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
