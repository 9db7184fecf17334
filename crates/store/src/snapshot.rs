//! Snapshots of embedded collections. qdrant-edge has no snapshot API, so one is built here:
//! writes to the collection are paused (its gate taken exclusively), the shard is flushed and
//! its files copied aside, writes resume, and the copy is packed into a tar archive with a
//! manifest of every file's BLAKE3 and size. The pause lasts one flush and one file copy; the
//! packing happens after it. A restore verifies the archive's checksum (`.blake3` beside it)
//! and every file against the manifest before anything replaces the collection.
//!
//! ```text
//! DATA_DIR/snapshots/COLLECTION/NAME.snapshot         tar: shard/..., collection.json, manifest.json
//! DATA_DIR/snapshots/COLLECTION/NAME.snapshot.blake3  "HEX  NAME.snapshot"
//! ```

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub const SNAPSHOT_EXTENSION: &str = "snapshot";
const CHECKSUM_EXTENSION: &str = "blake3";
const MANIFEST: &str = "manifest.json";
const SNAPSHOT_FORMAT: u32 = 1;

/// A snapshot as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotInfo {
    pub name: String,
    pub collection: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub size: u64,
    /// BLAKE3 of the archive, hex.
    pub checksum: String,
    pub points: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
    blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    snapshot_format: u32,
    layout_version: u64,
    collection: String,
    created: String,
    points: usize,
    files: Vec<ManifestFile>,
}

fn damaged(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::DamagedSnapshot {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Snapshot names are file names: no separators, no leading dot.
pub fn check_snapshot_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::BadSnapshotName(name.to_owned()))
    }
}

/// Copies a directory tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| StoreError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| StoreError::io(from, e))? {
        let entry = entry.map_err(|e| StoreError::io(from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| StoreError::io(&source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).map_err(|e| StoreError::io(&source, e))?;
        }
    }
    Ok(())
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| StoreError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        if kind.is_dir() {
            files_under(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
        }
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| StoreError::io(path, e))?;
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Packs the copied collection folder `staged` into `archive` (written aside, then renamed)
/// and its checksum file. `staged` holds `collection.json` and `shard/`.
pub fn pack(
    staged: &Path,
    archive: &Path,
    collection: &str,
    created: &str,
    points: usize,
    layout_version: u64,
) -> Result<SnapshotInfo> {
    let mut relative = Vec::new();
    files_under(staged, staged, &mut relative)?;
    let mut files = Vec::with_capacity(relative.len());
    for path in &relative {
        let (size, blake3) = hash_file(&staged.join(path))?;
        files.push(ManifestFile {
            path: path.to_string_lossy().replace('\\', "/"),
            size,
            blake3,
        });
    }
    let manifest = Manifest {
        snapshot_format: SNAPSHOT_FORMAT,
        layout_version,
        collection: collection.to_owned(),
        created: created.to_owned(),
        points,
        files,
    };
    let partial = archive.with_extension("snapshot.partial");
    let file = File::create(&partial).map_err(|e| StoreError::io(&partial, e))?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
    };
    {
        let mut tar = tar::Builder::new(&mut out);
        tar.mode(tar::HeaderMode::Deterministic);
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
                path: partial.clone(),
                reason: e.to_string(),
            })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest_bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, manifest_bytes.as_slice())
            .map_err(|e| StoreError::io(&partial, e))?;
        for path in &relative {
            tar.append_path_with_name(staged.join(path), path)
                .map_err(|e| StoreError::io(&partial, e))?;
        }
        tar.finish().map_err(|e| StoreError::io(&partial, e))?;
    }
    out.flush().map_err(|e| StoreError::io(&partial, e))?;
    let checksum = out.hasher.finalize().to_hex().to_string();
    let file = out
        .inner
        .into_inner()
        .map_err(|e| StoreError::io(&partial, e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io(&partial, e))?;
    let size = file
        .metadata()
        .map_err(|e| StoreError::io(&partial, e))?
        .len();
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let checksum_path = checksum_path(archive);
    fs::write(&checksum_path, format!("{checksum}  {name}\n"))
        .map_err(|e| StoreError::io(&checksum_path, e))?;
    fs::rename(&partial, archive).map_err(|e| StoreError::io(archive, e))?;
    Ok(SnapshotInfo {
        name: snapshot_name(archive),
        collection: collection.to_owned(),
        created: created.to_owned(),
        size,
        checksum,
        points,
    })
}

pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".");
    name.push(CHECKSUM_EXTENSION);
    PathBuf::from(name)
}

fn snapshot_name(archive: &Path) -> String {
    archive
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a snapshot's manifest and checksum without unpacking it.
pub fn describe(archive: &Path) -> Result<SnapshotInfo> {
    let file = File::open(archive).map_err(|e| StoreError::io(archive, e))?;
    let size = file
        .metadata()
        .map_err(|e| StoreError::io(archive, e))?
        .len();
    let mut tar = tar::Archive::new(BufReader::new(file));
    let mut entries = tar.entries().map_err(|e| damaged(archive, e.to_string()))?;
    let manifest = match entries.next() {
        Some(Ok(mut entry)) if entry.path().is_ok_and(|p| p == Path::new(MANIFEST)) => {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(archive, e.to_string()))?;
            serde_json::from_slice::<Manifest>(&bytes)
                .map_err(|e| damaged(archive, format!("bad manifest: {e}")))?
        }
        _ => return Err(damaged(archive, "no manifest at the start of the archive")),
    };
    let checksum = read_checksum(archive).ok().flatten().unwrap_or_default();
    Ok(manifest.info(archive, size, checksum))
}

impl Manifest {
    fn info(self, archive: &Path, size: u64, checksum: String) -> SnapshotInfo {
        SnapshotInfo {
            name: snapshot_name(archive),
            collection: self.collection,
            created: self.created,
            size,
            checksum,
            points: self.points,
        }
    }
}

/// What the checksum file beside `archive` says, if there is one.
fn read_checksum(archive: &Path) -> Result<Option<String>> {
    match fs::read_to_string(checksum_path(archive)) {
        Ok(text) => Ok(text.split_whitespace().next().map(str::to_owned)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(checksum_path(archive), e)),
    }
}

/// Verifies `archive` (its checksum file when present, then each file against the manifest)
/// and unpacks it into `into`, which must not exist. On any fault `into` is removed.
pub fn unpack_verified(archive: &Path, into: &Path, layout_version: u64) -> Result<SnapshotInfo> {
    let result = unpack_inner(archive, into, layout_version);
    if result.is_err() {
        let _ = fs::remove_dir_all(into);
    }
    result
}

fn unpack_inner(archive: &Path, into: &Path, layout_version: u64) -> Result<SnapshotInfo> {
    let expected = read_checksum(archive)?;
    if let Some(expected) = &expected {
        let (_, actual) = hash_file(archive)?;
        if &actual != expected {
            return Err(damaged(
                archive,
                format!("its BLAKE3 is {actual}, its checksum file says {expected}"),
            ));
        }
    }
    let file = File::open(archive).map_err(|e| StoreError::io(archive, e))?;
    let mut tar = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let mut manifest: Option<Manifest> = None;
    let mut seen = std::collections::BTreeMap::new();
    fs::create_dir_all(into).map_err(|e| StoreError::io(into, e))?;
    let entries = tar.entries().map_err(|e| damaged(archive, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(archive, e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| damaged(archive, e.to_string()))?
            .into_owned();
        let safe = path.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(damaged(
                archive,
                format!("it holds a path outside the snapshot: {}", path.display()),
            ));
        }
        if path == Path::new(MANIFEST) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(archive, e.to_string()))?;
            manifest = Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| damaged(archive, format!("bad manifest: {e}")))?,
            );
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let target = into.join(&path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let out = File::create(&target).map_err(|e| StoreError::io(&target, e))?;
        let mut out = Hashing {
            inner: BufWriter::new(out),
            hasher: blake3::Hasher::new(),
        };
        let size = std::io::copy(&mut entry, &mut out)
            .map_err(|e| damaged(archive, format!("{}: {e}", path.display())))?;
        out.flush().map_err(|e| StoreError::io(&target, e))?;
        seen.insert(
            path.to_string_lossy().replace('\\', "/"),
            (size, out.hasher.finalize().to_hex().to_string()),
        );
    }
    let manifest = manifest.ok_or_else(|| damaged(archive, "it has no manifest"))?;
    if manifest.snapshot_format != SNAPSHOT_FORMAT || manifest.layout_version != layout_version {
        return Err(damaged(
            archive,
            format!(
                "snapshot format {} of layout {}: this build reads format {SNAPSHOT_FORMAT} of layout {layout_version}",
                manifest.snapshot_format, manifest.layout_version
            ),
        ));
    }
    for file in &manifest.files {
        match seen.remove(&file.path) {
            Some((size, hash)) if size == file.size && hash == file.blake3 => {}
            Some(_) => {
                return Err(damaged(
                    archive,
                    format!("{} does not match its checksum in the manifest", file.path),
                ));
            }
            None => return Err(damaged(archive, format!("{} is missing", file.path))),
        }
    }
    if let Some(extra) = seen.keys().next() {
        return Err(damaged(archive, format!("{extra} is not in the manifest")));
    }
    let size = fs::metadata(archive)
        .map_err(|e| StoreError::io(archive, e))?
        .len();
    let checksum = match expected {
        Some(checksum) => checksum,
        None => hash_file(archive)?.1,
    };
    Ok(manifest.info(archive, size, checksum))
}
