//! The durable event log and the index jobs that outlive a restart, as stored: what changed,
//! when, in one append-only table whose ids only grow (a reader that remembers the last id it
//! saw misses nothing and sees nothing twice, across restarts of either side).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Change, Memory};
use crate::{RecordsError, Result};

/// The most event types one query may name.
pub const MAX_EVENT_TYPES: usize = 32;
/// The longest event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Strictly increasing: a later event has a greater id, also across restarts.
    pub id: i64,
    /// UTC, RFC 3339 with microseconds.
    pub at: String,
    /// `family.what`: `memory.added`, `job.finished`, `collection.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about (a memory's id, a job's, a collection's name), when one thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The details, by type.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// An event to append; the log gives it its id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub subject: Option<String>,
    pub data: Value,
}

impl NewEvent {
    pub fn new(kind: impl Into<String>, subject: Option<String>, data: Value) -> Self {
        Self {
            kind: kind.into(),
            subject,
            data,
        }
    }
}

/// Which events to read: those after `after`, of `types` (each a whole type, `job.failed`, or
/// a family, `job`; none: all), at most `limit`, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after: i64,
    pub types: Vec<String>,
    pub limit: usize,
}

impl EventQuery {
    /// `InvalidEventType` for a type that no event could have (so that it can be matched
    /// as text without escaping), or too many of them.
    pub fn check(&self) -> Result<()> {
        if self.types.len() > MAX_EVENT_TYPES {
            return Err(RecordsError::InvalidEventType(format!(
                "{} types given; at most {MAX_EVENT_TYPES}",
                self.types.len()
            )));
        }
        for kind in &self.types {
            let valid = !kind.is_empty()
                && kind.len() <= MAX_EVENT_TYPE_BYTES
                && kind.starts_with(|c: char| c.is_ascii_lowercase())
                && kind
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
            if !valid {
                return Err(RecordsError::InvalidEventType(format!(
                    "`{}` is not an event type (lowercase letters, digits, `_` and `.`, at most {MAX_EVENT_TYPE_BYTES} bytes)",
                    kind.chars().take(80).collect::<String>()
                )));
            }
        }
        Ok(())
    }

    /// The SQL condition matching `types` (true when there are none), its parameters numbered
    /// by `placeholder` from `first`: each type matches itself and the types of its family.
    pub(crate) fn type_condition(
        &self,
        first: usize,
        placeholder: impl Fn(usize) -> String,
    ) -> String {
        if self.types.is_empty() {
            return "TRUE".to_owned();
        }
        let alternatives: Vec<String> = (0..self.types.len())
            .map(|index| {
                let parameter = placeholder(first + index);
                format!(
                    "(type = {parameter} OR substr(type, 1, length({parameter}) + 1) = {parameter} || '.')"
                )
            })
            .collect();
        format!("({})", alternatives.join(" OR "))
    }
}

/// Which events retention removes: those older than `older_than` (an RFC 3339 time), and
/// all but the `keep_last` newest.
#[derive(Debug, Clone)]
pub struct Retention {
    pub older_than: Option<String>,
    pub keep_last: Option<u64>,
}

/// An index job as kept across restarts: what it was asked (`request`, the engine's to
/// read) and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    pub id: i64,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub request: Value,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl StoredJob {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// The log, beside the memories in the same database: a memory's change and its event are
/// written in one transaction.
pub trait EventLog: Send + Sync {
    /// Appends `event`; the event as stored, once durable.
    fn append(&self, event: &NewEvent) -> Result<Event>;
    /// Events as `query` asks, oldest first.
    fn events(&self, query: &EventQuery) -> Result<Vec<Event>>;
    /// The id of the newest event, 0 when there is none.
    fn last_event_id(&self) -> Result<i64>;
    /// Removes what `retention` says; how many were removed.
    fn prune(&self, retention: &Retention) -> Result<u64>;
    /// Writes `job` as it stands (inserted or replaced) and appends `event`, together.
    fn save_job(&self, job: &StoredJob, event: &NewEvent) -> Result<Event>;
    /// Jobs not finished (queued or running when the service stopped), oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<StoredJob>>;
    /// The greatest job id ever stored, 0 when none: new ids continue after it.
    fn last_job_id(&self) -> Result<i64>;
    /// The service's own bookkeeping kept across restarts (a collection's drift canaries, a
    /// webhook's delivery cursor), by key: the value stored under `key`, if any.
    fn state(&self, key: &str) -> Result<Option<Value>>;
    /// The keys starting with `prefix`, in order.
    fn state_keys(&self, prefix: &str) -> Result<Vec<String>>;
    /// Stores `value` under `key` (replacing what was there) and appends `event` if given,
    /// together.
    fn put_state(
        &self,
        key: &str,
        value: &Value,
        event: Option<&NewEvent>,
    ) -> Result<Option<Event>>;
    /// Removes `key`; whether it was there.
    fn delete_state(&self, key: &str) -> Result<bool>;
}

/// A stored state value read back.
pub(crate) fn parse_state(key: &str, value: &str) -> Result<Value> {
    serde_json::from_str(value).map_err(|err| RecordsError::Corrupt {
        id: format!("state `{key}`"),
        message: format!("its value is not JSON: {err}"),
    })
}

/// The `LIKE` pattern of the keys starting with `prefix` (`\` escapes).
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The event of a memory's change, as both backends write it beside the change.
pub(crate) fn memory_event(kind: &str, memory: &Memory, actor: &str) -> NewEvent {
    NewEvent::new(
        format!("memory.{kind}"),
        Some(memory.id.clone()),
        json!({
            "user_id": memory.scope.user_id,
            "agent_id": memory.scope.agent_id,
            "run_id": memory.scope.run_id,
            "actor": actor,
        }),
    )
}

pub(crate) fn memory_change_event(change: Change, memory: &Memory, actor: &str) -> NewEvent {
    memory_event(change.as_str(), memory, actor)
}

/// A stored event's `data` column read back.
pub(crate) fn parse_data(id: i64, data: &str) -> Result<Value> {
    serde_json::from_str(data).map_err(|err| RecordsError::Corrupt {
        id: format!("event {id}"),
        message: format!("its data is not JSON: {err}"),
    })
}

pub(crate) fn parse_request(id: i64, request: &str) -> Result<Value> {
    serde_json::from_str(request).map_err(|err| RecordsError::Corrupt {
        id: format!("job {id}"),
        message: format!("its request is not JSON: {err}"),
    })
}
