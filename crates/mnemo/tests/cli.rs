//! The `mnemo` binary as a user runs it: real process, real model, real files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mnemo_testkit::shared_dir;
use serde_json::Value;

/// Starts `mnemo ARGS` with all three streams piped and `stdin` fed from another thread, so
/// a large input cannot deadlock against a full stdout pipe.
fn spawn(args: &[&str], stdin: &[u8]) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mnemo binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let body = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&body);
    });
    (child, writer)
}

fn mnemo(args: &[&str], stdin: &str) -> Output {
    let (child, writer) = spawn(args, stdin.as_bytes());
    let output = child.wait_with_output().expect("mnemo runs");
    writer.join().expect("stdin writer");
    output
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn embedding(line: &Value) -> Vec<f32> {
    line["embedding"]
        .as_array()
        .expect("embedding array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

#[test]
fn ten_thousand_lines_round_trip_in_order_with_their_fields() {
    let tasks =
        std::fs::read_to_string(shared_dir().join("bench/tasks-public.txt")).expect("tasks file");
    let texts: Vec<&str> = tasks
        .lines()
        .filter(|t| !t.trim().is_empty())
        .take(10_000)
        .collect();
    assert_eq!(texts.len(), 10_000);
    let mut input = String::new();
    for (i, text) in texts.iter().enumerate() {
        let line = serde_json::json!({"id": i, "text": text, "meta": {"source": "tasks-public"}});
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let output = mnemo(&["embed"], &input);
    assert!(
        output.status.success(),
        "mnemo embed failed: {}",
        stderr(&output)
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["id"], i, "line {i} out of order");
        assert_eq!(line["text"], texts[i]);
        assert_eq!(line["meta"]["source"], "tasks-public");
        let vector = embedding(line);
        assert_eq!(vector.len(), 384);
        let norm: f32 = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "line {i}: norm {norm}");
    }
    // The same text embedded alone gives the same vector, to the last printed digit.
    let single = mnemo(&["embed", "--text", texts[1234]], "");
    assert!(single.status.success(), "{}", stderr(&single));
    let alone = embedding(&stdout_lines(&single)[0]);
    let diff = alone
        .iter()
        .zip(embedding(&lines[1234]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "--text and JSON Lines differ by {diff}");
}

#[test]
fn input_file_and_blank_lines() {
    let dir = std::env::temp_dir().join(format!("mnemo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("in.jsonl");
    std::fs::write(
        &path,
        "{\"text\": \"un\"}\n\n   \n{\"text\": \"deux\", \"n\": 2}\n",
    )
    .expect("write input");
    let output = mnemo(
        &["embed", "--input", path.to_str().expect("utf-8 path")],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["n"], 2);
    std::fs::remove_dir_all(&dir).ok();
}

/// Each kind of bad line stops the run with its line number; the lines before it are
/// written whole and the bad line produces nothing.
#[test]
fn bad_lines_fail_with_their_line_number_after_the_good_ones() {
    let good = "{\"text\": \"Créer le module\"}\n{\"text\": \"Write the docs\"}\n";
    let cases = [
        ("{\"text\": \"unterminated}\n", "line 3: invalid JSON"),
        ("{\"title\": \"no text\"}\n", "line 3: no \"text\" field"),
        (
            "{\"text\": \"\"}\n",
            "line 3: field \"text\" is empty or only whitespace",
        ),
        (
            "{\"text\": \" \\t \"}\n",
            "line 3: field \"text\" is empty or only whitespace",
        ),
        (
            "{\"text\": 42}\n",
            "line 3: field \"text\" is a number, expected a string",
        ),
        (
            "{\"text\": [\"a\"]}\n",
            "line 3: field \"text\" is an array, expected a string",
        ),
        ("\"just a string\"\n", "line 3: expected a JSON object"),
    ];
    for (bad, expected) in cases {
        let input = format!("{good}{bad}{{\"text\": \"after the bad line\"}}\n");
        let output = mnemo(&["embed"], &input);
        assert!(!output.status.success(), "{bad:?} must fail");
        let message = stderr(&output);
        assert!(
            message.contains(expected),
            "{bad:?}: stderr was {message:?}"
        );
        assert!(
            message.contains("standard input"),
            "the source is named: {message:?}"
        );
        let lines = stdout_lines(&output);
        assert_eq!(
            lines.len(),
            2,
            "{bad:?}: the two good lines are written, nothing else"
        );
        assert_eq!(lines[1]["text"], "Write the docs");
    }
}

#[test]
fn invalid_utf8_is_named_by_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .arg("embed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"{\"text\": \"ok\"}\n{\"text\": \"\xff\xfe\"}\n")
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("line 2: not valid UTF-8"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout_lines(&output).len(), 1);
}

#[test]
fn long_texts_are_reported_as_truncated() {
    let long = "vectorisation ".repeat(400);
    let output = mnemo(&["embed", "--text", &long], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("truncated"), "{}", stderr(&output));
}

#[test]
fn a_missing_model_names_the_fetch_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(["embed", "--text", "hello"])
        .env("MNEMO_MODEL_DIR", "/nonexistent/mnemo-model")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("/nonexistent/mnemo-model") && message.contains("make model"),
        "{message}"
    );
}

#[test]
fn nearest_pairs_a_french_task_with_its_english_twin() {
    let input =
        "Migrer les vecteurs vers Qdrant\nPlan the team lunch\nMove the vectors into Qdrant\n";
    let output = mnemo(&["nearest", "--top", "1"], input);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Migrer les vecteurs vers Qdrant");
    assert!(lines[1].ends_with("Move the vectors into Qdrant"), "{text}");
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!("{{\"text\": \"tâche numéro {i}\"}}\n"));
    }
    let (mut child, writer) = spawn(&["embed"], input.as_bytes());
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("one line");
    assert!(first.contains("\"embedding\""));
    // stdout is dropped here, as `| head -1` would close it.
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        stderr(&output)
    );
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}
