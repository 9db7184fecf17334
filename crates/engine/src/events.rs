//! The durable event log, as every door sees it: what the engine's operations changed
//! (collections, snapshots, index jobs, memories, components, alerts), appended to the
//! relational store beside the memories (`mnemo_records::EventLog`) before the change is
//! acknowledged. A memory's change writes its event in its own transaction (records); the
//! others are appended here, after the change and before the answer.
//!
//! The collection and snapshot operations live here so that every door that creates or
//! deletes one writes its event: a door calls these, not the store's.

use std::sync::atomic::Ordering;

use mnemo_records::{Event, EventQuery, NewEvent, Retention};
use mnemo_store::{CollectionConfig, SnapshotInfo};
use serde_json::{Value, json};

use crate::{Engine, EngineError, Result};

/// The most events one read returns.
pub const MAX_EVENTS_PER_READ: usize = 1000;

impl Engine {
    /// Appends an event, if this engine keeps a log. A failure is counted
    /// ([`Engine::event_failures`], which the alerts watch) and said on stderr, not returned:
    /// the change it describes happened.
    pub fn emit(&self, kind: &str, subject: Option<String>, data: Value) -> Option<Event> {
        let records = self.records.as_ref()?;
        match records.append(&NewEvent::new(kind, subject, data)) {
            Ok(event) => Some(event),
            Err(err) => {
                self.event_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("warning: the event `{kind}` could not be written: {err}");
                None
            }
        }
    }

    /// How many events could not be written since start.
    pub fn event_failures(&self) -> u64 {
        self.event_failures.load(Ordering::Relaxed)
    }

    /// Whether this engine keeps an event log.
    pub fn keeps_events(&self) -> bool {
        self.records.is_some()
    }

    /// Events after `query.after`, oldest first; `limit` bounded by [`MAX_EVENTS_PER_READ`].
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        if query.limit == 0 || query.limit > MAX_EVENTS_PER_READ {
            return Err(EngineError::InvalidQuery(format!(
                "`limit` must be between 1 and {MAX_EVENTS_PER_READ}"
            )));
        }
        if query.after < 0 {
            return Err(EngineError::InvalidQuery(
                "`after` must be 0 or an event id".to_owned(),
            ));
        }
        Ok(records.events(query)?)
    }

    /// The newest event's id, 0 when there is none.
    pub fn last_event_id(&self) -> Result<i64> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        Ok(records.last_event_id()?)
    }

    /// Removes events older than `keep_days` and beyond the `keep_last` newest.
    pub fn prune_events(&self, keep_days: Option<u32>, keep_last: Option<u64>) -> Result<u64> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        let older_than = keep_days.map(|days| {
            mnemo_records::timestamp(chrono::Utc::now() - chrono::Duration::days(i64::from(days)))
        });
        Ok(records.prune(&Retention {
            older_than,
            keep_last,
        })?)
    }

    /// Creates a collection (`collection.created`).
    pub fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()> {
        self.store().create_collection(name, config)?;
        self.collection_created(name, config, None)
    }

    /// Creates a collection for `model`'s vectors and records that model, so that its queries
    /// are embedded with it (`collection.created`).
    pub fn create_collection_for(
        &self,
        name: &str,
        config: &CollectionConfig,
        model: &crate::CollectionModel,
    ) -> Result<()> {
        self.store().create_collection(name, config)?;
        self.bind_model(name, model)?;
        self.collection_created(name, config, Some(&model.id))
    }

    fn collection_created(
        &self,
        name: &str,
        config: &CollectionConfig,
        model: Option<&str>,
    ) -> Result<()> {
        self.emit(
            "collection.created",
            Some(name.to_owned()),
            json!({ "vectors": config.vectors.keys().collect::<Vec<_>>(),
                    "sparse_vectors": config.sparse_vectors.keys().collect::<Vec<_>>(),
                    "model": model }),
        );
        // Pinned now, with the vectors its first points get, rather than at the next check.
        if self.keeps_events()
            && let Err(err) = self.pin_canaries(name)
        {
            eprintln!("warning: the drift canaries of `{name}` could not be pinned: {err}");
        }
        Ok(())
    }

    /// Deletes a collection (`collection.deleted`); whether it existed.
    pub fn delete_collection(&self, name: &str) -> Result<bool> {
        let existed = self.store().delete_collection(name)?;
        if existed {
            self.emit("collection.deleted", Some(name.to_owned()), json!({}));
            self.forget_canaries(name);
        }
        Ok(existed)
    }

    /// Takes a snapshot of a collection (`snapshot.created`).
    pub fn create_snapshot(&self, collection: &str) -> Result<SnapshotInfo> {
        let info = self.store().create_snapshot(collection)?;
        self.emit(
            "snapshot.created",
            Some(collection.to_owned()),
            json!({ "snapshot": info.name, "size": info.size }),
        );
        Ok(info)
    }

    /// Replaces a collection with one of its snapshots (`snapshot.restored`).
    pub fn restore_snapshot(&self, collection: &str, snapshot: &str) -> Result<SnapshotInfo> {
        let info = self.store().restore_snapshot(collection, snapshot)?;
        self.emit(
            "snapshot.restored",
            Some(collection.to_owned()),
            json!({ "snapshot": info.name }),
        );
        Ok(info)
    }

    /// Deletes a snapshot (`snapshot.deleted`); whether it existed.
    pub fn delete_snapshot(&self, collection: &str, snapshot: &str) -> Result<bool> {
        let existed = self.store().delete_snapshot(collection, snapshot)?;
        if existed {
            self.emit(
                "snapshot.deleted",
                Some(collection.to_owned()),
                json!({ "snapshot": snapshot }),
            );
        }
        Ok(existed)
    }
}
