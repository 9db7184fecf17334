//! Where a command's work goes: the engine over the store it opens, or, when a `mnemo serve`
//! holds the data directory, that server through its client.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mnemo::args::{ModelArgs, StoreArgs, engine_over};
use mnemo_engine::Engine;
use mnemo_store::{SnapshotInfo, VectorStore};

use crate::client::Remote;

/// The engine over this data directory, or, when a `mnemo serve` holds it, that server.
pub enum Backend {
    // Boxed: the engine is large beside the client.
    Local(Box<Engine>),
    Remote(Remote),
}

pub fn backend(store: &StoreArgs, model: &ModelArgs) -> anyhow::Result<Backend> {
    match store.open_any() {
        Ok(opened) => Ok(Backend::Local(Box::new(engine_over(
            opened.shared(),
            model,
        )?))),
        Err(err) => match Remote::holding(&err) {
            Some(remote) => Ok(Backend::Remote(remote?)),
            None => Err(err),
        },
    }
}

/// An empty data directory is the usual first mistake: say what fills it.
pub fn with_hint(error: mnemo_engine::EngineError) -> anyhow::Error {
    let hint = matches!(
        error,
        mnemo_engine::EngineError::Store(mnemo_store::StoreError::UnknownCollection(_))
    );
    let error = anyhow::Error::new(error);
    if hint {
        error.context("nothing indexed there yet: run `mnemo index PATH...` first (or pass the --data-dir it used)")
    } else {
        error
    }
}

/// Where snapshot commands go: the store itself, or the server that holds it.
pub enum SnapshotTarget {
    Store(Arc<dyn VectorStore>),
    Server(Remote),
}

impl SnapshotTarget {
    pub fn open(store: &StoreArgs) -> anyhow::Result<Self> {
        match store.open_any() {
            Ok(store) => Ok(Self::Store(store.shared())),
            Err(err) => match Remote::holding(&err) {
                Some(remote) => Ok(Self::Server(remote?)),
                None => Err(err),
            },
        }
    }

    pub fn create(&self, collection: &str) -> anyhow::Result<SnapshotInfo> {
        match self {
            Self::Store(store) => Ok(store.create_snapshot(collection)?),
            Self::Server(remote) => remote.create_snapshot(collection),
        }
    }

    pub fn list(&self, collection: &str) -> anyhow::Result<Vec<SnapshotInfo>> {
        match self {
            Self::Store(store) => Ok(store.list_snapshots(collection)?),
            Self::Server(remote) => remote.list_snapshots(collection),
        }
    }

    /// `snapshot`: a snapshot's name, or (on the store itself) the path of an archive; with
    /// `require_checksum`, an archive file must have its checksum file beside it. (Snapshots
    /// known by name always have theirs.)
    pub fn restore(
        &self,
        collection: &str,
        snapshot: &str,
        require_checksum: bool,
    ) -> anyhow::Result<SnapshotInfo> {
        let store = match self {
            Self::Store(store) => store,
            Self::Server(remote) => return remote.restore_snapshot(collection, snapshot),
        };
        let path = PathBuf::from(snapshot);
        if snapshot.contains(std::path::MAIN_SEPARATOR) || path.is_file() {
            let path = path
                .canonicalize()
                .with_context(|| format!("cannot read the snapshot {snapshot}"))?;
            let checksum = mnemo_store::snapshot_checksum_path(&path);
            if require_checksum && !checksum.is_file() {
                anyhow::bail!(
                    "{} has no checksum file beside it ({}); --require-checksum restores only \
                     archives whose BLAKE3 can be checked",
                    path.display(),
                    checksum.display()
                );
            }
            return Ok(store.restore_snapshot_file(collection, &path)?);
        }
        Ok(store.restore_snapshot(collection, snapshot)?)
    }

    pub fn delete(&self, collection: &str, snapshot: &str) -> anyhow::Result<bool> {
        match self {
            Self::Store(store) => Ok(store.delete_snapshot(collection, snapshot)?),
            Self::Server(remote) => remote.delete_snapshot(collection, snapshot),
        }
    }
}
