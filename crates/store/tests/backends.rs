//! One test body, every backend: the same calls and the same expected answers against the
//! embedded engine and a real Qdrant node (started from the shared server binary; skipped with
//! a message when there is none), so the trait's semantics cannot drift between them.

use mnemo_store::{
    CollectionConfig, Condition, Distance, EmbeddedStore, FieldType, Filter, ModelBinding,
    NearestQuery, OpenOptions, PayloadSelection, Point, PointId, PointSelector, QdrantStore,
    REGISTRY_COLLECTION, Range, RegisteredStore, ScrollRequest, SearchRequest, SparseVector,
    StoreError, Vector, VectorSelection, VectorStore,
};
use mnemo_testkit::Qdrant;
use serde_json::json;

type Body = fn(&dyn Fn() -> Box<dyn VectorStore>);

const BODIES: &[(&str, Body)] = &[
    ("round trip", points_round_trip_and_survive_reopening),
    (
        "bad batch",
        a_bad_point_refuses_its_whole_batch_and_changes_nothing,
    ),
    (
        "partial vectors",
        a_point_may_leave_out_a_named_vector_but_not_all_of_them,
    ),
    (
        "absent vector",
        asking_for_a_vector_the_collection_lacks_is_the_clients_mistake,
    ),
    ("filters", filters_mean_the_same),
    ("snapshots", snapshots_are_taken_listed_and_deleted),
    (
        "keyword idf",
        keyword_scores_weigh_terms_by_their_frequency_in_the_whole_collection,
    ),
    (
        "registry",
        the_registry_keeps_models_and_aliases_beside_the_vectors,
    ),
    (
        "alias changes",
        a_list_of_alias_changes_applies_whole_or_not_at_all,
    ),
    ("point updates", point_updates_keep_what_they_do_not_name),
];

/// Creates, renames and deletes in one list: applied together, each seeing the ones before;
/// a list with one wrong change changes nothing; deleting an absent alias is no error.
fn a_list_of_alias_changes_applies_whole_or_not_at_all(make: &dyn Fn() -> Box<dyn VectorStore>) {
    use mnemo_store::AliasChange;
    use std::sync::Arc;
    let store = RegisteredStore::new(Arc::from(make()));
    for name in ["al-a", "al-b"] {
        store
            .create_collection(name, &CollectionConfig::single(3, Distance::Cosine))
            .unwrap();
    }
    let create = |alias: &str, collection: &str| AliasChange::Create {
        alias: alias.into(),
        collection: collection.into(),
    };
    store
        .change_aliases(&[
            create("first", "al-a"),
            AliasChange::Rename {
                from: "first".into(),
                to: "current".into(),
            },
            create("other", "al-b"),
            AliasChange::Delete {
                alias: "never-made".into(),
            },
        ])
        .unwrap();
    let names = |store: &RegisteredStore| -> Vec<(String, String)> {
        store
            .aliases()
            .into_iter()
            .map(|a| (a.alias, a.collection))
            .collect()
    };
    let expected = vec![
        ("current".to_owned(), "al-a".to_owned()),
        ("other".to_owned(), "al-b".to_owned()),
    ];
    assert_eq!(names(&store), expected);
    let refused = store.change_aliases(&[
        AliasChange::Delete {
            alias: "current".into(),
        },
        create("late", "missing"),
    ]);
    assert!(
        matches!(refused, Err(StoreError::UnknownCollection(_))),
        "{refused:?}"
    );
    let refused = store.change_aliases(&[AliasChange::Rename {
        from: "absent".into(),
        to: "x".into(),
    }]);
    assert!(
        matches!(refused, Err(StoreError::UnknownAlias(_))),
        "{refused:?}"
    );
    assert_eq!(names(&store), expected, "nothing of a refused list applied");
    store
        .change_aliases(&[AliasChange::Delete {
            alias: "current".into(),
        }])
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let store = RegisteredStore::new(Arc::from(make()));
    assert_eq!(
        names(&store),
        vec![("other".to_owned(), "al-b".to_owned())],
        "seen by another opening of the store"
    );
    assert_eq!(store.resolve("current"), "current");
    for name in ["al-a", "al-b"] {
        store.delete_collection(name).unwrap();
    }
}

/// Payload fields set, replaced, removed and cleared, and vectors set and removed, by ids and
/// by filter: the rest of each point kept.
fn point_updates_keep_what_they_do_not_name(make: &dyn Fn() -> Box<dyn VectorStore>) {
    use mnemo_store::PointChange;
    let store = make();
    let config = CollectionConfig::single(2, Distance::Dot).with_sparse_vector("words", false);
    store.create_collection("updates", &config).unwrap();
    let points = (0..5u64)
        .map(|id| Point {
            id: PointId::Num(id),
            vectors: [
                ("".to_owned(), Vector::Dense(vec![id as f32, 1.0])),
                (
                    "words".to_owned(),
                    Vector::Sparse(SparseVector {
                        indices: vec![1],
                        values: vec![1.0],
                    }),
                ),
            ]
            .into(),
            payload: json!({"n": id, "group": id % 2, "tag": "t"}),
        })
        .collect();
    store.upsert("updates", points).unwrap();
    let ids = |ids: &[u64]| PointSelector::Ids(ids.iter().map(|&id| PointId::Num(id)).collect());
    let set = |fields: serde_json::Value| fields.as_object().cloned().unwrap();
    let changed = store
        .update_points(
            "updates",
            &ids(&[0, 1, 99]),
            &PointChange::SetPayload(set(json!({"owner": "ana"}))),
        )
        .unwrap();
    assert_eq!(changed, 2, "the absent id skipped");
    let odd = Filter::must([Condition::matches("group", 1i64)]);
    store
        .update_points(
            "updates",
            &PointSelector::Filter(odd),
            &PointChange::DeletePayloadKeys(vec!["tag".into()]),
        )
        .unwrap();
    store
        .update_points(
            "updates",
            &ids(&[2]),
            &PointChange::OverwritePayload(set(json!({"only": true}))),
        )
        .unwrap();
    store
        .update_points("updates", &ids(&[4]), &PointChange::ClearPayload)
        .unwrap();
    store
        .update_points(
            "updates",
            &ids(&[3]),
            &PointChange::SetVectors([("".to_owned(), Vector::Dense(vec![9.0, 9.0]))].into()),
        )
        .unwrap();
    store
        .update_points(
            "updates",
            &ids(&[0]),
            &PointChange::DeleteVectors(vec!["words".into()]),
        )
        .unwrap();
    let records = store
        .get(
            "updates",
            &(0..5).map(PointId::Num).collect::<Vec<_>>(),
            PayloadSelection::All,
            VectorSelection::All,
        )
        .unwrap();
    let payloads: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::Value::Object(r.payload.clone()))
        .collect();
    assert_eq!(
        payloads,
        vec![
            json!({"n": 0, "group": 0, "tag": "t", "owner": "ana"}),
            json!({"n": 1, "group": 1, "owner": "ana"}),
            json!({"only": true}),
            json!({"n": 3, "group": 1}),
            json!({}),
        ]
    );
    assert_eq!(records[3].vectors[""], Vector::Dense(vec![9.0, 9.0]));
    assert!(
        records[3].vectors.contains_key("words"),
        "the other vector kept"
    );
    assert!(!records[0].vectors.contains_key("words"));
    assert_eq!(records[0].vectors[""], Vector::Dense(vec![0.0, 1.0]));
    store.delete_collection("updates").unwrap();
}

/// Models and aliases kept in the store itself: found again by another opening of it, an
/// alias moved in one write, the registry never listed, and a deleted collection's entries
/// gone with it.
fn the_registry_keeps_models_and_aliases_beside_the_vectors(
    make: &dyn Fn() -> Box<dyn VectorStore>,
) {
    use std::sync::Arc;
    let binding = ModelBinding {
        model: "m".into(),
        dimension: 3,
        pooling: "mean".into(),
        provider: "local".into(),
    };
    {
        let store = RegisteredStore::new(Arc::from(make()));
        for name in ["reg-a", "reg-b"] {
            store
                .create_collection(name, &CollectionConfig::single(3, Distance::Cosine))
                .unwrap();
        }
        store.bind("reg-b", &binding).unwrap();
        store.set_alias("reg", "reg-a").unwrap();
        store
            .upsert(
                "reg",
                vec![Point::dense(
                    1u64,
                    "",
                    vec![1.0, 0.0, 0.0],
                    Default::default(),
                )],
            )
            .unwrap();
        assert_eq!(
            store.count("reg-a", None).unwrap(),
            1,
            "written through the alias"
        );
        assert!(matches!(
            store.set_alias("reg", "missing"),
            Err(StoreError::UnknownCollection(_))
        ));
        store.flush().unwrap();
    }
    let store = RegisteredStore::new(Arc::from(make()));
    assert_eq!(store.resolve("reg"), "reg-a");
    assert_eq!(store.binding("reg-b"), Some(binding.clone()));
    store.set_alias("reg", "reg-b").unwrap();
    assert_eq!(store.binding("reg"), Some(binding));
    let listed = store.list_collections().unwrap();
    assert!(listed.contains(&"reg".to_owned()) && listed.contains(&"reg-a".to_owned()));
    assert!(
        !listed.contains(&"reg-b".to_owned()),
        "behind its alias: {listed:?}"
    );
    assert!(!listed.contains(&REGISTRY_COLLECTION.to_owned()));
    assert!(
        store.delete_collection("reg").unwrap(),
        "the alias's collection"
    );
    assert_eq!(store.resolve("reg"), "reg");
    assert_eq!(store.binding("reg-b"), None);
    assert!(store.delete_collection("reg-a").unwrap());
}

fn run_all(backend: &str, make: &dyn Fn() -> Box<dyn VectorStore>) {
    for (name, body) in BODIES {
        eprintln!("{backend}: {name}");
        body(make);
    }
}

#[test]
fn embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    run_all("embedded", &move || {
        Box::new(EmbeddedStore::open(&path, OpenOptions::default()).unwrap())
    });
}

/// Three shards on the one node: what a cluster spreads over its nodes, and where a shard's
/// own statistics (Qdrant's IDF) would differ from the collection's.
#[test]
fn qdrant_single_node() {
    let Some(qdrant) = Qdrant::single() else {
        return;
    };
    let location = format!("{}?shards=3", qdrant.nodes[0].location());
    let reopen = location.clone();
    run_all("qdrant", &move || {
        Box::new(QdrantStore::open(&reopen, None).unwrap())
    });
    // The terms field the store writes beside a sparse vector is its own: a user's payload
    // may not set it.
    let store = QdrantStore::open(&location, None).unwrap();
    let mut sneaky = point(3);
    sneaky.payload = json!({"__mnemo_terms_bm25": [1, 2]});
    let refused = store.upsert("words", vec![sneaky]).unwrap_err();
    assert!(
        matches!(refused, StoreError::ReservedPayloadKey { index: 0, .. }),
        "{refused}"
    );
}

const DIM: usize = 8;

fn config() -> CollectionConfig {
    CollectionConfig::default()
        .with_vector("dense", DIM, Distance::Cosine)
        .with_sparse_vector("bm25", true)
}

/// A deterministic pseudo-random vector per seed (splitmix64), all different in direction.
fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..DIM)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % 2000) as f32 / 1000.0 - 0.999
        })
        .collect()
}

fn point(id: u64) -> Point {
    let mut p = Point::dense(
        id,
        "dense",
        vector(id),
        json!({"n": id, "status": if id.is_multiple_of(2) { "open" } else { "done" }, "meta": {"tag": format!("t{}", id % 3)}})
            .as_object()
            .unwrap()
            .clone(),
    );
    p.vectors.insert(
        "bm25".into(),
        Vector::Sparse(SparseVector {
            indices: vec![id as u32, 1000],
            values: vec![1.0, 0.5],
        }),
    );
    p
}

fn nearest(v: Vec<f32>) -> NearestQuery {
    NearestQuery {
        using: "dense".into(),
        vector: Vector::Dense(v),
    }
}

fn points_round_trip_and_survive_reopening(make: &dyn Fn() -> Box<dyn VectorStore>) {
    {
        let store = make();
        store.create_collection("tasks", &config()).unwrap();
        assert!(matches!(
            store.create_collection("tasks", &config()),
            Err(StoreError::CollectionExists(_))
        ));
        store
            .create_payload_index("tasks", "status", FieldType::Keyword)
            .unwrap();
        let summary = store
            .upsert("tasks", (0..100).map(point).collect())
            .unwrap();
        assert_eq!(summary.written, 100);
        assert_eq!(store.count("tasks", None).unwrap(), 100);

        let open_filter = Filter::must([Condition::matches("status", "open")]);
        assert_eq!(store.count("tasks", Some(&open_filter)).unwrap(), 50);
        let range = Filter::must([Condition::range(
            "n",
            Range {
                gte: Some(10.0),
                lt: Some(20.0),
                ..Range::default()
            },
        )]);
        assert_eq!(store.count("tasks", Some(&range)).unwrap(), 10);
        let nested = Filter::must([Condition::matches("meta.tag", "t1")]);
        assert_eq!(store.count("tasks", Some(&nested)).unwrap(), 33);
        let null = Filter::must([Condition::is_null("missing")]);
        assert_eq!(
            store.count("tasks", Some(&null)).unwrap(),
            0,
            "is_null matches explicit nulls only"
        );

        let mut request = SearchRequest::new(nearest(vector(42)), 5);
        request.filter = Some(open_filter.clone());
        let hits = store.search("tasks", request).unwrap();
        assert_eq!(hits[0].id, PointId::Num(42));
        assert!(hits.iter().all(|h| h.payload["status"] == "open"));
        assert!((hits[0].score - 1.0).abs() < 1e-5);

        store
            .delete(
                "tasks",
                PointSelector::Ids(vec![PointId::Num(0), PointId::Num(1)]),
            )
            .unwrap();
        store
            .delete(
                "tasks",
                PointSelector::Filter(Filter::must([Condition::matches("n", 99i64)])),
            )
            .unwrap();
        assert_eq!(store.count("tasks", None).unwrap(), 97);
    }
    let store = make();
    assert!(
        store
            .list_collections()
            .unwrap()
            .contains(&"tasks".to_owned())
    );
    assert_eq!(store.count("tasks", None).unwrap(), 97);
    let got = store
        .get(
            "tasks",
            &[PointId::Num(5), PointId::Num(0), PointId::Num(6)],
            PayloadSelection::All,
            VectorSelection::All,
        )
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![PointId::Num(5), PointId::Num(6)]
    );
    let stored = got[0].vectors["dense"].as_dense().unwrap();
    let norm = vector(5).iter().map(|v| v * v).sum::<f32>().sqrt();
    for (a, b) in stored.iter().zip(vector(5)) {
        assert!(
            (a - b / norm).abs() < 1e-6,
            "cosine vectors are stored normalised"
        );
    }
    assert_eq!(got[0].payload["meta"]["tag"], "t2");

    let mut seen = Vec::new();
    let mut request = ScrollRequest::new(30);
    request.with_payload = PayloadSelection::Fields(vec!["n".into()]);
    loop {
        let page = store.scroll("tasks", request.clone()).unwrap();
        seen.extend(page.points.iter().map(|r| r.payload["n"].as_u64().unwrap()));
        assert!(page.points.iter().all(|r| r.payload.len() == 1));
        match page.next {
            Some(next) => request.offset = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (2..99).collect::<Vec<_>>());
    let info = store.collection_info("tasks").unwrap();
    assert_eq!(info.points, 97);
    assert_eq!(
        info.payload_indexes.get("status").map(String::as_str),
        Some("keyword")
    );
    assert!(store.delete_collection("tasks").unwrap());
    assert!(!store.delete_collection("tasks").unwrap());
}

fn a_bad_point_refuses_its_whole_batch_and_changes_nothing(
    make: &dyn Fn() -> Box<dyn VectorStore>,
) {
    let store = make();
    store.create_collection("bad_batch", &config()).unwrap();
    store
        .upsert("bad_batch", (0..10).map(point).collect())
        .unwrap();
    let before = store
        .get(
            "bad_batch",
            &[PointId::Num(3)],
            PayloadSelection::All,
            VectorSelection::All,
        )
        .unwrap();

    let batch = |bad: Point| -> Vec<Point> {
        let mut changed = point(3);
        changed.payload = json!({"n": "changed"});
        vec![changed, point(50), bad]
    };
    let mut wrong_length = point(60);
    wrong_length
        .vectors
        .insert("dense".into(), Vector::Dense(vec![1.0; DIM + 1]));
    let mut nan = point(61);
    nan.vectors
        .insert("dense".into(), Vector::Dense(vec![f32::NAN; DIM]));
    let mut infinite = point(62);
    infinite
        .vectors
        .insert("dense".into(), Vector::Dense(vec![f32::INFINITY; DIM]));
    let mut zero = point(63);
    zero.vectors
        .insert("dense".into(), Vector::Dense(vec![0.0; DIM]));
    let mut not_object = point(64);
    not_object.payload = json!("text");
    let mut unknown = point(65);
    unknown
        .vectors
        .insert("image".into(), Vector::Dense(vec![1.0; DIM]));

    let cases: Vec<(Point, &str)> = vec![
        (
            wrong_length,
            "point 2 (id 60): vector `dense` has 9 dimensions, the collection expects 8",
        ),
        (
            nan,
            "point 2 (id 61): vector `dense` holds a non-finite value (NaN) at position 0",
        ),
        (
            infinite,
            "point 2 (id 62): vector `dense` holds a non-finite value (inf) at position 0",
        ),
        (
            zero,
            "point 2 (id 63): vector `dense` is all zeros, which has no direction under cosine distance",
        ),
        (
            not_object,
            "point 2 (id 64): the payload must be a JSON object, found a string",
        ),
        (
            unknown,
            "point 2 (id 65): the collection has no vector named `image` (it has: `dense`, `bm25`)",
        ),
    ];
    for (bad, message) in cases {
        let err = store.upsert("bad_batch", batch(bad)).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(err.is_client_error());
    }
    let err = store.upsert("nope", vec![point(1)]).unwrap_err();
    assert_eq!(err.to_string(), "collection `nope` does not exist");
    assert_eq!(
        store.count("bad_batch", None).unwrap(),
        10,
        "nothing of a refused batch was written"
    );
    let after = store
        .get(
            "bad_batch",
            &[PointId::Num(3)],
            PayloadSelection::All,
            VectorSelection::All,
        )
        .unwrap();
    assert_eq!(before, after);

    let summary = store
        .upsert("bad_batch", vec![point(70), point(70)])
        .unwrap();
    assert_eq!((summary.written, summary.duplicates_replaced), (1, 1));
    let err = store
        .search("bad_batch", SearchRequest::new(nearest(vec![1.0; 3]), 3))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query 0: the query vector has 3 dimensions, `dense` has 8"
    );
    assert!(matches!(
        store.create_collection("../x", &config()),
        Err(StoreError::InvalidCollectionName(_))
    ));
}

fn a_point_may_leave_out_a_named_vector_but_not_all_of_them(
    make: &dyn Fn() -> Box<dyn VectorStore>,
) {
    let store = make();
    let two = config().with_vector("title", DIM, Distance::Cosine);
    store.create_collection("partial", &two).unwrap();
    let mut with_title = point(1);
    with_title
        .vectors
        .insert("title".into(), Vector::Dense(vector(100)));
    store.upsert("partial", vec![with_title, point(2)]).unwrap();
    assert_eq!(store.count("partial", None).unwrap(), 2);

    let by_title = store
        .search(
            "partial",
            SearchRequest::new(
                NearestQuery {
                    using: "title".into(),
                    vector: Vector::Dense(vector(2)),
                },
                10,
            ),
        )
        .unwrap();
    let ids: Vec<_> = by_title.iter().map(|h| h.id).collect();
    assert_eq!(
        ids,
        [PointId::Num(1)],
        "only the point that has a title vector"
    );
    let by_dense = store
        .search("partial", SearchRequest::new(nearest(vector(2)), 10))
        .unwrap();
    assert_eq!(by_dense.len(), 2);
    assert_eq!(by_dense[0].id, PointId::Num(2));

    let records = store
        .get(
            "partial",
            &[PointId::Num(2)],
            PayloadSelection::None,
            VectorSelection::All,
        )
        .unwrap();
    let names: Vec<_> = records[0].vectors.keys().cloned().collect();
    assert_eq!(names, ["bm25", "dense"]);

    let mut bare = point(3);
    bare.vectors.retain(|name, _| name == "bm25");
    let err = store.upsert("partial", vec![bare]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "point 0 (id 3) has no dense vector; it needs at least one of `dense`, `title`"
    );
    assert_eq!(store.count("partial", None).unwrap(), 2);
}

fn asking_for_a_vector_the_collection_lacks_is_the_clients_mistake(
    make: &dyn Fn() -> Box<dyn VectorStore>,
) {
    let store = make();
    store
        .create_collection("no_vector", &CollectionConfig::single(3, Distance::Cosine))
        .unwrap();
    let only = VectorSelection::Names(vec!["dense".into()]);
    let err = store
        .get(
            "no_vector",
            &[PointId::Num(1)],
            PayloadSelection::None,
            only.clone(),
        )
        .unwrap_err();
    assert!(err.is_client_error());
    assert_eq!(
        err.to_string(),
        "the collection has no vector named `dense` (it has: \"\" (default))"
    );
    let err = store
        .scroll(
            "no_vector",
            ScrollRequest {
                filter: None,
                limit: 10,
                offset: None,
                with_payload: PayloadSelection::None,
                with_vectors: only,
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchVector { .. }), "{err}");
}

fn filters_mean_the_same(make: &dyn Fn() -> Box<dyn VectorStore>) {
    let store = make();
    store.create_collection("filters", &config()).unwrap();
    store
        .upsert("filters", (0..30).map(point).collect())
        .unwrap();
    let count = |filter: Filter| store.count("filters", Some(&filter)).unwrap();
    assert_eq!(
        count(Filter::must([Condition::any(
            "meta.tag",
            ["t0".into(), "t1".into()]
        )])),
        20
    );
    assert_eq!(
        count(Filter::must([Condition::except("status", ["open".into()])])),
        15
    );
    assert_eq!(
        count(Filter::must([Condition::any(
            "n",
            [1i64.into(), 2i64.into(), 40i64.into()]
        )])),
        2
    );
    assert_eq!(
        count(Filter::must_not([Condition::matches("status", "open")])),
        15
    );
    assert_eq!(
        count(Filter::should([
            Condition::matches("n", 3i64),
            Condition::has_id([PointId::Num(4), PointId::Num(99)])
        ])),
        2
    );
    assert_eq!(count(Filter::must([Condition::is_empty("missing")])), 30);
    assert_eq!(
        count(Filter::must([
            Condition::matches("status", "open"),
            Condition::Filter(Filter::must_not([Condition::range(
                "n",
                Range {
                    lt: Some(10.0),
                    ..Range::default()
                }
            )]))
        ])),
        10
    );
    let mixed = Filter::must([Condition::any("n", [1i64.into(), "x".into()])]);
    let err = store.count("filters", Some(&mixed)).unwrap_err();
    assert!(matches!(err, StoreError::BadFilter(_)), "{err}");
    assert!(err.is_client_error());
}

fn snapshots_are_taken_listed_and_deleted(make: &dyn Fn() -> Box<dyn VectorStore>) {
    let store = make();
    store.create_collection("snap", &config()).unwrap();
    store.upsert("snap", (0..20).map(point).collect()).unwrap();
    let taken = store.create_snapshot("snap").unwrap();
    assert_eq!(taken.collection, "snap");
    assert_eq!(taken.points, 20);
    assert!(taken.size > 0);
    let listed = store.list_snapshots("snap").unwrap();
    assert!(listed.iter().any(|s| s.name == taken.name), "{listed:?}");
    assert!(store.delete_snapshot("snap", &taken.name).unwrap());
    assert!(!store.delete_snapshot("snap", &taken.name).unwrap());
    assert!(matches!(
        store.create_snapshot("no_such_collection"),
        Err(StoreError::UnknownCollection(_))
    ));
}

/// BM25's IDF over the whole collection, as the embedded engine computes it, whatever shard a
/// point lands in: the scores are the formula's, to the float.
fn keyword_scores_weigh_terms_by_their_frequency_in_the_whole_collection(
    make: &dyn Fn() -> Box<dyn VectorStore>,
) {
    let store = make();
    store.create_collection("words", &config()).unwrap();
    // Term 7 is in every third point, term 8 in every tenth: 60 points, all with term 1.
    let points: Vec<Point> = (0..60_u64)
        .map(|id| {
            let mut terms = vec![1_u32];
            if id % 3 == 0 {
                terms.push(7);
            }
            if id % 10 == 0 {
                terms.push(8);
            }
            let values = terms.iter().map(|&t| 0.5 + t as f32 / 10.0).collect();
            keyword_point(id, terms, values)
        })
        .collect();
    store.upsert("words", points).unwrap();
    let idf = |df: f32| idf_of(60.0, df);
    let hits = keyword_search(store.as_ref(), vec![7, 8], vec![1.0, 2.0], 30);
    // 20 points with term 7, 6 with term 8, 2 of them with both.
    assert_eq!(hits.len(), 24, "{hits:?}");
    for hit in &hits {
        let PointId::Num(id) = hit.id else {
            panic!("{hit:?}")
        };
        let mut expected = 0.0;
        if id % 3 == 0 {
            expected += 1.0 * idf(20.0) * 1.2;
        }
        if id % 10 == 0 {
            expected += 2.0 * idf(6.0) * 1.3;
        }
        assert!(
            (hit.score - expected).abs() < 1e-4 * expected,
            "point {id}: score {} where the whole collection's IDF gives {expected}",
            hit.score
        );
        assert!(hit.payload.is_empty(), "{:?}", hit.payload);
    }
    // 30 more points, all with term 7: the next query weighs by the new counts at once.
    let more: Vec<Point> = (60..90_u64)
        .map(|id| keyword_point(id, vec![7], vec![1.2]))
        .collect();
    store.upsert("words", more).unwrap();
    let hits = keyword_search(store.as_ref(), vec![7], vec![1.0], 1);
    let expected = idf_of(90.0, 50.0) * 1.2;
    assert!(
        (hits[0].score - expected).abs() < 1e-4 * expected,
        "after the write: score {} where the collection's IDF gives {expected}",
        hits[0].score
    );
    let info = store.collection_info("words").unwrap();
    assert!(info.config.sparse_vectors["bm25"].idf);
    assert!(
        info.payload_indexes.is_empty(),
        "{:?}",
        info.payload_indexes
    );
}

/// Qdrant's and the embedded engine's IDF of a term in `df` of `n` points.
fn idf_of(n: f32, df: f32) -> f32 {
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
}

/// A point of the `words` collection: its dense vector and the keyword vector given.
fn keyword_point(id: u64, indices: Vec<u32>, values: Vec<f32>) -> Point {
    let mut p = Point::dense(id, "dense", vector(id), serde_json::Map::new());
    p.vectors.insert(
        "bm25".into(),
        Vector::Sparse(SparseVector { indices, values }),
    );
    p
}

/// The `limit` best points of `words` for a keyword query.
fn keyword_search(
    store: &dyn VectorStore,
    indices: Vec<u32>,
    values: Vec<f32>,
    limit: usize,
) -> Vec<mnemo_store::ScoredPoint> {
    store
        .search(
            "words",
            SearchRequest::new(
                NearestQuery {
                    using: "bm25".into(),
                    vector: Vector::Sparse(SparseVector { indices, values }),
                },
                limit,
            ),
        )
        .unwrap()
}
