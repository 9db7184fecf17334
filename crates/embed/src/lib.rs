//! Sentence embeddings on the local machine, identical in output to sentence-transformers:
//! its tokenizer, truncation to `max_seq_length` word pieces, the encoder (BERT for
//! all-MiniLM-L6-v2, MPNet for all-mpnet-base-v2), mean pooling over the real tokens, L2
//! normalisation. [`catalog`] lists the models mnemo knows by name and where they come from.
//!
//! ```no_run
//! use mnemo_embed::{Embedder, EmbedderOptions, default_model_dir};
//! let embedder = Embedder::load(&default_model_dir(), EmbedderOptions::default())?;
//! let vectors = embedder.embed(&["Créer le module de vectorisation", "Write the tests"])?;
//! assert_eq!(vectors.row(0).len(), 384);
//! # Ok::<(), mnemo_embed::EmbedError>(())
//! ```
//!
//! This crate knows nothing of storage or of where texts come from, and never downloads:
//! the model folder is fetched and verified by `mnemo models fetch` or `scripts/fetch-model.sh`.

mod candle_backend;
pub mod catalog;
mod cpu;
mod embedder;
mod error;
mod model_dir;
mod remote;
mod tokenize;

pub use catalog::{KnownModel, MODELS, find_model, model_dir_for};
pub use embedder::{Backend, Embedder, EmbedderOptions, Embeddings};
pub use error::{EmbedError, Result};
pub use model_dir::{DEFAULT_MODEL_NAME, MODEL_DIR_ENV, default_model_dir};
pub use remote::{Provider, RemoteConfig, describe_http_error};
