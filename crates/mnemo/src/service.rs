//! What the long-running commands (`mnemo serve`, `mnemo mcp`, and `mnemo memory`) open: the
//! store, the engine over it with the memory database beside it, mended after a crash, and
//! the components that keep it running (the sweep of expired memories, the event log's
//! retention, the plan watcher).

use std::sync::Arc;

use anyhow::Context;
use mnemo_engine::components::Supervisor;
use mnemo_engine::{Engine, ServiceSettings};

use crate::args::{ModelArgs, OpenedStore, StoreArgs, engine_over};

/// The store, and the engine over it with the memory database beside it, the memories'
/// vectors mended after a crash between a memory's two writes.
/// What a configuration adds to the engine: its remote models (`[models.NAME]`) and how many
/// recent queries per collection it keeps (`query_log`, 0: none).
#[derive(Default)]
pub struct EngineExtras<'a> {
    pub remote_models: &'a [mnemo_embed::RemoteConfig],
    pub query_log: usize,
}

pub fn open_memory_engine(
    store_args: &StoreArgs,
    model: &ModelArgs,
    extras: &EngineExtras<'_>,
) -> anyhow::Result<(OpenedStore, Arc<Engine>)> {
    let store = store_args.open_any()?;
    let records = store_args.open_memory_records()?;
    let engine = Arc::new(
        engine_over(store.shared(), model)?
            .with_records(records)
            .with_remote_models(extras.remote_models.iter().cloned())
            .with_query_log(extras.query_log),
    );
    let repaired = engine
        .repair_memories()
        .context("cannot bring the memories' vectors in line with their records")?;
    if repaired.rebuilt || repaired.vectors_written + repaired.vectors_removed > 0 {
        // stderr: `mnemo mcp` speaks the protocol on stdout.
        eprintln!(
            "memories repaired: {} vectors written again, {} without a record removed{}",
            repaired.vectors_written,
            repaired.vectors_removed,
            if repaired.rebuilt {
                " (their collection was made again for this build)"
            } else {
                ""
            }
        );
    }
    Ok((store, engine))
}

/// Starts the components of a service over `engine` as `settings` asks (the sweep of expired
/// memories, the event log's retention, the plan watcher, …) under a supervisor; stop it
/// before the process ends.
pub fn start_components(
    engine: &Arc<Engine>,
    settings: &ServiceSettings,
) -> anyhow::Result<Arc<Supervisor>> {
    let components = engine.service_components(settings, |_: &mnemo_engine::IndexSummary| {});
    let supervisor = Arc::new(Supervisor::new(
        Arc::clone(engine),
        components,
        settings.probe_every,
    )?);
    supervisor
        .start()
        .context("cannot start the service's components")?;
    Ok(supervisor)
}
