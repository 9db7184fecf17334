//! The models an engine can embed with besides its own: any model of the catalog installed on
//! this machine, loaded on first use and kept (`POST /v1/embeddings` with `model`, and later
//! collections of another model). The engine's own model is the one its collections were
//! built with; the others only embed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mnemo_embed::{Embedder, EmbedderOptions, MODELS, find_model, model_dir_for};
use serde::Serialize;

use crate::{Engine, EngineError, Result};

/// Embedders of other models, by name, loaded when first asked for.
#[derive(Default)]
pub(crate) struct ModelPool {
    loaded: Mutex<BTreeMap<&'static str, Arc<Embedder>>>,
}

/// A model as a server lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServedModel {
    /// mnemo's name (`all-mpnet-base-v2`).
    pub name: String,
    /// sentence-transformers' name (`sentence-transformers/all-mpnet-base-v2`).
    pub hub_id: String,
    pub dimension: usize,
    pub max_seq_length: usize,
    /// Its folder is present: it can be loaded.
    pub installed: bool,
    /// In memory now (the engine's own model always is).
    pub loaded: bool,
    /// The model of this engine's collections.
    pub default: bool,
}

impl Engine {
    /// The embedder of the model `name` (mnemo's or sentence-transformers' name): the
    /// engine's own, or another installed one, loaded once with the same thread count.
    pub fn embedder_for(&self, name: &str) -> Result<Arc<Embedder>> {
        let model = find_model(name).ok_or_else(|| EngineError::UnknownModel(name.to_owned()))?;
        if model.name.eq_ignore_ascii_case(self.model_id()) {
            return Ok(Arc::clone(&self.embedder));
        }
        // Held while loading: a second request for the same model waits for the first load
        // rather than reading 400 MB a second time.
        let mut loaded = crate::lock(&self.models.loaded);
        if let Some(embedder) = loaded.get(model.name) {
            return Ok(Arc::clone(embedder));
        }
        let dir = model_dir_for(model.name);
        if !dir.exists() {
            return Err(EngineError::ModelNotInstalled(model.name.to_owned()));
        }
        let options = EmbedderOptions {
            threads: self.embedder.threads(),
            ..EmbedderOptions::default()
        };
        let embedder = Arc::new(Embedder::load(&dir, options)?);
        loaded.insert(model.name, Arc::clone(&embedder));
        Ok(embedder)
    }

    /// Every model of the catalog, and whether this machine has it and this engine holds it.
    pub fn served_models(&self) -> Vec<ServedModel> {
        let loaded = crate::lock(&self.models.loaded);
        MODELS
            .iter()
            .map(|model| {
                let default = model.name.eq_ignore_ascii_case(self.model_id());
                ServedModel {
                    name: model.name.to_owned(),
                    hub_id: model.hub_id.to_owned(),
                    dimension: model.dimension,
                    max_seq_length: model.max_seq_length,
                    installed: default || model_dir_for(model.name).exists(),
                    loaded: default || loaded.contains_key(model.name),
                    default,
                }
            })
            .collect()
    }
}
