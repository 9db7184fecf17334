//! Query embeddings, remembered: an agent or a dashboard asks the same questions again and
//! again, and one embedding costs milliseconds where a search costs a fraction of one.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;

/// The key of a query: the BLAKE3 of its text. A cache keyed by the texts themselves held
/// whatever clients sent (1,024 queries of 2 MiB pinned 2 GiB); a hash keeps an entry at
/// its vector's size whatever the query's.
type QueryKey = [u8; 32];

fn key_of(text: &str) -> QueryKey {
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// Least-recently-used, each entry valid for `ttl`; an entry costs its vector and 32 bytes.
pub struct QueryCache {
    entries: Mutex<LruCache<QueryKey, (Instant, Vec<f32>)>>,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

impl QueryCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn get(&self, text: &str) -> Option<Vec<f32>> {
        let key = key_of(text);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = match entries.get(&key) {
            Some((at, vector)) if at.elapsed() <= self.ttl => Some(vector.clone()),
            Some(_) => {
                entries.pop(&key);
                None
            }
            None => None,
        };
        let counter = if fresh.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh
    }

    pub fn put(&self, text: &str, vector: Vec<f32>) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.put(key_of(text), (Instant::now(), vector));
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_and_forgets_stale_and_old_entries() {
        let cache = QueryCache::new(2, Duration::from_secs(60));
        assert_eq!(cache.get("a"), None);
        cache.put("a", vec![1.0]);
        cache.put("b", vec![2.0]);
        assert_eq!(cache.get("a"), Some(vec![1.0]));
        cache.put("c", vec![3.0]); // evicts b, the least recently used
        assert_eq!(cache.get("b"), None);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                entries: 2
            }
        );

        let huge = "x".repeat(2 << 20);
        cache.put(&huge, vec![4.0]);
        assert_eq!(cache.get(&huge), Some(vec![4.0]));
        let key_bytes = std::mem::size_of::<QueryKey>();
        assert_eq!(
            key_bytes, 32,
            "an entry holds a hash of the query, not its text"
        );

        let expiring = QueryCache::new(4, Duration::ZERO);
        expiring.put("a", vec![1.0]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(expiring.get("a"), None);
        assert_eq!(expiring.stats().entries, 0);
    }
}
