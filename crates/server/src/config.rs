//! The server's settings: from a TOML file (`mnemo serve --config mnemo.toml`), the command
//! line and the environment, checked before anything listens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use mnemo_embed::{Provider, RemoteConfig};
use mnemo_engine::{AccessError, ApiKey, MemoryOwner, Scope};
use mnemo_store::Durability;

use crate::tls::TlsFiles;

pub const DEFAULT_BIND: &str = "127.0.0.1:6343";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: key `{name}`: {message}")]
    Key { name: String, message: String },
    #[error(
        "refusing to listen on {bind} without API keys: anyone who can reach it could read and change every collection. \
         Add a key (`mnemo key new --scopes read,write` prints one and the lines for the config file, or set MNEMO_API_KEY), \
         or bind a loopback address such as {DEFAULT_BIND}"
    )]
    OpenWithoutKeys { bind: SocketAddr },
    #[error(
        "refusing to serve plain HTTP on {bind}: keys and everything else would cross the network in clear. \
         Give a certificate and its key (`tls_cert` and `tls_key` in the config file, or --tls-cert and --tls-key), \
         or say --insecure-http when something in front of mnemo (a proxy, a tunnel) already encrypts"
    )]
    PublicWithoutTls { bind: SocketAddr },
}

/// The file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    bind: Option<SocketAddr>,
    /// Where Qdrant's REST API is answered, when it is.
    qdrant_api: Option<SocketAddr>,
    body_limit_bytes: Option<usize>,
    max_batch: Option<usize>,
    request_timeout_secs: Option<u64>,
    max_concurrent_requests: Option<usize>,
    max_queued_requests: Option<usize>,
    #[serde(default)]
    index_roots: Vec<PathBuf>,
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    keys: Vec<KeyEntry>,
    /// `embedded` (the default) or `qdrant`.
    store: Option<String>,
    qdrant: Option<QdrantSection>,
    /// PEM certificate chain and private key: both, or neither.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_http: Option<bool>,
    /// The embedded store's: `periodic` or `fsync`.
    durability: Option<Durability>,
    /// Where agents' memories are kept: `[db] url = "postgres://..."`, or SQLite by default.
    db: Option<DbSection>,
    /// `Host` values `/mcp` answers (DNS rebinding); by default the loopback names when
    /// listening on loopback, any host otherwise (keys are needed there).
    mcp_allowed_hosts: Option<Vec<String>>,
    /// Browser origins `/mcp` answers (`https://app.example.com:443`); none by default.
    #[serde(default)]
    mcp_allowed_origins: Vec<String>,
    /// Folders (under `index_roots`) re-indexed when their plans change.
    #[serde(default)]
    watch: Vec<PathBuf>,
    /// The event log's retention.
    events: Option<EventsSection>,
    /// Seconds between two probes of the service's components.
    probe_interval_secs: Option<u64>,
    /// The built-in alert rules' thresholds.
    alerts: Option<AlertsSection>,
    /// Endpoints the event log is posted to.
    #[serde(default)]
    webhooks: Vec<WebhookEntry>,
    /// Remote models, by the name collections and requests use.
    #[serde(default)]
    models: BTreeMap<String, RemoteModelEntry>,
    /// Recent text queries kept per collection for model migrations' reports; 0 (the
    /// default): none.
    query_log: Option<usize>,
}

/// `[models.NAME]`: a model another server computes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteModelEntry {
    /// `openai` (any OpenAI-compatible `/v1/embeddings`), `tei` or `ollama`.
    provider: String,
    url: String,
    /// The name the server knows the model by; NAME by default.
    model: Option<String>,
    dimension: usize,
    /// The environment variable holding the API key (a secret stays out of the file).
    api_key_env: Option<String>,
    batch_size: Option<usize>,
    max_concurrency: Option<usize>,
    /// Seconds for one request.
    timeout: Option<f64>,
    /// Attempts of one batch at most (429, 5xx, timeouts are tried again).
    max_attempts: Option<u32>,
}

/// `[[webhooks]]`: one endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEntry {
    /// Names its component and its cursor; `webhook-N` (N from 1, in file order) by default.
    name: Option<String>,
    url: String,
    /// The environment variable holding the HMAC key (a secret stays out of the file).
    secret_env: Option<String>,
    /// Event types or families delivered; all by default.
    #[serde(default)]
    types: Vec<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsSection {
    /// `disk_free_low` below this many MiB free on the data directory's disk.
    disk_free_min_mib: Option<u64>,
    /// `component_restarting` at this many restarts of one component in ten minutes.
    restarts_in_ten_minutes: Option<usize>,
    /// Seconds between two evaluations.
    every_secs: Option<u64>,
    /// `search_latency_high` when the p99 of the last minute's searches is above this ...
    search_p99_ms: Option<u64>,
    /// ... at every evaluation for this many seconds.
    search_p99_for_secs: Option<u64>,
    /// Seconds between two checks of the drift canaries (besides the one at start); 0: none.
    drift_every_secs: Option<u64>,
}

/// How long the event log keeps events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsSection {
    /// Events older than this many days are removed; 0 keeps them whatever their age.
    keep_days: Option<u32>,
    /// At most this many are kept; 0 keeps them whatever their number.
    keep_last: Option<u64>,
}

/// The relational store of agents' memories.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DbSection {
    /// `sqlite`, or `postgres://user:password@host:port/database`.
    url: String,
}

/// The Qdrant deployment behind `store = "qdrant"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QdrantSection {
    /// `qdrant://host:6334[,host:port...]`, `qdrants://` for TLS.
    url: String,
    api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    /// `blake3:` and the hex digest of the key; the key itself is never written down.
    hash: String,
    scopes: Vec<Scope>,
    collections: Option<Vec<String>>,
    /// The user whose memories this key uses (and its calls' default user).
    user_id: Option<String>,
    /// The agent whose memories this key uses (and its calls' default agent).
    agent_id: Option<String>,
}

/// Requests per second and burst, per key (or for everyone together without keys).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 400.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// A second listener that speaks Qdrant's REST API (`qdrant_api = "127.0.0.1:6333"`).
    pub qdrant_api: Option<SocketAddr>,
    pub body_limit_bytes: usize,
    /// Points per upsert, queries per batch search, inputs per embeddings request.
    pub max_batch: usize,
    pub request_timeout: Duration,
    /// Requests whose work (embedding, store calls) runs at once; the others wait.
    pub max_concurrent_requests: usize,
    /// Requests that may wait for one of those places; beyond, 503 with `Retry-After`.
    pub max_queued_requests: usize,
    /// Folders under which `POST /api/v1/index` may read.
    pub index_roots: Vec<PathBuf>,
    pub rate_limit: RateLimit,
    pub keys: Vec<ApiKey>,
    /// Where collections live: `None` for the embedded store, else a Qdrant location
    /// (`qdrant://...`) that `--store` may override.
    pub store: Option<String>,
    pub store_api_key: Option<String>,
    /// HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP allowed on a public address (TLS ends in front of mnemo).
    pub insecure_http: bool,
    /// When the embedded store acknowledges a write, if the file says (`--durability` wins).
    pub durability: Option<Durability>,
    /// Where agents' memories are kept, if the file says (`--db` wins): `sqlite` or a
    /// PostgreSQL URL.
    pub memory_db: Option<String>,
    /// The `Host` values `/mcp` answers, when set; see [`Self::mcp_hosts`].
    pub mcp_allowed_hosts: Option<Vec<String>>,
    /// Browser origins `/mcp` answers; a request with any other `Origin` is refused.
    pub mcp_allowed_origins: Vec<String>,
    /// Folders re-indexed when their plans change, as written (resolved under
    /// `index_roots` when the service starts).
    pub watch: Vec<PathBuf>,
    /// Event log retention: days (`None`: no limit by age) and count (`None`: no limit).
    pub events_keep_days: Option<u32>,
    pub events_keep_last: Option<u64>,
    pub probe_interval: Duration,
    pub alert_rules: mnemo_engine::alerts::AlertRules,
    pub alerts_every: Duration,
    /// How often the drift canaries are checked; none: never.
    pub drift_every: Option<Duration>,
    pub webhooks: Vec<mnemo_engine::webhooks::Webhook>,
    /// Remote models (`[models.NAME]`).
    pub models: Vec<RemoteConfig>,
    /// Recent text queries kept per collection (0: none).
    pub query_log: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND.parse().expect("static address"),
            qdrant_api: None,
            body_limit_bytes: 32 * 1024 * 1024,
            max_batch: 1024,
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 64,
            max_queued_requests: 1024,
            index_roots: Vec::new(),
            rate_limit: RateLimit::default(),
            keys: Vec::new(),
            store: None,
            store_api_key: None,
            tls: None,
            insecure_http: false,
            durability: None,
            memory_db: None,
            mcp_allowed_hosts: None,
            mcp_allowed_origins: Vec::new(),
            watch: Vec::new(),
            events_keep_days: Some(90),
            events_keep_last: Some(1_000_000),
            probe_interval: Duration::from_secs(5),
            alert_rules: mnemo_engine::alerts::AlertRules::default(),
            alerts_every: Duration::from_secs(15),
            drift_every: Some(Duration::from_secs(600)),
            webhooks: Vec::new(),
            models: Vec::new(),
            query_log: 0,
        }
    }
}

impl ServerConfig {
    /// The settings of `path` over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let defaults = Self::default();
        let keys = file
            .keys
            .into_iter()
            .map(|entry| {
                ApiKey::from_hash(&entry.name, &entry.hash, entry.scopes, entry.collections)
                    .map(|key| {
                        key.owning_memories_of(MemoryOwner {
                            user_id: entry.user_id.clone(),
                            agent_id: entry.agent_id.clone(),
                        })
                    })
                    .map_err(|err| match err {
                        AccessError::InvalidKey { name, message } => {
                            ConfigError::Key { name, message }
                        }
                        other => ConfigError::Key {
                            name: entry.name.clone(),
                            message: other.to_string(),
                        },
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut webhooks = Vec::new();
        for (index, entry) in file.webhooks.into_iter().enumerate() {
            let name = entry.name.unwrap_or_else(|| format!("{}", index + 1));
            let key = |message: String| ConfigError::Key {
                name: format!("webhooks[{index}]"),
                message,
            };
            let secret = match entry.secret_env {
                None => None,
                Some(variable) => Some(std::env::var(&variable).map_err(|_| {
                    key(format!(
                        "secret_env names `{variable}`, which is not set in the environment"
                    ))
                })?),
            };
            let webhook = mnemo_engine::webhooks::Webhook {
                name,
                url: entry.url,
                secret,
                types: entry.types,
                timeout: Duration::from_secs(entry.timeout_secs.unwrap_or(10)),
            };
            webhook.check().map_err(key)?;
            if webhooks
                .iter()
                .any(|other: &mnemo_engine::webhooks::Webhook| other.name == webhook.name)
            {
                return Err(key(format!("two webhooks are named `{}`", webhook.name)));
            }
            webhooks.push(webhook);
        }
        let mut models = Vec::new();
        for (name, entry) in file.models {
            models.push(remote_model(&name, entry)?);
        }
        let (store, store_api_key) = match (file.store.as_deref(), file.qdrant) {
            (None | Some("embedded"), None) => (None, None),
            (Some("qdrant"), Some(qdrant)) => (Some(qdrant.url), qdrant.api_key),
            (Some("qdrant"), None) => {
                return Err(ConfigError::Key {
                    name: "store".into(),
                    message: "store = \"qdrant\" needs a [qdrant] table with its url".into(),
                });
            }
            (None | Some("embedded"), Some(_)) => {
                return Err(ConfigError::Key {
                    name: "qdrant".into(),
                    message: "a [qdrant] table is only read with store = \"qdrant\"".into(),
                });
            }
            (Some(other), _) => {
                return Err(ConfigError::Key {
                    name: "store".into(),
                    message: format!("`{other}` is not a store: use \"embedded\" or \"qdrant\""),
                });
            }
        };
        let tls = tls_files(file.tls_cert, file.tls_key)?;
        Ok(Self {
            store,
            store_api_key,
            tls,
            insecure_http: file.insecure_http.unwrap_or(false),
            durability: file.durability,
            memory_db: file.db.map(|db| db.url),
            mcp_allowed_hosts: file.mcp_allowed_hosts,
            mcp_allowed_origins: file.mcp_allowed_origins,
            watch: file.watch,
            events_keep_days: match file.events.as_ref().and_then(|e| e.keep_days) {
                None => defaults.events_keep_days,
                Some(0) => None,
                Some(days) => Some(days),
            },
            events_keep_last: match file.events.as_ref().and_then(|e| e.keep_last) {
                None => defaults.events_keep_last,
                Some(0) => None,
                Some(count) => Some(count),
            },
            alert_rules: mnemo_engine::alerts::AlertRules {
                data_dir: None,
                disk_free_min_bytes: file
                    .alerts
                    .as_ref()
                    .and_then(|a| a.disk_free_min_mib)
                    .map_or(defaults.alert_rules.disk_free_min_bytes, |mib| mib << 20),
                restarts_in_ten_minutes: file
                    .alerts
                    .as_ref()
                    .and_then(|a| a.restarts_in_ten_minutes)
                    .unwrap_or(defaults.alert_rules.restarts_in_ten_minutes)
                    .max(1),
                search_p99_max: file
                    .alerts
                    .as_ref()
                    .and_then(|a| a.search_p99_ms)
                    .map_or(defaults.alert_rules.search_p99_max, Duration::from_millis),
                search_p99_for: file
                    .alerts
                    .as_ref()
                    .and_then(|a| a.search_p99_for_secs)
                    .map_or(defaults.alert_rules.search_p99_for, Duration::from_secs),
            },
            webhooks,
            models,
            query_log: file.query_log.unwrap_or(0).min(MAX_QUERY_LOG),
            drift_every: match file.alerts.as_ref().and_then(|a| a.drift_every_secs) {
                None => defaults.drift_every,
                Some(0) => None,
                Some(secs) => Some(Duration::from_secs(secs)),
            },
            alerts_every: file
                .alerts
                .as_ref()
                .and_then(|a| a.every_secs)
                .map_or(defaults.alerts_every, |secs| {
                    Duration::from_secs(secs.max(1))
                }),
            probe_interval: file
                .probe_interval_secs
                .map_or(defaults.probe_interval, |secs| {
                    Duration::from_secs(secs.max(1))
                }),
            bind: file.bind.unwrap_or(defaults.bind),
            qdrant_api: file.qdrant_api,
            body_limit_bytes: file.body_limit_bytes.unwrap_or(defaults.body_limit_bytes),
            max_batch: file.max_batch.unwrap_or(defaults.max_batch).max(1),
            request_timeout: file
                .request_timeout_secs
                .map_or(defaults.request_timeout, Duration::from_secs),
            max_concurrent_requests: file
                .max_concurrent_requests
                .unwrap_or(defaults.max_concurrent_requests)
                .max(1),
            max_queued_requests: file
                .max_queued_requests
                .unwrap_or(defaults.max_queued_requests),
            index_roots: file.index_roots,
            rate_limit: file.rate_limit.unwrap_or(defaults.rate_limit),
            keys,
        })
    }

    /// Refuses what must not run: a non-loopback address without keys, or in clear text
    /// unless told that TLS ends in front of mnemo.
    pub fn check(&self) -> Result<(), ConfigError> {
        for bind in std::iter::once(self.bind).chain(self.qdrant_api) {
            if bind.ip().is_loopback() {
                continue;
            }
            if self.keys.is_empty() {
                return Err(ConfigError::OpenWithoutKeys { bind });
            }
            if self.tls.is_none() && !self.insecure_http {
                return Err(ConfigError::PublicWithoutTls { bind });
            }
        }
        Ok(())
    }

    /// The `Host` values `/mcp` answers: those configured, else the loopback names on a
    /// loopback address (a page in a browser cannot rebind a name to it), else any (`None`):
    /// a public address needs keys, which a browser page does not have.
    pub fn mcp_hosts(&self) -> Option<Vec<String>> {
        match &self.mcp_allowed_hosts {
            Some(hosts) => Some(hosts.clone()),
            None if self.bind.ip().is_loopback() => Some(
                ["localhost", "127.0.0.1", "::1", "[::1]"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            None => None,
        }
    }

    /// `http` or `https`, as the server's address is written.
    /// The settings in effect as JSON, every secret left out: keys by name and scopes (never
    /// their hashes), the store's API key and the database's password as `"[redacted]"`.
    pub fn redacted(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|key| {
                serde_json::json!({
                    "name": key.name,
                    "scope": format!("{:?}", key.scope).to_lowercase(),
                    "collections": key.collections,
                    "user_id": key.memory_owner.user_id,
                    "agent_id": key.memory_owner.agent_id,
                })
            })
            .collect();
        serde_json::json!({
            "bind": self.bind.to_string(),
            "body_limit_bytes": self.body_limit_bytes,
            "max_batch": self.max_batch,
            "request_timeout_secs": self.request_timeout.as_secs(),
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_queued_requests": self.max_queued_requests,
            "index_roots": self.index_roots,
            "rate_limit": { "per_second": self.rate_limit.per_second, "burst": self.rate_limit.burst },
            "keys": keys,
            "store": self.store.as_deref().unwrap_or("embedded"),
            "store_api_key": self.store_api_key.as_ref().map(|_| "[redacted]"),
            "tls": self.tls.is_some(),
            "insecure_http": self.insecure_http,
            "durability": self.durability.map(|d| format!("{d:?}").to_lowercase()),
            "db": self.memory_db.as_deref().map(redact_url),
            "mcp_allowed_hosts": self.mcp_allowed_hosts,
            "mcp_allowed_origins": self.mcp_allowed_origins,
            "qdrant_api": self.qdrant_api,
            "watch": self.watch,
            "events": { "keep_days": self.events_keep_days, "keep_last": self.events_keep_last },
            "probe_interval_secs": self.probe_interval.as_secs(),
            "alerts": {
                "disk_free_min_mib": self.alert_rules.disk_free_min_bytes >> 20,
                "restarts_in_ten_minutes": self.alert_rules.restarts_in_ten_minutes,
                "every_secs": self.alerts_every.as_secs(),
                "search_p99_ms": self.alert_rules.search_p99_max.as_millis(),
                "search_p99_for_secs": self.alert_rules.search_p99_for.as_secs(),
                "drift_every_secs": self.drift_every.map_or(0, |every| every.as_secs()),
            },
            "query_log": self.query_log,
            "models": self.models.iter().map(|model| (model.name.clone(), serde_json::json!({
                "provider": model.provider.name(),
                "url": model.url,
                "model": model.model,
                "dimension": model.dimension,
                "api_key": model.api_key.as_ref().map(|_| "[redacted]"),
                "batch_size": model.batch_size,
                "max_concurrency": model.max_concurrency,
                "timeout": model.timeout.as_secs_f64(),
                "max_attempts": model.attempts,
            }))).collect::<serde_json::Map<_, _>>(),
            "webhooks": self.webhooks.iter().map(|webhook| serde_json::json!({
                "name": webhook.name,
                "url": webhook.origin(),
                "signed": webhook.secret.is_some(),
                "types": webhook.types,
                "timeout_secs": webhook.timeout.as_secs(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// The certificate and key named together, or neither.
/// `url` with its password, if any, replaced by `[redacted]`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

pub fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Key {
            name: "tls_key".into(),
            message: "a TLS certificate needs its private key (tls_key, --tls-key)".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Key {
            name: "tls_cert".into(),
            message: "a TLS private key needs its certificate (tls_cert, --tls-cert)".into(),
        }),
    }
}

/// Recent queries kept per collection at most, whatever the configuration asks.
const MAX_QUERY_LOG: usize = 10_000;

/// `[models.NAME]` checked: a provider mnemo speaks, a URL, sizes above 0, the key's variable
/// set; a name that is also a local model's is refused (which would a collection mean?).
fn remote_model(name: &str, entry: RemoteModelEntry) -> Result<RemoteConfig, ConfigError> {
    let key = |message: String| ConfigError::Key {
        name: format!("models.{name}"),
        message,
    };
    if mnemo_embed::find_model(name).is_some() {
        return Err(key(format!(
            "`{name}` is a local model's name; give the remote one another"
        )));
    }
    let provider: Provider = entry.provider.parse().map_err(key)?;
    let mut config = RemoteConfig::new(
        name,
        provider,
        &entry.url,
        entry.model.as_deref().unwrap_or(name),
        entry.dimension,
    );
    if let Some(variable) = entry.api_key_env {
        config.api_key = Some(std::env::var(&variable).map_err(|_| {
            key(format!(
                "api_key_env names `{variable}`, which is not set in the environment"
            ))
        })?);
    }
    config.batch_size = entry.batch_size.unwrap_or(config.batch_size);
    config.max_concurrency = entry.max_concurrency.unwrap_or(config.max_concurrency);
    config.attempts = entry.max_attempts.unwrap_or(config.attempts);
    if let Some(seconds) = entry.timeout {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Err(key(format!(
                "timeout {seconds} is out of range: above 0, at most 3600 seconds"
            )));
        }
        config.timeout = Duration::from_secs_f64(seconds);
    }
    // Checked as the engine would build it: a bad URL or size is said at start.
    mnemo_embed::Embedder::remote(config.clone()).map_err(|err| key(err.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_embedded_unless_the_file_names_a_qdrant() {
        let path = Path::new("mnemo.toml");
        let config = ServerConfig::from_toml(
            "store = \"qdrant\"\n[qdrant]\nurl = \"qdrant://10.0.0.1:6334\"\napi_key = \"k\"\n",
            path,
        )
        .unwrap();
        assert_eq!(config.store.as_deref(), Some("qdrant://10.0.0.1:6334"));
        assert_eq!(config.store_api_key.as_deref(), Some("k"));
        for (text, message) in [
            ("store = \"qdrant\"\n", "needs a [qdrant] table"),
            ("store = \"redis\"\n", "is not a store"),
            ("[qdrant]\nurl = \"qdrant://h:1\"\n", "only read with store"),
            ("tls_cert = \"c.pem\"\n", "needs its private key"),
            ("durability = \"always\"\n", "unknown variant `always`"),
            ("tls_key = \"k.pem\"\n", "needs its certificate"),
        ] {
            let err = ServerConfig::from_toml(text, path).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn a_file_sets_what_it_names_and_keeps_the_defaults() {
        let hash = format!("blake3:{}", blake3::hash(b"secret").to_hex());
        let config = ServerConfig::from_toml(
            &format!(
                "bind = \"0.0.0.0:7000\"\nmax_batch = 10\n[rate_limit]\nper_second = 5\nburst = 10\n\
                 [[keys]]\nname = \"ci\"\nhash = \"{hash}\"\nscopes = [\"read\"]\ncollections = [\"tasks\"]\n"
            ),
            Path::new("mnemo.toml"),
        )
        .unwrap();
        assert_eq!(config.bind.port(), 7000);
        assert_eq!(config.store, None);
        assert_eq!(config.max_batch, 10);
        assert_eq!(config.body_limit_bytes, 32 * 1024 * 1024);
        assert_eq!(config.rate_limit.per_second, 5.0);
        assert_eq!(config.keys.len(), 1);
        assert!(
            matches!(config.check(), Err(ConfigError::PublicWithoutTls { .. })),
            "keys alone do not make a public address acceptable: it needs TLS too"
        );
        let behind_a_proxy = ServerConfig {
            insecure_http: true,
            ..config.clone()
        };
        assert!(behind_a_proxy.check().is_ok());
        let with_tls = ServerConfig {
            tls: Some(TlsFiles {
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            }),
            ..config
        };
        assert!(with_tls.check().is_ok());
        assert_eq!(with_tls.scheme(), "https");
    }

    #[test]
    fn mistakes_are_named() {
        let file = Path::new("mnemo.toml");
        let unknown = ServerConfig::from_toml("bnid = \"x\"", file).unwrap_err();
        assert!(
            unknown.to_string().starts_with("config file mnemo.toml:"),
            "{unknown}"
        );
        assert!(
            unknown.to_string().contains("unknown field `bnid`"),
            "{unknown}"
        );
        let bad_hash = ServerConfig::from_toml(
            "[[keys]]\nname = \"a\"\nhash = \"abc\"\nscopes = [\"read\"]\n",
            file,
        )
        .unwrap_err();
        assert!(
            bad_hash.to_string().starts_with("config: key `a`:"),
            "{bad_hash}"
        );
        let open = ServerConfig {
            bind: "0.0.0.0:6343".parse().unwrap(),
            ..ServerConfig::default()
        };
        assert!(matches!(
            open.check(),
            Err(ConfigError::OpenWithoutKeys { .. })
        ));
    }

    #[test]
    fn webhooks_are_read_checked_and_redacted() {
        let file = Path::new("mnemo.toml");
        // A variable every environment has, rather than setting one under other tests' feet.
        let path = std::env::var("PATH").unwrap();
        let config = ServerConfig::from_toml(
            "[[webhooks]]\nurl = \"https://hooks.internal/T0/secret-token\"\n\
             secret_env = \"PATH\"\ntypes = [\"alert\"]\n\
             [[webhooks]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9000/\"\n",
            file,
        )
        .unwrap();
        assert_eq!(config.webhooks.len(), 2);
        assert_eq!(config.webhooks[0].name, "1");
        assert_eq!(config.webhooks[0].secret.as_deref(), Some(path.as_str()));
        assert_eq!(config.webhooks[1].name, "ops");
        let shown = config.redacted().to_string();
        assert!(
            !shown.contains("secret-token") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("https://hooks.internal/…"), "{shown}");

        for (text, says) in [
            ("[[webhooks]]\nurl = \"ftp://x/\"\n", "http:// or https://"),
            (
                "[[webhooks]]\nurl = \"http://a/\"\nsecret_env = \"MNEMO_TEST_UNSET_VARIABLE\"\n",
                "MNEMO_TEST_UNSET_VARIABLE",
            ),
            (
                "[[webhooks]]\nurl = \"http://a/\"\ntypes = [\"Not A Type\"]\n",
                "not an event type",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"http://a/\"\n[[webhooks]]\nname = \"a\"\nurl = \"http://b/\"\n",
                "two webhooks are named `a`",
            ),
        ] {
            let err = ServerConfig::from_toml(text, file).unwrap_err().to_string();
            assert!(err.contains("webhooks["), "{err}");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn remote_models_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnemo.toml");
        std::fs::write(
            &path,
            "[models.team]\nprovider = \"tei\"\nurl = \"http://127.0.0.1:8080\"\ndimension = 1024\nbatch_size = 8\ntimeout = 2.5\n",
        )
        .unwrap();
        let config = ServerConfig::from_file(&path).unwrap();
        let model = &config.models[0];
        assert_eq!(
            (model.name.as_str(), model.model.as_str(), model.dimension),
            ("team", "team", 1024)
        );
        assert_eq!(model.batch_size, 8);
        assert_eq!(model.timeout, Duration::from_millis(2500));
        assert_eq!(config.redacted()["models"]["team"]["provider"], "tei");

        for (body, said) in [
            (
                "[models.x]\nprovider = \"cohere\"\nurl = \"http://h\"\ndimension = 3\n",
                "unknown provider",
            ),
            (
                "[models.x]\nprovider = \"tei\"\nurl = \"h:1\"\ndimension = 3\n",
                "url",
            ),
            (
                "[models.x]\nprovider = \"tei\"\nurl = \"http://h\"\ndimension = 0\n",
                "dimension",
            ),
            (
                "[models.all-MiniLM-L6-v2]\nprovider = \"tei\"\nurl = \"http://h\"\ndimension = 3\n",
                "local model",
            ),
            (
                "[models.x]\nprovider = \"tei\"\nurl = \"http://h\"\ndimension = 3\napi_key_env = \"MNEMO_TEST_UNSET_KEY\"\n",
                "not set",
            ),
            (
                "[models.x]\nprovider = \"tei\"\nurl = \"http://h\"\ndimension = 3\ntimeout = -1\n",
                "timeout",
            ),
        ] {
            std::fs::write(&path, body).unwrap();
            let err = ServerConfig::from_file(&path).unwrap_err().to_string();
            assert!(
                err.contains("models.") && err.contains(said),
                "{body}: {err}"
            );
        }
    }
}
