//! Both backends, the same test bodies: SQLite on a real file and PostgreSQL on a real server
//! (started by the test on a free loopback port): what is added, updated and removed, the
//! history kept after deletion, scopes matched exactly (unset fields included), expiry, the
//! schema version check; acknowledged adds surviving kill -9 of a real child process (SQLite)
//! and an immediate stop of the server (PostgreSQL); an unreachable server named.

use mnemo_records::{
    Change, ListQuery, Memory, MemoryRecords, PostgresRecords, RecordsError, Scope, SqliteRecords,
    Version,
};
use mnemo_testkit::Postgres;
use serde_json::{Map, json};

fn scope(user: Option<&str>, agent: Option<&str>, run: Option<&str>) -> Scope {
    Scope {
        user_id: user.map(str::to_owned),
        agent_id: agent.map(str::to_owned),
        run_id: run.map(str::to_owned),
    }
}

fn memory(id: &str, text: &str, scope: Scope, at: &str, expires_at: Option<&str>) -> Memory {
    Memory {
        id: id.to_owned(),
        text: text.to_owned(),
        metadata: json!({"source": "test"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        scope,
        created_at: at.to_owned(),
        updated_at: at.to_owned(),
        expires_at: expires_at.map(str::to_owned),
        content_hash: format!("hash-of-{text}"),
        author: "agent-a".to_owned(),
    }
}

type Open<'a> = &'a dyn Fn() -> Box<dyn MemoryRecords>;

#[test]
fn sqlite_add_update_remove_and_the_history_that_outlives_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.sqlite");
    add_update_remove_and_the_history_that_outlives_them(&|| {
        Box::new(SqliteRecords::open(&path).unwrap())
    });
}

#[test]
fn postgres_add_update_remove_and_the_history_that_outlives_them() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    add_update_remove_and_the_history_that_outlives_them(&|| {
        Box::new(PostgresRecords::connect(&url, 4).unwrap())
    });
}

fn add_update_remove_and_the_history_that_outlives_them(open: Open<'_>) {
    let records = open();
    let alice = scope(Some("alice"), None, None);
    let first = memory(
        "m1",
        "prefers tea",
        alice.clone(),
        "2026-12-01T10:00:00.000000Z",
        None,
    );
    records.add(&first).unwrap();
    assert!(matches!(records.add(&first), Err(RecordsError::Exists(_))));
    assert!(matches!(
        records.add(&memory(
            "m0",
            "x",
            Scope::default(),
            "2026-12-01T10:00:00.000000Z",
            None
        )),
        Err(RecordsError::NoScope)
    ));

    // A second writer of the same text in the same scope (another id) is refused by the
    // database itself, so two racing adds cannot both land; an empty scope field is refused.
    let racing = memory(
        "m1-twin",
        "prefers tea",
        alice.clone(),
        "2026-12-01T10:00:01.000000Z",
        None,
    );
    assert!(matches!(records.add(&racing), Err(RecordsError::Exists(_))));
    let blank = memory(
        "m9",
        "x",
        scope(Some(" "), None, None),
        "2026-12-01T10:00:00.000000Z",
        None,
    );
    assert!(matches!(
        records.add(&blank),
        Err(RecordsError::EmptyScopeField("user_id"))
    ));
    let long = "u".repeat(300);
    assert!(matches!(
        records.add(&memory(
            "m8",
            "x",
            scope(Some(&long), None, None),
            "2026-12-01T10:00:00.000000Z",
            None
        )),
        Err(RecordsError::ScopeFieldTooLong {
            field: "user_id",
            bytes: 300
        })
    ));
    let elsewhere = memory(
        "m1-bob",
        "prefers tea",
        scope(Some("bob"), None, None),
        "2026-12-01T10:00:01.000000Z",
        None,
    );
    records.add(&elsewhere).unwrap();

    // The same text in the same scope is found; in a wider or narrower scope it is not.
    let found = records.find_same(&alice, "hash-of-prefers tea").unwrap();
    assert_eq!(found.as_ref().map(|m| m.id.as_str()), Some("m1"));
    let alices_agent = scope(Some("alice"), Some("planner"), None);
    assert!(
        records
            .find_same(&alices_agent, "hash-of-prefers tea")
            .unwrap()
            .is_none()
    );

    let mut metadata = Map::new();
    metadata.insert("source".into(), json!("correction"));
    let (before, after) = records
        .update(
            "m1",
            &Version {
                text: "prefers green tea".into(),
                metadata,
                content_hash: "hash-of-prefers green tea".into(),
                expires_at: None,
            },
            "agent-b",
            "2026-12-02T10:00:00.000000Z",
        )
        .unwrap()
        .expect("m1 exists");
    assert_eq!(before.text, "prefers tea");
    assert_eq!(after.text, "prefers green tea");
    assert_eq!(after.created_at, first.created_at);
    assert_eq!(records.get("m1").unwrap(), Some(after.clone()));
    assert!(
        records
            .update(
                "nope",
                &Version {
                    text: String::new(),
                    metadata: Map::new(),
                    content_hash: String::new(),
                    expires_at: None,
                },
                "x",
                "y"
            )
            .unwrap()
            .is_none()
    );

    let removed = records
        .remove(
            "m1",
            Change::Deleted,
            "alice",
            "2026-12-03T10:00:00.000000Z",
        )
        .unwrap();
    assert_eq!(removed, Some(after));
    assert_eq!(records.get("m1").unwrap(), None);
    assert_eq!(
        records
            .remove("m1", Change::Deleted, "alice", "later")
            .unwrap(),
        None
    );

    // Reopened: the history is all there, in order, with before and after.
    drop(records);
    let records = open();
    let history = records.history("m1").unwrap();
    let changes: Vec<Change> = history.iter().map(|entry| entry.change).collect();
    assert_eq!(changes, [Change::Added, Change::Updated, Change::Deleted]);
    assert!(history.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert_eq!(history[0].before, None);
    assert_eq!(history[1].before.as_ref().unwrap()["text"], "prefers tea");
    assert_eq!(
        history[1].after.as_ref().unwrap()["text"],
        "prefers green tea"
    );
    assert_eq!(history[1].actor, "agent-b");
    assert_eq!(
        history[2].before.as_ref().unwrap()["metadata"]["source"],
        "correction"
    );
    assert_eq!(history[2].after, None);
}

#[test]
fn sqlite_lists_by_scope_fields_and_leaves_out_the_expired() {
    let dir = tempfile::tempdir().unwrap();
    lists_by_scope_fields_and_leaves_out_the_expired(
        &SqliteRecords::open(&dir.path().join("memory.sqlite")).unwrap(),
    );
}

#[test]
fn postgres_lists_by_scope_fields_and_leaves_out_the_expired() {
    let Some(server) = Postgres::start() else {
        return;
    };
    lists_by_scope_fields_and_leaves_out_the_expired(
        &PostgresRecords::connect(&server.url(), 4).unwrap(),
    );
}

fn lists_by_scope_fields_and_leaves_out_the_expired(records: &dyn MemoryRecords) {
    let at = "2026-12-01T10:00:00.000000Z";
    records
        .add(&memory("a", "one", scope(Some("u1"), None, None), at, None))
        .unwrap();
    records
        .add(&memory(
            "b",
            "two",
            scope(Some("u1"), Some("bot"), None),
            at,
            Some("2026-12-05T00:00:00.000000Z"),
        ))
        .unwrap();
    records
        .add(&memory(
            "c",
            "three",
            scope(Some("u1"), Some("bot"), Some("r9")),
            at,
            None,
        ))
        .unwrap();
    records
        .add(&memory(
            "d",
            "four",
            scope(Some("u2"), None, None),
            at,
            None,
        ))
        .unwrap();
    let ids = |query: ListQuery| -> Vec<String> {
        records
            .list(&query)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect()
    };
    let all_of_u1 = ListQuery {
        user_id: Some("u1".into()),
        limit: 100,
        ..ListQuery::default()
    };
    assert_eq!(ids(all_of_u1.clone()), ["a", "b", "c"]);
    assert_eq!(
        ids(ListQuery {
            agent_id: Some("bot".into()),
            ..all_of_u1.clone()
        }),
        ["b", "c"]
    );
    assert_eq!(
        ids(ListQuery {
            now: Some("2026-12-06T00:00:00.000000Z".into()),
            ..all_of_u1.clone()
        }),
        ["a", "c"],
        "an expired memory is never returned, even before the sweep"
    );
    assert_eq!(
        ids(ListQuery {
            limit: 1,
            offset: 1,
            ..all_of_u1
        }),
        ["b"]
    );
    assert_eq!(
        records.expired("2026-12-04T00:00:00.000000Z", 10).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        records.expired("2026-12-05T00:00:00.000000Z", 10).unwrap(),
        ["b"]
    );
    records
        .remove("b", Change::Expired, "sweep", "2026-12-05T00:00:01.000000Z")
        .unwrap();
    assert_eq!(
        records.history("b").unwrap().last().map(|e| e.change),
        Some(Change::Expired)
    );
}

#[test]
fn sqlite_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.sqlite");
    drop(SqliteRecords::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    drop(connection);
    let err = SqliteRecords::open(&path).err().expect("refused");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// The child adds memories in a loop and prints each id once `add` returned; the parent
/// kills it with SIGKILL at a random moment, reopens, and finds every printed id.
#[test]
fn postgres_another_schema_version_is_refused_and_an_unreachable_server_is_named() {
    let Some(server) = Postgres::start() else {
        return;
    };
    drop(PostgresRecords::connect(&server.url(), 1).unwrap());
    // Two servers starting together migrate once: the second finds the schema current.
    drop(PostgresRecords::connect(&server.url(), 1).unwrap());
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).unwrap();
    client
        .execute("UPDATE mnemo_schema SET version = 99", &[])
        .unwrap();
    let err = PostgresRecords::connect(&server.url(), 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("schema version 99"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = PostgresRecords::connect(&format!("postgres://mnemo@127.0.0.1:{port}/memories"), 1)
        .err()
        .expect("unreachable");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}/memories")),
        "{message}"
    );
    let err = PostgresRecords::connect("mysql://nope", 1)
        .err()
        .expect("not a PostgreSQL URL");
    assert!(err.to_string().contains("postgres://"), "{err}");
}

/// Adds acknowledged by PostgreSQL are there after the server stops as a crash would
/// (`pg_ctl stop -m immediate`: no checkpoint, recovery from its write-ahead log).
#[test]
fn postgres_acknowledged_adds_survive_an_immediate_stop() {
    let Some(mut server) = Postgres::start() else {
        return;
    };
    let records = PostgresRecords::connect(&server.url(), 2).unwrap();
    for n in 0..200 {
        records
            .add(&memory(
                &format!("m{n}"),
                &format!("text {n}"),
                scope(Some("u"), None, None),
                "2026-12-01T00:00:00.000000Z",
                None,
            ))
            .unwrap();
    }
    drop(records);
    server.kill();
    server.restart();
    let records = PostgresRecords::connect(&server.url(), 2).unwrap();
    for n in 0..200 {
        let id = format!("m{n}");
        assert!(records.get(&id).unwrap().is_some(), "{id} was lost");
        assert_eq!(records.history(&id).unwrap().len(), 1);
    }
}

#[test]
fn acknowledged_adds_survive_kill_9() {
    if let Ok(path) = std::env::var("MNEMO_RECORDS_CHILD") {
        let records = SqliteRecords::open(std::path::Path::new(&path)).unwrap();
        for n in 0.. {
            let id = format!("m{n}");
            records
                .add(&memory(
                    &id,
                    &format!("text {n}"),
                    scope(Some("u"), None, None),
                    "2026-12-01T00:00:00.000000Z",
                    None,
                ))
                .unwrap();
            println!("{id}");
        }
        return;
    }
    use std::io::{BufRead, BufReader};
    for cycle in 0..5u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.sqlite");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "acknowledged_adds_survive_kill_9",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MNEMO_RECORDS_CHILD", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let wanted = 20 + cycle as usize * 37;
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with('m') {
                acknowledged.push(line);
            }
            if acknowledged.len() >= wanted {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let records = SqliteRecords::open(&path).unwrap();
        for id in &acknowledged {
            assert!(
                records.get(id).unwrap().is_some(),
                "cycle {cycle}: {id} was lost"
            );
            assert_eq!(records.history(id).unwrap().len(), 1);
        }
    }
}
