//! Webhooks: the event log delivered to HTTP endpoints. Each webhook follows the log from a
//! cursor kept in the relational store (`webhooks/{name}`), posts each event of the types it
//! asked for as JSON, one request per event, in the log's order, signed with an HMAC-SHA256
//! of the body when it has a secret, and moves its cursor only once the endpoint answered
//! 2xx: delivery is at least once (an event whose answer was lost to a crash is sent again;
//! `X-Mnemo-Delivery`, the event's id, lets a receiver drop the repeat).
//!
//! A connection error, a timeout, a 408, a 429 or a 5xx is tried again, after 1 s doubling to
//! 5 minutes (or the `Retry-After` it gave), the same event until it passes: nothing is
//! skipped because an endpoint was down. Another 4xx says the endpoint refuses this event: it
//! is skipped with a `webhook.rejected` event. `webhook.*` events are never delivered, so that
//! a failing endpoint cannot feed itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use mnemo_records::{Event, EventQuery};
use serde_json::json;
use sha2::Sha256;

use crate::components::{Component, Periodic};
use crate::{Engine, EngineError, Result, lock};

/// Events read from the log per pass.
const EVENTS_PER_PASS: usize = 100;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// How often a webhook looks for new events.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A pass stops posting after this long, so that stopping the service waits for one request
/// at most.
const MAX_PASS: Duration = Duration::from_secs(2);
/// The header carrying the signature: `sha256=` and the hex HMAC of the body.
pub const SIGNATURE_HEADER: &str = "X-Mnemo-Signature-256";

/// One endpoint, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Names its component (`webhook-{name}`) and its cursor.
    pub name: String,
    pub url: String,
    /// The HMAC key; none: deliveries are not signed.
    pub secret: Option<String>,
    /// Event types or families delivered (none: all).
    pub types: Vec<String>,
    pub timeout: Duration,
}

impl Webhook {
    /// Its URL's scheme and host: what is said of it (a webhook's path often holds a token).
    pub fn origin(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return "[webhook URL]".to_owned();
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
        format!("{scheme}://{host}/…")
    }

    /// What is wrong with it, if anything: a name usable in a component's name and a URL,
    /// an `http` or `https` URL, event types that exist.
    pub fn check(&self) -> std::result::Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "webhook name `{}` must be 1 to 64 letters, digits, `-` or `_`",
                self.name.chars().take(80).collect::<String>()
            ));
        }
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|scheme| self.url.len() > scheme.len() && self.url.starts_with(scheme));
        if !scheme_ok || self.url.chars().any(char::is_whitespace) {
            return Err(format!(
                "webhook `{}`: url `{}` must be an http:// or https:// URL",
                self.name, self.url
            ));
        }
        if self.timeout.is_zero() {
            return Err(format!("webhook `{}`: timeout must be positive", self.name));
        }
        EventQuery {
            types: self.types.clone(),
            ..EventQuery::default()
        }
        .check()
        .map_err(|err| format!("webhook `{}`: {err}", self.name))
    }
}

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Where a webhook stands between passes.
struct Delivery {
    client: Option<reqwest::blocking::Client>,
    /// The last event delivered (or skipped); none until read from the store.
    after: Option<i64>,
    /// When the next try may run, and the wait after it.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Failed tries of the current event, and the last error.
    failures: u32,
    last_error: Option<String>,
    delivered: u64,
}

enum Outcome {
    Delivered,
    /// The endpoint refuses this event: skip it.
    Rejected(u16),
    /// Try again, not before the wait given (if any).
    Retry(String, Option<Duration>),
}

fn retry_after(response: &reqwest::blocking::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY))
}

fn post(client: &reqwest::blocking::Client, webhook: &Webhook, event: &Event) -> Outcome {
    let body = match serde_json::to_vec(event) {
        Ok(body) => body,
        Err(err) => return Outcome::Retry(format!("cannot write event {}: {err}", event.id), None),
    };
    let mut request = client
        .post(&webhook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Mnemo-Event", &event.kind)
        .header("X-Mnemo-Delivery", event.id.to_string());
    if let Some(secret) = &webhook.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    match request.body(body).send() {
        Err(err) => Outcome::Retry(
            format!(
                "{}: {}",
                webhook.origin(),
                mnemo_embed::describe_http_error(&err)
            ),
            None,
        ),
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Outcome::Delivered
            } else if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
            {
                Outcome::Retry(
                    format!("{} answered {status}", webhook.origin()),
                    retry_after(&response),
                )
            } else {
                Outcome::Rejected(status.as_u16())
            }
        }
    }
}

impl Engine {
    fn webhook_cursor_key(name: &str) -> String {
        format!("webhooks/{name}")
    }

    /// One pass of `webhook`: delivers what is pending, until an endpoint failure (then
    /// waits) or the log is read; a short account of where it stands.
    fn deliver_webhook(&self, webhook: &Webhook, state: &mut Delivery) -> Result<String> {
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(self.webhook_account(webhook, state));
        }
        let key = Self::webhook_cursor_key(&webhook.name);
        let after = match state.after {
            Some(after) => after,
            None => {
                // A new webhook starts at the log's end: it is told what happens from now.
                let after = match records.state(&key)? {
                    Some(cursor) => cursor["after"].as_i64().unwrap_or(0),
                    None => {
                        let last = records.last_event_id()?;
                        records.put_state(&key, &json!({ "after": last }), None)?;
                        last
                    }
                };
                state.after = Some(after);
                after
            }
        };
        if state.client.is_none() {
            let client = reqwest::blocking::Client::builder()
                .timeout(webhook.timeout)
                .user_agent(concat!("mnemo/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|err| EngineError::UnreadablePath {
                    path: webhook.origin(),
                    reason: format!("cannot build an HTTP client: {err}"),
                })?;
            state.client = Some(client);
        }
        let client = state.client.clone().expect("built above");
        // Read before the events: every event up to it is committed and visible to the read
        // below, so a cursor moved to it skips nothing.
        let end = records.last_event_id()?;
        let events = records.events(&EventQuery {
            after,
            types: webhook.types.clone(),
            limit: EVENTS_PER_PASS,
        })?;
        let started = Instant::now();
        let mut cursor = after;
        for event in &events {
            if started.elapsed() > MAX_PASS {
                return Ok(self.webhook_account(webhook, state));
            }
            if !event.kind.starts_with("webhook.") {
                match post(&client, webhook, event) {
                    Outcome::Delivered => state.delivered += 1,
                    Outcome::Rejected(status) => {
                        self.emit(
                            "webhook.rejected",
                            Some(webhook.name.clone()),
                            json!({ "event": event.id, "type": event.kind, "status": status }),
                        );
                    }
                    Outcome::Retry(error, wait) => {
                        state.failures += 1;
                        state.retry_at = Some(Instant::now() + wait.unwrap_or(state.backoff));
                        state.backoff = (state.backoff * 2).min(MAX_RETRY);
                        self.set_webhook_failing(&webhook.name, Some(error.clone()));
                        state.last_error = Some(error);
                        return Ok(self.webhook_account(webhook, state));
                    }
                }
            }
            cursor = event.id;
            state.failures = 0;
            state.backoff = FIRST_RETRY;
            state.retry_at = None;
            state.last_error = None;
            self.set_webhook_failing(&webhook.name, None);
            records.put_state(&key, &json!({ "after": cursor }), None)?;
            state.after = Some(cursor);
        }
        // Every matching event up to `end` was read: the events of other types before it
        // need not be read again at each pass.
        if events.len() < EVENTS_PER_PASS && end > cursor {
            records.put_state(&key, &json!({ "after": end }), None)?;
            state.after = Some(end);
        }
        Ok(self.webhook_account(webhook, state))
    }

    fn webhook_account(&self, webhook: &Webhook, state: &Delivery) -> String {
        match &state.last_error {
            Some(error) => format!(
                "{} delivered; event after {} failed {} times, tried again in {} s: {error}",
                state.delivered,
                state.after.unwrap_or(0),
                state.failures,
                state.retry_at.map_or(0, |at| at
                    .saturating_duration_since(Instant::now())
                    .as_secs())
            ),
            None => format!(
                "{} delivered to {}; at event {}",
                state.delivered,
                webhook.origin(),
                state.after.unwrap_or(0)
            ),
        }
    }

    fn set_webhook_failing(&self, name: &str, error: Option<String>) {
        let mut failing = lock(&self.alerts.webhooks_failing);
        match error {
            Some(error) => {
                failing
                    .entry(name.to_owned())
                    .and_modify(|(_, last)| *last = error.clone())
                    .or_insert((Instant::now(), error));
            }
            None => {
                failing.remove(name);
            }
        }
    }

    /// The component delivering the log to `webhook`.
    pub fn webhook_component(self: &Arc<Self>, webhook: Webhook) -> Arc<dyn Component> {
        let engine = Arc::clone(self);
        let description = format!("posts events to {}", webhook.origin());
        let name = format!("webhook-{}", webhook.name);
        let state = Mutex::new(Delivery {
            client: None,
            after: None,
            retry_at: None,
            backoff: FIRST_RETRY,
            failures: 0,
            last_error: None,
            delivered: 0,
        });
        Arc::new(Periodic::new(
            &name,
            &description,
            POLL_EVERY,
            &["records"],
            move || {
                let mut state = lock(&state);
                engine
                    .deliver_webhook(&webhook, &mut state)
                    .map_err(|err| err.to_string())
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn check_refuses_bad_names_urls_and_types() {
        let good = Webhook {
            name: "ops-1".into(),
            url: "https://hooks.internal/mnemo".into(),
            secret: None,
            types: vec!["alert".into(), "job.failed".into()],
            timeout: Duration::from_secs(10),
        };
        assert_eq!(good.check(), Ok(()));
        let token = Webhook {
            url: "https://user:pw@hooks.internal:8443/services/T0/B1/secret?x=1".into(),
            ..good.clone()
        };
        assert_eq!(token.origin(), "https://hooks.internal:8443/…");
        for bad in [
            Webhook {
                name: "a b".into(),
                ..good.clone()
            },
            Webhook {
                url: "ftp://x".into(),
                ..good.clone()
            },
            Webhook {
                url: "http://".into(),
                ..good.clone()
            },
            Webhook {
                types: vec!["Alert!".into()],
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
