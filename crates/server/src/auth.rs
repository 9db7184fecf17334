//! API keys, their scopes and collections, and a token bucket per key.
//!
//! A key is kept only as its BLAKE3 hash: the config file holds `blake3:<hex>`, and a key
//! given in the environment is hashed when read. A request's key is hashed and compared
//! with the hashes (BLAKE3's equality is constant-time).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::config::{ConfigError, RateLimit};
use crate::error::{ApiError, ErrorCode};

/// What a key may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read collections and points, search, embed.
    Read,
    /// Also write and delete points, run indexing jobs.
    Write,
    /// Also create and delete collections.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    hash: blake3::Hash,
    /// The widest scope given.
    pub scope: Scope,
    /// `None`: every collection.
    pub collections: Option<Vec<String>>,
}

pub const HASH_PREFIX: &str = "blake3:";

impl ApiKey {
    pub fn from_hash(
        name: &str,
        hash: &str,
        scopes: Vec<Scope>,
        collections: Option<Vec<String>>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Key {
            name: name.to_owned(),
            message,
        };
        let hex = hash.strip_prefix(HASH_PREFIX).ok_or_else(|| {
            invalid(format!(
                "hash must be `{HASH_PREFIX}` and 64 hex digits (`mnemo key new` prints one)"
            ))
        })?;
        let hash = blake3::Hash::from_hex(hex)
            .map_err(|err| invalid(format!("hash is not 64 hex digits: {err}")))?;
        let scope = scopes
            .into_iter()
            .max()
            .ok_or_else(|| invalid("no scopes: give read, write or admin".to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            hash,
            scope,
            collections,
        })
    }

    /// A key given in clear (from the environment): kept as its hash only.
    pub fn from_secret(name: &str, secret: &str, scope: Scope) -> Self {
        Self {
            name: name.to_owned(),
            hash: blake3::hash(secret.as_bytes()),
            scope,
            collections: None,
        }
    }

    /// The line of the config file for `secret`.
    pub fn hash_of(secret: &str) -> String {
        format!("{HASH_PREFIX}{}", blake3::hash(secret.as_bytes()).to_hex())
    }

    pub fn may_use(&self, collection: &str) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|c| c == collection))
    }
}

/// Who is asking: a key, or anyone when the server has no keys (loopback only).
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Option<ApiKey>,
}

impl Caller {
    pub fn name(&self) -> &str {
        self.key
            .as_ref()
            .map_or("anonymous", |key| key.name.as_str())
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.key {
            Some(key) if key.scope < scope => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "key `{}` has the `{}` scope; this needs `{}`",
                    key.name,
                    key.scope.name(),
                    scope.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn require_collection(&self, scope: Scope, collection: &str) -> Result<(), ApiError> {
        self.require(scope)?;
        match &self.key {
            Some(key) if !key.may_use(collection) => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("key `{}` may not use collection `{collection}`", key.name),
            )),
            _ => Ok(()),
        }
    }

    pub fn may_see(&self, collection: &str) -> bool {
        self.key.as_ref().is_none_or(|key| key.may_use(collection))
    }
}

/// The keys a server accepts.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<ApiKey>,
}

impl KeyRing {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self { keys }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller presenting `secret` (from `Authorization: Bearer` or `api-key`).
    pub fn identify(&self, secret: Option<&str>) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller { key: None });
        }
        let secret = secret.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "an API key is needed: send `Authorization: Bearer KEY` or `api-key: KEY`",
            )
        })?;
        let hash = blake3::hash(secret.as_bytes());
        self.keys
            .iter()
            .find(|key| key.hash == hash)
            .map(|key| Caller {
                key: Some(key.clone()),
            })
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown API key"))
    }
}

/// A token bucket per caller: `burst` requests at once, refilled at `per_second`.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `caller`, or says how many seconds until one is there.
    pub fn take(&self, caller: &str) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: burst.max(1.0),
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst.max(1.0));
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_hash_and_scopes_include_the_lesser_ones() {
        let hash = ApiKey::hash_of("s3cret");
        let writer = ApiKey::from_hash(
            "writer",
            &hash,
            vec![Scope::Read, Scope::Write],
            Some(vec!["tasks".into()]),
        )
        .unwrap();
        let ring = KeyRing::new(vec![writer]);
        assert_eq!(
            ring.identify(None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            ring.identify(Some("wrong")).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        let caller = ring.identify(Some("s3cret")).unwrap();
        assert!(caller.require(Scope::Read).is_ok());
        assert!(caller.require_collection(Scope::Write, "tasks").is_ok());
        let err = caller.require(Scope::Admin).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert_eq!(
            err.message,
            "key `writer` has the `write` scope; this needs `admin`"
        );
        let err = caller
            .require_collection(Scope::Read, "passages")
            .unwrap_err();
        assert_eq!(
            err.message,
            "key `writer` may not use collection `passages`"
        );
    }

    #[test]
    fn the_bucket_empties_then_says_how_long_to_wait() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.5,
            burst: 2.0,
        });
        assert!(limiter.take("a").is_ok());
        assert!(limiter.take("a").is_ok());
        assert_eq!(limiter.take("a"), Err(2));
        assert!(limiter.take("b").is_ok(), "each caller has its own bucket");
    }
}
