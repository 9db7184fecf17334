//! `mnemo index`: Markdown plans into the store, incrementally, here or through the server
//! that holds the data directory.

use std::path::PathBuf;

use clap::Args;
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo_engine::{IndexOptions, IndexSummary};

use crate::backend::{Backend, backend};
use crate::progress::Bar;

#[derive(Args)]
pub struct IndexArgs {
    /// Markdown files or folders
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Collection for tasks
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// Collection for prose passages
    #[arg(long, default_value = mnemo_engine::PASSAGES_COLLECTION)]
    passages_collection: String,
    /// Index tasks only, not prose passages
    #[arg(long)]
    tasks_only: bool,
    /// Leave building the search index (HNSW) for later; searches still work, by full scan
    #[arg(long)]
    no_optimize: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// Whether every path was read.
pub fn run(args: IndexArgs) -> anyhow::Result<bool> {
    let engine = match backend(&args.store, &args.model)? {
        Backend::Local(engine) => *engine,
        Backend::Remote(remote) => {
            if args.no_optimize {
                anyhow::bail!("--no-optimize is not available through a running server");
            }
            let summary = remote.index(
                &args.paths,
                args.tasks_only,
                &args.collection,
                &args.passages_collection,
            )?;
            return report_index(&summary, args.json);
        }
    };
    let options = IndexOptions {
        tasks_collection: args.collection.clone(),
        passages_collection: args.passages_collection.clone(),
        passages: !args.tasks_only,
        optimize: !args.no_optimize,
        ..IndexOptions::default()
    };
    crate::interrupt::stop_at_safe_points("indexing");
    let bar = Bar::new("indexing", "{pos}/{len} files,");
    let summary = engine.index(&args.paths, &options, &bar);
    bar.finish();
    let summary = summary?;
    report_index(&summary, args.json)
}

fn report_index(summary: &IndexSummary, json: bool) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print_summary(summary);
    }
    for reason in &summary.skipped {
        eprintln!("skipped {reason}");
    }
    Ok(summary.skipped.is_empty())
}

fn print_summary(s: &IndexSummary) {
    let rate = if s.embed_seconds > 0.0 {
        s.embedded as f64 / s.embed_seconds
    } else {
        0.0
    };
    println!(
        "indexed {} files: {} tasks, {} passages",
        s.files, s.tasks, s.passages
    );
    println!(
        "  written {} · unchanged {} · removed {} · texts embedded {} · vectors reused {} · repaired lines {} (in the files read)",
        s.written, s.unchanged, s.removed, s.embedded, s.reused, s.repairs
    );
    println!(
        "  {:.2} s (parse {:.2} s, embed {:.2} s, store {:.2} s, index build {:.2} s) · {:.0} texts/s",
        s.total_seconds,
        s.parse_seconds,
        s.embed_seconds,
        s.store_seconds,
        s.optimize_seconds,
        rate
    );
}
