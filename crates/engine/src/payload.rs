//! The JSON a task or passage is stored and shown with: the fields of `mnemo tasks --json`,
//! plus what the index adds.

use std::path::Path;

use mnemo_text::{Passage, Task};
use serde_json::{Map, Value, json};

/// The fields `mnemo tasks --json` prints for a task read from `file`.
pub fn task_json(file: &Path, task: &Task) -> Map<String, Value> {
    let value = json!({
        "id": task.id,
        "title": task.title,
        "title_raw": task.title_raw,
        "status": task.status,
        "status_raw": task.status_raw,
        "status_text": task.status_text,
        "number": task.number,
        "depth": task.depth,
        "parent_id": task.parent_id,
        "section_path": task.section_path,
        "file": file.display().to_string(),
        "line": task.line,
        "priority": task.priority,
        "estimate": task.meta.estimate.as_ref().map(|e| &e.raw),
        "estimate_hours": task.meta.estimate.as_ref().map(|e| e.hours),
        "mvp": task.mvp,
        "tags": task.meta.tags,
        "owners": task.meta.owners,
        "dates": task.meta.dates,
        "body": task.body,
        "text_hash": task.text_hash,
    });
    into_map(value)
}

pub fn passage_json(file: &Path, passage: &Passage) -> Map<String, Value> {
    into_map(json!({
        "id": passage.id,
        "text": passage.text,
        "section_path": passage.section_path,
        "file": file.display().to_string(),
        "line": passage.line_start,
        "line_end": passage.line_end,
        "tokens": passage.tokens,
        "text_hash": passage.text_hash,
    }))
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
