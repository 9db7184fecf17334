//! The real parts every engine test uses: the model, a store on disk, the shared corpus.

use std::path::PathBuf;
use std::sync::Arc;

use mnemo_embed::{DEFAULT_MODEL_NAME, Embedder, EmbedderOptions, default_model_dir};
use mnemo_engine::Engine;
use mnemo_store::{EmbeddedStore, OpenOptions};

#[allow(dead_code)]
pub fn engine(data_dir: &std::path::Path) -> Engine {
    let store = EmbeddedStore::open(data_dir, OpenOptions::default()).expect("store");
    engine_on(Arc::new(store), &embedder())
}

pub fn embedder() -> Arc<Embedder> {
    let model_dir =
        std::env::var_os("MNEMO_MODEL_DIR").map_or_else(default_model_dir, PathBuf::from);
    let embedder = Embedder::load(&model_dir, EmbedderOptions::default())
        .unwrap_or_else(|err| panic!("the model is needed (make model): {err}"));
    Arc::new(embedder)
}

pub fn engine_on(store: Arc<dyn mnemo_engine::VectorStore>, embedder: &Arc<Embedder>) -> Engine {
    Engine::new(store, Arc::clone(embedder), DEFAULT_MODEL_NAME)
}
