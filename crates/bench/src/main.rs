//! `mnemo-bench`: mnemo's benchmarks, kept out of the product binary. Each prints its figures
//! for people (or one JSON object for scripts) beside a baseline measured in the same run; the
//! `make bench-*` targets and `bench/*.sh` call it. Medians and nearest-rank percentiles come
//! from one module, `stats`.

mod durability;
mod embed;
mod http;
mod import;
mod index;
mod memory;
mod soak;
mod stats;
mod store;
mod tasks;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mnemo-bench",
    version,
    about = "mnemo's speed and memory figures, each beside a baseline of the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embedding speed: a warm-up, then the median of timed runs over a text file, and the
    /// latency of single texts embedded one at a time.
    Embed(embed::EmbedArgs),
    /// Plan reading speed: the median of timed runs reading and parsing every Markdown
    /// file under the paths (what `mnemo tasks --summary` does, without the printing).
    Tasks(tasks::TasksArgs),
    /// The embedded store under a synthetic workload (100k clustered 384-d vectors by default):
    /// upsert rate, time to indexed, search latency and recall against exact search, filtered
    /// search, QPS, memory and disk.
    Store(store::StoreArgs),
    /// Indexing a corpus into a fresh store: the time split (parse, embed, store, HNSW build)
    /// beside the model alone on the same texts, then a warm re-index.
    Index(index::IndexArgs),
    /// The REST API on loopback beside the library in the same run: vector search at 100k
    /// points and text search, QPS and p50/p99 for 1, 8 and 64 concurrent clients.
    Http(http::HttpArgs),
    /// Importing a generated legacy task_vectors.json (50 MB and 500 MB by default) with
    /// `mnemo import`: MB/s, points/s, peak memory against the vectors' size.
    Import(import::ImportArgs),
    /// What `durability = "fsync"` costs: single-point and batched upserts on the embedded
    /// store under each durability, side by side.
    Durability(durability::DurabilityArgs),
    /// A real `mnemo serve` under mixed clients (searches, upserts, embeddings, index jobs and
    /// hostile inputs) for a bounded time: memory steady, no 5xx but 503 with Retry-After,
    /// every acknowledged upsert read back.
    Soak(soak::SoakArgs),
    /// Agents' memories in-process: adds one by one, searches of one scope (p50, p95), the
    /// results for an overlap with mem0's, and RSS with a bulk of imported memories.
    Memory(memory::MemoryArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Embed(args) => embed::run(args),
        Command::Tasks(args) => tasks::run(args),
        Command::Store(args) => store::run(args),
        Command::Index(args) => index::run(args),
        Command::Http(args) => http::run(args),
        Command::Import(args) => import::run(args),
        Command::Durability(args) => durability::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Memory(args) => memory::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
