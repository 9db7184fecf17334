//! What the long-running commands (`mnemo serve`, `mnemo mcp`, and `mnemo memory`) open: the
//! store, the engine over it with the memory database beside it, mended after a crash, and
//! the sweep of expired memories.

use std::sync::Arc;

use anyhow::Context;
use mnemo_engine::Engine;

use crate::args::{ModelArgs, OpenedStore, StoreArgs, engine_over};

/// The store, and the engine over it with the memory database beside it, the memories'
/// vectors mended after a crash between a memory's two writes.
pub fn open_memory_engine(
    store_args: &StoreArgs,
    model: &ModelArgs,
) -> anyhow::Result<(OpenedStore, Arc<Engine>)> {
    let store = store_args.open_any()?;
    let records = store_args.open_memory_records()?;
    let engine = Arc::new(engine_over(store.shared(), model)?.with_records(records));
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

/// Deletes expired memories every minute (they are hidden from the moment they expire; the
/// sweep frees their space and writes `expired` in their history).
pub fn start_expiry_sweep(engine: Arc<mnemo_engine::Engine>) {
    let spawned = std::thread::Builder::new()
        .name("mnemo-memory-expiry".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
                if let Err(err) = engine.sweep_expired_memories(chrono::Utc::now()) {
                    eprintln!("warning: the expiry sweep of memories failed: {err}");
                }
            }
        });
    if let Err(err) = spawned {
        eprintln!("warning: expired memories will not be swept: {err}");
    }
}
