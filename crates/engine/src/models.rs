//! The models an engine can embed with besides its own: any model of the catalog installed on
//! this machine, loaded on first use and kept (`POST /v1/embeddings` with `model`, and later
//! collections of another model). The engine's own model is the one its collections were
//! built with; the others only embed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mnemo_embed::{Embedder, EmbedderOptions, MODELS, find_model, model_dir_for};
use mnemo_store::ModelBinding;
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
    /// The model of this engine's new collections.
    pub default: bool,
    /// The collections whose vectors it makes (their queries are embedded with it).
    pub collections: Vec<String>,
}

/// A model as a collection uses it: the name its points carry in `model`, and its embedder.
#[derive(Clone)]
pub struct CollectionModel {
    pub id: String,
    pub embedder: Arc<Embedder>,
}

impl CollectionModel {
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// What the registry records of it.
    pub fn binding(&self) -> ModelBinding {
        ModelBinding {
            model: self.id.clone(),
            dimension: self.dim(),
            pooling: "mean".to_owned(),
            provider: self.embedder.provider().to_owned(),
        }
    }
}

impl Engine {
    /// The engine's own model: the one new collections are made for.
    pub fn default_model(&self) -> CollectionModel {
        CollectionModel {
            id: self.model_id().to_owned(),
            embedder: Arc::clone(&self.embedder),
        }
    }

    /// The model `collection` (or the collection its alias points at) was made for: the
    /// one its queries and new points must be embedded with. A collection made before models
    /// were recorded, or not made by mnemo, is taken to be of the engine's own model.
    pub fn collection_model(&self, collection: &str) -> Result<CollectionModel> {
        match self.registry().binding(collection) {
            Some(binding) if !binding.model.eq_ignore_ascii_case(self.model_id()) => {
                Ok(CollectionModel {
                    embedder: self.embedder_for(&binding.model)?,
                    id: binding.model,
                })
            }
            _ => Ok(self.default_model()),
        }
    }

    /// The model `name` (mnemo's or sentence-transformers' name), loaded if it is not.
    pub fn model_named(&self, name: &str) -> Result<CollectionModel> {
        let embedder = self.embedder_for(name)?;
        let id = find_model(name).map_or_else(|| name.to_owned(), |model| model.name.to_owned());
        Ok(CollectionModel { id, embedder })
    }

    /// Records that `collection` holds vectors of `model`.
    pub fn bind_model(&self, collection: &str, model: &CollectionModel) -> Result<()> {
        let physical = self.registry().resolve(collection);
        Ok(self.registry().bind(&physical, &model.binding())?)
    }

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
        let collections = self.store().list_collections().unwrap_or_default();
        let collections_of = |model: &str| -> Vec<String> {
            collections
                .iter()
                .filter(|collection| {
                    self.registry().binding(collection).map_or_else(
                        || model.eq_ignore_ascii_case(self.model_id()),
                        |binding| binding.model.eq_ignore_ascii_case(model),
                    )
                })
                .cloned()
                .collect()
        };
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
                    collections: collections_of(model.name),
                }
            })
            .collect()
    }
}
