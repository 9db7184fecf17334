//! `POST /v1/embeddings`, as OpenAI's: the official clients work against it.

use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, Shared, unprocessable};
use crate::error::{ApiError, ApiResult, ErrorCode};

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
    /// The served model's name (`all-MiniLM-L6-v2`), with or without an owner prefix.
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
    let model = state.engine.model_id().to_owned();
    let asked = body.model.rsplit('/').next().unwrap_or_default();
    if !asked.eq_ignore_ascii_case(&model) {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!(
                "model `{}` is not served here; this server embeds with `{model}`",
                body.model
            ),
        ));
    }
    if let Some(dimensions) = body.dimensions
        && dimensions != state.engine.dim()
    {
        return Err(unprocessable(format!(
            "`{model}` gives {} dimensions, not {dimensions}",
            state.engine.dim()
        )));
    }
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
    let (data, tokens) = state
        .run(move |engine| {
            let embeddings = engine.embedder().embed(&texts)?;
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
            Ok((data, tokens))
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
