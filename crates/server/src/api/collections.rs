//! Collections: list, create, describe, delete.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use mnemo_store::{
    CollectionConfig, CollectionInfo, Distance, ModelBinding, SparseVectorParams, VectorParams,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, Shared};
use crate::error::{ApiError, ApiResult, ErrorCode};
use mnemo_engine::Principal;

#[derive(Serialize, ToSchema)]
pub struct CollectionList {
    /// The collections the key may see.
    pub collections: Vec<CollectionSummary>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionSummary {
    pub name: String,
    pub points: usize,
}

/// List the collections this key may see, with their point counts.
#[utoipa::path(operation_id = "list_collections", get, path = "/api/v1/collections", tag = "collections",
    responses((status = 200, body = CollectionList)))]
pub(crate) async fn list(
    state: Shared,
    Extension(caller): Extension<Principal>,
) -> ApiResult<Json<CollectionList>> {
    let collections = state
        .run(move |engine| {
            let mut out = Vec::new();
            for name in engine.store().list_collections()? {
                if caller.may_see(&name) {
                    let points = engine.store().count(&name, None)?;
                    out.push(CollectionSummary { name, points });
                }
            }
            Ok(out)
        })
        .await?;
    Ok(Json(CollectionList { collections }))
}

#[derive(Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum IndexStatus {
    /// Every vector is in an HNSW-indexed segment.
    Indexed,
    /// Some vectors are searched by full scan until the optimizer has indexed them.
    Indexing,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionDetails {
    #[serde(flatten)]
    pub info: CollectionInfo,
    pub status: IndexStatus,
    /// The model its vectors come from, with which text queries are embedded; absent for a
    /// collection made with vectors of no model mnemo knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelBinding>,
    /// When the name is an alias: the collection it points at now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
}

/// A collection's vectors, point count and index status.
#[utoipa::path(operation_id = "get_collection", get, path = "/api/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = CollectionDetails)))]
pub(crate) async fn info(
    state: Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<CollectionDetails>> {
    let (info, model, alias_of) = state
        .run(move |engine| {
            let info = engine.store().collection_info(&name)?;
            let target = engine.registry().resolve(&name);
            let alias_of = (target != name).then_some(target);
            Ok((info, engine.registry().binding(&name), alias_of))
        })
        .await?;
    let status = if info.indexed_vectors >= info.points {
        IndexStatus::Indexed
    } else {
        IndexStatus::Indexing
    };
    Ok(Json(CollectionDetails {
        info,
        status,
        model,
        alias_of,
    }))
}

/// A collection's vectors: Qdrant's `{"size", "distance"}` for one unnamed vector, or a map
/// of names to those; omitted, one unnamed vector of the server's model.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VectorsConfig {
    Single(VectorParams),
    Named(BTreeMap<String, VectorParams>),
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    vectors: Option<VectorsConfig>,
    /// The model whose vectors it holds (any installed model, by name): text queries are
    /// embedded with it; the default vector's size is its dimension. By default the server's.
    model: Option<String>,
    #[serde(default)]
    sparse_vectors: BTreeMap<String, SparseVectorParams>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionCreated {
    pub name: String,
    pub created: bool,
}

/// Create a collection. Without a body: one unnamed cosine vector of the server's model.
#[utoipa::path(operation_id = "create_collection", put, path = "/api/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name: letters, digits, `_`, `-`, `.`")),
    request_body(content = Option<CreateCollection>),
    responses((status = 201, body = CollectionCreated)))]
pub(crate) async fn create(
    state: Shared,
    Path(name): Path<String>,
    body: Option<ApiJson<CreateCollection>>,
) -> ApiResult<(StatusCode, Json<CollectionCreated>)> {
    let body = body.map(|ApiJson(body)| body).unwrap_or_default();
    let created = name.clone();
    state
        .run(move |engine| {
            let model = match &body.model {
                Some(model) => Some(engine.model_named(model)?),
                None => None,
            };
            let vectors = match body.vectors {
                None => [(
                    String::new(),
                    VectorParams {
                        size: model.as_ref().map_or(engine.dim(), |m| m.dim()),
                        distance: Distance::Cosine,
                    },
                )]
                .into(),
                Some(VectorsConfig::Single(params)) => [(String::new(), params)].into(),
                Some(VectorsConfig::Named(named)) => named,
            };
            let config = CollectionConfig {
                vectors,
                sparse_vectors: body.sparse_vectors,
            };
            match model {
                Some(model) => Ok(engine.create_collection_for(&created, &config, &model)?),
                None => Ok(engine.create_collection(&created, &config)?),
            }
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CollectionCreated {
            name,
            created: true,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CollectionDeleted {
    pub name: String,
    pub deleted: bool,
}

/// Delete a collection and all its points.
#[utoipa::path(operation_id = "delete_collection", delete, path = "/api/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = CollectionDeleted)))]
pub(crate) async fn delete(
    state: Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<CollectionDeleted>> {
    let deleted = name.clone();
    let existed = state
        .run(move |engine| Ok(engine.delete_collection(&deleted)?))
        .await?;
    if !existed {
        return Err(ApiError::new(
            ErrorCode::CollectionNotFound,
            format!("collection `{name}` does not exist"),
        ));
    }
    Ok(Json(CollectionDeleted {
        name,
        deleted: true,
    }))
}
