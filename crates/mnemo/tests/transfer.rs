//! `mnemo import`, `export` and `snapshot` as a user runs them: the real binary, the real
//! model for `--reembed`, a data directory on disk. Files in the old scripts' layouts are
//! written here byte for byte (BOM, 4-space indentation, CRLF); the NumPy and pickle files
//! are written by Python itself in tests/python/test_import.py.

use std::fmt::Write as _;
mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{failed, mnemo, ok};
use serde_json::{Value, json};

/// Values that print with few digits but are not exact in binary.
fn vector(seed: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| (((seed * 31 + i * 17) % 2001) as f32 - 1000.0) / 1000.0 + 0.000_123)
        .collect()
}

/// The PowerShell vectoriser's `task_vectors.json`: BOM, 4-space indentation, CRLF, one float
/// per line with 6 decimals.
fn powershell_file(tasks: &[(&str, &str, Vec<f32>)], dim: usize) -> Vec<u8> {
    let nl = "\r\n";
    let mut out = String::new();
    write!(
        out,
        "{{{nl}    \"metadata\": {{{nl}        \"created\": \"2025-06-10\",{nl}        \"source\": \"plan-dev-v57.md\",{nl}        \"taskCount\": {},{nl}        \"vectorDimension\": {dim},{nl}        \"model\": \"text-embedding-ada-002\"{nl}    }},{nl}    \"tasks\": [{nl}",
        tasks.len()
    )
    .unwrap();
    for (i, (id, description, values)) in tasks.iter().enumerate() {
        write!(
            out,
            "        {{{nl}            \"TaskId\": \"{id}\",{nl}            \"Description\": \"{description}\",{nl}            \"Status\": \"pending\",{nl}            \"Section\": \"Phase 1\",{nl}            \"IndentLevel\": 2,{nl}            \"LastUpdated\": \"2025-06-10T14:03:11\",{nl}            \"ParentId\": \"1.1\",{nl}            \"Vector\": [{nl}"
        )
        .unwrap();
        let floats: Vec<String> = values
            .iter()
            .map(|v| format!("                {v:.6}"))
            .collect();
        out.push_str(&floats.join(&format!(",{nl}")));
        write!(
            out,
            "{nl}            ],{nl}            \"Metadata\": {{{nl}                \"VectorDimension\": {dim},{nl}                \"VectorModel\": \"text-embedding-ada-002\",{nl}                \"VectorCreated\": \"2025-06-10\"{nl}            }}{nl}        }}{}{nl}",
            if i + 1 < tasks.len() { "," } else { "" }
        )
        .unwrap();
    }
    write!(out, "    ]{nl}}}{nl}").unwrap();
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend_from_slice(out.as_bytes());
    bytes
}

struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_owned();
        let data = root.join("data");
        Self {
            _dir: dir,
            root,
            data,
        }
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.root.join(name);
        std::fs::write(&path, bytes).expect("write");
        path.to_string_lossy().into_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        mnemo(&self.data, args)
    }

    /// The collection as exported: points by id (header line checked and dropped).
    fn export(&self, collection: &str, format: &str) -> (Vec<u8>, Vec<Value>) {
        let out = self.root.join(format!("{collection}.{format}.out"));
        let out_str = out.to_string_lossy().into_owned();
        ok(self.run(&[
            "export",
            "--collection",
            collection,
            "--format",
            format,
            "-o",
            &out_str,
        ]));
        let bytes = std::fs::read(&out).expect("read export");
        let points = match format {
            "qdrant" => {
                let doc: Value = serde_json::from_slice(&bytes).expect("qdrant json");
                doc["points"].as_array().cloned().unwrap_or_default()
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let mut lines = text.lines();
                let header: Value = serde_json::from_str(lines.next().expect("header")).unwrap();
                assert_eq!(header["mnemo_export"], 1);
                lines.map(|l| serde_json::from_str(l).unwrap()).collect()
            }
        };
        (bytes, points)
    }

    fn count(&self, collection: &str) -> usize {
        let (_, points) = self.export(collection, "jsonl");
        points.len()
    }
}

#[test]
fn legacy_formats_import_and_round_trip_bit_exact() {
    let ws = Workspace::new();
    let dim = 1536;
    let tasks: Vec<(&str, &str, Vec<f32>)> = vec![
        ("1.1.1", "Migrer le vectoriseur", vector(1, dim)),
        ("1.1.2", "Importer task_vectors.json", vector(2, dim)),
        ("1.2", "Unifier les clients Qdrant", vector(3, dim)),
    ];
    let legacy = ws.file("task_vectors.json", powershell_file(&tasks, dim));

    // A dry run checks and writes nothing.
    let dry = ok(ws.run(&["import", &legacy, "--collection", "legacy", "--dry-run"]));
    assert!(dry.contains("would import 3 of 3 records"), "{dry}");
    assert!(dry.contains("task-vectors"), "{dry}");
    let missing = failed(ws.run(&["export", "--collection", "legacy"]));
    assert!(missing.contains("does not exist"), "{missing}");

    let out = ok(ws.run(&["import", &legacy, "--collection", "legacy", "--json"]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["imported"], 3);
    assert_eq!(summary["derived_ids"], 3);
    assert_eq!(summary["dimensions"][""], 1536);
    assert_eq!(summary["model"], "text-embedding-ada-002");
    // Idempotent: the same import again changes nothing.
    let (first, points) = ws.export("legacy", "jsonl");
    ok(ws.run(&["import", &legacy, "--collection", "legacy"]));
    let (second, _) = ws.export("legacy", "jsonl");
    assert_eq!(first, second);
    let task = points
        .iter()
        .find(|p| p["payload"]["legacy_id"] == "1.1.2")
        .expect("task 1.1.2 kept its id in the payload");
    assert_eq!(task["payload"]["task_id"], "1.1.2");
    assert_eq!(task["payload"]["description"], "Importer task_vectors.json");
    assert_eq!(task["payload"]["indent_level"], 2);
    assert_eq!(task["payload"]["model"], "text-embedding-ada-002");
    assert_eq!(task["vectors"]["dense"].as_array().unwrap().len(), dim);

    // Export → import into a new collection → identical points, in both JSON formats.
    for format in ["jsonl", "qdrant"] {
        let (bytes, exported) = ws.export("legacy", format);
        let file = ws.file(&format!("export.{format}"), &bytes);
        let copy = format!("copy_{format}");
        ok(ws.run(&["import", &file, "--collection", &copy]));
        let (_, again) = ws.export(&copy, format);
        assert_eq!(again, exported, "{format} round trip");
    }
    let (original, _) = ws.export("legacy", "jsonl");
    let (copied, _) = ws.export("copy_jsonl", "jsonl");
    let body = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        body(&original),
        body(&copied),
        "bit-exact through mnemo's own format"
    );

    // The Go migrator's list and its JSON Lines, with string ids and Dot distance, which keeps
    // vectors exactly as written.
    let go: Vec<Value> = (0..4)
        .map(|i| {
            json!({"id": format!("task-{i}"), "vector": vector(i, 8),
                   "metadata": {"status": "open", "n": i}, "source": "plan.md"})
        })
        .collect();
    let list = ws.file("go.json", serde_json::to_vec_pretty(&go).unwrap());
    ok(ws.run(&["import", &list, "--collection", "go", "--distance", "dot"]));
    let lines: String = go.iter().map(|v| format!("{v}\n")).collect();
    let jsonl = ws.file("go.jsonl", lines);
    ok(ws.run(&[
        "import",
        &jsonl,
        "--collection",
        "go_lines",
        "--distance",
        "dot",
    ]));
    let (_, from_list) = ws.export("go", "jsonl");
    let (_, from_lines) = ws.export("go_lines", "jsonl");
    assert_eq!(from_list, from_lines);
    for point in &from_list {
        let n = point["payload"]["n"].as_u64().unwrap() as usize;
        let stored: Vec<f32> = serde_json::from_value(point["vectors"]["dense"].clone()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&stored),
            bits(&vector(n, 8)),
            "dot keeps vectors as read"
        );
        assert_eq!(point["payload"]["source"], "plan.md");
        assert_eq!(point["payload"]["legacy_id"], format!("task-{n}"));
    }

    // Qdrant's points JSON with named dense and sparse vectors.
    let qdrant = json!({"points": [
        {"id": 1, "vector": {"a": [1.0, 2.0], "s": {"indices": [3, 9], "values": [0.5, 0.25]}}, "payload": {"k": "x"}},
        {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": {"a": [3.0, 4.0]}, "payload": {}}
    ]});
    let qfile = ws.file("points.json", serde_json::to_vec(&qdrant).unwrap());
    ok(ws.run(&["import", &qfile, "--collection", "named"]));
    let (_, named) = ws.export("named", "qdrant");
    assert_eq!(named.len(), 2);
    assert_eq!(named[0]["vector"]["s"]["indices"], json!([3, 9]));
}

#[test]
fn bad_records_are_named_and_nothing_is_half_imported() {
    let ws = Workspace::new();
    let dim = 16;
    let good: Vec<Value> = (0..6)
        .map(|i| json!({"id": i, "vector": vector(i, dim), "payload": {"n": i}}))
        .collect();
    let good_file = ws.file(
        "good.jsonl",
        good.iter().map(|v| format!("{v}\n")).collect::<String>(),
    );
    ok(ws.run(&["import", &good_file, "--collection", "c"]));
    let (before, _) = ws.export("c", "jsonl");

    let mut lines: Vec<String> = (10..20)
        .map(|i| json!({"id": i, "vector": vector(i, dim), "payload": {"n": i}}).to_string())
        .collect();
    lines[2] = json!({"id": 12, "vector": vector(12, dim - 1)}).to_string();
    lines[4] = lines[4].replacen("[", "[\"x\",", 1);
    lines[5] = json!({"id": 11, "vector": vector(15, dim)}).to_string();
    lines[7] = r#"{"id": 17, "vector": [1, NaN]}"#.to_string();
    lines[8] = json!({"id": 18, "vector": vector(18, dim), "payload": [1]}).to_string();
    let bad = ws.file("bad.jsonl", lines.join("\n"));
    let report = ws.root.join("report.jsonl");
    let report_str = report.to_string_lossy().into_owned();

    let err = failed(ws.run(&["import", &bad, "--collection", "c", "--report", &report_str]));
    for expected in [
        "5 record(s) cannot be imported, so nothing was written",
        "record 2 (line 3), id 12, field `vector`: has 15 numbers, expected 16",
        "record 4 (line 5), field `vector`: element 0 is a string, not a number",
        "record 5 (line 6), id 11, field `id`: duplicate: record 1 (line 2) has the same id",
        "record 7 (line 8): holds a bare NaN",
        "record 8 (line 9), field `payload`: is an array, not an object",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    let (after, _) = ws.export("c", "jsonl");
    assert_eq!(before, after, "a failed import changed the collection");

    // Skip: the others land, the report lists the five.
    let out = ok(ws.run(&[
        "import",
        &bad,
        "--collection",
        "c",
        "--on-error",
        "skip",
        "--report",
        &report_str,
    ]));
    assert!(out.contains("imported 5 of 10 records"), "{out}");
    let listed = std::fs::read_to_string(&report).unwrap();
    let indices: Vec<u64> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indices, [2, 4, 5, 7, 8]);
    assert_eq!(ws.count("c"), 6 + 5);

    // A truncated file, a wrong model's size, a file that is not one.
    let whole = std::fs::read_to_string(&good_file).unwrap();
    let cut = ws.file("cut.json", format!("[{}", &whole.replace('\n', ",")[..200]));
    let err = failed(ws.run(&["import", &cut, "--collection", "c"]));
    assert!(err.contains("truncated"), "{err}");
    let wide: Vec<Value> = (0..2)
        .map(|i| json!({"id": 100 + i, "vector": vector(i, 1536), "text": format!("tâche {i}")}))
        .collect();
    let wide_file = ws.file("wide.json", serde_json::to_vec(&wide).unwrap());
    let err = failed(ws.run(&["import", &wide_file, "--collection", "c"]));
    assert!(
        err.contains("collection `c` holds 16-d vectors")
            && err.contains("1536-d")
            && err.contains("--reembed"),
        "{err}"
    );
    let err = failed(ws.run(&[
        "import",
        &ws.file("notes.txt", "hello"),
        "--collection",
        "c",
    ]));
    assert!(err.contains("cannot tell the format"), "{err}");
    assert_eq!(ws.count("c"), 11);
}

#[test]
fn reembed_replaces_foreign_vectors_with_the_local_model() {
    let ws = Workspace::new();
    let tasks: Vec<(&str, &str, Vec<f32>)> = vec![
        (
            "1.1",
            "Ajouter le cache LRU pour les requêtes",
            vector(1, 1536),
        ),
        (
            "1.2",
            "Écrire la documentation de l'API REST",
            vector(2, 1536),
        ),
    ];
    let legacy = ws.file("task_vectors.json", powershell_file(&tasks, 1536));
    // Into a collection of the local model's size: refused, then re-embedded.
    let seed = ws.file(
        "seed.jsonl",
        format!("{}\n", json!({"id": 1, "vector": vector(0, 384)})),
    );
    ok(ws.run(&["import", &seed, "--collection", "mine"]));
    let err = failed(ws.run(&["import", &legacy, "--collection", "mine"]));
    assert!(
        err.contains("holds 384-d vectors") && err.contains("--reembed"),
        "{err}"
    );
    let out = ok(ws.run(&[
        "import",
        &legacy,
        "--collection",
        "mine",
        "--reembed",
        "--json",
    ]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["reembedded"], 2);
    let hits = ok(ws.run(&[
        "search",
        "mettre les réponses en cache",
        "--collection",
        "mine",
        "--mode",
        "dense",
        "--json",
        "--limit",
        "1",
    ]));
    let first: Value = serde_json::from_str(hits.lines().next().expect("a hit")).unwrap();
    let text = first.to_string();
    assert!(text.contains("cache LRU"), "{text}");
    assert!(text.contains("reembedded_from"), "{text}");
}

#[test]
fn snapshots_from_the_command_line() {
    let ws = Workspace::new();
    let points: String = (0..50)
        .map(|i| {
            format!(
                "{}\n",
                json!({"id": i, "vector": vector(i, 8), "payload": {"n": i}})
            )
        })
        .collect();
    let file = ws.file("p.jsonl", points);
    ok(ws.run(&["import", &file, "--collection", "c"]));
    let created: Value = serde_json::from_str(&ok(ws.run(&[
        "snapshot",
        "create",
        "--collection",
        "c",
        "--json",
    ])))
    .unwrap();
    assert_eq!(created["points"], 50);
    let name = created["name"].as_str().unwrap().to_owned();
    let listed = ok(ws.run(&["snapshot", "list", "--collection", "c"]));
    assert!(listed.contains(&name), "{listed}");
    let (before, _) = ws.export("c", "jsonl");

    let more: String = (50..60)
        .map(|i| format!("{}\n", json!({"id": i, "vector": vector(i, 8)})))
        .collect();
    ok(ws.run(&["import", &ws.file("more.jsonl", more), "--collection", "c"]));
    assert_eq!(ws.count("c"), 60);
    let restored = ok(ws.run(&["snapshot", "restore", &name, "--collection", "c"]));
    assert!(restored.contains("50 points"), "{restored}");
    assert_eq!(ws.export("c", "jsonl").0, before);
    // A snapshot file restores into another collection, from its path.
    let archive = ws.data.join("snapshots/c").join(format!("{name}.snapshot"));
    ok(ws.run(&[
        "snapshot",
        "restore",
        &archive.to_string_lossy(),
        "--collection",
        "other",
    ]));
    assert_eq!(ws.count("other"), 50);
    // A copy without its checksum file restores, unless the checksum is required.
    let copy = ws.data.parent().unwrap().join("copied.snapshot");
    std::fs::copy(&archive, &copy).unwrap();
    let copy = copy.to_string_lossy().into_owned();
    let err = failed(ws.run(&[
        "snapshot",
        "restore",
        &copy,
        "--collection",
        "third",
        "--require-checksum",
    ]));
    assert!(err.contains("has no checksum file beside it"), "{err}");
    ok(ws.run(&["snapshot", "restore", &copy, "--collection", "third"]));
    assert_eq!(ws.count("third"), 50);
    ok(ws.run(&["snapshot", "delete", &name, "--collection", "c"]));
    let err = failed(ws.run(&["snapshot", "delete", &name, "--collection", "c"]));
    assert!(err.contains("no snapshot"), "{err}");
}
