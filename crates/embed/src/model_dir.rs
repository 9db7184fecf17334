//! Where the model lives on disk and what its configuration files say.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{EmbedError, Result};

/// Folder name of the default model inside the cache.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Environment variable that overrides the model folder.
pub const MODEL_DIR_ENV: &str = "MNEMO_MODEL_DIR";

/// The model folder: `MNEMO_MODEL_DIR` when set, else `~/.cache/mnemo/models/all-MiniLM-L6-v2`
/// (`$XDG_CACHE_HOME` replaces `~/.cache` when set).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("mnemo").join("models").join(DEFAULT_MODEL_NAME)
}

/// The BERT hyper-parameters mnemo reads from `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".to_owned()
}
fn default_position_embedding_type() -> String {
    "absolute".to_owned()
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// A checked sentence-transformers folder: the files exist and the configuration describes
/// a model this crate computes exactly (BERT, GELU, absolute positions, mean pooling).
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
    pub config: BertConfig,
    /// Word pieces the model sees at most, `[CLS]` and `[SEP]` included.
    pub max_seq_length: usize,
}

impl ModelFiles {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(EmbedError::ModelDirMissing {
                path: dir.to_path_buf(),
            });
        }
        let required = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EmbedError::ModelFileMissing { path })
            }
        };
        let weights = required("model.safetensors")?;
        let tokenizer = required("tokenizer.json")?;
        let config_path = required("config.json")?;
        let config: BertConfig = read_json(&config_path)?;
        check_config(&config, &config_path)?;

        let st_path = required("sentence_bert_config.json")?;
        let st: SentenceBertConfig = read_json(&st_path)?;
        if st.max_seq_length < 2 || st.max_seq_length > config.max_position_embeddings {
            return Err(EmbedError::Config {
                path: st_path,
                message: format!(
                    "max_seq_length {} must be between 2 and max_position_embeddings {}",
                    st.max_seq_length, config.max_position_embeddings
                ),
            });
        }

        // A folder without a pooling config is taken as mean pooling, as sentence-transformers does.
        let pooling_path = dir.join("1_Pooling").join("config.json");
        if pooling_path.is_file() {
            let pooling: PoolingConfig = read_json(&pooling_path)?;
            let only_mean = pooling.pooling_mode_mean_tokens
                && !pooling.pooling_mode_cls_token
                && !pooling.pooling_mode_max_tokens
                && !pooling.pooling_mode_mean_sqrt_len_tokens;
            if !only_mean {
                return Err(EmbedError::Config {
                    path: pooling_path,
                    message: "only mean pooling over tokens is supported".to_owned(),
                });
            }
        }

        Ok(Self {
            dir: dir.to_path_buf(),
            weights,
            tokenizer,
            config,
            max_seq_length: st.max_seq_length,
        })
    }
}

fn check_config(config: &BertConfig, path: &Path) -> Result<()> {
    let fail = |message: String| {
        Err(EmbedError::Config {
            path: path.to_path_buf(),
            message,
        })
    };
    if config.hidden_act != "gelu" {
        return fail(format!(
            "hidden_act {:?} is not supported (only \"gelu\")",
            config.hidden_act
        ));
    }
    if config.position_embedding_type != "absolute" {
        return fail(format!(
            "position_embedding_type {:?} is not supported (only \"absolute\")",
            config.position_embedding_type
        ));
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return fail(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        ));
    }
    if config.type_vocab_size == 0 || config.vocab_size == 0 {
        return fail("vocab_size and type_vocab_size must be positive".to_owned());
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| EmbedError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
