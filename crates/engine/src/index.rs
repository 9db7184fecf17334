//! `mnemo index`: Markdown files → tasks and passages → vectors → the store, incrementally.
//!
//! Files are read in chunks; for each chunk the points the store already holds for those files
//! are compared with what the files say now, by fingerprint (the text's hash, the model, the
//! payload's hash). Unchanged points are left alone; a point whose text is unchanged but whose
//! payload moved (a ticked box, a new line number) is rewritten with the vector it already had;
//! only new text is embedded, and even then a vector stored for the same text by the same model
//! (a renamed or copied file) is reused. Points of tasks that disappeared from a file, and of
//! files that disappeared from a folder, are deleted last, after their vectors could be reused.
//!
//! Embedding and writing overlap: batches go to a writer thread through a bounded channel, so
//! the embedder never waits for the disk and memory holds at most a few batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use mnemo_store::{
    CollectionConfig, Condition, Distance, FieldType, Filter, MatchValue, PayloadSelection, Point,
    PointId, PointSelector, ScrollRequest, Vector, VectorSelection, VectorStore,
};
use mnemo_text::{Document, ParseOptions};
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::models::CollectionModel;
use crate::payload::{passage_json, task_json};
use crate::sources::{Skipped, SourceFile, collect_sources};
use crate::{DENSE_VECTOR, Engine, EngineError, KEYWORD_VECTOR, Result, TITLE_VECTOR, bm25};

#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub tasks_collection: String,
    pub passages_collection: String,
    /// Index prose passages as well as tasks.
    pub passages: bool,
    pub files_per_chunk: usize,
    pub embed_batch: usize,
    /// Build the HNSW and payload indexes at the end (searches work without, by full scan).
    pub optimize: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            tasks_collection: crate::TASKS_COLLECTION.to_owned(),
            passages_collection: crate::PASSAGES_COLLECTION.to_owned(),
            passages: true,
            files_per_chunk: 32,
            embed_batch: 256,
            optimize: true,
        }
    }
}

/// Told about progress as files are done. Called from the indexing thread.
pub trait IndexProgress {
    fn start(&self, _files: usize) {}
    fn files_done(&self, _files: usize, _embedded: usize) {}
    fn phase(&self, _name: &str) {}
    /// Asked between chunks of files: `true` stops the run with [`EngineError::Cancelled`].
    /// What was written before stays (a later run finds it current and goes on from there);
    /// removals and the search index build of this run are not done.
    fn cancelled(&self) -> bool {
        false
    }
}

/// No progress reporting.
pub struct Quiet;
impl IndexProgress for Quiet {}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexSummary {
    pub files: usize,
    pub skipped: Vec<String>,
    pub tasks: usize,
    pub passages: usize,
    /// Points written: new, or changed since the last run.
    pub written: usize,
    /// Texts run through the model (a task with a body has two: title and body, and title).
    pub embedded: usize,
    /// Texts whose vector the store or this run already had.
    pub reused: usize,
    /// Points left as they were.
    pub unchanged: usize,
    /// Files not even parsed: their bytes are those of the last run.
    pub files_unchanged: usize,
    pub removed: usize,
    /// Lines whose encoding damage was repaired, in the files read (unchanged files are not).
    pub repairs: usize,
    pub parse_seconds: f64,
    pub embed_seconds: f64,
    pub store_seconds: f64,
    pub optimize_seconds: f64,
    pub total_seconds: f64,
}

/// A text to embed, with the hash that keys its vector: a vector is a function of the text
/// and the model only, so any point's vector for the same hash and model can be reused.
struct HashedText {
    hash: String,
    text: String,
}

impl HashedText {
    fn new(text: String) -> Self {
        Self {
            hash: blake3::hash(text.as_bytes()).to_hex()[..32].to_owned(),
            text,
        }
    }
}

/// What the index derives from a task or passage to find it by.
struct SearchTexts {
    /// What the `dense` vector embeds: a task's title and body, a passage's text.
    embed: HashedText,
    /// What the `title` vector embeds, for a task whose title alone is not `embed`.
    title: Option<HashedText>,
    /// The BM25 document's terms.
    keywords: Vec<bm25::Term>,
    /// Terms from around the item (a task's body and heading), each once, counting towards
    /// matches but not towards the document's length.
    context: Vec<bm25::Term>,
}

/// A task or passage as it should be stored.
struct Wanted {
    id: PointId,
    texts: SearchTexts,
    payload: Map<String, Value>,
    payload_hash: String,
}

struct Fingerprint {
    embed_hash: String,
    payload_hash: String,
    model: String,
}

impl Fingerprint {
    const FIELDS: [&'static str; 3] = ["embed_hash", "payload_hash", "model"];

    fn of(payload: &Map<String, Value>) -> Self {
        let field = |name: &str| {
            payload
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            embed_hash: field("embed_hash"),
            payload_hash: field("payload_hash"),
            model: field("model"),
        }
    }
}

/// A file read this run: where it is, the hash of its bytes, and what it says.
struct ReadFile {
    path: PathBuf,
    file_hash: String,
    document: Document,
}

/// The version of what the index derives from a file (payload fields, the texts embedded and
/// keyword-indexed). Stored in every payload, so it is part of each point's fingerprint: a
/// version that derives differently rewrites every point once (reusing stored vectors). Bumped
/// with `bm25::ANALYSIS_VERSION`: 3 is the French and English keyword analysis.
const INDEX_FORMAT: u32 = 3;

/// The weight of a word of a task's body or nearest heading in its keyword document (once,
/// however often it occurs), beside 1 for each word of its title.
const CONTEXT_KEYWORD_WEIGHT: f32 = 0.3;

/// The fields filters use, indexed in both collections.
const INDEXED_FIELDS: [(&str, FieldType); 18] = [
    ("file", FieldType::Keyword),
    ("file_hash", FieldType::Keyword),
    (crate::FILE_KEY_FIELD, FieldType::Keyword),
    ("dirs", FieldType::Keyword),
    ("text_hash", FieldType::Keyword),
    ("embed_hash", FieldType::Keyword),
    ("title_hash", FieldType::Keyword),
    ("model", FieldType::Keyword),
    ("id", FieldType::Keyword),
    ("status", FieldType::Keyword),
    ("priority", FieldType::Keyword),
    ("number", FieldType::Keyword),
    ("section_path", FieldType::Keyword),
    ("tags", FieldType::Keyword),
    ("mvp", FieldType::Bool),
    ("depth", FieldType::Integer),
    ("line", FieldType::Integer),
    ("index_format", FieldType::Integer),
];

impl Engine {
    /// Creates `name` for this engine's model if it does not exist; refuses one made for
    /// vectors of another size.
    pub fn ensure_collection(&self, name: &str) -> Result<()> {
        let model = self.collection_model(name)?;
        self.ensure_collection_for(name, &model)
    }

    /// Creates `name` for `model` if it does not exist, and records that model; refuses one
    /// made for vectors of another size.
    pub fn ensure_collection_for(&self, name: &str, model: &CollectionModel) -> Result<()> {
        let store = self.store();
        if store.list_collections()?.iter().any(|c| c == name) {
            let info = store.collection_info(name)?;
            let has_dense =
                |vector: &str| info.config.vectors.get(vector).map(|v| v.size) == Some(model.dim());
            if !has_dense(DENSE_VECTOR)
                || !has_dense(TITLE_VECTOR)
                || !info.config.sparse_vectors.contains_key(KEYWORD_VECTOR)
            {
                return Err(EngineError::IncompatibleCollection {
                    name: name.to_owned(),
                    reason: format!(
                        "it does not hold `{DENSE_VECTOR}` and `{TITLE_VECTOR}` vectors of {} dimensions (the model {}) and `{KEYWORD_VECTOR}` keyword vectors",
                        model.dim(),
                        model.id
                    ),
                });
            }
            // Collections made by an earlier version may lack an index added since, and
            // their model.
            for (field, field_type) in INDEXED_FIELDS {
                if !info.payload_indexes.contains_key(field) {
                    store.create_payload_index(name, field, field_type)?;
                }
            }
            if self.registry().binding(name).is_none() {
                self.bind_model(name, model)?;
            }
            return Ok(());
        }
        let config = CollectionConfig::default()
            .with_vector(DENSE_VECTOR, model.dim(), Distance::Cosine)
            .with_vector(TITLE_VECTOR, model.dim(), Distance::Cosine)
            .with_sparse_vector(KEYWORD_VECTOR, true);
        self.create_collection_for(name, &config, model)?;
        for (field, field_type) in INDEXED_FIELDS {
            store.create_payload_index(name, field, field_type)?;
        }
        Ok(())
    }

    /// Indexes the Markdown files under `paths` (files or folders), step by step as
    /// ARCHITECTURE.md's data flow draws it.
    ///
    /// While a migration builds a shadow of the tasks collection with another model, the same
    /// files are indexed into the shadow too (dual write), so that the switch loses no edit.
    pub fn index(
        &self,
        paths: &[PathBuf],
        options: &IndexOptions,
        progress: &dyn IndexProgress,
    ) -> Result<IndexSummary> {
        let summary = self.index_into(paths, options, progress)?;
        if let Some(shadow) = self.shadow_of(&options.tasks_collection) {
            progress.phase("indexing the migration's shadow collection too");
            let mirrored = IndexOptions {
                tasks_collection: shadow,
                passages: false,
                ..options.clone()
            };
            self.index_into(paths, &mirrored, progress)?;
        }
        Ok(summary)
    }

    fn index_into(
        &self,
        paths: &[PathBuf],
        options: &IndexOptions,
        progress: &dyn IndexProgress,
    ) -> Result<IndexSummary> {
        let started = Instant::now();
        let (files, Skipped(skipped)) = collect_sources(paths);
        let mut run = self.start_run(options, files.len(), skipped)?;
        progress.start(files.len());
        self.write_changed(&mut run, &files, progress)?;
        progress.phase("removing what is gone");
        self.remove_gone(&mut run, paths)?;
        if options.optimize && (run.summary.written > 0 || run.summary.removed > 0) {
            progress.phase("building the search index");
            let optimize_started = Instant::now();
            for collection in &run.collections {
                self.store().optimize(collection)?;
            }
            run.summary.optimize_seconds = optimize_started.elapsed().as_secs_f64();
        }
        self.store().flush()?;
        run.summary.total_seconds = started.elapsed().as_secs_f64();
        Ok(run.summary)
    }

    /// The collections of the run, made or checked first.
    fn start_run<'a>(
        &self,
        options: &'a IndexOptions,
        files: usize,
        skipped: Vec<String>,
    ) -> Result<Run<'a>> {
        let mut collections = vec![&options.tasks_collection];
        if options.passages {
            collections.push(&options.passages_collection);
        }
        // The tasks collection's model is the run's: a passages collection of another model
        // is refused by the dimension check, or by name when both have the same size.
        let model = self.collection_model(&options.tasks_collection)?;
        for collection in &collections {
            let own = self.collection_model(collection)?;
            if own.id != model.id && self.registry().binding(collection).is_some() {
                return Err(EngineError::IncompatibleCollection {
                    name: (*collection).clone(),
                    reason: format!(
                        "its vectors come from the model {}, and `{}`'s from {}: index them into collections of one model",
                        own.id, options.tasks_collection, model.id
                    ),
                });
            }
            self.ensure_collection_for(collection, &model)?;
        }
        Ok(Run {
            options,
            model,
            collections,
            summary: IndexSummary {
                files,
                skipped,
                ..IndexSummary::default()
            },
            in_flight: InFlight::default(),
            deletions: Vec::new(),
            seen_files: HashSet::new(),
        })
    }

    /// Every chunk of files read, compared with what is stored, and what changed embedded and
    /// handed to a writer thread, which stores batches while the next ones are embedded.
    fn write_changed(
        &self,
        run: &mut Run<'_>,
        files: &[SourceFile],
        progress: &dyn IndexProgress,
    ) -> Result<()> {
        let (sender, receiver) = sync_channel::<(String, Vec<Point>)>(WRITE_QUEUE);
        let store = self.store();
        let writing = std::thread::scope(|scope| {
            let writer = scope.spawn(move || write_batches(store, receiver));
            let produced = (|| -> Result<()> {
                let mut done = 0;
                for chunk in files.chunks(run.options.files_per_chunk.max(1)) {
                    if progress.cancelled() {
                        return Err(EngineError::Cancelled {
                            files_done: done,
                            files: files.len(),
                        });
                    }
                    if !self.index_chunk(run, chunk, &sender)? {
                        // The writer stopped on an error; it reports it when joined.
                        return Ok(());
                    }
                    done += chunk.len();
                    progress.files_done(done, run.summary.embedded);
                }
                Ok(())
            })();
            drop(sender);
            let written = writer
                .join()
                .unwrap_or(Err(EngineError::WorkerPanicked("writer")));
            produced.and(written)
        })?;
        run.summary.store_seconds += writing.as_secs_f64();
        Ok(())
    }

    /// One chunk: files whose stored points are current are skipped unread; the others are
    /// parsed, their wanted points compared with the stored fingerprints, and the changed
    /// ones embedded (or given a stored vector of the same text) and sent to the writer.
    /// `false` when the writer has stopped.
    fn index_chunk(
        &self,
        run: &mut Run<'_>,
        chunk: &[SourceFile],
        writer: &SyncSender<(String, Vec<Point>)>,
    ) -> Result<bool> {
        let parse_started = Instant::now();
        let kinds = if run.options.passages {
            "tasks+passages"
        } else {
            "tasks"
        };
        let located = locate(chunk, kinds);
        let mut unchanged_files = HashSet::new();
        for file in &located {
            run.seen_files.insert(file.key.clone());
            if let Some(counts) = self.unchanged_counts(&run.collections, &run.model.id, file)? {
                unchanged_files.insert(file.key.clone());
                run.summary.files_unchanged += 1;
                run.summary.unchanged += counts.iter().sum::<usize>();
                run.summary.tasks += counts[0];
                run.summary.passages += counts.get(1).copied().unwrap_or_default();
            }
        }
        let to_read: Vec<&Located> = located
            .iter()
            .filter(|file| !unchanged_files.contains(&file.key))
            .collect();
        let keys: Vec<MatchValue> = to_read
            .iter()
            .map(|file| MatchValue::Keyword(file.key.clone()))
            .collect();
        let mut existing = Vec::new();
        for collection in &run.collections {
            existing.push(if keys.is_empty() {
                HashMap::new()
            } else {
                self.fingerprints(
                    collection,
                    Filter::must([Condition::any("file", keys.clone())]),
                )?
            });
        }
        let documents = read_files(&to_read, &mut run.summary);
        run.summary.parse_seconds += parse_started.elapsed().as_secs_f64();

        let mut wanted_by_collection = vec![wanted_tasks(&run.model.id, &documents)];
        if run.options.passages {
            wanted_by_collection.push(wanted_passages(&run.model.id, &documents));
        }
        let collections = run.collections.clone();
        for ((collection, wanted), existing) in collections
            .into_iter()
            .zip(wanted_by_collection)
            .zip(existing)
        {
            let wanted_ids: HashSet<PointId> = wanted.iter().map(|w| w.id).collect();
            run.deletions.push((
                collection.clone(),
                existing
                    .keys()
                    .filter(|id| !wanted_ids.contains(id))
                    .copied()
                    .collect(),
            ));
            let model = run.model.id.as_str();
            let (unchanged, changed): (Vec<Wanted>, Vec<Wanted>) =
                wanted.into_iter().partition(|w| {
                    existing.get(&w.id).is_some_and(|f| {
                        f.embed_hash == w.texts.embed.hash
                            && f.payload_hash == w.payload_hash
                            && f.model == model
                    })
                });
            run.summary.unchanged += unchanged.len();
            for batch in changed.chunks(run.options.embed_batch.max(1)) {
                let points = self.points_for(
                    collection,
                    &run.model,
                    batch,
                    &mut run.in_flight,
                    &mut run.summary,
                )?;
                if writer.send((collection.clone(), points)).is_err() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Deletes the stored points the files read no longer hold, and those under the paths
    /// given whose file is gone.
    fn remove_gone(&self, run: &mut Run<'_>, paths: &[PathBuf]) -> Result<()> {
        let delete_started = Instant::now();
        let scopes = scope_conditions(paths);
        if !scopes.is_empty() {
            for collection in &run.collections {
                let vanished =
                    self.points_of_vanished_files(collection, &scopes, &run.seen_files)?;
                run.deletions.push(((*collection).clone(), vanished));
            }
        }
        for (collection, ids) in std::mem::take(&mut run.deletions) {
            run.summary.removed += ids.len();
            for ids in ids.chunks(1024) {
                self.store()
                    .delete(&collection, PointSelector::Ids(ids.to_vec()))?;
            }
        }
        run.summary.store_seconds += delete_started.elapsed().as_secs_f64();
        Ok(())
    }

    /// For a file whose stored points all carry its current hash and this model, how many
    /// points each collection holds for it: nothing in it can have changed, so it is not even
    /// parsed. Counted on payload indexes, without reading payloads. `None` for a file to read:
    /// changed, unreadable, or with no stored point (new, or with nothing to index).
    fn unchanged_counts(
        &self,
        collections: &[&String],
        model: &str,
        file: &Located,
    ) -> Result<Option<Vec<usize>>> {
        let Some(file_hash) = &file.file_hash else {
            return Ok(None);
        };
        let of_file = Filter::must([Condition::matches("file", file.key.as_str())]);
        let current = Filter::must([
            Condition::matches("file", file.key.as_str()),
            Condition::matches("file_hash", file_hash.as_str()),
            Condition::matches("model", model),
            Condition::matches("index_format", i64::from(INDEX_FORMAT)),
        ]);
        let mut counts = Vec::with_capacity(collections.len());
        for collection in collections {
            let all = self.store().count(collection, Some(&of_file))?;
            if all != self.store().count(collection, Some(&current))? {
                return Ok(None);
            }
            counts.push(all);
        }
        Ok((counts.iter().sum::<usize>() > 0).then_some(counts))
    }

    /// The fingerprints of the points matching `filter`.
    fn fingerprints(
        &self,
        collection: &str,
        filter: Filter,
    ) -> Result<HashMap<PointId, Fingerprint>> {
        let mut found = HashMap::new();
        self.scroll_all(
            collection,
            filter,
            Fingerprint::FIELDS.as_slice(),
            &[],
            |record| {
                found.insert(record.id, Fingerprint::of(&record.payload));
            },
        )?;
        Ok(found)
    }

    /// Reads every point matching `filter`, page by page.
    pub(crate) fn scroll_all(
        &self,
        collection: &str,
        filter: Filter,
        fields: &[&str],
        vectors: &[&str],
        mut each: impl FnMut(mnemo_store::Record),
    ) -> Result<()> {
        let mut request = ScrollRequest::new(1024);
        request.filter = Some(filter);
        request.with_payload =
            PayloadSelection::Fields(fields.iter().map(|f| (*f).to_owned()).collect());
        if !vectors.is_empty() {
            request.with_vectors =
                VectorSelection::Names(vectors.iter().map(|v| (*v).to_owned()).collect());
        }
        loop {
            let page = self.store().scroll(collection, request.clone())?;
            page.points.into_iter().for_each(&mut each);
            match page.next {
                Some(next) => request.offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Points for `batch`, with vectors reused from the store where it has one for the same
    /// text and model, embedded otherwise.
    fn points_for(
        &self,
        collection: &str,
        model: &CollectionModel,
        batch: &[Wanted],
        in_flight: &mut InFlight,
        summary: &mut IndexSummary,
    ) -> Result<Vec<Point>> {
        let texts: Vec<&HashedText> = batch
            .iter()
            .flat_map(|w| std::iter::once(&w.texts.embed).chain(&w.texts.title))
            .collect();
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
        for text in &texts {
            if let Some(vector) = in_flight.get(&text.hash) {
                vectors.insert(text.hash.clone(), vector.clone());
            }
        }
        let hashes: Vec<MatchValue> = texts
            .iter()
            .filter(|t| !vectors.contains_key(&t.hash))
            .map(|t| t.hash.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(MatchValue::Keyword)
            .collect();
        if !hashes.is_empty() {
            // A stored title vector serves a text equal to that title, and the other way round.
            let cached = Filter {
                must: vec![Condition::matches("model", model.id.as_str())],
                should: vec![
                    Condition::any("embed_hash", hashes.clone()),
                    Condition::any("title_hash", hashes),
                ],
                ..Filter::default()
            };
            let store_started = Instant::now();
            self.scroll_all(
                collection,
                cached,
                &["embed_hash", "title_hash"],
                &[DENSE_VECTOR, TITLE_VECTOR],
                |record| {
                    for (field, vector) in
                        [("embed_hash", DENSE_VECTOR), ("title_hash", TITLE_VECTOR)]
                    {
                        if let (Some(Value::String(hash)), Some(Vector::Dense(values))) =
                            (record.payload.get(field), record.vectors.get(vector))
                        {
                            vectors
                                .entry(hash.clone())
                                .or_insert_with(|| values.clone());
                        }
                    }
                },
            )?;
            summary.store_seconds += store_started.elapsed().as_secs_f64();
        }

        let mut to_embed: Vec<&HashedText> = Vec::new();
        let mut queued: HashSet<&str> = HashSet::new();
        for text in &texts {
            if !vectors.contains_key(&text.hash) && queued.insert(&text.hash) {
                to_embed.push(text);
            }
        }
        if !to_embed.is_empty() {
            let embed_started = Instant::now();
            let strings: Vec<&str> = to_embed.iter().map(|t| t.text.as_str()).collect();
            let embeddings = model.embedder.embed(&strings)?;
            let mut embedded = HashMap::with_capacity(to_embed.len());
            for (text, row) in to_embed.iter().zip(embeddings.rows()) {
                vectors.insert(text.hash.clone(), row.to_vec());
                embedded.insert(text.hash.clone(), row.to_vec());
            }
            in_flight.push(embedded);
            summary.embed_seconds += embed_started.elapsed().as_secs_f64();
        }
        summary.embedded += to_embed.len();
        summary.reused += texts.len() - to_embed.len();

        let indexed_at = now_rfc3339();
        let mut points = Vec::with_capacity(batch.len());
        for wanted in batch {
            let Some(dense) = vectors.get(&wanted.texts.embed.hash) else {
                continue;
            };
            let mut payload = wanted.payload.clone();
            payload.insert(
                "payload_hash".into(),
                Value::String(wanted.payload_hash.clone()),
            );
            payload.insert("indexed_at".into(), Value::String(indexed_at.clone()));
            let mut point_vectors: BTreeMap<String, Vector> = [
                (DENSE_VECTOR.to_owned(), Vector::Dense(dense.clone())),
                (
                    KEYWORD_VECTOR.to_owned(),
                    Vector::Sparse(bm25::document_vector(
                        &wanted.texts.keywords,
                        &wanted.texts.context,
                    )),
                ),
            ]
            .into();
            if let Some(title) = wanted
                .texts
                .title
                .as_ref()
                .and_then(|t| vectors.get(&t.hash))
            {
                point_vectors.insert(TITLE_VECTOR.to_owned(), Vector::Dense(title.clone()));
            }
            points.push(Point {
                id: wanted.id,
                vectors: point_vectors,
                payload: Value::Object(payload),
            });
        }
        summary.written += points.len();
        Ok(points)
    }

    /// Points under `scopes` whose file was not read this time: deleted or moved away.
    fn points_of_vanished_files(
        &self,
        collection: &str,
        scopes: &[Condition],
        seen_files: &HashSet<String>,
    ) -> Result<Vec<PointId>> {
        let in_scope = Filter::should(scopes.iter().cloned());
        let seen: Vec<MatchValue> = seen_files
            .iter()
            .cloned()
            .map(MatchValue::Keyword)
            .collect();
        let still_there = in_scope
            .clone()
            .and(Filter::must([Condition::any("file", seen)]));
        // Counted on the payload index first: usually nothing vanished, and no payload is read.
        if self.store().count(collection, Some(&in_scope))?
            == self.store().count(collection, Some(&still_there))?
        {
            return Ok(Vec::new());
        }
        let mut vanished = Vec::new();
        self.scroll_all(collection, in_scope, &["file"], &[], |record| {
            let file = record
                .payload
                .get("file")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !seen_files.contains(file) {
                vanished.push(record.id);
            }
        })?;
        Ok(vanished)
    }
}

/// What one run of `Engine::index` carries from step to step.
struct Run<'a> {
    options: &'a IndexOptions,
    /// The model of the run's collections.
    model: CollectionModel,
    /// The tasks collection, then the passages one when passages are indexed.
    collections: Vec<&'a String>,
    summary: IndexSummary,
    /// Vectors embedded in the last batches, maybe not stored yet.
    in_flight: InFlight,
    /// Stored points of the files read that those files no longer hold.
    deletions: Vec<(String, Vec<PointId>)>,
    /// Every file of the run, read or unchanged, by key.
    seen_files: HashSet<String>,
}

/// A file of the run: its path, its key (the absolute path, as stored in `file`), and the
/// hash of its bytes (`None` if it cannot be read now).
struct Located {
    source: SourceFile,
    key: String,
    file_hash: Option<String>,
}

/// `kinds` names what this run derives from each file (tasks, or tasks and passages): it is
/// hashed with the bytes, so a run that derives more than the last one reads the files again.
fn locate(chunk: &[SourceFile], kinds: &str) -> Vec<Located> {
    chunk
        .par_iter()
        .map(|source| {
            let absolute =
                std::fs::canonicalize(&source.path).unwrap_or_else(|_| source.path.clone());
            let file_hash = std::fs::read(&source.path).ok().map(|bytes| {
                let mut hasher = blake3::Hasher::new();
                hasher.update(kinds.as_bytes());
                hasher.update(b"\n");
                hasher.update(&bytes);
                hasher.finalize().to_hex()[..32].to_owned()
            });
            Located {
                source: source.clone(),
                key: absolute.display().to_string(),
                file_hash,
            }
        })
        .collect()
}

/// Parses the files in parallel. A file that cannot be read is reported, and what is stored
/// for it stays.
fn read_files(files: &[&Located], summary: &mut IndexSummary) -> Vec<ReadFile> {
    // The parser's default word-piece estimate over-counts, so passages stay within the
    // model's window; the exact tokenizer would cost four times the parse.
    let options = ParseOptions::default();
    let parsed =
        crate::sources::parse_in_parallel(files.par_iter().map(|file| &file.source), &options);
    let results: Vec<_> = files.iter().zip(parsed).collect();
    let mut documents = Vec::with_capacity(results.len());
    for (file, result) in results {
        match (result, &file.file_hash) {
            (Ok(document), Some(file_hash)) => {
                summary.tasks += document.tasks.len();
                summary.passages += document.passages.len();
                summary.repairs += document.repairs.count;
                documents.push(ReadFile {
                    path: PathBuf::from(&file.key),
                    file_hash: file_hash.clone(),
                    document,
                });
            }
            (Err(err), _) => summary.skipped.push(err.to_string()),
            (Ok(_), None) => summary.skipped.push(format!(
                "{}: changed while being read",
                file.source.path.display()
            )),
        }
    }
    documents
}

/// Batches waiting for the writer at most (with one being written).
const WRITE_QUEUE: usize = 2;

/// The vectors of the last batches embedded: they may not be in the store yet, and the same
/// text in the next batches must not be embedded again. Bounded: a few batches.
#[derive(Default)]
struct InFlight(std::collections::VecDeque<HashMap<String, Vec<f32>>>);

impl InFlight {
    fn get(&self, text_hash: &str) -> Option<&Vec<f32>> {
        self.0.iter().rev().find_map(|batch| batch.get(text_hash))
    }

    fn push(&mut self, batch: HashMap<String, Vec<f32>>) {
        self.0.push_back(batch);
        if self.0.len() > WRITE_QUEUE + 2 {
            self.0.pop_front();
        }
    }
}

fn write_batches(
    store: &dyn VectorStore,
    batches: Receiver<(String, Vec<Point>)>,
) -> Result<Duration> {
    let mut spent = Duration::ZERO;
    for (collection, points) in batches {
        let started = Instant::now();
        store.upsert(&collection, points)?;
        spent += started.elapsed();
    }
    Ok(spent)
}

/// What a run over `paths` is responsible for: everything under a folder given, or a file
/// given. Points outside stay, whatever this run reads.
fn scope_conditions(paths: &[PathBuf]) -> Vec<Condition> {
    paths
        .iter()
        .filter_map(|path| {
            let absolute = std::fs::canonicalize(path).ok()?;
            let key = if absolute.is_dir() { "dirs" } else { "file" };
            Some(Condition::matches(key, absolute.display().to_string()))
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every folder above `file`, for scoping deletions to a folder given.
fn ancestors(file: &Path) -> Vec<Value> {
    file.ancestors()
        .skip(1)
        .map(|dir| Value::String(dir.display().to_string()))
        .collect()
}

/// Point ids: the item's own id (stable across edits of other lines) qualified by the file it
/// is in, so the same relative path under two folders never collides.
fn point_id(file: &Path, item_id: &str) -> PointId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(file.display().to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(item_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    PointId::Uuid(uuid::Uuid::from_bytes(bytes))
}

/// What to store for one task or passage of `file`.
fn wanted(
    model: &str,
    file: &ReadFile,
    kind: &str,
    item_id: &str,
    texts: SearchTexts,
    mut payload: Map<String, Value>,
) -> Wanted {
    payload.insert("kind".into(), Value::String(kind.to_owned()));
    payload.insert("index_format".into(), Value::from(INDEX_FORMAT));
    payload.insert("file_hash".into(), Value::String(file.file_hash.clone()));
    payload.insert("dirs".into(), Value::Array(ancestors(&file.path)));
    payload.insert(
        crate::FILE_KEY_FIELD.into(),
        Value::String(bm25::name_key(&file_name(&file.path))),
    );
    payload.insert("model".into(), Value::String(model.to_owned()));
    payload.insert("embed_hash".into(), Value::String(texts.embed.hash.clone()));
    if let Some(title) = &texts.title {
        payload.insert("title_hash".into(), Value::String(title.hash.clone()));
    }
    let serialized = serde_json::to_vec(&payload).unwrap_or_default();
    let payload_hash = blake3::hash(&serialized).to_hex()[..32].to_owned();
    Wanted {
        id: point_id(&file.path, item_id),
        texts,
        payload,
        payload_hash,
    }
}

/// The text the model embeds for a task: its title, and its body below it when it has one.
pub fn task_embed_text(task: &mnemo_text::Task) -> String {
    if task.body.is_empty() {
        task.title.clone()
    } else {
        format!("{}\n{}", task.title, task.body)
    }
}

fn wanted_tasks(model: &str, files: &[ReadFile]) -> Vec<Wanted> {
    let mut all = Vec::new();
    for file in files {
        for task in &file.document.tasks {
            let mut embed_text = task_embed_text(task);
            // A query made of a task's title must find it, yet a long body moves the task's
            // vector away from its title: such a task also gets a vector of its title alone.
            let title = (embed_text != task.title && !task.title.trim().is_empty())
                .then(|| HashedText::new(task.title.clone()));
            if embed_text.trim().is_empty() {
                // A bare checkbox: the model refuses empty text, and its heading says what it
                // belongs to.
                embed_text = task
                    .section_path
                    .last()
                    .filter(|heading| !heading.trim().is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("task in {}", file_name(&file.path)));
            }
            // The title, its number and its file's name (whole); BM25 discounts long documents,
            // and a task with a long body or under deep headings must not lose to a shorter
            // one that shares as many of the query's words.
            let mut keywords = bm25::terms(&format!(
                "{} {}",
                task.number.as_deref().unwrap_or_default(),
                task.title
            ));
            keywords.extend(bm25::name_terms(&file_name(&file.path)));
            // The body and the nearest heading say what a terse title leaves out: their words
            // match, at a fraction of a title's word, without lengthening the document.
            let context = bm25::distinct_terms(
                &format!(
                    "{} {}",
                    task.section_path
                        .last()
                        .map(String::as_str)
                        .unwrap_or_default(),
                    task.body
                ),
                CONTEXT_KEYWORD_WEIGHT,
            );
            all.push(wanted(
                model,
                file,
                "task",
                &task.id,
                SearchTexts {
                    embed: HashedText::new(embed_text),
                    title,
                    keywords,
                    context,
                },
                task_json(&file.path, task),
            ));
        }
    }
    all
}

fn wanted_passages(model: &str, files: &[ReadFile]) -> Vec<Wanted> {
    let mut all = Vec::new();
    for file in files {
        for passage in &file.document.passages {
            let mut keywords = bm25::terms(&format!(
                "{} {}",
                passage.section_path.join(" "),
                passage.text
            ));
            keywords.extend(bm25::name_terms(&file_name(&file.path)));
            let payload = passage_json(&file.path, passage);
            all.push(wanted(
                model,
                file,
                "passage",
                &passage.id,
                SearchTexts {
                    embed: HashedText::new(passage.text.clone()),
                    title: None,
                    keywords,
                    context: Vec::new(),
                },
                payload,
            ));
        }
    }
    all
}

/// RFC 3339 UTC, to the second.
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
