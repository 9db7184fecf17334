//! `mnemo tasks` as a user runs it: the real binary on the shared corpus and on files
//! made to fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnemo_testkit::shared_dir;
use serde_json::Value;

fn roadmaps() -> PathBuf {
    shared_dir().join("corpus/email-sender-1/roadmaps")
}

fn mnemo(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .arg("tasks")
        .args(args)
        .args(paths)
        .output()
        .expect("run mnemo")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn json_rows(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// A fresh folder under the target dir (kept on failure for inspection).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn summary_of_the_whole_corpus() {
    let output = mnemo(&["--summary"], &[&shared_dir().join("corpus")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    let total = text.lines().last().expect("a total line");
    assert!(total.contains("total (246 files)"), "{total}");
    let tasks: usize = total
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("task count");
    assert!(tasks > 30_000, "{total}");
    assert!(text.lines().count() == 248, "a header, 246 files, a total");
}

#[test]
fn json_rows_carry_every_field_and_filters_apply() {
    let plan = roadmaps().join("plans/consolidated/plan-dev-v26.md");
    let output = mnemo(&["--json"], &[&plan]);
    assert!(output.status.success());
    let rows = json_rows(&output);
    assert!(rows.len() > 100, "{}", rows.len());
    for field in [
        "id",
        "title",
        "title_raw",
        "status",
        "status_raw",
        "number",
        "depth",
        "parent_id",
        "section_path",
        "file",
        "line",
        "priority",
        "estimate",
        "mvp",
        "tags",
        "text_hash",
    ] {
        assert!(
            rows.iter().all(|row| row.get(field).is_some()),
            "missing {field}"
        );
    }
    let ids: std::collections::HashSet<_> = rows
        .iter()
        .map(|row| row["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), rows.len(), "ids are unique");

    let done = json_rows(&mnemo(&["--json", "--status", "done"], &[&plan]));
    assert!(!done.is_empty() && done.len() < rows.len());
    assert!(done.iter().all(|row| row["status"] == "done"));

    let section = json_rows(&mnemo(&["--json", "--section", "ENCODAGE"], &[&plan]));
    assert!(!section.is_empty() && section.len() < rows.len());
    assert!(section.iter().all(|row| {
        row["section_path"]
            .as_array()
            .expect("path")
            .iter()
            .any(|title| {
                title
                    .as_str()
                    .is_some_and(|t| t.to_lowercase().contains("encodage"))
            })
    }));

    let by_glob = json_rows(&mnemo(
        &["--json", "--file", "**/plan-dev-v26.md"],
        &[&roadmaps()],
    ));
    assert_eq!(by_glob.len(), rows.len());
}

#[test]
fn unreadable_inputs_are_named_and_the_rest_still_listed() {
    let dir = scratch("tasks-skipped");
    std::fs::write(dir.join("good.md"), "# Plan\n\n- [ ] Écrire les tests\n").expect("write");
    std::fs::write(dir.join("binary.md"), b"PK\x03\x04\0\0\0").expect("write");
    let empty = scratch("tasks-empty");
    let missing = dir.join("missing.md");
    let output = mnemo(&[], &[&dir, &empty, &missing]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "exit status 3: something was skipped"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("binary.md") && stderr.contains("binary"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tasks-empty") && stderr.contains("no Markdown"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.md"), "{stderr}");
    assert!(stdout(&output).contains("Écrire les tests"));
}

#[test]
fn bad_arguments_are_refused_with_the_choices() {
    let output = mnemo(&["--status", "finished"], &[&roadmaps()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("finished") && stderr.contains("in_progress"),
        "{stderr}"
    );
}
