//! `mnemo`: the command line. It parses arguments, calls the library crates, and prints;
//! the work itself lives in the crates (`mnemo-engine`, ...).
//!
//! - `commands/`: one module per command: its arguments, its call, its printing.
//! - `args.rs` (the library half, shared with `mnemo-bench`): where the model and the store
//!   are, and opening them.
//! - `backend.rs`: the engine over the opened store, or the server holding the data directory.
//! - `client.rs`: the client of a running `mnemo serve` (imports no command).
//! - `output.rs`, `progress.rs`: how answers and long work are shown; `interrupt.rs`: Ctrl-C
//!   as a request to stop at a safe point.

mod backend;
mod client;
mod commands;
mod interrupt;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{
    embed, index, memory, migrate, models, nearest, ops, search, serve, snapshot, tasks, transfer,
};

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
    Embed(embed::EmbedArgs),
    /// For each line of text, print the most similar other lines by cosine.
    Nearest(nearest::NearestArgs),
    /// List the tasks of Markdown plans (files or folders). Exit status 3: some paths
    /// were skipped (each named on stderr); the others were still listed.
    Tasks(tasks::TasksArgs),
    /// Index Markdown plans (files or folders) into the store: tasks and prose passages,
    /// embedded and keyword-indexed. Re-running embeds only what changed. Exit status 3: some
    /// paths were skipped (each named on stderr).
    Index(index::IndexArgs),
    /// Search the index by meaning (with --mode hybrid, meaning and keywords; --mode keyword).
    Search(search::SearchArgs),
    /// The tasks nearest to a task, itself excluded.
    Similar(search::SimilarArgs),
    /// Clusters of near-duplicate tasks across files, largest first.
    Dupes(search::DupesArgs),
    /// Serve the REST API (collections, points, search, OpenAI-compatible embeddings) on
    /// the same data directory and model. SIGTERM or Ctrl-C: requests in flight finish, the
    /// store is flushed.
    Serve(serve::ServeArgs),
    /// Agents' memories: add, search, get, update, delete, history, export, import.
    Memory(memory::MemoryArgs),
    /// Serve agents' memories and the plan index as MCP tools over stdin and stdout (for an
    /// MCP client that starts mnemo itself; `mnemo serve` answers MCP at /mcp).
    Mcp(memory::McpArgs),
    /// Import vectors into a collection: the old scripts' task_vectors.json, JSON lists and
    /// JSON Lines, Qdrant's points, .npy + payloads, pickles. Every record is checked before
    /// anything is written.
    Import(transfer::ImportArgs),
    /// Export a collection, losslessly: JSON Lines (mnemo), .npy + JSON Lines, or Qdrant's JSON.
    Export(transfer::ExportArgs),
    /// Copy collections between stores (the embedded store and a Qdrant server or cluster,
    /// either way), then check the counts and a sample of points bit for bit.
    MigrateStore(transfer::MigrateArgs),
    /// The durable event log: what changed, when (index jobs, collections, memories,
    /// components, alerts); --follow keeps printing new events.
    Events(ops::EventsArgs),
    /// The components a running mnemo serve runs and their health; --dry-run: what a config
    /// would start and what is wrong with it, starting nothing.
    Components(ops::ComponentsArgs),
    /// Index plans now and again whenever they change, until Ctrl-C.
    Watch(ops::WatchArgs),
    /// Snapshots of a collection: create, list, restore, delete.
    Snapshot {
        #[command(subcommand)]
        command: snapshot::SnapshotCommand,
    },
    /// The models mnemo runs: list, info, fetch; move a collection to another (migrate,
    /// switch). `mnemo model ...` works too.
    #[command(alias = "model")]
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// hit@1, hit@10 and MRR of a collection's model on labelled queries, per search mode.
    Eval(migrate::EvalArgs),
    /// API keys for `mnemo serve`.
    Key {
        #[command(subcommand)]
        command: serve::KeyCommand,
    },
}

/// Exit status when some inputs could not be read but the others were processed.
const SOME_PATHS_SKIPPED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => embed::run(args).map(|()| ExitCode::SUCCESS),
        Command::Nearest(args) => nearest::run(args).map(|()| ExitCode::SUCCESS),
        Command::Tasks(args) => tasks::run(args).map(|complete| {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(SOME_PATHS_SKIPPED)
            }
        }),
        Command::Index(args) => index::run(args).map(|complete| {
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(SOME_PATHS_SKIPPED)
            }
        }),
        Command::Search(args) => search::search(args).map(|()| ExitCode::SUCCESS),
        Command::Similar(args) => search::similar(args).map(|()| ExitCode::SUCCESS),
        Command::Dupes(args) => search::dupes(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Memory(args) => memory::run(args).map(|()| ExitCode::SUCCESS),
        Command::Mcp(args) => memory::mcp(args).map(|()| ExitCode::SUCCESS),
        Command::Import(args) => transfer::import(args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => transfer::export(args).map(|()| ExitCode::SUCCESS),
        Command::MigrateStore(args) => transfer::migrate_store(args).map(|()| ExitCode::SUCCESS),
        Command::Events(args) => ops::events(args).map(|()| ExitCode::SUCCESS),
        Command::Components(args) => ops::components(args).map(|()| ExitCode::SUCCESS),
        Command::Watch(args) => ops::watch(args).map(|()| ExitCode::SUCCESS),
        Command::Snapshot { command } => snapshot::run(command).map(|()| ExitCode::SUCCESS),
        Command::Models { command } => models::run(command).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => migrate::eval(args).map(|()| ExitCode::SUCCESS),
        Command::Key { command } => serve::key(command).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`mnemo embed ... | head`): not an error of ours, stop quietly.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        // Stopped by Ctrl-C at a safe point: the shell's code for an interrupted command.
        Err(error) if is_cancelled(&error) => {
            eprintln!("{error:#}");
            ExitCode::from(130)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_cancelled(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<mnemo_engine::EngineError>(),
            Some(mnemo_engine::EngineError::Cancelled { .. })
        )
    })
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
