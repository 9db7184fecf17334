//! The models an engine can embed with besides its own: any model of the catalog installed on
//! this machine, loaded on first use and kept (`POST /v1/embeddings` with `model`, and later
//! collections of another model). The engine's own model is the one its collections were
//! built with; the others only embed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mnemo_embed::{Embedder, EmbedderOptions, MODELS, RemoteConfig, find_model, model_dir_for};
use mnemo_store::ModelBinding;
use serde::Serialize;

use crate::{Engine, EngineError, Result};

/// Embedders of other models, by name, loaded when first asked for; and the remote models
/// the configuration describes.
#[derive(Default)]
pub(crate) struct ModelPool {
    loaded: Mutex<BTreeMap<String, Arc<Embedder>>>,
    remote: BTreeMap<String, RemoteConfig>,
}

/// A model as a server lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServedModel {
    /// mnemo's name (`all-mpnet-base-v2`).
    pub name: String,
    /// sentence-transformers' name (`sentence-transformers/all-mpnet-base-v2`); for a remote
    /// model, the name its server knows it by.
    pub hub_id: String,
    pub dimension: usize,
    /// Word pieces read at most per text; absent for a remote model.
    pub max_seq_length: Option<usize>,
    /// `local`, or the remote provider (`openai`, `tei`, `ollama`).
    pub provider: String,
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
    /// This engine with the remote models of the configuration (`[models.NAME]`), embedded
    /// by their servers when a collection or a request names them.
    pub fn with_remote_models(mut self, models: impl IntoIterator<Item = RemoteConfig>) -> Self {
        self.models.remote = models
            .into_iter()
            .map(|config| (config.name.clone(), config))
            .collect();
        self
    }

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

    /// The model `name` (mnemo's or sentence-transformers' name, or a remote model's),
    /// loaded if it is not.
    pub fn model_named(&self, name: &str) -> Result<CollectionModel> {
        let embedder = self.embedder_for(name)?;
        let id = match find_model(name) {
            Some(model) if !self.models.remote.contains_key(name) => model.name.to_owned(),
            _ => name.to_owned(),
        };
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
        if let Some(config) = self.models.remote.get(name) {
            let mut loaded = crate::lock(&self.models.loaded);
            if let Some(embedder) = loaded.get(name) {
                return Ok(Arc::clone(embedder));
            }
            let embedder = Arc::new(Embedder::remote(config.clone())?);
            loaded.insert(name.to_owned(), Arc::clone(&embedder));
            return Ok(embedder);
        }
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
        loaded.insert(model.name.to_owned(), Arc::clone(&embedder));
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
        let local = MODELS.iter().map(|model| {
            let default = model.name.eq_ignore_ascii_case(self.model_id());
            ServedModel {
                name: model.name.to_owned(),
                hub_id: model.hub_id.to_owned(),
                dimension: model.dimension,
                max_seq_length: Some(model.max_seq_length),
                provider: "local".to_owned(),
                installed: default || model_dir_for(model.name).exists(),
                loaded: default || loaded.contains_key(model.name),
                default,
                collections: collections_of(model.name),
            }
        });
        let remote = self.models.remote.values().map(|config| ServedModel {
            name: config.name.clone(),
            hub_id: config.model.clone(),
            dimension: config.dimension,
            max_seq_length: None,
            provider: config.provider.name().to_owned(),
            installed: true,
            loaded: loaded.contains_key(&config.name),
            default: false,
            collections: collections_of(&config.name),
        });
        local.chain(remote).collect()
    }
}
