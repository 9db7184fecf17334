//! Agents' memories: each one's record and history in the relational store
//! (`records::MemoryRecords`), its vector in the collection `memories` of the vector store,
//! the two kept in agreement. Every door (REST, MCP) calls these methods.
//!
//! Visibility follows the scope: a search by `(user, agent, run)` sees a memory when each of
//! the memory's scope fields is unset or equal to the search's. So a memory with only
//! `user_id` is seen by every agent of that user; one with `user_id` + `agent_id` by that
//! agent only; one with `run_id` by that run only. `wider` lifts the rule for the fields the
//! search leaves unset (a user's search then sees the memories of all of that user's agents
//! and runs).
//!
//! Writes go to the records first, then to the vectors; `repair` (run at start) re-embeds a
//! record whose vector is missing or stale and deletes a vector without a record, so a kill
//! between the two writes is mended.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use mnemo_records::{Change, ListQuery, Memory, MemoryRecords, Scope, Version, timestamp};
use mnemo_store::{
    CollectionConfig, Condition, Distance, FieldCondition, FieldType, Filter, KeyRef, NearestQuery,
    PayloadSelection, Point, PointId, PointSelector, Range, ScoredPoint, SearchRequest, StoreError,
    Vector, VectorSelection,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{Engine, EngineError, KEYWORD_VECTOR, Principal, Result, SearchMode, bm25};

/// The vector collection of memories.
pub const MEMORY_COLLECTION: &str = "memories";
/// The longest memory text, in bytes: a memory is a fact or a note, not a document.
pub const MAX_MEMORY_BYTES: usize = 64 * 1024;
/// The largest metadata of a memory, as JSON bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Near-duplicates at or above this cosine are returned beside a new memory.
pub const DEFAULT_SIMILAR_THRESHOLD: f32 = 0.9;
/// Records read at a time by `repair`, `delete_many` and the expiry sweep.
const PAGE: usize = 500;

const SCOPE_FIELDS: [&str; 3] = ["user_id", "agent_id", "run_id"];
const EXPIRES_FIELD: &str = "expires_at_seconds";
const CREATED_FIELD: &str = "created_at_seconds";
/// The memory's meaning; BM25 keywords beside it under [`KEYWORD_VECTOR`] for hybrid search.
const MEANING_VECTOR: &str = "";
const HASH_FIELD: &str = "content_hash";
/// The keyword analysis (`bm25::ANALYSIS_VERSION`) a memory's keyword vector was made with: a
/// vector of another is made again by `repair_memories`, at start.
const KEYWORDS_FIELD: &str = "keywords_version";

/// A memory to add.
#[derive(Debug, Clone, Default)]
pub struct NewMemory {
    pub text: String,
    pub metadata: Map<String, Value>,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    /// Who writes it (a key's name, the agent).
    pub actor: String,
    /// Near-duplicates at or above this cosine come back as `similar`.
    pub similar_threshold: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddStatus {
    Added,
    /// The same text in the same scope was there: its id is returned, nothing written.
    Unchanged,
}

/// A memory close in meaning to the one added; for the caller to decide, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarMemory {
    pub id: String,
    pub text: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Added {
    pub id: String,
    pub status: AddStatus,
    pub similar: Vec<SimilarMemory>,
}

/// A memory search.
#[derive(Debug, Clone, Default)]
pub struct MemoryQuery {
    pub text: String,
    pub scope: Scope,
    /// Also the memories of narrower scopes than the search's (see the module's rule).
    pub wider: bool,
    /// On the memory's metadata, in the store's filter shape (keys as in the metadata).
    pub filter: Option<Filter>,
    pub limit: usize,
    pub score_threshold: Option<f32>,
    /// Dense (meaning), hybrid (meaning and keywords fused by rank) or keyword.
    pub mode: SearchMode,
    /// Only memories created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only memories created before this time.
    pub created_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundMemory {
    pub memory: Memory,
    pub score: f32,
}

/// One line of an export: a memory and every change of it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExportedMemory {
    pub memory: Memory,
    #[serde(default)]
    pub history: Vec<mnemo_records::HistoryEntry>,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub imported: usize,
    /// Already there: the same id, or the same text in the same scope.
    pub skipped: usize,
}

/// What `repair` mended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Repaired {
    pub vectors_written: usize,
    pub vectors_removed: usize,
    /// The collection was made again (its layout or dimension was not this build's), every
    /// memory embedded anew from its record.
    pub rebuilt: bool,
}

impl Engine {
    /// The relational store of memories; `MemoryStoreMissing` when none was given.
    fn records(&self) -> Result<&dyn MemoryRecords> {
        self.records
            .as_deref()
            .ok_or(EngineError::MemoryStoreMissing)
    }

    /// Whether no memory was ever added: the memories collection is not made yet.
    fn memory_collection_missing(&self) -> bool {
        self.store()
            .collection_config(MEMORY_COLLECTION)
            .is_err_and(|err| matches!(err, StoreError::UnknownCollection(_)))
    }

    /// The memories collection, made on first use with its scope fields indexed.
    fn memory_collection(&self) -> Result<()> {
        match self.store().collection_config(MEMORY_COLLECTION) {
            Ok(_) => return Ok(()),
            Err(StoreError::UnknownCollection(_)) => {}
            Err(err) => return Err(err.into()),
        }
        match self.create_collection_for(
            MEMORY_COLLECTION,
            &self.memory_layout(),
            &self.default_model(),
        ) {
            Ok(()) | Err(EngineError::Store(StoreError::CollectionExists(_))) => {}
            Err(err) => return Err(err),
        }
        for field in SCOPE_FIELDS {
            self.store()
                .create_payload_index(MEMORY_COLLECTION, field, FieldType::Keyword)?;
        }
        for field in [EXPIRES_FIELD, CREATED_FIELD] {
            self.store()
                .create_payload_index(MEMORY_COLLECTION, field, FieldType::Float)?;
        }
        Ok(())
    }

    /// The memories collection as this build makes it: the model's vector, and BM25 keywords.
    fn memory_layout(&self) -> CollectionConfig {
        CollectionConfig::single(self.dim(), Distance::Cosine)
            .with_sparse_vector(KEYWORD_VECTOR, true)
    }

    /// Adds a memory: the same text in the same scope returns the existing id (`Unchanged`);
    /// memories of the same visibility close in meaning come back as `similar`.
    pub fn add_memory(&self, new: &NewMemory) -> Result<Added> {
        let records = self.records()?;
        new.scope.check()?;
        check_text(&new.text)?;
        check_metadata(&new.metadata)?;
        let hash = content_hash(&new.text);
        if let Some(same) = records.find_same(&new.scope, &hash)? {
            return Ok(Added {
                id: same.id,
                status: AddStatus::Unchanged,
                similar: Vec::new(),
            });
        }
        self.memory_collection()?;
        let vector = self.embed_memory(&new.text)?;
        let threshold = new.similar_threshold.unwrap_or(DEFAULT_SIMILAR_THRESHOLD);
        let now = timestamp(Utc::now());
        let similar = self
            .nearest_memories(&vector, &new.scope, false, None, 5, Some(threshold), &now)?
            .into_iter()
            .map(|found| SimilarMemory {
                id: found.memory.id,
                text: found.memory.text,
                score: found.score,
            })
            .collect();
        let memory = Memory {
            id: uuid::Uuid::new_v4().to_string(),
            text: new.text.clone(),
            metadata: new.metadata.clone(),
            scope: new.scope.clone(),
            created_at: now.clone(),
            updated_at: now,
            expires_at: new.expires_at.map(timestamp),
            content_hash: hash,
            author: new.actor.clone(),
        };
        match records.add(&memory) {
            Ok(()) => {}
            // Another writer added the same text in the same scope meanwhile: theirs it is.
            Err(mnemo_records::RecordsError::Exists(_)) => {
                if let Some(same) = records.find_same(&new.scope, &memory.content_hash)? {
                    return Ok(Added {
                        id: same.id,
                        status: AddStatus::Unchanged,
                        similar: Vec::new(),
                    });
                }
                return Err(mnemo_records::RecordsError::Exists(memory.id).into());
            }
            Err(err) => return Err(err.into()),
        }
        self.write_memory_vector(&memory, vector)?;
        Ok(Added {
            id: memory.id,
            status: AddStatus::Added,
            similar,
        })
    }

    /// Memories visible to `query.scope`, by meaning, best first; expired ones never.
    pub fn search_memories(&self, query: &MemoryQuery) -> Result<Vec<FoundMemory>> {
        self.timed_search(|| self.search_memories_untimed(query))
    }

    fn search_memories_untimed(&self, query: &MemoryQuery) -> Result<Vec<FoundMemory>> {
        crate::check_limit(query.limit)?;
        if self.memory_collection_missing() {
            return Ok(Vec::new());
        }
        let now = timestamp(Utc::now());
        let mut filter = visibility(&query.scope, query.wider, &now);
        if let Some(metadata) = &query.filter {
            filter = filter.and(under_metadata(metadata));
        }
        if query.created_after.is_some() || query.created_before.is_some() {
            filter = filter.and(Filter::must([Condition::Field(FieldCondition {
                key: CREATED_FIELD.to_owned(),
                r#match: None,
                range: Some(Range {
                    gte: query.created_after.map(seconds_of),
                    lt: query.created_before.map(seconds_of),
                    ..Range::default()
                }),
            })]));
        }
        let meaning = |limit| -> Result<SearchRequest> {
            let mut request = SearchRequest::new(
                NearestQuery {
                    using: MEANING_VECTOR.to_owned(),
                    vector: Vector::Dense(self.query_vector(&query.text)?),
                },
                limit,
            );
            request.filter = Some(filter.clone());
            request.with_payload = PayloadSelection::None;
            Ok(request)
        };
        let keyword_vector = bm25::query_vector(&query.text);
        let keywords = |limit| {
            let mut request =
                crate::search::keyword_request(&keyword_vector, Some(filter.clone()), limit);
            request.with_payload = PayloadSelection::None;
            request
        };
        let hits = match query.mode {
            SearchMode::Dense => {
                let mut request = meaning(query.limit)?;
                request.score_threshold = query.score_threshold;
                self.store().search(MEMORY_COLLECTION, request)?
            }
            SearchMode::Keyword => {
                let mut request = keywords(query.limit);
                request.score_threshold = query.score_threshold;
                self.store().search(MEMORY_COLLECTION, request)?
            }
            SearchMode::Hybrid => {
                // Fused by rank: a threshold on the fused score would mean nothing, so it
                // applies to the meaning's cosine of each candidate.
                let depth = (query.limit * 5).max(50);
                let mut dense = meaning(depth)?;
                dense.score_threshold = query.score_threshold;
                let mut answers = self
                    .store()
                    .search_batch(MEMORY_COLLECTION, vec![dense, keywords(depth)])?
                    .into_iter();
                let dense_hits = answers.next().unwrap_or_default();
                let mut keyword_hits = answers.next().unwrap_or_default();
                if query.score_threshold.is_some() {
                    let kept: HashSet<PointId> = dense_hits.iter().map(|hit| hit.id).collect();
                    keyword_hits.retain(|hit| kept.contains(&hit.id));
                }
                crate::search::reciprocal_rank_fusion(
                    &[(dense_hits, 1.0), (keyword_hits, 1.0)],
                    query.limit,
                )
            }
        };
        self.found_memories(hits, &now)
    }

    /// The memory `id`, unless it expired.
    pub fn get_memory(&self, id: &str) -> Result<Memory> {
        let memory = self
            .records()?
            .get(id)?
            .ok_or_else(|| EngineError::UnknownMemory(id.to_owned()))?;
        if is_expired(&memory, &timestamp(Utc::now())) {
            return Err(EngineError::UnknownMemory(id.to_owned()));
        }
        Ok(memory)
    }

    /// New text and metadata for `id`, re-embedded; the old ones stay in its history.
    pub fn update_memory(
        &self,
        id: &str,
        text: Option<&str>,
        metadata: Option<Map<String, Value>>,
        actor: &str,
    ) -> Result<Memory> {
        let records = self.records()?;
        let current = self.get_memory(id)?;
        let text = text.unwrap_or(&current.text).to_owned();
        check_text(&text)?;
        if let Some(metadata) = &metadata {
            check_metadata(metadata)?;
        }
        let version = Version {
            content_hash: content_hash(&text),
            metadata: metadata.unwrap_or_else(|| current.metadata.clone()),
            expires_at: current.expires_at.clone(),
            text,
        };
        let taken = || {
            EngineError::InvalidQuery(format!(
                "another memory of this scope holds that text already; update or delete it instead of {id}"
            ))
        };
        if records
            .find_same(&current.scope, &version.content_hash)?
            .is_some_and(|same| same.id != id)
        {
            return Err(taken());
        }
        let (_, updated) = records
            .update(id, &version, actor, &timestamp(Utc::now()))
            .map_err(|err| match err {
                mnemo_records::RecordsError::Exists(_) => taken(),
                other => other.into(),
            })?
            .ok_or_else(|| EngineError::UnknownMemory(id.to_owned()))?;
        self.memory_collection()?;
        let vector = self.embed_memory(&updated.text)?;
        self.write_memory_vector(&updated, vector)?;
        Ok(updated)
    }

    /// Forgets `id`: its record and vector go, its history stays.
    pub fn delete_memory(&self, id: &str, actor: &str) -> Result<Memory> {
        let removed = self
            .records()?
            .remove(id, Change::Deleted, actor, &timestamp(Utc::now()))?
            .ok_or_else(|| EngineError::UnknownMemory(id.to_owned()))?;
        self.remove_memory_vectors(vec![removed.id.clone()])?;
        Ok(removed)
    }

    /// Forgets every memory whose scope has the fields given (all of a user's, all of an
    /// agent's, ...) and whose metadata matches `filter`; how many. A scope or a filter is
    /// needed: forgetting everything is not one call.
    pub fn delete_memories(
        &self,
        scope: &Scope,
        filter: Option<&Filter>,
        actor: &str,
    ) -> Result<usize> {
        let scoped = *scope != Scope::default();
        if scoped {
            scope.check()?;
        }
        match filter {
            Some(filter) => self.delete_matching_memories(scope, filter, actor),
            None if scoped => self.delete_memories_of(scope, actor),
            None => Err(mnemo_records::RecordsError::NoScope.into()),
        }
    }

    fn delete_memories_of(&self, scope: &Scope, actor: &str) -> Result<usize> {
        let records = self.records()?;
        let query = ListQuery {
            user_id: scope.user_id.clone(),
            agent_id: scope.agent_id.clone(),
            run_id: scope.run_id.clone(),
            now: None,
            limit: PAGE,
            offset: 0,
        };
        let mut deleted = 0;
        loop {
            let page = records.list(&query)?;
            if page.is_empty() {
                return Ok(deleted);
            }
            let at = timestamp(Utc::now());
            let mut ids = Vec::with_capacity(page.len());
            for memory in page {
                if records
                    .remove(&memory.id, Change::Deleted, actor, &at)?
                    .is_some()
                {
                    deleted += 1;
                }
                ids.push(memory.id);
            }
            self.remove_memory_vectors(ids)?;
        }
    }

    /// The memories of `scope` (the fields given) whose metadata matches `filter`, found in
    /// the vector store, whose payload holds both.
    fn delete_matching_memories(
        &self,
        scope: &Scope,
        filter: &Filter,
        actor: &str,
    ) -> Result<usize> {
        let records = self.records()?;
        if self.memory_collection_missing() {
            return Ok(0);
        }
        let mut must = Vec::new();
        for (field, value) in
            SCOPE_FIELDS
                .iter()
                .zip([&scope.user_id, &scope.agent_id, &scope.run_id])
        {
            if let Some(value) = value {
                must.push(Condition::matches(field, value.as_str()));
            }
        }
        let selection = Filter::must(must).and(under_metadata(filter));
        let mut deleted = 0;
        loop {
            let mut request = mnemo_store::ScrollRequest::new(PAGE);
            request.filter = Some(selection.clone());
            request.with_payload = PayloadSelection::None;
            let page = self.store().scroll(MEMORY_COLLECTION, request)?;
            if page.points.is_empty() {
                return Ok(deleted);
            }
            let at = timestamp(Utc::now());
            let ids: Vec<String> = page
                .points
                .iter()
                .map(|point| point.id.to_string())
                .collect();
            for id in &ids {
                // A vector whose record is gone already goes too: each page makes progress.
                if records.remove(id, Change::Deleted, actor, &at)?.is_some() {
                    deleted += 1;
                }
            }
            self.remove_memory_vectors(ids)?;
        }
    }

    /// Every change of `id`, also after it was deleted.
    pub fn memory_history(&self, id: &str) -> Result<Vec<mnemo_records::HistoryEntry>> {
        let history = self.records()?.history(id)?;
        if history.is_empty() {
            return Err(EngineError::UnknownMemory(id.to_owned()));
        }
        Ok(history)
    }

    /// The memory `id`, when `caller` may use it (a key tied to a user uses that user's
    /// memories only); a memory of someone else's is refused, not hidden.
    pub fn memory_for(&self, caller: &Principal, id: &str) -> Result<Memory> {
        let memory = self.get_memory(id)?;
        caller.may_use_memory(&memory.scope)?;
        Ok(memory)
    }

    /// [`Self::memory_history`] for `caller`: the memory's scope, kept in its history, must be
    /// one the caller may use.
    pub fn memory_history_for(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<Vec<mnemo_records::HistoryEntry>> {
        let history = self.memory_history(id)?;
        let scope = history
            .iter()
            .flat_map(|entry| [&entry.after, &entry.before])
            .flatten()
            .find_map(|content| serde_json::from_value::<Scope>(content.get("scope")?.clone()).ok())
            .unwrap_or_default();
        caller.may_use_memory(&scope)?;
        Ok(history)
    }

    /// Deletes the memories expired by `now` (`Expired` in their history); how many.
    pub fn sweep_expired_memories(&self, now: DateTime<Utc>) -> Result<usize> {
        let records = self.records()?;
        let now = timestamp(now);
        let mut swept = 0;
        loop {
            let ids = records.expired(&now, PAGE)?;
            if ids.is_empty() {
                return Ok(swept);
            }
            for id in &ids {
                if records
                    .remove(id, Change::Expired, "expiry", &now)?
                    .is_some()
                {
                    swept += 1;
                }
            }
            self.remove_memory_vectors(ids)?;
        }
    }

    /// Brings the vectors back in line with the records after a crash between the two
    /// writes: a record without its vector (or with one of another text) is embedded again;
    /// a vector without a record is removed.
    pub fn repair_memories(&self) -> Result<Repaired> {
        let records = self.records()?;
        let mut repaired = Repaired::default();
        if self.memory_collection_missing() {
            // No memory was ever added: nothing to mend, and no collection to make for it.
            let any = records.list(&ListQuery {
                limit: 1,
                ..ListQuery::default()
            })?;
            if any.is_empty() {
                return Ok(repaired);
            }
            self.memory_collection()?;
        }
        let config = self.store().collection_config(MEMORY_COLLECTION)?;
        if config != self.memory_layout() {
            // Made by an earlier build or for another model: the records are the truth, so the
            // collection is made again from them.
            self.delete_collection(MEMORY_COLLECTION)?;
            self.memory_collection()?;
            repaired.rebuilt = true;
        }
        let mut known = HashSet::new();
        self.each_page_of_memories(|page| {
            let ids: Vec<PointId> = page.iter().filter_map(|m| point_id(&m.id)).collect();
            let stored: BTreeMap<PointId, Option<String>> = self
                .store()
                .get(
                    MEMORY_COLLECTION,
                    &ids,
                    PayloadSelection::All,
                    VectorSelection::None,
                )?
                .into_iter()
                .map(|record| {
                    let current_keywords =
                        record.payload.get(KEYWORDS_FIELD).and_then(Value::as_u64)
                            == Some(u64::from(bm25::ANALYSIS_VERSION));
                    // A vector of an older analysis is taken as stale, like one of another text.
                    let hash = record
                        .payload
                        .get(HASH_FIELD)
                        .and_then(Value::as_str)
                        .filter(|_| current_keywords)
                        .map(str::to_owned);
                    (record.id, hash)
                })
                .collect();
            for memory in page {
                known.insert(memory.id.clone());
                let current = point_id(&memory.id)
                    .and_then(|id| stored.get(&id).cloned())
                    .flatten();
                if current.as_deref() != Some(memory.content_hash.as_str()) {
                    let vector = self.embed_memory(&memory.text)?;
                    self.write_memory_vector(&memory, vector)?;
                    repaired.vectors_written += 1;
                }
            }
            Ok(())
        })?;
        let mut orphans = Vec::new();
        let mut request = mnemo_store::ScrollRequest::new(PAGE);
        request.with_payload = PayloadSelection::None;
        loop {
            let page = self.store().scroll(MEMORY_COLLECTION, request.clone())?;
            orphans.extend(
                page.points
                    .iter()
                    .map(|point| point.id.to_string())
                    .filter(|id| !known.contains(id)),
            );
            match page.next {
                Some(next) => request.offset = Some(next),
                None => break,
            }
        }
        repaired.vectors_removed = orphans.len();
        self.remove_memory_vectors(orphans)?;
        Ok(repaired)
    }

    /// Every memory with its whole history, oldest first, page by page to `visit`; how many.
    pub fn export_memories(
        &self,
        mut visit: impl FnMut(ExportedMemory) -> Result<()>,
    ) -> Result<usize> {
        let records = self.records()?;
        self.each_page_of_memories(|page| {
            for memory in page {
                let history = records.history(&memory.id)?;
                visit(ExportedMemory { memory, history })?;
            }
            Ok(())
        })
    }

    /// Every stored memory, oldest first, a page at a time; how many.
    fn each_page_of_memories(
        &self,
        mut visit: impl FnMut(Vec<Memory>) -> Result<()>,
    ) -> Result<usize> {
        let records = self.records()?;
        let mut offset = 0;
        loop {
            let page = records.list(&ListQuery {
                limit: PAGE,
                offset,
                ..ListQuery::default()
            })?;
            if page.is_empty() {
                return Ok(offset);
            }
            offset += page.len();
            visit(page)?;
        }
    }

    /// Writes exported memories with their ids, times and histories, embedding them in one
    /// batch. A memory whose id is taken, or whose text is in its scope already, is skipped.
    /// Each is checked as an added one is (scope, text, times); the content hash is computed
    /// again, never trusted.
    pub fn import_memories(&self, batch: Vec<ExportedMemory>) -> Result<Imported> {
        let records = self.records()?;
        let mut checked = Vec::with_capacity(batch.len());
        for (index, mut item) in batch.into_iter().enumerate() {
            let memory = &mut item.memory;
            let invalid = |message: String| {
                EngineError::InvalidQuery(format!("memory {index} ({}): {message}", memory.id))
            };
            if point_id(&memory.id).is_none() {
                return Err(invalid("the id is not a UUID".into()));
            }
            memory
                .scope
                .check()
                .map_err(|err| invalid(err.to_string()))?;
            check_text(&memory.text).map_err(|err| invalid(err.to_string()))?;
            check_metadata(&memory.metadata).map_err(|err| invalid(err.to_string()))?;
            for (field, value) in [
                ("created_at", Some(&memory.created_at)),
                ("updated_at", Some(&memory.updated_at)),
                ("expires_at", memory.expires_at.as_ref()),
            ] {
                if let Some(value) = value
                    && epoch_seconds(value).is_none()
                {
                    return Err(invalid(format!("`{field}` {value:?} is not RFC 3339")));
                }
            }
            memory.content_hash = content_hash(&memory.text);
            checked.push(item);
        }
        let mut imported = Imported::default();
        let mut written = Vec::new();
        for item in checked {
            if records.restore(&item.memory, &item.history)? {
                written.push(item.memory);
            } else {
                imported.skipped += 1;
            }
        }
        if written.is_empty() {
            return Ok(imported);
        }
        self.memory_collection()?;
        let texts: Vec<&str> = written.iter().map(|memory| memory.text.as_str()).collect();
        let vectors = self.embedder().embed(&texts)?;
        let points = written
            .iter()
            .enumerate()
            .map(|(row, memory)| memory_point(memory, vectors.row(row).to_vec()))
            .collect::<Result<Vec<_>>>()?;
        self.store().upsert(MEMORY_COLLECTION, points)?;
        imported.imported = written.len();
        Ok(imported)
    }

    /// A memory's vector, in one forward pass with the texts other callers (agents adding at
    /// the same moment, searches) are embedding: many agents, few passes.
    fn embed_memory(&self, text: &str) -> Result<Vec<f32>> {
        self.query_batcher.embed(text)
    }

    fn write_memory_vector(&self, memory: &Memory, vector: Vec<f32>) -> Result<()> {
        let point = memory_point(memory, vector)?;
        self.store().upsert(MEMORY_COLLECTION, vec![point])?;
        Ok(())
    }

    fn remove_memory_vectors(&self, ids: Vec<String>) -> Result<()> {
        let ids: Vec<PointId> = ids.iter().filter_map(|id| point_id(id)).collect();
        if ids.is_empty() {
            return Ok(());
        }
        match self
            .store()
            .delete(MEMORY_COLLECTION, PointSelector::Ids(ids))
        {
            Ok(()) | Err(StoreError::UnknownCollection(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn nearest_memories(
        &self,
        vector: &[f32],
        scope: &Scope,
        wider: bool,
        metadata: Option<&Filter>,
        limit: usize,
        score_threshold: Option<f32>,
        now: &str,
    ) -> Result<Vec<FoundMemory>> {
        let mut filter = visibility(scope, wider, now);
        if let Some(metadata) = metadata {
            filter = filter.and(under_metadata(metadata));
        }
        let mut request = SearchRequest::new(
            NearestQuery {
                using: MEANING_VECTOR.to_owned(),
                vector: Vector::Dense(vector.to_vec()),
            },
            limit,
        );
        request.filter = Some(filter);
        request.score_threshold = score_threshold;
        request.with_payload = PayloadSelection::None;
        let hits = self.store().search(MEMORY_COLLECTION, request)?;
        self.found_memories(hits, now)
    }

    /// The records of `hits`, in order.
    fn found_memories(&self, hits: Vec<ScoredPoint>, now: &str) -> Result<Vec<FoundMemory>> {
        let records = self.records()?;
        let mut found = Vec::with_capacity(hits.len());
        for hit in hits {
            // The record is the truth: a vector whose record is gone (a crash, before repair)
            // or expired meanwhile is not an answer.
            if let Some(memory) = records.get(&hit.id.to_string())?
                && !is_expired(&memory, now)
            {
                found.push(FoundMemory {
                    memory,
                    score: hit.score,
                });
            }
        }
        Ok(found)
    }
}

/// The vector-store point of `memory`: its meaning, its keywords, its scope and times.
fn memory_point(memory: &Memory, vector: Vec<f32>) -> Result<Point> {
    let id = point_id(&memory.id).ok_or_else(|| EngineError::UnknownMemory(memory.id.clone()))?;
    let mut payload = Map::new();
    for (field, value) in SCOPE_FIELDS.iter().zip([
        &memory.scope.user_id,
        &memory.scope.agent_id,
        &memory.scope.run_id,
    ]) {
        payload.insert((*field).to_owned(), json!(value));
    }
    let expires = memory.expires_at.as_deref().and_then(epoch_seconds);
    payload.insert(EXPIRES_FIELD.to_owned(), json!(expires));
    let created = epoch_seconds(&memory.created_at);
    payload.insert(CREATED_FIELD.to_owned(), json!(created));
    payload.insert(HASH_FIELD.to_owned(), json!(memory.content_hash));
    payload.insert(KEYWORDS_FIELD.to_owned(), json!(bm25::ANALYSIS_VERSION));
    payload.insert(
        "metadata".to_owned(),
        Value::Object(memory.metadata.clone()),
    );
    let mut point = Point::dense(id, MEANING_VECTOR, vector, payload);
    point.vectors.insert(
        KEYWORD_VECTOR.to_owned(),
        Vector::Sparse(bm25::document_vector(&bm25::terms(&memory.text), &[])),
    );
    Ok(point)
}

/// Metadata is for tags and small facts about a memory; its JSON is bounded.
fn check_metadata(metadata: &Map<String, Value>) -> Result<()> {
    let bytes = serde_json::to_vec(metadata).map_or(usize::MAX, |json| json.len());
    if bytes > MAX_METADATA_BYTES {
        return Err(EngineError::InvalidQuery(format!(
            "a memory's metadata is {bytes} bytes of JSON; at most {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(EngineError::InvalidQuery("a memory's text is empty".into()));
    }
    if text.len() > MAX_MEMORY_BYTES {
        return Err(EngineError::InvalidQuery(format!(
            "a memory's text is {} bytes; at most {MAX_MEMORY_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// The same text is the same memory: hashed as written, whitespace at the ends aside.
fn content_hash(text: &str) -> String {
    blake3::hash(text.trim().as_bytes()).to_hex().to_string()
}

/// A stored time as seconds since the epoch: how times are compared in the vector store.
fn epoch_seconds(at: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|at| seconds_of(at.with_timezone(&Utc)))
}

fn seconds_of(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

fn point_id(id: &str) -> Option<PointId> {
    uuid::Uuid::parse_str(id).ok().map(PointId::Uuid)
}

fn is_expired(memory: &Memory, now: &str) -> bool {
    memory
        .expires_at
        .as_deref()
        .is_some_and(|expires| expires <= now)
}

/// Who sees what (the module's rule), and nothing expired at `now`.
fn visibility(scope: &Scope, wider: bool, now: &str) -> Filter {
    let mut must = Vec::new();
    for (field, value) in SCOPE_FIELDS
        .iter()
        .zip([&scope.user_id, &scope.agent_id, &scope.run_id])
    {
        let unset = Condition::IsNull {
            is_null: KeyRef {
                key: (*field).to_owned(),
            },
        };
        match value {
            Some(value) => must.push(Condition::Filter(Filter::should([
                Condition::matches(field, value.as_str()),
                unset,
            ]))),
            None if wider => {}
            None => must.push(unset),
        }
    }
    let now_seconds = epoch_seconds(now).unwrap_or(f64::MAX);
    must.push(Condition::Filter(Filter::should([
        Condition::IsNull {
            is_null: KeyRef {
                key: EXPIRES_FIELD.to_owned(),
            },
        },
        Condition::Field(FieldCondition {
            key: EXPIRES_FIELD.to_owned(),
            r#match: None,
            range: Some(Range {
                gt: Some(now_seconds),
                ..Range::default()
            }),
        }),
    ])));
    Filter::must(must)
}

/// A filter on a memory's metadata, its keys moved under `metadata.`.
fn under_metadata(filter: &Filter) -> Filter {
    let mut filter = filter.clone();
    let mut pending = vec![&mut filter];
    while let Some(current) = pending.pop() {
        for condition in current
            .must
            .iter_mut()
            .chain(current.should.iter_mut())
            .chain(current.must_not.iter_mut())
        {
            match condition {
                Condition::Field(field) => field.key = format!("metadata.{}", field.key),
                Condition::IsNull { is_null: key } | Condition::IsEmpty { is_empty: key } => {
                    key.key = format!("metadata.{}", key.key);
                }
                Condition::Nested { nested } => nested.key = format!("metadata.{}", nested.key),
                Condition::Filter(inner) => pending.push(inner),
                Condition::HasId { .. } => {}
            }
        }
    }
    filter
}
