//! The event log and the stored index jobs, the same test bodies on SQLite (a real file) and
//! PostgreSQL (a real server on a free loopback port): a memory's change and its event written
//! together, ids that only grow (also after retention removed the newest), a reader following
//! writers that race on several connections seeing every event once and in order, type
//! filters by family, and jobs kept across reopening.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mnemo_records::{
    Change, Event, EventLog, EventQuery, Memory, MemoryRecords, NewEvent, PostgresRecords,
    RecordsError, Retention, Scope, SqliteRecords, StoredJob, Version,
};
use mnemo_testkit::Postgres;
use serde_json::{Map, json};

type Open<'a> = &'a dyn Fn() -> Arc<dyn MemoryRecords>;

fn memory(id: &str, text: &str) -> Memory {
    Memory {
        id: id.to_owned(),
        text: text.to_owned(),
        metadata: Map::new(),
        scope: Scope {
            user_id: Some("alice".to_owned()),
            ..Scope::default()
        },
        created_at: "2026-12-01T10:00:00.000000Z".to_owned(),
        updated_at: "2026-12-01T10:00:00.000000Z".to_owned(),
        expires_at: None,
        content_hash: format!("hash-of-{text}"),
        author: "agent-a".to_owned(),
    }
}

fn all_after(records: &dyn MemoryRecords, after: i64, types: &[&str]) -> Vec<Event> {
    records
        .events(&EventQuery {
            after,
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            limit: 10_000,
        })
        .unwrap()
}

#[test]
fn sqlite_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.sqlite");
    event_log(&|| Arc::new(SqliteRecords::open(&path).unwrap()));
}

#[test]
fn postgres_event_log() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    event_log(&|| Arc::new(PostgresRecords::connect(&url, 8).unwrap()));
}

fn event_log(open: Open<'_>) {
    let records = open();
    assert_eq!(records.last_event_id().unwrap(), 0);

    // A memory's changes, each with its event, in order.
    records.add(&memory("m1", "first")).unwrap();
    let version = Version {
        text: "first, amended".to_owned(),
        metadata: Map::new(),
        content_hash: "hash-amended".to_owned(),
        expires_at: None,
    };
    records
        .update("m1", &version, "agent-b", "2026-12-01T11:00:00.000000Z")
        .unwrap();
    records
        .remove(
            "m1",
            Change::Deleted,
            "agent-c",
            "2026-12-01T12:00:00.000000Z",
        )
        .unwrap();
    // A refused add writes no event.
    records.add(&memory("m2", "second")).unwrap();
    assert!(records.add(&memory("m3", "second")).is_err());
    let events = all_after(records.as_ref(), 0, &[]);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "memory.added",
            "memory.updated",
            "memory.deleted",
            "memory.added"
        ]
    );
    assert_eq!(events[0].subject.as_deref(), Some("m1"));
    assert_eq!(events[1].data["actor"], "agent-b");
    assert_eq!(events[2].data["user_id"], "alice");
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));

    // Appended events, read by page, by family and by exact type.
    for n in 0..5 {
        records
            .append(&NewEvent::new(
                "job.queued",
                Some(n.to_string()),
                json!({"n": n}),
            ))
            .unwrap();
    }
    records
        .append(&NewEvent::new("job.finished", Some("0".into()), json!({})))
        .unwrap();
    let last = records.last_event_id().unwrap();
    assert_eq!(last, all_after(records.as_ref(), 0, &[]).last().unwrap().id);
    let page = records
        .events(&EventQuery {
            after: events[3].id,
            types: vec![],
            limit: 2,
        })
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].data["n"], 0);
    assert_eq!(all_after(records.as_ref(), 0, &["job"]).len(), 6);
    assert_eq!(all_after(records.as_ref(), 0, &["job.finished"]).len(), 1);
    assert_eq!(
        all_after(records.as_ref(), 0, &["jo"]).len(),
        0,
        "a family is a whole word"
    );
    assert_eq!(
        all_after(records.as_ref(), 0, &["memory.added", "job.finished"]).len(),
        3
    );
    for bad in ["job%", "Job", "", "a'b"] {
        let err = records
            .events(&EventQuery {
                after: 0,
                types: vec![bad.to_owned()],
                limit: 10,
            })
            .expect_err("refused");
        assert!(
            matches!(err, RecordsError::InvalidEventType(_)),
            "{bad}: {err}"
        );
    }

    // Retention by count, then by age; ids go on growing after it.
    assert_eq!(
        records
            .prune(&Retention {
                older_than: None,
                keep_last: Some(3)
            })
            .unwrap(),
        7
    );
    let kept = all_after(records.as_ref(), 0, &[]);
    assert_eq!(kept.len(), 3);
    assert_eq!(kept.last().unwrap().id, last);
    records
        .prune(&Retention {
            older_than: Some("9999-01-01T00:00:00Z".into()),
            keep_last: None,
        })
        .unwrap();
    assert!(all_after(records.as_ref(), 0, &[]).is_empty());
    let next = records
        .append(&NewEvent::new("alert.fired", None, json!({})))
        .unwrap();
    assert!(next.id > last, "{} after {last}", next.id);

    // Jobs kept across reopening; finished ones are not listed as unfinished.
    let job = |id: i64, state: &str| StoredJob {
        id,
        state: state.to_owned(),
        request: json!({"paths": ["plans/"]}),
        error: None,
        created_at: "2026-12-01T10:00:00.000000Z".to_owned(),
        updated_at: "2026-12-01T10:00:00.000000Z".to_owned(),
    };
    let saved = records
        .save_job(
            &job(1, "queued"),
            &NewEvent::new("job.queued", Some("1".into()), json!({})),
        )
        .unwrap();
    assert_eq!(saved.kind, "job.queued");
    records
        .save_job(
            &job(2, "running"),
            &NewEvent::new("job.started", Some("2".into()), json!({})),
        )
        .unwrap();
    records
        .save_job(
            &job(1, "succeeded"),
            &NewEvent::new("job.finished", Some("1".into()), json!({})),
        )
        .unwrap();
    drop(records);
    let records = open();
    let unfinished = records.unfinished_jobs().unwrap();
    assert_eq!(unfinished, vec![job(2, "running")]);
    assert_eq!(records.last_job_id().unwrap(), 2);
    assert!(records.last_event_id().unwrap() > next.id);

    // Writers racing on several connections; a reader following them by `after` sees every
    // event once and in order.
    let start = records.last_event_id().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let records = Arc::clone(&records);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut cursor = start;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = all_after(records.as_ref(), cursor, &[]);
                if let Some(last) = page.last() {
                    cursor = last.id;
                }
                seen.extend(page.into_iter().map(|event| event.id));
                if finished {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let records = Arc::clone(&records);
            std::thread::spawn(move || {
                for n in 0..50 {
                    let event = NewEvent::new("test.race", None, json!({"writer": writer, "n": n}));
                    records.append(&event).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let stored: Vec<i64> = all_after(records.as_ref(), start, &[])
        .iter()
        .map(|event| event.id)
        .collect();
    assert_eq!(stored.len(), 200);
    assert_eq!(seen, stored, "the follower missed or repeated an event");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 200);
}

#[test]
fn sqlite_a_version_1_database_gains_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.sqlite");
    {
        let records = SqliteRecords::open(&path).unwrap();
        records.add(&memory("old", "kept")).unwrap();
    }
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "DROP TABLE events; DROP TABLE jobs; DROP TABLE state; \
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
    drop(connection);
    let records = SqliteRecords::open(&path).unwrap();
    assert!(records.get("old").unwrap().is_some());
    records.add(&memory("new", "added")).unwrap();
    assert_eq!(all_after(&records, 0, &[]).len(), 1);
    records.put_state("k", &json!(1), None).unwrap();
}

#[test]
fn sqlite_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.sqlite");
    state(&|| Arc::new(SqliteRecords::open(&path).unwrap()));
}

#[test]
fn postgres_state() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    state(&|| Arc::new(PostgresRecords::connect(&url, 4).unwrap()));
}

fn state(open: Open<'_>) {
    let records = open();
    assert_eq!(records.state("canaries/tasks").unwrap(), None);
    let before = records.last_event_id().unwrap();
    let event = records
        .put_state(
            "canaries/tasks",
            &json!({"texts": ["a"], "vectors": [[0.25, -1.5e-7]]}),
            Some(&NewEvent::new(
                "drift.pinned",
                Some("tasks".into()),
                json!({}),
            )),
        )
        .unwrap()
        .expect("the event was appended");
    assert!(event.id > before);
    assert_eq!(
        records.put_state("canaries/a_b", &json!(2), None).unwrap(),
        None
    );
    records.put_state("canaries/a%b", &json!(3), None).unwrap();
    records.put_state("canariesXab", &json!(4), None).unwrap();
    records.put_state("webhooks/1", &json!(5), None).unwrap();
    // Replacing keeps one value.
    records.put_state("webhooks/1", &json!(6), None).unwrap();
    drop(records);
    let records = open();
    assert_eq!(
        records.state("canaries/tasks").unwrap(),
        Some(json!({"texts": ["a"], "vectors": [[0.25, -1.5e-7]]}))
    );
    assert_eq!(records.state("webhooks/1").unwrap(), Some(json!(6)));
    // `_` and `%` in a prefix are themselves, not patterns.
    assert_eq!(
        records.state_keys("canaries/").unwrap(),
        ["canaries/a%b", "canaries/a_b", "canaries/tasks"]
    );
    assert_eq!(records.state_keys("canaries/a_").unwrap(), ["canaries/a_b"]);
    assert!(records.delete_state("canaries/a_b").unwrap());
    assert!(!records.delete_state("canaries/a_b").unwrap());
    assert_eq!(records.state("canaries/a_b").unwrap(), None);
}
