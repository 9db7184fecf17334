//! `mnemo import`: two passes over the file. The first reads and checks every record (ids,
//! vectors, sizes, duplicates) without writing; the second, only when the first allows it,
//! writes batches. So an import that stops on a bad record has written nothing, a dry run is
//! the first pass alone, and memory holds one batch plus the set of ids seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mnemo_embed::Embedder;
use mnemo_store::{CollectionConfig, Distance, Point, PointId, StoreError, Vector, VectorStore};
use serde::Serialize;
use serde_json::Value;

use crate::TransferError;
use crate::record::{LEGACY_ID_FIELD, SourceRecord, SourceVector};
use crate::source::{FileHeader, ImportFormat, Located, Source, detect};
use mnemo_store::DENSE_VECTOR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The first bad record stops the import before anything is written.
    Stop,
    /// Bad records are left out (and listed in the report); the others are imported.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "stop" => Ok(Self::Stop),
            "skip" => Ok(Self::Skip),
            other => Err(format!("unknown `{other}`: use stop or skip")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub collection: String,
    pub format: ImportFormat,
    pub on_error: OnError,
    pub dry_run: bool,
    /// Embed each record's text with the local model instead of keeping its vector.
    pub reembed: bool,
    /// The payloads of a `.npy` file (default: beside it, `X.jsonl`).
    pub sidecar: Option<PathBuf>,
    /// Where the records that were not imported are listed, one JSON object per line.
    pub report: Option<PathBuf>,
    pub batch_size: usize,
    /// Build the collection's search index (HNSW) once the points are written; without it,
    /// searches work by full scan until the next optimisation.
    pub optimize: bool,
    /// How a collection created by the import compares its dense vectors. Under cosine the
    /// store keeps vectors normalised (as Qdrant does); dot keeps them exactly as read.
    pub distance: Distance,
}

impl ImportOptions {
    pub fn new(collection: &str) -> Self {
        Self {
            collection: collection.to_owned(),
            format: ImportFormat::Auto,
            on_error: OnError::Stop,
            dry_run: false,
            reembed: false,
            sidecar: None,
            report: None,
            batch_size: 256,
            distance: Distance::Cosine,
            optimize: true,
        }
    }
}

/// Told as the import goes.
pub trait ImportProgress: Sync {
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64, _records: usize) {}
}

pub struct NoProgress;
impl ImportProgress for NoProgress {}

/// A record that was not (or would not be) imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub field: String,
    pub error: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.index)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        if let Some(id) = &self.id {
            write!(f, ", id {id}")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field `{}`", self.field)?;
        }
        write!(f, ": {}", self.error)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub file: PathBuf,
    pub format: ImportFormat,
    pub collection: String,
    pub collection_created: bool,
    pub dry_run: bool,
    pub bytes: u64,
    /// Records in the file.
    pub records: usize,
    /// Points written (in a dry run: that would be written).
    pub imported: usize,
    pub skipped: usize,
    /// Records whose id was not a Qdrant id: their point id is derived from it, the original
    /// kept in the payload's `legacy_id`.
    pub derived_ids: usize,
    pub reembedded: usize,
    /// The vectors' sizes, by name (`""`: unnamed in the file).
    pub dimensions: BTreeMap<String, usize>,
    pub model: Option<String>,
    pub report: Option<PathBuf>,
    pub validate_seconds: f64,
    pub write_seconds: f64,
    /// Building the search index after the writes.
    pub index_seconds: f64,
}

/// The local model, for `--reembed`.
pub struct Reembed<'a> {
    pub embedder: &'a Embedder,
    pub model_id: &'a str,
}

/// What the first pass learnt.
struct Survey {
    header: FileHeader,
    records: usize,
    bytes: u64,
    problems: Vec<Problem>,
    /// Indices of the records the second pass leaves out.
    rejected: HashSet<usize>,
    dimensions: BTreeMap<String, usize>,
    sparse: HashSet<String>,
    derived_ids: usize,
}

/// How the file's vector names map onto the collection's.
fn target_name(name: &str, config: &CollectionConfig, header: &FileHeader) -> String {
    if !name.is_empty() {
        return name.to_owned();
    }
    if let Some(named) = &header.unnamed_vector {
        return named.clone();
    }
    if config.vectors.contains_key("") {
        return String::new();
    }
    if config.vectors.len() == 1
        && let Some(only) = config.vectors.keys().next()
    {
        return only.clone();
    }
    DENSE_VECTOR.to_owned()
}

pub fn import_file(
    store: &dyn VectorStore,
    reembed: Option<Reembed<'_>>,
    path: &Path,
    options: &ImportOptions,
    progress: &dyn ImportProgress,
) -> Result<ImportSummary, TransferError> {
    let format = match options.format {
        ImportFormat::Auto => detect(path)?,
        format => format,
    };
    if options.reembed && reembed.is_none() {
        return Err(TransferError::Unusable {
            path: path.to_owned(),
            message: "--reembed needs the model, which was not loaded".into(),
        });
    }
    let existing = match store.collection_config(&options.collection) {
        Ok(config) => Some(config),
        Err(StoreError::UnknownCollection(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let started = Instant::now();
    let total_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    progress.phase("checking", total_bytes);
    let survey = survey(
        path,
        format,
        options,
        existing.as_ref(),
        reembed.as_ref(),
        progress,
    )?;
    let validate_seconds = started.elapsed().as_secs_f64();

    let report = write_report(path, options, &survey.problems)?;
    if !survey.problems.is_empty() && options.on_error == OnError::Stop {
        return Err(TransferError::Invalid {
            path: path.to_owned(),
            total: survey.problems.len(),
            problems: survey.problems.iter().take(10).cloned().collect(),
            report,
        });
    }
    let config = match &existing {
        Some(config) => config.clone(),
        None => new_config(&survey, reembed.as_ref(), options.distance),
    };
    let mut summary = ImportSummary {
        file: path.to_owned(),
        format,
        collection: options.collection.clone(),
        collection_created: existing.is_none(),
        dry_run: options.dry_run,
        bytes: survey.bytes,
        records: survey.records,
        imported: survey.records - survey.rejected.len(),
        skipped: survey.rejected.len(),
        derived_ids: survey.derived_ids,
        reembedded: 0,
        dimensions: survey.dimensions.clone(),
        model: survey.header.model.clone(),
        report,
        validate_seconds,
        write_seconds: 0.0,
        index_seconds: 0.0,
    };
    if options.dry_run {
        summary.collection_created = false;
        return Ok(summary);
    }
    if existing.is_none() {
        store.create_collection(&options.collection, &config)?;
    }
    let writing = Instant::now();
    progress.phase("importing", total_bytes);
    let (imported, reembedded) = write(
        store,
        path,
        format,
        options,
        &config,
        &survey,
        reembed.as_ref(),
        progress,
    )?;
    summary.imported = imported;
    summary.reembedded = reembedded;
    summary.write_seconds = writing.elapsed().as_secs_f64();
    if options.optimize {
        progress.phase("building the search index", 0);
        let indexing = Instant::now();
        store.optimize(&options.collection)?;
        summary.index_seconds = indexing.elapsed().as_secs_f64();
    }
    Ok(summary)
}

fn new_config(
    survey: &Survey,
    reembed: Option<&Reembed<'_>>,
    distance: Distance,
) -> CollectionConfig {
    if let Some(model) = reembed {
        return CollectionConfig::default().with_vector(
            DENSE_VECTOR,
            model.embedder.dim(),
            Distance::Cosine,
        );
    }
    if let Some(config) = &survey.header.config {
        return config.clone();
    }
    let mut config = CollectionConfig::default();
    let empty = CollectionConfig::default();
    for (name, size) in &survey.dimensions {
        let name = target_name(name, &empty, &survey.header);
        config = config.with_vector(&name, *size, distance);
    }
    for name in &survey.sparse {
        config = config.with_sparse_vector(name, false);
    }
    config
}

fn survey(
    path: &Path,
    format: ImportFormat,
    options: &ImportOptions,
    existing: Option<&CollectionConfig>,
    reembed: Option<&Reembed<'_>>,
    progress: &dyn ImportProgress,
) -> Result<Survey, TransferError> {
    let mut source = Source::open(path, format, options.sidecar.as_deref())?;
    let mut seen: HashMap<PointId, (usize, Option<usize>)> = HashMap::new();
    let mut survey = Survey {
        header: FileHeader::default(),
        records: 0,
        bytes: 0,
        problems: Vec::new(),
        rejected: HashSet::new(),
        dimensions: BTreeMap::new(),
        sparse: HashSet::new(),
        derived_ids: 0,
    };
    let mut last_report = 0u64;
    while let Some(Located {
        index,
        line,
        record,
    }) = source.next()?
    {
        survey.records += 1;
        let header = source.header().clone();
        let (id, fault) = match record {
            Err(fault) => (None, Some((fault.field, Fault::from(fault.message)))),
            Ok(record) => {
                let shown = record.id.as_ref().map(ToString::to_string);
                let fault =
                    check_record(&record, &header, existing, reembed.is_some(), &mut survey)
                        .err()
                        .or_else(|| match record.id.as_ref().map(|id| id.point_id()) {
                            None => Some(("id".to_owned(), Fault::from("is missing".to_owned()))),
                            Some((point_id, derived)) => match seen.get(&point_id) {
                                Some((first, first_line)) => Some((
                                    "id".to_owned(),
                                    Fault::from(format!(
                                        "duplicate: record {first}{} has the same id{}",
                                        first_line
                                            .map(|l| format!(" (line {l})"))
                                            .unwrap_or_default(),
                                        if derived { " (as derived)" } else { "" }
                                    )),
                                )),
                                None => {
                                    seen.insert(point_id, (index, line));
                                    survey.derived_ids += derived as usize;
                                    None
                                }
                            },
                        });
                (shown, fault)
            }
        };
        if let Some((field, error)) = fault {
            // A whole file of the wrong model is one error, not one per record.
            if let Some(mismatch) = file_mismatch(&error, index, path, options, &header) {
                return Err(mismatch);
            }
            survey.rejected.insert(index);
            survey.problems.push(Problem {
                index,
                line,
                id,
                field,
                error: error.message,
            });
        }
        let bytes = source.bytes_read();
        if bytes - last_report > 1 << 20 {
            progress.advance(bytes - last_report, survey.records);
            last_report = bytes;
        }
    }
    survey.bytes = source.bytes_read();
    progress.advance(survey.bytes - last_report, survey.records);
    survey.header = source.header().clone();
    if survey.records == 0 {
        return Err(TransferError::Unusable {
            path: path.to_owned(),
            message: "the file holds no records".into(),
        });
    }
    Ok(survey)
}

/// A fault's message, with what a dimension mismatch needs to become the file's error.
struct Fault {
    message: String,
    mismatch: Option<(String, usize, usize)>,
}

fn file_mismatch(
    fault: &Fault,
    index: usize,
    path: &Path,
    options: &ImportOptions,
    header: &FileHeader,
) -> Option<TransferError> {
    let (vector, expected, found) = fault.mismatch.clone()?;
    (index == 0).then(|| TransferError::DimensionMismatch {
        path: path.to_owned(),
        collection: options.collection.clone(),
        vector,
        expected,
        found,
        model: header.model.clone(),
    })
}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Self {
            message,
            mismatch: None,
        }
    }
}

fn check_record(
    record: &SourceRecord,
    header: &FileHeader,
    existing: Option<&CollectionConfig>,
    reembedding: bool,
    survey: &mut Survey,
) -> Result<(), (String, Fault)> {
    if reembedding {
        if record.text.is_none() {
            return Err((
                "text".into(),
                "has no text to embed (looked for text, description, content, title, \
                 document) for --reembed"
                    .to_owned()
                    .into(),
            ));
        }
        return Ok(());
    }
    if record.vectors.is_empty() {
        return Err((
            "vector".into(),
            "is missing: the record has no vector (or use --reembed to embed its text)"
                .to_owned()
                .into(),
        ));
    }
    let empty = CollectionConfig::default();
    for (name, vector) in &record.vectors {
        let key = if record.vector_key.is_empty() {
            "vector"
        } else {
            &record.vector_key
        };
        let field = if name.is_empty() {
            key.to_owned()
        } else {
            format!("{key}.{name}")
        };
        match vector {
            SourceVector::Sparse(_) => {
                let target = target_name(name, existing.unwrap_or(&empty), header);
                if let Some(config) = existing
                    && !config.sparse_vectors.contains_key(&target)
                {
                    return Err((
                        field,
                        format!("is sparse but the collection has no sparse vector `{target}`")
                            .into(),
                    ));
                }
                survey.sparse.insert(name.clone());
            }
            SourceVector::Dense(values) => {
                let expected = match existing {
                    Some(config) => {
                        let target = target_name(name, config, header);
                        match config.vectors.get(&target) {
                            Some(params) => params.size,
                            None => {
                                let known = config
                                    .vectors
                                    .keys()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ");
                                return Err((
                                    field,
                                    format!(
                                        "has no place in the collection: it has no vector \
                                         `{target}` (it has: {known})"
                                    )
                                    .into(),
                                ));
                            }
                        }
                    }
                    None => *survey.dimensions.entry(name.clone()).or_insert_with(|| {
                        let declared = match &header.config {
                            Some(config) => config
                                .vectors
                                .get(&target_name(name, config, header))
                                .map(|p| p.size),
                            None => header.dimension.filter(|_| name.is_empty()),
                        };
                        declared.unwrap_or(values.len())
                    }),
                };
                if existing.is_some() {
                    survey.dimensions.entry(name.clone()).or_insert(expected);
                }
                if values.len() != expected {
                    return Err((
                        field,
                        Fault {
                            message: format!("has {} numbers, expected {expected}", values.len()),
                            mismatch: existing.map(|_| (name.clone(), expected, values.len())),
                        },
                    ));
                }
            }
        }
    }
    Ok(())
}

fn write_report(
    path: &Path,
    options: &ImportOptions,
    problems: &[Problem],
) -> Result<Option<PathBuf>, TransferError> {
    if problems.is_empty() {
        return Ok(None);
    }
    let report = options.report.clone().unwrap_or_else(|| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "import".into());
        PathBuf::from(format!("{name}.import-report.jsonl"))
    });
    let failed = |source| TransferError::Report {
        path: report.clone(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&report).map_err(failed)?);
    for problem in problems {
        serde_json::to_writer(&mut out, problem).map_err(|e| failed(e.into()))?;
        out.write_all(b"\n").map_err(failed)?;
    }
    out.flush().map_err(failed)?;
    Ok(Some(report))
}

#[allow(clippy::too_many_arguments)]
fn write(
    store: &dyn VectorStore,
    path: &Path,
    format: ImportFormat,
    options: &ImportOptions,
    config: &CollectionConfig,
    survey: &Survey,
    reembed: Option<&Reembed<'_>>,
    progress: &dyn ImportProgress,
) -> Result<(usize, usize), TransferError> {
    let mut source = Source::open(path, format, options.sidecar.as_deref())?;
    let mut batch: Vec<(usize, SourceRecord)> = Vec::with_capacity(options.batch_size);
    let (mut landed, mut reembedded) = (0, 0);
    let mut last_report = 0u64;
    let header = &survey.header;
    let mut flush = |batch: &mut Vec<(usize, SourceRecord)>| -> Result<(), TransferError> {
        let Some((first_index, _)) = batch.first() else {
            return Ok(());
        };
        let first_index = *first_index;
        let texts: Option<Vec<String>> = reembed.map(|_| {
            batch
                .iter()
                .map(|(_, r)| r.text.clone().unwrap_or_default())
                .collect()
        });
        let embedded = match (reembed, &texts) {
            (Some(model), Some(texts)) => Some(model.embedder.embed(texts)?),
            _ => None,
        };
        let points: Vec<Point> = batch
            .drain(..)
            .enumerate()
            .map(|(row, (_, record))| {
                let vectors = match (&embedded, reembed) {
                    (Some(embedded), Some(_)) => BTreeMap::from([(
                        DENSE_VECTOR.to_owned(),
                        Vector::Dense(embedded.row(row).to_vec()),
                    )]),
                    _ => record
                        .vectors
                        .into_iter()
                        .map(|(name, vector)| {
                            let vector = match vector {
                                SourceVector::Dense(values) => Vector::Dense(values),
                                SourceVector::Sparse(sparse) => Vector::Sparse(sparse),
                            };
                            (target_name(&name, config, header), vector)
                        })
                        .collect(),
                };
                let mut payload = record.payload;
                let (id, derived) = record
                    .id
                    .as_ref()
                    .map(|id| id.point_id())
                    .unwrap_or((PointId::Num(0), false));
                if derived && let Some(crate::record::SourceId::Text(text)) = &record.id {
                    payload.insert(LEGACY_ID_FIELD.into(), Value::String(text.clone()));
                }
                match reembed {
                    Some(model) => {
                        if let Some(old) = payload.insert("model".into(), model.model_id.into())
                            && old != model.model_id
                        {
                            payload.insert("reembedded_from".into(), old);
                        }
                    }
                    None => {
                        if let Some(model) = &header.model {
                            payload
                                .entry("model")
                                .or_insert_with(|| Value::String(model.clone()));
                        }
                    }
                }
                Point {
                    id,
                    vectors,
                    payload: Value::Object(payload),
                }
            })
            .collect();
        let count = points.len();
        store
            .upsert(&options.collection, points)
            .map_err(|source| TransferError::Write {
                collection: options.collection.clone(),
                landed,
                next_index: first_index,
                source: Box::new(source),
            })?;
        landed += count;
        if embedded.is_some() {
            reembedded += count;
        }
        Ok(())
    };
    while let Some(Located { index, record, .. }) = source.next()? {
        if survey.rejected.contains(&index) {
            continue;
        }
        // The first pass accepted this record; the file changing between passes is the only
        // way it could fail now.
        let record = record.map_err(|fault| TransferError::Unusable {
            path: path.to_owned(),
            message: format!(
                "record {index} changed while it was imported ({}: {})",
                fault.field, fault.message
            ),
        })?;
        batch.push((index, record));
        if batch.len() >= options.batch_size {
            flush(&mut batch)?;
            let bytes = source.bytes_read();
            progress.advance(bytes - last_report, options.batch_size);
            last_report = bytes;
        }
    }
    let remaining = batch.len();
    flush(&mut batch)?;
    progress.advance(source.bytes_read() - last_report, remaining);
    Ok((landed, reembedded))
}
