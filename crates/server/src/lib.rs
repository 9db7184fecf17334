//! mnemo's REST API: the engine behind axum, for the tools, scripts and agents that share one
//! store. JSON in and out; every error is `{"error": {"code", "message", "details"}}`.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mnemo_engine::Engine;

pub use api::{AppState, router};
pub use config::{ConfigError, DEFAULT_BIND, RateLimit, ServerConfig};
pub use error::{ApiError, ErrorCode};

/// Listens on `config.bind` and serves until `shutdown` completes; requests in flight then
/// finish, and the store is flushed. `on_listening` gets the address bound (the port chosen
/// when 0 was asked).
pub async fn serve(
    engine: Arc<Engine>,
    config: ServerConfig,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    on_listening(listener.local_addr()?);
    let state = Arc::new(AppState::new(engine.clone(), config));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tokio::task::spawn_blocking(move || engine.store().flush())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}
