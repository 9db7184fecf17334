use std::path::PathBuf;

/// Everything that can go wrong while loading the model or embedding text.
///
/// Variants name what failed and where (the file, or the index of the text in the batch),
/// so callers can report it without adding guesswork.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "model directory {path} does not exist; fetch the model with `make model` \
         (or `scripts/fetch-model.sh`), or point MNEMO_MODEL_DIR at a sentence-transformers folder"
    )]
    ModelDirMissing { path: PathBuf },

    #[error(
        "model file {path} is missing; the model folder is incomplete: run `make model` \
         (or `scripts/fetch-model.sh`) to fetch and verify it again"
    )]
    ModelFileMissing { path: PathBuf },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid model configuration in {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("cannot load the tokenizer from {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("cannot load the weights from {path}: {message}")]
    Weights { path: PathBuf, message: String },

    #[error("text at index {index} is empty or only whitespace; there is nothing to embed")]
    EmptyText { index: usize },

    #[error("cannot tokenize the text at index {index}: {message}")]
    Tokenize { index: usize, message: String },

    #[error("device {device} is not available: {message}")]
    DeviceUnavailable { device: String, message: String },

    #[error("the remote model `{model}` at {endpoint}: {message}")]
    Remote {
        model: String,
        endpoint: String,
        message: String,
    },

    #[error("the {backend} backend failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

impl EmbedError {
    /// Whether the text given is at fault (empty, untokenizable), not the model or machine.
    pub fn is_input_error(&self) -> bool {
        matches!(self, Self::EmptyText { .. } | Self::Tokenize { .. })
    }
}
