//! `MemoryRecords` on SQLite: one file, write-ahead journal, every commit synced to disk
//! (`synchronous = FULL`), so a memory whose write returned survives a power loss.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::{Map, Value};

use crate::events::{
    Event, EventLog, EventQuery, NewEvent, Retention, StoredJob, memory_change_event, memory_event,
    parse_data, parse_request, parse_state, prefix_pattern,
};
use crate::model::{
    Change, HistoryEntry, ListQuery, Memory, Scope, StoredChange, Version, history_content,
    timestamp,
};
use crate::{MemoryRecords, RecordsError, Result};

/// The layout this build reads and writes; another is refused rather than misread.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    user_id TEXT,
    agent_id TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    content_hash TEXT NOT NULL,
    author TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_by_scope ON memories (user_id, agent_id, run_id);
-- One memory per text and scope, also when two writers race: unset fields compare equal.
CREATE UNIQUE INDEX IF NOT EXISTS memories_one_per_text ON memories
    (content_hash, COALESCE(user_id, ''), COALESCE(agent_id, ''), COALESCE(run_id, ''));
CREATE INDEX IF NOT EXISTS memories_by_expiry ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    change TEXT NOT NULL,
    before TEXT,
    after TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_memory ON history (memory_id, sequence);
-- Version 2: the event log (AUTOINCREMENT: an id is never given twice, also after the
-- newest events are removed) and the index jobs.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');
-- Version 3: the service's own bookkeeping (drift canaries, webhook cursors), JSON by key.
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

const COLUMNS: &str = "id, text, metadata, user_id, agent_id, run_id, created_at, updated_at, \
                       expires_at, content_hash, author";

pub struct SqliteRecords {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteRecords {
    /// Opens (creating if needed, with its folder) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let error = |err: rusqlite::Error| database(path, err);
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|err| RecordsError::Database {
                path: path.display().to_string(),
                message: format!("cannot create its folder: {err}"),
            })?;
        }
        let connection = Connection::open(path).map_err(error)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(error)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(error)?;
        connection.execute_batch(SCHEMA).map_err(error)?;
        let found: Option<String> = connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(error)?;
        match found {
            None => {
                connection
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        params![SCHEMA_VERSION.to_string()],
                    )
                    .map_err(error)?;
            }
            Some(version) => {
                let found = version.parse::<i64>().unwrap_or(-1);
                // An older layout gained its new tables above: it is this one now.
                if (1..SCHEMA_VERSION).contains(&found) {
                    connection
                        .execute(
                            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                            params![SCHEMA_VERSION.to_string()],
                        )
                        .map_err(error)?;
                } else if found != SCHEMA_VERSION {
                    return Err(RecordsError::SchemaVersion {
                        path: path.display().to_string(),
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding it left no transaction open (rusqlite rolls back on drop).
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, err: rusqlite::Error) -> RecordsError {
        database(&self.path, err)
    }

    fn in_transaction<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut connection = self.connection();
        let transaction = connection.transaction().map_err(|e| self.error(e))?;
        let result = work(&transaction)?;
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(result)
    }

    fn select_one(&self, connection: &Connection, id: &str) -> Result<Option<Memory>> {
        let raw = connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM memories WHERE id = ?1"),
                params![id],
                raw_memory,
            )
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(RawMemory::into_memory).transpose()
    }
}

fn database(path: &Path, err: rusqlite::Error) -> RecordsError {
    RecordsError::Database {
        path: path.display().to_string(),
        message: err.to_string(),
    }
}

/// A row as read, before its metadata is parsed.
struct RawMemory {
    memory: Memory,
    metadata: String,
}

fn raw_memory(row: &Row<'_>) -> rusqlite::Result<RawMemory> {
    Ok(RawMemory {
        memory: Memory {
            id: row.get(0)?,
            text: row.get(1)?,
            metadata: Map::new(),
            scope: Scope {
                user_id: row.get(3)?,
                agent_id: row.get(4)?,
                run_id: row.get(5)?,
            },
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
            expires_at: row.get(8)?,
            content_hash: row.get(9)?,
            author: row.get(10)?,
        },
        metadata: row.get(2)?,
    })
}

impl RawMemory {
    fn into_memory(self) -> Result<Memory> {
        let mut memory = self.memory;
        memory.metadata =
            serde_json::from_str(&self.metadata).map_err(|err| RecordsError::Corrupt {
                id: format!("memory {}", memory.id),
                message: format!("metadata is not a JSON object: {err}"),
            })?;
        Ok(memory)
    }
}

/// One history entry; `before` and `after` as [`history_content`] writes them.
fn record_change(
    transaction: &Transaction<'_>,
    memory_id: &str,
    change: Change,
    before: Option<&Value>,
    after: Option<&Value>,
    actor: &str,
    at: &str,
) -> rusqlite::Result<()> {
    transaction.execute(
        "INSERT INTO history (memory_id, change, before, after, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            memory_id,
            change.as_str(),
            before.map(Value::to_string),
            after.map(Value::to_string),
            actor,
            at
        ],
    )?;
    Ok(())
}

/// Appends `event` in `transaction`: the write lock SQLite holds until the commit orders the
/// ids as the commits.
fn insert_event(transaction: &Transaction<'_>, event: &NewEvent) -> rusqlite::Result<Event> {
    let at = timestamp(chrono::Utc::now());
    transaction.execute(
        "INSERT INTO events (at, type, subject, data) VALUES (?1, ?2, ?3, ?4)",
        params![at, event.kind, event.subject, event.data.to_string()],
    )?;
    Ok(Event {
        id: transaction.last_insert_rowid(),
        at,
        kind: event.kind.clone(),
        subject: event.subject.clone(),
        data: event.data.clone(),
    })
}

/// Writes `memory`'s row; `false` when its id, or its text in its scope, is taken.
fn insert(transaction: &Transaction<'_>, memory: &Memory) -> rusqlite::Result<bool> {
    let metadata = Value::Object(memory.metadata.clone()).to_string();
    let inserted = transaction.execute(
        &format!(
            "INSERT OR IGNORE INTO memories ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            memory.id,
            memory.text,
            metadata,
            memory.scope.user_id,
            memory.scope.agent_id,
            memory.scope.run_id,
            memory.created_at,
            memory.updated_at,
            memory.expires_at,
            memory.content_hash,
            memory.author
        ],
    )?;
    Ok(inserted == 1)
}

impl MemoryRecords for SqliteRecords {
    fn add(&self, memory: &Memory) -> Result<()> {
        memory.scope.check()?;
        self.in_transaction(|transaction| {
            // The id, or the same text in the same scope, written by someone else first.
            if !insert(transaction, memory).map_err(|e| self.error(e))? {
                return Err(RecordsError::Exists(memory.id.clone()));
            }
            record_change(
                transaction,
                &memory.id,
                Change::Added,
                None,
                Some(&history_content(memory)),
                &memory.author,
                &memory.created_at,
            )
            .and_then(|()| {
                insert_event(
                    transaction,
                    &memory_change_event(Change::Added, memory, &memory.author),
                )
            })
            .map(drop)
            .map_err(|e| self.error(e))
        })
    }

    fn restore(&self, memory: &Memory, history: &[HistoryEntry]) -> Result<bool> {
        memory.scope.check()?;
        self.in_transaction(|transaction| {
            if !insert(transaction, memory).map_err(|e| self.error(e))? {
                return Ok(false);
            }
            if history.is_empty() {
                record_change(
                    transaction,
                    &memory.id,
                    Change::Added,
                    None,
                    Some(&history_content(memory)),
                    &memory.author,
                    &memory.created_at,
                )
                .map_err(|e| self.error(e))?;
            }
            for entry in history {
                record_change(
                    transaction,
                    &memory.id,
                    entry.change,
                    entry.before.as_ref(),
                    entry.after.as_ref(),
                    &entry.actor,
                    &entry.at,
                )
                .map_err(|e| self.error(e))?;
            }
            insert_event(
                transaction,
                &memory_event("imported", memory, &memory.author),
            )
            .map_err(|e| self.error(e))?;
            Ok(true)
        })
    }

    fn find_same(&self, scope: &Scope, content_hash: &str) -> Result<Option<Memory>> {
        let connection = self.connection();
        // `IS` compares NULLs as equal: the same scope means the same fields unset too.
        let raw = connection
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM memories WHERE content_hash = ?1 AND user_id IS ?2 \
                     AND agent_id IS ?3 AND run_id IS ?4 ORDER BY created_at LIMIT 1"
                ),
                params![content_hash, scope.user_id, scope.agent_id, scope.run_id],
                raw_memory,
            )
            .optional()
            .map_err(|e| self.error(e))?;
        raw.map(RawMemory::into_memory).transpose()
    }

    fn get(&self, id: &str) -> Result<Option<Memory>> {
        let connection = self.connection();
        self.select_one(&connection, id)
    }

    fn update(
        &self,
        id: &str,
        change: &Version,
        actor: &str,
        at: &str,
    ) -> Result<Option<(Memory, Memory)>> {
        let metadata = Value::Object(change.metadata.clone()).to_string();
        self.in_transaction(|transaction| {
            let Some(before) = self.select_one(transaction, id)? else {
                return Ok(None);
            };
            transaction
                .execute(
                    "UPDATE memories SET text = ?2, metadata = ?3, content_hash = ?4, \
                     expires_at = ?5, updated_at = ?6 WHERE id = ?1",
                    params![
                        id,
                        change.text,
                        metadata,
                        change.content_hash,
                        change.expires_at,
                        at
                    ],
                )
                .map_err(|err| match err.sqlite_error_code() {
                    // Another memory of the scope holds that text already.
                    Some(rusqlite::ErrorCode::ConstraintViolation) => {
                        RecordsError::Exists(id.to_owned())
                    }
                    _ => self.error(err),
                })?;
            let after = Memory {
                text: change.text.clone(),
                metadata: change.metadata.clone(),
                content_hash: change.content_hash.clone(),
                expires_at: change.expires_at.clone(),
                updated_at: at.to_owned(),
                ..before.clone()
            };
            record_change(
                transaction,
                id,
                Change::Updated,
                Some(&history_content(&before)),
                Some(&history_content(&after)),
                actor,
                at,
            )
            .and_then(|()| {
                insert_event(
                    transaction,
                    &memory_change_event(Change::Updated, &after, actor),
                )
            })
            .map_err(|e| self.error(e))?;
            Ok(Some((before, after)))
        })
    }

    fn remove(&self, id: &str, change: Change, actor: &str, at: &str) -> Result<Option<Memory>> {
        self.in_transaction(|transaction| {
            let Some(before) = self.select_one(transaction, id)? else {
                return Ok(None);
            };
            transaction
                .execute("DELETE FROM memories WHERE id = ?1", params![id])
                .map_err(|e| self.error(e))?;
            record_change(
                transaction,
                id,
                change,
                Some(&history_content(&before)),
                None,
                actor,
                at,
            )
            .and_then(|()| insert_event(transaction, &memory_change_event(change, &before, actor)))
            .map_err(|e| self.error(e))?;
            Ok(Some(before))
        })
    }

    fn list(&self, query: &ListQuery) -> Result<Vec<Memory>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {COLUMNS} FROM memories WHERE (?1 IS NULL OR user_id = ?1) \
                 AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR run_id = ?3) \
                 AND (?4 IS NULL OR expires_at IS NULL OR expires_at > ?4) \
                 ORDER BY created_at, id LIMIT ?5 OFFSET ?6"
            ))
            .map_err(|e| self.error(e))?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(
                params![
                    query.user_id,
                    query.agent_id,
                    query.run_id,
                    query.now,
                    limit,
                    offset
                ],
                raw_memory,
            )
            .map_err(|e| self.error(e))?;
        rows.map(|row| row.map_err(|e| self.error(e))?.into_memory())
            .collect()
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(
                "SELECT sequence, memory_id, change, before, after, actor, at FROM history \
                 WHERE memory_id = ?1 ORDER BY sequence",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![id], |row| {
                Ok(StoredChange {
                    sequence: row.get(0)?,
                    memory_id: row.get(1)?,
                    change: row.get(2)?,
                    before: row.get(3)?,
                    after: row.get(4)?,
                    actor: row.get(5)?,
                    at: row.get(6)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.map(|row| row.map_err(|e| self.error(e))?.into_entry())
            .collect()
    }

    fn expired(&self, now: &str, limit: usize) -> Result<Vec<String>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(
                "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= ?1 \
                 ORDER BY expires_at LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![now, limit], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        rows.map(|row| row.map_err(|e| self.error(e))).collect()
    }
}

const JOB_COLUMNS: &str = "id, state, request, error, created_at, updated_at";

fn stored_job(row: &Row<'_>) -> rusqlite::Result<(StoredJob, String)> {
    Ok((
        StoredJob {
            id: row.get(0)?,
            state: row.get(1)?,
            request: Value::Null,
            error: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        },
        row.get(2)?,
    ))
}

impl EventLog for SqliteRecords {
    fn append(&self, event: &NewEvent) -> Result<Event> {
        self.in_transaction(|transaction| {
            insert_event(transaction, event).map_err(|e| self.error(e))
        })
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        query.check()?;
        let connection = self.connection();
        let sql = format!(
            "SELECT id, at, type, subject, data FROM events WHERE id > ?1 AND {} \
             ORDER BY id LIMIT ?2",
            query.type_condition(3, |n| format!("?{n}"))
        );
        let mut statement = connection.prepare(&sql).map_err(|e| self.error(e))?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let mut parameters: Vec<&dyn rusqlite::ToSql> = vec![&query.after, &limit];
        parameters.extend(query.types.iter().map(|t| t as &dyn rusqlite::ToSql));
        let rows = statement
            .query_map(parameters.as_slice(), |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        rows.map(|row| {
            let (id, at, kind, subject, data) = row.map_err(|e| self.error(e))?;
            Ok(Event {
                id,
                at,
                kind,
                subject,
                data: parse_data(id, &data)?,
            })
        })
        .collect()
    }

    fn last_event_id(&self) -> Result<i64> {
        let connection = self.connection();
        connection
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                row.get(0)
            })
            .map_err(|e| self.error(e))
    }

    fn prune(&self, retention: &Retention) -> Result<u64> {
        self.in_transaction(|transaction| {
            let mut removed = 0;
            if let Some(older_than) = &retention.older_than {
                removed += transaction
                    .execute("DELETE FROM events WHERE at < ?1", params![older_than])
                    .map_err(|e| self.error(e))?;
                transaction
                    .execute(
                        "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND updated_at < ?1",
                        params![older_than],
                    )
                    .map_err(|e| self.error(e))?;
            }
            if let Some(keep) = retention.keep_last {
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                removed += transaction
                    .execute(
                        "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC \
                         LIMIT 1 OFFSET ?1)",
                        params![keep],
                    )
                    .map_err(|e| self.error(e))?;
            }
            Ok(removed as u64)
        })
    }

    fn save_job(&self, job: &StoredJob, event: &NewEvent) -> Result<Event> {
        self.in_transaction(|transaction| {
            transaction
                .execute(
                    &format!(
                        "INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                    ),
                    params![
                        job.id,
                        job.state,
                        job.request.to_string(),
                        job.error,
                        job.created_at,
                        job.updated_at
                    ],
                )
                .and_then(|_| insert_event(transaction, event))
                .map_err(|e| self.error(e))
        })
    }

    fn unfinished_jobs(&self) -> Result<Vec<StoredJob>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], stored_job)
            .map_err(|e| self.error(e))?;
        rows.map(|row| {
            let (mut job, request) = row.map_err(|e| self.error(e))?;
            job.request = parse_request(job.id, &request)?;
            Ok(job)
        })
        .collect()
    }

    fn last_job_id(&self) -> Result<i64> {
        let connection = self.connection();
        connection
            .query_row("SELECT COALESCE(MAX(id), 0) FROM jobs", [], |row| {
                row.get(0)
            })
            .map_err(|e| self.error(e))
    }

    fn state(&self, key: &str) -> Result<Option<Value>> {
        let connection = self.connection();
        let value: Option<String> = connection
            .query_row(
                "SELECT value FROM state WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        value.map(|value| parse_state(key, &value)).transpose()
    }

    fn state_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT key FROM state WHERE key LIKE ?1 ESCAPE '\\' ORDER BY key")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![prefix_pattern(prefix)], |row| row.get(0))
            .map_err(|e| self.error(e))?;
        rows.map(|row| row.map_err(|e| self.error(e))).collect()
    }

    fn put_state(
        &self,
        key: &str,
        value: &Value,
        event: Option<&NewEvent>,
    ) -> Result<Option<Event>> {
        self.in_transaction(|transaction| {
            transaction
                .execute(
                    "INSERT OR REPLACE INTO state (key, value, updated_at) VALUES (?1, ?2, ?3)",
                    params![key, value.to_string(), timestamp(chrono::Utc::now())],
                )
                .map_err(|e| self.error(e))?;
            event
                .map(|event| insert_event(transaction, event).map_err(|e| self.error(e)))
                .transpose()
        })
    }

    fn delete_state(&self, key: &str) -> Result<bool> {
        let connection = self.connection();
        connection
            .execute("DELETE FROM state WHERE key = ?1", params![key])
            .map(|removed| removed > 0)
            .map_err(|e| self.error(e))
    }
}
