//! `mnemo export`: a collection streamed page by page to JSON Lines (mnemo's own format, with
//! the collection's config in its first line), Qdrant's points JSON, or `.npy` + a JSON Lines
//! sidecar. Vectors are written in the shortest form that reads back to the same `f32`, so an
//! export imported again gives bit-identical points. Files are written aside and renamed into
//! place: a failed export leaves no partial file under the name asked for.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use mnemo_store::{PayloadSelection, Record, ScrollRequest, Vector, VectorSelection, VectorStore};
use serde::Serialize;

use crate::TransferError;
use crate::import::ImportProgress;
use crate::npy::NpyWriter;
use crate::source::ExportHeader;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Npy,
    Qdrant,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" | "mnemo" => Ok(Self::Jsonl),
            "npy" | "numpy" => Ok(Self::Npy),
            "qdrant" => Ok(Self::Qdrant),
            other => Err(format!(
                "unknown export format `{other}` (known: jsonl, npy, qdrant)"
            )),
        }
    }
}

impl ExportFormat {
    /// The extension of the file written when none is named.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Npy => "npy",
            Self::Qdrant => "json",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub collection: String,
    pub format: ExportFormat,
    pub points: usize,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub seconds: f64,
}

/// One point as exported, in Qdrant's shape (`vector` for Qdrant's file, `vectors` for
/// mnemo's). Written from the `f32`s themselves: the shortest text that reads back to the
/// same `f32`, not the longer one of its `f64` widening.
fn write_point(out: &mut impl Write, record: &Record, vectors_key: &str) -> serde_json::Result<()> {
    out.write_all(b"{\"id\":").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *out, &record.id)?;
    if !record.vectors.is_empty() {
        write!(out, ",\"{vectors_key}\":").map_err(serde_json::Error::io)?;
        serde_json::to_writer(&mut *out, &record.vectors)?;
    }
    out.write_all(b",\"payload\":")
        .map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *out, &record.payload)?;
    out.write_all(b"}").map_err(serde_json::Error::io)
}

/// A file written under a temporary name beside `path`, renamed into place by `commit`.
struct Staged {
    path: PathBuf,
    temporary: PathBuf,
}

impl Staged {
    fn create(path: &Path) -> Result<(Self, File), TransferError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.partial"));
        let file = File::create(&temporary).map_err(|source| TransferError::WriteFile {
            path: temporary.clone(),
            source,
        })?;
        Ok((
            Self {
                path: path.to_owned(),
                temporary,
            },
            file,
        ))
    }

    fn commit(mut self) -> Result<PathBuf, TransferError> {
        std::fs::rename(&self.temporary, &self.path).map_err(|source| {
            TransferError::WriteFile {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

/// Writes every point of `collection` to `output` (for `.npy`, also `output` with the
/// extension `jsonl`: ids, payloads and the other vectors).
pub fn export_collection(
    store: &dyn VectorStore,
    collection: &str,
    format: ExportFormat,
    output: &Path,
    npy_vector: Option<&str>,
    progress: &dyn ImportProgress,
) -> Result<ExportSummary, TransferError> {
    let started = Instant::now();
    let info = store.collection_info(collection)?;
    let config = info.config;
    progress.phase("exporting", info.points as u64);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TransferError::WriteFile { path, source }
    };
    let npy_name = match format {
        ExportFormat::Npy => Some(match npy_vector {
            Some(name) if config.vectors.contains_key(name) => name.to_owned(),
            Some(name) => {
                return Err(TransferError::NoDenseVector {
                    collection: collection.to_owned(),
                    name: name.to_owned(),
                });
            }
            None if config.vectors.len() == 1 => {
                config.vectors.keys().next().cloned().unwrap_or_default()
            }
            None if config.vectors.contains_key(mnemo_store::DENSE_VECTOR) => {
                mnemo_store::DENSE_VECTOR.to_owned()
            }
            None => {
                return Err(TransferError::WhichVector {
                    collection: collection.to_owned(),
                    count: config.vectors.len(),
                    names: config
                        .vectors
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }),
        _ => None,
    };
    let lines_path = match format {
        ExportFormat::Npy => output.with_extension("jsonl"),
        _ => output.to_owned(),
    };
    let (lines_stage, lines_file) = Staged::create(&lines_path)?;
    let mut lines = BufWriter::with_capacity(1 << 20, lines_file);
    let mut npy = match &npy_name {
        Some(name) => {
            let (stage, file) = Staged::create(output)?;
            let columns = config.vectors[name].size;
            let writer = NpyWriter::new(BufWriter::with_capacity(1 << 20, file), columns)
                .map_err(io(output))?;
            Some((stage, writer, name.clone()))
        }
        None => None,
    };
    match format {
        ExportFormat::Qdrant => lines
            .write_all(b"{\"points\": [\n")
            .map_err(io(&lines_path))?,
        ExportFormat::Jsonl | ExportFormat::Npy => {
            let header = ExportHeader {
                mnemo_export: 1,
                collection: collection.to_owned(),
                config: config.clone(),
                points: Some(info.points),
                npy_vector: npy_name.clone(),
            };
            serde_json::to_writer(&mut lines, &header).map_err(|e| io(&lines_path)(e.into()))?;
            lines.write_all(b"\n").map_err(io(&lines_path))?;
        }
    }
    let mut request = ScrollRequest::new(512);
    request.with_payload = PayloadSelection::All;
    request.with_vectors = VectorSelection::All;
    let mut points = 0usize;
    loop {
        let page = store.scroll(collection, request.clone())?;
        let count = page.points.len();
        for mut record in page.points {
            if let Some((_, writer, name)) = &mut npy {
                let row = match record.vectors.remove(name.as_str()) {
                    Some(Vector::Dense(values)) => values,
                    // A point without this vector: a row of zeros would be a lie; NaN marks it.
                    _ => vec![f32::NAN; config.vectors[name.as_str()].size],
                };
                writer.write_row(&row).map_err(io(output))?;
            }
            let key = if format == ExportFormat::Qdrant {
                "vector"
            } else {
                "vectors"
            };
            if format == ExportFormat::Qdrant && points > 0 {
                lines.write_all(b",\n").map_err(io(&lines_path))?;
            }
            write_point(&mut lines, &record, key).map_err(|e| io(&lines_path)(e.into()))?;
            if format != ExportFormat::Qdrant {
                lines.write_all(b"\n").map_err(io(&lines_path))?;
            }
            points += 1;
        }
        progress.advance(count as u64, count);
        match page.next {
            Some(next) => request.offset = Some(next),
            None => break,
        }
    }
    if format == ExportFormat::Qdrant {
        lines.write_all(b"\n]}\n").map_err(io(&lines_path))?;
    }
    let lines_file = lines
        .into_inner()
        .map_err(|e| io(&lines_path)(e.into_error()))?;
    lines_file.sync_all().map_err(io(&lines_path))?;
    let mut files = Vec::new();
    if let Some((stage, writer, _)) = npy {
        let file = writer
            .finish()
            .map_err(io(output))?
            .into_inner()
            .map_err(|e| io(output)(e.into_error()))?;
        file.sync_all().map_err(io(output))?;
        files.push(stage.commit()?);
    }
    files.push(lines_stage.commit()?);
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    Ok(ExportSummary {
        collection: collection.to_owned(),
        format,
        points,
        files,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
