//! kill -9 of a real child process adding memories (the record, then the vector), at moments
//! that vary; the next start's repair leaves every acknowledged memory findable and the vector
//! store holding exactly one vector per record, whatever write the kill interrupted. The
//! child's records pause after each commit (real SQLite, real writes; only slower), so that
//! most kills land between the two writes, the case repair exists for.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use mnemo_engine::Engine;
use mnemo_engine::memory::{MemoryQuery, NewMemory};
use mnemo_records::{
    Change, Event, EventLog, EventQuery, HistoryEntry, ListQuery, Memory, MemoryRecords, NewEvent,
    Retention, Scope, SqliteRecords, StoredJob, Version,
};

const CHILD: &str = "MNEMO_MEMORY_CRASH_CHILD";

fn open(dir: &std::path::Path) -> (Engine, Arc<SqliteRecords>) {
    let records = Arc::new(SqliteRecords::open(&dir.join("memory.sqlite")).unwrap());
    let engine = common::engine(&dir.join("data")).with_records(records.clone());
    (engine, records)
}

/// SQLite records that wait after each added memory is committed, before the engine goes on
/// to write its vector.
struct SlowAfterCommit(SqliteRecords);

impl MemoryRecords for SlowAfterCommit {
    fn add(&self, memory: &Memory) -> mnemo_records::Result<()> {
        self.0.add(memory)?;
        std::thread::sleep(std::time::Duration::from_millis(40));
        Ok(())
    }
    fn restore(&self, memory: &Memory, history: &[HistoryEntry]) -> mnemo_records::Result<bool> {
        self.0.restore(memory, history)
    }
    fn find_same(&self, scope: &Scope, hash: &str) -> mnemo_records::Result<Option<Memory>> {
        self.0.find_same(scope, hash)
    }
    fn get(&self, id: &str) -> mnemo_records::Result<Option<Memory>> {
        self.0.get(id)
    }
    fn update(
        &self,
        id: &str,
        change: &Version,
        actor: &str,
        at: &str,
    ) -> mnemo_records::Result<Option<(Memory, Memory)>> {
        self.0.update(id, change, actor, at)
    }
    fn remove(
        &self,
        id: &str,
        change: Change,
        actor: &str,
        at: &str,
    ) -> mnemo_records::Result<Option<Memory>> {
        self.0.remove(id, change, actor, at)
    }
    fn list(&self, query: &ListQuery) -> mnemo_records::Result<Vec<Memory>> {
        self.0.list(query)
    }
    fn history(&self, id: &str) -> mnemo_records::Result<Vec<HistoryEntry>> {
        self.0.history(id)
    }
    fn expired(&self, now: &str, limit: usize) -> mnemo_records::Result<Vec<String>> {
        self.0.expired(now, limit)
    }
}

impl EventLog for SlowAfterCommit {
    fn append(&self, event: &NewEvent) -> mnemo_records::Result<Event> {
        self.0.append(event)
    }
    fn events(&self, query: &EventQuery) -> mnemo_records::Result<Vec<Event>> {
        self.0.events(query)
    }
    fn last_event_id(&self) -> mnemo_records::Result<i64> {
        self.0.last_event_id()
    }
    fn prune(&self, retention: &Retention) -> mnemo_records::Result<u64> {
        self.0.prune(retention)
    }
    fn save_job(&self, job: &StoredJob, event: &NewEvent) -> mnemo_records::Result<Event> {
        self.0.save_job(job, event)
    }
    fn unfinished_jobs(&self) -> mnemo_records::Result<Vec<StoredJob>> {
        self.0.unfinished_jobs()
    }
    fn last_job_id(&self) -> mnemo_records::Result<i64> {
        self.0.last_job_id()
    }
    fn state(&self, key: &str) -> mnemo_records::Result<Option<serde_json::Value>> {
        self.0.state(key)
    }
    fn state_keys(&self, prefix: &str) -> mnemo_records::Result<Vec<String>> {
        self.0.state_keys(prefix)
    }
    fn put_state(
        &self,
        key: &str,
        value: &serde_json::Value,
        event: Option<&NewEvent>,
    ) -> mnemo_records::Result<Option<Event>> {
        self.0.put_state(key, value, event)
    }
    fn delete_state(&self, key: &str) -> mnemo_records::Result<bool> {
        self.0.delete_state(key)
    }
}

fn scope() -> Scope {
    Scope {
        user_id: Some("crash".into()),
        ..Scope::default()
    }
}

fn text(n: usize) -> String {
    format!(
        "Memory number {n}: the deploy of service {} moved",
        n * 7919 % 1000
    )
}

#[test]
fn a_kill_between_the_two_writes_is_repaired_at_the_next_start() {
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = std::path::Path::new(&dir);
        let records = SqliteRecords::open(&dir.join("memory.sqlite")).unwrap();
        let engine =
            common::engine(&dir.join("data")).with_records(Arc::new(SlowAfterCommit(records)));
        for n in 0.. {
            let added = engine
                .add_memory(&NewMemory {
                    text: text(n),
                    scope: scope(),
                    actor: "child".into(),
                    ..NewMemory::default()
                })
                .unwrap();
            println!("{n} {}", added.id);
        }
        return;
    }
    let cycles: u64 = std::env::var("MNEMO_CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6);
    let mut mended = 0;
    for cycle in 0..cycles {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_kill_between_the_two_writes_is_repaired_at_the_next_start",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read, and kept open until the kill: a closed pipe would end the child at its next
        // line, after its writes, rather than in the middle of them.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wanted = 5 + cycle as usize * 13;
        let mut acknowledged = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some((n, id)) = line.split_once(' ')
                && let Ok(n) = n.parse::<usize>()
            {
                acknowledged.push((n, id.to_owned()));
            }
            if acknowledged.len() >= wanted {
                break;
            }
        }
        // The child is starting its next add; the kill comes a varying moment into it.
        std::thread::sleep(std::time::Duration::from_millis(10 + cycle * 11 % 50));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);

        let (engine, records) = open(dir.path());
        let repaired = engine.repair_memories().unwrap();
        mended += repaired.vectors_written + repaired.vectors_removed;
        for (n, id) in &acknowledged {
            let memory = engine.get_memory(id).unwrap();
            assert_eq!(memory.text, text(*n), "cycle {cycle}");
            let found = engine
                .search_memories(&MemoryQuery {
                    text: text(*n),
                    scope: scope(),
                    limit: 1,
                    ..MemoryQuery::default()
                })
                .unwrap();
            assert_eq!(
                found.first().map(|f| f.memory.id.as_str()),
                Some(id.as_str()),
                "cycle {cycle}: memory {n} is not found by its own text"
            );
        }
        let stored = records
            .list(&ListQuery {
                limit: 100_000,
                ..ListQuery::default()
            })
            .unwrap()
            .len();
        assert!(stored >= acknowledged.len());
        assert_eq!(
            engine.store().count("memories", None).unwrap(),
            stored,
            "cycle {cycle}: one vector per record after repair"
        );
    }
    eprintln!("{cycles} kills; repair wrote or removed {mended} vectors in all");
    assert!(mended > 0, "no kill landed between a record and its vector");
}
