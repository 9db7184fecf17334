//! The data directory: its layout version, the lock that keeps it to one process, JSON files
//! written atomically, and what a killed create, delete, snapshot or restore left behind.

use super::*;

pub(super) fn read(
    collections: &Collections,
) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>> {
    collections
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn write(
    collections: &Collections,
) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Collection>>> {
    collections
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn take_lock(root: &Path) -> Result<File> {
    let path = root.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let mut lines = text.lines().map(str::trim);
            let pid = lines.next().filter(|pid| !pid.is_empty());
            let holder = lines.next().filter(|line| !line.is_empty());
            return Err(StoreError::Locked {
                path: root.to_owned(),
                pid: pid.unwrap_or("unknown").to_owned(),
                holder: holder.map(str::to_owned),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    written.map_err(|e| StoreError::io(&path, e))?;
    Ok(file)
}

pub(super) fn check_layout(root: &Path) -> Result<()> {
    let path = root.join(LAYOUT_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let layout: LayoutFile = parse_json(&path, &bytes)?;
            check_version(root, layout.layout_version)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = fs::read_dir(root).map_err(|e| StoreError::io(root, e))?;
            let foreign = entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .find(|name| name != LOCK_FILE);
            if let Some(name) = foreign {
                return Err(StoreError::NotADataDir {
                    path: root.to_owned(),
                    reason: format!(
                        "it holds `{name}` but no {LAYOUT_FILE}; mnemo only creates data directories in empty folders"
                    ),
                });
            }
            write_json_atomically(
                &path,
                &LayoutFile {
                    layout_version: LAYOUT_VERSION,
                },
            )
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A directory written by another layout is refused, never read.
pub(super) fn check_version(dir: &Path, found: u64) -> Result<()> {
    if found == LAYOUT_VERSION {
        return Ok(());
    }
    Err(StoreError::LayoutVersion {
        path: dir.to_owned(),
        found,
        expected: LAYOUT_VERSION,
    })
}

pub(super) fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    written.map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A restore moves the collection aside (`.NAME.replaced`), then the restored one into place,
/// and acknowledges only after both. Killed between the two, it leaves no `NAME`: the
/// collection that was there comes back, with everything it had acknowledged. Killed after
/// both, the aside copy is dropped. (Run under the data directory's lock, before loading.)
pub(super) fn put_back_interrupted_restores(collections_dir: &Path) -> Result<()> {
    let entries = fs::read_dir(collections_dir).map_err(|e| StoreError::io(collections_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(collections_dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name
            .strip_prefix('.')
            .and_then(|rest| rest.strip_suffix(REPLACED_SUFFIX))
        else {
            continue;
        };
        let aside = entry.path();
        let dir = collections_dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&aside).map_err(|e| StoreError::io(&aside, e))?;
        } else {
            fs::rename(&aside, &dir).map_err(|e| StoreError::io(&dir, e))?;
            sync_dir(collections_dir)?;
        }
    }
    Ok(())
}

/// A snapshot killed while it was taken leaves its staged copy and its partial archive; no
/// snapshot is being taken while the data directory's lock is being taken, so both go.
pub(super) fn drop_interrupted_snapshots(snapshots_dir: &Path) -> Result<()> {
    let collections = match fs::read_dir(snapshots_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(snapshots_dir, e)),
    };
    for collection in collections {
        let collection = collection.map_err(|e| StoreError::io(snapshots_dir, e))?;
        if !collection.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = collection.path();
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') && name.ends_with(STAGED_SUFFIX) {
                fs::remove_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
            } else if name.ends_with(snapshot::PARTIAL_SUFFIX) {
                fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// The files directly in `dir` synced to disk, then `dir` itself (names added or renamed in
/// it). A file gone meanwhile (a WAL segment retired) has nothing left to sync.
pub(super) fn sync_folder_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            continue;
        }
        match File::open(&path).and_then(|file| file.sync_data()) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::io(&path, err)),
        }
    }
    sync_dir(dir)
}

/// Every file and folder under `root` synced to disk, deepest first, so that a tree written
/// by copying or unpacking is all there before anything that depended on it is deleted.
pub(super) fn sync_tree(root: &Path) -> Result<()> {
    // Our own layout, a few levels deep, but walked without recursion all the same.
    let mut folders = vec![root.to_owned()];
    let mut index = 0;
    while let Some(dir) = folders.get(index).cloned() {
        index += 1;
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let kind = entry.file_type().map_err(|e| StoreError::io(&dir, e))?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                File::open(&path)
                    .and_then(|file| file.sync_data())
                    .map_err(|e| StoreError::io(&path, e))?;
            }
        }
    }
    for dir in folders.iter().rev() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(super) fn load_collection(name: &str, dir: &Path, options: &OpenOptions) -> Result<Collection> {
    let path = dir.join(COLLECTION_FILE);
    let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
    let file: CollectionFile = parse_json(&path, &bytes)?;
    check_version(dir, file.layout_version)?;
    let shard_dir = dir.join(SHARD_DIR);
    let shard = EdgeShard::load(&shard_dir, Some(edge_config(&file.config, options)))
        .map_err(|e| backend(name, "open", e))?;
    Ok(Collection {
        config: file.config,
        shard,
        gate: RwLock::new(()),
        retired: false.into(),
        written: false.into(),
    })
}
