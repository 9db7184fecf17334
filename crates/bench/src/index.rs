//! `mnemo-bench index`: indexing a corpus into a fresh store, the time split (parse, embed,
//! store, HNSW build) beside the model alone on the same texts, then a warm re-index.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use mnemo::args::ModelArgs;
use mnemo_embed::DEFAULT_MODEL_NAME;
use mnemo_engine::{Engine, IndexOptions, Quiet, collect_sources, task_embed_text};
use mnemo_store::{EmbeddedStore, OpenOptions};
use mnemo_text::{ParseOptions, parse_file};
use serde_json::json;

#[derive(Args)]
pub struct IndexArgs {
    /// Markdown files or folders
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let embedder = Arc::new(args.model.load(None, None)?);
    let store = EmbeddedStore::open(&temporary.path().join("data"), OpenOptions::default())?;
    let engine = Engine::new(Arc::new(store), Arc::clone(&embedder), DEFAULT_MODEL_NAME);
    eprintln!("cold index ...");
    let cold = engine.index(&args.paths, &IndexOptions::default(), &Quiet)?;
    eprintln!("warm re-index ...");
    let warm = engine.index(&args.paths, &IndexOptions::default(), &Quiet)?;

    // The baseline: the model alone on the same distinct texts, in one call.
    eprintln!("embedding the same texts alone (baseline) ...");
    let (files, _) = collect_sources(&args.paths);
    let mut seen = std::collections::HashSet::new();
    let mut texts = Vec::new();
    for file in &files {
        let document = parse_file(&file.path, &file.source, &ParseOptions::default())
            .with_context(|| format!("cannot read {}", file.path.display()))?;
        for task in &document.tasks {
            if seen.insert(task.text_hash.clone()) {
                texts.push(task_embed_text(task));
            }
        }
        for passage in &document.passages {
            if seen.insert(passage.text_hash.clone()) {
                texts.push(passage.text.clone());
            }
        }
    }
    let started = Instant::now();
    embedder.embed(&texts)?;
    let embed_only = started.elapsed().as_secs_f64();

    let overhead =
        (cold.parse_seconds + cold.store_seconds) / cold.embed_seconds.max(f64::MIN_POSITIVE);
    let report = json!({
        "files": cold.files, "tasks": cold.tasks, "passages": cold.passages, "embedded": cold.embedded, "reused": cold.reused,
        "cold_seconds": cold.total_seconds, "parse_seconds": cold.parse_seconds, "embed_seconds": cold.embed_seconds,
        "store_seconds": cold.store_seconds, "index_build_seconds": cold.optimize_seconds,
        "parse_and_store_over_embed": overhead, "warm_seconds": warm.total_seconds,
        "baseline_embed_only_seconds": embed_only, "baseline_texts": texts.len(),
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "index bench: {} files, {} tasks, {} passages; {} texts embedded, {} reused (same text)",
        cold.files, cold.tasks, cold.passages, cold.embedded, cold.reused
    );
    println!(
        "  cold index, total              {:>8.1} s",
        cold.total_seconds
    );
    println!(
        "    parse                        {:>8.2} s",
        cold.parse_seconds
    );
    println!(
        "    embed                        {:>8.1} s  ({:.0} texts/s)",
        cold.embed_seconds,
        cold.embedded as f64 / cold.embed_seconds.max(f64::MIN_POSITIVE)
    );
    println!(
        "    store                        {:>8.2} s",
        cold.store_seconds
    );
    println!(
        "    HNSW build                   {:>8.1} s",
        cold.optimize_seconds
    );
    println!(
        "  parse + store / embed          {:>8.1} %",
        overhead * 100.0
    );
    println!(
        "  baseline: the model alone      {:>8.1} s  ({} distinct texts, one call)",
        embed_only,
        texts.len()
    );
    println!(
        "  warm re-index                  {:>8.2} s  (engine; the process adds model load and store open)",
        warm.total_seconds
    );
    Ok(())
}
