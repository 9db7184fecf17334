//! `mnemo-bench tasks`: plan reading speed, the median of timed runs reading and parsing every
//! Markdown file under the paths (what `mnemo tasks --summary` does, without the printing).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use mnemo_engine::{Skipped, collect_sources, parse_sources};
use mnemo_text::ParseOptions;
use serde_json::json;

use crate::stats::median;

#[derive(Args)]
pub struct TasksArgs {
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

pub fn run(args: TasksArgs) -> anyhow::Result<()> {
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
    let seconds: Vec<f64> = (0..args.repeat).map(|_| run_once().0).collect();
    let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let median_s = median(&seconds);
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
