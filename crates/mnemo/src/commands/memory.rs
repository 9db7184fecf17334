//! `mnemo memory ...`: agents' memories from the shell (add, search, get, update, delete,
//! history, export and import as JSON Lines with their history); `mnemo mcp`: the same and the
//! plan index as MCP tools over stdio, for an agent that starts mnemo itself.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo_engine::memory::{ExportedMemory, MemoryQuery, NewMemory};
use mnemo_engine::{Engine, MemoryOwner, Principal, SearchMode, parse_filter};
use mnemo_records::Scope;
use mnemo_server::ServerConfig;
use mnemo_server::api::AppState;
use serde_json::{Map, Value, json};

use mnemo::service::{open_memory_engine, start_components};

use crate::client::Remote;

/// Who a memory belongs to, or who asks.
#[derive(Args, Clone, Default)]
pub struct ScopeArgs {
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    agent_id: Option<String>,
    #[arg(long)]
    run_id: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        Scope {
            user_id: self.user_id.clone(),
            agent_id: self.agent_id.clone(),
            run_id: self.run_id.clone(),
        }
    }
}

#[derive(Args)]
pub struct MemoryArgs {
    #[command(subcommand)]
    command: MemoryCommand,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Subcommand)]
enum MemoryCommand {
    /// Remember a text for a scope (at least one of --user-id, --agent-id, --run-id).
    Add {
        text: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// A JSON object kept with the memory
        #[arg(long)]
        metadata: Option<String>,
        /// RFC 3339 time after which it is forgotten
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// The memories a scope sees, by meaning (or --mode hybrid, keyword).
    Search {
        query: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Also the memories of narrower scopes
        #[arg(long)]
        wider: bool,
        /// On the metadata, in the filter language: 'topic = billing'
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value = "dense")]
        mode: SearchMode,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// RFC 3339: created at or after
        #[arg(long)]
        created_after: Option<String>,
        /// RFC 3339: created before
        #[arg(long)]
        created_before: Option<String>,
    },
    /// One memory, as JSON.
    Get { id: String },
    /// New text or metadata for a memory; the old ones stay in its history.
    Update {
        id: String,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Forget one memory (by id), or every memory of a scope (--all-of-scope).
    Delete {
        id: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Forget every memory of the scope given
        #[arg(long)]
        all_of_scope: bool,
    },
    /// Every change of a memory, as JSON Lines.
    History { id: String },
    /// Every memory with its history, as JSON Lines (stdout or --output).
    Export {
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Memories exported by `mnemo memory export` (stdin or --input); those already here
    /// are skipped. Every line is checked before anything is written.
    Import {
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

/// Lines of an import read and checked at a time.
const IMPORT_BATCH: usize = 256;
/// The longest line of an import: one memory (64 KiB of text) and its history.
const MAX_IMPORT_LINE: usize = 16 * 1024 * 1024;

pub fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let (_store, engine) = match open_memory_engine(&args.store, &args.model, &Default::default()) {
        Ok(opened) => opened,
        Err(err) => match Remote::holding(&err) {
            Some(remote) => return through_server(&remote?, args.command),
            None => return Err(err),
        },
    };
    let actor = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    match args.command {
        MemoryCommand::Add {
            text,
            scope,
            metadata,
            expires_at,
        } => {
            let added = engine.add_memory(&NewMemory {
                text,
                metadata: object_argument("--metadata", metadata.as_deref())?,
                scope: scope.scope(),
                expires_at: time_argument("--expires-at", expires_at.as_deref())?,
                actor,
                similar_threshold: None,
            })?;
            print_json(&serde_json::to_value(added)?)
        }
        MemoryCommand::Search {
            query,
            scope,
            wider,
            filter,
            mode,
            limit,
            created_after,
            created_before,
        } => {
            let found = engine.search_memories(&MemoryQuery {
                text: query,
                scope: scope.scope(),
                wider,
                filter: filter.as_deref().map(parse_filter).transpose()?,
                limit,
                score_threshold: None,
                mode,
                created_after: time_argument("--created-after", created_after.as_deref())?,
                created_before: time_argument("--created-before", created_before.as_deref())?,
            })?;
            for found in found {
                print_json(&serde_json::to_value(found)?)?;
            }
            Ok(())
        }
        MemoryCommand::Get { id } => print_json(&serde_json::to_value(engine.get_memory(&id)?)?),
        MemoryCommand::Update { id, text, metadata } => {
            if text.is_none() && metadata.is_none() {
                bail!("give --text, --metadata or both");
            }
            let metadata = metadata
                .map(|text| object_argument("--metadata", Some(&text)))
                .transpose()?;
            let memory = engine.update_memory(&id, text.as_deref(), metadata, &actor)?;
            print_json(&serde_json::to_value(memory)?)
        }
        MemoryCommand::Delete {
            id,
            scope,
            all_of_scope,
        } => match (id, all_of_scope) {
            (Some(id), false) => {
                let memory = engine.delete_memory(&id, &actor)?;
                print_json(&json!({ "deleted": memory.id }))
            }
            (None, true) => {
                let deleted = engine.delete_memories(&scope.scope(), None, &actor)?;
                print_json(&json!({ "deleted": deleted }))
            }
            _ => bail!(
                "give a memory's id, or --all-of-scope with --user-id, --agent-id or --run-id"
            ),
        },
        MemoryCommand::History { id } => {
            for entry in engine.memory_history(&id)? {
                print_json(&serde_json::to_value(entry)?)?;
            }
            Ok(())
        }
        MemoryCommand::Export { output } => export(&engine, output),
        MemoryCommand::Import { input } => import(&engine, input),
    }
}

/// The same commands asked of the `mnemo serve` that holds the data directory, over its REST
/// API; the answers printed as it gives them.
fn through_server(remote: &Remote, command: MemoryCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let memory_path = |id: &str| -> anyhow::Result<String> {
        // Ids are UUIDs: anything else names no memory, and never reaches a URL.
        uuid::Uuid::parse_str(id).map_err(|_| anyhow::anyhow!("no memory with id `{id}`"))?;
        Ok(format!("/api/v1/memories/{id}"))
    };
    match command {
        MemoryCommand::Add {
            text,
            scope,
            metadata,
            expires_at,
        } => {
            let answer = remote.request(
                Method::POST,
                "/api/v1/memories",
                Some(json!({
                    "text": text,
                    "user_id": scope.user_id,
                    "agent_id": scope.agent_id,
                    "run_id": scope.run_id,
                    "metadata": object_argument("--metadata", metadata.as_deref())?,
                    "expires_at": expires_at,
                })),
            )?;
            print_json(&answer)
        }
        MemoryCommand::Search {
            query,
            scope,
            wider,
            filter,
            mode,
            limit,
            created_after,
            created_before,
        } => {
            let filter = filter.as_deref().map(parse_filter).transpose()?;
            let answer = remote.request(
                Method::POST,
                "/api/v1/memories/search",
                Some(json!({
                    "query": query,
                    "user_id": scope.user_id,
                    "agent_id": scope.agent_id,
                    "run_id": scope.run_id,
                    "wider": wider,
                    "filter": filter,
                    "mode": mode,
                    "limit": limit,
                    "created_after": created_after,
                    "created_before": created_before,
                })),
            )?;
            for found in answer["result"].as_array().into_iter().flatten() {
                print_json(found)?;
            }
            Ok(())
        }
        MemoryCommand::Get { id } => {
            print_json(&remote.request(Method::GET, &memory_path(&id)?, None)?)
        }
        MemoryCommand::Update { id, text, metadata } => {
            if text.is_none() && metadata.is_none() {
                bail!("give --text, --metadata or both");
            }
            let metadata = metadata
                .map(|text| object_argument("--metadata", Some(&text)))
                .transpose()?;
            let answer = remote.request(
                Method::PUT,
                &memory_path(&id)?,
                Some(json!({ "text": text, "metadata": metadata })),
            )?;
            print_json(&answer)
        }
        MemoryCommand::Delete {
            id,
            scope,
            all_of_scope,
        } => match (id, all_of_scope) {
            (Some(id), false) => {
                remote.request(Method::DELETE, &memory_path(&id)?, None)?;
                print_json(&json!({ "deleted": id }))
            }
            (None, true) => print_json(&remote.request(
                Method::POST,
                "/api/v1/memories/delete",
                Some(json!({
                    "user_id": scope.user_id,
                    "agent_id": scope.agent_id,
                    "run_id": scope.run_id,
                })),
            )?),
            _ => bail!(
                "give a memory's id, or --all-of-scope with --user-id, --agent-id or --run-id"
            ),
        },
        MemoryCommand::History { id } => {
            let answer =
                remote.request(Method::GET, &format!("{}/history", memory_path(&id)?), None)?;
            for entry in answer["history"].as_array().into_iter().flatten() {
                print_json(entry)?;
            }
            Ok(())
        }
        MemoryCommand::Export { .. } | MemoryCommand::Import { .. } => bail!(
            "the data directory is held by mnemo serve at {}: stop it to export or import              memories (the records and vectors are written together)",
            remote.base()
        ),
    }
}

fn export(engine: &Engine, output: Option<PathBuf>) -> anyhow::Result<()> {
    let writer: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = BufWriter::new(writer);
    let mut failure = None;
    let count = engine.export_memories(|item| {
        if failure.is_none()
            && let Err(err) = serde_json::to_writer(&mut writer, &item)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"))
        {
            failure = Some(err);
        }
        Ok(())
    })?;
    if let Some(err) = failure {
        return Err(err).context("cannot write the export");
    }
    writer.flush().context("cannot write the export")?;
    eprintln!("{count} memories exported");
    Ok(())
}

fn import(engine: &Engine, input: Option<PathBuf>) -> anyhow::Result<()> {
    let source = input
        .as_ref()
        .map_or_else(|| "stdin".to_owned(), |path| path.display().to_string());
    let reader: Box<dyn BufRead> = match &input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {source}"))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    // Every line is read and checked before the first is written: a mistake on line 9,000
    // leaves the memories as they were.
    let mut items = Vec::new();
    let mut line = Vec::new();
    let mut reader = reader;
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        let read = std::io::Read::take(&mut reader, MAX_IMPORT_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {source}"))?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_IMPORT_LINE {
            bail!("{source}:{number}: the line is longer than {MAX_IMPORT_LINE} bytes");
        }
        let text = std::str::from_utf8(&line)
            .with_context(|| format!("{source}:{number}: not UTF-8"))?
            .trim();
        if text.is_empty() {
            continue;
        }
        let item: ExportedMemory = serde_json::from_str(text).with_context(|| {
            format!("{source}:{number}: not a memory as `mnemo memory export` writes it")
        })?;
        items.push((number, item));
    }
    let mut imported = 0;
    let mut skipped = 0;
    for chunk in items.chunks(IMPORT_BATCH) {
        let first = chunk.first().map_or(0, |(number, _)| *number);
        let batch = chunk.iter().map(|(_, item)| item.clone()).collect();
        let done = engine
            .import_memories(batch)
            .with_context(|| format!("{source}: the batch from line {first}"))?;
        imported += done.imported;
        skipped += done.skipped;
    }
    eprintln!("{imported} memories imported, {skipped} already here");
    Ok(())
}

fn object_argument(flag: &str, text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(_) => bail!("{flag} must be a JSON object"),
            Err(err) => bail!("{flag} is not JSON: {err}"),
        },
    }
}

fn time_argument(flag: &str, text: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .with_context(|| format!("{flag} {text:?} is not an RFC 3339 time"))
    })
    .transpose()
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[derive(Args)]
pub struct McpArgs {
    /// The user this agent acts for: memories default to them, and no other user's are used
    #[arg(long, env = "MNEMO_USER_ID")]
    user_id: Option<String>,
    /// The agent this is: memories default to it, and no other agent's are used
    #[arg(long, env = "MNEMO_AGENT_ID")]
    agent_id: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// Serves the MCP tools over stdin and stdout until the client closes them.
pub fn mcp(args: McpArgs) -> anyhow::Result<()> {
    for (flag, value) in [("--user-id", &args.user_id), ("--agent-id", &args.agent_id)] {
        if value
            .as_deref()
            .is_some_and(|value| value.trim().is_empty())
        {
            bail!("{flag} is empty: leave it out rather than give it empty");
        }
    }
    let (_store, engine) = open_memory_engine(&args.store, &args.model, &Default::default())?;
    let supervisor = start_components(&engine, &mnemo_engine::ServiceSettings::default())?;
    let state = Arc::new(AppState::new(Arc::clone(&engine), ServerConfig::default()));
    let caller = Principal::local(MemoryOwner {
        user_id: args.user_id,
        agent_id: args.agent_id,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the MCP runtime")?;
    runtime.block_on(mnemo_server::mcp::serve_stdio(
        mnemo_server::mcp::McpTools::local(state, caller),
    ))?;
    supervisor.stop();
    engine.store().flush().context("cannot flush the store")?;
    Ok(())
}
