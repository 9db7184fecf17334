//! `mnemo`: the command line. It parses arguments, calls the library crates, and prints;
//! the work itself lives in the crates (`mnemo-embed`, ...).

mod bench;
mod bench_http;
mod bench_import;
mod bench_store;
mod embed_cmd;
mod memory_cmd;
mod nearest;
mod remote;
mod serve_cmd;
mod tasks_cmd;
mod transfer_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mnemo_embed::{Backend, Embedder, EmbedderOptions, default_model_dir};

#[derive(Parser)]
#[command(
    name = "mnemo",
    version,
    about = "Local-first semantic memory for Markdown plans and notes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts: JSON Lines `{"text": ...}` in (stdin or --input), the same objects out
    /// with an `embedding` field added, in the same order.
    Embed(embed_cmd::EmbedArgs),
    /// For each line of text, print the most similar other lines by cosine.
    Nearest(nearest::NearestArgs),
    /// List the tasks of Markdown plans (files or folders). Exit status 3: some paths
    /// were skipped (each named on stderr); the others were still listed.
    Tasks(tasks_cmd::TasksArgs),
    /// Index Markdown plans (files or folders) into the store: tasks and prose passages,
    /// embedded and keyword-indexed. Re-running embeds only what changed. Exit status 3: some
    /// paths were skipped (each named on stderr).
    Index(memory_cmd::IndexArgs),
    /// Search the index by meaning (with --mode hybrid, meaning and keywords; --mode keyword).
    Search(memory_cmd::SearchArgs),
    /// The tasks nearest to a task, itself excluded.
    Similar(memory_cmd::SimilarArgs),
    /// Clusters of near-duplicate tasks across files, largest first.
    Dupes(memory_cmd::DupesArgs),
    /// Serve the REST API (collections, points, search, OpenAI-compatible embeddings) on
    /// the same data directory and model. SIGTERM or Ctrl-C: requests in flight finish, the
    /// store is flushed.
    Serve(serve_cmd::ServeArgs),
    /// Import vectors into a collection: the old scripts' task_vectors.json, JSON lists and
    /// JSON Lines, Qdrant's points, .npy + payloads, pickles. Every record is checked before
    /// anything is written.
    Import(transfer_cmd::ImportArgs),
    /// Export a collection, losslessly: JSON Lines (mnemo), .npy + JSON Lines, or Qdrant's JSON.
    Export(transfer_cmd::ExportArgs),
    /// Copy collections between stores (the embedded store and a Qdrant server or cluster,
    /// either way), then check the counts and a sample of points bit for bit.
    MigrateStore(transfer_cmd::MigrateArgs),
    /// Snapshots of a collection: create, list, restore, delete.
    Snapshot {
        #[command(subcommand)]
        command: transfer_cmd::SnapshotCommand,
    },
    /// API keys for `mnemo serve`.
    Key {
        #[command(subcommand)]
        command: serve_cmd::KeyCommand,
    },
    /// Measure speed.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// How to find and run the model; shared by every command that embeds.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// The sentence-transformers model folder [default: ~/.cache/mnemo/models/all-MiniLM-L6-v2]
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// Where the encoder runs: auto, cpu, candle-cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    device: Backend,
    /// Worker threads (0: one per core)
    #[arg(long, env = "MNEMO_THREADS", default_value_t = 0)]
    threads: usize,
}

impl ModelArgs {
    pub(crate) fn load(
        &self,
        max_batch_texts: Option<usize>,
        max_batch_tokens: Option<usize>,
    ) -> anyhow::Result<Embedder> {
        let dir = self.model_dir.clone().unwrap_or_else(default_model_dir);
        let mut options = EmbedderOptions {
            backend: self.device,
            threads: self.threads,
            ..EmbedderOptions::default()
        };
        if let Some(n) = max_batch_texts {
            options.max_batch_texts = n;
        }
        if let Some(n) = max_batch_tokens {
            options.max_batch_tokens = n;
        }
        Embedder::load(&dir, options)
            .with_context(|| format!("cannot load the model from {}", dir.display()))
    }
}

/// Exit status when some inputs could not be read but the others were processed.
const SOME_PATHS_SKIPPED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => embed_cmd::run(args).map(|()| ExitCode::SUCCESS),
        Command::Nearest(args) => nearest::run(args).map(|()| ExitCode::SUCCESS),
        Command::Tasks(args) => tasks_cmd::run(args).map(|complete| {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(SOME_PATHS_SKIPPED)
            }
        }),
        Command::Index(args) => memory_cmd::index(args).map(|complete| {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(SOME_PATHS_SKIPPED)
            }
        }),
        Command::Search(args) => memory_cmd::search(args).map(|()| ExitCode::SUCCESS),
        Command::Similar(args) => memory_cmd::similar(args).map(|()| ExitCode::SUCCESS),
        Command::Dupes(args) => memory_cmd::dupes(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve_cmd::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Import(args) => transfer_cmd::import(args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => transfer_cmd::export(args).map(|()| ExitCode::SUCCESS),
        Command::MigrateStore(args) => {
            transfer_cmd::migrate_store(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Snapshot { command } => {
            transfer_cmd::snapshot(command).map(|()| ExitCode::SUCCESS)
        }
        Command::Key { command } => serve_cmd::key(command).map(|()| ExitCode::SUCCESS),
        Command::Bench { what } => bench::run(what).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`mnemo embed ... | head`): not an error of ours, stop quietly.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
