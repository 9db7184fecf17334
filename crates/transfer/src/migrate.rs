//! Copying collections from one store to another (the embedded store to a Qdrant cluster, or
//! back): config, payload indexes, then every point with its payload and vectors, page by
//! page; then proof that it arrived: the counts, and a sample of points read back from both
//! sides and compared bit for bit.

use std::time::Instant;

use mnemo_store::{
    CollectionConfig, FieldType, PayloadSelection, PointId, Record, ScrollRequest, StoreError,
    VectorSelection, VectorStore,
};
use serde::Serialize;

use crate::TransferError;
use crate::import::ImportProgress;

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Collections to copy; empty for all of the source's.
    pub collections: Vec<String>,
    pub batch_size: usize,
    /// Points read back from both sides and compared bit for bit.
    pub sample: usize,
    /// Drop a target collection of the same name first (else one with the same config is
    /// written into: upserts by id make a second run complete an interrupted one).
    pub replace: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            collections: Vec::new(),
            batch_size: 256,
            sample: 100,
            replace: false,
        }
    }
}

/// What happened to one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionMigration {
    pub collection: String,
    pub points: usize,
    pub target_points: usize,
    pub payload_indexes: usize,
    pub sampled: usize,
    /// Sampled points whose vectors and payload are identical, bit for bit, on both sides.
    pub identical: usize,
    pub seconds: f64,
}

fn config_text(config: &CollectionConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// Copies the collections of `options` from `source` to `target`, verifying each.
pub fn migrate(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    options: &MigrateOptions,
    progress: &dyn ImportProgress,
) -> Result<Vec<CollectionMigration>, TransferError> {
    let names = if options.collections.is_empty() {
        source
            .list_collections()
            .map_err(|source| TransferError::MigrateSource {
                collection: "*".into(),
                source: Box::new(source),
            })?
    } else {
        options.collections.clone()
    };
    names
        .iter()
        .map(|name| migrate_one(source, target, name, options, progress))
        .collect()
}

fn migrate_one(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    name: &str,
    options: &MigrateOptions,
    progress: &dyn ImportProgress,
) -> Result<CollectionMigration, TransferError> {
    let started = Instant::now();
    let from = |source_error| TransferError::MigrateSource {
        collection: name.to_owned(),
        source: Box::new(source_error),
    };
    let to = |copied, source_error| TransferError::MigrateTarget {
        collection: name.to_owned(),
        copied,
        source: Box::new(source_error),
    };
    let info = source.collection_info(name).map_err(from)?;
    let points = source.count(name, None).map_err(from)?;
    if options.replace {
        target.delete_collection(name).map_err(|e| to(0, e))?;
    }
    match target.create_collection(name, &info.config) {
        Ok(()) => {}
        Err(StoreError::CollectionExists(_)) => {
            let existing = target.collection_config(name).map_err(|e| to(0, e))?;
            if existing != info.config {
                return Err(TransferError::ConfigDiffers {
                    collection: name.to_owned(),
                    target: config_text(&existing),
                    source_config: config_text(&info.config),
                });
            }
        }
        Err(err) => return Err(to(0, err)),
    }
    let mut payload_indexes = 0;
    for (field, kind) in &info.payload_indexes {
        // Index types the data model does not name (geo) are left to the target's owner.
        let Ok(field_type) = serde_json::from_value::<FieldType>(kind.as_str().into()) else {
            continue;
        };
        target
            .create_payload_index(name, field, field_type)
            .map_err(|e| to(0, e))?;
        payload_indexes += 1;
    }

    progress.phase(&format!("copy {name}"), points as u64);
    let every = (points / options.sample.max(1)).max(1);
    let mut sample_ids: Vec<PointId> = Vec::new();
    let mut copied = 0;
    let mut request = ScrollRequest::new(options.batch_size.max(1));
    request.with_payload = PayloadSelection::All;
    request.with_vectors = VectorSelection::All;
    loop {
        let page = source.scroll(name, request.clone()).map_err(from)?;
        let batch: Vec<mnemo_store::Point> = page
            .points
            .into_iter()
            .map(|record| {
                if copied % every == 0 && sample_ids.len() < options.sample {
                    sample_ids.push(record.id);
                }
                copied += 1;
                mnemo_store::Point {
                    id: record.id,
                    vectors: record.vectors,
                    payload: serde_json::Value::Object(record.payload),
                }
            })
            .collect();
        let size = batch.len();
        if size > 0 {
            target
                .upsert(name, batch)
                .map_err(|e| to(copied - size, e))?;
        }
        progress.advance(size as u64, copied);
        match page.next {
            Some(next) => request.offset = Some(next),
            None => break,
        }
    }
    let target_points = target.count(name, None).map_err(|e| to(copied, e))?;
    if target_points != points {
        return Err(TransferError::CountMismatch {
            collection: name.to_owned(),
            source_count: points,
            target: target_points,
        });
    }
    let read = |store: &dyn VectorStore| {
        store.get(
            name,
            &sample_ids,
            PayloadSelection::All,
            VectorSelection::All,
        )
    };
    let before = read(source).map_err(from)?;
    let after = read(target).map_err(|e| to(copied, e))?;
    let mut mismatches = Vec::new();
    for id in &sample_ids {
        let a = before.iter().find(|r| r.id == *id);
        let b = after.iter().find(|r| r.id == *id);
        match (a, b) {
            (Some(a), Some(b)) if identical(a, b) => {}
            (Some(_), Some(_)) => mismatches.push(format!("point {id} differs")),
            (Some(_), None) => mismatches.push(format!("point {id} is missing in the target")),
            // Deleted from the source while copying: nothing to compare.
            (None, _) => {}
        }
    }
    if let Some(first) = mismatches.first() {
        return Err(TransferError::SampleMismatch {
            collection: name.to_owned(),
            sampled: sample_ids.len(),
            mismatches: mismatches.len(),
            first: first.clone(),
        });
    }
    Ok(CollectionMigration {
        collection: name.to_owned(),
        points,
        target_points,
        payload_indexes,
        sampled: sample_ids.len(),
        identical: sample_ids.len() - mismatches.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Same payload, and the same vectors bit for bit (`==` on floats would call 0.0 and -0.0
/// equal). A sparse vector is the same in any order of its dimensions.
fn identical(a: &Record, b: &Record) -> bool {
    let bits = |v: &mnemo_store::Vector| -> Vec<(u32, u32)> {
        match v {
            mnemo_store::Vector::Dense(values) => values
                .iter()
                .enumerate()
                .map(|(i, x)| (i as u32, x.to_bits()))
                .collect(),
            mnemo_store::Vector::Sparse(s) => {
                let mut pairs: Vec<(u32, u32)> = s
                    .indices
                    .iter()
                    .zip(&s.values)
                    .map(|(i, x)| (*i, x.to_bits()))
                    .collect();
                pairs.sort_unstable();
                pairs
            }
        }
    };
    a.payload == b.payload
        && a.vectors.len() == b.vectors.len()
        && a.vectors
            .iter()
            .all(|(name, v)| b.vectors.get(name).is_some_and(|w| bits(v) == bits(w)))
}
