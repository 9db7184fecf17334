//! `MemoryRecords` on PostgreSQL, for a memory shared by several mnemo servers: the same
//! tables as SQLite's, created and upgraded by numbered migrations (one transaction each,
//! under an advisory lock so that two servers starting together migrate once), through a pool
//! of connections. A commit returns once PostgreSQL has made it durable (its default
//! `synchronous_commit = on`).

use std::time::Duration;

use postgres::{NoTls, Row, Transaction};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
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

/// The migrations, in order; the database records how many it has run. A database that ran
/// more than this build knows is refused rather than misread.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE memories (
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
CREATE INDEX memories_by_scope ON memories (user_id, agent_id, run_id);
CREATE UNIQUE INDEX memories_one_per_text ON memories
    (content_hash, COALESCE(user_id, ''), COALESCE(agent_id, ''), COALESCE(run_id, ''));
CREATE INDEX memories_by_expiry ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE history (
    sequence BIGSERIAL PRIMARY KEY,
    memory_id TEXT NOT NULL,
    change TEXT NOT NULL,
    before TEXT,
    after TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX history_by_memory ON history (memory_id, sequence);
",
    "
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (at);
CREATE TABLE jobs (
    id BIGINT PRIMARY KEY,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');
",
    "
CREATE TABLE state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
",
];

/// Any number: the key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6d6e_656d_6f00;
/// The key of the advisory lock held from an event's insert to its commit. A sequence gives
/// ids in the order of the inserts, not of the commits: without it, a reader could see event
/// 8 committed, move past it, and never see event 7 committed a moment later.
const EVENT_LOCK: i64 = 0x6d6e_656d_6f01;

const COLUMNS: &str = "id, text, metadata, user_id, agent_id, run_id, created_at, updated_at, \
                       expires_at, content_hash, author";

/// A unique index was violated (the same text in the same scope, or the id).
const UNIQUE_VIOLATION: &str = "23505";

pub struct PostgresRecords {
    /// `host:port/database`, for messages (never the password).
    location: String,
    pool: Pool<PostgresConnectionManager<NoTls>>,
}

impl PostgresRecords {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`), with at most
    /// `connections` open at once, and runs the migrations this database lacks.
    pub fn connect(url: &str, connections: u32) -> Result<Self> {
        let config: postgres::Config = url.parse().map_err(|err| RecordsError::Database {
            path: "the PostgreSQL URL".to_owned(),
            message: format!("{err} (expected postgres://user:password@host:port/database)"),
        })?;
        let location = describe(&config);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = Pool::builder()
            .max_size(connections.max(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|err| RecordsError::Database {
                path: location.clone(),
                message: format!("cannot connect: {err}"),
            })?;
        let records = Self { location, pool };
        records.migrate()?;
        Ok(records)
    }

    fn connection(&self) -> Result<PooledConnection<PostgresConnectionManager<NoTls>>> {
        self.pool.get().map_err(|err| RecordsError::Database {
            path: self.location.clone(),
            message: format!("no connection: {err}"),
        })
    }

    fn error(&self, err: postgres::Error) -> RecordsError {
        RecordsError::Database {
            path: self.location.clone(),
            message: err.to_string(),
        }
    }

    fn migrate(&self) -> Result<()> {
        let mut connection = self.connection()?;
        let mut transaction = connection.transaction().map_err(|e| self.error(e))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| self.error(e))?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS mnemo_schema (version BIGINT NOT NULL); \
                 INSERT INTO mnemo_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM mnemo_schema);",
            )
            .map_err(|e| self.error(e))?;
        let found: i64 = transaction
            .query_one("SELECT version FROM mnemo_schema", &[])
            .map_err(|e| self.error(e))?
            .get(0);
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(RecordsError::SchemaVersion {
                path: self.location.clone(),
                found,
                expected: known,
            });
        }
        for migration in &MIGRATIONS[found as usize..] {
            transaction
                .batch_execute(migration)
                .map_err(|e| self.error(e))?;
        }
        transaction
            .execute("UPDATE mnemo_schema SET version = $1", &[&known])
            .map_err(|e| self.error(e))?;
        transaction.commit().map_err(|e| self.error(e))
    }

    fn in_transaction<T>(&self, work: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut connection = self.connection()?;
        let mut transaction = connection.transaction().map_err(|e| self.error(e))?;
        let result = work(&mut transaction)?;
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(result)
    }

    fn select_one(
        &self,
        client: &mut impl postgres::GenericClient,
        id: &str,
    ) -> Result<Option<Memory>> {
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM memories WHERE id = $1"),
                &[&id],
            )
            .map_err(|e| self.error(e))?
            .map(|row| memory_of(&row))
            .transpose()
    }

    fn insert(&self, transaction: &mut Transaction<'_>, memory: &Memory) -> Result<bool> {
        let metadata = Value::Object(memory.metadata.clone()).to_string();
        let inserted = transaction
            .execute(
                &format!(
                    "INSERT INTO memories ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &memory.id,
                    &memory.text,
                    &metadata,
                    &memory.scope.user_id,
                    &memory.scope.agent_id,
                    &memory.scope.run_id,
                    &memory.created_at,
                    &memory.updated_at,
                    &memory.expires_at,
                    &memory.content_hash,
                    &memory.author,
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(inserted == 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_change(
        &self,
        transaction: &mut Transaction<'_>,
        memory_id: &str,
        change: Change,
        before: Option<Value>,
        after: Option<Value>,
        actor: &str,
        at: &str,
    ) -> Result<()> {
        let before = before.map(|value| value.to_string());
        let after = after.map(|value| value.to_string());
        transaction
            .execute(
                "INSERT INTO history (memory_id, change, before, after, actor, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&memory_id, &change.as_str(), &before, &after, &actor, &at],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

impl PostgresRecords {
    /// Appends `event` in `transaction`, holding [`EVENT_LOCK`] until its commit.
    fn insert_event(&self, transaction: &mut Transaction<'_>, event: &NewEvent) -> Result<Event> {
        let at = timestamp(chrono::Utc::now());
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&EVENT_LOCK])
            .map_err(|e| self.error(e))?;
        let id: i64 = transaction
            .query_one(
                "INSERT INTO events (at, type, subject, data) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&at, &event.kind, &event.subject, &event.data.to_string()],
            )
            .map_err(|e| self.error(e))?
            .get(0);
        Ok(Event {
            id,
            at,
            kind: event.kind.clone(),
            subject: event.subject.clone(),
            data: event.data.clone(),
        })
    }
}

/// `host:port/database` of a connection's settings.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{database}")
}

fn memory_of(row: &Row) -> Result<Memory> {
    let id: String = row.get(0);
    let metadata: String = row.get(2);
    let metadata: Map<String, Value> =
        serde_json::from_str(&metadata).map_err(|err| RecordsError::Corrupt {
            id: format!("memory {id}"),
            message: format!("metadata is not a JSON object: {err}"),
        })?;
    Ok(Memory {
        id,
        text: row.get(1),
        metadata,
        scope: Scope {
            user_id: row.get(3),
            agent_id: row.get(4),
            run_id: row.get(5),
        },
        created_at: row.get(6),
        updated_at: row.get(7),
        expires_at: row.get(8),
        content_hash: row.get(9),
        author: row.get(10),
    })
}

fn is_unique_violation(err: &postgres::Error) -> bool {
    err.code()
        .is_some_and(|code| code.code() == UNIQUE_VIOLATION)
}

impl MemoryRecords for PostgresRecords {
    fn add(&self, memory: &Memory) -> Result<()> {
        memory.scope.check()?;
        self.in_transaction(|transaction| {
            if !self.insert(transaction, memory)? {
                return Err(RecordsError::Exists(memory.id.clone()));
            }
            self.record_change(
                transaction,
                &memory.id,
                Change::Added,
                None,
                Some(history_content(memory)),
                &memory.author,
                &memory.created_at,
            )?;
            self.insert_event(
                transaction,
                &memory_change_event(Change::Added, memory, &memory.author),
            )
            .map(drop)
        })
    }

    fn restore(&self, memory: &Memory, history: &[HistoryEntry]) -> Result<bool> {
        memory.scope.check()?;
        self.in_transaction(|transaction| {
            if !self.insert(transaction, memory)? {
                return Ok(false);
            }
            if history.is_empty() {
                self.record_change(
                    transaction,
                    &memory.id,
                    Change::Added,
                    None,
                    Some(history_content(memory)),
                    &memory.author,
                    &memory.created_at,
                )?;
            }
            for entry in history {
                self.record_change(
                    transaction,
                    &memory.id,
                    entry.change,
                    entry.before.clone(),
                    entry.after.clone(),
                    &entry.actor,
                    &entry.at,
                )?;
            }
            self.insert_event(
                transaction,
                &memory_event("imported", memory, &memory.author),
            )?;
            Ok(true)
        })
    }

    fn find_same(&self, scope: &Scope, content_hash: &str) -> Result<Option<Memory>> {
        let mut connection = self.connection()?;
        connection
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM memories WHERE content_hash = $1 \
                     AND user_id IS NOT DISTINCT FROM $2 AND agent_id IS NOT DISTINCT FROM $3 \
                     AND run_id IS NOT DISTINCT FROM $4 ORDER BY created_at LIMIT 1"
                ),
                &[
                    &content_hash,
                    &scope.user_id,
                    &scope.agent_id,
                    &scope.run_id,
                ],
            )
            .map_err(|e| self.error(e))?
            .map(|row| memory_of(&row))
            .transpose()
    }

    fn get(&self, id: &str) -> Result<Option<Memory>> {
        let mut connection = self.connection()?;
        self.select_one(&mut *connection, id)
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
                    "UPDATE memories SET text = $2, metadata = $3, content_hash = $4, \
                     expires_at = $5, updated_at = $6 WHERE id = $1",
                    &[
                        &id,
                        &change.text,
                        &metadata,
                        &change.content_hash,
                        &change.expires_at,
                        &at,
                    ],
                )
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        RecordsError::Exists(id.to_owned())
                    } else {
                        self.error(err)
                    }
                })?;
            let after = Memory {
                text: change.text.clone(),
                metadata: change.metadata.clone(),
                content_hash: change.content_hash.clone(),
                expires_at: change.expires_at.clone(),
                updated_at: at.to_owned(),
                ..before.clone()
            };
            self.record_change(
                transaction,
                id,
                Change::Updated,
                Some(history_content(&before)),
                Some(history_content(&after)),
                actor,
                at,
            )?;
            self.insert_event(
                transaction,
                &memory_change_event(Change::Updated, &after, actor),
            )?;
            Ok(Some((before, after)))
        })
    }

    fn remove(&self, id: &str, change: Change, actor: &str, at: &str) -> Result<Option<Memory>> {
        self.in_transaction(|transaction| {
            // Locked while deleted: two removals of one memory write one history entry.
            let Some(before) = transaction
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM memories WHERE id = $1 FOR UPDATE"),
                    &[&id],
                )
                .map_err(|e| self.error(e))?
                .map(|row| memory_of(&row))
                .transpose()?
            else {
                return Ok(None);
            };
            transaction
                .execute("DELETE FROM memories WHERE id = $1", &[&id])
                .map_err(|e| self.error(e))?;
            self.record_change(
                transaction,
                id,
                change,
                Some(history_content(&before)),
                None,
                actor,
                at,
            )?;
            self.insert_event(transaction, &memory_change_event(change, &before, actor))?;
            Ok(Some(before))
        })
    }

    fn list(&self, query: &ListQuery) -> Result<Vec<Memory>> {
        let mut connection = self.connection()?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        connection
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM memories WHERE ($1::TEXT IS NULL OR user_id = $1) \
                     AND ($2::TEXT IS NULL OR agent_id = $2) AND ($3::TEXT IS NULL OR run_id = $3) \
                     AND ($4::TEXT IS NULL OR expires_at IS NULL OR expires_at > $4) \
                     ORDER BY created_at, id LIMIT $5 OFFSET $6"
                ),
                &[
                    &query.user_id,
                    &query.agent_id,
                    &query.run_id,
                    &query.now,
                    &limit,
                    &offset,
                ],
            )
            .map_err(|e| self.error(e))?
            .iter()
            .map(memory_of)
            .collect()
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let mut connection = self.connection()?;
        let rows = connection
            .query(
                "SELECT sequence, memory_id, change, before, after, actor, at FROM history \
                 WHERE memory_id = $1 ORDER BY sequence",
                &[&id],
            )
            .map_err(|e| self.error(e))?;
        rows.into_iter()
            .map(|row| {
                StoredChange {
                    sequence: row.get(0),
                    memory_id: row.get(1),
                    change: row.get(2),
                    before: row.get(3),
                    after: row.get(4),
                    actor: row.get(5),
                    at: row.get(6),
                }
                .into_entry()
            })
            .collect()
    }

    fn expired(&self, now: &str, limit: usize) -> Result<Vec<String>> {
        let mut connection = self.connection()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(connection
            .query(
                "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2",
                &[&now, &limit],
            )
            .map_err(|e| self.error(e))?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }
}

const JOB_COLUMNS: &str = "id, state, request, error, created_at, updated_at";

impl EventLog for PostgresRecords {
    fn append(&self, event: &NewEvent) -> Result<Event> {
        self.in_transaction(|transaction| self.insert_event(transaction, event))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        query.check()?;
        let mut connection = self.connection()?;
        let sql = format!(
            "SELECT id, at, type, subject, data FROM events WHERE id > $1 AND {} \
             ORDER BY id LIMIT $2",
            query.type_condition(3, |n| format!("${n}::TEXT"))
        );
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let mut parameters: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&query.after, &limit];
        parameters.extend(
            query
                .types
                .iter()
                .map(|t| t as &(dyn postgres::types::ToSql + Sync)),
        );
        let rows = connection
            .query(&sql, &parameters)
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let data: String = row.get(4);
                Ok(Event {
                    id,
                    at: row.get(1),
                    kind: row.get(2),
                    subject: row.get(3),
                    data: parse_data(id, &data)?,
                })
            })
            .collect()
    }

    fn last_event_id(&self) -> Result<i64> {
        let mut connection = self.connection()?;
        Ok(connection
            .query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])
            .map_err(|e| self.error(e))?
            .get(0))
    }

    fn prune(&self, retention: &Retention) -> Result<u64> {
        self.in_transaction(|transaction| {
            let mut removed = 0;
            if let Some(older_than) = &retention.older_than {
                removed += transaction
                    .execute("DELETE FROM events WHERE at < $1", &[older_than])
                    .map_err(|e| self.error(e))?;
                transaction
                    .execute(
                        "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND updated_at < $1",
                        &[older_than],
                    )
                    .map_err(|e| self.error(e))?;
            }
            if let Some(keep) = retention.keep_last {
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                removed += transaction
                    .execute(
                        "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC \
                         LIMIT 1 OFFSET $1)",
                        &[&keep],
                    )
                    .map_err(|e| self.error(e))?;
            }
            Ok(removed)
        })
    }

    fn save_job(&self, job: &StoredJob, event: &NewEvent) -> Result<Event> {
        self.in_transaction(|transaction| {
            transaction
                .execute(
                    &format!(
                        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, \
                         request = EXCLUDED.request, error = EXCLUDED.error, \
                         updated_at = EXCLUDED.updated_at"
                    ),
                    &[
                        &job.id,
                        &job.state,
                        &job.request.to_string(),
                        &job.error,
                        &job.created_at,
                        &job.updated_at,
                    ],
                )
                .map_err(|e| self.error(e))?;
            self.insert_event(transaction, event)
        })
    }

    fn unfinished_jobs(&self) -> Result<Vec<StoredJob>> {
        let mut connection = self.connection()?;
        let rows = connection
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
                ),
                &[],
            )
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let request: String = row.get(2);
                Ok(StoredJob {
                    id,
                    state: row.get(1),
                    request: parse_request(id, &request)?,
                    error: row.get(3),
                    created_at: row.get(4),
                    updated_at: row.get(5),
                })
            })
            .collect()
    }

    fn last_job_id(&self) -> Result<i64> {
        let mut connection = self.connection()?;
        Ok(connection
            .query_one("SELECT COALESCE(MAX(id), 0) FROM jobs", &[])
            .map_err(|e| self.error(e))?
            .get(0))
    }

    fn state(&self, key: &str) -> Result<Option<Value>> {
        let mut connection = self.connection()?;
        let row = connection
            .query_opt("SELECT value FROM state WHERE key = $1", &[&key])
            .map_err(|e| self.error(e))?;
        row.map(|row| parse_state(key, &row.get::<_, String>(0)))
            .transpose()
    }

    fn state_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut connection = self.connection()?;
        let rows = connection
            .query(
                "SELECT key FROM state WHERE key LIKE $1 ESCAPE '\\' ORDER BY key COLLATE \"C\"",
                &[&prefix_pattern(prefix)],
            )
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
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
                    "INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                     updated_at = EXCLUDED.updated_at",
                    &[&key, &value.to_string(), &timestamp(chrono::Utc::now())],
                )
                .map_err(|e| self.error(e))?;
            event
                .map(|event| self.insert_event(transaction, event))
                .transpose()
        })
    }

    fn delete_state(&self, key: &str) -> Result<bool> {
        let mut connection = self.connection()?;
        connection
            .execute("DELETE FROM state WHERE key = $1", &[&key])
            .map(|removed| removed > 0)
            .map_err(|e| self.error(e))
    }
}
