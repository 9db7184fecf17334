//! Agents' memories on the real model, the embedded store and SQLite: deduplication that never
//! drops a write, visibility by scope, update with history, forgetting, expiry that hides
//! before the sweep, and repair of the vector store after a crash between the two writes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mnemo_engine::memory::{AddStatus, ExportedMemory, MemoryQuery, NewMemory};
use mnemo_engine::{Engine, EngineError, SearchMode};
use mnemo_records::{Change, Memory, MemoryRecords, Scope, SqliteRecords, timestamp};
use mnemo_store::{Point, PointId};
use serde_json::{Map, json};

fn scope(user: Option<&str>, agent: Option<&str>, run: Option<&str>) -> Scope {
    Scope {
        user_id: user.map(str::to_owned),
        agent_id: agent.map(str::to_owned),
        run_id: run.map(str::to_owned),
    }
}

fn new(text: &str, scope: Scope) -> NewMemory {
    NewMemory {
        text: text.to_owned(),
        scope,
        actor: "test".to_owned(),
        ..NewMemory::default()
    }
}

fn engine(dir: &std::path::Path) -> (Engine, Arc<SqliteRecords>) {
    let records = Arc::new(SqliteRecords::open(&dir.join("memory.sqlite")).unwrap());
    let engine = common::engine(&dir.join("data")).with_records(records.clone());
    (engine, records)
}

fn search(engine: &Engine, text: &str, scope: Scope, wider: bool) -> Vec<String> {
    engine
        .search_memories(&MemoryQuery {
            text: text.to_owned(),
            scope,
            wider,
            limit: 10,
            ..MemoryQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|found| found.memory.text)
        .collect()
}

#[test]
fn same_text_is_one_memory_and_near_duplicates_are_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    let alice = scope(Some("alice"), None, None);
    let first = engine
        .add_memory(&new(
            "The standup meeting is at 10:00 every Monday",
            alice.clone(),
        ))
        .unwrap();
    assert_eq!(first.status, AddStatus::Added);
    let again = engine
        .add_memory(&new(
            "The standup meeting is at 10:00 every Monday",
            alice.clone(),
        ))
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.status),
        (first.id.as_str(), AddStatus::Unchanged)
    );
    // Digits barely move a sentence embedding: a 0.9 dedup would have dropped this write.
    let moved = engine
        .add_memory(&new(
            "The standup meeting is at 11:00 every Monday",
            alice.clone(),
        ))
        .unwrap();
    assert_eq!(moved.status, AddStatus::Added);
    assert_ne!(moved.id, first.id);
    assert_eq!(
        moved.similar.first().map(|s| s.id.as_str()),
        Some(first.id.as_str())
    );
    assert!(moved.similar[0].score >= 0.9, "{:?}", moved.similar);
    // The same text in another scope is another memory.
    let bob = engine
        .add_memory(&new(
            "The standup meeting is at 10:00 every Monday",
            scope(Some("bob"), None, None),
        ))
        .unwrap();
    assert_eq!(bob.status, AddStatus::Added);
    assert!(
        bob.similar.is_empty(),
        "alice's memories are not bob's: {:?}",
        bob.similar
    );
    let empty = engine.add_memory(&new("  ", alice)).unwrap_err();
    assert!(matches!(empty, EngineError::InvalidQuery(_)), "{empty}");
    let nobody = engine.add_memory(&new("x", Scope::default())).unwrap_err();
    assert!(
        nobody.to_string().contains("at least one of user_id"),
        "{nobody}"
    );
}

#[test]
fn racing_adds_of_one_text_make_one_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    let engine = Arc::new(engine);
    let start = Arc::new(std::sync::Barrier::new(6));
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let (engine, start) = (Arc::clone(&engine), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                engine
                    .add_memory(&new(
                        "Erin reviews every migration",
                        scope(Some("erin"), None, None),
                    ))
                    .unwrap()
            })
        })
        .collect();
    let added: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(added.iter().all(|a| a.id == added[0].id), "{added:?}");
    assert_eq!(
        added
            .iter()
            .filter(|a| a.status == AddStatus::Added)
            .count(),
        1
    );
    assert_eq!(
        search(
            &engine,
            "who reviews migrations",
            scope(Some("erin"), None, None),
            false
        )
        .len(),
        1
    );
}

#[test]
fn each_scope_sees_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    for (text, owner) in [
        (
            "Alice prefers tea to coffee",
            scope(Some("alice"), None, None),
        ),
        (
            "The planner agent drafts plans in French",
            scope(Some("alice"), Some("planner"), None),
        ),
        (
            "Run 7 is reviewing the cache of embeddings",
            scope(Some("alice"), Some("planner"), Some("run-7")),
        ),
        ("Bob prefers coffee to tea", scope(Some("bob"), None, None)),
    ] {
        engine.add_memory(&new(text, owner)).unwrap();
    }
    let seen = |scope: Scope, wider: bool| {
        let mut texts = search(&engine, "what does someone prefer to drink", scope, wider);
        texts.sort();
        texts
    };
    assert_eq!(
        seen(scope(Some("alice"), None, None), false),
        ["Alice prefers tea to coffee"]
    );
    assert_eq!(
        seen(scope(Some("alice"), Some("planner"), None), false),
        [
            "Alice prefers tea to coffee",
            "The planner agent drafts plans in French"
        ]
    );
    assert_eq!(
        seen(scope(Some("alice"), Some("reviewer"), None), false),
        ["Alice prefers tea to coffee"],
        "another agent of the user sees the user's memories, not the planner's"
    );
    assert_eq!(
        seen(scope(Some("alice"), Some("planner"), Some("run-7")), false).len(),
        3
    );
    assert_eq!(
        seen(scope(Some("alice"), None, None), true).len(),
        3,
        "wider: all of alice's"
    );
    assert_eq!(
        seen(scope(Some("bob"), None, None), true),
        ["Bob prefers coffee to tea"]
    );
}

#[test]
fn update_delete_forget_and_expire_keep_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    let carol = scope(Some("carol"), None, None);
    let added = engine
        .add_memory(&NewMemory {
            metadata: json!({"topic": "diet"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..new("Carol is vegetarian", carol.clone())
        })
        .unwrap();
    let mut metadata = Map::new();
    metadata.insert("topic".into(), json!("diet"));
    metadata.insert("confirmed".into(), json!(true));
    engine
        .update_memory(&added.id, Some("Carol is vegan"), Some(metadata), "carol")
        .unwrap();
    assert_eq!(
        search(&engine, "what does Carol eat", carol.clone(), false),
        ["Carol is vegan"]
    );
    let other = engine
        .add_memory(&new("Carol likes hiking", carol.clone()))
        .unwrap();
    let clash = engine
        .update_memory(&other.id, Some("Carol is vegan"), None, "carol")
        .unwrap_err();
    assert!(matches!(clash, EngineError::InvalidQuery(_)), "{clash}");
    engine.delete_memory(&other.id, "carol").unwrap();
    let filtered = engine
        .search_memories(&MemoryQuery {
            text: "what does Carol eat".into(),
            scope: carol.clone(),
            filter: Some(mnemo_store::Filter::must([
                mnemo_store::Condition::matches("confirmed", true),
            ])),
            limit: 5,
            ..MemoryQuery::default()
        })
        .unwrap();
    assert_eq!(filtered.len(), 1, "a metadata filter");

    engine.delete_memory(&added.id, "carol").unwrap();
    assert!(search(&engine, "what does Carol eat", carol.clone(), false).is_empty());
    assert!(matches!(
        engine.get_memory(&added.id),
        Err(EngineError::UnknownMemory(_))
    ));
    let changes: Vec<Change> = engine
        .memory_history(&added.id)
        .unwrap()
        .into_iter()
        .map(|entry| entry.change)
        .collect();
    assert_eq!(changes, [Change::Added, Change::Updated, Change::Deleted]);

    for text in ["Carol lives in Lyon", "Carol works on the search API"] {
        engine.add_memory(&new(text, carol.clone())).unwrap();
    }
    engine
        .add_memory(&new(
            "Carol's planner agent uses French",
            scope(Some("carol"), Some("planner"), None),
        ))
        .unwrap();
    assert_eq!(
        engine
            .delete_memories(&scope(Some("carol"), None, None), None, "admin")
            .unwrap(),
        3
    );
    assert!(search(&engine, "Carol", carol.clone(), true).is_empty());

    let fleeting = engine
        .add_memory(&NewMemory {
            expires_at: Some(Utc::now() + chrono::Duration::milliseconds(1500)),
            ..new("Carol is in a meeting until noon", carol.clone())
        })
        .unwrap();
    assert_eq!(
        search(&engine, "Is Carol busy", carol.clone(), false).len(),
        1
    );
    std::thread::sleep(Duration::from_millis(1700));
    assert!(
        search(&engine, "Is Carol busy", carol.clone(), false).is_empty(),
        "an expired memory is never returned, even before the sweep"
    );
    assert!(matches!(
        engine.get_memory(&fleeting.id),
        Err(EngineError::UnknownMemory(_))
    ));
    assert_eq!(engine.sweep_expired_memories(Utc::now()).unwrap(), 1);
    assert_eq!(
        engine
            .memory_history(&fleeting.id)
            .unwrap()
            .last()
            .map(|e| e.change),
        Some(Change::Expired)
    );
}

#[test]
fn repair_mends_a_crash_between_the_two_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, records) = engine(dir.path());
    let dave = scope(Some("dave"), None, None);
    engine
        .add_memory(&new("Dave maintains the Qdrant cluster", dave.clone()))
        .unwrap();
    // A record written without its vector (killed before the second write) ...
    let at = timestamp(Utc::now());
    let lost = Memory {
        id: uuid::Uuid::new_v4().to_string(),
        text: "Dave is on call this week".into(),
        metadata: Map::new(),
        scope: dave.clone(),
        created_at: at.clone(),
        updated_at: at,
        expires_at: None,
        content_hash: blake3::hash(b"Dave is on call this week")
            .to_hex()
            .to_string(),
        author: "test".into(),
    };
    records.add(&lost).unwrap();
    // ... and a vector whose record is gone (killed between deleting the two).
    let orphan = uuid::Uuid::new_v4();
    let vector = engine
        .embedder()
        .embed(&["Dave left the team"])
        .unwrap()
        .row(0)
        .to_vec();
    let payload =
        json!({"user_id": "dave", "agent_id": null, "run_id": null, "expires_at_seconds": null});
    engine
        .store()
        .upsert(
            "memories",
            vec![Point::dense(
                PointId::Uuid(orphan),
                "",
                vector,
                payload.as_object().cloned().unwrap_or_default(),
            )],
        )
        .unwrap();
    assert!(
        !search(&engine, "who is on call", dave.clone(), false).contains(&lost.text),
        "a record without a vector cannot be found"
    );
    let repaired = engine.repair_memories().unwrap();
    assert_eq!((repaired.vectors_written, repaired.vectors_removed), (1, 1));
    assert!(search(&engine, "who is on call", dave.clone(), false).contains(&lost.text));
    assert_eq!(engine.store().count("memories", None).unwrap(), 2);
    let again = engine.repair_memories().unwrap();
    assert_eq!((again.vectors_written, again.vectors_removed), (0, 0));
}

#[test]
fn hybrid_and_time_range_searches_and_forgetting_by_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    let team = scope(Some("team"), None, None);
    for (text, topic) in [
        ("Deploys happen on Friday afternoons", "ops"),
        (
            "The invoice service PR-4821 needs a second review",
            "billing",
        ),
        ("Refunds are computed by the invoice service", "billing"),
    ] {
        let mut metadata = Map::new();
        metadata.insert("topic".into(), json!(topic));
        engine
            .add_memory(&NewMemory {
                metadata,
                ..new(text, team.clone())
            })
            .unwrap();
    }
    let ask = |text: &str, mode: SearchMode| -> Vec<String> {
        engine
            .search_memories(&MemoryQuery {
                text: text.to_owned(),
                scope: team.clone(),
                mode,
                limit: 1,
                ..MemoryQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|found| found.memory.text)
            .collect()
    };
    // An identifier the model barely sees; the keywords find it.
    assert_eq!(
        ask("PR-4821", SearchMode::Keyword),
        ["The invoice service PR-4821 needs a second review"]
    );
    assert_eq!(
        ask("PR-4821 review", SearchMode::Hybrid),
        ["The invoice service PR-4821 needs a second review"]
    );

    let in_range = |after: chrono::DateTime<Utc>, before: chrono::DateTime<Utc>| {
        engine
            .search_memories(&MemoryQuery {
                text: "deploys".into(),
                scope: team.clone(),
                created_after: Some(after),
                created_before: Some(before),
                limit: 10,
                ..MemoryQuery::default()
            })
            .unwrap()
            .len()
    };
    let hour = chrono::Duration::hours(1);
    assert_eq!(in_range(Utc::now() - hour, Utc::now() + hour), 3);
    assert_eq!(in_range(Utc::now() + hour, Utc::now() + hour * 2), 0);

    let billing = mnemo_store::Filter::must([mnemo_store::Condition::matches("topic", "billing")]);
    assert_eq!(
        engine
            .delete_memories(&Scope::default(), Some(&billing), "admin")
            .unwrap(),
        2
    );
    assert_eq!(
        search(&engine, "invoice", team.clone(), false),
        ["Deploys happen on Friday afternoons"]
    );
    assert!(matches!(
        engine.delete_memories(&Scope::default(), None, "admin"),
        Err(EngineError::Records(mnemo_records::RecordsError::NoScope))
    ));
    let mut huge = Map::new();
    huge.insert("notes".into(), json!("x".repeat(20_000)));
    let refused = engine
        .add_memory(&NewMemory {
            metadata: huge,
            ..new("A memory with too much metadata", team.clone())
        })
        .unwrap_err();
    assert!(refused.to_string().contains("metadata"), "{refused}");
}

#[test]
fn an_export_imports_elsewhere_with_its_ids_times_and_history() {
    let source_dir = tempfile::tempdir().unwrap();
    let (source, _) = engine(source_dir.path());
    let erin = scope(Some("erin"), Some("planner"), None);
    let kept = source
        .add_memory(&new("Erin owns the migration plan", erin.clone()))
        .unwrap();
    source
        .update_memory(
            &kept.id,
            Some("Erin owns the migration plan v2"),
            None,
            "erin",
        )
        .unwrap();
    let gone = source
        .add_memory(&new("Erin is on leave in May", erin.clone()))
        .unwrap();
    source.delete_memory(&gone.id, "erin").unwrap();

    let mut lines = Vec::new();
    let count = source
        .export_memories(|item| {
            lines.push(serde_json::to_string(&item).unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(count, 1, "a deleted memory is not exported");
    let exported: Vec<ExportedMemory> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();

    let target_dir = tempfile::tempdir().unwrap();
    let (target, _) = engine(target_dir.path());
    let imported = target.import_memories(exported.clone()).unwrap();
    assert_eq!((imported.imported, imported.skipped), (1, 0));
    let again = target.import_memories(exported.clone()).unwrap();
    assert_eq!((again.imported, again.skipped), (0, 1));
    let memory = target.get_memory(&kept.id).unwrap();
    assert_eq!(memory, source.get_memory(&kept.id).unwrap());
    let changes: Vec<Change> = target
        .memory_history(&kept.id)
        .unwrap()
        .into_iter()
        .map(|entry| entry.change)
        .collect();
    assert_eq!(changes, [Change::Added, Change::Updated]);
    assert_eq!(
        search(&target, "who owns the migration", erin.clone(), false),
        ["Erin owns the migration plan v2"]
    );

    let mut broken = exported[0].clone();
    broken.memory.id = "not-a-uuid".into();
    let refused = target.import_memories(vec![broken]).unwrap_err();
    assert!(refused.to_string().contains("not a UUID"), "{refused}");
}
