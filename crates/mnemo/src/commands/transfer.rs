//! `mnemo import`, `mnemo export`, `mnemo migrate-store`: data in and out of the store.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo_store::Distance;
use mnemo_transfer::{
    ExportFormat, ImportFormat, ImportOptions, ImportSummary, MigrateOptions, OnError, Reembed,
    export_collection, import_file, migrate,
};

use crate::progress::Bar;

#[derive(Args)]
pub struct ImportArgs {
    /// The file: task_vectors.json, a JSON list, JSON Lines, Qdrant points, .npy, a pickle
    file: PathBuf,
    /// Collection to import into (created from the file's vectors when missing)
    #[arg(long)]
    collection: String,
    /// The file's format: auto (read from the first bytes), task-vectors, list, jsonl,
    /// qdrant, npy, pickle
    #[arg(long, default_value = "auto")]
    format: ImportFormat,
    /// A bad record stops the import before anything is written (stop), or is left out and
    /// listed in the report (skip)
    #[arg(long, default_value = "stop")]
    on_error: OnError,
    /// Check every record and say what would be imported; write nothing
    #[arg(long)]
    dry_run: bool,
    /// Embed each record's text (text, description, ...) with the local model instead of
    /// keeping its vector: for vectors of another model
    #[arg(long)]
    reembed: bool,
    /// The ids and payloads of a .npy file, one JSON object per line [default: FILE with
    /// the extension .jsonl, when it exists]
    #[arg(long)]
    payloads: Option<PathBuf>,
    /// Where records that were not imported are listed [default: ./FILE_NAME.import-report.jsonl]
    #[arg(long)]
    report: Option<PathBuf>,
    /// How a collection the import creates compares vectors: cosine (stored normalised, as
    /// Qdrant does), dot, euclid or manhattan (stored exactly as read)
    #[arg(long, default_value = "cosine")]
    distance: Distance,
    /// Leave building the search index (HNSW) for later; searches still work, by full scan
    #[arg(long)]
    no_optimize: bool,
    /// Points per write; each is all-or-nothing
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let store = args.store.open_any()?.shared();
    let embedder = if args.reembed {
        Some(args.model.load(None, None)?)
    } else {
        None
    };
    let model_id = args.model.model_id()?;
    let reembed = embedder
        .as_ref()
        .map(|embedder| Reembed { embedder, model_id });
    let options = ImportOptions {
        format: args.format,
        on_error: args.on_error,
        dry_run: args.dry_run,
        reembed: args.reembed,
        sidecar: args.payloads.clone(),
        report: args.report.clone(),
        batch_size: args.batch.max(1),
        optimize: !args.no_optimize,
        distance: args.distance,
        ..ImportOptions::new(&args.collection)
    };
    let bar = Bar::new("{prefix}", "{bytes}/{total_bytes}");
    let result = import_file(store.as_ref(), reembed, &args.file, &options, &bar);
    bar.finish();
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_import(&summary);
    }
    Ok(())
}

fn print_import(s: &ImportSummary) {
    let seconds = s.validate_seconds + s.write_seconds + s.index_seconds;
    let mb = s.bytes as f64 / 1e6;
    let verb = if s.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!(
        "{verb} {} of {} records from {} ({}, {:.1} MB) into `{}`{}",
        s.imported,
        s.records,
        s.file.display(),
        s.format,
        mb,
        s.collection,
        if s.collection_created {
            " (created)"
        } else {
            ""
        }
    );
    let dims: Vec<String> = s
        .dimensions
        .iter()
        .map(|(name, size)| {
            if name.is_empty() {
                format!("{size}-d")
            } else {
                format!("{name} {size}-d")
            }
        })
        .collect();
    println!(
        "  vectors {}{} · ids derived from non-Qdrant ids {} (original in `legacy_id`) · re-embedded {}",
        if dims.is_empty() {
            "-".into()
        } else {
            dims.join(", ")
        },
        s.model
            .as_ref()
            .map(|m| format!(" (model {m})"))
            .unwrap_or_default(),
        s.derived_ids,
        s.reembedded
    );
    println!(
        "  {:.2} s (check {:.2} s, write {:.2} s, search index {:.2} s) · {:.1} MB/s · {:.0} records/s",
        seconds,
        s.validate_seconds,
        s.write_seconds,
        s.index_seconds,
        mb / seconds.max(1e-9),
        s.records as f64 / seconds.max(1e-9)
    );
    if s.skipped > 0 {
        println!(
            "  skipped {} record(s), listed in {}",
            s.skipped,
            s.report
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    collection: String,
    /// jsonl: mnemo's JSON Lines (the collection's config, then one point per line); npy:
    /// NumPy float32 rows of one dense vector, and FILE.jsonl with ids, payloads, the rest;
    /// qdrant: Qdrant's {"points": [...]}
    #[arg(long, default_value = "jsonl")]
    format: ExportFormat,
    /// The file to write [default: COLLECTION.jsonl, .npy or .json]
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// For npy: which dense vector fills the rows [default: the only one, or `dense`]
    #[arg(long)]
    vector: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let store = args.store.open_any()?.shared();
    let format = args.format;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.{}", args.collection, format.extension())));
    let bar = Bar::new("{prefix}", "{pos}/{total_pos}");
    let result = export_collection(
        store.as_ref(),
        &args.collection,
        format,
        &output,
        args.vector.as_deref(),
        &bar,
    );
    bar.finish();
    let summary = result?;
    println!(
        "exported {} points of `{}` in {:.2} s: {}",
        summary.points,
        summary.collection,
        summary.seconds,
        summary
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The store to copy from: `embedded` (--data-dir), a data directory, or qdrant://HOST:PORT[,...]
    #[arg(long)]
    from: String,
    /// The store to copy to (the same forms)
    #[arg(long)]
    to: String,
    /// Only this collection (repeatable) [default: every collection of the source]
    #[arg(long = "collection")]
    collections: Vec<String>,
    /// Points per page read and batch written
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Points per collection read back from both stores and compared bit for bit
    #[arg(long, default_value_t = 100)]
    sample: usize,
    /// Drop a target collection of the same name first [default: write into it when its config is the same]
    #[arg(long)]
    replace: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn migrate_store(args: MigrateArgs) -> anyhow::Result<()> {
    let source_args = args.store.pointing_at(&args.from);
    let target_args = args.store.pointing_at(&args.to);
    let (from, to) = (source_args.describe(), target_args.describe());
    anyhow::ensure!(from != to, "--from and --to are the same store ({from})");
    let source = source_args
        .open_any()
        .with_context(|| format!("cannot open the source, {from}"))?
        .shared();
    let target = target_args
        .open_any()
        .with_context(|| format!("cannot open the target, {to}"))?
        .shared();
    let options = MigrateOptions {
        collections: args.collections.clone(),
        batch_size: args.batch.max(1),
        sample: args.sample,
        replace: args.replace,
    };
    let bar = Bar::new("{prefix}", "{pos}/{total_pos}");
    let result = migrate(source.as_ref(), target.as_ref(), &options, &bar);
    bar.finish();
    let done = result.with_context(|| format!("migrating from {from} to {to}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    for c in &done {
        println!(
            "{}: {} points copied in {:.1} s ({} in the target), {} payload indexes; {} of {} sampled points identical bit for bit",
            c.collection,
            c.points,
            c.seconds,
            c.target_points,
            c.payload_indexes,
            c.identical,
            c.sampled
        );
    }
    println!("migrated {} collection(s) from {from} to {to}", done.len());
    Ok(())
}
