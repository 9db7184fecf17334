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
