//! Moving data in and out of collections: `mnemo import` of legacy and foreign vector files,
//! `mnemo export`. Snapshots are the store's (`VectorStore::create_snapshot`).

mod export;
mod import;
mod migrate;
pub mod npy;
mod pickle;
mod record;
mod scan;
mod source;

pub use export::{ExportError, ExportFormat, ExportSummary, export_collection};
pub use import::{
    ImportError, ImportOptions, ImportProgress, ImportSummary, NoProgress, OnError, Problem,
    Reembed, import_file,
};
pub use migrate::{CollectionMigration, MigrateError, MigrateOptions, migrate};
pub use record::LEGACY_ID_FIELD;
pub use source::{ExportHeader, FORMAT_NAMES, ImportFormat, default_sidecar, detect};
