//! One search as every door receives it: by text or by vector, on a collection the engine
//! made (`mnemo index`) or on any other (imported, or created through an API), a page at a
//! time. The engine decides how it is answered; a door only translates its request into a
//! [`QueryRequest`] and the hits into its answer.

use mnemo_store::{NearestQuery, ScoredPoint, SearchRequest, Vector};

use crate::{Engine, EngineError, Result, SearchMode, SearchOptions, is_engine_layout};

/// The most results one query may reach (`offset + limit`).
pub const MAX_RESULTS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub collection: String,
    /// Give `text` or `vector`, not both.
    pub text: Option<String>,
    pub vector: Option<Vec<f32>>,
    /// The dense vector to search (vector searches); by default the collection's only one,
    /// or `dense`.
    pub using: Option<String>,
    pub filter: Option<mnemo_store::Filter>,
    pub limit: usize,
    /// Results skipped before the first one returned.
    pub offset: usize,
    pub with_payload: bool,
    pub with_vector: bool,
    pub score_threshold: Option<f32>,
    /// Text searches: dense, hybrid or keyword (the last two on the engine's collections).
    pub mode: SearchMode,
    /// HNSW beam width (vector searches).
    pub ef: Option<usize>,
    /// Exact scan instead of HNSW (vector searches).
    pub exact: bool,
}

impl QueryRequest {
    /// A text query in the default mode, 10 results, payloads included.
    pub fn text(collection: &str, text: &str) -> Self {
        Self {
            collection: collection.to_owned(),
            text: Some(text.to_owned()),
            vector: None,
            using: None,
            filter: None,
            limit: 10,
            offset: 0,
            with_payload: true,
            with_vector: false,
            score_threshold: None,
            mode: SearchMode::Dense,
            ef: None,
            exact: false,
        }
    }
}

/// `limit` within 1 to [`MAX_RESULTS`].
pub fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_RESULTS {
        return Err(EngineError::InvalidQuery(format!(
            "limit {limit} is out of range: 1 to {MAX_RESULTS}"
        )));
    }
    Ok(())
}

impl Engine {
    /// Answers `request`, best first. A text query of a collection laid out by the engine (or
    /// in hybrid or keyword mode) runs [`Engine::search`]; of any other collection, the text
    /// is embedded and searched like a vector.
    pub fn query(&self, request: &QueryRequest) -> Result<Vec<ScoredPoint>> {
        if let Some(text) = &request.text {
            self.log_query(&request.collection, text);
        }
        self.timed_search(|| self.query_untimed(request))
    }

    fn query_untimed(&self, request: &QueryRequest) -> Result<Vec<ScoredPoint>> {
        check_limit(request.limit)?;
        // Resolved once (see `search_untimed`).
        let resolved = QueryRequest {
            collection: self.registry().pin(&request.collection),
            ..request.clone()
        };
        let request = &resolved;
        let wanted = request.limit.saturating_add(request.offset);
        if wanted > MAX_RESULTS {
            return Err(EngineError::InvalidQuery(format!(
                "offset + limit is {wanted}; at most {MAX_RESULTS}"
            )));
        }
        let config = self.store().collection_config(&request.collection)?;
        match (&request.vector, &request.text) {
            (Some(_), Some(_)) | (None, None) => Err(EngineError::MalformedQuery(
                "give either `vector` or `text`".to_owned(),
            )),
            (None, Some(text))
                if is_engine_layout(&config) || request.mode != SearchMode::Dense =>
            {
                if request.with_vector
                    || request.ef.is_some()
                    || request.exact
                    || request.using.is_some()
                {
                    return Err(EngineError::InvalidQuery(
                        "`with_vector`, `ef`, `exact` and `using` apply to vector searches; a text search of an indexed collection chooses them".to_owned(),
                    ));
                }
                let options = SearchOptions {
                    collection: request.collection.clone(),
                    limit: wanted,
                    filter: request.filter.clone().unwrap_or_default(),
                    mode: request.mode,
                    score_threshold: request.score_threshold,
                };
                let mut hits = self.search_untimed(text, &options)?;
                hits.drain(..request.offset.min(hits.len()));
                Ok(hits)
            }
            (vector, text) => {
                if request.mode != SearchMode::Dense {
                    return Err(EngineError::InvalidQuery(
                        "hybrid and keyword modes need `text`, and a collection made by `mnemo index`".to_owned(),
                    ));
                }
                let vector = match (vector, text) {
                    (Some(vector), _) => vector.clone(),
                    (None, Some(text)) => self.query_vector_in(&request.collection, text)?,
                    (None, None) => Vec::new(),
                };
                let using = config
                    .dense_vector(request.using.as_deref())
                    .map_err(|choice| {
                        EngineError::InvalidQuery(choice.message("name one with `using`"))
                    })?
                    .to_owned();
                let mut search = SearchRequest::new(
                    NearestQuery {
                        using,
                        vector: Vector::Dense(vector),
                    },
                    request.limit,
                );
                search.offset = request.offset;
                search.filter = request.filter.clone();
                search.score_threshold = request.score_threshold;
                search.ef = request.ef;
                search.exact = request.exact;
                search.with_payload = request.with_payload.into();
                search.with_vectors = request.with_vector.into();
                Ok(self.store().search(&request.collection, search)?)
            }
        }
    }
}
