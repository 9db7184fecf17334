//! `mnemo-bench durability`: what `durability = "fsync"` costs. The same writes (one point per
//! upsert, as an agent writes, then batches of `--batch`) on the embedded store opened with
//! each durability in turn, in one run: writes per second, median and p99 latency, and the
//! ratio to the default.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use mnemo_store::{
    CollectionConfig, Distance, Durability, EmbeddedStore, OpenOptions, Point, PointId, Vector,
    VectorStore,
};

use crate::stats::{Rng, percentile_ms};
use crate::workload::Topics;

#[derive(Args)]
pub struct DurabilityArgs {
    /// Upserts of one point, timed one by one
    #[arg(long, default_value_t = 2000)]
    single: usize,
    /// Batched upserts
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Points per batched upsert
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Dimensions
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Where the stores are built (its file system is what is measured) [default: a
    /// temporary folder]
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub fn run(args: DurabilityArgs) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir_in(args.dir.as_deref().unwrap_or(&std::env::temp_dir()))?;
    let mut rng = Rng(11);
    let topics = Topics::new(args.dim, &mut rng);
    let vectors = topics.sample(args.single.max(args.batch), &mut rng);
    println!(
        "{} single-point upserts, then {} upserts of {} points, {}-d, in {}",
        args.single,
        args.batches,
        args.batch,
        args.dim,
        temporary.path().display()
    );
    println!(
        "{:<10} {:>10} {:>14} {:>10} {:>10}   {:>16} {:>10}",
        "durability", "writes", "writes/s", "p50 ms", "p99 ms", "batched points/s", "p99 ms"
    );
    let mut rows = Vec::new();
    for durability in [Durability::Periodic, Durability::Fsync] {
        let dir = temporary.path().join(durability.to_string());
        let (single, batched) = measure(&dir, durability, &args, &vectors)?;
        println!(
            "{:<10} {:>10} {:>14.0} {:>10.3} {:>10.3}   {:>16.0} {:>10.3}",
            durability.to_string(),
            args.single,
            single.per_second,
            single.p50_ms,
            single.p99_ms,
            batched.per_second,
            batched.p99_ms
        );
        rows.push((single, batched));
    }
    if let [(periodic, periodic_batched), (fsync, fsync_batched)] = rows.as_slice() {
        println!(
            "fsync / periodic: single writes {:.2}x the rate ({:.1}x the median latency), batches {:.2}x the rate",
            fsync.per_second / periodic.per_second,
            fsync.p50_ms / periodic.p50_ms,
            fsync_batched.per_second / periodic_batched.per_second,
        );
    }
    Ok(())
}

fn measure(
    dir: &Path,
    durability: Durability,
    args: &DurabilityArgs,
    vectors: &[Vec<f32>],
) -> anyhow::Result<(Figures, Figures)> {
    let options = OpenOptions {
        durability,
        ..OpenOptions::default()
    };
    let store = EmbeddedStore::open(dir, options)?;
    store.create_collection(
        "bench",
        &CollectionConfig::single(args.dim, Distance::Cosine),
    )?;
    let point = |id: usize| Point {
        id: PointId::Num(id as u64),
        vectors: [(
            String::new(),
            Vector::Dense(vectors[id % vectors.len()].clone()),
        )]
        .into(),
        payload: Default::default(),
    };
    let mut times = Vec::with_capacity(args.single);
    let started = Instant::now();
    for id in 0..args.single {
        let one = point(id);
        let began = Instant::now();
        store.upsert("bench", vec![one])?;
        times.push(began.elapsed());
    }
    let single = figures(args.single, started.elapsed(), &mut times);
    let mut times = Vec::with_capacity(args.batches);
    let started = Instant::now();
    for batch in 0..args.batches {
        let points = (0..args.batch)
            .map(|i| point(args.single + batch * args.batch + i))
            .collect();
        let began = Instant::now();
        store.upsert("bench", points)?;
        times.push(began.elapsed());
    }
    let batched = figures(args.batches * args.batch, started.elapsed(), &mut times);
    Ok((single, batched))
}

fn figures(items: usize, total: Duration, times: &mut [Duration]) -> Figures {
    times.sort();
    Figures {
        per_second: items as f64 / total.as_secs_f64(),
        p50_ms: percentile_ms(times, 0.5),
        p99_ms: percentile_ms(times, 0.99),
    }
}
