//! The arguments that say where the model and the store are, shared by every command that
//! embeds or opens the store (and by `mnemo-bench`), and what opening them gives.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mnemo_embed::{
    Backend, DEFAULT_MODEL_NAME, Embedder, EmbedderOptions, find_model, model_dir_for,
};
use mnemo_engine::Engine;
use mnemo_records::{MemoryRecords, PostgresRecords, SqliteRecords};
use mnemo_store::{
    Durability, EmbeddedStore, OpenOptions, QdrantOptions, QdrantStore, VectorStore,
};

/// How to find and run the model; shared by every command that embeds.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// The model, by name: all-MiniLM-L6-v2 or all-mpnet-base-v2 (`mnemo models list`); it
    /// names the vectors in the store, so that two models never share one
    #[arg(long = "model", env = "MNEMO_MODEL", default_value = DEFAULT_MODEL_NAME)]
    pub model: String,
    /// The model's folder [default: ~/.cache/mnemo/models/NAME]
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Where the encoder runs: auto, cpu, candle-cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: Backend,
    /// Worker threads (0: one per core)
    #[arg(long, env = "MNEMO_THREADS", default_value_t = 0)]
    pub threads: usize,
}

impl ModelArgs {
    /// The model's name as the store records it: the catalog's spelling of `--model`.
    pub fn model_id(&self) -> anyhow::Result<&'static str> {
        find_model(&self.model)
            .map(|model| model.name)
            .with_context(|| {
                format!(
                    "unknown model `{}`: `mnemo models list` shows those mnemo runs",
                    self.model
                )
            })
    }

    pub fn load(
        &self,
        max_batch_texts: Option<usize>,
        max_batch_tokens: Option<usize>,
    ) -> anyhow::Result<Embedder> {
        let name = self.model_id()?;
        // MNEMO_MODEL_DIR is the default model's folder: another model named by --model has
        // its own, unless --model-dir is given on the command line.
        let dir = match &self.model_dir {
            Some(dir) if name == DEFAULT_MODEL_NAME || !dir_from_env(dir) => dir.clone(),
            _ => model_dir_for(name),
        };
        let mut options = EmbedderOptions {
            backend: self.device,
            threads: self.threads,
            ..EmbedderOptions::default()
        };
        if let Some(n) = max_batch_texts {
            options.max_batch_texts = n;
        }
        if let Some(n) = max_batch_tokens {
            options.max_batch_tokens = n;
        }
        if !dir.exists() && self.model_dir.is_none() {
            anyhow::bail!(
                "the model {name} is not installed (no folder {}): fetch it with `mnemo models fetch {name}`",
                dir.display()
            );
        }
        Embedder::load(&dir, options)
            .with_context(|| format!("cannot load the model {name} from {}", dir.display()))
    }
}

/// Whether `dir` came from `MNEMO_MODEL_DIR` rather than from `--model-dir`.
fn dir_from_env(dir: &std::path::Path) -> bool {
    std::env::var_os(mnemo_embed::MODEL_DIR_ENV)
        .is_some_and(|value| std::path::Path::new(&value) == dir)
}

/// Connections to a shared memory database, per process: as many as requests run at once
/// rarely hold one for long (one short transaction each).
const MEMORY_DB_CONNECTIONS: u32 = 16;

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
    /// When the embedded store acknowledges a write: `periodic` (in its write-ahead log:
    /// survives kill -9; synced to disk every 5 s) or `fsync` (synced first: survives a power
    /// loss; slower) [default: periodic, or the config file's `durability`]
    #[arg(long, env = "MNEMO_DURABILITY", global = true)]
    durability: Option<Durability>,
    /// Where agents' memories and their history are kept: `sqlite` (DATA_DIR/memory.sqlite)
    /// or a PostgreSQL server shared by several mnemo servers,
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE [default: sqlite, or the config's [db] url]
    #[arg(
        long = "db",
        env = "MNEMO_DB",
        global = true,
        hide_env_values = true,
        value_name = "DATABASE"
    )]
    memory_db: Option<String>,
    /// Collections written since are optimised this often in the background (a service's
    /// store: `mnemo serve`); a command optimises what it wrote itself.
    #[arg(skip)]
    optimize_interval: Option<std::time::Duration>,
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

    /// `--store`, or else `fallback` (the server's config file), or else embedded; the same
    /// for the API key, the durability and the memory database.
    pub fn with_fallback(
        mut self,
        fallback: Option<&str>,
        api_key: Option<&str>,
        durability: Option<Durability>,
        memory_db: Option<&str>,
    ) -> Self {
        if self.memory_db.is_none() {
            self.memory_db = memory_db.map(str::to_owned);
        }
        if self.location.is_none() {
            self.location = fallback.map(str::to_owned);
        }
        if self.qdrant_api_key.is_none() {
            self.qdrant_api_key = api_key.map(str::to_owned);
        }
        self.durability = self.durability.or(durability);
        self
    }

    /// These settings for a long-running service: the embedded store optimises what was
    /// written in the background, as a Qdrant server does.
    pub fn for_service(mut self) -> Self {
        self.optimize_interval = Some(std::time::Duration::from_secs(10));
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
                if self.durability.is_some() {
                    anyhow::bail!(
                        "durability is the embedded store's setting; {location} is a Qdrant server, which syncs as its own config says"
                    );
                }
                let store = QdrantStore::open(location, self.qdrant_api_key.clone())
                    .with_context(|| format!("cannot use the store {location}"))?;
                Ok(OpenedStore::Remote(Arc::new(store)))
            }
        }
    }

    /// Opens where agents' memories' records and history are kept: `--db` (a PostgreSQL
    /// server), or SQLite beside the data directory's collections, whichever store holds the
    /// vectors.
    pub fn open_memory_records(&self) -> anyhow::Result<Arc<dyn MemoryRecords>> {
        match self.memory_db.as_deref().filter(|db| *db != "sqlite") {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let records = PostgresRecords::connect(url, MEMORY_DB_CONNECTIONS)
                    .context("cannot open the shared memory database (--db)")?;
                Ok(Arc::new(records))
            }
            Some(other) => anyhow::bail!(
                "--db `{}` is neither `sqlite` nor a postgres:// URL",
                other.split('@').next_back().unwrap_or(other)
            ),
            None => {
                let path = self.dir().join("memory.sqlite");
                let records = SqliteRecords::open(&path).with_context(|| {
                    format!("cannot open the memory database {}", path.display())
                })?;
                Ok(Arc::new(records))
            }
        }
    }

    /// The data directory: `--data-dir`, or the default under `$XDG_DATA_HOME`.
    pub fn data_dir_or_default(&self) -> PathBuf {
        self.dir()
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
        let options = OpenOptions {
            durability: self.durability.unwrap_or_default(),
            optimize_interval: self.optimize_interval,
            ..OpenOptions::default()
        };
        EmbeddedStore::open(&dir, options)
            .with_context(|| format!("cannot open the data directory {}", dir.display()))
    }
}

pub fn engine_over(store: Arc<dyn VectorStore>, model: &ModelArgs) -> anyhow::Result<Engine> {
    let embedder = model.load(None, None)?;
    Ok(Engine::new(store, Arc::new(embedder), model.model_id()?))
}
