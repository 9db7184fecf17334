//! Moving a collection to another model without stopping: a shadow collection built beside
//! it with the new model, compared with it, then the collection's name moved onto the shadow
//! in one write (an alias in the store's registry), the old collection kept for a way back.
//!
//! The shadow is built in the way that is resumable after kill -9 without a journal: a
//! collection of indexed tasks is indexed again from its files into the shadow (an index run
//! skips what the shadow already holds for a file's current bytes); any other collection is
//! read page by page and its points' `text` embedded again, skipping the ids the shadow
//! already holds. Searches keep reading the source until the switch; writes made to it
//! meanwhile are caught by a last pass over what changed before the report.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mnemo_store::{
    CollectionConfig, Filter, PayloadSelection, Point, PointId, PointSelector, ScrollRequest,
    Vector, VectorSelection,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::drift::CANARY_TEXTS;
use crate::index::{IndexOptions, IndexProgress};
use crate::models::CollectionModel;
use crate::search::{SearchMode, SearchOptions};
use crate::{Engine, EngineError, Result};

/// Above this share of points that cannot be embedded, the shadow is deleted and nothing
/// switches.
pub const MAX_FAILED_SHARE: f64 = 0.05;

/// Points a migration reads before its share of failures can stop it while it runs.
const MIN_POINTS_JUDGED: usize = 100;

/// Whether more than [`MAX_FAILED_SHARE`] of the points tried failed.
fn too_many_failed(failed: usize, attempted: usize) -> bool {
    failed as f64 > MAX_FAILED_SHARE * attempted as f64
}

/// Whether too many of the points tried so far failed, once enough were tried to judge.
fn failing(failed: usize, attempted: usize) -> bool {
    attempted >= MIN_POINTS_JUDGED && too_many_failed(failed, attempted)
}

/// Recent queries compared at most (the latest).
const MAX_RECENT_COMPARED: usize = 200;

/// Results compared per query.
const TOP_K: usize = 10;

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The collection (or alias) people use.
    pub collection: String,
    /// The model to move it to.
    pub to: String,
    /// Texts embedded per second at most, to leave the machine to searches.
    pub max_texts_per_second: Option<f64>,
    /// Labelled queries for the report's hit@k and MRR.
    pub eval: Vec<LabelledQuery>,
}

/// One line of an `--eval` file: a query and the items that should answer it, as point ids
/// or `file:line` (the file as a suffix of the stored path).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelledQuery {
    pub query: String,
    pub expected: Vec<String>,
}

/// How well one model answers the labelled queries in one mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalScore {
    pub model: String,
    pub mode: String,
    pub queries: usize,
    /// Share of queries with an expected item first.
    pub hit_at_1: f64,
    /// Share of queries with an expected item in the first ten.
    pub hit_at_10: f64,
    /// Mean of 1/rank of the first expected item (0 when none in the first ten).
    pub mrr: f64,
}

/// The old and new collections side by side.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbReport {
    /// Mean share of the first ten results both give, over the drift canaries.
    pub canary_top10_overlap: f64,
    pub canary_queries: usize,
    /// The same over the collection's recent queries (`query_log` in the configuration);
    /// absent when none were kept.
    pub recent_top10_overlap: Option<f64>,
    pub recent_queries: usize,
    pub eval: Vec<EvalScore>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationReport {
    pub collection: String,
    /// The collection it read (its name, or the one its alias pointed at).
    pub source: String,
    /// The shadow collection built.
    pub target: String,
    pub from_model: String,
    pub to_model: String,
    /// `index` (files indexed again) or `texts` (stored texts embedded again).
    pub method: String,
    pub points_source: usize,
    pub points_target: usize,
    pub embedded: usize,
    /// Points skipped: the shadow had them already (a resumed run), or the text was known.
    pub reused: usize,
    pub failed: usize,
    pub seconds: f64,
    pub ab: AbReport,
}

/// A collection's migration as the records' state keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationState {
    pub collection: String,
    pub source: String,
    pub target: String,
    pub from_model: String,
    pub to_model: String,
    /// `building`, `built`, `switched`, `switched_back`, `finished`, `rolled_back`, `failed`.
    pub state: String,
    /// The report of the build, once built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<MigrationReport>,
    /// When the name last moved onto the new collection (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<String>,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The registry's kind of entry for a migration's state.
const MIGRATION_ENTRY: &str = "migration";

/// The shadow's name: the collection's, then the model's, within a collection name's 64
/// characters.
pub fn shadow_name(collection: &str, model: &str) -> String {
    let model: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = 64usize.saturating_sub(model.len() + 2).max(1);
    let base: String = collection.chars().take(room).collect();
    let mut name = format!("{base}--{model}");
    name.truncate(64);
    name
}

impl Engine {
    /// The shadow collection that writes to `collection` must also reach: the one a
    /// migration is building or has built and not yet switched to.
    pub(crate) fn shadow_of(&self, collection: &str) -> Option<String> {
        let state = self.migration_state(collection).ok().flatten()?;
        (matches!(state.state.as_str(), "building" | "built")
            && self.registry().resolve(collection) == state.source)
            .then_some(state.target)
    }
}

impl Engine {
    /// Runs [`Engine::migrate_collection`] on a thread of its own (the REST API's way); one
    /// migration of a collection at a time in this process. Its steps are events, its state
    /// [`Engine::migration_state`].
    pub fn start_migration(self: &std::sync::Arc<Self>, options: MigrateOptions) -> Result<()> {
        // Checked now, so that a wrong name or model is the caller's error, not a thread's.
        self.store().collection_config(&options.collection)?;
        self.model_named(&options.to)?;
        {
            let mut running = crate::lock(&self.migrations_running);
            if !running.insert(options.collection.clone()) {
                return Err(EngineError::InvalidQuery(format!(
                    "`{}` is being migrated already",
                    options.collection
                )));
            }
        }
        let engine = std::sync::Arc::clone(self);
        std::thread::Builder::new()
            .name("mnemo-migrate".into())
            .spawn(move || {
                // Its outcome is in the state and the events.
                let _ = engine.migrate_collection(&options, &crate::Quiet);
                crate::lock(&engine.migrations_running).remove(&options.collection);
            })
            .map_err(EngineError::JobThread)?;
        Ok(())
    }

    /// Whether this process is migrating `collection` now.
    pub fn is_migrating(&self, collection: &str) -> bool {
        crate::lock(&self.migrations_running).contains(collection)
    }
}

/// Sleeps enough to keep `done` texts since `started` under `rate` per second.
fn throttle(rate: Option<f64>, started: Instant, done: usize) {
    if let Some(rate) = rate.filter(|r| *r > 0.0) {
        let due = Duration::from_secs_f64(done as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// An index run's progress passed on, throttled by texts embedded.
struct Throttled<'a> {
    inner: &'a dyn IndexProgress,
    rate: Option<f64>,
    started: Instant,
}

impl IndexProgress for Throttled<'_> {
    fn start(&self, files: usize) {
        self.inner.start(files);
    }
    fn files_done(&self, files: usize, embedded: usize) {
        self.inner.files_done(files, embedded);
        throttle(self.rate, self.started, embedded);
    }
    fn phase(&self, name: &str) {
        self.inner.phase(name);
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

/// A migration's progress passed on, and said in a `model.migration.progress` event at most
/// every 2 s.
struct Evented<'a> {
    engine: &'a Engine,
    inner: &'a dyn IndexProgress,
    collection: &'a str,
    total: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Option<Instant>>,
}

impl IndexProgress for Evented<'_> {
    fn start(&self, total: usize) {
        self.total
            .store(total, std::sync::atomic::Ordering::Relaxed);
        self.inner.start(total);
    }
    fn files_done(&self, done: usize, embedded: usize) {
        self.inner.files_done(done, embedded);
        let mut last = crate::lock(&self.last);
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(2)) {
            *last = Some(Instant::now());
            self.engine.emit(
                "model.migration.progress",
                Some(self.collection.to_owned()),
                json!({ "done": done, "total": self.total.load(std::sync::atomic::Ordering::Relaxed),
                        "embedded": embedded }),
            );
        }
    }
    fn phase(&self, name: &str) {
        self.inner.phase(name);
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

impl Engine {
    /// Keeps the state in the store's registry (every engine on the store sees it, with or
    /// without an event log) and says it in an event.
    fn save_migration(&self, state: &MigrationState, event: &str, data: Value) -> Result<()> {
        if let Value::Object(fields) = serde_json::to_value(state).unwrap_or(Value::Null) {
            self.registry()
                .put_entry(MIGRATION_ENTRY, &state.collection, fields)?;
        }
        self.emit(event, Some(state.collection.clone()), data);
        Ok(())
    }

    /// The last migration of `collection`, if there was one.
    pub fn migration_state(&self, collection: &str) -> Result<Option<MigrationState>> {
        Ok(self
            .registry()
            .entry(MIGRATION_ENTRY, collection)
            .and_then(|fields| serde_json::from_value(Value::Object(fields)).ok()))
    }

    /// Builds the shadow collection of `options.collection` for `options.to` (or goes on
    /// with one a killed run left), catches up with what changed meanwhile, and compares the
    /// two. Nothing switches: [`Engine::switch_model`] does. More than 5 % of points that
    /// cannot be embedded (judged as it goes, from the 100th point read) stop it, delete the
    /// shadow (`model.migration.rolled_back`) and fail.
    pub fn migrate_collection(
        &self,
        options: &MigrateOptions,
        progress: &dyn IndexProgress,
    ) -> Result<MigrationReport> {
        let started = Instant::now();
        let collection = options.collection.as_str();
        let source = self.registry().resolve(collection);
        let from = self.collection_model(collection)?;
        let to = self.model_named(&options.to)?;
        if from.id == to.id {
            return Err(EngineError::InvalidQuery(format!(
                "`{collection}` already holds vectors of {}",
                to.id
            )));
        }
        let source_config = self.store().collection_config(&source)?;
        let target = shadow_name(collection, &to.id);
        if target == source {
            return Err(EngineError::InvalidQuery(format!(
                "`{collection}` is the shadow of a migration to {}",
                to.id
            )));
        }
        let mut state = MigrationState {
            collection: collection.to_owned(),
            source: source.clone(),
            target: target.clone(),
            from_model: from.id.clone(),
            to_model: to.id.clone(),
            state: "building".into(),
            report: None,
            switched_at: None,
            error: None,
        };
        let resumed = self.store().list_collections()?.contains(&target);
        if !resumed {
            let config = shadow_config(&source_config, from.dim(), to.dim());
            self.create_collection_for(&target, &config, &to)?;
            let info = self.store().collection_info(&source)?;
            for (field, field_type) in info.payload_indexes {
                // Named as serde names them (`keyword`, `integer`, …); another is skipped.
                if let Ok(field_type) = serde_json::from_value(Value::String(field_type)) {
                    self.store()
                        .create_payload_index(&target, &field, field_type)?;
                }
            }
        } else if self.collection_model(&target)?.id != to.id {
            return Err(EngineError::IncompatibleCollection {
                name: target,
                reason: format!("it exists and does not hold vectors of {}", to.id),
            });
        }
        self.save_migration(
            &state,
            "model.migration.started",
            json!({ "source": source, "target": target, "from": from.id, "to": to.id,
                    "resumed": resumed }),
        )?;

        let evented = Evented {
            engine: self,
            inner: progress,
            collection,
            total: Default::default(),
            last: Default::default(),
        };
        let outcome = if crate::is_engine_layout(&source_config) && self.holds_tasks(&source)? {
            self.migrate_by_index(&source, &target, options, &evented)
        } else {
            self.migrate_by_texts(&source, &target, &to, options, &evented)
        };
        let (method, embedded, reused, failed) = match outcome {
            Ok(counts) => counts,
            Err(err) => {
                state.state = "failed".into();
                state.error = Some(err.to_string());
                self.save_migration(
                    &state,
                    "model.migration.failed",
                    json!({ "reason": err.to_string() }),
                )?;
                return Err(err);
            }
        };
        let points_source = self.store().count(&source, None)?;
        let points_target = self.store().count(&target, None)?;
        let attempted = embedded + failed;
        if too_many_failed(failed, attempted) {
            self.delete_collection(&target)?;
            state.state = "rolled_back".into();
            let reason = format!(
                "{failed} of {attempted} points could not be embedded by {} (more than {:.0} %): the shadow collection was deleted",
                to.id,
                MAX_FAILED_SHARE * 100.0
            );
            state.error = Some(reason.clone());
            self.save_migration(
                &state,
                "model.migration.rolled_back",
                json!({ "failed": failed, "attempted": attempted, "reason": reason }),
            )?;
            return Err(EngineError::InvalidQuery(reason));
        }
        progress.phase("comparing the two models");
        let recent = self.recent_queries(collection)?;
        let recent = &recent[recent.len().saturating_sub(MAX_RECENT_COMPARED)..];
        let ab = self.compare(&source, &target, recent, &options.eval)?;
        state.state = "built".into();
        let report = MigrationReport {
            collection: collection.to_owned(),
            source,
            target,
            from_model: from.id,
            to_model: to.id,
            method: method.to_owned(),
            points_source,
            points_target,
            embedded,
            reused,
            failed,
            seconds: started.elapsed().as_secs_f64(),
            ab,
        };
        state.report = Some(report.clone());
        self.save_migration(
            &state,
            "model.migration.built",
            serde_json::to_value(&report).unwrap_or(Value::Null),
        )?;
        Ok(report)
    }

    /// Whether the collection's points are indexed tasks (their files can be read again).
    fn holds_tasks(&self, collection: &str) -> Result<bool> {
        let mut request = ScrollRequest::new(1);
        request.with_payload = PayloadSelection::Fields(vec!["kind".into(), "file".into()]);
        let page = self.store().scroll(collection, request)?;
        Ok(page.points.first().is_some_and(|record| {
            record.payload.get("kind").and_then(Value::as_str) == Some("task")
                && record.payload.get("file").is_some()
        }))
    }

    /// The source's files indexed again into the shadow with its model; twice, so that what
    /// changed during the first run is caught by the second (which embeds only that).
    fn migrate_by_index(
        &self,
        source: &str,
        target: &str,
        options: &MigrateOptions,
        progress: &dyn IndexProgress,
    ) -> Result<(&'static str, usize, usize, usize)> {
        let mut files = BTreeSet::new();
        self.scroll_all(source, Filter::default(), &["file"], &[], |record| {
            if let Some(file) = record.payload.get("file").and_then(Value::as_str) {
                files.insert(PathBuf::from(file));
            }
        })?;
        let paths: Vec<PathBuf> = files.into_iter().filter(|path| path.is_file()).collect();
        // Small chunks: a killed migration loses at most one chunk's embeddings.
        let index = IndexOptions {
            tasks_collection: target.to_owned(),
            passages: false,
            files_per_chunk: 8,
            ..IndexOptions::default()
        };
        let throttled = Throttled {
            inner: progress,
            rate: options.max_texts_per_second,
            started: Instant::now(),
        };
        let first = self.index(&paths, &index, &throttled)?;
        progress.phase("catching up with what changed meanwhile");
        let second = self.index(&paths, &index, &throttled)?;
        let embedded = first.embedded + second.embedded;
        let reused = first.reused + first.unchanged;
        Ok(("index", embedded, reused, first.skipped.len()))
    }

    /// Every point's `text` embedded again into the shadow, under the same id and payload;
    /// ids the shadow holds already are skipped, and ids gone from the source removed.
    fn migrate_by_texts(
        &self,
        source: &str,
        target: &str,
        to: &CollectionModel,
        options: &MigrateOptions,
        progress: &dyn IndexProgress,
    ) -> Result<(&'static str, usize, usize, usize)> {
        let source_config = self.store().collection_config(source)?;
        let target_config = self.store().collection_config(target)?;
        let dense: Vec<String> = target_config
            .vectors
            .iter()
            .filter(|(_, params)| params.size == to.dim())
            .map(|(name, _)| name.clone())
            .collect();
        let sparse: Vec<String> = source_config.sparse_vectors.keys().cloned().collect();
        let total = self.store().count(source, None)?;
        progress.start(total);
        let started = Instant::now();
        let (mut embedded, mut reused, mut failed, mut done) = (0, 0, 0, 0);
        let mut seen: HashSet<PointId> = HashSet::new();
        let mut request = ScrollRequest::new(256);
        request.with_payload = PayloadSelection::All;
        request.with_vectors = VectorSelection::Names(sparse.clone());
        loop {
            let page = self.store().scroll(source, request.clone())?;
            let ids: Vec<PointId> = page.points.iter().map(|r| r.id).collect();
            seen.extend(ids.iter().copied());
            let present: HashSet<PointId> = self
                .store()
                .get(target, &ids, PayloadSelection::None, VectorSelection::None)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            let mut todo = Vec::new();
            for record in page.points {
                if present.contains(&record.id) {
                    reused += 1;
                    continue;
                }
                let text = record
                    .payload
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|text| !text.trim().is_empty())
                    .map(str::to_owned);
                match text {
                    Some(text) => todo.push((record, text)),
                    None => failed += 1,
                }
            }
            if !todo.is_empty() {
                let texts: Vec<&str> = todo.iter().map(|(_, text)| text.as_str()).collect();
                let vectors = to.embedder.embed(&texts)?;
                let points: Vec<Point> = todo
                    .into_iter()
                    .zip(vectors.rows())
                    .map(|((record, _), row)| {
                        let mut point = Point {
                            id: record.id,
                            vectors: Default::default(),
                            payload: Value::Object(record.payload),
                        };
                        for name in &dense {
                            point
                                .vectors
                                .insert(name.clone(), Vector::Dense(row.to_vec()));
                        }
                        for (name, vector) in record.vectors {
                            if sparse.contains(&name) {
                                point.vectors.insert(name, vector);
                            }
                        }
                        point
                    })
                    .collect();
                embedded += points.len();
                self.store().upsert(target, points)?;
                throttle(options.max_texts_per_second, started, embedded);
            }
            done += ids.len();
            progress.files_done(done, embedded);
            if failing(failed, embedded + failed) {
                // A bad migration stops here, not at its end: the caller rolls it back.
                break;
            }
            match page.next {
                Some(next) => request.offset = Some(next),
                None => break,
            }
        }
        // Points deleted from the source while the shadow was built.
        let mut gone = Vec::new();
        self.scroll_all(target, Filter::default(), &[], &[], |record| {
            if !seen.contains(&record.id) {
                gone.push(record.id);
            }
        })?;
        if !gone.is_empty() {
            self.store().delete(target, PointSelector::Ids(gone))?;
        }
        Ok(("texts", embedded, reused, failed))
    }

    /// Top-10 overlap on the canaries, and hit@k / MRR on labelled queries, of both.
    fn compare(
        &self,
        source: &str,
        target: &str,
        recent: &[String],
        eval: &[LabelledQuery],
    ) -> Result<AbReport> {
        let dense = |collection: &str, text: &str| -> Result<Vec<mnemo_store::ScoredPoint>> {
            self.search_untimed(
                text,
                &SearchOptions {
                    collection: collection.to_owned(),
                    limit: TOP_K,
                    ..SearchOptions::default()
                },
            )
        };
        let overlap = |texts: &mut dyn Iterator<Item = &str>| -> Result<Option<f64>> {
            let (mut sum, mut count) = (0.0, 0usize);
            for text in texts {
                let before: HashSet<PointId> = dense(source, text)?.iter().map(|h| h.id).collect();
                let after: HashSet<PointId> = dense(target, text)?.iter().map(|h| h.id).collect();
                let most = before.len().max(after.len()).max(1);
                sum += before.intersection(&after).count() as f64 / most as f64;
                count += 1;
            }
            Ok((count > 0).then(|| sum / count as f64))
        };
        let canary_top10_overlap = overlap(&mut CANARY_TEXTS.iter().copied())?.unwrap_or_default();
        let recent_top10_overlap = overlap(&mut recent.iter().map(String::as_str))?;
        let mut scores = Vec::new();
        if !eval.is_empty() {
            for collection in [source, target] {
                scores.extend(self.evaluate(collection, eval, &[])?);
            }
        }
        Ok(AbReport {
            canary_top10_overlap,
            canary_queries: CANARY_TEXTS.len(),
            recent_top10_overlap,
            recent_queries: recent.len(),
            eval: scores,
        })
    }

    /// hit@1, hit@10 and MRR of `collection`'s model on labelled queries, in each of `modes`
    /// (none given: dense, and hybrid on a collection `mnemo index` made). What the
    /// migration report and `mnemo eval` print.
    pub fn evaluate(
        &self,
        collection: &str,
        queries: &[LabelledQuery],
        modes: &[SearchMode],
    ) -> Result<Vec<EvalScore>> {
        let collection = self.registry().pin(collection);
        let model = self.collection_model(&collection)?.id;
        let layout = crate::is_engine_layout(&self.store().collection_config(&collection)?);
        let modes: &[SearchMode] = match (modes.is_empty(), layout) {
            (false, _) => modes,
            (true, true) => &[SearchMode::Dense, SearchMode::Hybrid],
            (true, false) => &[SearchMode::Dense],
        };
        let mut scores = Vec::new();
        for mode in modes {
            let (mut hit1, mut hit10, mut mrr) = (0.0, 0.0, 0.0);
            for labelled in queries {
                let hits = self.search_untimed(
                    &labelled.query,
                    &SearchOptions {
                        collection: collection.clone(),
                        limit: TOP_K,
                        mode: *mode,
                        ..SearchOptions::default()
                    },
                )?;
                if let Some(rank) = hits
                    .iter()
                    .position(|hit| is_expected(hit, &labelled.expected))
                {
                    hit1 += f64::from(rank == 0);
                    hit10 += 1.0;
                    mrr += 1.0 / (rank + 1) as f64;
                }
            }
            let n = queries.len().max(1) as f64;
            scores.push(EvalScore {
                model: model.clone(),
                mode: mode.name().to_owned(),
                queries: queries.len(),
                hit_at_1: hit1 / n,
                hit_at_10: hit10 / n,
                mrr: mrr / n,
            });
        }
        Ok(scores)
    }

    /// Deletes the collection a switched migration replaced, once `keep` has passed since
    /// the switch (`model.migration.finished`); the name of what it deleted.
    pub fn finish_migration(&self, collection: &str, keep: Duration) -> Result<String> {
        let mut state = self.migration_state(collection)?.ok_or_else(|| {
            EngineError::InvalidQuery(format!("no migration of `{collection}` to finish"))
        })?;
        if state.state != "switched" {
            return Err(EngineError::InvalidQuery(format!(
                "the migration of `{collection}` is `{}`: only a switched one is finished",
                state.state
            )));
        }
        let switched = state
            .switched_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&chrono::Utc));
        let held = switched.map_or(Duration::ZERO, |at| {
            (chrono::Utc::now() - at).to_std().unwrap_or_default()
        });
        if held < keep {
            return Err(EngineError::InvalidQuery(format!(
                "`{}` is kept for a way back until {} s after the switch ({} s so far); give a shorter retention to drop it now",
                state.source,
                keep.as_secs(),
                held.as_secs()
            )));
        }
        let old = state.source.clone();
        // The old collection may share the name its alias now covers: reached by its own
        // name through the inner store.
        let existed = self.registry().inner().delete_collection(&old)?;
        state.state = "finished".into();
        self.save_migration(
            &state,
            "model.migration.finished",
            json!({ "deleted": old, "existed": existed }),
        )?;
        Ok(old)
    }

    /// Points the collection's name at the shadow built by the last migration (or, `back`,
    /// at the collection it replaced), in one write: a search running meanwhile reads one or
    /// the other, never neither (`model.switched`).
    pub fn switch_model(&self, collection: &str, back: bool) -> Result<MigrationState> {
        let mut state = self.migration_state(collection)?.ok_or_else(|| {
            EngineError::InvalidQuery(format!(
                "no migration of `{collection}` to switch: run `mnemo model migrate` first"
            ))
        })?;
        let (allowed, to, next, model) = if back {
            (
                &["switched"][..],
                state.source.clone(),
                "switched_back",
                state.from_model.clone(),
            )
        } else {
            (
                &["built", "switched_back"][..],
                state.target.clone(),
                "switched",
                state.to_model.clone(),
            )
        };
        if !allowed.contains(&state.state.as_str()) {
            return Err(EngineError::InvalidQuery(format!(
                "the migration of `{collection}` is `{}`: nothing to switch {}",
                state.state,
                if back { "back" } else { "to" }
            )));
        }
        if to == collection {
            self.registry().delete_alias(collection)?;
        } else {
            self.registry().set_alias(collection, &to)?;
        }
        // The canaries pinned under this name were the other model's vectors: pinned again,
        // or the next drift check would see a model change as drift.
        self.forget_canaries(collection);
        if self.keeps_events()
            && let Err(err) = self.pin_canaries(collection)
        {
            eprintln!("warning: the drift canaries of `{collection}` could not be pinned: {err}");
        }
        state.state = next.to_owned();
        if !back {
            state.switched_at = Some(mnemo_records::timestamp(chrono::Utc::now()));
        }
        self.save_migration(
            &state,
            "model.switched",
            json!({ "collection": to, "model": model, "back": back }),
        )?;
        Ok(state)
    }
}

/// The source's layout with its model's dense vectors resized for the new model.
fn shadow_config(source: &CollectionConfig, from_dim: usize, to_dim: usize) -> CollectionConfig {
    let mut config = source.clone();
    for params in config.vectors.values_mut() {
        if params.size == from_dim {
            params.size = to_dim;
        }
    }
    config
}

/// A hit that is one of `expected`: its id, or `file:line` with `file` a suffix of its path.
fn is_expected(hit: &mnemo_store::ScoredPoint, expected: &[String]) -> bool {
    let id = hit.id.to_string();
    let file = hit.payload.get("file").and_then(Value::as_str);
    let line = hit.payload.get("line").and_then(Value::as_u64);
    expected.iter().any(|want| {
        if *want == id {
            return true;
        }
        match (want.rsplit_once(':'), file, line) {
            (Some((want_file, want_line)), Some(file), Some(line)) => {
                want_line.parse::<u64>().ok() == Some(line) && file.ends_with(want_file)
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_fit_a_collection_name() {
        assert_eq!(
            shadow_name("tasks", "all-mpnet-base-v2"),
            "tasks--all-mpnet-base-v2"
        );
        let long = shadow_name(&"c".repeat(80), "all-mpnet-base-v2");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("--all-mpnet-base-v2"));
        assert_eq!(shadow_name("t", "org/model.v1"), "t--org-model-v1");
    }

    #[test]
    fn expected_items_match_by_id_or_file_and_line() {
        let hit = mnemo_store::ScoredPoint {
            id: PointId::Num(7),
            score: 1.0,
            payload: serde_json::from_value(json!({"file": "/plans/v57.md", "line": 12})).unwrap(),
            vectors: Default::default(),
        };
        assert!(is_expected(&hit, &["7".into()]));
        assert!(is_expected(&hit, &["v57.md:12".into()]));
        assert!(!is_expected(&hit, &["v57.md:13".into(), "8".into()]));
    }
}
