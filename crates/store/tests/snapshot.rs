//! Snapshots of the embedded store: taken while a writer goes on, each restores a state that
//! existed (a prefix of the writer's batches, never a torn one); a damaged snapshot is refused
//! and changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mnemo_store::{
    CollectionConfig, Distance, EmbeddedStore, OpenOptions, PayloadSelection, Point, PointId,
    ScrollRequest, StoreError, VectorSelection, VectorStore,
};
use serde_json::json;

const DIM: usize = 8;
const BATCH: u64 = 50;

fn point(id: u64) -> Point {
    let vector = (0..DIM)
        .map(|i| (id * 7 + i as u64 % 13) as f32 + 1.0)
        .collect();
    Point::dense(
        id,
        "",
        vector,
        json!({"seq": id}).as_object().cloned().unwrap_or_default(),
    )
}

fn open(dir: &std::path::Path) -> EmbeddedStore {
    // Flushes come from snapshots and the flusher thread alike: keep the thread on.
    let options = OpenOptions {
        flush_interval: Some(Duration::from_millis(200)),
        ..OpenOptions::default()
    };
    EmbeddedStore::open(dir, options).expect("open store")
}

/// Every id in the collection, in order.
fn ids(store: &EmbeddedStore, collection: &str) -> Vec<u64> {
    let mut request = ScrollRequest::new(1000);
    request.with_payload = PayloadSelection::None;
    request.with_vectors = VectorSelection::None;
    let mut out = Vec::new();
    loop {
        let page = store.scroll(collection, request.clone()).expect("scroll");
        out.extend(page.points.iter().map(|r| match r.id {
            PointId::Num(n) => n,
            PointId::Uuid(_) => u64::MAX,
        }));
        match page.next {
            Some(next) => request.offset = Some(next),
            None => return out,
        }
    }
}

/// Bytes the file system holds for the files under `dir`, and the files' total length.
#[cfg(unix)]
fn disk_use(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut held, mut length) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            let (h, l) = disk_use(&entry.path());
            held += h;
            length += l;
        } else {
            held += meta.blocks() * 512;
            length += meta.len();
        }
    }
    (held, length)
}

/// A store in `dir` with the collection `c` holding the points `ids`.
fn store_with_c(dir: &std::path::Path, ids: std::ops::Range<u64>) -> EmbeddedStore {
    let store = open(dir);
    store
        .create_collection("c", &CollectionConfig::single(DIM, Distance::Cosine))
        .expect("create");
    store.upsert("c", ids.map(point).collect()).expect("upsert");
    store
}

#[test]
fn snapshots_under_writes_restore_prefixes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(open(dir.path()));
    store
        .create_collection("live", &CollectionConfig::single(DIM, Distance::Cosine))
        .expect("create");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acknowledged, stop) = (store.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<Point> = (next..next + BATCH).map(point).collect();
                store.upsert("live", batch).expect("upsert");
                next += BATCH;
                acknowledged.store(next, Ordering::SeqCst);
            }
            next
        })
    };
    let mut taken = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(60));
        let before = acknowledged.load(Ordering::SeqCst);
        let info = store.create_snapshot("live").expect("snapshot");
        let after = acknowledged.load(Ordering::SeqCst);
        taken.push((info, before, after));
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    assert!(
        written > 10 * BATCH,
        "the writer wrote only {written} points"
    );
    assert_eq!(store.list_snapshots("live").expect("list").len(), 10);

    for (i, (info, before, after)) in taken.iter().enumerate() {
        let target = format!("restored{i}");
        let restored = store.restore_snapshot_file(
            &target,
            &dir.path()
                .join("snapshots/live")
                .join(format!("{}.snapshot", info.name)),
        );
        restored.expect("restore");
        let found = ids(&store, &target);
        let count = found.len() as u64;
        // A prefix of whole batches, between what was acknowledged before and after.
        assert_eq!(
            found,
            (0..count).collect::<Vec<_>>(),
            "snapshot {i} is not a prefix"
        );
        assert_eq!(count % BATCH, 0, "snapshot {i} holds part of a batch");
        assert!(
            (*before..=*after + BATCH).contains(&count),
            "snapshot {i}: {count} points, acknowledged {before} before and {after} after"
        );
        assert_eq!(info.points as u64, count, "snapshot {i}'s manifest count");
        // The live collection has had every batch since, so it holds at least as much; a
        // restore that wrote the engine's preallocated space out in full would hold more.
        #[cfg(unix)]
        {
            let (held, length) = disk_use(&dir.path().join("collections").join(&target));
            let (live_held, _) = disk_use(&dir.path().join("collections/live"));
            assert!(
                held <= live_held,
                "restored {i}: {held} bytes on disk (of {length} bytes of files), the live collection {live_held}"
            );
        }
        let sample = store
            .get(
                &target,
                &[PointId::Num(count.saturating_sub(1))],
                PayloadSelection::All,
                VectorSelection::All,
            )
            .expect("get");
        if count > 0 {
            assert_eq!(sample[0].payload["seq"], count - 1);
        }
    }
}

#[test]
fn damaged_snapshots_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_c(dir.path(), 0..200);
    let info = store.create_snapshot("c").expect("snapshot");
    store
        .upsert("c", (200..300).map(point).collect())
        .expect("upsert");

    let archive = dir
        .path()
        .join("snapshots/c")
        .join(format!("{}.snapshot", info.name));
    let good = std::fs::read(&archive).expect("read");
    // One byte flipped in the middle of the data.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x55;
    std::fs::write(&archive, &bad).expect("write");
    let err = store.restore_snapshot("c", &info.name).unwrap_err();
    assert!(
        matches!(err, StoreError::DamagedSnapshot { .. }),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains("BLAKE3"), "{err}");
    assert_eq!(store.count("c", None).expect("count"), 300);

    // Without the checksum file, the manifest's per-file checksums still catch it.
    let checksum = archive.with_extension("snapshot.blake3");
    let saved = std::fs::read(&checksum).expect("checksum file");
    std::fs::remove_file(&checksum).expect("remove");
    let err = store.restore_snapshot("c", &info.name).unwrap_err();
    assert!(matches!(err, StoreError::DamagedSnapshot { .. }), "{err}");
    assert_eq!(store.count("c", None).expect("count"), 300);

    // Intact again: restores the 200 points it holds.
    std::fs::write(&archive, &good).expect("write");
    std::fs::write(&checksum, &saved).expect("write");
    store.restore_snapshot("c", &info.name).expect("restore");
    assert_eq!(store.count("c", None).expect("count"), 200);
    // The engine sizes its files far ahead (a few hundred MB for these 200 points); the
    // snapshot and the restored collection cost the disk what the points take.
    assert!(
        info.size < 1 << 20,
        "a snapshot of 200 points: {} bytes",
        info.size
    );
    #[cfg(unix)]
    {
        let (held, length) = disk_use(&dir.path().join("collections/c"));
        assert!(
            held < length / 4,
            "restored: {held} bytes on disk for {length} bytes of files"
        );
    }
    // The restored collection takes writes and survives a reopen.
    store.upsert("c", vec![point(999)]).expect("upsert");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.count("c", None).expect("count"), 201);

    assert!(matches!(
        store.restore_snapshot("c", "nope"),
        Err(StoreError::UnknownSnapshot { .. })
    ));
    assert!(matches!(
        store.restore_snapshot("c", "../x"),
        Err(StoreError::BadSnapshotName(_))
    ));
    assert!(store.delete_snapshot("c", &info.name).expect("delete"));
    assert!(
        !store
            .delete_snapshot("c", &info.name)
            .expect("delete again")
    );
    assert!(store.list_snapshots("c").expect("list").is_empty());
}

#[test]
fn a_restore_or_a_snapshot_killed_midway_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_c(dir.path(), 0..100);
    drop(store);

    // What a restore killed between its two renames leaves: the collection moved aside and
    // the restored copy not yet in its place.
    let collections = dir.path().join("collections");
    std::fs::rename(collections.join("c"), collections.join(".c.replaced")).expect("rename");
    std::fs::create_dir(collections.join(".c.restoring")).expect("mkdir");
    std::fs::write(collections.join(".c.restoring/collection.json"), b"{").expect("write");
    // What a snapshot killed while it packed leaves.
    let snapshots = dir.path().join("snapshots/c");
    std::fs::create_dir_all(snapshots.join(".c-20260101T000000.000Z.staging/shard"))
        .expect("mkdir");
    std::fs::write(
        snapshots.join("c-20260101T000000.000Z.snapshot.partial"),
        b"tar",
    )
    .expect("write");

    let store = open(dir.path());
    assert_eq!(
        store.count("c", None).expect("count"),
        100,
        "the collection is back"
    );
    assert!(store.list_snapshots("c").expect("list").is_empty());
    let left: Vec<_> = [collections.clone(), snapshots.clone()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("read dir"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.') || name.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(store);

    // Killed after both renames: the copy moved aside goes, the restored collection stays.
    std::fs::create_dir(collections.join(".c.replaced")).expect("mkdir");
    let store = open(dir.path());
    assert_eq!(store.count("c", None).expect("count"), 100);
    assert!(!collections.join(".c.replaced").exists());
}

/// Snapshots and restores of one collection take turns: snapshots taken at once get names of
/// their own and each restores, and restores running beside them never share a staging folder.
#[test]
fn snapshots_and_restores_of_one_collection_take_turns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(store_with_c(dir.path(), 0..50));
    let first = store.create_snapshot("c").expect("a first snapshot");
    let taken: Vec<String> = std::thread::scope(|scope| {
        let snapshots: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| store.create_snapshot("c").expect("snapshot").name))
            .collect();
        let restores: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| store.restore_snapshot("c", &first.name).expect("restore")))
            .collect();
        for restore in restores {
            restore.join().expect("a restore thread");
        }
        snapshots
            .into_iter()
            .map(|s| s.join().expect("a snapshot thread"))
            .collect()
    });
    let mut distinct = taken.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{taken:?}");
    for name in &taken {
        let info = store.restore_snapshot("c", name).expect("each restores");
        assert_eq!(info.points, 50);
    }
    assert_eq!(ids(&store, "c"), (0..50).collect::<Vec<_>>());
}
