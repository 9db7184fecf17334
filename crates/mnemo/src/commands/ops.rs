//! Running unattended, from the shell: `mnemo events` (the durable event log, followed with
//! `--follow`), `mnemo components` (what a running server runs, or with `--dry-run` what a
//! config would start and what is wrong with it, starting nothing), and `mnemo watch` (plans
//! re-indexed as they change, in the foreground).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo_engine::components::Supervisor;
use mnemo_engine::{Event, EventQuery, ServiceSettings};
use mnemo_server::ServerConfig;
use serde_json::Value;

use mnemo::service::{open_memory_engine, start_components};

use crate::client::Remote;

#[derive(Args)]
pub struct EventsArgs {
    /// Events after this id (default: from the oldest kept; with --follow and no --after,
    /// only new ones)
    #[arg(long)]
    after: Option<i64>,
    /// Only these types or families (`job`, `memory.deleted`); repeat or separate by commas
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// At most this many (without --follow)
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Keep printing events as they are written, until Ctrl-C
    #[arg(long)]
    follow: bool,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// Reads the log where it is kept (SQLite beside the data directory, or `--db`): a server
/// that holds the data directory does not hold this file, which SQLite shares between readers
/// and its writer.
pub fn events(args: EventsArgs) -> anyhow::Result<()> {
    let records = args.store.open_memory_records()?;
    let mut after = match (args.after, args.follow) {
        (Some(after), _) => after,
        (None, true) => records.last_event_id()?,
        (None, false) => 0,
    };
    loop {
        let query = EventQuery {
            after,
            types: args.types.clone(),
            limit: if args.follow {
                500
            } else {
                args.limit.clamp(1, 10_000)
            },
        };
        let events = records.events(&query)?;
        for event in &events {
            print_event(event, args.json)?;
            after = event.id;
        }
        if !args.follow {
            return Ok(());
        }
        if events.is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn print_event(event: &Event, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)?;
    } else {
        let data = match &event.data {
            Value::Object(map) if map.is_empty() => String::new(),
            other => other.to_string(),
        };
        writeln!(
            out,
            "{:>8}  {}  {:<20}  {}  {data}",
            event.id,
            event.at,
            event.kind,
            event.subject.as_deref().unwrap_or("-")
        )?;
    }
    out.flush()?;
    Ok(())
}

#[derive(Args)]
pub struct ComponentsArgs {
    /// Check what the config would start, and what is wrong with it, starting nothing
    #[arg(long)]
    dry_run: bool,
    /// The server's TOML settings (as `mnemo serve --config`)
    #[arg(long, env = "MNEMO_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn components(args: ComponentsArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    let store_args = args.store.clone().with_fallback(
        config.store.as_deref(),
        config.store_api_key.as_deref(),
        config.durability,
        config.memory_db.as_deref(),
    );
    if !args.dry_run {
        let remote = match store_args.open_any() {
            Ok(_) => bail!(
                "no mnemo serve holds {}: nothing runs (--dry-run checks what a config would start)",
                store_args.describe()
            ),
            Err(err) => match Remote::holding(&err) {
                Some(remote) => remote?,
                None => return Err(err),
            },
        };
        let listed = remote.request(reqwest::Method::GET, "/api/v1/components", None)?;
        println!("components of mnemo serve at {}:", remote.base());
        for component in listed["components"].as_array().into_iter().flatten() {
            println!(
                "  {:<16} {:<10} restarts {:<3} {}",
                component["name"].as_str().unwrap_or("?"),
                component["state"].as_str().unwrap_or("?"),
                component["restarts"],
                component["detail"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    config.check()?;
    let (_store, engine) = open_memory_engine(&store_args, &args.model, &Default::default())
        .context("the store, the model or the memory database cannot be opened")?;
    let components = mnemo_server::service_components(&engine, &config, |_: &_| {})?;
    let supervisor = Supervisor::new(Arc::clone(&engine), components, config.probe_interval)?;
    println!("mnemo serve would start, in this order (nothing started):");
    let mut wrong = 0;
    for (status, checked) in supervisor.dry_run() {
        let after = if status.depends_on.is_empty() {
            String::new()
        } else {
            format!(" (after {})", status.depends_on.join(", "))
        };
        match checked {
            Ok(()) => println!("  ok     {:<16} {}{after}", status.name, status.description),
            Err(problem) => {
                wrong += 1;
                println!("  WRONG  {:<16} {problem}", status.name);
            }
        }
    }
    if wrong > 0 {
        bail!("{wrong} components would not start");
    }
    Ok(())
}

#[derive(Args)]
pub struct WatchArgs {
    /// Folders (or files) of plans to keep indexed
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// Indexes `paths` now, then again each time their plans change, until Ctrl-C; each job's
/// outcome printed.
pub fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let paths = args
        .paths
        .iter()
        .map(|path| {
            path.canonicalize()
                .with_context(|| format!("cannot watch {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store_args = args.store.clone().for_service();
    let (store, engine) = match open_memory_engine(&store_args, &args.model, &Default::default()) {
        Ok(opened) => opened,
        Err(err) if Remote::holding(&err).is_some() => bail!(
            "{err:#}\nA running server watches plans itself: add `watch = [...]` to its config"
        ),
        Err(err) => return Err(err),
    };
    let settings = ServiceSettings {
        watch: paths.clone(),
        ..ServiceSettings::default()
    };
    let after = engine.last_event_id()?;
    crate::interrupt::stop_at_safe_points("watching");
    let supervisor = start_components(&engine, &settings)?;
    eprintln!(
        "watching {} (Ctrl-C to stop)",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut cursor = after;
    while !crate::interrupt::requested() {
        let events = engine.events(&EventQuery {
            after: cursor,
            types: vec!["job".to_owned()],
            limit: 100,
        })?;
        for event in &events {
            cursor = event.id;
            match event.kind.as_str() {
                "job.finished" => {
                    let summary = &event.data["summary"];
                    println!(
                        "indexed: {} files ({} unchanged), {} points written, {} removed",
                        summary["files"],
                        summary["files_unchanged"],
                        summary["written"],
                        summary["removed"]
                    );
                }
                "job.failed" => println!("indexing failed: {}", event.data["error"]),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    supervisor.stop();
    drop(store);
    engine.store().flush().context("cannot flush the store")?;
    Ok(())
}
