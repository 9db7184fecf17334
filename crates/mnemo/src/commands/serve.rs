//! `mnemo serve`: the engine behind the REST API; `mnemo key new`: a fresh API key.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use mnemo_engine::{ApiKey, Scope};
use mnemo_server::ServerConfig;

use mnemo::args::{ModelArgs, OpenedStore, StoreArgs};
use mnemo::service::open_memory_engine;
use mnemo_engine::API_KEY_ENV;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:6343, or the config file's `bind`]
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Also answer Qdrant's REST API here (`127.0.0.1:6333`), for Qdrant's clients
    /// [or the config's qdrant_api]
    #[arg(long)]
    qdrant_api: Option<SocketAddr>,
    /// TOML settings: bind, qdrant_api, keys, rate_limit, body_limit_bytes, max_batch,
    /// request_timeout_secs, index_roots, tls_cert, tls_key, insecure_http, durability, store
    /// (and [qdrant] url, api_key), [db] url, mcp_allowed_hosts, mcp_allowed_origins, watch,
    /// probe_interval_secs, [events] keep_days, keep_last, [alerts] disk_free_min_mib,
    /// restarts_in_ten_minutes, every_secs
    #[arg(long, env = "MNEMO_CONFIG")]
    config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key) [or the config's tls_cert]
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key [or the config's tls_key]
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address, when a proxy in front of mnemo already
    /// encrypts [or the config's insecure_http = true]
    #[arg(long)]
    insecure_http: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(bind) = args.qdrant_api {
        config.qdrant_api = Some(bind);
    }
    if let Some(files) = mnemo_server::config::tls_files(args.tls_cert, args.tls_key)? {
        config.tls = Some(files);
    }
    config.insecure_http |= args.insecure_http;
    // A key given in the environment: admin over every collection, kept as its hash only.
    if let Ok(secret) = std::env::var(API_KEY_ENV)
        && !secret.trim().is_empty()
    {
        config.keys.push(ApiKey::from_secret(
            API_KEY_ENV,
            secret.trim(),
            Scope::Admin,
        ));
    }
    config.check()?;
    config.alert_rules.data_dir = Some(args.store.data_dir_or_default());
    let store_args = args.store.clone().with_fallback(
        config.store.as_deref(),
        config.store_api_key.as_deref(),
        config.durability,
        config.memory_db.as_deref(),
    );
    let (store, engine) = open_memory_engine(
        &store_args,
        &args.model,
        &mnemo::service::EngineExtras {
            remote_models: &config.models,
            query_log: config.query_log,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let open = config.keys.is_empty();
    let listening = std::sync::atomic::AtomicBool::new(false);
    runtime
        .block_on(mnemo_server::serve(
            engine,
            config,
            |addresses| {
                let url = &addresses.url;
                listening.store(true, std::sync::atomic::Ordering::Relaxed);
                // The CLI finds the server through the lock file while it holds the directory.
                if let OpenedStore::Embedded(store) = &store
                    && let Err(err) = store.announce(&format!("mnemo serve at {url}"))
                {
                    eprintln!("warning: the CLI will not find this server: {err}");
                }
                // Tests and scripts read this line to learn the port.
                println!("listening on {url}");
                if let Some(qdrant_api) = &addresses.qdrant_api {
                    println!("qdrant api on {qdrant_api}");
                }
                println!("store: {}", store_args.describe());
                if open {
                    println!("no API keys: every request is allowed (loopback only)");
                }
            },
            shutdown_signal(),
        ))
        .with_context(|| {
            if listening.load(std::sync::atomic::Ordering::Relaxed) {
                "the server stopped"
            } else {
                "the server could not start"
            }
        })?;
    println!("stopped; the store is flushed");
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        // Without a handler, Ctrl-C would kill the process at once, which loses nothing
        // acknowledged but cuts requests in flight.
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Print a new random key and the lines that grant it in the config file.
    New {
        /// A name for the key, shown in errors and limits
        #[arg(long, default_value = "default")]
        name: String,
        /// read, write, admin (each includes the ones before)
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<Scope>,
        /// Only these collections [default: all]
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
    },
}

pub fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::New {
            name,
            scopes,
            collections,
        } => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).context("cannot read random bytes")?;
            let secret = format!("mnemo_{}", hex(&bytes));
            println!("key (give it to the client; it is not stored anywhere): {secret}");
            println!();
            println!("[[keys]]");
            println!("name = {name:?}");
            println!("hash = {:?}", ApiKey::hash_of(&secret));
            let scopes: Vec<&str> = scopes.iter().map(|scope| scope.name()).collect();
            println!("scopes = {scopes:?}");
            if !collections.is_empty() {
                println!("collections = {collections:?}");
            }
            Ok(())
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
