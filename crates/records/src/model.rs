//! Memories, their scopes and their history, as stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{RecordsError, Result};

/// The longest user, agent or run id, in bytes: an identifier, not a document.
pub const MAX_SCOPE_ID_BYTES: usize = 256;

/// Whose a memory is. At least one field is set; the engine decides who sees what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Scope {
    /// `NoScope` when no field is set: a memory must belong to someone.
    pub fn check(&self) -> Result<()> {
        if self.user_id.is_none() && self.agent_id.is_none() && self.run_id.is_none() {
            return Err(RecordsError::NoScope);
        }
        for (name, value) in [
            ("user_id", &self.user_id),
            ("agent_id", &self.agent_id),
            ("run_id", &self.run_id),
        ] {
            if value
                .as_deref()
                .is_some_and(|value| value.trim().is_empty())
            {
                return Err(RecordsError::EmptyScopeField(name));
            }
            if let Some(value) = value
                && value.len() > MAX_SCOPE_ID_BYTES
            {
                return Err(RecordsError::ScopeFieldTooLong {
                    field: name,
                    bytes: value.len(),
                });
            }
        }
        Ok(())
    }
}

/// A memory as stored. Times are UTC, RFC 3339 with microseconds ([`timestamp`]), so that
/// they order as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub scope: Scope,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Of the text, as the engine computes it: the same text in the same scope is one memory.
    #[serde(default)]
    pub content_hash: String,
    /// Who wrote it (a key's name, or the agent).
    #[serde(default)]
    pub author: String,
}

/// What an update writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub text: String,
    pub metadata: Map<String, Value>,
    pub content_hash: String,
    pub expires_at: Option<String>,
}

/// One kind of change in a memory's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Updated,
    Deleted,
    Expired,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "added" => Some(Self::Added),
            "updated" => Some(Self::Updated),
            "deleted" => Some(Self::Deleted),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// One change of one memory: what it was before and after (text and metadata), who, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Strictly increasing over the whole store.
    #[serde(default)]
    pub sequence: i64,
    #[serde(default)]
    pub memory_id: String,
    pub change: Change,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub actor: String,
    pub at: String,
}

/// Which memories `list` returns: those matching every field given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    /// Leave out memories expired at this time (not yet swept); `None` returns them too.
    pub now: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// `time` as stored: UTC, RFC 3339, microseconds, `Z`.
pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// What history keeps of a memory's content, in every backend.
pub(crate) fn history_content(memory: &Memory) -> Value {
    json!({
        "text": memory.text,
        "metadata": memory.metadata,
        "expires_at": memory.expires_at,
        "scope": memory.scope,
    })
}

/// A history row as stored (its change a name, before and after JSON text), checked.
pub(crate) struct StoredChange {
    pub sequence: i64,
    pub memory_id: String,
    pub change: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub actor: String,
    pub at: String,
}

impl StoredChange {
    pub(crate) fn into_entry(self) -> Result<HistoryEntry> {
        let sequence = self.sequence;
        let corrupt = |message: String| RecordsError::Corrupt {
            id: format!("memory {}", self.memory_id),
            message,
        };
        let change = Change::parse(&self.change)
            .ok_or_else(|| corrupt(format!("unknown change `{}` in its history", self.change)))?;
        let parse = |text: Option<String>| -> Result<Option<Value>> {
            text.map(|text| {
                serde_json::from_str(&text)
                    .map_err(|err| corrupt(format!("history entry {sequence}: {err}")))
            })
            .transpose()
        };
        Ok(HistoryEntry {
            sequence,
            change,
            before: parse(self.before.clone())?,
            after: parse(self.after.clone())?,
            memory_id: self.memory_id,
            actor: self.actor,
            at: self.at,
        })
    }
}
