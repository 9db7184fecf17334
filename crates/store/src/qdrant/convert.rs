//! Our data model to Qdrant's gRPC messages and back. Filters go condition by condition, so
//! a filter means the same on the server as in the embedded engine (which reads the same
//! shape from JSON).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use qdrant_client::qdrant::{
    self as grpc, point_id::PointIdOptions, vector_output, vectors_config, vectors_output,
    with_payload_selector, with_vectors_selector,
};
use serde_json::{Map, Value};

use crate::error::{Result, StoreError};
use crate::filter::{Condition, FieldCondition, Filter, Match, MatchValue, Range};
use crate::model::{
    CollectionConfig, Distance, FieldType, PayloadSelection, Point, PointId, Record, ScoredPoint,
    SparseVector, SparseVectorParams, Vector, VectorParams, VectorSelection,
};

pub(crate) fn point_id(id: PointId) -> grpc::PointId {
    match id {
        PointId::Num(n) => n.into(),
        PointId::Uuid(u) => u.to_string().into(),
    }
}

pub(crate) fn our_point_id(id: Option<grpc::PointId>) -> Result<PointId> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(PointId::Num(n)),
        Some(PointIdOptions::Uuid(u)) => u.parse(),
        None => Err(StoreError::BadPointId(
            "(missing in the server's answer)".into(),
        )),
    }
}

fn distance(distance: Distance) -> grpc::Distance {
    match distance {
        Distance::Cosine => grpc::Distance::Cosine,
        Distance::Dot => grpc::Distance::Dot,
        Distance::Euclid => grpc::Distance::Euclid,
        Distance::Manhattan => grpc::Distance::Manhattan,
    }
}

fn our_distance(distance: i32) -> Option<Distance> {
    match grpc::Distance::try_from(distance).ok()? {
        grpc::Distance::Cosine => Some(Distance::Cosine),
        grpc::Distance::Dot => Some(Distance::Dot),
        grpc::Distance::Euclid => Some(Distance::Euclid),
        grpc::Distance::Manhattan => Some(Distance::Manhattan),
        grpc::Distance::UnknownDistance => None,
    }
}

/// The vectors of a new collection: Qdrant's unnamed vector (`""`) alone, or named ones.
pub(crate) fn vectors_config(config: &CollectionConfig) -> Result<Option<grpc::VectorsConfig>> {
    let params = |p: &VectorParams| grpc::VectorParams {
        size: p.size as u64,
        distance: distance(p.distance) as i32,
        ..Default::default()
    };
    if config.vectors.is_empty() {
        return Ok(None);
    }
    if let Some(unnamed) = config.vectors.get("") {
        if config.vectors.len() > 1 {
            return Err(StoreError::InvalidConfig(
                "Qdrant cannot hold the unnamed vector beside named ones: name every vector".into(),
            ));
        }
        return Ok(Some(grpc::VectorsConfig {
            config: Some(vectors_config::Config::Params(params(unnamed))),
        }));
    }
    Ok(Some(grpc::VectorsConfig {
        config: Some(vectors_config::Config::ParamsMap(grpc::VectorParamsMap {
            map: config
                .vectors
                .iter()
                .map(|(name, p)| (name.clone(), params(p)))
                .collect(),
        })),
    }))
}

/// The sparse vectors of a new collection. None carries Qdrant's `idf` modifier: Qdrant weighs
/// a term by its frequency in each shard, so a collection of several shards would rank the
/// same documents differently depending on where their ids land. mnemo weighs the query by
/// the frequency in the whole collection instead (see [`terms_field`]).
pub(crate) fn sparse_vectors_config(config: &CollectionConfig) -> Option<grpc::SparseVectorConfig> {
    (!config.sparse_vectors.is_empty()).then(|| grpc::SparseVectorConfig {
        map: config
            .sparse_vectors
            .keys()
            .map(|name| (name.clone(), grpc::SparseVectorParams::default()))
            .collect(),
    })
}

/// Payload keys that begin so are mnemo's own on a Qdrant collection; users' payloads may not
/// hold them, and reads never return them.
pub(crate) const RESERVED_PREFIX: &str = "__mnemo_";

/// The payload field that lists the terms of a point's sparse vector `vector`, indexed as
/// integers: counting the points that match a term gives its document frequency over the
/// whole collection, whatever its shards. Its index also marks the vector as weighed by IDF.
pub(crate) fn terms_field(vector: &str) -> String {
    format!("{RESERVED_PREFIX}terms_{vector}")
}

/// A collection's config as the server reports it, and the sparse vectors whose queries mnemo
/// weighs by IDF itself (those that have a [`terms_field`] index). A sparse vector with
/// Qdrant's own modifier (a collection made by another tool) is weighed by Qdrant.
pub(crate) fn our_config(
    params: Option<grpc::CollectionParams>,
    indexed_fields: &[&str],
) -> (CollectionConfig, BTreeSet<String>) {
    let mut config = CollectionConfig::default();
    let mut weighed_here = BTreeSet::new();
    let Some(params) = params else {
        return (config, weighed_here);
    };
    let ours = |p: &grpc::VectorParams| {
        our_distance(p.distance).map(|distance| VectorParams {
            size: p.size as usize,
            distance,
        })
    };
    match params.vectors_config.and_then(|v| v.config) {
        Some(vectors_config::Config::Params(p)) => {
            if let Some(p) = ours(&p) {
                config.vectors.insert(String::new(), p);
            }
        }
        Some(vectors_config::Config::ParamsMap(map)) => {
            for (name, p) in &map.map {
                if let Some(p) = ours(p) {
                    config.vectors.insert(name.clone(), p);
                }
            }
        }
        None => {}
    }
    if let Some(sparse) = params.sparse_vectors_config {
        for (name, p) in sparse.map {
            let native = p.modifier == Some(grpc::Modifier::Idf as i32);
            let here = indexed_fields.contains(&terms_field(&name).as_str());
            if here {
                weighed_here.insert(name.clone());
            }
            let idf = native || here;
            config
                .sparse_vectors
                .insert(name, SparseVectorParams { idf });
        }
    }
    (config, weighed_here)
}

pub(crate) fn field_type(field_type: FieldType) -> grpc::FieldType {
    match field_type {
        FieldType::Keyword => grpc::FieldType::Keyword,
        FieldType::Integer => grpc::FieldType::Integer,
        FieldType::Float => grpc::FieldType::Float,
        FieldType::Bool => grpc::FieldType::Bool,
        FieldType::Datetime => grpc::FieldType::Datetime,
        FieldType::Uuid => grpc::FieldType::Uuid,
        FieldType::Text => grpc::FieldType::Text,
    }
}

pub(crate) fn payload_type_name(data_type: i32) -> String {
    grpc::PayloadSchemaType::try_from(data_type)
        .map(|t| t.as_str_name().to_lowercase())
        .unwrap_or_else(|_| format!("type {data_type}"))
}

fn vector(vector: Vector) -> grpc::Vector {
    match vector {
        Vector::Dense(values) => grpc::Vector::new_dense(values),
        Vector::Sparse(sparse) => grpc::Vector::new_sparse(sparse.indices, sparse.values),
    }
}

/// A point that has passed `prepare_batch`: its payload is an object or null. The terms of its
/// sparse vectors named in `weighed_here` go into their [`terms_field`].
pub(crate) fn point(point: Point, weighed_here: &BTreeSet<String>) -> grpc::PointStruct {
    let terms: Vec<(String, Value)> = weighed_here
        .iter()
        .filter_map(|name| match point.vectors.get(name) {
            Some(Vector::Sparse(sparse)) => {
                Some((terms_field(name), Value::from(sparse.indices.clone())))
            }
            _ => None,
        })
        .collect();
    let unnamed_only = point.vectors.len() == 1 && point.vectors.contains_key("");
    let vectors = if unnamed_only {
        let values = point.vectors.into_values().next().map(vector);
        values.map(|v| grpc::Vectors {
            vectors_options: Some(grpc::vectors::VectorsOptions::Vector(v)),
        })
    } else {
        Some(grpc::Vectors {
            vectors_options: Some(grpc::vectors::VectorsOptions::Vectors(grpc::NamedVectors {
                vectors: point
                    .vectors
                    .into_iter()
                    .map(|(name, v)| (name, vector(v)))
                    .collect(),
            })),
        })
    };
    let mut payload = match point.payload {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    payload.extend(terms);
    let payload = qdrant_client::Payload::from(payload).into();
    grpc::PointStruct {
        id: Some(point_id(point.id)),
        payload,
        vectors,
    }
}

fn our_vector(output: grpc::VectorOutput) -> Option<Vector> {
    match output.into_vector() {
        vector_output::Vector::Dense(dense) => Some(Vector::Dense(dense.data)),
        vector_output::Vector::Sparse(sparse) => Some(Vector::Sparse(SparseVector {
            indices: sparse.indices,
            values: sparse.values,
        })),
        vector_output::Vector::MultiDense(_) => None,
    }
}

pub(crate) fn our_vectors(vectors: Option<grpc::VectorsOutput>) -> BTreeMap<String, Vector> {
    match vectors.and_then(|v| v.vectors_options) {
        None => BTreeMap::new(),
        Some(vectors_output::VectorsOptions::Vector(v)) => our_vector(v)
            .map(|v| BTreeMap::from([(String::new(), v)]))
            .unwrap_or_default(),
        Some(vectors_output::VectorsOptions::Vectors(named)) => named
            .vectors
            .into_iter()
            .filter_map(|(name, v)| our_vector(v).map(|v| (name, v)))
            .collect(),
    }
}

/// The payload in key order: gRPC maps carry none, and a stable order keeps output
/// comparable between runs.
pub(crate) fn our_payload(payload: HashMap<String, grpc::Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = payload
        .into_iter()
        .filter(|(key, _)| !key.starts_with(RESERVED_PREFIX))
        .map(|(key, value)| (key, Value::from(value)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

pub(crate) fn record(point: grpc::RetrievedPoint) -> Result<Record> {
    Ok(Record {
        id: our_point_id(point.id)?,
        payload: our_payload(point.payload),
        vectors: our_vectors(point.vectors),
    })
}

pub(crate) fn scored(point: grpc::ScoredPoint) -> Result<ScoredPoint> {
    Ok(ScoredPoint {
        id: our_point_id(point.id)?,
        score: point.score,
        payload: our_payload(point.payload),
        vectors: our_vectors(point.vectors),
    })
}

pub(crate) fn with_payload(selection: &PayloadSelection) -> with_payload_selector::SelectorOptions {
    use with_payload_selector::SelectorOptions as S;
    match selection {
        PayloadSelection::All => S::Enable(true),
        PayloadSelection::None => S::Enable(false),
        PayloadSelection::Fields(fields) => S::Include(grpc::PayloadIncludeSelector {
            fields: fields.clone(),
        }),
    }
}

pub(crate) fn with_vectors(selection: &VectorSelection) -> with_vectors_selector::SelectorOptions {
    use with_vectors_selector::SelectorOptions as S;
    match selection {
        VectorSelection::None => S::Enable(false),
        VectorSelection::All => S::Enable(true),
        VectorSelection::Names(names) => S::Include(grpc::VectorsSelector {
            names: names.clone(),
        }),
    }
}

pub(crate) fn query_vector(vector: &Vector) -> grpc::Query {
    match vector {
        Vector::Dense(values) => {
            grpc::Query::new_nearest(grpc::VectorInput::new_dense(values.clone()))
        }
        Vector::Sparse(sparse) => grpc::Query::new_nearest(grpc::VectorInput::new_sparse(
            sparse.indices.clone(),
            sparse.values.clone(),
        )),
    }
}

pub(crate) fn filter_opt(filter: Option<&Filter>) -> Result<Option<grpc::Filter>> {
    filter
        .filter(|f| !f.is_empty())
        .map(self::filter)
        .transpose()
}

pub(crate) fn filter(filter: &Filter) -> Result<grpc::Filter> {
    filter.check_depth()?;
    let conditions = |list: &[Condition]| list.iter().map(condition).collect::<Result<Vec<_>>>();
    Ok(grpc::Filter {
        must: conditions(&filter.must)?,
        should: conditions(&filter.should)?,
        must_not: conditions(&filter.must_not)?,
        ..Default::default()
    })
}

fn condition(condition: &Condition) -> Result<grpc::Condition> {
    Ok(match condition {
        Condition::Field(field) => field_condition(field)?,
        Condition::IsNull { is_null } => grpc::Condition::is_null(is_null.key.clone()),
        Condition::IsEmpty { is_empty } => grpc::Condition::is_empty(is_empty.key.clone()),
        Condition::HasId { has_id } => {
            grpc::Condition::has_id(has_id.iter().copied().map(point_id))
        }
        Condition::Nested { nested } => {
            grpc::Condition::nested(nested.key.clone(), filter(&nested.filter)?)
        }
        Condition::Filter(inner) => filter(inner)?.into(),
    })
}

fn field_condition(field: &FieldCondition) -> Result<grpc::Condition> {
    let key = field.key.clone();
    let match_value = match &field.r#match {
        None => None,
        Some(Match::Value { value }) => Some(single_match(value)),
        Some(Match::Any { any }) => Some(many_match(any, false)?),
        Some(Match::Except { except }) => Some(many_match(except, true)?),
        Some(Match::Text { text }) => Some(grpc::r#match::MatchValue::Text(text.clone())),
    };
    let r#match = match_value.map(|m| grpc::Match {
        match_value: Some(m),
    });
    let range = field.range.as_ref().map(|r: &Range| grpc::Range {
        gt: r.gt,
        gte: r.gte,
        lt: r.lt,
        lte: r.lte,
    });
    Ok(grpc::FieldCondition {
        key,
        r#match,
        range,
        ..Default::default()
    }
    .into())
}

fn single_match(value: &MatchValue) -> grpc::r#match::MatchValue {
    use grpc::r#match::MatchValue as M;
    match value {
        MatchValue::Bool(b) => M::Boolean(*b),
        MatchValue::Integer(n) => M::Integer(*n),
        MatchValue::Keyword(s) => M::Keyword(s.clone()),
    }
}

/// `any`/`except` lists: Qdrant holds keywords or integers, not a mix nor booleans (the
/// embedded engine refuses those lists too, when it reads the filter).
fn many_match(values: &[MatchValue], except: bool) -> Result<grpc::r#match::MatchValue> {
    use grpc::r#match::MatchValue as M;
    let integers: Option<Vec<i64>> = values
        .iter()
        .map(|v| match v {
            MatchValue::Integer(n) => Some(*n),
            _ => None,
        })
        .collect();
    let strings: Option<Vec<String>> = values
        .iter()
        .map(|v| match v {
            MatchValue::Keyword(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    Ok(match (integers, strings, except) {
        (Some(integers), _, false) => M::Integers(grpc::RepeatedIntegers { integers }),
        (Some(integers), _, true) => M::ExceptIntegers(grpc::RepeatedIntegers { integers }),
        (None, Some(strings), false) => M::Keywords(grpc::RepeatedStrings { strings }),
        (None, Some(strings), true) => M::ExceptKeywords(grpc::RepeatedStrings { strings }),
        (None, None, _) => {
            return Err(StoreError::BadFilter(
                "a list to match must hold only strings or only integers".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_and_named_vectors() {
        let single = CollectionConfig::single(4, Distance::Dot);
        let grpc = vectors_config(&single).unwrap().unwrap();
        assert!(matches!(
            grpc.config,
            Some(vectors_config::Config::Params(_))
        ));
        let named = CollectionConfig::default()
            .with_vector("title", 8, Distance::Cosine)
            .with_sparse_vector("bm25", true);
        let params = grpc::CollectionParams {
            vectors_config: vectors_config(&named).unwrap(),
            sparse_vectors_config: sparse_vectors_config(&named),
            ..Default::default()
        };
        // The IDF of `bm25` is mnemo's (no modifier on the server): its terms index says so.
        let terms = terms_field("bm25");
        let (config, weighed_here) = our_config(Some(params.clone()), &[terms.as_str()]);
        assert_eq!(config, named);
        assert_eq!(weighed_here, BTreeSet::from(["bm25".to_owned()]));
        let (config, weighed_here) = our_config(Some(params), &[]);
        assert!(!config.sparse_vectors["bm25"].idf);
        assert!(weighed_here.is_empty());
        let mixed = single.with_vector("x", 2, Distance::Dot);
        assert!(vectors_config(&mixed).is_err());
    }

    #[test]
    fn points_round_trip_through_messages() {
        let mut payload = Map::new();
        payload.insert("b".into(), Value::from(1.5));
        payload.insert("a".into(), serde_json::json!({"x": [1, "two", null, true]}));
        let message = point(
            Point::dense(7u64, "v", vec![0.25, -1.0], payload.clone()),
            &BTreeSet::new(),
        );
        assert_eq!(our_point_id(message.id.clone()).unwrap(), PointId::Num(7));
        let back = our_payload(message.payload);
        assert_eq!(back, payload);
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b"]);

        // A sparse vector weighed here sends its terms along; reading the point hides them.
        let mut sparse = Point::dense(8u64, "v", vec![1.0, 0.0], payload.clone());
        sparse.vectors.insert(
            "bm25".into(),
            Vector::Sparse(SparseVector {
                indices: vec![3, 90],
                values: vec![0.5, 1.0],
            }),
        );
        let message = point(sparse, &BTreeSet::from(["bm25".to_owned()]));
        assert_eq!(
            Value::from(message.payload[&terms_field("bm25")].clone()),
            serde_json::json!([3, 90])
        );
        assert_eq!(our_payload(message.payload), payload);
    }

    #[test]
    fn mixed_any_lists_are_refused() {
        assert!(
            many_match(
                &[MatchValue::Integer(1), MatchValue::Keyword("x".into())],
                false
            )
            .is_err()
        );
        assert!(many_match(&[MatchValue::Bool(true)], false).is_err());
        let m = many_match(&[MatchValue::Integer(1)], true).unwrap();
        assert!(matches!(m, grpc::r#match::MatchValue::ExceptIntegers(_)));
    }
}
