//! The public entry point: load the model once, embed batches of texts.

use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::candle_backend::CandleEncoder;
use crate::cpu::{CpuEncoder, Workspace};
use crate::error::{EmbedError, Result};
use crate::model_dir::ModelFiles;
use crate::remote::{RemoteConfig, RemoteEmbedder};
use crate::tokenize::{TextTokenizer, TokenizedText};

/// Which implementation of the encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// A CUDA GPU when the `cuda` feature is built and a device is present, else `Cpu`.
    #[default]
    Auto,
    /// mnemo's fused CPU encoder (the fastest on a CPU).
    Cpu,
    /// candle-transformers' `BertModel` on the CPU: slower, an independent reference.
    CandleCpu,
    /// candle-transformers' `BertModel` on CUDA device `n` (needs the `cuda` feature).
    Cuda(usize),
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "candle-cpu" => Ok(Self::CandleCpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device {other:?}: expected auto, cpu, candle-cpu, cuda or cuda:N"
                )),
            },
        }
    }
}

/// How the embedder runs; the defaults suit short texts such as task lines.
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    pub backend: Backend,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Texts in one forward batch at most.
    pub max_batch_texts: usize,
    /// Word pieces in one forward batch at most (a single longer text still gets its own batch).
    pub max_batch_tokens: usize,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            threads: 0,
            max_batch_texts: 256,
            max_batch_tokens: 4096,
        }
    }
}

enum Engine {
    Cpu(CpuEncoder),
    Candle(CandleEncoder),
}

/// A model that embeds texts: a local one (all-MiniLM-L6-v2, all-mpnet-base-v2, or another
/// BERT or MPNet sentence-transformers folder with mean pooling), loaded once and embedding
/// exactly as sentence-transformers does, or a remote one ([`RemoteConfig`]) behind the same
/// calls.
pub struct Embedder {
    kind: Kind,
}

enum Kind {
    // Boxed: a local model's state is kilobytes, a remote one's a client.
    Local(Box<LocalEmbedder>),
    Remote(RemoteEmbedder),
}

struct LocalEmbedder {
    files: ModelFiles,
    tokenizer: TextTokenizer,
    engine: Engine,
    pool: rayon::ThreadPool,
    threads: usize,
    options: EmbedderOptions,
    /// Scratch buffers of finished batches, kept for the next ones: a batch's buffers are
    /// tens of MB, and allocating them afresh costs page faults on every call.
    workspaces: Mutex<Vec<Workspace>>,
}

/// The vectors of one call, in the order of its texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    token_counts: Vec<usize>,
    truncated: Vec<usize>,
}

impl Embeddings {
    pub(crate) fn from_parts(
        dim: usize,
        data: Vec<f32>,
        token_counts: Vec<usize>,
        truncated: Vec<usize>,
    ) -> Self {
        Self {
            dim,
            data,
            token_counts,
            truncated,
        }
    }

    pub fn len(&self) -> usize {
        self.token_counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.token_counts.is_empty()
    }

    /// Floats in one vector (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The unit-length vector of text `index`.
    pub fn row(&self, index: usize) -> &[f32] {
        &self.data[index * self.dim..][..self.dim]
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1)).take(self.len())
    }

    /// All vectors end to end, row-major.
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }

    /// Word pieces of each text before truncation, `[CLS]` and `[SEP]` included. A text past
    /// the model's window is cut before it is tokenized (its first `max_seq_length` pieces
    /// are the same), so its count is more than the window and at most the whole text's;
    /// [`Embedder::count_tokens`] counts a whole text.
    pub fn token_counts(&self) -> &[usize] {
        &self.token_counts
    }

    /// Indices of the texts longer than the model's window: only their first
    /// `max_seq_length` word pieces were embedded.
    pub fn truncated(&self) -> &[usize] {
        &self.truncated
    }

    pub fn into_vecs(self) -> Vec<Vec<f32>> {
        self.data
            .chunks_exact(self.dim.max(1))
            .map(<[f32]>::to_vec)
            .collect()
    }
}

impl Embedder {
    /// Loads the model in `dir` (see [`crate::default_model_dir`]).
    pub fn load(dir: &Path, options: EmbedderOptions) -> Result<Self> {
        Ok(Self {
            kind: Kind::Local(Box::new(LocalEmbedder::load(dir, options)?)),
        })
    }

    /// A model served by another server; nothing is sent until the first texts.
    pub fn remote(config: RemoteConfig) -> Result<Self> {
        Ok(Self {
            kind: Kind::Remote(RemoteEmbedder::new(config)?),
        })
    }

    pub fn dim(&self) -> usize {
        match &self.kind {
            Kind::Local(local) => local.dim(),
            Kind::Remote(remote) => remote.config().dimension,
        }
    }

    /// Word pieces the model sees at most per text, `[CLS]` and `[SEP]` included; `None`
    /// for a remote model, which truncates as its server does.
    pub fn max_seq_length(&self) -> Option<usize> {
        match &self.kind {
            Kind::Local(local) => Some(local.files.max_seq_length),
            Kind::Remote(_) => None,
        }
    }

    /// The folder of a local model's files; `None` for a remote one.
    pub fn model_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Local(local) => Some(&local.files.dir),
            Kind::Remote(_) => None,
        }
    }

    /// Worker threads of a local model; requests at once of a remote one.
    pub fn threads(&self) -> usize {
        match &self.kind {
            Kind::Local(local) => local.threads,
            Kind::Remote(remote) => remote.config().max_concurrency,
        }
    }

    /// Who computes the vectors: `local` (this process) or the remote provider.
    pub fn provider(&self) -> &'static str {
        match &self.kind {
            Kind::Local(_) => "local",
            Kind::Remote(remote) => remote.config().provider.name(),
        }
    }

    /// What runs the encoder, for logs and benchmark reports.
    pub fn backend_name(&self) -> String {
        match &self.kind {
            Kind::Local(local) => local.backend_name(),
            Kind::Remote(remote) => format!(
                "{} at {} (model {})",
                remote.config().provider.name(),
                remote.config().endpoint(),
                remote.config().model
            ),
        }
    }

    /// Word pieces in `text` before truncation, `[CLS]` and `[SEP]` included; a remote
    /// model's tokenizer is not here to count with.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        match &self.kind {
            Kind::Local(local) => local.tokenizer.count(text),
            Kind::Remote(remote) => Err(EmbedError::Remote {
                model: remote.config().name.clone(),
                endpoint: remote.config().endpoint(),
                message: "a remote model's tokens are not counted here".into(),
            }),
        }
    }

    /// Embeds `texts`; the result's row `i` belongs to `texts[i]`.
    ///
    /// Fails on the first (lowest-index) text that is empty or only whitespace, naming its
    /// index; nothing is embedded then.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings> {
        match &self.kind {
            Kind::Local(local) => local.embed(texts),
            Kind::Remote(remote) => remote.embed(texts),
        }
    }
}

impl LocalEmbedder {
    fn load(dir: &Path, options: EmbedderOptions) -> Result<Self> {
        let files = ModelFiles::open(dir)?;
        let tokenizer = TextTokenizer::load(&files.tokenizer, files.max_seq_length)?;
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            options.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mnemo-embed-{i}"))
            .build()
            .map_err(|e| EmbedError::Backend {
                backend: "cpu",
                message: format!("cannot start {threads} worker threads: {e}"),
            })?;
        let engine = select_engine(&files, options.backend)?;
        Ok(Self {
            files,
            tokenizer,
            engine,
            pool,
            threads,
            options,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` with a scratch workspace taken from the shelf (or a new one), then puts it back.
    fn with_workspace<R>(&self, f: impl FnOnce(&mut Workspace) -> R) -> R {
        let taken = self
            .workspaces
            .lock()
            .ok()
            .and_then(|mut shelf| shelf.pop());
        let mut workspace = taken.unwrap_or_default();
        let result = f(&mut workspace);
        // A poisoned lock only means another batch panicked: drop the buffers, keep going.
        if let Ok(mut shelf) = self.workspaces.lock() {
            shelf.push(workspace);
        }
        result
    }

    fn dim(&self) -> usize {
        self.files.config.hidden_size
    }

    fn backend_name(&self) -> String {
        match &self.engine {
            Engine::Cpu(_) => format!("cpu (fused, {} threads)", self.threads),
            Engine::Candle(c) => format!("candle ({})", c.device_name()),
        }
    }

    fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings> {
        let dim = self.dim();
        let tokenized: Vec<Result<TokenizedText>> = self.pool.install(|| {
            texts
                .par_iter()
                .enumerate()
                .map(|(i, t)| self.tokenizer.tokenize(i, t.as_ref()))
                .collect()
        });
        let tokenized = tokenized.into_iter().collect::<Result<Vec<_>>>()?;

        let token_counts: Vec<usize> = tokenized.iter().map(|t| t.full_len).collect();
        let truncated: Vec<usize> = (0..tokenized.len())
            .filter(|&i| tokenized[i].truncated())
            .collect();
        let mut data = vec![0f32; texts.len() * dim];
        let batches = plan_batches(&tokenized, self.threads, &self.options);

        let run_batch = |batch: &[usize], matmul_threads: usize| -> Result<Vec<f32>> {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| tokenized[i].ids.as_slice()).collect();
            let mut out = vec![0f32; seqs.len() * dim];
            match &self.engine {
                Engine::Cpu(encoder) => {
                    self.with_workspace(|ws| encoder.encode(&seqs, matmul_threads, ws, &mut out))
                }
                Engine::Candle(encoder) => encoder.encode(&seqs, &mut out)?,
            }
            Ok(out)
        };

        let parallel_batches =
            matches!(self.engine, Engine::Cpu(_)) && self.threads > 1 && batches.len() > 1;
        let outputs: Vec<Result<Vec<f32>>> = if parallel_batches {
            // Whole batches side by side, one per worker, each with single-threaded matrix
            // products: on a few cores this beats splitting every product across threads.
            self.pool.install(|| {
                batches
                    .par_iter()
                    .map(|batch| run_batch(batch, 1))
                    .collect()
            })
        } else {
            self.pool.install(|| {
                batches
                    .iter()
                    .map(|batch| run_batch(batch, self.threads))
                    .collect()
            })
        };
        for (batch, output) in batches.iter().zip(outputs) {
            let output = output?;
            for (&index, vector) in batch.iter().zip(output.chunks_exact(dim)) {
                data[index * dim..][..dim].copy_from_slice(vector);
            }
        }
        Ok(Embeddings {
            dim,
            data,
            token_counts,
            truncated,
        })
    }
}

/// Groups text indices into forward batches: sorted by length so each batch holds texts of
/// similar size (padding-free for the CPU encoder, little padding for candle), within the
/// size limits, and split into at least one batch per worker when there is enough work.
fn plan_batches(
    tokenized: &[TokenizedText],
    threads: usize,
    options: &EmbedderOptions,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..tokenized.len()).collect();
    order.sort_by_key(|&i| tokenized[i].ids.len());
    let total: usize = tokenized.iter().map(|t| t.ids.len()).sum();
    // As many batches as the token cap needs, rounded up to a multiple of the workers and
    // cut equal: 12,000 tokens with a cap of 4,096 on 2 workers are 4 batches of 3,000, not
    // 4,096 + 4,096 + 4,096 + 12 (one worker doing twice the other's work).
    let workers = threads.max(1);
    let needed = total.div_ceil(options.max_batch_tokens.max(1)).max(1);
    let token_budget = total.div_ceil(needed.div_ceil(workers) * workers).max(1);
    let text_budget = options.max_batch_texts.max(1);

    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_tokens = 0;
    for i in order {
        let len = tokenized[i].ids.len();
        if !current.is_empty()
            && (current.len() >= text_budget || current_tokens + len > token_budget)
        {
            batches.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        current.push(i);
        current_tokens += len;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

fn select_engine(files: &ModelFiles, backend: Backend) -> Result<Engine> {
    let candle_runs_it = !files.config.is_mpnet();
    if !candle_runs_it && matches!(backend, Backend::CandleCpu | Backend::Cuda(_)) {
        return Err(EmbedError::Backend {
            backend: "candle",
            message: format!(
                "it runs BERT models only; {} is an MPNet: use the cpu backend",
                files.dir.display()
            ),
        });
    }
    match backend {
        Backend::Cpu => Ok(Engine::Cpu(CpuEncoder::load(files)?)),
        Backend::CandleCpu => Ok(Engine::Candle(CandleEncoder::load(
            files,
            candle_core::Device::Cpu,
        )?)),
        Backend::Cuda(ordinal) => Ok(Engine::Candle(CandleEncoder::load(
            files,
            cuda_device(ordinal)?,
        )?)),
        Backend::Auto => {
            if cfg!(feature = "cuda")
                && candle_runs_it
                && let Ok(device) = cuda_device(0)
            {
                return Ok(Engine::Candle(CandleEncoder::load(files, device)?));
            }
            Ok(Engine::Cpu(CpuEncoder::load(files)?))
        }
    }
}

/// The one place that touches CUDA.
fn cuda_device(ordinal: usize) -> Result<candle_core::Device> {
    if !cfg!(feature = "cuda") {
        return Err(EmbedError::DeviceUnavailable {
            device: format!("cuda:{ordinal}"),
            message: "this build of mnemo has no GPU support; rebuild with `--features cuda`"
                .to_owned(),
        });
    }
    candle_core::Device::new_cuda(ordinal).map_err(|e| EmbedError::DeviceUnavailable {
        device: format!("cuda:{ordinal}"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts_of_lengths(lengths: &[usize]) -> Vec<TokenizedText> {
        lengths
            .iter()
            .map(|&n| TokenizedText {
                ids: vec![1; n],
                full_len: n,
            })
            .collect()
    }

    #[test]
    fn batches_cover_every_text_once_sorted_by_length() {
        let tokenized = texts_of_lengths(&[30, 5, 200, 12, 12, 7, 90, 3]);
        let options = EmbedderOptions {
            max_batch_tokens: 100,
            max_batch_texts: 3,
            ..EmbedderOptions::default()
        };
        let batches = plan_batches(&tokenized, 2, &options);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        let lengths: Vec<usize> = seen.iter().map(|&i| tokenized[i].ids.len()).collect();
        assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{lengths:?}");
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        for batch in &batches {
            let tokens: usize = batch.iter().map(|&i| tokenized[i].ids.len()).sum();
            assert!(batch.len() <= 3);
            assert!(
                batch.len() == 1 || tokens <= 100,
                "batch {batch:?} has {tokens} tokens"
            );
        }
    }

    #[test]
    fn batches_give_each_worker_an_equal_share() {
        // 600 texts of 20 tokens under a cap of 4,096: 3 batches would do, but on 2 workers
        // that is one worker with twice the other's work; 4 equal ones are planned.
        let tokenized = texts_of_lengths(&[20; 600]);
        let batches = plan_batches(&tokenized, 2, &EmbedderOptions::default());
        assert_eq!(batches.len(), 4);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [150, 150, 150, 150]);
    }

    #[test]
    fn small_inputs_are_split_across_workers() {
        let tokenized = texts_of_lengths(&[10, 10, 10, 10]);
        let batches = plan_batches(&tokenized, 2, &EmbedderOptions::default());
        assert_eq!(batches.len(), 2);
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("cuda:1".parse::<Backend>(), Ok(Backend::Cuda(1)));
        assert_eq!("cpu".parse::<Backend>(), Ok(Backend::Cpu));
        assert!("gpu".parse::<Backend>().is_err());
    }
}
