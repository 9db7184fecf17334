//! Taking a snapshot of a collection (flushed and copied under its gate, packed outside it)
//! and restoring one (verified into a staging folder, then swapped in by renames).

use super::*;

impl EmbeddedStore {
    pub(super) fn take_snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        // The lock first: a restore that ran while this waited has replaced the collection,
        // and the snapshot is of the one there now.
        let maintenance = self.maintenance(name);
        let _alone = maintenance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let collection = self.collection(name)?;
        let dir = self.snapshots_dir(name)?;
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let now = chrono::Utc::now();
        let created = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stamp = now.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let mut snapshot_name = format!("{name}-{stamp}");
        let mut n = 1;
        while dir
            .join(format!("{snapshot_name}.{SNAPSHOT_EXTENSION}"))
            .exists()
        {
            n += 1;
            snapshot_name = format!("{name}-{stamp}-{n}");
        }
        let staged = dir.join(format!(".{snapshot_name}{STAGED_SUFFIX}"));
        if staged.exists() {
            fs::remove_dir_all(&staged).map_err(|e| StoreError::io(&staged, e))?;
        }
        let collection_dir = self.root.join(COLLECTIONS_DIR).join(name);
        let copied = (|| {
            let _pause = collection
                .gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if collection.retired.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Replaced(name.to_owned()));
            }
            collection
                .shard
                .flush()
                .map_err(|e| backend(name, "snapshot", e))?;
            let points = collection
                .shard
                .info()
                .map_err(|e| backend(name, "snapshot", e))?
                .points_count;
            copy_tree(&collection_dir.join(SHARD_DIR), &staged.join(SHARD_DIR))?;
            fs::copy(
                collection_dir.join(COLLECTION_FILE),
                staged.join(COLLECTION_FILE),
            )
            .map_err(|e| StoreError::io(&collection_dir, e))?;
            Ok(points)
        })();
        let packed = copied.and_then(|points| {
            let archive = dir.join(format!("{snapshot_name}.{SNAPSHOT_EXTENSION}"));
            snapshot::pack(&staged, &archive, name, &created, points, LAYOUT_VERSION)
        });
        let _ = fs::remove_dir_all(&staged);
        packed
    }

    pub(super) fn restore_from(&self, name: &str, archive: &Path) -> Result<SnapshotInfo> {
        check_collection_name(name)?;
        let maintenance = self.maintenance(name);
        let _alone = maintenance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let collections_dir = self.root.join(COLLECTIONS_DIR);
        let staging = collections_dir.join(format!(".{name}.restoring"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        }
        let info = snapshot::unpack_verified(archive, &staging, LAYOUT_VERSION)?;
        let config_path = staging.join(COLLECTION_FILE);
        // The config is the archive's word too: it must be one this store could have made.
        let config_ok = fs::read(&config_path)
            .map_err(|e| StoreError::io(&config_path, e))
            .and_then(|bytes| parse_json::<CollectionFile>(&config_path, &bytes))
            .and_then(|file| file.config.validate());
        if let Err(err) = config_ok {
            let _ = fs::remove_dir_all(&staging);
            return Err(StoreError::DamagedSnapshot {
                path: archive.to_owned(),
                reason: err.to_string(),
            });
        }
        // On disk whole before the collection it replaces is let go: a power loss after the
        // swap must not find the new copy's files half written and the old one deleted.
        if let Err(err) = sync_tree(&staging) {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
        let dir = collections_dir.join(name);
        let replaced = collections_dir.join(format!(".{name}{REPLACED_SUFFIX}"));
        let mut collections = write(&self.collections);
        let old = collections.remove(name);
        if let Some(old) = &old {
            old.retire();
            fs::rename(&dir, &replaced).map_err(|e| StoreError::io(&dir, e))?;
        }
        let swapped = fs::rename(&staging, &dir)
            .map_err(|e| StoreError::io(&dir, e))
            .and_then(|()| sync_dir(&collections_dir))
            .and_then(|()| load_collection(name, &dir, &self.options));
        match swapped {
            Ok(collection) => {
                collections.insert(name.to_owned(), Arc::new(collection));
                drop(collections);
                drop(old);
                if replaced.exists() {
                    fs::remove_dir_all(&replaced).map_err(|e| StoreError::io(&replaced, e))?;
                }
                Ok(info)
            }
            Err(err) => {
                // Put the collection that was there back. The failed one is moved out of the
                // way whole first: a kill in the middle never leaves half of it under the name
                // (which would make the next open drop the collection moved aside).
                if fs::rename(&dir, &staging).is_ok() {
                    let _ = fs::remove_dir_all(&staging);
                }
                if old.is_some() {
                    drop(old);
                    fs::rename(&replaced, &dir).map_err(|e| StoreError::io(&dir, e))?;
                    let collection = load_collection(name, &dir, &self.options)?;
                    collections.insert(name.to_owned(), Arc::new(collection));
                }
                Err(err)
            }
        }
    }
}
