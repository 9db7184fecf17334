//! What only the embedded store has: the data directory's lock and layout version. Its
//! collections, points, filters and refusals are tested with the other backends in
//! `backends.rs`.

use mnemo_store::{EmbeddedStore, OpenOptions, StoreError};

fn open(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(dir, OpenOptions::default()).unwrap()
}

#[test]
fn a_second_opener_is_told_who_holds_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = EmbeddedStore::open(dir.path(), OpenOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "data directory {} is locked by process {}; stop it or use another --data-dir",
            dir.path().display(),
            std::process::id()
        )
    );
    first
        .announce("mnemo serve at http://127.0.0.1:6343")
        .unwrap();
    first.announce("http://127.0.0.1:7000").unwrap();
    match EmbeddedStore::open(dir.path(), OpenOptions::default()) {
        Err(StoreError::Locked { pid, holder, .. }) => {
            assert_eq!(pid, std::process::id().to_string());
            assert_eq!(holder.as_deref(), Some("http://127.0.0.1:7000"));
        }
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn another_layout_version_or_a_foreign_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    std::fs::write(dir.path().join("mnemo.json"), r#"{"layout_version": 0}"#).unwrap();
    let err = EmbeddedStore::open(dir.path(), OpenOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StoreError::LayoutVersion {
                found: 0,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "mine").unwrap();
    let err = EmbeddedStore::open(foreign.path(), OpenOptions::default())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("is not a mnemo data directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

/// A failed sync to disk is not forgotten: the store acknowledges no write after it (nor
/// says it is healthy) until it is opened again. The fault is real: the collection's files are
/// taken away from under it.
#[test]
fn after_a_failed_sync_no_write_is_acknowledged() {
    use mnemo_store::{CollectionConfig, Distance, Point, PointId, Vector, VectorStore};
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        flush_interval: None,
        ..OpenOptions::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).unwrap();
    store
        .create_collection("c", &CollectionConfig::single(2, Distance::Dot))
        .unwrap();
    let point = |id: u64| Point {
        id: PointId::Num(id),
        vectors: [(String::new(), Vector::Dense(vec![1.0, id as f32]))].into(),
        payload: Default::default(),
    };
    store.upsert("c", vec![point(1)]).unwrap();
    store.health().unwrap();
    std::fs::remove_dir_all(dir.path().join("collections/c/shard")).unwrap();
    store.upsert("c", vec![point(2)]).unwrap();
    let failed = store.flush().expect_err("the sync fails without its files");
    assert!(!matches!(failed, StoreError::NotDurable(_)), "{failed}");
    let refused = store.upsert("c", vec![point(3)]).unwrap_err();
    assert!(matches!(refused, StoreError::NotDurable(_)), "{refused}");
    assert!(refused.is_unavailable());
    assert!(
        refused.to_string().contains("acknowledges no more writes"),
        "{refused}"
    );
    assert!(store.health().is_err());
    assert!(
        store
            .create_collection("d", &CollectionConfig::single(2, Distance::Dot))
            .is_err()
    );
}

/// Under `Durability::Fsync` a write is acknowledged only once its write-ahead log is synced:
/// when that sync fails (the collection's files taken away, as above), the write itself is an
/// error, where the periodic mode acknowledged it and failed only at the next flush.
#[test]
fn under_fsync_a_write_whose_sync_fails_is_not_acknowledged() {
    use mnemo_store::{
        CollectionConfig, Distance, Durability, Point, PointId, Vector, VectorStore,
    };
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        flush_interval: None,
        durability: Durability::Fsync,
        ..OpenOptions::default()
    };
    let point = |id: u64| Point {
        id: PointId::Num(id),
        vectors: [(String::new(), Vector::Dense(vec![1.0, id as f32]))].into(),
        payload: Default::default(),
    };
    {
        let store = EmbeddedStore::open(dir.path(), options.clone()).unwrap();
        store
            .create_collection("c", &CollectionConfig::single(2, Distance::Dot))
            .unwrap();
        store.upsert("c", vec![point(1), point(2)]).unwrap();
        store
            .delete("c", mnemo_store::PointSelector::Ids(vec![PointId::Num(2)]))
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), options).unwrap();
    assert_eq!(store.count("c", None).unwrap(), 1);
    std::fs::remove_dir_all(dir.path().join("collections/c/shard")).unwrap();
    let failed = store
        .upsert("c", vec![point(3)])
        .expect_err("a write whose log cannot be synced is not acknowledged");
    assert!(!matches!(failed, StoreError::NotDurable(_)), "{failed}");
    let refused = store.upsert("c", vec![point(4)]).unwrap_err();
    assert!(matches!(refused, StoreError::NotDurable(_)), "{refused}");
    assert!("fsync".parse::<Durability>().unwrap() == Durability::Fsync);
    let unknown = "always".parse::<Durability>().unwrap_err().to_string();
    assert!(unknown.contains("\"periodic\""), "{unknown}");
}

/// A service's store (`optimize_interval` set) optimises what was written without being asked:
/// past the indexing threshold, written vectors end up in HNSW; a store without the interval
/// leaves them to the next `optimize` call.
#[test]
fn a_service_store_optimises_what_was_written_in_the_background() {
    use mnemo_store::{CollectionConfig, Distance, Point, PointId, Vector, VectorStore};
    use std::time::{Duration, Instant};
    const POINTS: u64 = 8_000; // 12 MB of 384-d vectors: past qdrant's 10 MB indexing threshold
    let write = |store: &EmbeddedStore| {
        store
            .create_collection("c", &CollectionConfig::single(384, Distance::Cosine))
            .unwrap();
        // One upsert: a tick between two smaller ones could seal a part of the points into an
        // optimised segment and leave the rest in a new one, below the indexing threshold.
        for chunk in (0..POINTS).collect::<Vec<_>>().chunks(POINTS as usize) {
            let points = chunk
                .iter()
                .map(|&id| Point {
                    id: PointId::Num(id),
                    vectors: [(
                        String::new(),
                        Vector::Dense(
                            (0..384)
                                .map(|i| ((id * 31 + i) % 97) as f32 + 1.0)
                                .collect(),
                        ),
                    )]
                    .into(),
                    payload: Default::default(),
                })
                .collect();
            store.upsert("c", points).unwrap();
        }
    };

    let idle = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(idle.path(), OpenOptions::default()).unwrap();
    write(&store);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(store.collection_info("c").unwrap().indexed_vectors, 0);

    let service = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        optimize_interval: Some(Duration::from_millis(200)),
        ..OpenOptions::default()
    };
    let store = EmbeddedStore::open(service.path(), options).unwrap();
    write(&store);
    let started = Instant::now();
    let mut info = store.collection_info("c").unwrap();
    while info.indexed_vectors < POINTS as usize && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
        info = store.collection_info("c").unwrap();
    }
    assert_eq!(info.indexed_vectors, POINTS as usize, "{info:?}");
    assert_eq!(info.points, POINTS as usize);
}
