//! mnemo's REST API: the engine behind axum, for the tools, scripts and agents that share one
//! store. JSON in and out; every error is `{"error": {"code", "message", "details"}}`.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mnemo_engine::Engine;

pub use api::{AppState, router};
pub use config::{ConfigError, DEFAULT_BIND, RateLimit, ServerConfig};
pub use error::{ApiError, ErrorCode};
pub use tls::{TlsError, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {bind}: {source}")]
    Listen {
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the server stopped, but flushing the store failed: {0}")]
    Flush(#[source] mnemo_store::StoreError),
}

/// Listens on `config.bind` (HTTPS when `config.tls` names a certificate) and serves until
/// `shutdown` completes; requests in flight then finish, and the store is flushed.
/// `on_listening` gets the address bound (the port chosen when 0 was asked) as a URL.
pub async fn serve(
    engine: Arc<Engine>,
    config: ServerConfig,
    on_listening: impl FnOnce(String),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // The certificate is read before listening: a wrong file is said at once.
    let acceptor = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
    let bind = config.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| ServeError::Listen { bind, source })?;
    let address = listener.local_addr()?;
    on_listening(format!("{}://{address}", config.scheme()));
    let app = router(Arc::new(AppState::new(engine.clone(), config)));
    match acceptor {
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    tokio::task::spawn_blocking(move || engine.store().flush())
        .await
        .map_err(std::io::Error::other)?
        .map_err(ServeError::Flush)
}
