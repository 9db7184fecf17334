//! `mnemo model migrate` and `mnemo model switch`: moving a collection to another model
//! (the engine's `migrate` module does the work; this parses, shows progress and the report).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use mnemo_engine::{IndexProgress, LabelledQuery, MigrateOptions, MigrationReport};

use crate::progress::Bar;
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo::service::open_memory_engine;

#[derive(Args)]
pub struct MigrateArgs {
    /// The collection (or alias) to move
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// The model to move it to
    #[arg(long)]
    to: String,
    /// Labelled queries, one JSON object per line: {"query": "...", "expected": [id or
    /// "file:line", ...]}; the report gives hit@1, hit@10 and MRR of both models
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Texts embedded per second at most, to leave the machine to searches
    #[arg(long)]
    throttle: Option<f64>,
    /// Switch to the new collection when it is built
    #[arg(long)]
    switch: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
pub struct SwitchArgs {
    /// The collection whose migration to switch to
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// Back to the collection the migration replaced
    #[arg(long)]
    back: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The collection to return to the collection its migration replaced
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
pub struct FinishArgs {
    /// The collection whose old collection to delete
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// Days the old collection is kept after the switch, for a rollback (0: delete it now)
    #[arg(long, default_value_t = 7.0)]
    keep_days: f64,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Labelled queries, one JSON object per line: {"query": "...", "expected": [id or
    /// "file:line", ...]}
    #[arg(long)]
    queries: PathBuf,
    /// The collection (or alias) to search
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// dense, hybrid or keyword; by default dense, and hybrid on an indexed collection
    #[arg(long)]
    mode: Vec<mnemo_engine::SearchMode>,
    /// Print the scores as JSON lines
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// The bar on a terminal; elsewhere (a log, a test) one line per step on stderr.
struct Progress {
    bar: Bar,
    lines: bool,
}

impl IndexProgress for Progress {
    fn start(&self, total: usize) {
        self.bar.start(total);
        if self.lines {
            eprintln!("migrating: {total} to read");
        }
    }
    fn files_done(&self, done: usize, embedded: usize) {
        self.bar.files_done(done, embedded);
        if self.lines {
            eprintln!("migrating: {done} read, {embedded} embedded");
        }
    }
    fn phase(&self, name: &str) {
        self.bar.phase(name);
        if self.lines {
            eprintln!("migrating: {name}");
        }
    }
    fn cancelled(&self) -> bool {
        self.bar.cancelled()
    }
}

/// Lines of an `--eval` file at most.
const MAX_EVAL_QUERIES: usize = 10_000;

fn read_eval(path: &Path) -> anyhow::Result<Vec<LabelledQuery>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut queries = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if queries.len() == MAX_EVAL_QUERIES {
            bail!("{}: more than {MAX_EVAL_QUERIES} queries", path.display());
        }
        let query: LabelledQuery = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: line {}: expected {{\"query\": \"...\", \"expected\": [\"id or file:line\", ...]}}",
                path.display(),
                index + 1
            )
        })?;
        if query.query.trim().is_empty() || query.expected.is_empty() {
            bail!(
                "{}: line {}: `query` is empty or `expected` lists nothing",
                path.display(),
                index + 1
            );
        }
        queries.push(query);
    }
    Ok(queries)
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let eval = match &args.eval {
        Some(path) => read_eval(path)?,
        None => Vec::new(),
    };
    let (_store, engine) = open_memory_engine(&args.store, &args.model, &Default::default())?;
    let options = MigrateOptions {
        collection: args.collection.clone(),
        to: args.to.clone(),
        max_texts_per_second: args.throttle,
        eval,
    };
    crate::interrupt::stop_at_safe_points("the migration (run it again to go on)");
    let progress = Progress {
        bar: Bar::new("migrating", "{pos}/{len},"),
        lines: !std::io::stderr().is_terminal(),
    };
    let report = engine.migrate_collection(&options, &progress);
    progress.bar.finish();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if args.switch {
        engine.switch_model(&args.collection, false)?;
        eprintln!(
            "`{}` now reads `{}` ({})",
            report.collection, report.target, report.to_model
        );
    } else if !args.json {
        println!(
            "next: `mnemo model switch --collection {}` (and `--back` to return)",
            report.collection
        );
    }
    Ok(())
}

fn print_scores(scores: &[mnemo_engine::migrate::EvalScore]) {
    println!(
        "  {:<22} {:<8} {:>6} {:>7} {:>6}",
        "MODEL", "MODE", "HIT@1", "HIT@10", "MRR"
    );
    for score in scores {
        println!(
            "  {:<22} {:<8} {:>6.3} {:>7.3} {:>6.3}",
            score.model, score.mode, score.hit_at_1, score.hit_at_10, score.mrr
        );
    }
}

fn print_report(report: &MigrationReport) {
    println!(
        "{} → {}: `{}` ({} points) built as `{}` ({} points) by {} in {:.1} s",
        report.from_model,
        report.to_model,
        report.source,
        report.points_source,
        report.target,
        report.points_target,
        report.method,
        report.seconds
    );
    println!(
        "  {} embedded, {} reused, {} failed",
        report.embedded, report.reused, report.failed
    );
    println!(
        "  drift canaries: top-10 overlap between the models {:.0} % ({} queries)",
        report.ab.canary_top10_overlap * 100.0,
        report.ab.canary_queries
    );
    if let Some(overlap) = report.ab.recent_top10_overlap {
        println!(
            "  recent queries: top-10 overlap {:.0} % ({} queries)",
            overlap * 100.0,
            report.ab.recent_queries
        );
    }
    if !report.ab.eval.is_empty() {
        print_scores(&report.ab.eval);
    }
}

pub fn switch(args: SwitchArgs) -> anyhow::Result<()> {
    let (_store, engine) = open_memory_engine(&args.store, &args.model, &Default::default())?;
    let state = engine.switch_model(&args.collection, args.back)?;
    let (collection, model) = if args.back {
        (&state.source, &state.from_model)
    } else {
        (&state.target, &state.to_model)
    };
    println!("`{}` now reads `{collection}` ({model})", state.collection);
    Ok(())
}

pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    switch(SwitchArgs {
        collection: args.collection,
        back: true,
        store: args.store,
        model: args.model,
    })
}

pub fn finish(args: FinishArgs) -> anyhow::Result<()> {
    if !(args.keep_days.is_finite() && args.keep_days >= 0.0) {
        bail!("--keep-days must be 0 or more");
    }
    let (_store, engine) = open_memory_engine(&args.store, &args.model, &Default::default())?;
    let keep = std::time::Duration::from_secs_f64(args.keep_days * 86_400.0);
    let deleted = engine.finish_migration(&args.collection, keep)?;
    println!(
        "deleted `{deleted}`: `{}` stays on its new model",
        args.collection
    );
    Ok(())
}

/// `mnemo eval`: hit@1, hit@10 and MRR of a collection on labelled queries.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let queries = read_eval(&args.queries)?;
    if queries.is_empty() {
        bail!("{}: no queries", args.queries.display());
    }
    let (_store, engine) = open_memory_engine(&args.store, &args.model, &Default::default())?;
    let scores = engine.evaluate(&args.collection, &queries, &args.mode)?;
    if args.json {
        for score in &scores {
            println!("{}", serde_json::to_string(score)?);
        }
    } else {
        println!("`{}`, {} labelled queries", args.collection, queries.len());
        print_scores(&scores);
    }
    Ok(())
}
