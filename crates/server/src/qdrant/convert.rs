//! Qdrant's JSON shapes to mnemo's store types and back: vectors (dense, sparse, by id, or a
//! document to embed), payload and vector selectors, filters, records and scored points.
//! Inputs are read from `serde_json::Value` by hand so that an error names the field, the
//! point and what was expected.

use std::collections::BTreeMap;

use mnemo_engine::Engine;
use mnemo_store::{
    Filter, PayloadSelection, PointId, Record, ScoredPoint, SparseVector, Vector, VectorSelection,
};
use serde_json::{Map, Value, json};

use super::{QdrantError, QdrantResult};

/// What Qdrant takes where it takes a vector.
#[derive(Debug, Clone)]
pub(crate) enum VectorIn {
    Dense(Vec<f32>),
    Sparse(SparseVector),
    /// Qdrant's `Document`: a text the model `model` embeds (here, locally).
    Document {
        text: String,
        model: String,
    },
    /// A stored point, whose vector is meant (queries only).
    Id(PointId),
}

impl VectorIn {
    /// A vector as a point's vector or a query's: a list of numbers, `{"indices", "values"}`,
    /// `{"text", "model"}`, or (where `ids` allows) a point id.
    pub(crate) fn read(value: &Value, at: &str, ids: bool) -> QdrantResult<Self> {
        match value {
            Value::Array(items) => {
                if items.first().is_some_and(Value::is_array) {
                    return Err(QdrantError::unsupported(format!(
                        "{at}: multivectors (a list of lists)"
                    )));
                }
                let mut dense = Vec::with_capacity(items.len());
                for (position, item) in items.iter().enumerate() {
                    let number = item.as_f64().ok_or_else(|| {
                        QdrantError::bad(format!(
                            "{at}[{position}]: expected a number, found {}",
                            mnemo_store::json_type(item)
                        ))
                    })?;
                    dense.push(number as f32);
                }
                Ok(Self::Dense(dense))
            }
            Value::Object(members) if members.contains_key("indices") => {
                let sparse: SparseVector = serde_json::from_value(value.clone())
                    .map_err(|err| QdrantError::bad(format!("{at}: a sparse vector: {err}")))?;
                if sparse.indices.len() != sparse.values.len() {
                    return Err(QdrantError::bad(format!(
                        "{at}: a sparse vector has {} indices and {} values",
                        sparse.indices.len(),
                        sparse.values.len()
                    )));
                }
                Ok(Self::Sparse(sparse))
            }
            Value::Object(members) if members.contains_key("text") => {
                let text = members
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| QdrantError::bad(format!("{at}.text: expected a string")))?;
                let model = members
                    .get("model")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        QdrantError::bad(format!(
                            "{at}.model: a document names its model (`sentence-transformers/all-MiniLM-L6-v2`)"
                        ))
                    })?;
                if text.trim().is_empty() {
                    return Err(QdrantError::bad(format!(
                        "{at}.text is empty; there is nothing to embed"
                    )));
                }
                Ok(Self::Document {
                    text: text.to_owned(),
                    model: model.to_owned(),
                })
            }
            Value::Object(members) if members.contains_key("image") => {
                Err(QdrantError::unsupported(format!("{at}: image inference")))
            }
            Value::Object(members) if members.contains_key("object") => {
                Err(QdrantError::unsupported(format!("{at}: object inference")))
            }
            Value::Number(_) | Value::String(_) if ids => serde_json::from_value(value.clone())
                .map(Self::Id)
                .map_err(|_| {
                    QdrantError::bad(format!(
                        "{at}: `{value}` is not a point id (an unsigned integer or a UUID)"
                    ))
                }),
            other => Err(QdrantError::bad(format!(
                "{at}: expected a vector (a list of numbers, {{\"indices\", \"values\"}} or {{\"text\", \"model\"}}), found {}",
                mnemo_store::json_type(other)
            ))),
        }
    }

    /// The stored vector this is, once documents are embedded; ids are not vectors.
    pub(crate) fn into_vector(self, at: &str) -> QdrantResult<Vector> {
        match self {
            Self::Dense(values) => Ok(Vector::Dense(values)),
            Self::Sparse(sparse) => Ok(Vector::Sparse(sparse)),
            Self::Document { .. } => Err(QdrantError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("{at}: a document was left unembedded"),
            )),
            Self::Id(id) => Err(QdrantError::bad(format!(
                "{at}: a point id ({id}) is not a vector here"
            ))),
        }
    }
}

/// A point's `vector`: one unnamed vector, or named ones.
pub(crate) fn read_point_vectors(
    value: &Value,
    at: &str,
) -> QdrantResult<BTreeMap<String, VectorIn>> {
    match value {
        Value::Object(members) if !is_single_vector(members) => members
            .iter()
            .map(|(name, vector)| {
                Ok((
                    name.clone(),
                    VectorIn::read(vector, &format!("{at}.{name}"), false)?,
                ))
            })
            .collect(),
        single => Ok(BTreeMap::from([(
            String::new(),
            VectorIn::read(single, at, false)?,
        )])),
    }
}

/// Whether an object is one vector (sparse, or a document to embed) rather than a map of
/// named vectors: a document's `text` is a string, a sparse vector has `indices` and `values`
/// lists, where a named vector's value never is a string and a map of two vectors named so is
/// not worth telling apart.
fn is_single_vector(members: &Map<String, Value>) -> bool {
    let list = |key: &str| members.get(key).is_some_and(Value::is_array);
    let string = |key: &str| members.get(key).is_some_and(Value::is_string);
    string("text")
        || (list("indices") && list("values") && members.len() == 2)
        || ((members.contains_key("image") || members.contains_key("object")) && string("model"))
}

/// Embeds every document among `vectors` with its model, a batch per model; each becomes the
/// dense vector it stands for.
pub(crate) fn embed_documents<'a>(
    engine: &Engine,
    vectors: impl IntoIterator<Item = &'a mut VectorIn>,
) -> QdrantResult<usize> {
    let mut by_model: BTreeMap<String, Vec<&'a mut VectorIn>> = BTreeMap::new();
    for vector in vectors {
        if let VectorIn::Document { model, .. } = vector {
            by_model.entry(model.clone()).or_default().push(vector);
        }
    }
    let mut embedded = 0;
    for (model, documents) in by_model {
        let embedder = engine.embedder_for(&model)?;
        let texts: Vec<String> = documents
            .iter()
            .map(|document| match document {
                VectorIn::Document { text, .. } => text.clone(),
                _ => String::new(),
            })
            .collect();
        let embeddings = embedder.embed(&texts)?;
        for (document, row) in documents.into_iter().zip(embeddings.rows()) {
            *document = VectorIn::Dense(row.to_vec());
            embedded += 1;
        }
    }
    Ok(embedded)
}

/// `with_payload`: `true`/`false`, a list of fields, `{"include": [...]}` or
/// `{"exclude": [...]}`. What to ask the store, and the fields to take out after.
#[derive(Debug, Clone, Default)]
pub(crate) struct PayloadOut {
    pub selection: PayloadSelection,
    pub exclude: Vec<String>,
}

impl PayloadOut {
    pub(crate) fn read(value: Option<&Value>, default: bool) -> QdrantResult<Self> {
        let fields = |value: &Value, at: &str| -> QdrantResult<Vec<String>> {
            match value {
                Value::String(field) => Ok(vec![field.clone()]),
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| QdrantError::bad(format!("{at}: expected field names")))
                    })
                    .collect(),
                _ => Err(QdrantError::bad(format!("{at}: expected field names"))),
            }
        };
        let selection = match value {
            None => PayloadSelection::from(default),
            Some(Value::Bool(all)) => PayloadSelection::from(*all),
            Some(list @ Value::Array(_)) => PayloadSelection::Fields(fields(list, "with_payload")?),
            Some(Value::Object(members)) if members.contains_key("include") => {
                PayloadSelection::Fields(fields(&members["include"], "with_payload.include")?)
            }
            Some(Value::Object(members)) if members.contains_key("exclude") => {
                return Ok(Self {
                    selection: PayloadSelection::All,
                    exclude: fields(&members["exclude"], "with_payload.exclude")?,
                });
            }
            Some(other) => {
                return Err(QdrantError::bad(format!(
                    "with_payload: expected true, false, a list of fields, {{\"include\"}} or {{\"exclude\"}}, found {}",
                    mnemo_store::json_type(other)
                )));
            }
        };
        Ok(Self {
            selection,
            exclude: Vec::new(),
        })
    }

    fn shown(&self) -> bool {
        self.selection != PayloadSelection::None
    }

    fn render(&self, mut payload: Map<String, Value>) -> Value {
        for field in &self.exclude {
            payload.remove(field);
        }
        Value::Object(payload)
    }
}

/// `with_vector` (or `with_vectors`): `true`/`false` or a list of vector names.
pub(crate) fn read_vector_selection(
    value: Option<&Value>,
    default: bool,
) -> QdrantResult<VectorSelection> {
    match value {
        None => Ok(VectorSelection::from(default)),
        Some(Value::Bool(all)) => Ok(VectorSelection::from(*all)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| QdrantError::bad("with_vector: expected vector names"))
            })
            .collect::<QdrantResult<Vec<_>>>()
            .map(VectorSelection::Names),
        Some(other) => Err(QdrantError::bad(format!(
            "with_vector: expected true, false or a list of vector names, found {}",
            mnemo_store::json_type(other)
        ))),
    }
}

/// A filter in Qdrant's shape, checked for depth.
pub(crate) fn read_filter(value: Option<&Value>, at: &str) -> QdrantResult<Option<Filter>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let filter: Filter = serde_json::from_value(value.clone()).map_err(|err| {
        QdrantError::bad(format!(
            "{at}: {err} (mnemo reads `must`, `should`, `must_not` with match, range, is_null, is_empty, has_id and nested conditions)"
        ))
    })?;
    filter.check_depth()?;
    Ok(Some(filter))
}

/// A point id from JSON.
pub(crate) fn read_id(value: &Value, at: &str) -> QdrantResult<PointId> {
    serde_json::from_value(value.clone()).map_err(|_| {
        QdrantError::bad(format!(
            "{at}: `{value}` is not a point id (an unsigned integer or a UUID)"
        ))
    })
}

/// Point ids from a JSON list.
pub(crate) fn read_ids(value: &Value, at: &str) -> QdrantResult<Vec<PointId>> {
    let items = value
        .as_array()
        .ok_or_else(|| QdrantError::bad(format!("{at}: expected a list of point ids")))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| read_id(item, &format!("{at}[{index}]")))
        .collect()
}

fn vectors_json(vectors: &BTreeMap<String, Vector>) -> Value {
    if vectors.len() == 1
        && let Some(unnamed) = vectors.get("")
    {
        return vector_json(unnamed);
    }
    Value::Object(
        vectors
            .iter()
            .map(|(name, vector)| (name.clone(), vector_json(vector)))
            .collect(),
    )
}

fn vector_json(vector: &Vector) -> Value {
    let numbers = |values: &[f32]| Value::Array(values.iter().map(|v| float_json(*v)).collect());
    match vector {
        Vector::Dense(values) => numbers(values),
        Vector::Sparse(sparse) => {
            json!({ "indices": sparse.indices, "values": numbers(&sparse.values) })
        }
    }
}

/// A 32-bit float written with the fewest digits that read back as it (`0.70710677`, as
/// Qdrant writes it), not as the 64-bit float it widens to (`0.7071067690849304`).
pub(crate) fn float_json(value: f32) -> Value {
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A stored point as Qdrant's `Record`.
pub(crate) fn record_json(
    record: Record,
    payload: &PayloadOut,
    vectors: &VectorSelection,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(record.id));
    if payload.shown() {
        out.insert("payload".into(), payload.render(record.payload));
    }
    if *vectors != VectorSelection::None {
        out.insert("vector".into(), vectors_json(&record.vectors));
    }
    Value::Object(out)
}

/// A hit as Qdrant's `ScoredPoint`. mnemo keeps no per-point operation number: `version` is 0.
pub(crate) fn scored_json(
    point: ScoredPoint,
    payload: &PayloadOut,
    vectors: &VectorSelection,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(point.id));
    out.insert("version".into(), json!(0));
    out.insert("score".into(), float_json(point.score));
    if payload.shown() {
        out.insert("payload".into(), payload.render(point.payload));
    }
    if *vectors != VectorSelection::None {
        out.insert("vector".into(), vectors_json(&point.vectors));
    }
    Value::Object(out)
}

/// Refuses a member of a request that this door does not serve, rather than ignoring what the
/// client asked for.
pub(crate) fn refuse_present(body: &Map<String, Value>, fields: &[&str]) -> QdrantResult<()> {
    match fields.iter().find(|field| body.contains_key(**field)) {
        Some(field) => Err(QdrantError::unsupported(format!("`{field}`"))),
        None => Ok(()),
    }
}

/// A non-negative integer member, or `default`.
pub(crate) fn read_count(
    body: &Map<String, Value>,
    field: &str,
    default: usize,
) -> QdrantResult<usize> {
    match body.get(field) {
        None => Ok(default),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                QdrantError::bad(format!(
                    "`{field}`: expected a non-negative integer, found {value}"
                ))
            }),
    }
}

/// A search's or a page's `limit` (and `offset`): 1 to [`mnemo_engine::MAX_RESULTS`] together,
/// so that no request makes the store hold more.
pub(crate) fn read_limit(
    body: &Map<String, Value>,
    default: usize,
) -> QdrantResult<(usize, usize)> {
    let limit = read_count(body, "limit", default)?;
    let offset = read_count(body, "offset", 0)?;
    let most = mnemo_engine::MAX_RESULTS;
    if limit == 0 || limit.saturating_add(offset) > most {
        return Err(QdrantError::bad(format!(
            "`limit` {limit} with `offset` {offset}: give a limit from 1, and at most {most} with the offset"
        )));
    }
    Ok((limit, offset))
}
