//! Our model to qdrant-edge's and back: configs, ids, filters, selections, vectors, payloads,
//! hits; and the store error a failed engine call becomes.

use super::*;

pub(super) fn edge_config(config: &CollectionConfig, options: &OpenOptions) -> EdgeConfig {
    let mut builder = EdgeConfig::builder();
    for (name, params) in &config.vectors {
        let distance = match params.distance {
            Distance::Cosine => qdrant_edge::Distance::Cosine,
            Distance::Dot => qdrant_edge::Distance::Dot,
            Distance::Euclid => qdrant_edge::Distance::Euclid,
            Distance::Manhattan => qdrant_edge::Distance::Manhattan,
        };
        builder = builder.vector(
            name.clone(),
            EdgeVectorParams::builder(params.size, distance).build(),
        );
    }
    for (name, params) in &config.sparse_vectors {
        let mut sparse = EdgeSparseVectorParams::builder();
        if params.idf {
            sparse = sparse.modifier(Modifier::Idf);
        }
        builder = builder.sparse_vector(name.clone(), sparse.build());
    }
    if let Some(threads) = options.search_threads {
        builder = builder.max_search_threads(threads);
    }
    builder.build()
}

pub(super) fn backend(
    collection: &str,
    operation: &'static str,
    error: impl std::fmt::Display,
) -> StoreError {
    StoreError::Backend {
        collection: collection.to_owned(),
        operation,
        message: error.to_string(),
    }
}

pub(super) fn edge_id(id: PointId) -> qdrant_edge::PointId {
    match id {
        PointId::Num(n) => qdrant_edge::PointId::NumId(n),
        PointId::Uuid(u) => qdrant_edge::PointId::Uuid(u),
    }
}

pub(super) fn our_id(id: qdrant_edge::PointId) -> PointId {
    match id {
        qdrant_edge::PointId::NumId(n) => PointId::Num(n),
        qdrant_edge::PointId::Uuid(u) => PointId::Uuid(u),
    }
}

pub(super) fn edge_filter(filter: &Filter) -> Result<qdrant_edge::Filter> {
    filter.check_depth()?;
    let json = serde_json::to_value(filter).map_err(|e| StoreError::BadFilter(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| StoreError::BadFilter(e.to_string()))
}

pub(super) fn edge_filter_opt(filter: Option<&Filter>) -> Result<Option<qdrant_edge::Filter>> {
    filter
        .filter(|f| !f.is_empty())
        .map(edge_filter)
        .transpose()
}

pub(super) fn json_path(key: &str) -> Result<JsonPath> {
    JsonPath::try_from(key)
        .map_err(|_| StoreError::BadFilter(format!("`{key}` is not a valid payload key")))
}

pub(super) fn edge_with_payload(selection: &PayloadSelection) -> Result<WithPayloadInterface> {
    Ok(match selection {
        PayloadSelection::All => WithPayloadInterface::Bool(true),
        PayloadSelection::None => WithPayloadInterface::Bool(false),
        PayloadSelection::Fields(fields) => WithPayloadInterface::Fields(
            fields.iter().map(|f| json_path(f)).collect::<Result<_>>()?,
        ),
    })
}

pub(super) fn edge_with_vector(selection: &VectorSelection) -> WithVector {
    match selection {
        VectorSelection::None => WithVector::Bool(false),
        VectorSelection::All => WithVector::Bool(true),
        VectorSelection::Names(names) => WithVector::Selector(names.clone()),
    }
}

pub(super) fn edge_sparse(sparse: &SparseVector) -> qdrant_edge::SparseVector {
    qdrant_edge::SparseVector {
        indices: sparse.indices.clone(),
        values: sparse.values.clone(),
    }
}

pub(super) fn edge_query(query: &NearestQuery) -> ScoringQuery {
    let vector = match &query.vector {
        Vector::Dense(values) => VectorInternal::Dense(values.clone()),
        Vector::Sparse(sparse) => VectorInternal::Sparse(edge_sparse(sparse)),
    };
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(query.using.clone()),
    }))
}

pub(super) fn our_vectors(vectors: Option<VectorStructInternal>) -> BTreeMap<String, Vector> {
    let from_internal = |vector: VectorInternal| match vector {
        VectorInternal::Dense(values) => Some(Vector::Dense(values)),
        VectorInternal::Sparse(s) => Some(Vector::Sparse(SparseVector {
            indices: s.indices,
            values: s.values,
        })),
        VectorInternal::MultiDense(_) => None,
    };
    match vectors {
        None | Some(VectorStructInternal::MultiDense(_)) => BTreeMap::new(),
        Some(VectorStructInternal::Single(values)) => {
            BTreeMap::from([(String::new(), Vector::Dense(values))])
        }
        Some(VectorStructInternal::Named(named)) => named
            .into_iter()
            .filter_map(|(name, v)| from_internal(v).map(|v| (name, v)))
            .collect(),
    }
}

pub(super) fn our_payload(payload: Option<qdrant_edge::Payload>) -> Map<String, Value> {
    payload.map(|p| p.0).unwrap_or_default()
}

pub(super) fn scored(hit: qdrant_edge::ScoredPoint) -> ScoredPoint {
    ScoredPoint {
        id: our_id(hit.id),
        score: hit.score,
        payload: our_payload(hit.payload),
        vectors: our_vectors(hit.vector),
    }
}
