//! `mnemo snapshot`: consistent, checksummed copies of a collection, on the store or through
//! the server that holds it.

use clap::Subcommand;
use mnemo::args::StoreArgs;
use mnemo_store::SnapshotInfo;

use crate::backend::SnapshotTarget;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Take a consistent, checksummed snapshot of a collection while writes go on
    Create {
        #[arg(long)]
        collection: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The snapshots of a collection, oldest first
    List {
        #[arg(long)]
        collection: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a collection (or create it) with a snapshot, after verifying its checksums.
    /// SNAPSHOT: a name from `list`, or the path of a .snapshot file
    Restore {
        snapshot: String,
        #[arg(long)]
        collection: String,
        /// Refuse an archive file without its checksum file (`FILE.blake3`) beside it: one from
        /// elsewhere is then only restored when its BLAKE3 matches what its maker wrote
        #[arg(long)]
        require_checksum: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a snapshot
    Delete {
        snapshot: String,
        #[arg(long)]
        collection: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn print_snapshot(info: &SnapshotInfo) {
    println!(
        "{}\t{}\t{} points\t{:.1} MB\tblake3 {}",
        info.name,
        info.created,
        info.points,
        info.size as f64 / 1e6,
        info.checksum
    );
}

/// Runs the command on the store, or through the server holding it.
pub fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    let store_args = match &command {
        SnapshotCommand::Create { store, .. }
        | SnapshotCommand::List { store, .. }
        | SnapshotCommand::Restore { store, .. }
        | SnapshotCommand::Delete { store, .. } => store.clone(),
    };
    let store = SnapshotTarget::open(&store_args)?;
    match command {
        SnapshotCommand::Create {
            collection, json, ..
        } => {
            let info = store.create(&collection)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_snapshot(&info);
            }
        }
        SnapshotCommand::List {
            collection, json, ..
        } => {
            let list = store.list(&collection)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                eprintln!("collection `{collection}` has no snapshots");
            } else {
                list.iter().for_each(print_snapshot);
            }
        }
        SnapshotCommand::Restore {
            snapshot,
            collection,
            require_checksum,
            ..
        } => {
            let info = store.restore(&collection, &snapshot, require_checksum)?;
            println!(
                "restored `{collection}` from {} ({} points, taken {}, checksums verified)",
                info.name, info.points, info.created
            );
        }
        SnapshotCommand::Delete {
            snapshot,
            collection,
            ..
        } => {
            if !store.delete(&collection, &snapshot)? {
                anyhow::bail!("collection `{collection}` has no snapshot `{snapshot}`");
            }
            println!("deleted snapshot {snapshot}");
        }
    }
    Ok(())
}
