//! The recent text queries of each collection, kept when the configuration asks for it
//! (`query_log = N`; off by default: queries may hold what people would rather not see kept).
//! A migration's report compares the old and new models on them: the questions people really
//! ask, rather than the canaries alone. Kept in memory as they come and written to the
//! records' state every few seconds by the `query-log` component, so that `mnemo model
//! migrate`, another process, reads them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::{Engine, EngineError, Result};

const STATE_PREFIX: &str = "query-log.";
/// A query longer than this is not kept (a pasted document is not a question).
const MAX_LOGGED_CHARS: usize = 500;

#[derive(Default)]
pub(crate) struct QueryLog {
    /// Queries kept per collection; 0: none.
    keep: usize,
    recent: Mutex<BTreeMap<String, VecDeque<String>>>,
    dirty: AtomicBool,
}

impl QueryLog {
    pub(crate) fn keeps(&self) -> bool {
        self.keep > 0
    }

    pub(crate) fn record(&self, collection: &str, query: &str) {
        if self.keep == 0 || query.chars().count() > MAX_LOGGED_CHARS || query.trim().is_empty() {
            return;
        }
        let mut recent = crate::lock(&self.recent);
        let queries = recent.entry(collection.to_owned()).or_default();
        if queries.back().is_some_and(|last| last == query) {
            return;
        }
        queries.push_back(query.to_owned());
        while queries.len() > self.keep {
            queries.pop_front();
        }
        self.dirty.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// This engine keeping the last `keep` text queries of each collection (0: none).
    pub fn with_query_log(mut self, keep: usize) -> Self {
        self.query_log.keep = keep;
        self
    }

    pub(crate) fn log_query(&self, collection: &str, query: &str) {
        self.query_log.record(collection, query);
    }

    /// Writes the queries kept since the last call to the records' state; how many
    /// collections' logs it wrote.
    pub fn flush_query_log(&self) -> Result<usize> {
        if !self.query_log.dirty.swap(false, Ordering::Relaxed) {
            return Ok(0);
        }
        let records = self.records.as_ref().ok_or(EngineError::EventLogMissing)?;
        let recent = crate::lock(&self.query_log.recent).clone();
        for (collection, queries) in &recent {
            let value = Value::Array(queries.iter().cloned().map(Value::String).collect());
            records.put_state(&format!("{STATE_PREFIX}{collection}"), &value, None)?;
        }
        Ok(recent.len())
    }

    /// The recent queries of `collection`: this process's own when it kept any (a flush
    /// writes them whole, so they hold what it wrote and what came since), else those a server
    /// wrote to the records.
    pub fn recent_queries(&self, collection: &str) -> Result<Vec<String>> {
        if let Some(own) = crate::lock(&self.query_log.recent).get(collection)
            && !own.is_empty()
        {
            return Ok(own.iter().cloned().collect());
        }
        Ok(match &self.records {
            Some(records) => records
                .state(&format!("{STATE_PREFIX}{collection}"))?
                .and_then(|value| serde_json::from_value(value).ok())
                .unwrap_or_default(),
            None => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_last_queries_once() {
        let log = QueryLog {
            keep: 2,
            ..QueryLog::default()
        };
        for query in ["a", "a", "b", "c", "", &"x".repeat(600)] {
            log.record("tasks", query);
        }
        let recent = log.recent.lock().unwrap();
        assert_eq!(recent["tasks"], ["b", "c"]);
        let off = QueryLog::default();
        off.record("tasks", "a");
        assert!(off.recent.lock().unwrap().is_empty());
    }
}
