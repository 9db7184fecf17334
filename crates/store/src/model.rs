//! Qdrant's data model, in our own types: what every backend stores and answers with.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::filter::Filter;

/// How two dense vectors are compared. Scores are "higher is closer" for every distance
/// except `Euclid` and `Manhattan`, where lower is closer, as in Qdrant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Distance {
    Cosine,
    Dot,
    Euclid,
    Manhattan,
}

impl Distance {
    pub const ALL: [Distance; 4] = [Self::Cosine, Self::Dot, Self::Euclid, Self::Manhattan];

    /// The name in Qdrant's API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "Cosine",
            Self::Dot => "Dot",
            Self::Euclid => "Euclid",
            Self::Manhattan => "Manhattan",
        }
    }
}

/// A distance by name, in any case (`cosine`, `Cosine`).
impl std::str::FromStr for Distance {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|distance| distance.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("unknown distance `{name}`: use cosine, dot, euclid or manhattan")
            })
    }
}

/// The conventional name of a collection's main dense vector when it has several: the one a
/// request that names none means (mnemo's own collections use it).
pub const DENSE_VECTOR: &str = "dense";

/// Why a collection does not say which dense vector a request means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenseVectorChoice {
    /// The name asked is not one of the collection's dense vectors.
    NoSuchVector { asked: String, names: String },
    /// Several dense vectors (or none), none of them named `dense`, and none asked.
    Ambiguous { count: usize, names: String },
}

impl DenseVectorChoice {
    /// For people; `how_to_name` says how the caller names a vector (`name one with `using``).
    pub fn message(&self, how_to_name: &str) -> String {
        match self {
            Self::NoSuchVector { asked, names } => {
                format!("the collection has no dense vector `{asked}`; it has {names}")
            }
            Self::Ambiguous { names, .. } => {
                format!("the collection has several dense vectors ({names}); {how_to_name}")
            }
        }
    }
}

/// One dense vector of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VectorParams {
    pub size: usize,
    pub distance: Distance,
}

/// One sparse vector of a collection. `idf` weighs each dimension by its inverse document
/// frequency over the collection at query time, which turns BM25 term frequencies into BM25.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SparseVectorParams {
    #[serde(default)]
    pub idf: bool,
}

/// What a collection stores: its named dense vectors (the name `""` is the unnamed default
/// vector) and named sparse vectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionConfig {
    pub vectors: BTreeMap<String, VectorParams>,
    #[serde(default)]
    pub sparse_vectors: BTreeMap<String, SparseVectorParams>,
}

impl CollectionConfig {
    /// One unnamed dense vector.
    pub fn single(size: usize, distance: Distance) -> Self {
        Self::default().with_vector("", size, distance)
    }

    pub fn with_vector(mut self, name: &str, size: usize, distance: Distance) -> Self {
        self.vectors
            .insert(name.to_owned(), VectorParams { size, distance });
        self
    }

    pub fn with_sparse_vector(mut self, name: &str, idf: bool) -> Self {
        self.sparse_vectors
            .insert(name.to_owned(), SparseVectorParams { idf });
        self
    }

    /// The dense vector a request means: the one it names, or the collection's only one, or
    /// [`DENSE_VECTOR`].
    pub fn dense_vector(&self, asked: Option<&str>) -> Result<&str, DenseVectorChoice> {
        let names = || {
            self.vectors
                .keys()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(asked) = asked {
            return match self.vectors.get_key_value(asked) {
                Some((name, _)) => Ok(name),
                None => Err(DenseVectorChoice::NoSuchVector {
                    asked: asked.to_owned(),
                    names: names(),
                }),
            };
        }
        if self.vectors.len() == 1 {
            return Ok(self.vectors.keys().next().map_or("", String::as_str));
        }
        match self.vectors.get_key_value(DENSE_VECTOR) {
            Some((name, _)) => Ok(name),
            None => Err(DenseVectorChoice::Ambiguous {
                count: self.vectors.len(),
                names: names(),
            }),
        }
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        if self.vectors.is_empty() && self.sparse_vectors.is_empty() {
            return Err(StoreError::InvalidConfig(
                "a collection needs at least one vector".into(),
            ));
        }
        if let Some((name, params)) = self
            .vectors
            .iter()
            .find(|(_, p)| p.size == 0 || p.size > 65_536)
        {
            return Err(StoreError::InvalidConfig(format!(
                "vector `{name}` has size {}: it must be between 1 and 65536",
                params.size
            )));
        }
        if let Some(name) = self
            .sparse_vectors
            .keys()
            .find(|name| self.vectors.contains_key(*name))
        {
            return Err(StoreError::InvalidConfig(format!(
                "`{name}` is declared both dense and sparse"
            )));
        }
        Ok(())
    }
}

/// A point's id: an unsigned integer or a UUID, as in Qdrant. Serialised as a JSON number
/// or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PointId {
    Num(u64),
    Uuid(uuid::Uuid),
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl FromStr for PointId {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Self::Num(n));
        }
        uuid::Uuid::parse_str(s)
            .map(Self::Uuid)
            .map_err(|_| StoreError::BadPointId(s.to_owned()))
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> Self {
        Self::Num(n)
    }
}

impl From<uuid::Uuid> for PointId {
    fn from(u: uuid::Uuid) -> Self {
        Self::Uuid(u)
    }
}

/// A sparse vector: `indices[i]` holds `values[i]`; indices unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Vector {
    Dense(Vec<f32>),
    Sparse(SparseVector),
}

impl Vector {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Dense(_) => "dense",
            Self::Sparse(_) => "sparse",
        }
    }

    pub fn as_dense(&self) -> Option<&[f32]> {
        match self {
            Self::Dense(values) => Some(values),
            Self::Sparse(_) => None,
        }
    }
}

/// A point to write. `payload` is any JSON value so that input from files and requests can be
/// checked here: only an object (or null, meaning none) is accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub vectors: BTreeMap<String, Vector>,
    pub payload: Value,
}

impl Point {
    /// A point with one dense vector under `name` and an object payload.
    pub fn dense(
        id: impl Into<PointId>,
        name: &str,
        vector: Vec<f32>,
        payload: Map<String, Value>,
    ) -> Self {
        Self {
            id: id.into(),
            vectors: BTreeMap::from([(name.to_owned(), Vector::Dense(vector))]),
            payload: Value::Object(payload),
        }
    }
}

/// A stored point as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    pub id: PointId,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Map<String, Value>,
    /// Empty unless vectors were asked for.
    pub vectors: BTreeMap<String, Vector>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoredPoint {
    pub id: PointId,
    pub score: f32,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Map<String, Value>,
    pub vectors: BTreeMap<String, Vector>,
}

/// Which payload fields to return.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PayloadSelection {
    #[default]
    All,
    None,
    Fields(Vec<String>),
}

/// `true`: every field (an API's `with_payload: true`); `false`: none.
impl From<bool> for PayloadSelection {
    fn from(all: bool) -> Self {
        if all { Self::All } else { Self::None }
    }
}

/// Which vectors to return.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum VectorSelection {
    #[default]
    None,
    All,
    Names(Vec<String>),
}

/// `true`: every vector (an API's `with_vector: true`); `false`: none.
impl From<bool> for VectorSelection {
    fn from(all: bool) -> Self {
        if all { Self::All } else { Self::None }
    }
}

/// The query of a search: a vector to compare with the stored vector `using`.
#[derive(Debug, Clone, PartialEq)]
pub struct NearestQuery {
    pub using: String,
    pub vector: Vector,
}

/// A nearest-neighbour search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: NearestQuery,
    pub filter: Option<Filter>,
    pub limit: usize,
    pub offset: usize,
    pub score_threshold: Option<f32>,
    pub with_payload: PayloadSelection,
    pub with_vectors: VectorSelection,
    /// HNSW beam width; `None` lets the engine choose.
    pub ef: Option<usize>,
    /// Compare with every stored vector instead of the index (the ground truth).
    pub exact: bool,
}

impl SearchRequest {
    pub fn new(query: NearestQuery, limit: usize) -> Self {
        Self {
            query,
            filter: None,
            limit,
            offset: 0,
            score_threshold: None,
            with_payload: PayloadSelection::All,
            with_vectors: VectorSelection::None,
            ef: None,
            exact: false,
        }
    }
}

/// A page of points in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollRequest {
    pub filter: Option<Filter>,
    pub limit: usize,
    /// Start at this id (inclusive): the `next` of the previous page.
    pub offset: Option<PointId>,
    pub with_payload: PayloadSelection,
    pub with_vectors: VectorSelection,
}

impl ScrollRequest {
    pub fn new(limit: usize) -> Self {
        Self {
            filter: None,
            limit,
            offset: None,
            with_payload: PayloadSelection::All,
            with_vectors: VectorSelection::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScrollPage {
    pub points: Vec<Record>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<PointId>,
}

/// Which points a delete applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum PointSelector {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// A change of stored points that keeps what it does not name ([`crate::VectorStore::update_points`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PointChange {
    /// These payload fields set, the others kept.
    SetPayload(Map<String, Value>),
    /// The payload replaced by this one.
    OverwritePayload(Map<String, Value>),
    /// These payload fields removed.
    DeletePayloadKeys(Vec<String>),
    ClearPayload,
    /// These vectors set, the others kept.
    SetVectors(BTreeMap<String, Vector>),
    /// These vectors removed.
    DeleteVectors(Vec<String>),
}

impl PointChange {
    /// The point `record` becomes.
    pub fn apply(&self, record: Record) -> Point {
        let Record {
            id,
            mut payload,
            mut vectors,
        } = record;
        match self {
            Self::SetPayload(fields) => {
                payload.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Self::OverwritePayload(fields) => payload = fields.clone(),
            Self::DeletePayloadKeys(keys) => {
                for key in keys {
                    payload.remove(key);
                }
            }
            Self::ClearPayload => payload.clear(),
            Self::SetVectors(set) => {
                vectors.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Self::DeleteVectors(names) => {
                for name in names {
                    vectors.remove(name);
                }
            }
        }
        Point {
            id,
            vectors,
            payload: Value::Object(payload),
        }
    }
}

/// The type of a payload index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Keyword,
    Integer,
    Float,
    Bool,
    Datetime,
    Uuid,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionInfo {
    pub name: String,
    pub config: CollectionConfig,
    pub points: usize,
    /// Vectors in HNSW-indexed segments; the rest are searched by full scan until indexed.
    pub indexed_vectors: usize,
    pub segments: usize,
    pub payload_indexes: BTreeMap<String, String>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpsertSummary {
    pub written: usize,
    /// Points of the batch dropped because a later point had the same id (the last one wins).
    pub duplicates_replaced: usize,
}
