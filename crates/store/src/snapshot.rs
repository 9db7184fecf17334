//! Snapshots of embedded collections. qdrant-edge has no snapshot API, so one is built here:
//! writes to the collection are paused (its gate taken exclusively), the shard is flushed and
//! its files copied aside, writes resume, and the copy is packed into a zstd-compressed tar
//! archive with a manifest of every file's BLAKE3 and size. The pause lasts one flush and one
//! file copy; the packing happens after it. A restore verifies the archive's checksum
//! (`.blake3` beside it) and every file against the manifest before anything replaces the
//! collection.
//!
//! The engine's files are mostly holes: it sizes its storage files ahead (a collection of two
//! points is about 300 MB long and takes 1 MB of disk). Copies and restores therefore leave a
//! hole wherever a whole block is zeros, and the archive is compressed, so neither a snapshot
//! nor a restored collection costs the disk its files' length. Archives of format 1 (a plain
//! tar, before compression) are still read.
//!
//! ```text
//! DATA_DIR/snapshots/COLLECTION/NAME.snapshot         tar.zst: manifest.json, collection.json, shard/...
//! DATA_DIR/snapshots/COLLECTION/NAME.snapshot.blake3  "HEX  NAME.snapshot"
//! ```

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub const SNAPSHOT_EXTENSION: &str = "snapshot";
const CHECKSUM_EXTENSION: &str = "blake3";
/// An archive being written: `NAME.snapshot.partial`, renamed to `NAME.snapshot` when whole.
pub const PARTIAL_SUFFIX: &str = ".snapshot.partial";
const MANIFEST: &str = "manifest.json";

/// A manifest larger than this is not one this store wrote (it lists a file in about 150
/// bytes: this is over 400,000 files).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The most a restore writes, holes counted (the engine preallocates: a 2-point collection is
/// 316 MB of files). An archive that declares more is refused before anything is written.
pub const MAX_RESTORED_BYTES: u64 = 256 << 30;
/// 2: the tar is zstd-compressed. 1: a plain tar; still read.
const SNAPSHOT_FORMAT: u32 = 2;
const READABLE_FORMATS: std::ops::RangeInclusive<u32> = 1..=SNAPSHOT_FORMAT;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd's default level: on the engine's files (float vectors, ids, zeroed space) faster
/// than the disk, and a whole block of zeros costs a few bytes at any level.
const ZSTD_LEVEL: i32 = 3;
/// Runs of zeros shorter than this are written; whole blocks of zeros become holes.
const SPARSE_BLOCK: usize = 64 * 1024;

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

/// Copies a directory tree (files and folders only), leaving holes for blocks of zeros.
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
            let mut input = File::open(&source).map_err(|e| StoreError::io(&source, e))?;
            let output = File::create(&target).map_err(|e| StoreError::io(&target, e))?;
            // A staged copy only feeds the archive, which is synced itself.
            write_sparse(&mut input, output, SyncData::No, &mut |_| {})
                .map_err(|e| StoreError::io(&source, e))?;
        }
    }
    Ok(())
}

/// Writes everything `input` yields to `output`, seeking over whole blocks of zeros instead
/// of writing them, so the file system leaves holes there. Every byte, zeros included, is
/// passed to `seen` (for checksums). Returns the length written.
fn write_sparse(
    input: &mut impl Read,
    mut output: File,
    sync: SyncData,
    seen: &mut dyn FnMut(&[u8]),
) -> std::io::Result<u64> {
    let mut block = vec![0u8; SPARSE_BLOCK];
    let mut length = 0u64;
    let mut ends_in_hole = false;
    loop {
        let filled = fill(input, &mut block)?;
        if filled == 0 {
            break;
        }
        let data = &block[..filled];
        seen(data);
        if is_zeros(data) {
            output.seek(SeekFrom::Current(filled as i64))?;
            ends_in_hole = true;
        } else {
            output.write_all(data)?;
            ends_in_hole = false;
        }
        length += filled as u64;
    }
    if ends_in_hole {
        // A seek past the end does not make the file longer; setting its length does.
        output.set_len(length)?;
    }
    if sync == SyncData::Yes {
        output.sync_data()?;
    }
    Ok(length)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SyncData {
    Yes,
    No,
}

/// Reads until `block` is full or the input ends.
fn fill(input: &mut impl Read, block: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match input.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn is_zeros(data: &[u8]) -> bool {
    // A fold over a page vectorises; stopping between pages spares most of a block of data.
    data.chunks(4096)
        .all(|page| page.iter().fold(0u8, |acc, &b| acc | b) == 0)
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
    let partial = archive.with_extension(&PARTIAL_SUFFIX[1..]);
    let packed = pack_to(
        staged,
        archive,
        &partial,
        collection,
        created,
        points,
        layout_version,
    );
    if packed.is_err() {
        // A full disk is the likeliest cause: what was written must not stay to fill it.
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(checksum_path(archive));
    }
    packed
}

fn pack_to(
    staged: &Path,
    archive: &Path,
    partial: &Path,
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
    let file = File::create(partial).map_err(|e| StoreError::io(partial, e))?;
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
    };
    let mut compressed = zstd::stream::write::Encoder::new(hashing, ZSTD_LEVEL)
        .map_err(|e| StoreError::io(partial, e))?;
    {
        let mut tar = tar::Builder::new(&mut compressed);
        tar.mode(tar::HeaderMode::Deterministic);
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
                path: partial.to_owned(),
                reason: e.to_string(),
            })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest_bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, manifest_bytes.as_slice())
            .map_err(|e| StoreError::io(partial, e))?;
        for path in &relative {
            tar.append_path_with_name(staged.join(path), path)
                .map_err(|e| StoreError::io(partial, e))?;
        }
        tar.finish().map_err(|e| StoreError::io(partial, e))?;
    }
    let mut out = compressed
        .finish()
        .map_err(|e| StoreError::io(partial, e))?;
    out.flush().map_err(|e| StoreError::io(partial, e))?;
    let checksum = out.hasher.finalize().to_hex().to_string();
    let file = out
        .inner
        .into_inner()
        .map_err(|e| StoreError::io(partial, e.into_error()))?;
    file.sync_all().map_err(|e| StoreError::io(partial, e))?;
    let size = file
        .metadata()
        .map_err(|e| StoreError::io(partial, e))?
        .len();
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The checksum file, then the archive's name, on disk before the snapshot is reported:
    // after a power loss a listed snapshot is whole and has its checksum.
    let checksum_path = checksum_path(archive);
    File::create(&checksum_path)
        .and_then(|mut file| {
            file.write_all(format!("{checksum}  {name}\n").as_bytes())?;
            file.sync_all()
        })
        .map_err(|e| StoreError::io(&checksum_path, e))?;
    fs::rename(partial, archive).map_err(|e| StoreError::io(archive, e))?;
    if let Some(folder) = archive.parent() {
        File::open(folder)
            .and_then(|folder| folder.sync_all())
            .map_err(|e| StoreError::io(folder, e))?;
    }
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

/// The tar inside `archive`: decompressed when it begins with zstd's magic number (format 2),
/// read as it is otherwise (format 1). Also returns the archive's size.
fn open_tar(archive: &Path) -> Result<(tar::Archive<Box<dyn Read>>, u64)> {
    let file = File::open(archive).map_err(|e| StoreError::io(archive, e))?;
    let size = file
        .metadata()
        .map_err(|e| StoreError::io(archive, e))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let start = reader.fill_buf().map_err(|e| StoreError::io(archive, e))?;
    let tar: Box<dyn Read> = if start.starts_with(&ZSTD_MAGIC) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| damaged(archive, e.to_string()))?,
        )
    } else {
        Box::new(reader)
    };
    Ok((tar::Archive::new(tar), size))
}

/// Reads a snapshot's manifest and checksum without unpacking it.
pub fn describe(archive: &Path) -> Result<SnapshotInfo> {
    let (mut tar, size) = open_tar(archive)?;
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
    let (mut tar, size) = open_tar(archive)?;
    fs::create_dir_all(into).map_err(|e| StoreError::io(into, e))?;
    let mut entries = tar.entries().map_err(|e| damaged(archive, e.to_string()))?;
    // The manifest comes first (every format writes it first): each later entry is held to
    // it before a byte of it is written.
    let manifest: Manifest = match entries.next() {
        Some(Ok(entry)) if entry.path().is_ok_and(|p| p == Path::new(MANIFEST)) => {
            if entry.header().size().unwrap_or(u64::MAX) > MAX_MANIFEST_BYTES {
                return Err(damaged(
                    archive,
                    "its manifest is larger than a manifest can be",
                ));
            }
            let mut bytes = Vec::new();
            entry
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(archive, e.to_string()))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| damaged(archive, format!("bad manifest: {e}")))?
        }
        Some(Err(e)) => return Err(damaged(archive, e.to_string())),
        _ => return Err(damaged(archive, "it has no manifest at its start")),
    };
    let declared: u64 = manifest.files.iter().map(|file| file.size).sum();
    if declared > MAX_RESTORED_BYTES {
        return Err(damaged(
            archive,
            format!(
                "its manifest declares {declared} bytes of files, more than the {MAX_RESTORED_BYTES} a restore writes"
            ),
        ));
    }
    let expected_sizes: std::collections::HashMap<&str, u64> = manifest
        .files
        .iter()
        .map(|file| (file.path.as_str(), file.size))
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| damaged(archive, e.to_string()))?;
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
        // The builder stores files with holes as GNU sparse entries; reading one yields its
        // zeros too.
        let kind = entry.header().entry_type();
        if !kind.is_file() && !kind.is_gnu_sparse() {
            continue;
        }
        let key = path.to_string_lossy().replace('\\', "/");
        let Some(&expected) = expected_sizes.get(key.as_str()) else {
            return Err(damaged(archive, format!("{key} is not in the manifest")));
        };
        let claimed = if kind.is_gnu_sparse() {
            entry.header().as_gnu().and_then(|gnu| gnu.real_size().ok())
        } else {
            entry.header().size().ok()
        };
        if claimed != Some(expected) {
            return Err(damaged(
                archive,
                format!(
                    "{key} is {} in the archive but {expected} bytes in the manifest",
                    claimed.map_or("of no readable size".to_owned(), |size| format!(
                        "{size} bytes"
                    ))
                ),
            ));
        }
        let target = into.join(&path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let out = File::create(&target).map_err(|e| StoreError::io(&target, e))?;
        let mut hasher = blake3::Hasher::new();
        // At most one byte past the manifest's size is read, whatever the entry holds.
        let mut bounded = entry.take(expected + 1);
        // Synced before the restored folder is renamed into place.
        let size = write_sparse(&mut bounded, out, SyncData::Yes, &mut |data| {
            hasher.update(data);
        })
        .map_err(|e| damaged(archive, format!("{}: {e}", path.display())))?;
        seen.insert(key, (size, hasher.finalize().to_hex().to_string()));
    }
    if !READABLE_FORMATS.contains(&manifest.snapshot_format)
        || manifest.layout_version != layout_version
    {
        return Err(damaged(
            archive,
            format!(
                "snapshot format {} of layout {}: this build reads formats 1 to {SNAPSHOT_FORMAT} of layout {layout_version}",
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
    let checksum = match expected {
        Some(checksum) => checksum,
        None => hash_file(archive)?.1,
    };
    Ok(manifest.info(archive, size, checksum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain-tar archive (format 1) of `manifest` (path, size) then `entries`, as an attacker
    /// would write one.
    fn crafted(
        dir: &Path,
        name: &str,
        manifest: &[(&str, u64)],
        entries: &[(&str, Vec<u8>)],
    ) -> PathBuf {
        let path = dir.join(name);
        let mut tar = tar::Builder::new(File::create(&path).unwrap());
        let manifest = Manifest {
            snapshot_format: 1,
            layout_version: 1,
            collection: "c".into(),
            created: "2026-12-07T00:00:00.000Z".into(),
            points: 0,
            files: manifest
                .iter()
                .map(|(path, size)| ManifestFile {
                    path: (*path).to_owned(),
                    size: *size,
                    blake3: "0".repeat(64),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let mut append = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, data).unwrap();
        };
        append(MANIFEST, &bytes);
        for (path, data) in entries {
            append(path, data);
        }
        tar.finish().unwrap();
        path
    }

    #[test]
    fn entries_are_held_to_the_manifest_before_a_byte_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("restored");
        let refused = |archive: PathBuf| {
            let error = unpack_verified(&archive, &into, 1).unwrap_err().to_string();
            assert!(!into.exists(), "a refused archive leaves nothing");
            error
        };
        let lying = crafted(
            dir.path(),
            "lying",
            &[("shard/a", 10)],
            &[("shard/a", vec![1; 100_000])],
        );
        let error = refused(lying);
        assert!(
            error.contains("shard/a is 100000 bytes in the archive but 10 bytes in the manifest"),
            "{error}"
        );
        let extra = crafted(
            dir.path(),
            "extra",
            &[("shard/a", 3)],
            &[("shard/b", vec![1, 2, 3])],
        );
        assert!(refused(extra).contains("shard/b is not in the manifest"));
        let huge = crafted(
            dir.path(),
            "huge",
            &[("shard/a", 200 << 30), ("shard/b", 100 << 30)],
            &[],
        );
        assert!(refused(huge).contains("more than the"));
        let late = dir.path().join("late");
        {
            let mut tar = tar::Builder::new(File::create(&late).unwrap());
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "shard/a", &[1u8, 2, 3][..])
                .unwrap();
            tar.finish().unwrap();
        }
        assert!(refused(late).contains("no manifest at its start"));
    }

    /// Bytes the file system holds for a file, and its length.
    #[cfg(unix)]
    fn allocated(path: &Path) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).expect("metadata");
        (meta.blocks() * 512, meta.len())
    }

    /// 4 MiB of zeros, 3 bytes of data, 4 MiB of zeros: the shape of the engine's files.
    fn mostly_zeros() -> Vec<u8> {
        let mut content = vec![0u8; 8 << 20];
        content[(4 << 20) + 10..(4 << 20) + 13].copy_from_slice(b"abc");
        content
    }

    #[test]
    fn sparse_writes_keep_every_byte_and_leave_holes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content = mostly_zeros();
        let target = dir.path().join("copy");
        let mut seen = Vec::new();
        let written = write_sparse(
            &mut content.as_slice(),
            File::create(&target).expect("create"),
            SyncData::Yes,
            &mut |data| seen.extend_from_slice(data),
        )
        .expect("write");
        assert_eq!(written, content.len() as u64);
        assert!(seen == content, "every byte is passed on, zeros included");
        assert!(fs::read(&target).expect("read") == content);
        #[cfg(unix)]
        {
            let (bytes_held, length) = allocated(&target);
            assert_eq!(length, content.len() as u64);
            assert!(
                bytes_held <= 2 * SPARSE_BLOCK as u64,
                "{bytes_held} bytes held for one block of data"
            );
        }
        // Data at the very end: no hole to extend, the length is the data's.
        let mut ending = vec![0u8; 3 * SPARSE_BLOCK];
        ending.push(7);
        let target = dir.path().join("ending");
        write_sparse(
            &mut ending.as_slice(),
            File::create(&target).expect("create"),
            SyncData::No,
            &mut |_| {},
        )
        .expect("write");
        assert!(fs::read(&target).expect("read") == ending);
    }

    fn pack_one(dir: &Path) -> PathBuf {
        let staged = dir.join("staged");
        fs::create_dir_all(staged.join("shard")).expect("mkdir");
        fs::write(staged.join("shard/data"), mostly_zeros()).expect("write");
        fs::write(staged.join("collection.json"), b"{}").expect("write");
        let archive = dir.join("c-1.snapshot");
        pack(&staged, &archive, "c", "2026-01-01T00:00:00Z", 1, 7).expect("pack");
        archive
    }

    #[test]
    fn archives_are_compressed_and_restore_sparse() {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = pack_one(dir.path());
        let size = fs::metadata(&archive).expect("metadata").len();
        assert!(size < 64 * 1024, "8 MiB of mostly zeros took {size} bytes");
        let info = unpack_verified(&archive, &dir.path().join("restored"), 7).expect("unpack");
        assert_eq!(info.size, size);
        let restored = dir.path().join("restored/shard/data");
        assert!(fs::read(&restored).expect("read") == mostly_zeros());
        #[cfg(unix)]
        {
            let (bytes_held, _) = allocated(&restored);
            assert!(
                bytes_held <= 2 * SPARSE_BLOCK as u64,
                "{bytes_held} bytes held"
            );
        }
    }

    #[test]
    fn a_failed_pack_leaves_no_partial_archive() {
        let dir = tempfile::tempdir().expect("temp dir");
        let staged = dir.path().join("staged");
        fs::create_dir_all(&staged).expect("mkdir");
        fs::write(staged.join("collection.json"), b"{}").expect("write");
        let archive = dir.path().join("c-1.snapshot");
        // The checksum file cannot be written: the pack fails after the archive was.
        fs::create_dir(checksum_path(&archive)).expect("mkdir");
        let err = pack(&staged, &archive, "c", "2026-01-01T00:00:00Z", 0, 7).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert!(!archive.with_extension("snapshot.partial").exists());
        assert!(!archive.exists());
    }

    #[test]
    fn plain_tar_archives_of_format_1_are_still_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = pack_one(dir.path());
        let compressed = fs::read(&archive).expect("read");
        let plain = zstd::stream::decode_all(compressed.as_slice()).expect("decompress");
        assert!(!plain.starts_with(&ZSTD_MAGIC));
        fs::write(&archive, &plain).expect("write");
        let checksum = blake3::hash(&plain).to_hex().to_string();
        fs::write(
            checksum_path(&archive),
            format!("{checksum}  c-1.snapshot\n"),
        )
        .expect("write");
        assert_eq!(describe(&archive).expect("describe").points, 1);
        let info = unpack_verified(&archive, &dir.path().join("restored"), 7).expect("unpack");
        assert_eq!(info.checksum, checksum);
        assert!(fs::read(dir.path().join("restored/shard/data")).expect("read") == mostly_zeros());
    }
}
