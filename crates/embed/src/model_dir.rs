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
    crate::catalog::model_dir_for(DEFAULT_MODEL_NAME)
}

/// The encoder's hyper-parameters mnemo reads from `config.json`: a BERT (all-MiniLM-L6-v2)
/// or an MPNet (all-mpnet-base-v2).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// `bert` or `mpnet`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// BERT's token types; MPNet has none.
    #[serde(default)]
    pub type_vocab_size: usize,
    /// MPNet: the buckets of its relative position bias.
    #[serde(default = "default_relative_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

impl BertConfig {
    pub fn is_mpnet(&self) -> bool {
        self.model_type == "mpnet"
    }
}

fn default_model_type() -> String {
    "bert".to_owned()
}
fn default_relative_buckets() -> usize {
    32
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
    if !matches!(config.model_type.as_str(), "bert" | "mpnet") {
        return fail(format!(
            "model_type {:?} is not supported (\"bert\" or \"mpnet\")",
            config.model_type
        ));
    }
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
    if config.vocab_size == 0 || (!config.is_mpnet() && config.type_vocab_size == 0) {
        return fail("vocab_size and type_vocab_size must be positive".to_owned());
    }
    if config.is_mpnet()
        && (config.relative_attention_num_buckets < 4
            || config.relative_attention_num_buckets > 1024
            || config.max_position_embeddings < 3)
    {
        return fail(format!(
            "relative_attention_num_buckets {} must be between 4 and 1024",
            config.relative_attention_num_buckets
        ));
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
