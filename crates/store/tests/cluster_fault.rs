//! A real 3-node Qdrant cluster losing a node to SIGKILL in the middle of a continuous
//! indexing run: every write that was acknowledged is readable once the node is back, every
//! call during the outage answers or fails clearly within its deadline, and the circuit
//! breaker of a client that only knows the dead node opens, fails fast, and closes by itself
//! when the node returns (read from its metrics).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mnemo_store::{
    BreakerState, CollectionConfig, Distance, NearestQuery, PayloadSelection, Point, PointId,
    QdrantOptions, QdrantStore, ResiliencePolicy, SearchRequest, StoreError, Vector,
    VectorSelection, VectorStore,
};
use mnemo_testkit::Qdrant;
use serde_json::json;

const DIM: usize = 8;
const BATCH: u64 = 20;

fn vector(seed: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| ((seed.wrapping_mul(31).wrapping_add(i * 7)) % 97) as f32 / 97.0 + 0.01)
        .collect()
}

fn policy() -> ResiliencePolicy {
    ResiliencePolicy {
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        max_attempts: 3,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_secs(1),
    }
}

/// The longest any call may take under `policy()`: every attempt's deadline plus the
/// backoffs, with a second of slack for a loaded machine.
fn call_bound() -> Duration {
    let p = policy();
    (p.timeout + p.connect_timeout) * p.max_attempts
        + p.backoff_max * p.max_attempts
        + Duration::from_secs(1)
}

fn connect(nodes: Vec<String>) -> QdrantStore {
    let mut options = QdrantOptions::new(nodes);
    options.shard_number = Some(3);
    options.replication_factor = Some(2);
    options.write_consistency_factor = Some(1);
    options.policy = policy();
    QdrantStore::connect(options).unwrap()
}

fn clear(err: &StoreError) -> bool {
    let message = err.to_string();
    message.contains("Qdrant at") && message.contains("127.0.0.1:")
}

#[test]
fn acknowledged_writes_survive_a_killed_node_and_the_breaker_recovers() {
    let Some(mut cluster) = Qdrant::cluster(3) else {
        return;
    };
    let grpc = |i: usize| format!("http://127.0.0.1:{}", cluster.nodes[i].grpc_port);
    // The writer knows every node and fails over; the watcher knows only the node that dies.
    let writer = Arc::new(connect((0..3).map(grpc).collect()));
    let watcher = connect(vec![grpc(2)]);
    writer
        .create_collection("fault", &CollectionConfig::single(DIM, Distance::Cosine))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let indexing = {
        let (writer, stop, acknowledged, failures, slowest) = (
            Arc::clone(&writer),
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
            Arc::clone(&failures),
            Arc::clone(&slowest),
        );
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<u64> = (next..next + BATCH).collect();
                next += BATCH;
                let points = ids
                    .iter()
                    .map(|&id| {
                        Point::dense(
                            id,
                            "",
                            vector(id),
                            json!({"n": id}).as_object().unwrap().clone(),
                        )
                    })
                    .collect();
                let started = Instant::now();
                let outcome = writer.upsert("fault", points);
                let took = started.elapsed();
                let mut worst = slowest.lock().unwrap();
                *worst = (*worst).max(took);
                drop(worst);
                match outcome {
                    Ok(_) => acknowledged.lock().unwrap().extend(ids),
                    Err(err) => {
                        assert!(clear(&err), "unclear error: {err}");
                        failures.lock().unwrap().push(err.to_string());
                    }
                }
            }
        })
    };

    std::thread::sleep(Duration::from_secs(2));
    let before_kill = acknowledged.lock().unwrap().len();
    assert!(before_kill > 0, "nothing was written before the kill");
    cluster.nodes[2].kill();
    let killed_at = Instant::now();

    // During the outage: searches through the live nodes answer; through the dead one they
    // fail clearly, soon, then without being sent at all once the breaker is open.
    let query = SearchRequest::new(
        NearestQuery {
            using: String::new(),
            vector: Vector::Dense(vector(1)),
        },
        5,
    );
    let mut answered_during_outage = 0;
    let mut refused_by_breaker = 0;
    let mut watcher_errors = Vec::new();
    while killed_at.elapsed() < Duration::from_secs(6) {
        let started = Instant::now();
        match writer.search("fault", query.clone()) {
            Ok(_) => answered_during_outage += 1,
            Err(err) => assert!(clear(&err), "unclear error: {err}"),
        }
        match watcher.search("fault", query.clone()) {
            Ok(_) => panic!("a search through the dead node answered"),
            Err(StoreError::CircuitOpen { .. }) => refused_by_breaker += 1,
            Err(err) => {
                assert!(clear(&err), "unclear error: {err}");
                watcher_errors.push(err.to_string());
            }
        }
        assert!(started.elapsed() < call_bound() * 2, "a call hung");
        std::thread::sleep(Duration::from_millis(200));
    }
    let outage = watcher.node_metrics().remove(0);
    assert!(
        outage.breaker_opened >= 1,
        "{outage:?}, errors: {watcher_errors:?}"
    );
    assert!(refused_by_breaker > 0, "the open breaker never failed fast");
    let during_outage = acknowledged.lock().unwrap().len() - before_kill;

    cluster.nodes[2].start();
    cluster.nodes[2].wait_ready();
    cluster.wait_for_peers(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    indexing.join().unwrap();

    // Every acknowledged write, read through the node that came back.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let ids: Vec<PointId> = acknowledged.iter().map(|&n| PointId::Num(n)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let found = ids
            .chunks(500)
            .map(|chunk| {
                watcher
                    .get(
                        "fault",
                        chunk,
                        PayloadSelection::None,
                        VectorSelection::None,
                    )
                    .map(|records| records.len())
            })
            .sum::<Result<usize, _>>();
        match found {
            Ok(n) if n == ids.len() => break n,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            other => panic!("acknowledged {} points, read back {other:?}", ids.len()),
        }
    };
    let recovered = watcher.node_metrics().remove(0);
    assert_eq!(recovered.breaker, BreakerState::Closed, "{recovered:?}");
    assert!(recovered.breaker_closed >= 1, "{recovered:?}");
    let writer_nodes = writer.node_metrics();
    let failures = failures.lock().unwrap();
    println!(
        "fault: {} points acknowledged ({during_outage} while a node was down), all {found} read back through the returned node; \
         {} write batches failed clearly; slowest write {:.2} s (bound {:.1} s); searches answered during the outage {answered_during_outage}; \
         watcher breaker: opened {}, closed {}, {} calls refused without being sent; writer: {writer_nodes:?}",
        acknowledged.len(),
        failures.len(),
        slowest.lock().unwrap().as_secs_f64(),
        call_bound().as_secs_f64(),
        recovered.breaker_opened,
        recovered.breaker_closed,
        recovered.rejected,
    );
    assert!(*slowest.lock().unwrap() < call_bound(), "a write hung");
    assert!(
        answered_during_outage > 0,
        "no search answered during the outage"
    );
}

#[test]
fn a_node_that_does_not_answer_is_skipped_for_the_next() {
    let Some(qdrant) = Qdrant::single() else {
        return;
    };
    // Port 1 on loopback: nothing listens, connections are refused at once.
    let store = connect(vec![
        "http://127.0.0.1:1".into(),
        format!("http://127.0.0.1:{}", qdrant.nodes[0].grpc_port),
    ]);
    for _ in 0..5 {
        store.list_collections().unwrap();
    }
    let metrics = store.node_metrics();
    assert_eq!(metrics[0].failures, 1, "{metrics:?}");
    assert_eq!(metrics[1].calls, 5, "{metrics:?}");
    assert_eq!(
        metrics[1].retries, 1,
        "the first call went on to the live node"
    );

    let lone = connect(vec!["http://127.0.0.1:1".into()]);
    let err = lone.count("anything", None).unwrap_err();
    // Two failures open its breaker (threshold 2): the third attempt is not made.
    assert!(
        err.to_string().starts_with(
            "Qdrant at 127.0.0.1:1 is unavailable: count on collection `anything` failed 2 time(s); last error: 127.0.0.1:1: Failed to connect"
        ),
        "{err}"
    );
    let err = lone.count("anything", None).unwrap_err();
    assert!(matches!(err, StoreError::CircuitOpen { .. }), "{err}");
    assert!(!err.is_client_error());
    assert!(err.is_unavailable());
}

/// Given one address of a 3-node cluster and no replication chosen, a new collection gets 2
/// copies of each shard, as when every node is listed (it had 1: when any node died, every
/// search failed); a search through the address given then survives killing another node.
/// On a single node the collection stays at Qdrant's one copy.
#[test]
fn one_address_of_a_cluster_gets_replicated_collections() {
    let Some(mut cluster) = Qdrant::cluster(3) else {
        return;
    };
    let mut options = QdrantOptions::new(vec![format!(
        "http://127.0.0.1:{}",
        cluster.nodes[0].grpc_port
    )]);
    assert_eq!(options.replication_factor, None, "nothing chosen");
    options.policy = policy();
    let store = QdrantStore::connect(options).unwrap();
    store
        .create_collection(
            "one-address",
            &CollectionConfig::single(DIM, Distance::Cosine),
        )
        .unwrap();
    let replicas = cluster.nodes[0]
        .get("/collections/one-address/cluster")
        .expect("cluster info");
    let result = &replicas["result"];
    let copies = result["local_shards"].as_array().map_or(0, Vec::len)
        + result["remote_shards"].as_array().map_or(0, Vec::len);
    let shards = result["shard_count"].as_u64().unwrap_or(0) as usize;
    assert!(shards >= 1, "{replicas}");
    assert_eq!(copies, 2 * shards, "two copies of each shard: {replicas}");

    let points = (0..30)
        .map(|id| Point::dense(id, "", vector(id), Default::default()))
        .collect();
    store.upsert("one-address", points).unwrap();
    cluster.nodes[2].kill();
    for id in 0..10 {
        let request = SearchRequest::new(
            NearestQuery {
                using: String::new(),
                vector: Vector::Dense(vector(id)),
            },
            5,
        );
        let hits = store
            .search("one-address", request)
            .expect("a search with one node down");
        assert!(!hits.is_empty());
    }
}
