//! `mnemo search`, `mnemo similar`, `mnemo dupes`: questions to the store, asked of the engine
//! here or of the server that holds the data directory.

use clap::Args;
use mnemo::args::{ModelArgs, StoreArgs};
use mnemo_engine::{SearchMode, SearchOptions, parse_filter};
use mnemo_store::Filter;

use crate::backend::{Backend, backend, with_hint};
use crate::output::{print_clusters, print_hits};

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
    #[arg(long, default_value = "dense")]
    mode: SearchMode,
    #[command(flatten)]
    query_args: QueryArgs,
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let options = args.query_args.options(args.mode)?;
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
    mnemo_engine::check_duplicate_threshold(args.threshold)?;
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
    print_clusters(&clusters, args.limit, args.threshold, args.target.json)
}
