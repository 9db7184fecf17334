//! The commands over the store: `index`, `search`, `similar`, `dupes`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mnemo_embed::DEFAULT_MODEL_NAME;
use mnemo_engine::{
    Engine, IndexOptions, IndexProgress, IndexSummary, SearchMode, SearchOptions, parse_filter,
};
use mnemo_store::{
    EmbeddedStore, Filter, OpenOptions, QdrantOptions, QdrantStore, ScoredPoint, VectorStore,
};
use serde_json::{Map, Value};

use crate::ModelArgs;
use crate::remote::Remote;

/// Where the data lives; shared by every command that opens the store.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The data directory of the embedded store [default: $XDG_DATA_HOME/mnemo or ~/.local/share/mnemo]
    #[arg(long, env = "MNEMO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Where collections live: `embedded` (Qdrant's engine in this process, in --data-dir) or
    /// a Qdrant server or cluster: qdrant://HOST:GRPC_PORT[,HOST:PORT...][?shards=N&replication=N&write_consistency=N&timeout_ms=N]
    /// (qdrants:// for TLS) [default: embedded]
    #[arg(
        long = "store",
        env = "MNEMO_STORE",
        global = true,
        value_name = "LOCATION"
    )]
    location: Option<String>,
    /// The Qdrant server's API key
    #[arg(
        long,
        env = "MNEMO_QDRANT_API_KEY",
        global = true,
        hide_env_values = true
    )]
    qdrant_api_key: Option<String>,
}

/// A store that is open, and which kind it is (the embedded one can announce a server).
pub enum OpenedStore {
    Embedded(Arc<EmbeddedStore>),
    Remote(Arc<QdrantStore>),
}

impl OpenedStore {
    pub fn shared(&self) -> Arc<dyn VectorStore> {
        match self {
            Self::Embedded(store) => store.clone(),
            Self::Remote(store) => store.clone(),
        }
    }
}

impl StoreArgs {
    /// These settings pointed at `location`: `embedded` (the --data-dir), a data directory's
    /// path, or a Qdrant location.
    pub fn pointing_at(&self, location: &str) -> Self {
        let mut args = self.clone();
        if location == "embedded" || QdrantOptions::is_location(location) {
            args.location = Some(location.to_owned());
        } else {
            args.data_dir = Some(PathBuf::from(location));
            args.location = None;
        }
        args
    }

    /// `--store`, or else `fallback` (the server's config file), or else embedded.
    pub fn with_fallback(mut self, fallback: Option<&str>, api_key: Option<&str>) -> Self {
        if self.location.is_none() {
            self.location = fallback.map(str::to_owned);
        }
        if self.qdrant_api_key.is_none() {
            self.qdrant_api_key = api_key.map(str::to_owned);
        }
        self
    }

    /// What `--store` names, for messages.
    pub fn describe(&self) -> String {
        match self.location.as_deref() {
            Some(location) if location != "embedded" => location.to_owned(),
            _ => format!("the data directory {}", self.dir().display()),
        }
    }

    pub fn open_any(&self) -> anyhow::Result<OpenedStore> {
        match self.location.as_deref() {
            None | Some("embedded") => Ok(OpenedStore::Embedded(Arc::new(self.open()?))),
            Some(location) => {
                let store = QdrantStore::open(location, self.qdrant_api_key.clone())
                    .with_context(|| format!("cannot use the store {location}"))?;
                Ok(OpenedStore::Remote(Arc::new(store)))
            }
        }
    }

    fn dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let data_home = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
                })
                .unwrap_or_else(|| PathBuf::from("."));
            data_home.join("mnemo")
        })
    }

    /// The embedded store; `--store` must not name another.
    pub fn open(&self) -> anyhow::Result<EmbeddedStore> {
        if let Some(location) = self.location.as_deref().filter(|l| *l != "embedded") {
            anyhow::bail!("this command works on the embedded store only, not on {location}");
        }
        let dir = self.dir();
        EmbeddedStore::open(&dir, OpenOptions::default())
            .with_context(|| format!("cannot open the data directory {}", dir.display()))
    }
}

pub fn engine_over(store: Arc<dyn VectorStore>, model: &ModelArgs) -> anyhow::Result<Engine> {
    let embedder = model.load(None, None)?;
    Ok(Engine::new(store, Arc::new(embedder), DEFAULT_MODEL_NAME))
}

/// The engine over this data directory, or, when a `mnemo serve` holds it, that server.
enum Backend {
    Local(Engine),
    Remote(Remote),
}

fn backend(store: &StoreArgs, model: &ModelArgs) -> anyhow::Result<Backend> {
    match store.open_any() {
        Ok(opened) => Ok(Backend::Local(engine_over(opened.shared(), model)?)),
        Err(err) => match Remote::holding(&err) {
            Some(remote) => Ok(Backend::Remote(remote)),
            None => Err(err),
        },
    }
}

#[derive(Args)]
pub struct IndexArgs {
    /// Markdown files or folders
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Collection for tasks
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// Collection for prose passages
    #[arg(long, default_value = mnemo_engine::PASSAGES_COLLECTION)]
    passages_collection: String,
    /// Index tasks only, not prose passages
    #[arg(long)]
    tasks_only: bool,
    /// Leave building the search index (HNSW) for later; searches still work, by full scan
    #[arg(long)]
    no_optimize: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

struct Bar(ProgressBar);

impl IndexProgress for Bar {
    fn start(&self, files: usize) {
        self.0.set_length(files as u64);
    }

    fn files_done(&self, files: usize, embedded: usize) {
        self.0.set_position(files as u64);
        self.0.set_message(format!("{embedded} embedded"));
    }

    fn phase(&self, name: &str) {
        self.0.set_message(name.to_owned());
    }
}

/// Whether every path was read.
pub fn index(args: IndexArgs) -> anyhow::Result<bool> {
    let engine = match backend(&args.store, &args.model)? {
        Backend::Local(engine) => engine,
        Backend::Remote(remote) => {
            if args.no_optimize {
                anyhow::bail!("--no-optimize is not available through a running server");
            }
            let summary = remote.index(
                &args.paths,
                args.tasks_only,
                &args.collection,
                &args.passages_collection,
            )?;
            return report_index(&summary, args.json);
        }
    };
    let options = IndexOptions {
        tasks_collection: args.collection.clone(),
        passages_collection: args.passages_collection.clone(),
        passages: !args.tasks_only,
        optimize: !args.no_optimize,
        ..IndexOptions::default()
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} indexing [{bar:30}] {pos}/{len} files, {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let summary = engine.index(&args.paths, &options, &Bar(bar.clone()))?;
    bar.finish_and_clear();
    report_index(&summary, args.json)
}

fn report_index(summary: &IndexSummary, json: bool) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print_summary(summary);
    }
    for reason in &summary.skipped {
        eprintln!("skipped {reason}");
    }
    Ok(summary.skipped.is_empty())
}

fn print_summary(s: &IndexSummary) {
    let rate = if s.embed_seconds > 0.0 {
        s.embedded as f64 / s.embed_seconds
    } else {
        0.0
    };
    println!(
        "indexed {} files: {} tasks, {} passages",
        s.files, s.tasks, s.passages
    );
    println!(
        "  written {} · unchanged {} · removed {} · texts embedded {} · vectors reused {} · repaired lines {} (in the files read)",
        s.written, s.unchanged, s.removed, s.embedded, s.reused, s.repairs
    );
    println!(
        "  {:.2} s (parse {:.2} s, embed {:.2} s, store {:.2} s, index build {:.2} s) · {:.0} texts/s",
        s.total_seconds,
        s.parse_seconds,
        s.embed_seconds,
        s.store_seconds,
        s.optimize_seconds,
        rate
    );
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Dense,
    Hybrid,
    Keyword,
}

/// What a question is asked of, and how answers are printed; shared by search, similar, dupes.
#[derive(Args)]
pub struct Target {
    /// Collection to ask
    #[arg(long, default_value = mnemo_engine::TASKS_COLLECTION)]
    collection: String,
    /// Only points matching this, e.g. 'status=open and priority<=1'
    #[arg(long)]
    filter: Option<String>,
    /// Print one JSON object per line
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

impl Target {
    fn filter(&self) -> anyhow::Result<Filter> {
        Ok(match &self.filter {
            Some(expression) => parse_filter(expression)?,
            None => Filter::default(),
        })
    }
}

#[derive(Args)]
pub struct QueryArgs {
    /// How many results
    #[arg(long, default_value_t = 10)]
    limit: usize,
    #[command(flatten)]
    target: Target,
}

impl QueryArgs {
    fn options(&self, mode: SearchMode) -> anyhow::Result<SearchOptions> {
        Ok(SearchOptions {
            collection: self.target.collection.clone(),
            limit: self.limit,
            filter: self.target.filter()?,
            mode,
            score_threshold: None,
        })
    }
}

#[derive(Args)]
pub struct SearchArgs {
    /// What to look for
    query: String,
    /// dense: the model's vectors; hybrid: fused with BM25 keywords (exact ids and names);
    /// keyword: BM25 alone
    #[arg(long, value_enum, default_value = "dense")]
    mode: ModeArg,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let mode = match args.mode {
        ModeArg::Dense => SearchMode::Dense,
        ModeArg::Hybrid => SearchMode::Hybrid,
        ModeArg::Keyword => SearchMode::Keyword,
    };
    let options = args.query_args.options(mode)?;
    let hits = match backend(&args.query_args.target.store, &args.query_args.target.model)? {
        Backend::Local(engine) => engine.search(&args.query, &options).map_err(with_hint)?,
        Backend::Remote(remote) => remote.search(&args.query, &options)?,
    };
    print_hits(&hits, args.query_args.target.json)
}

#[derive(Args)]
pub struct SimilarArgs {
    /// A task id (as `mnemo tasks --json` prints) or a point id
    id: String,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub fn similar(args: SimilarArgs) -> anyhow::Result<()> {
    let options = args.query_args.options(SearchMode::Dense)?;
    let hits = match backend(&args.query_args.target.store, &args.query_args.target.model)? {
        Backend::Local(engine) => engine.similar(&args.id, &options).map_err(with_hint)?,
        Backend::Remote(remote) => remote.similar(&args.id, &options)?,
    };
    print_hits(&hits, args.query_args.target.json)
}

#[derive(Args)]
pub struct DupesArgs {
    /// Least cosine similarity for two tasks to count as duplicates
    #[arg(long, default_value_t = 0.9)]
    threshold: f32,
    /// Show at most this many clusters
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Neighbours followed per task
    #[arg(long, default_value_t = 10)]
    neighbours: usize,
    #[command(flatten)]
    target: Target,
}

pub fn dupes(args: DupesArgs) -> anyhow::Result<()> {
    if !(args.threshold > 0.0 && args.threshold <= 1.0) {
        anyhow::bail!("--threshold must be in (0, 1], got {}", args.threshold);
    }
    let filter = args.target.filter()?;
    let neighbours = args.neighbours.max(1);
    let clusters = match backend(&args.target.store, &args.target.model)? {
        Backend::Local(engine) => engine
            .duplicates(&args.target.collection, args.threshold, neighbours, &filter)
            .map_err(with_hint)?,
        Backend::Remote(remote) => remote.duplicates(
            &args.target.collection,
            args.threshold,
            neighbours.min(100),
            &filter,
        )?,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !args.target.json {
        writeln!(
            out,
            "{} clusters of near-duplicates (cosine ≥ {})",
            clusters.len(),
            args.threshold
        )?;
    }
    for cluster in clusters.iter().take(args.limit) {
        if args.target.json {
            serde_json::to_writer(&mut out, cluster)?;
            writeln!(out)?;
            continue;
        }
        writeln!(
            out,
            "\n{} tasks, similarity ≥ {:.3}",
            cluster.members.len(),
            cluster.min_score
        )?;
        for member in &cluster.members {
            writeln!(
                out,
                "  {}  {}",
                location(&member.payload),
                headline(&member.payload)
            )?;
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// An empty data directory is the usual first mistake: say what fills it.
fn with_hint(error: mnemo_engine::EngineError) -> anyhow::Error {
    let hint = matches!(
        error,
        mnemo_engine::EngineError::Store(mnemo_store::StoreError::UnknownCollection(_))
    );
    let error = anyhow::Error::new(error);
    if hint {
        error.context("nothing indexed there yet: run `mnemo index PATH...` first (or pass the --data-dir it used)")
    } else {
        error
    }
}

fn print_hits(hits: &[ScoredPoint], json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for hit in hits {
        if json {
            let mut object = Map::new();
            object.insert("score".into(), Value::from(hit.score));
            object.insert("id".into(), Value::String(hit.id.to_string()));
            for (key, value) in &hit.payload {
                if key != "id" {
                    object.insert(key.clone(), value.clone());
                }
            }
            if let Some(task_id) = hit.payload.get("id") {
                object.insert("task_id".into(), task_id.clone());
            }
            serde_json::to_writer(&mut out, &object)?;
            writeln!(out)?;
        } else {
            let field = |name: &str| {
                hit.payload
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let status = field("status");
            let priority = field("priority");
            let number = field("number");
            writeln!(
                out,
                "{:.3}  {status:<11} {priority:<2} {number:<10} {}",
                hit.score,
                headline(&hit.payload)
            )?;
            let sections: Vec<&str> = hit
                .payload
                .get("section_path")
                .and_then(Value::as_array)
                .map(|path| path.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                out,
                "       {} · {}",
                location(&hit.payload),
                sections.join(" > ")
            )?;
        }
    }
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// The title of a task, or the first line of a passage, cut to a line.
fn headline(payload: &Map<String, Value>) -> String {
    let text = payload
        .get("title")
        .or_else(|| payload.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(110).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

fn location(payload: &Map<String, Value>) -> String {
    let file = payload
        .get("file")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            std::path::Path::new(file)
                .strip_prefix(cwd)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| file.to_owned());
    let line = payload
        .get("line")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    format!("{shown}:{line}")
}
