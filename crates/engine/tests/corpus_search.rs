//! The acceptance run: index the shared corpus with the real model into a real store, then
//! search for 50 tasks picked at random (seeded) by their exact titles, for identifiers, and
//! for similar and duplicate tasks. Prints the hit rates.

mod common;

use std::collections::HashMap;

use std::sync::Arc;

use mnemo_engine::{IndexOptions, Quiet, SearchMode, SearchOptions, parse_filter};
use mnemo_store::{EmbeddedStore, OpenOptions, PayloadSelection, QdrantStore, ScrollRequest};
use mnemo_testkit::Qdrant;
use mnemo_testkit::shared_dir;
use mnemo_transfer::{MigrateOptions, NoProgress, migrate};
use serde_json::Value;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hybrid search's first answer (a list of at most one hit).
fn hybrid_first(engine: &mnemo_engine::Engine, query: &str) -> Vec<mnemo_store::ScoredPoint> {
    let options = SearchOptions {
        limit: 1,
        mode: SearchMode::Hybrid,
        ..SearchOptions::default()
    };
    engine.search(query, &options).unwrap()
}

fn same_title(a: &str, b: &str) -> bool {
    let key = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    key(a) == key(b)
}

fn text(payload: &serde_json::Map<String, Value>, field: &str) -> String {
    payload
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_corpus_answers_its_own_titles_and_identifiers() {
    let embedder = common::embedder();
    let corpus = shared_dir().join("corpus");
    let data = tempfile::tempdir().unwrap();
    let engine = common::engine_on(
        Arc::new(EmbeddedStore::open(data.path(), OpenOptions::default()).unwrap()),
        &embedder,
    );
    let options = IndexOptions {
        passages: false,
        ..IndexOptions::default()
    };
    let cold = engine
        .index(std::slice::from_ref(&corpus), &options, &Quiet)
        .unwrap();
    println!(
        "cold index: {} files, {} tasks, {} embedded, {} reused; {:.1} s (parse {:.2} s, embed {:.1} s, store {:.2} s, index build {:.1} s)",
        cold.files,
        cold.tasks,
        cold.embedded,
        cold.reused,
        cold.total_seconds,
        cold.parse_seconds,
        cold.embed_seconds,
        cold.store_seconds,
        cold.optimize_seconds
    );
    assert!(cold.tasks > 30_000, "{} tasks", cold.tasks);
    assert_eq!(cold.written, cold.tasks);
    assert_eq!(engine.store().count("tasks", None).unwrap(), cold.tasks);

    let warm = engine
        .index(std::slice::from_ref(&corpus), &options, &Quiet)
        .unwrap();
    println!(
        "warm re-index: {:.2} s, {} files unchanged",
        warm.total_seconds, warm.files_unchanged
    );
    assert_eq!((warm.embedded, warm.reused, warm.removed), (0, 0, 0));
    assert_eq!(warm.unchanged, cold.tasks);

    let reference = check_answers(&engine, &corpus, "embedded", None);

    // The same acceptance on a Qdrant node and on a 3-node cluster (3 shards, 2 copies of
    // each). The vectors are not embedded again: the collection is copied there by
    // migrate-store's code, then re-indexing through the engine must find nothing to do.
    let qdrant_runs: Vec<(&str, StartQdrant)> = vec![
        (
            "qdrant, 1 node",
            Box::new(|| {
                Qdrant::single().map(|q| {
                    let location = q.nodes[0].location();
                    (q, location)
                })
            }),
        ),
        (
            "qdrant, 3 nodes",
            Box::new(|| {
                Qdrant::cluster(3).map(|q| {
                    let location = format!("{}?shards=3&replication=2", q.location());
                    (q, location)
                })
            }),
        ),
    ];
    for (label, start) in qdrant_runs {
        let starting = std::time::Instant::now();
        let Some((_qdrant, location)) = start() else {
            return;
        };
        println!(
            "{label}: started in {:.1} s",
            starting.elapsed().as_secs_f64()
        );
        let remote = Arc::new(QdrantStore::open(&location, None).unwrap());
        let started = std::time::Instant::now();
        let copied = migrate(
            engine.store(),
            remote.as_ref(),
            &MigrateOptions {
                collections: vec!["tasks".into()],
                ..MigrateOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(copied[0].target_points, cold.tasks);
        assert_eq!(copied[0].identical, copied[0].sampled);
        println!(
            "{label}: copied {} tasks in {:.1} s ({} sampled, identical bit for bit)",
            copied[0].points,
            started.elapsed().as_secs_f64(),
            copied[0].sampled
        );
        let on_qdrant = common::engine_on(remote, &embedder);
        let started = std::time::Instant::now();
        let warm = on_qdrant
            .index(std::slice::from_ref(&corpus), &options, &Quiet)
            .unwrap();
        assert_eq!(
            (warm.embedded, warm.reused, warm.removed),
            (0, 0, 0),
            "{label}"
        );
        assert_eq!(warm.unchanged, cold.tasks, "{label}");
        println!(
            "{label}: warm re-index {:.1} s",
            started.elapsed().as_secs_f64()
        );
        check_answers(&on_qdrant, &corpus, label, Some(&reference));
    }
}

/// A Qdrant deployment started, and the location to give the store.
type StartQdrant = Box<dyn Fn() -> Option<(Qdrant, String)>>;

/// What one store found, for the others to be compared with.
struct Answers {
    /// How many duplicate clusters `SMALL_FOLDER` holds.
    small_folder_clusters: usize,
}

/// The folder of plans whose duplicates every store computes (about 2,200 tasks): the whole
/// of `consolidated` (21,000) is searched on the embedded store only, since on a server it
/// costs a minute of CI per deployment for the same check.
const SMALL_FOLDER: &str = "email-sender-1/roadmaps/plans/completed";

/// Titles, numbers and file names found; similar and filtered search; duplicates, the same
/// as `reference`'s when given.
fn check_answers(
    engine: &mnemo_engine::Engine,
    corpus: &std::path::Path,
    label: &str,
    reference: Option<&Answers>,
) -> Answers {
    println!("--- {label}");
    let started = std::time::Instant::now();
    // Every task with a title, by id.
    let mut tasks: Vec<serde_json::Map<String, Value>> = Vec::new();
    let mut request = ScrollRequest::new(2048);
    request.with_payload = PayloadSelection::Fields(
        ["id", "title", "number", "file", "line"]
            .map(String::from)
            .into(),
    );
    loop {
        let page = engine.store().scroll("tasks", request.clone()).unwrap();
        tasks.extend(
            page.points
                .into_iter()
                .map(|r| r.payload)
                .filter(|p| !text(p, "title").trim().is_empty()),
        );
        match page.next {
            Some(next) => request.offset = Some(next),
            None => break,
        }
    }
    // Point ids hash absolute paths: ordered by place in the corpus instead, the seeded sample
    // is the same wherever the corpus lies.
    let root = corpus.canonicalize().unwrap();
    let place = |task: &serde_json::Map<String, Value>| {
        let file = text(task, "file");
        let relative = std::path::Path::new(&file)
            .strip_prefix(&root)
            .map(|p| p.display().to_string())
            .unwrap_or(file.clone());
        (relative, task.get("line").and_then(Value::as_u64))
    };
    tasks.sort_by_cached_key(place);
    let mut title_count: HashMap<String, usize> = HashMap::new();
    for task in &tasks {
        *title_count.entry(text(task, "title")).or_default() += 1;
    }

    let mut rng = 0x00C0_FFEE_u64;
    let (mut dense_hits, mut hybrid_hits, mut dense_exact, mut hybrid_exact) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    // 50 by default; `MNEMO_TITLE_SAMPLE=1000` measures the rates on a larger draw.
    let sample_size: usize = std::env::var("MNEMO_TITLE_SAMPLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let sample: Vec<_> = (0..sample_size)
        .map(|_| tasks[(splitmix(&mut rng) % tasks.len() as u64) as usize].clone())
        .collect();
    for task in &sample {
        let title = text(task, "title");
        let id = text(task, "id");
        let dense = engine
            .search(
                &title,
                &SearchOptions {
                    limit: 3,
                    ..SearchOptions::default()
                },
            )
            .unwrap();
        let hybrid = hybrid_first(engine, &title);
        // Tasks with the very same title are the same answer to a query made of that title:
        // they count as found, and the exact-task rate is printed beside. The same title is
        // the same to the model and to BM25: both lowercase, and spacing makes no token.
        let found = |hits: &[mnemo_store::ScoredPoint]| {
            hits.iter()
                .any(|h| same_title(&text(&h.payload, "title"), &title))
        };
        let exact =
            |hits: &[mnemo_store::ScoredPoint]| hits.iter().any(|h| text(&h.payload, "id") == id);
        dense_hits += usize::from(found(&dense));
        hybrid_hits += usize::from(found(&hybrid));
        dense_exact += usize::from(exact(&dense));
        hybrid_exact += usize::from(exact(&hybrid));
        if !found(&dense) || !found(&hybrid) {
            misses.push(format!(
                "{title:?} → dense {:?}, hybrid {:?}",
                dense.first().map(|h| text(&h.payload, "title")),
                hybrid.first().map(|h| text(&h.payload, "title"))
            ));
        }
    }
    let shared_titles = sample
        .iter()
        .filter(|t| title_count[&text(t, "title")] > 1)
        .count();
    println!(
        "exact titles, {sample_size} random tasks ({shared_titles} share their title with another task): \
         dense top-3 {dense_hits}/{sample_size} (this very task {dense_exact}/{sample_size}), hybrid rank 1 {hybrid_hits}/{sample_size} (this very task {hybrid_exact}/{sample_size}); {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    assert!(misses.is_empty(), "missed:\n{}", misses.join("\n"));

    // Task numbers, found by keywords at rank 1 in hybrid mode.
    let numbered: Vec<_> = tasks
        .iter()
        .filter(|t| text(t, "number").contains('.'))
        .collect();
    let mut number_hits = 0;
    let number_sample = (sample_size * 2 / 5).max(1);
    for _ in 0..number_sample {
        let number = text(
            numbered[(splitmix(&mut rng) % numbered.len() as u64) as usize],
            "number",
        );
        let hits = hybrid_first(engine, &number);
        if hits
            .first()
            .is_some_and(|h| text(&h.payload, "number") == number)
        {
            number_hits += 1;
        } else {
            misses.push(format!(
                "number {number} → {:?}",
                hits.first().map(|h| text(&h.payload, "number"))
            ));
        }
    }
    // File names: every file that holds a task, a task of that file at rank 1.
    let files: std::collections::BTreeSet<String> = tasks
        .iter()
        .filter_map(|t| {
            std::path::Path::new(&text(t, "file"))
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .collect();
    let mut file_hits = 0;
    for name in &files {
        let hits = hybrid_first(engine, name);
        if hits
            .first()
            .is_some_and(|h| text(&h.payload, "file").ends_with(&format!("/{name}")))
        {
            file_hits += 1;
        } else {
            misses.push(format!(
                "file {name} → {:?}",
                hits.first().map(|h| text(&h.payload, "file"))
            ));
        }
    }
    println!(
        "identifiers, hybrid rank 1: task numbers {number_hits}/{number_sample}, file names {file_hits}/{}; {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    assert!(misses.is_empty(), "missed:\n{}", misses.join("\n"));

    // Similar: never the task itself; filtered search honours the filter.
    let some = &sample[0];
    let similar = engine
        .similar(
            &text(some, "id"),
            &SearchOptions {
                limit: 5,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(similar.len(), 5);
    assert!(
        similar
            .iter()
            .all(|h| text(&h.payload, "id") != text(some, "id"))
    );
    assert!(similar.windows(2).all(|w| w[0].score >= w[1].score));
    let open_p1 = engine
        .search(
            "tests unitaires",
            &SearchOptions {
                limit: 10,
                filter: parse_filter("status=open and priority<=1").unwrap(),
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert!(!open_p1.is_empty());
    assert!(open_p1.iter().all(|h| text(&h.payload, "status") == "open"
        && ["P0", "P1"].contains(&text(&h.payload, "priority").as_str())));

    // Duplicates within one folder of plans: clusters of two or more, largest first, every
    // member at least as similar as asked to the member it was linked through.
    let duplicates_in = |relative: &str| {
        let folder = corpus.join(relative).canonicalize().unwrap();
        let filter = parse_filter(&format!("dirs=\"{}\"", folder.display())).unwrap();
        let clusters = engine.duplicates("tasks", 0.95, 10, &filter).unwrap();
        println!(
            "duplicates ≥ 0.95 in {}: {} clusters, largest {}",
            folder.display(),
            clusters.len(),
            clusters.first().map_or(0, |c| c.members.len()),
        );
        assert!(!clusters.is_empty());
        assert!(
            clusters
                .windows(2)
                .all(|w| w[0].members.len() >= w[1].members.len())
        );
        assert!(
            clusters
                .iter()
                .all(|c| c.members.len() >= 2 && c.min_score >= 0.95)
        );
        clusters.len()
    };
    if reference.is_none() {
        duplicates_in("email-sender-1/roadmaps/plans/consolidated");
    }
    let small_folder_clusters = duplicates_in(SMALL_FOLDER);
    if let Some(reference) = reference {
        // The same clusters up to the approximate search's rare misses at the threshold.
        let (ours, theirs) = (small_folder_clusters, reference.small_folder_clusters);
        assert!(
            ours.abs_diff(theirs) <= theirs / 100 + 1,
            "{label}: {ours} duplicate clusters in {SMALL_FOLDER}, the embedded store {theirs}"
        );
    }
    println!(
        "similar, filtered and duplicates {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Answers {
        small_folder_clusters,
    }
}
