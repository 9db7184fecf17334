//! The one error of this crate: why an import, an export or a migration stopped, naming the
//! file, the record or the collection.

use std::path::PathBuf;

use mnemo_store::StoreError;

use crate::import::Problem;
use crate::scan::ScanError;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    // A file that cannot be read at all (as opposed to a record that cannot be imported).
    #[error("{path}: {error}")]
    ReadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    Scan { path: PathBuf, error: ScanError },
    // Importing.
    #[error(
        "{path}: {total} record(s) cannot be imported, so nothing was written \
         (--on-error skip imports the others{report}):\n  {list}",
        report = report.as_ref().map(|r| format!("; all are listed in {}", r.display())).unwrap_or_default(),
        list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Invalid {
        path: PathBuf,
        /// The first ones.
        problems: Vec<Problem>,
        total: usize,
        report: Option<PathBuf>,
    },
    #[error(
        "collection `{collection}` holds {expected}-d vectors{vector} but {path} holds {found}-d ones{model}: \
         import into a new collection (--collection NAME), or embed the records' text with the \
         local model instead of keeping their vectors (--reembed)",
        vector = if vector.is_empty() { String::new() } else { format!(" in `{vector}`") },
        model = model.as_ref().map(|m| format!(" (model {m})")).unwrap_or_default()
    )]
    DimensionMismatch {
        path: PathBuf,
        collection: String,
        vector: String,
        expected: usize,
        found: usize,
        model: Option<String>,
    },
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },
    #[error(
        "writing to collection `{collection}` failed after {landed} point(s) had landed \
         (records before index {next_index}, less the skipped ones): {source}"
    )]
    Write {
        collection: String,
        landed: usize,
        next_index: usize,
        source: Box<StoreError>,
    },
    #[error("embedding records for --reembed: {0}")]
    Embed(#[from] mnemo_embed::EmbedError),
    #[error("cannot write the report {path}: {source}")]
    Report {
        path: PathBuf,
        source: std::io::Error,
    },
    // Exporting.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "collection `{collection}` has {count} dense vectors ({names}): a .npy file holds one; \
         name it with --vector (the others go to the sidecar)"
    )]
    WhichVector {
        collection: String,
        count: usize,
        names: String,
    },
    #[error("collection `{collection}` has no dense vector `{name}` to write as .npy")]
    NoDenseVector { collection: String, name: String },
    // Migrating.
    #[error("reading `{collection}` from the source: {source}")]
    MigrateSource {
        collection: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("writing `{collection}` to the target ({copied} points copied so far): {source}")]
    MigrateTarget {
        collection: String,
        copied: usize,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "collection `{collection}` exists in the target with another config ({target}; the source has {source_config}): \
         pass --replace to drop it and copy again"
    )]
    ConfigDiffers {
        collection: String,
        target: String,
        source_config: String,
    },
    #[error(
        "collection `{collection}`: the target counts {target} points, the source {source_count}; nothing was deleted from the source"
    )]
    CountMismatch {
        collection: String,
        source_count: usize,
        target: usize,
    },
    #[error(
        "collection `{collection}`: {mismatches} of {sampled} sampled points differ, first: {first}"
    )]
    SampleMismatch {
        collection: String,
        sampled: usize,
        mismatches: usize,
        first: String,
    },
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<StoreError> for TransferError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

pub type Result<T, E = TransferError> = std::result::Result<T, E>;
