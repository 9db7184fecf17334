//! `mnemo-bench memory`: agents' memories in-process, as a library user of mem0 would use
//! mem0: `--memories` texts added one call each (as an agent adds them), then `--queries`
//! searches of one scope, timed one by one; then, with `--bulk`, that many more memories
//! imported in batches and the resident memory of the process measured with them all. Prints
//! JSON (`--json`) for `bench/memory-vs-mem0.sh`, and the top results of each query
//! (`--results FILE`, JSON Lines) for the overlap with mem0's.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use mnemo::args::{ModelArgs, engine_over};
use mnemo_engine::memory::{ExportedMemory, MemoryQuery, NewMemory};
use mnemo_records::{Memory, Scope, SqliteRecords};
use mnemo_store::{EmbeddedStore, OpenOptions};
use serde_json::json;

use crate::stats::{percentile_ms, rss_kib};

#[derive(Args)]
pub struct MemoryArgs {
    /// One text per line: the first `--memories` are added, the next `--queries` asked
    #[arg(long)]
    texts: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    memories: usize,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Results per query
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Then import this many more memories (texts reused with a suffix) and measure RSS
    #[arg(long, default_value_t = 0)]
    bulk: usize,
    /// Write each query's results (texts, best first) here, as JSON Lines
    #[arg(long)]
    results: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.texts)?;
    let mut lines: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if seen.insert(line) {
            lines.push(line);
        }
    }
    anyhow::ensure!(
        lines.len() >= args.memories + args.queries,
        "{} holds {} distinct texts; {} memories and {} queries need more",
        args.texts.display(),
        lines.len(),
        args.memories,
        args.queries
    );
    let (memories, queries) = lines.split_at(args.memories);
    let queries = &queries[..args.queries];
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(
        &dir.path().join("data"),
        OpenOptions::default(),
    )?);
    let records = Arc::new(SqliteRecords::open(&dir.path().join("memory.sqlite"))?);
    let engine = engine_over(store, &args.model)?.with_records(records);
    let scope = Scope {
        user_id: Some("bench".into()),
        ..Scope::default()
    };

    let started = Instant::now();
    for (n, text) in memories.iter().enumerate() {
        engine.add_memory(&NewMemory {
            text: (*text).to_owned(),
            scope: scope.clone(),
            actor: "bench".into(),
            ..NewMemory::default()
        })?;
        if !args.json && (n + 1) % 1000 == 0 {
            eprintln!("{} memories added", n + 1);
        }
    }
    let add_seconds = started.elapsed().as_secs_f64();

    let mut latencies: Vec<Duration> = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    // One untimed query (not one of the timed ones: it would be cached): the first pays for
    // loading what the searches need.
    search(&engine, &scope, memories[0], args.limit)?;
    for query in queries {
        let started = Instant::now();
        let found = search(&engine, &scope, query, args.limit)?;
        latencies.push(started.elapsed());
        results.push(json!({ "query": query, "results": found }));
    }
    latencies.sort();
    let rss_after_search = rss_kib("VmRSS");

    let mut bulk_rss = None;
    let mut bulk_seconds = None;
    if args.bulk > 0 {
        let started = Instant::now();
        let now = mnemo_records::timestamp(chrono::Utc::now());
        let mut batch = Vec::new();
        for n in 0..args.bulk {
            let text = format!("{} (copy {})", lines[n % lines.len()], n / lines.len());
            batch.push(ExportedMemory {
                memory: Memory {
                    id: uuid::Uuid::new_v4().to_string(),
                    text,
                    metadata: Default::default(),
                    scope: Scope {
                        user_id: Some(format!("bulk-{}", n % 100)),
                        ..Scope::default()
                    },
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    expires_at: None,
                    content_hash: String::new(),
                    author: "bench".into(),
                },
                history: Vec::new(),
            });
            if batch.len() == 256 {
                engine.import_memories(std::mem::take(&mut batch))?;
            }
        }
        engine.import_memories(batch)?;
        bulk_seconds = Some(started.elapsed().as_secs_f64());
        for query in queries.iter().take(20) {
            search(&engine, &scope, query, args.limit)?;
        }
        bulk_rss = Some(rss_kib("VmRSS"));
    }

    if let Some(path) = &args.results {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for line in &results {
            serde_json::to_writer(&mut file, line)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
    }
    let figures = json!({
        "engine": "mnemo",
        "memories": args.memories,
        "add_seconds": add_seconds,
        "adds_per_second": args.memories as f64 / add_seconds,
        "queries": queries.len(),
        "search_p50_ms": percentile_ms(&latencies, 0.5),
        "search_p95_ms": percentile_ms(&latencies, 0.95),
        "rss_mib": rss_after_search as f64 / 1024.0,
        "peak_rss_mib": rss_kib("VmHWM") as f64 / 1024.0,
        "bulk_memories": args.bulk,
        "bulk_seconds": bulk_seconds,
        "rss_mib_with_bulk": bulk_rss.map(|kib| kib as f64 / 1024.0),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    Ok(())
}

fn search(
    engine: &mnemo_engine::Engine,
    scope: &Scope,
    query: &str,
    limit: usize,
) -> anyhow::Result<Vec<String>> {
    Ok(engine
        .search_memories(&MemoryQuery {
            text: query.to_owned(),
            scope: scope.clone(),
            limit,
            ..MemoryQuery::default()
        })?
        .into_iter()
        .map(|found| found.memory.text)
        .collect())
}
