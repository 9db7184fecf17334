//! Who may do what to which collection, for every door (REST, MCP, ...): API keys kept as
//! their hashes, each with a scope and the collections it may use, and the one decision,
//! [`Principal::authorize`]. A door finds the principal from its own credentials
//! ([`KeyRing::identify`]) and maps an [`AccessError`] to its own answer (401/403 over HTTP).
//!
//! A key is kept only as its BLAKE3 hash: the config file holds `blake3:<hex>`, and a key
//! given in the environment is hashed when read. A presented key is hashed and compared with
//! the hashes (BLAKE3's equality is constant-time).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The environment variable that holds the key a client sends and that `mnemo serve` accepts
/// as an admin key.
pub const API_KEY_ENV: &str = "MNEMO_API_KEY";

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
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = AccessError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.name() == name)
            .ok_or_else(|| AccessError::UnknownScope(name.to_owned()))
    }
}

/// Why a principal may not do something, or a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("an API key is needed: send `Authorization: Bearer KEY` or `api-key: KEY`")]
    KeyMissing,
    #[error("unknown API key")]
    KeyUnknown,
    #[error("key `{key}` has the `{has}` scope; this needs `{needs}`")]
    ScopeTooNarrow {
        key: String,
        has: Scope,
        needs: Scope,
    },
    #[error("key `{key}` may not use collection `{collection}`")]
    CollectionDenied { key: String, collection: String },
    #[error("key `{key}` is limited to some collections; this covers them all")]
    CollectionsLimited { key: String },
    #[error("unknown scope `{0}`: use read, write or admin")]
    UnknownScope(String),
    #[error("key `{key}` acts for {field} `{owner}` and may not use the memories of `{asked}`")]
    MemoryOwnerDenied {
        key: String,
        field: &'static str,
        owner: String,
        asked: String,
    },
    #[error("key `{name}`: {message}")]
    InvalidKey { name: String, message: String },
}

impl AccessError {
    /// No key, or one nobody knows (401 over HTTP); the others are refusals of a known
    /// principal (403) or mistakes in a key's definition.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::KeyMissing | Self::KeyUnknown)
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
    /// Whose memories this key reads and writes: a key tied to a user (or an agent) uses
    /// that user's memories only, and its calls default to that user.
    pub memory_owner: MemoryOwner,
}

/// The user and agent a key acts for, when it is tied to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryOwner {
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
}

pub const HASH_PREFIX: &str = "blake3:";

impl ApiKey {
    pub fn from_hash(
        name: &str,
        hash: &str,
        scopes: Vec<Scope>,
        collections: Option<Vec<String>>,
    ) -> Result<Self, AccessError> {
        let invalid = |message: String| AccessError::InvalidKey {
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
            memory_owner: MemoryOwner::default(),
        })
    }

    /// A key given in clear (from the environment): kept as its hash only.
    pub fn from_secret(name: &str, secret: &str, scope: Scope) -> Self {
        Self {
            name: name.to_owned(),
            hash: blake3::hash(secret.as_bytes()),
            scope,
            collections: None,
            memory_owner: MemoryOwner::default(),
        }
    }

    /// This key tied to `owner`'s memories.
    pub fn owning_memories_of(mut self, owner: MemoryOwner) -> Self {
        self.memory_owner = owner;
        self
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

/// Who is asking: a key, or anyone when the service has no keys (loopback only).
#[derive(Debug, Clone)]
pub struct Principal {
    key: Option<ApiKey>,
}

impl Principal {
    /// Anyone, on a service that has no keys.
    pub fn anonymous() -> Self {
        Self { key: None }
    }

    /// The user of this machine (`mnemo mcp` over stdio): every scope, acting for `owner`'s
    /// memories when one is given.
    pub fn local(owner: MemoryOwner) -> Self {
        if owner == MemoryOwner::default() {
            return Self::anonymous();
        }
        Self {
            key: Some(ApiKey {
                name: "local".to_owned(),
                // Never presented: this principal is not found by a secret.
                hash: blake3::hash(b""),
                scope: Scope::Admin,
                collections: None,
                memory_owner: owner,
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.key
            .as_ref()
            .map_or("anonymous", |key| key.name.as_str())
    }

    pub fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// Whether this principal may do what needs `scope` to `collection` (`None`: to no
    /// collection in particular, or to the service as a whole).
    pub fn authorize(&self, scope: Scope, collection: Option<&str>) -> Result<(), AccessError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        if key.scope < scope {
            return Err(AccessError::ScopeTooNarrow {
                key: key.name.clone(),
                has: key.scope,
                needs: scope,
            });
        }
        match collection {
            Some(collection) if !key.may_use(collection) => Err(AccessError::CollectionDenied {
                key: key.name.clone(),
                collection: collection.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `collection` is one this principal may know of (listings leave out the others).
    pub fn may_see(&self, collection: &str) -> bool {
        self.key.as_ref().is_none_or(|key| key.may_use(collection))
    }

    /// The scope of a memory call: the fields `asked`, the key's own user and agent where
    /// none is asked. A key tied to a user or agent may not name another one.
    pub fn memory_scope(
        &self,
        mut asked: mnemo_records::Scope,
    ) -> Result<mnemo_records::Scope, AccessError> {
        let Some(key) = &self.key else {
            return Ok(asked);
        };
        for (field, owner, asked) in [
            ("user_id", &key.memory_owner.user_id, &mut asked.user_id),
            ("agent_id", &key.memory_owner.agent_id, &mut asked.agent_id),
        ] {
            match (owner, asked.as_deref()) {
                (Some(owner), Some(value)) if owner != value => {
                    return Err(AccessError::MemoryOwnerDenied {
                        key: key.name.clone(),
                        field,
                        owner: owner.clone(),
                        asked: value.to_owned(),
                    });
                }
                (Some(owner), None) => *asked = Some(owner.clone()),
                _ => {}
            }
        }
        Ok(asked)
    }

    /// Whether this principal may read or change a memory of `scope` (by its id).
    pub fn may_use_memory(&self, scope: &mnemo_records::Scope) -> Result<(), AccessError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        for (field, owner, held) in [
            ("user_id", &key.memory_owner.user_id, &scope.user_id),
            ("agent_id", &key.memory_owner.agent_id, &scope.agent_id),
        ] {
            if let Some(owner) = owner
                && held.as_ref() != Some(owner)
            {
                return Err(AccessError::MemoryOwnerDenied {
                    key: key.name.clone(),
                    field,
                    owner: owner.clone(),
                    asked: held.clone().unwrap_or_else(|| "nobody".to_owned()),
                });
            }
        }
        Ok(())
    }

    /// Whether this principal is held to some collections only.
    pub fn is_restricted(&self) -> bool {
        self.key
            .as_ref()
            .is_some_and(|key| key.collections.is_some())
    }
}

/// The keys a service accepts.
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

    /// The principal presenting `secret`; anyone when there are no keys.
    pub fn identify(&self, secret: Option<&str>) -> Result<Principal, AccessError> {
        if self.is_open() {
            return Ok(Principal::anonymous());
        }
        let secret = secret.ok_or(AccessError::KeyMissing)?;
        let hash = blake3::hash(secret.as_bytes());
        self.keys
            .iter()
            .find(|key| key.hash == hash)
            .map(|key| Principal {
                key: Some(key.clone()),
            })
            .ok_or(AccessError::KeyUnknown)
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
        assert_eq!(ring.identify(None).unwrap_err(), AccessError::KeyMissing);
        assert_eq!(
            ring.identify(Some("wrong")).unwrap_err(),
            AccessError::KeyUnknown
        );
        let writer = ring.identify(Some("s3cret")).unwrap();
        assert!(writer.authorize(Scope::Read, None).is_ok());
        assert!(writer.authorize(Scope::Write, Some("tasks")).is_ok());
        assert_eq!(
            writer
                .authorize(Scope::Admin, None)
                .unwrap_err()
                .to_string(),
            "key `writer` has the `write` scope; this needs `admin`"
        );
        let denied = writer.authorize(Scope::Read, Some("passages")).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "key `writer` may not use collection `passages`"
        );
        assert!(!denied.is_unauthenticated());
        assert!(writer.is_restricted() && !writer.may_see("passages"));
    }

    #[test]
    fn an_open_ring_lets_anyone_do_anything() {
        let anyone = KeyRing::default().identify(None).unwrap();
        assert_eq!(anyone.name(), "anonymous");
        assert!(anyone.authorize(Scope::Admin, Some("any")).is_ok());
        assert!(!anyone.is_restricted());
    }

    #[test]
    fn scopes_are_read_by_name() {
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert_eq!(
            "root".parse::<Scope>().unwrap_err().to_string(),
            "unknown scope `root`: use read, write or admin"
        );
    }
}
