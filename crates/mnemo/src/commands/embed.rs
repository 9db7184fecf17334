//! `mnemo embed`: JSON Lines in, the same objects with their embedding out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use mnemo_embed::Embedder;
use mnemo_store::json_type;
use serde_json::{Map, Value};

use mnemo::args::ModelArgs;

#[derive(Args)]
pub struct EmbedArgs {
    /// JSON Lines file to read [default: standard input]
    #[arg(long, short, conflicts_with = "text")]
    input: Option<PathBuf>,
    /// Embed this one text instead of reading JSON Lines
    #[arg(long)]
    text: Option<String>,
    /// The field of each object that holds the text
    #[arg(long, default_value = "text")]
    field: String,
    /// Lines read and embedded together
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    chunk: u64,
    #[command(flatten)]
    model: ModelArgs,
}

/// One input line, parsed and checked.
struct Record {
    line: usize,
    object: Map<String, Value>,
    text: String,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(text) = &args.text {
        if text.trim().is_empty() {
            bail!("--text is empty or only whitespace; there is nothing to embed");
        }
        let embedder = args.model.load(None, None)?;
        let mut object = Map::new();
        object.insert(args.field.clone(), Value::String(text.clone()));
        let embeddings = embedder.embed(&[text.as_str()])?;
        write_line(&mut out, &object, embeddings.row(0))?;
        let truncated_lines: Vec<usize> = embeddings.truncated().iter().map(|_| 1).collect();
        report_truncation(&embedder, &truncated_lines);
        return out.flush().context("cannot write to standard output");
    }

    let reader: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(io::stdin().lock())),
    };
    let source = args
        .input
        .as_ref()
        .map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
    let embedder = args.model.load(None, None)?;
    let mut lines = LineReader::new(reader);
    let mut truncated_lines = Vec::new();
    let mut progress = Progress::new();
    let chunk = args.chunk as usize;
    loop {
        let mut records = Vec::with_capacity(chunk);
        let mut failure = None;
        while records.len() < chunk {
            match lines.next_record(&args.field) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if records.is_empty() && failure.is_none() {
            break;
        }
        // Everything before a bad line is embedded and written, so the output up to it is whole.
        if !records.is_empty() {
            let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
            let embeddings = embedder.embed(&texts).with_context(|| {
                format!(
                    "{source}: embedding lines {}..={}",
                    records[0].line,
                    records[records.len() - 1].line
                )
            })?;
            for (record, vector) in records.iter().zip(embeddings.rows()) {
                write_line(&mut out, &record.object, vector)?;
            }
            truncated_lines.extend(embeddings.truncated().iter().map(|&i| records[i].line));
            out.flush().context("cannot write to standard output")?;
            progress.add(records.len());
        }
        if let Some(error) = failure {
            return Err(error.context(source));
        }
    }
    progress.finish();
    report_truncation(&embedder, &truncated_lines);
    Ok(())
}

/// A one-line counter on stderr while a long input is embedded, shown only when stderr is
/// a terminal so pipelines and logs stay clean.
struct Progress {
    enabled: bool,
    done: usize,
    started: std::time::Instant,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: io::stderr().is_terminal(),
            done: 0,
            started: std::time::Instant::now(),
        }
    }

    fn add(&mut self, lines: usize) {
        self.done += lines;
        if self.enabled {
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\rembedded {} lines ({rate:.0} lines/s)", self.done);
        }
    }

    fn finish(&self) {
        if self.enabled && self.done > 0 {
            eprintln!();
        }
    }
}

/// Tells on stderr which input lines were longer than the model's window and so were cut.
fn report_truncation(embedder: &Embedder, truncated_lines: &[usize]) {
    if truncated_lines.is_empty() {
        return;
    }
    let shown: Vec<String> = truncated_lines
        .iter()
        .take(20)
        .map(usize::to_string)
        .collect();
    let more = if truncated_lines.len() > shown.len() {
        format!(" and {} more", truncated_lines.len() - shown.len())
    } else {
        String::new()
    };
    eprintln!(
        "note: {} text(s) longer than {} word pieces were truncated to it (line {}{more}); split them to embed all of their text",
        truncated_lines.len(),
        embedder.max_seq_length().unwrap_or_default(),
        shown.join(", ")
    );
}

/// The object as it came, then `"embedding"`; floats in their shortest exact form.
fn write_line(
    out: &mut impl Write,
    object: &Map<String, Value>,
    vector: &[f32],
) -> anyhow::Result<()> {
    let mut line = String::with_capacity(16 * vector.len() + 256);
    line.push('{');
    for (key, value) in object.iter().filter(|(k, _)| k.as_str() != "embedding") {
        line.push_str(&serde_json::to_string(key)?);
        line.push(':');
        line.push_str(&serde_json::to_string(value)?);
        line.push(',');
    }
    line.push_str("\"embedding\":[");
    for (i, v) in vector.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&v.to_string());
    }
    line.push_str("]}\n");
    out.write_all(line.as_bytes())
        .context("cannot write to standard output")
}

struct LineReader<R> {
    reader: R,
    line: usize,
    buffer: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            line: 0,
            buffer: Vec::new(),
        }
    }

    /// The next non-blank line as a checked record; `None` at the end of the input.
    fn next_record(&mut self, field: &str) -> anyhow::Result<Option<Record>> {
        loop {
            self.buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .with_context(|| format!("cannot read line {}", self.line + 1))?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            let Ok(text) = std::str::from_utf8(&self.buffer) else {
                bail!("line {line}: not valid UTF-8");
            };
            if text.trim().is_empty() {
                continue;
            }
            return parse_record(line, text, field).map(Some);
        }
    }
}

fn parse_record(line: usize, raw: &str, field: &str) -> anyhow::Result<Record> {
    let value: Value =
        serde_json::from_str(raw).with_context(|| format!("line {line}: invalid JSON"))?;
    let Value::Object(object) = value else {
        bail!(
            "line {line}: expected a JSON object like {{\"{field}\": \"...\"}}, found {}",
            json_type(&value)
        );
    };
    let text = match object.get(field) {
        None => bail!("line {line}: no \"{field}\" field"),
        Some(Value::String(s)) => s.clone(),
        Some(other) => bail!(
            "line {line}: field \"{field}\" is {}, expected a string",
            json_type(other)
        ),
    };
    if text.trim().is_empty() {
        bail!(
            "line {line}: field \"{field}\" is empty or only whitespace; there is nothing to embed"
        );
    }
    Ok(Record { line, object, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(raw: &str) -> String {
        format!(
            "{:#}",
            parse_record(7, raw, "text").err().expect("must fail")
        )
    }

    #[test]
    fn bad_lines_name_their_line_and_what_is_wrong() {
        assert!(error_of("{\"text\": ").starts_with("line 7: invalid JSON"));
        assert_eq!(
            error_of("[1, 2]"),
            "line 7: expected a JSON object like {\"text\": \"...\"}, found an array"
        );
        assert_eq!(error_of("{\"title\": \"x\"}"), "line 7: no \"text\" field");
        assert_eq!(
            error_of("{\"text\": 3}"),
            "line 7: field \"text\" is a number, expected a string"
        );
        assert!(error_of("{\"text\": \"  \"}").contains("empty or only whitespace"));
    }

    #[test]
    fn extra_fields_come_first_in_their_order_then_the_embedding() {
        let record = parse_record(
            1,
            r#"{"id": 4, "text": "t", "embedding": "old", "z": [1]}"#,
            "text",
        )
        .expect("valid");
        let mut out = Vec::new();
        write_line(&mut out, &record.object, &[0.5, -0.25]).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"id\":4,\"text\":\"t\",\"z\":[1],\"embedding\":[0.5,-0.25]}\n"
        );
    }
}
