//! `POST /v1/embeddings` and `GET /v1/models`, as OpenAI's: the official clients work against
//! them. Every installed model of mnemo's catalog is served by name; one other than the
//! server's own is loaded at its first request and kept.

use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, Shared, unprocessable};
use crate::error::ApiResult;

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Serialize, Clone, Copy, Default, PartialEq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian float32 bytes, base64-encoded.
    Base64,
}

#[derive(Deserialize, ToSchema)]
pub struct EmbeddingsBody {
    input: EmbeddingInput,
    /// An installed model's name (`all-MiniLM-L6-v2`, `all-mpnet-base-v2`), with or without
    /// the `sentence-transformers/` prefix.
    model: String,
    #[serde(default)]
    encoding_format: EncodingFormat,
    /// OpenAI's optional `dimensions`: only the model's own is possible. Its other optional
    /// fields (`user`) change nothing and are ignored.
    dimensions: Option<usize>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingItem {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: Embedding,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: String,
    pub usage: Usage,
}

/// OpenAI-compatible embeddings: the official `openai` clients work against this route.
#[utoipa::path(operation_id = "create_embeddings", post, path = "/v1/embeddings", tag = "embeddings",
    request_body = EmbeddingsBody,
    responses((status = 200, body = EmbeddingsResponse)))]
pub(crate) async fn create(
    state: Shared,
    ApiJson(body): ApiJson<EmbeddingsBody>,
) -> ApiResult<Json<EmbeddingsResponse>> {
    let texts = match body.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    if texts.is_empty() {
        return Err(unprocessable("`input` is empty"));
    }
    state.check_batch("inputs", texts.len())?;
    let format = body.encoding_format;
    let metrics = state.metrics.clone();
    let (asked, dimensions) = (body.model, body.dimensions);
    let (model, data, tokens) = state
        .run(move |engine| {
            let embedder = engine.embedder_for(&asked)?;
            let model = mnemo_embed::find_model(&asked)
                .map_or_else(|| asked.clone(), |known| known.name.to_owned());
            if let Some(dimensions) = dimensions
                && dimensions != embedder.dim()
            {
                return Err(unprocessable(format!(
                    "`{model}` gives {} dimensions, not {dimensions}",
                    embedder.dim()
                )));
            }
            let embeddings = embedder.embed(&texts)?;
            let tokens: usize = embeddings.token_counts().iter().sum();
            metrics.observe_embedding(texts.len(), tokens);
            let data = embeddings
                .rows()
                .enumerate()
                .map(|(index, row)| {
                    let embedding = match format {
                        EncodingFormat::Float => Embedding::Float(row.to_vec()),
                        EncodingFormat::Base64 => {
                            let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
                            Embedding::Base64(
                                base64::engine::general_purpose::STANDARD.encode(bytes),
                            )
                        }
                    };
                    EmbeddingItem {
                        object: "embedding",
                        index,
                        embedding,
                    }
                })
                .collect();
            Ok((model, data, tokens))
        })
        .await?;
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// One model, as OpenAI's `/v1/models` lists it, with mnemo's details.
#[derive(Serialize, ToSchema)]
pub struct ModelItem {
    /// What `/v1/embeddings` takes as `model`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    #[serde(flatten)]
    pub details: mnemo_engine::models::ServedModel,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelItem>,
}

/// The models `/v1/embeddings` serves: every installed model of mnemo's catalog.
#[utoipa::path(operation_id = "list_models", get, path = "/v1/models", tag = "embeddings",
    responses((status = 200, body = ModelList)))]
pub(crate) async fn models(state: Shared) -> Json<ModelList> {
    let data = state
        .engine
        .served_models()
        .into_iter()
        .filter(|model| model.installed)
        .map(|details| ModelItem {
            id: details.name.clone(),
            object: "model",
            created: 0,
            owned_by: "mnemo",
            details,
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
