//! The client of a running `mnemo serve`: when a server holds the data directory, the lock
//! file says where it listens, and `search`, `similar`, `dupes`, `index`, `snapshot` and
//! `memory` (but for export and import) ask it
//! over the REST API instead of failing on the lock. Same answers, same output. It imports no
//! command: the commands choose between it and the engine (`backend.rs`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use mnemo_engine::{API_KEY_ENV, DuplicateCluster, IndexSummary, SearchOptions};
use mnemo_store::{PointId, ScoredPoint, SnapshotInfo, StoreError};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

/// PEM certificates the CLI trusts, beside the system's, when the server it asks is HTTPS.
pub const CA_CERT_ENV: &str = "MNEMO_CA_CERT";

pub struct Remote {
    base: String,
    key: Option<String>,
    client: Client,
}

impl Remote {
    /// The server holding the data directory, if `error` is the lock held by one that said
    /// where it listens. Over HTTPS, the system's CAs are trusted, and the PEM certificates in
    /// `MNEMO_CA_CERT` beside them (a private CA, or the server's own self-signed certificate).
    pub fn holding(error: &anyhow::Error) -> Option<anyhow::Result<Remote>> {
        let holder = error.chain().find_map(|cause| match cause.downcast_ref() {
            Some(StoreError::Locked {
                holder: Some(holder),
                ..
            }) => Some(holder.clone()),
            _ => None,
        })?;
        let base = holder
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))?;
        Some(Self::at(base))
    }

    fn at(base: &str) -> anyhow::Result<Remote> {
        let mut builder = Client::builder().timeout(Duration::from_secs(120));
        if let Some(path) = std::env::var_os(CA_CERT_ENV).filter(|path| !path.is_empty()) {
            let path = PathBuf::from(path);
            let pem = std::fs::read(&path)
                .with_context(|| format!("{CA_CERT_ENV}: cannot read {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("{CA_CERT_ENV}: {} is not PEM certificates", path.display())
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Remote {
            base: base.trim_end_matches('/').to_owned(),
            key: std::env::var(API_KEY_ENV)
                .ok()
                .filter(|key| !key.trim().is_empty()),
            client: builder
                .build()
                .context("cannot make the client of the running server")?,
        })
    }

    fn call(&self, request: RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.key {
            Some(key) => request.bearer_auth(key.trim()),
            None => request,
        };
        let response = request.send().with_context(|| {
            let hint = if self.base.starts_with("https://") {
                format!(" (over HTTPS: set {CA_CERT_ENV} to the PEM file of the CA that signed its certificate)")
            } else {
                String::new()
            };
            format!(
                "the data directory is held by mnemo serve at {}, which does not answer{hint}",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response.json().with_context(|| {
            format!(
                "mnemo serve at {} answered {status} without JSON",
                self.base
            )
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            format!(" (set {API_KEY_ENV} to a key of that server)")
        } else {
            String::new()
        };
        bail!(
            "mnemo serve at {} answered {status}: {} ({}){hint}",
            self.base,
            error["message"].as_str().unwrap_or("no message"),
            error["code"].as_str().unwrap_or("no code"),
        )
    }

    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(self.client.post(format!("{}{path}", self.base)).json(&body))
    }

    /// `method` on a route of the REST API (`path` from the server's root), with a JSON body.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let request = self.client.request(method, format!("{}{path}", self.base));
        self.call(match body {
            Some(body) => request.json(&body),
            None => request,
        })
    }

    /// Where the server listens, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn search(&self, query: &str, options: &SearchOptions) -> anyhow::Result<Vec<ScoredPoint>> {
        let answer = self.post(
            &format!("/api/v1/collections/{}/search", options.collection),
            json!({
                "text": query,
                "limit": options.limit,
                "filter": options.filter,
                "mode": options.mode,
                "score_threshold": options.score_threshold,
            }),
        )?;
        hits(&answer)
    }

    pub fn similar(&self, id: &str, options: &SearchOptions) -> anyhow::Result<Vec<ScoredPoint>> {
        let answer = self.post(
            &format!("/api/v1/collections/{}/similar", options.collection),
            json!({
                "id": id,
                "limit": options.limit,
                "filter": options.filter,
                "score_threshold": options.score_threshold,
            }),
        )?;
        hits(&answer)
    }

    pub fn duplicates(
        &self,
        collection: &str,
        threshold: f32,
        neighbours: usize,
        filter: &mnemo_store::Filter,
    ) -> anyhow::Result<Vec<DuplicateCluster>> {
        let answer = self.post(
            &format!("/api/v1/collections/{collection}/duplicates"),
            json!({
                "threshold": threshold,
                "neighbours": neighbours,
                "filter": filter,
                "limit": 10_000,
            }),
        )?;
        serde_json::from_value(answer["clusters"].clone())
            .context("the server's clusters are not ones this mnemo reads")
    }

    /// Starts an index job for these paths (made absolute: the server resolves them on the
    /// same machine) and follows it to its end.
    pub fn index(
        &self,
        paths: &[PathBuf],
        tasks_only: bool,
        collection: &str,
        passages_collection: &str,
    ) -> anyhow::Result<IndexSummary> {
        let paths = paths
            .iter()
            .map(|path| {
                std::path::absolute(path)
                    .map(|path| path.display().to_string())
                    .with_context(|| format!("cannot make {} absolute", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "the data directory is held by mnemo serve at {}: indexing through it",
            self.base
        );
        let job = self.post(
            "/api/v1/index",
            json!({
                "paths": paths,
                "tasks_only": tasks_only,
                "collection": collection,
                "passages_collection": passages_collection,
            }),
        )?;
        let id = job["id"].as_u64().context("the server's job has no id")?;
        let bar = crate::progress::Bar::new("indexing on the server", "{pos}/{len} files,");
        loop {
            let job = self.call(self.client.get(format!("{}/api/v1/jobs/{id}", self.base)))?;
            bar.0.set_length(job["files_total"].as_u64().unwrap_or(0));
            bar.0.set_position(job["files_done"].as_u64().unwrap_or(0));
            bar.0.set_message(format!(
                "{} embedded",
                job["embedded"].as_u64().unwrap_or(0)
            ));
            match job["state"].as_str() {
                Some("succeeded") => {
                    bar.finish();
                    return serde_json::from_value(job["summary"].clone())
                        .context("the server's job summary is not one this mnemo reads");
                }
                Some("failed") => {
                    bar.finish();
                    bail!(
                        "the server's index job {id} failed: {}",
                        job["error"].as_str().unwrap_or("no reason given")
                    );
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

fn hits(answer: &Value) -> anyhow::Result<Vec<ScoredPoint>> {
    let results = answer["result"]
        .as_array()
        .context("the server's answer has no `result` list")?;
    results
        .iter()
        .map(|hit| {
            let id: PointId =
                serde_json::from_value(hit["id"].clone()).context("a hit without a point id")?;
            Ok(ScoredPoint {
                id,
                score: hit["score"].as_f64().unwrap_or_default() as f32,
                payload: hit["payload"].as_object().cloned().unwrap_or_default(),
                vectors: Default::default(),
            })
        })
        .collect()
}

/// Snapshots through the server: the same routes any client uses.
impl Remote {
    pub fn create_snapshot(&self, collection: &str) -> anyhow::Result<SnapshotInfo> {
        let answer = self.post(
            &format!("/api/v1/collections/{collection}/snapshots"),
            json!({}),
        )?;
        serde_json::from_value(answer).context("the server's snapshot is not one this mnemo reads")
    }

    pub fn list_snapshots(&self, collection: &str) -> anyhow::Result<Vec<SnapshotInfo>> {
        let url = format!("{}/api/v1/collections/{collection}/snapshots", self.base);
        let answer = self.call(self.client.get(url))?;
        serde_json::from_value(answer["snapshots"].clone())
            .context("the server's snapshots are not ones this mnemo reads")
    }

    pub fn restore_snapshot(
        &self,
        collection: &str,
        snapshot: &str,
    ) -> anyhow::Result<SnapshotInfo> {
        if snapshot.contains(std::path::MAIN_SEPARATOR) {
            bail!(
                "the data directory is held by mnemo serve at {}: it restores snapshots by name \
                 (`mnemo snapshot list`), not from a file path; stop it to restore {snapshot}",
                self.base
            );
        }
        let answer = self.post(
            &format!("/api/v1/collections/{collection}/snapshots/{snapshot}/restore"),
            json!({}),
        )?;
        serde_json::from_value(answer).context("the server's snapshot is not one this mnemo reads")
    }

    pub fn delete_snapshot(&self, collection: &str, snapshot: &str) -> anyhow::Result<bool> {
        let url = format!(
            "{}/api/v1/collections/{collection}/snapshots/{snapshot}",
            self.base
        );
        let answer = self.call(self.client.delete(url))?;
        Ok(answer["deleted"].as_bool().unwrap_or(false))
    }
}
