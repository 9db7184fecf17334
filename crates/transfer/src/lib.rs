//! Moving data in and out of collections, over any [`mnemo_store::VectorStore`]: `mnemo import`
//! of legacy and foreign vector files (checked whole before anything is written), `mnemo
//! export`, and `mnemo migrate-store` between two stores. Snapshots are the store's own
//! (`VectorStore::create_snapshot`).
//!
//! What this crate is not for: Markdown, search, or the engine's collection layout. It never
//! uses the engine; the model only for `--reembed`.
//!
//! - `source.rs`: formats told from their first bytes, each read as a stream of records;
//!   `scan.rs`: JSON documents split into records without holding more than one;
//!   `record.rs`: any record shape mapped to ids, vectors, payload and text;
//!   `npy.rs`, `pickle.rs`: NumPy arrays and pickles (data only, no code run).
//! - `import.rs`: two passes (check every record, then write batches);
//!   `export.rs`: pages of points to JSON Lines, `.npy` + sidecar, or Qdrant's JSON;
//!   `migrate.rs`: collections copied store to store, then counts and a sample compared.
//! - `error.rs`: [`TransferError`], the one error of the crate.

mod error;
mod export;
mod import;
mod migrate;
pub mod npy;
mod pickle;
mod record;
mod scan;
mod source;

pub use error::{Result, TransferError};
pub use export::{ExportFormat, ExportSummary, export_collection};
pub use import::{
    ImportOptions, ImportProgress, ImportSummary, NoProgress, OnError, Problem, Reembed,
    import_file,
};
pub use migrate::{CollectionMigration, MigrateOptions, migrate};
pub use record::LEGACY_ID_FIELD;
pub use source::{ExportHeader, FORMAT_NAMES, ImportFormat, default_sidecar, detect};
