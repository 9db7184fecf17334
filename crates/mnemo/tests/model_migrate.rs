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
        &["model", "rollback", "--collection", "tasks"],
    ));
    let hits = common::json_lines(&common::mnemo(
        data.path(),
        &["search", "vérifier le module 42", "--json", "--limit", "1"],
    ));
    assert_eq!(hits[0]["model"], "all-MiniLM-L6-v2", "{hits:?}");

    // Switched again and finished: the old collection goes once its retention has passed.
    common::ok(common::mnemo(data.path(), &["model", "switch"]));
    let kept = common::failed(common::mnemo(data.path(), &["model", "finish"]));
    assert!(kept.contains("kept for a way back"), "{kept}");
    let finished = common::ok(common::mnemo(
        data.path(),
        &["model", "finish", "--keep-days", "0"],
    ));
    assert!(finished.contains("deleted `tasks`"), "{finished}");
    let hits = common::json_lines(&common::mnemo(
        data.path(),
        &["search", "vérifier le module 42", "--json", "--limit", "1"],
    ));
    assert_eq!(hits[0]["model"], MPNET, "{hits:?}");

    // `mnemo eval`: the same scores as the migration's report, on the user's queries.
    let queries = plans.path().join("labelled.jsonl");
    std::fs::write(
        &queries,
        "{\"query\": \"vérifier le module 42\", \"expected\": [\"plan-002.md:5\"]}\n{\"query\": \"Tâche 7 du plan 3\", \"expected\": [\"plan-003.md:10\"]}\n",
    )
    .unwrap();
    let scores = common::json_lines(&common::mnemo(
        data.path(),
        &["eval", "--queries", queries.to_str().unwrap(), "--json"],
    ));
    let modes: Vec<&str> = scores.iter().map(|s| s["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["dense", "hybrid"], "{scores:?}");
    for score in &scores {
        assert_eq!(score["model"], MPNET);
        assert_eq!(score["queries"], 2);
        assert!(score["hit_at_10"].as_f64().unwrap() > 0.0, "{score}");
    }
    let broken = plans.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"query\": \"x\"}\n").unwrap();
    let said = common::failed(common::mnemo(
        data.path(),
        &["eval", "--queries", broken.to_str().unwrap()],
    ));
    assert!(said.contains("line 1"), "{said}");
}

/// The same over REST: started (202), followed until built, its events in the log, switched
/// in one call; the collection then says which model and collection answer for it.
#[test]
fn a_migration_over_rest_is_followed_and_switched() {
    use reqwest::blocking::Client;
    let data = tempfile::tempdir().unwrap();
    let plans = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans");
    common::ok(common::mnemo(
        data.path(),
        &["index", plans.to_str().unwrap(), "--tasks-only"],
    ));
    let config = data.path().join("mnemo.toml");
    std::fs::write(&config, "query_log = 100\n").unwrap();
    let server = common::Served::start(data.path(), &["--config".as_ref(), config.as_os_str()]);
    let base = server.base.clone();
    let client = Client::new();
    let url = |path: &str| format!("{base}{path}");

    // Questions people asked: kept (query_log), then compared in the report.
    for query in [
        "lire les cases à cocher",
        "écrire les tests",
        "lire les cases à cocher",
        "la recherche hybride",
    ] {
        let answer = client
            .post(url("/api/v1/collections/tasks/search"))
            .json(&serde_json::json!({"text": query, "limit": 3}))
            .send()
            .unwrap();
        assert!(answer.status().is_success());
    }
    // The query-log component writes them to the records every 10 s: once written, they
    // must still count once each in the report.
    std::thread::sleep(Duration::from_millis(10_500));
    let bad = client
        .post(url("/api/v1/collections/tasks/migration"))
        .json(&serde_json::json!({"to": "no-such-model"}))
        .send()
        .unwrap();
    assert_eq!(
        bad.status().as_u16(),
        404,
        "an unknown model is the caller's"
    );
    let started = client
        .post(url("/api/v1/collections/tasks/migration"))
        .json(&serde_json::json!({"to": MPNET}))
        .send()
        .unwrap();
    assert_eq!(started.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let status: Value = client
            .get(url("/api/v1/collections/tasks/migration"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if status["running"] == false && status["migration"]["state"] != "building" {
            break status;
        }
        assert!(Instant::now() < deadline, "not built: {status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["migration"]["state"], "built", "{status}");
    let report = &status["migration"]["report"];
    assert_eq!(report["points_source"], report["points_target"], "{status}");
    // Four asked (one twice, not in a row: a popular question counts for each time).
    assert_eq!(report["ab"]["recent_queries"], 4, "{status}");
    let overlap = report["ab"]["recent_top10_overlap"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&overlap), "{status}");
    let events: Value = client
        .get(url("/api/v1/events?type=model"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert!(
        types.contains(&"model.migration.started") && types.contains(&"model.migration.built"),
        "{types:?}"
    );

    let switched: Value = client
        .post(url("/api/v1/collections/tasks/migration/switch"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(switched["state"], "switched", "{switched}");
    let info: Value = client
        .get(url("/api/v1/collections/tasks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["model"]["model"], MPNET, "{info}");
    assert_eq!(info["alias_of"], "tasks--all-mpnet-base-v2", "{info}");
}
