//! How answers are printed: hits and clusters as lines for people or JSON for programs.

use std::io::{BufWriter, Write};

use anyhow::Context;
use mnemo_engine::DuplicateCluster;
use mnemo_store::ScoredPoint;
use serde_json::{Map, Value};

pub fn print_hits(hits: &[ScoredPoint], json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for hit in hits {
        if json {
            let mut object = Map::new();
            object.insert("score".into(), Value::from(hit.score));
            object.insert("id".into(), Value::String(hit.id.to_string()));
            for (key, value) in &hit.payload {
                if key != "id" {
                    object.insert(key.clone(), value.clone());
                }
            }
            if let Some(task_id) = hit.payload.get("id") {
                object.insert("task_id".into(), task_id.clone());
            }
            serde_json::to_writer(&mut out, &object)?;
            writeln!(out)?;
        } else {
            let field = |name: &str| {
                hit.payload
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let status = field("status");
            let priority = field("priority");
            let number = field("number");
            writeln!(
                out,
                "{:.3}  {status:<11} {priority:<2} {number:<10} {}",
                hit.score,
                headline(&hit.payload)
            )?;
            let sections: Vec<&str> = hit
                .payload
                .get("section_path")
                .and_then(Value::as_array)
                .map(|path| path.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                out,
                "       {} · {}",
                location(&hit.payload),
                sections.join(" > ")
            )?;
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// The largest `limit` clusters, after a line that counts them all (for people).
pub fn print_clusters(
    clusters: &[DuplicateCluster],
    limit: usize,
    threshold: f32,
    json: bool,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !json {
        writeln!(
            out,
            "{} clusters of near-duplicates (cosine ≥ {})",
            clusters.len(),
            threshold
        )?;
    }
    for cluster in clusters.iter().take(limit) {
        if json {
            serde_json::to_writer(&mut out, cluster)?;
            writeln!(out)?;
            continue;
        }
        writeln!(
            out,
            "\n{} tasks, similarity ≥ {:.3}",
            cluster.members.len(),
            cluster.min_score
        )?;
        for member in &cluster.members {
            writeln!(
                out,
                "  {}  {}",
                location(&member.payload),
                headline(&member.payload)
            )?;
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// The title of a task, or the first line of a passage, cut to a line.
fn headline(payload: &Map<String, Value>) -> String {
    let text = payload
        .get("title")
        .or_else(|| payload.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(110).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

fn location(payload: &Map<String, Value>) -> String {
    let file = payload
        .get("file")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            std::path::Path::new(file)
                .strip_prefix(cwd)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| file.to_owned());
    let line = payload
        .get("line")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    format!("{shown}:{line}")
}
