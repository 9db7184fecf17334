//! Acknowledged writes survive `kill -9`. A child process (this test binary, re-run in child
//! mode) upserts batches and prints each acknowledged batch; the parent kills it with SIGKILL
//! at a pseudo-random moment, reopens the data directory, and checks that every acknowledged
//! point is there with its exact vector and payload. `MNEMO_CRASH_CYCLES` sets the number of
//! cycles (default 20; `bench/crash.sh` runs 200).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mnemo_store::{
    CollectionConfig, Distance, EmbeddedStore, OpenOptions, PayloadSelection, Point, PointId,
    StoreError, VectorSelection, VectorStore,
};
use serde_json::json;

const DIM: usize = 16;
const BATCH: u64 = 64;
const CHILD_DIR_ENV: &str = "MNEMO_CRASH_CHILD_DIR";
const CHILD_START_ENV: &str = "MNEMO_CRASH_CHILD_START";

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn vector(id: u64) -> Vec<f32> {
    let mut state = id;
    (0..DIM)
        .map(|_| (splitmix(&mut state) % 1000) as f32 / 100.0 + 0.01)
        .collect()
}

fn point(id: u64) -> Point {
    Point::dense(
        id,
        "",
        vector(id),
        json!({"n": id, "text": format!("point {id}")})
            .as_object()
            .unwrap()
            .clone(),
    )
}

/// Child mode: write until killed, printing `ack LAST` after each batch the store accepted.
#[test]
#[ignore = "run by crash_cycles as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut next: u64 = std::env::var(CHILD_START_ENV).unwrap().parse().unwrap();
    let store = EmbeddedStore::open(Path::new(&dir), OpenOptions::default()).unwrap();
    match store.create_collection("c", &CollectionConfig::single(DIM, Distance::Dot)) {
        Ok(()) | Err(StoreError::CollectionExists(_)) => {}
        Err(err) => panic!("{err}"),
    }
    loop {
        let batch = (next..next + BATCH).map(point).collect();
        store.upsert("c", batch).unwrap();
        next += BATCH;
        println!("ack {}", next - 1);
    }
}

#[test]
fn crash_cycles() {
    let cycles: usize = std::env::var("MNEMO_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x5EED_u64;
    let mut acknowledged: Option<u64> = None;
    let mut killed_before_first_ack = 0;
    for cycle in 0..cycles {
        let start = acknowledged.map_or(0, |last| last + 1);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_START_ENV, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ack ") {
                    last = Some(id.parse::<u64>().unwrap());
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(20 + splitmix(&mut rng) % 250));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let last = reader.join().unwrap();
        match last {
            Some(last) => acknowledged = Some(last),
            None => killed_before_first_ack += 1,
        }

        let store = EmbeddedStore::open(
            dir.path(),
            OpenOptions {
                flush_interval: None,
                ..OpenOptions::default()
            },
        )
        .unwrap_or_else(|err| panic!("cycle {cycle}: reopening after kill -9 failed: {err}"));
        let Some(last) = acknowledged else { continue };
        // Every point this child acknowledged, and a sample of the earlier ones.
        let mut ids: std::collections::BTreeSet<u64> = (start..=last).collect();
        ids.extend((0..256).map(|_| splitmix(&mut rng) % (last + 1)));
        let ids: Vec<PointId> = ids.into_iter().map(PointId::Num).collect();
        let got = store
            .get("c", &ids, PayloadSelection::All, VectorSelection::All)
            .unwrap_or_else(|err| panic!("cycle {cycle}: {err}"));
        assert_eq!(
            got.len(),
            ids.len(),
            "cycle {cycle}: acknowledged points lost"
        );
        for record in got {
            let PointId::Num(id) = record.id else {
                panic!("unexpected id {}", record.id)
            };
            assert_eq!(
                record.vectors[""].as_dense().unwrap(),
                vector(id).as_slice(),
                "cycle {cycle}, point {id}"
            );
            assert_eq!(record.payload["n"], id, "cycle {cycle}, point {id}");
        }
        let count = store.count("c", None).unwrap() as u64;
        assert!(
            count > last,
            "cycle {cycle}: {count} points, {} acknowledged",
            last + 1
        );
    }
    let last = acknowledged.expect("no child acknowledged anything: the children did not run");
    println!(
        "kill -9: {cycles} cycles, {} acknowledged points all present after each reopen ({killed_before_first_ack} children killed before their first ack)",
        last + 1
    );
}
