//! Where a Qdrant server or cluster is, and how collections are laid out on it: parsed from
//! `qdrant://host:port[,host:port...][?shards=N&replication=N&write_consistency=N&timeout_ms=N]`.

use std::time::Duration;

use crate::error::StoreError;
use crate::qdrant::resilience::ResiliencePolicy;

/// How to reach a Qdrant deployment and what new collections look like on it.
#[derive(Debug, Clone, PartialEq)]
pub struct QdrantOptions {
    /// gRPC endpoints (`http://host:6334`, `https://...` for TLS); more than one for a cluster,
    /// tried in turn when one fails.
    pub nodes: Vec<String>,
    /// Sent as the `api-key` header.
    pub api_key: Option<String>,
    /// Shards of a new collection; `None` lets Qdrant choose (one per node).
    pub shard_number: Option<u32>,
    /// Copies of each shard: 2 when several nodes are given, so a node can be lost without
    /// losing or refusing anything; `None` (one node given) lets the store look: a collection
    /// whose shards land on several peers is made again with 2.
    pub replication_factor: Option<u32>,
    /// Copies that must acknowledge a write before it is acknowledged.
    pub write_consistency_factor: Option<u32>,
    pub policy: ResiliencePolicy,
}

impl QdrantOptions {
    /// Options for the nodes of one deployment, with the defaults that suit their number.
    pub fn new(nodes: Vec<String>) -> Self {
        let replication_factor = (nodes.len() > 1).then_some(2);
        Self {
            nodes,
            api_key: None,
            shard_number: None,
            replication_factor,
            write_consistency_factor: None,
            policy: ResiliencePolicy::default(),
        }
    }

    /// Parses `qdrant://`, `qdrants://` (TLS), `http://` or `https://` locations.
    pub fn from_url(location: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadLocation {
            location: location.to_owned(),
            reason,
        };
        let (scheme, rest) = location
            .split_once("://")
            .ok_or_else(|| bad("expected qdrant://host:port".into()))?;
        let transport = match scheme {
            "qdrant" | "http" => "http",
            "qdrants" | "https" => "https",
            other => return Err(bad(format!("unknown scheme `{other}`"))),
        };
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad(format!(
                    "`{host}` has no port (Qdrant's gRPC port is 6334 by default)"
                )));
            };
            if name.is_empty() || name.contains('/') || name.contains('@') {
                return Err(bad(format!("`{host}` is not a host:port")));
            }
            port.parse::<u16>()
                .map_err(|_| bad(format!("`{port}` is not a port number")))?;
            nodes.push(format!("{transport}://{host}"));
        }
        let mut options = Self::new(nodes);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("`{pair}` is not key=value")))?;
            let number = || {
                value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(format!("`{key}` must be a positive integer, not `{value}`"))
                })
            };
            match key {
                "shards" => options.shard_number = Some(number()?),
                "replication" => options.replication_factor = Some(number()?),
                "write_consistency" => options.write_consistency_factor = Some(number()?),
                "timeout_ms" => options.policy.timeout = Duration::from_millis(number()?.into()),
                // 0 is a fair wish here (fail at the first error): attempts are retries + 1.
                "retries" => {
                    let retries =
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n < 100)
                            .ok_or_else(|| {
                                bad(format!(
                                    "`retries` must be an integer from 0 to 99, not `{value}`"
                                ))
                            })?;
                    options.policy.max_attempts = retries + 1;
                }
                other => {
                    return Err(bad(format!(
                        "unknown setting `{other}` (known: shards, replication, write_consistency, timeout_ms, retries)"
                    )));
                }
            }
        }
        Ok(options)
    }

    /// Whether `location` names a Qdrant deployment rather than a data directory.
    pub fn is_location(location: &str) -> bool {
        ["qdrant://", "qdrants://", "http://", "https://"]
            .iter()
            .any(|scheme| location.starts_with(scheme))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_and_a_cluster() {
        let one = QdrantOptions::from_url("qdrant://127.0.0.1:6334").unwrap();
        assert_eq!(one.nodes, ["http://127.0.0.1:6334"]);
        assert_eq!(one.replication_factor, None);
        let three = QdrantOptions::from_url(
            "qdrants://a:1,b:2,c:3/?shards=3&replication=2&write_consistency=1&timeout_ms=500",
        )
        .unwrap();
        assert_eq!(three.nodes, ["https://a:1", "https://b:2", "https://c:3"]);
        assert_eq!(
            (
                three.shard_number,
                three.replication_factor,
                three.write_consistency_factor
            ),
            (Some(3), Some(2), Some(1))
        );
        assert_eq!(three.policy.timeout, Duration::from_millis(500));
        let no_retry = QdrantOptions::from_url("qdrant://h:1?retries=0").unwrap();
        assert_eq!(no_retry.policy.max_attempts, 1);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (location, expected) in [
            ("qdrant://host", "has no port"),
            ("qdrant://host:x", "is not a port"),
            ("ftp://host:1", "unknown scheme"),
            ("qdrant://h:1?shards=0", "positive integer"),
            ("qdrant://h:1?colour=red", "unknown setting `colour`"),
            ("qdrant://h:1?retries=-1", "from 0 to 99"),
        ] {
            let message = QdrantOptions::from_url(location).unwrap_err().to_string();
            assert!(message.contains(expected), "{location}: {message}");
        }
    }
}
