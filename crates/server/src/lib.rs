//! mnemo's REST API: the engine behind axum, for the tools, scripts and agents that share one
//! store. JSON in and out; every error is `{"error": {"code", "message", "details"}}`.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod qdrant;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mnemo_engine::components::{Component, ComponentError, Probed, Supervisor};
use mnemo_engine::{Engine, ServiceSettings};

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
    #[error(transparent)]
    Components(#[from] ComponentError),
    #[error("config: watch: {0}")]
    Watch(String),
    #[error("cannot resume the index jobs left by the last run: {0}")]
    Resume(#[source] mnemo_engine::EngineError),
}

/// The components `mnemo serve` runs with `config` (the engine's, and the MCP endpoint), in
/// no particular order: the supervisor orders them. `indexed` is told each index job's
/// summary.
pub fn service_components(
    engine: &Arc<Engine>,
    config: &ServerConfig,
    indexed: impl Fn(&mnemo_engine::IndexSummary) + Send + Sync + Clone + 'static,
) -> Result<Vec<Arc<dyn Component>>, ServeError> {
    let watch = config
        .watch
        .iter()
        .map(|path| {
            mnemo_engine::resolve_under_roots(&path.display().to_string(), &config.index_roots)
                .map_err(|err| ServeError::Watch(err.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let settings = ServiceSettings {
        watch,
        events_keep_days: config.events_keep_days,
        events_keep_last: config.events_keep_last,
        probe_every: config.probe_interval,
        alerts_every: config.alerts_every,
        drift_every: config.drift_every,
        webhooks: config.webhooks.clone(),
        alert_rules: config.alert_rules.clone(),
        ..ServiceSettings::default()
    };
    let mut components = engine.service_components(&settings, indexed);
    components.push(Arc::new(Probed::new(
        "mcp",
        format!("MCP tools over Streamable HTTP at {}", mcp::MCP_PATH),
        &["store", "embedder"],
        || Ok("serving".to_owned()),
    )));
    Ok(components)
}

/// Where a started server answers.
#[derive(Debug, Clone)]
pub struct Listening {
    /// mnemo's REST API (`http://127.0.0.1:6343`; the port chosen when 0 was asked).
    pub url: String,
    /// Qdrant's REST API, when `qdrant_api` is configured.
    pub qdrant_api: Option<String>,
}

/// Listens on `config.bind` (HTTPS when `config.tls` names a certificate), and on
/// `config.qdrant_api` for Qdrant's REST API when set, and serves until `shutdown` completes;
/// requests in flight then finish, and the store is flushed. `on_listening` gets the
/// addresses bound.
pub async fn serve(
    engine: Arc<Engine>,
    config: ServerConfig,
    on_listening: impl FnOnce(&Listening),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // The certificate is read before listening: a wrong file is said at once.
    let acceptor = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
    let bind = config.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| ServeError::Listen { bind, source })?;
    let address = listener.local_addr()?;
    let qdrant_listener = match config.qdrant_api {
        Some(bind) => Some(
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|source| ServeError::Listen { bind, source })?,
        ),
        None => None,
    };
    let mut state = AppState::new(engine.clone(), config);
    let metrics = state.metrics.clone();
    let indexed = move |summary: &mnemo_engine::IndexSummary| metrics.observe_indexed(summary);
    let components = service_components(&engine, &state.config, indexed.clone())?;
    let supervisor = Arc::new(Supervisor::new(
        engine.clone(),
        components,
        state.config.probe_interval,
    )?);
    {
        let (supervisor, engine) = (Arc::clone(&supervisor), Arc::clone(&engine));
        let roots = state.config.index_roots.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ServeError> {
            // Before the components: the watcher's first job must not be taken for one
            // left by the last run.
            let resumed = engine
                .resume_jobs(&roots, indexed)
                .map_err(ServeError::Resume)?;
            if !resumed.is_empty() {
                eprintln!("{} index jobs of the last run queued again", resumed.len());
            }
            supervisor.start()?;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)??;
    }
    state.supervisor = Some(Arc::clone(&supervisor));
    let scheme = state.config.scheme();
    let qdrant_address = qdrant_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    on_listening(&Listening {
        url: format!("{scheme}://{address}"),
        qdrant_api: qdrant_address.map(|address| format!("{scheme}://{address}")),
    });
    let state = Arc::new(state);
    // One shutdown for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let rest = serve_on(
        listener,
        acceptor.clone(),
        router(state.clone()),
        stopped.clone(),
    );
    let qdrant = async {
        match qdrant_listener {
            Some(listener) => serve_on(listener, acceptor, qdrant::router(state), stopped).await,
            None => Ok(()),
        }
    };
    tokio::try_join!(rest, qdrant)?;
    tokio::task::spawn_blocking(move || {
        supervisor.stop();
        engine.store().flush()
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(ServeError::Flush)
}

/// Serves `app` on `listener` (through TLS when `acceptor` is given) until `stopped` turns
/// true; requests in flight finish.
async fn serve_on(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shutdown = async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    match acceptor {
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
