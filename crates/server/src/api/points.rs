//! Points: upsert (vectors given, or text the server embeds), get, delete, scroll, count.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Path;
use mnemo_store::{Filter, Point, PointId, PointSelector, Record, ScrollRequest, Vector};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{ApiJson, Shared, default_true, unprocessable, vector_name};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// A point's vector: a list for the collection's one vector (or the one `using` names), or
/// a map of names to dense lists or sparse `{"indices", "values"}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VectorInput {
    Unnamed(Vec<f32>),
    Named(BTreeMap<String, Vector>),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointInput {
    id: PointId,
    vector: Option<VectorInput>,
    /// Embedded by the server when no vector is given.
    text: Option<String>,
    /// A JSON object (or null for none).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    payload: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    points: Vec<PointInput>,
    /// The vector a list or a text fills; by default the collection's only dense vector.
    using: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UpsertResult {
    /// Points written (new or replaced).
    pub written: usize,
    /// Points of the batch dropped because a later one had the same id (the last wins).
    pub duplicates_replaced: usize,
    /// Texts the server embedded.
    pub embedded: usize,
}

/// Insert or replace points, all or none: a batch with one bad point writes nothing.
#[utoipa::path(operation_id = "upsert_points", put, path = "/api/v1/collections/{name}/points", tag = "points",
    params(("name" = String, Path, description = "Collection name")),
    request_body = UpsertBody,
    responses((status = 200, body = UpsertResult)))]
pub(crate) async fn upsert(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpsertBody>,
) -> ApiResult<Json<UpsertResult>> {
    state.check_batch("points", body.points.len())?;
    let metrics = state.metrics.clone();
    let summary = state
        .run(move |engine| {
            let config = engine.store().collection_config(&name)?;
            let mut texts: Vec<(usize, String)> = Vec::new();
            let mut points = Vec::with_capacity(body.points.len());
            let mut default_name: Option<String> = None;
            let mut name_for = |using: Option<&str>| -> ApiResult<String> {
                if let Some(name) = &default_name {
                    return Ok(name.clone());
                }
                let name = vector_name(&config, using)?;
                default_name = Some(name.clone());
                Ok(name)
            };
            for (index, input) in body.points.into_iter().enumerate() {
                let vectors = match (input.vector, input.text) {
                    (Some(VectorInput::Named(named)), _) => named,
                    (Some(VectorInput::Unnamed(values)), _) => {
                        [(name_for(body.using.as_deref())?, Vector::Dense(values))].into()
                    }
                    (None, Some(text)) => {
                        texts.push((index, text));
                        BTreeMap::new()
                    }
                    (None, None) => {
                        return Err(unprocessable(format!(
                            "point {index} (id {}): give `vector` or `text`",
                            input.id
                        )));
                    }
                };
                points.push(Point {
                    id: input.id,
                    vectors,
                    payload: input.payload,
                });
            }
            let embedded = texts.len();
            if let Some((index, _)) = texts.iter().find(|(_, text)| text.trim().is_empty()) {
                return Err(unprocessable(format!(
                    "point {index}: `text` is empty; there is nothing to embed"
                )));
            }
            if !texts.is_empty() {
                let using = name_for(body.using.as_deref())?;
                let strings: Vec<&str> = texts.iter().map(|(_, text)| text.as_str()).collect();
                let embeddings = engine.embedder().embed(&strings)?;
                metrics.observe_embedding(embedded, embeddings.token_counts().iter().sum());
                for ((index, _), row) in texts.iter().zip(embeddings.rows()) {
                    points[*index]
                        .vectors
                        .insert(using.clone(), Vector::Dense(row.to_vec()));
                }
            }
            let summary = engine.store().upsert(&name, points)?;
            Ok(UpsertResult {
                written: summary.written,
                duplicates_replaced: summary.duplicates_replaced,
                embedded,
            })
        })
        .await?;
    Ok(Json(summary))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetBody {
    ids: Vec<PointId>,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PointList {
    /// The points found, in the order asked; ids not stored are left out.
    pub points: Vec<Record>,
}

/// Points by id.
#[utoipa::path(operation_id = "get_points", post, path = "/api/v1/collections/{name}/points/get", tag = "points",
    params(("name" = String, Path, description = "Collection name")),
    request_body = GetBody,
    responses((status = 200, body = PointList)))]
pub(crate) async fn get(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GetBody>,
) -> ApiResult<Json<PointList>> {
    state.check_batch("ids", body.ids.len())?;
    let points = state
        .run(move |engine| {
            let (payload, vectors) = (body.with_payload.into(), body.with_vector.into());
            Ok(engine.store().get(&name, &body.ids, payload, vectors)?)
        })
        .await?;
    Ok(Json(PointList { points }))
}

/// Give `ids` or `filter`, not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    ids: Option<Vec<PointId>>,
    filter: Option<Filter>,
}

#[derive(Serialize, ToSchema)]
pub struct DeleteResult {
    pub deleted: bool,
    /// Points left in the collection.
    pub points: usize,
}

/// Delete points by id or by filter.
#[utoipa::path(operation_id = "delete_points", post, path = "/api/v1/collections/{name}/points/delete", tag = "points",
    params(("name" = String, Path, description = "Collection name")),
    request_body = DeleteBody,
    responses((status = 200, body = DeleteResult)))]
pub(crate) async fn delete(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> ApiResult<Json<DeleteResult>> {
    let selector = match (body.ids, body.filter) {
        (Some(ids), None) => {
            state.check_batch("ids", ids.len())?;
            PointSelector::Ids(ids)
        }
        (None, Some(filter)) => PointSelector::Filter(filter),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give either `ids` or `filter`",
            ));
        }
    };
    let points = state
        .run(move |engine| {
            engine.store().delete(&name, selector)?;
            Ok(engine.store().count(&name, None)?)
        })
        .await?;
    Ok(Json(DeleteResult {
        deleted: true,
        points,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrollBody {
    filter: Option<Filter>,
    #[serde(default = "default_page")]
    #[schema(minimum = 1, maximum = 10_000, default = 100)]
    limit: usize,
    /// The `next_offset` of the page before.
    offset: Option<PointId>,
    #[serde(default = "default_true")]
    with_payload: bool,
    #[serde(default)]
    with_vector: bool,
}

fn default_page() -> usize {
    100
}

#[derive(Serialize, ToSchema)]
pub struct ScrollPage {
    pub points: Vec<Record>,
    /// Where the next page starts; null after the last.
    pub next_offset: Option<PointId>,
}

/// Page through the points in id order, optionally filtered.
#[utoipa::path(operation_id = "scroll_points", post, path = "/api/v1/collections/{name}/points/scroll", tag = "points",
    params(("name" = String, Path, description = "Collection name")),
    request_body = ScrollBody,
    responses((status = 200, body = ScrollPage)))]
pub(crate) async fn scroll(
    state: Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ScrollBody>,
) -> ApiResult<Json<ScrollPage>> {
    mnemo_engine::check_limit(body.limit)?;
    let page = state
        .run(move |engine| {
            let (with_payload, with_vectors) = (body.with_payload.into(), body.with_vector.into());
            let request = ScrollRequest {
                filter: body.filter,
                limit: body.limit,
                offset: body.offset,
                with_payload,
                with_vectors,
            };
            Ok(engine.store().scroll(&name, request)?)
        })
        .await?;
    Ok(Json(ScrollPage {
        points: page.points,
        next_offset: page.next,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountBody {
    filter: Option<Filter>,
}

#[derive(Serialize, ToSchema)]
pub struct CountResult {
    pub count: usize,
}

/// Count the points, optionally filtered. The body may be left out.
#[utoipa::path(operation_id = "count_points", post, path = "/api/v1/collections/{name}/points/count", tag = "points",
    params(("name" = String, Path, description = "Collection name")),
    request_body(content = Option<CountBody>),
    responses((status = 200, body = CountResult)))]
pub(crate) async fn count(
    state: Shared,
    Path(name): Path<String>,
    body: Option<ApiJson<CountBody>>,
) -> ApiResult<Json<CountResult>> {
    let body = body.map(|ApiJson(body)| body).unwrap_or_default();
    let count = state
        .run(move |engine| Ok(engine.store().count(&name, body.filter.as_ref())?))
        .await?;
    Ok(Json(CountResult { count }))
}
