//! Embeddings computed by a server the team already runs: an OpenAI-compatible
//! `/v1/embeddings` (OpenAI, text-embeddings-inference, vLLM, Ollama, another mnemo),
//! text-embeddings-inference's own `/embed`, or Ollama's `/api/embed`.
//!
//! Texts go in batches of `batch_size`, at most `max_concurrency` at once. A batch answered
//! 429, 5xx, or not at all (timeout, refused connection) is sent again after a backoff that
//! doubles from 250 ms, or after the server's `Retry-After` when it gives one; any other
//! answer fails the call at once, naming the endpoint. Every vector must have the configured
//! dimension: a server that serves another model is caught on its first answer.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::embedder::Embeddings;
use crate::error::{EmbedError, Result};

/// The API a remote embedder speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `POST {url}/v1/embeddings`, `{"model", "input"}` → `{"data": [{"embedding", "index"}]}`.
    OpenAi,
    /// text-embeddings-inference: `POST {url}/embed`, `{"inputs"}` → `[[…]]`.
    Tei,
    /// Ollama: `POST {url}/api/embed`, `{"model", "input"}` → `{"embeddings": [[…]]}`.
    Ollama,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Tei => "tei",
            Self::Ollama => "ollama",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "openai" => Ok(Self::OpenAi),
            "tei" => Ok(Self::Tei),
            "ollama" => Ok(Self::Ollama),
            other => Err(format!(
                "unknown provider `{other}`: use openai (any OpenAI-compatible /v1/embeddings), tei or ollama"
            )),
        }
    }
}

/// One remote model, as `[models.NAME]` of the configuration describes it.
#[derive(Clone)]
pub struct RemoteConfig {
    /// mnemo's name for it (the `NAME` of `[models.NAME]`).
    pub name: String,
    pub provider: Provider,
    /// The server's base URL (`http://127.0.0.1:8080`); for `openai` a base ending in `/v1`
    /// or the full `…/embeddings` URL also work.
    pub url: String,
    /// The model name the server expects (`text-embedding-3-small`, `nomic-embed-text`).
    pub model: String,
    pub dimension: usize,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    pub batch_size: usize,
    pub max_concurrency: usize,
    /// For one request, answer included.
    pub timeout: Duration,
    /// Attempts of one batch at most, the first included.
    pub attempts: u32,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl RemoteConfig {
    /// With the defaults for everything past what must be said.
    pub fn new(name: &str, provider: Provider, url: &str, model: &str, dimension: usize) -> Self {
        Self {
            name: name.to_owned(),
            provider,
            url: url.to_owned(),
            model: model.to_owned(),
            dimension,
            api_key: None,
            batch_size: 64,
            max_concurrency: 4,
            timeout: Duration::from_secs(30),
            attempts: 5,
        }
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match self.provider {
            Provider::OpenAi if base.ends_with("/embeddings") => base.to_owned(),
            Provider::OpenAi if base.ends_with("/v1") => format!("{base}/embeddings"),
            Provider::OpenAi => format!("{base}/v1/embeddings"),
            Provider::Tei => format!("{base}/embed"),
            Provider::Ollama => format!("{base}/api/embed"),
        }
    }
}

/// Longest wait a `Retry-After` may impose on one attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Bytes of an error answer quoted in an error.
const QUOTED_ANSWER: usize = 300;

pub(crate) struct RemoteEmbedder {
    config: RemoteConfig,
    client: reqwest::blocking::Client,
    endpoint: String,
}

/// How one attempt ended.
enum Attempt {
    Done(Vec<Vec<f32>>),
    /// Worth another attempt, after the server's wait if it said one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(String),
}

impl RemoteEmbedder {
    pub(crate) fn new(config: RemoteConfig) -> Result<Self> {
        let invalid = |message: String| EmbedError::Remote {
            model: config.name.clone(),
            endpoint: config.url.clone(),
            message,
        };
        if config.dimension == 0 {
            return Err(invalid("`dimension` must be above 0".into()));
        }
        if config.batch_size == 0 || config.max_concurrency == 0 || config.attempts == 0 {
            return Err(invalid(
                "`batch_size`, `max_concurrency` and the attempts must be above 0".into(),
            ));
        }
        let parsed = reqwest::Url::parse(&config.url)
            .map_err(|err| invalid(format!("`url` is not a URL: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("`url` must be http or https".into()));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|err| invalid(format!("cannot build an HTTP client: {err}")))?;
        Ok(Self {
            endpoint: config.endpoint(),
            config,
            client,
        })
    }

    pub(crate) fn config(&self) -> &RemoteConfig {
        &self.config
    }

    fn error(&self, message: String) -> EmbedError {
        EmbedError::Remote {
            model: self.config.name.clone(),
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    pub(crate) fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings> {
        if let Some(index) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(EmbedError::EmptyText { index });
        }
        let dim = self.config.dimension;
        let batches: Vec<&[S]> = texts.chunks(self.config.batch_size).collect();
        let mut data = vec![0f32; texts.len() * dim];
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<EmbedError>> = Mutex::new(None);
        let results: Mutex<Vec<(usize, Vec<Vec<f32>>)>> = Mutex::new(Vec::new());
        let workers = self.config.max_concurrency.min(batches.len()).max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let failed = failure.lock().map_or(true, |failure| failure.is_some());
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if failed || index >= batches.len() {
                            return;
                        }
                        match self.embed_batch(batches[index]) {
                            Ok(vectors) => {
                                if let Ok(mut results) = results.lock() {
                                    results.push((index, vectors));
                                }
                            }
                            Err(err) => {
                                if let Ok(mut failure) = failure.lock() {
                                    failure.get_or_insert(err);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(err) = failure.into_inner().ok().flatten() {
            return Err(err);
        }
        let results = results.into_inner().unwrap_or_default();
        if results.len() != batches.len() {
            return Err(self.error("a batch was lost".into()));
        }
        for (index, vectors) in results {
            let first = index * self.config.batch_size;
            for (offset, vector) in vectors.into_iter().enumerate() {
                data[(first + offset) * dim..][..dim].copy_from_slice(&vector);
            }
        }
        Ok(Embeddings::from_parts(
            dim,
            data,
            vec![0; texts.len()],
            Vec::new(),
        ))
    }

    /// One batch, with its retries.
    fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=self.config.attempts {
            match self.attempt(texts) {
                Attempt::Done(vectors) => return self.checked(vectors, texts.len()),
                Attempt::Fail(message) => return Err(self.error(message)),
                Attempt::Retry { reason, after } => {
                    last = reason;
                    if attempt < self.config.attempts {
                        std::thread::sleep(after.map_or(backoff, |wait| wait.min(MAX_RETRY_AFTER)));
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        Err(self.error(format!(
            "no answer after {} attempts; the last: {last}",
            self.config.attempts
        )))
    }

    fn checked(&self, vectors: Vec<Vec<f32>>, expected: usize) -> Result<Vec<Vec<f32>>> {
        if vectors.len() != expected {
            return Err(self.error(format!(
                "answered {} vectors for {expected} texts",
                vectors.len()
            )));
        }
        if let Some(vector) = vectors.iter().find(|v| v.len() != self.config.dimension) {
            return Err(self.error(format!(
                "answered vectors of {} dimensions, and [models.{}] says {}: is `{}` the model it serves?",
                vector.len(),
                self.config.name,
                self.config.dimension,
                self.config.model
            )));
        }
        if vectors.iter().flatten().any(|value| !value.is_finite()) {
            return Err(self.error("answered a vector holding NaN or infinity".into()));
        }
        Ok(vectors)
    }

    fn attempt<S: AsRef<str>>(&self, texts: &[S]) -> Attempt {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let body = match self.config.provider {
            Provider::OpenAi | Provider::Ollama => {
                json!({ "model": self.config.model, "input": inputs })
            }
            Provider::Tei => json!({ "inputs": inputs, "truncate": true }),
        };
        let mut request = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send() {
            Ok(response) => response,
            Err(err) => {
                return Attempt::Retry {
                    reason: describe_http_error(&err),
                    after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(Duration::from_secs_f64);
        // Read no more than such an answer can hold: a server that streams without end must
        // not fill this process's memory.
        let limit = answer_limit(texts.len(), self.config.dimension);
        let mut bytes = Vec::new();
        if let Err(err) = response.take(limit as u64 + 1).read_to_end(&mut bytes) {
            return Attempt::Retry {
                reason: format!("the answer could not be read: {err}"),
                after: None,
            };
        }
        if bytes.len() > limit {
            return Attempt::Fail(format!(
                "answered more than {limit} bytes for {} texts of {} dimensions",
                texts.len(),
                self.config.dimension
            ));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Attempt::Retry {
                reason: format!("HTTP {status}: {}", quoted(&text)),
                after: retry_after,
            };
        }
        if !status.is_success() {
            return Attempt::Fail(format!("HTTP {status}: {}", quoted(&text)));
        }
        let answer: Value = match serde_json::from_str(&text) {
            Ok(answer) => answer,
            Err(err) => return Attempt::Fail(format!("answered JSON that does not parse: {err}")),
        };
        match self.vectors_of(answer) {
            Some(vectors) => Attempt::Done(vectors),
            None => Attempt::Fail(format!(
                "answered something else than {} embeddings: {}",
                self.config.provider.name(),
                quoted(&text)
            )),
        }
    }

    fn vectors_of(&self, answer: Value) -> Option<Vec<Vec<f32>>> {
        let rows = match self.config.provider {
            Provider::OpenAi => {
                let mut items = answer.get("data")?.as_array()?.clone();
                // OpenAI's clients sort by `index`; a server may answer out of order.
                items.sort_by_key(|item| item.get("index").and_then(Value::as_u64));
                items
                    .into_iter()
                    .map(|mut item| item.get_mut("embedding").map(Value::take))
                    .collect::<Option<Vec<Value>>>()?
            }
            Provider::Tei => answer.as_array()?.clone(),
            Provider::Ollama => answer.get("embeddings")?.as_array()?.clone(),
        };
        rows.iter()
            .map(|row| {
                row.as_array()?
                    .iter()
                    .map(|value| value.as_f64().map(|v| v as f32))
                    .collect()
            })
            .collect()
    }
}

/// What went wrong in an HTTP request, with its causes and without its URL (a path may hold a
/// token, and callers name the endpoint their own way): for the remote embedders and the
/// webhooks alike.
pub fn describe_http_error(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn quoted(text: &str) -> String {
    let mut end = text.len().min(QUOTED_ANSWER);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < text.len() { "…" } else { "" };
    format!("{:?}{cut}", &text[..end])
}

/// The most bytes an answer of `texts` vectors of `dimension` may take: 32 bytes per number
/// (a JSON float written in full, with its separator, is at most 25), and 1 MiB besides.
fn answer_limit(texts: usize, dimension: usize) -> usize {
    texts
        .saturating_mul(dimension)
        .saturating_mul(32)
        .saturating_add(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_each_provider() {
        let of = |provider, url: &str| RemoteConfig::new("m", provider, url, "x", 3).endpoint();
        assert_eq!(
            of(Provider::OpenAi, "http://h:1"),
            "http://h:1/v1/embeddings"
        );
        assert_eq!(
            of(Provider::OpenAi, "http://h:1/v1/"),
            "http://h:1/v1/embeddings"
        );
        assert_eq!(
            of(Provider::OpenAi, "https://h/openai/v1/embeddings"),
            "https://h/openai/v1/embeddings"
        );
        assert_eq!(of(Provider::Tei, "http://h:1/"), "http://h:1/embed");
        assert_eq!(of(Provider::Ollama, "http://h:1"), "http://h:1/api/embed");
    }

    #[test]
    fn the_key_never_prints() {
        let mut config = RemoteConfig::new("m", Provider::OpenAi, "http://h", "x", 3);
        config.api_key = Some("sk-secret".into());
        assert!(!format!("{config:?}").contains("sk-secret"));
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let refused = |config: RemoteConfig| RemoteEmbedder::new(config).is_err();
        assert!(refused(RemoteConfig::new(
            "m",
            Provider::Tei,
            "http://h",
            "x",
            0
        )));
        assert!(refused(RemoteConfig::new(
            "m",
            Provider::Tei,
            "ftp://h",
            "x",
            3
        )));
        assert!(refused(RemoteConfig::new(
            "m",
            Provider::Tei,
            "not a url",
            "x",
            3
        )));
        let mut zero_batch = RemoteConfig::new("m", Provider::Tei, "http://h", "x", 3);
        zero_batch.batch_size = 0;
        assert!(refused(zero_batch));
    }

    /// A remote model of 3 dimensions at a loopback port, tried `attempts` times.
    fn local_embedder(name: &str, provider: Provider, port: u16, attempts: u32) -> RemoteEmbedder {
        let mut config =
            RemoteConfig::new(name, provider, &format!("http://127.0.0.1:{port}"), "x", 3);
        config.attempts = attempts;
        RemoteEmbedder::new(config).expect("valid")
    }

    #[test]
    fn an_answer_longer_than_its_vectors_can_be_is_refused_unread() {
        use std::io::Write;
        // A server that answers 200 and then streams without end.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let server = std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return 0usize;
            };
            // Ends the test even if the client held the connection without reading.
            let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n[");
            let chunk = [b' '; 64 * 1024];
            let mut sent = 0;
            // At most 64 MiB: the test ends by itself even if the client kept reading.
            while sent < 64 << 20 && stream.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
            sent
        });
        let embedder = local_embedder("endless", Provider::Tei, port, 1);
        let err = embedder.embed(&["hello"]).expect_err("no answer fits");
        let message = err.to_string();
        assert!(message.contains("answered more than"), "{message}");
        drop(embedder);
        let sent = server.join().expect("the server thread ends");
        assert!(
            sent < 64 << 20,
            "the client stopped reading: {sent} bytes sent"
        );
    }

    #[test]
    fn an_unreachable_server_is_named_after_its_attempts() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let embedder = local_embedder("far", Provider::OpenAi, port, 2);
        let err = embedder.embed(&["hello"]).expect_err("nothing listens");
        let message = err.to_string();
        assert!(
            message.contains(&format!("127.0.0.1:{port}/v1/embeddings")),
            "{message}"
        );
        assert!(message.contains("after 2 attempts"), "{message}");
        assert!(message.contains("far"), "{message}");
    }
}
