//! `mnemo model migrate` in a real child process killed with SIGKILL in the middle: run
//! again, it goes on from what the shadow collection holds (the chunks written are not
//! embedded again), then `mnemo model switch` moves the collection's name and search answers
//! with the new model; `--back` returns.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MPNET: &str = "all-mpnet-base-v2";

#[test]
fn a_killed_migration_goes_on_where_it_stopped() {
    let data = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    // 32 files of 20 tasks: four chunks of eight files for the migration.
    common::write_plans(plans.path(), 32);
    let plans_arg = plans.path().to_str().unwrap();
    common::ok(common::mnemo(
        data.path(),
        &["index", plans_arg, "--tasks-only"],
    ));

    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(["model", "migrate", "--to", MPNET, "--data-dir"])
        .arg(data.path())
        .env_remove("MNEMO_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mnemo model migrate starts");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    // The second chunk embedded: the first one's points are written by now (the writer
    // stores a chunk while the next is embedded).
    let started = Instant::now();
    let mut lines = stderr.lines();
    let mut chunks = 0;
    while chunks < 2 {
        let line = lines
            .next()
            .expect("the migration printed its progress")
            .expect("a line");
        if line.starts_with("migrating:") && line.contains(" read, ") {
            chunks += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let output = common::mnemo(data.path(), &["model", "migrate", "--to", MPNET, "--json"]);
    let report: Value = serde_json::from_str(&common::ok(output)).expect("a JSON report");
    assert_eq!(report["points_source"], 640, "{report}");
    assert_eq!(report["points_target"], 640, "{report}");
    let embedded = report["embedded"].as_u64().unwrap();
    assert!(
        embedded <= 640 - 160,
        "the chunks written before the kill were embedded again: {report}"
    );

    let switched = common::ok(common::mnemo(
        data.path(),
        &["model", "switch", "--collection", "tasks"],
    ));
    assert!(switched.contains("tasks--all-mpnet-base-v2"), "{switched}");
    let hits = common::json_lines(&common::mnemo(
        data.path(),
        &["search", "vérifier le module 42", "--json", "--limit", "1"],
    ));
    assert_eq!(hits[0]["model"], MPNET, "{hits:?}");
    common::ok(common::mnemo(
        data.path(),
        &["model", "switch", "--collection", "tasks", "--back"],
    ));
    let hits = common::json_lines(&common::mnemo(
        data.path(),
        &["search", "vérifier le module 42", "--json", "--limit", "1"],
    ));
    assert_eq!(hits[0]["model"], "all-MiniLM-L6-v2", "{hits:?}");
}
