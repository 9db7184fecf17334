//! Every error the API answers: a status, a stable machine-readable `code`, a message for
//! people and details for programs, always as `{"error": {"code", "message", "details"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mnemo_engine::EngineError;
use mnemo_store::StoreError;
use serde_json::Value;

/// The codes a client may see, with their statuses; the README lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON, or not the JSON this route takes.
    InvalidRequest,
    /// The request is well-formed but asks for something impossible (a vector of the wrong
    /// length, a filter on a missing field type, a batch over the limit).
    Unprocessable,
    BatchTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    CollectionNotFound,
    /// `/v1/embeddings` asked for a model this server does not run.
    ModelNotFound,
    CollectionExists,
    PayloadTooLarge,
    RateLimited,
    Timeout,
    /// Our fault: a store that cannot read its files, a worker that stopped.
    Internal,
    /// Not ready yet (the model or the store is still loading).
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        Self::InvalidRequest,
        Self::Unprocessable,
        Self::BatchTooLarge,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::CollectionNotFound,
        Self::ModelNotFound,
        Self::CollectionExists,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::Timeout,
        Self::Internal,
        Self::Unavailable,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unprocessable | Self::BatchTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::CollectionNotFound | Self::ModelNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::CollectionExists => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For people: what was wrong, and where.
    pub message: String,
    /// For programs: the values involved (limits, counts, indexes), or null.
    pub details: Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// Seconds to wait, for `rate_limited`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let code = match &err {
            StoreError::UnknownCollection(_) => ErrorCode::CollectionNotFound,
            StoreError::CollectionExists(_) => ErrorCode::CollectionExists,
            StoreError::BadPointId(_)
            | StoreError::InvalidCollectionName(_)
            | StoreError::BadSnapshotName(_) => ErrorCode::InvalidRequest,
            StoreError::UnknownSnapshot { .. } => ErrorCode::NotFound,
            other if other.is_unavailable() => ErrorCode::Unavailable,
            other if other.is_client_error() => ErrorCode::Unprocessable,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Store(store) => store.into(),
            EngineError::Filter(filter) => {
                ApiError::new(ErrorCode::Unprocessable, filter.to_string())
            }
            EngineError::UnknownItem { .. } => ApiError::new(ErrorCode::NotFound, err.to_string()),
            EngineError::UnknownModel(_) | EngineError::ModelNotInstalled(_) => {
                ApiError::new(ErrorCode::ModelNotFound, err.to_string())
            }
            EngineError::IncompatibleCollection { .. } => {
                ApiError::new(ErrorCode::Unprocessable, err.to_string())
            }
            EngineError::Embed(embed) => embed.into(),
            EngineError::WorkerPanicked(_) | EngineError::JobThread(_) => {
                ApiError::new(ErrorCode::Internal, err.to_string())
            }
            EngineError::MalformedQuery(_) => {
                ApiError::new(ErrorCode::InvalidRequest, err.to_string())
            }
            EngineError::InvalidQuery(_) | EngineError::UnreadablePath { .. } => {
                ApiError::new(ErrorCode::Unprocessable, err.to_string())
            }
            EngineError::OutsideIndexRoots { ref path } => {
                let details = serde_json::json!({ "path": path });
                ApiError::new(ErrorCode::Forbidden, err.to_string()).with_details(details)
            }
            EngineError::NoIndexRoots => ApiError::new(ErrorCode::Forbidden, err.to_string()),
            EngineError::JobQueueFull { .. } => crate::api::busy(err.to_string()),
            EngineError::UnknownJob(_) | EngineError::UnknownMemory(_) => {
                ApiError::new(ErrorCode::NotFound, err.to_string())
            }
            EngineError::Records(
                mnemo_records::RecordsError::NoScope
                | mnemo_records::RecordsError::EmptyScopeField(_)
                | mnemo_records::RecordsError::ScopeFieldTooLong { .. }
                | mnemo_records::RecordsError::InvalidEventType(_),
            ) => ApiError::new(ErrorCode::Unprocessable, err.to_string()),
            EngineError::Records(_)
            | EngineError::MemoryStoreMissing
            | EngineError::EventLogMissing => ApiError::new(ErrorCode::Internal, err.to_string()),
            EngineError::Cancelled { .. } => ApiError::new(ErrorCode::Unavailable, err.to_string()),
            EngineError::Access(access) => access.into(),
        }
    }
}

/// A request without a known key is 401; a known key refused is 403.
impl From<mnemo_engine::AccessError> for ApiError {
    fn from(err: mnemo_engine::AccessError) -> Self {
        let code = if err.is_unauthenticated() {
            ErrorCode::Unauthorized
        } else {
            ErrorCode::Forbidden
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<mnemo_embed::EmbedError> for ApiError {
    fn from(err: mnemo_embed::EmbedError) -> Self {
        // The model refuses some texts (empty ones); a remote model's server that fails is
        // unavailable, not us failing; anything else is ours.
        let code = if err.is_input_error() {
            ErrorCode::Unprocessable
        } else if matches!(err, mnemo_embed::EmbedError::Remote { .. }) {
            ErrorCode::Unavailable
        } else {
            ErrorCode::Internal
        };
        ApiError::new(code, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mnemo\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of error codes is the contract clients read: it lists them all.
    #[test]
    fn the_readme_lists_every_error_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        for code in ErrorCode::ALL {
            let name = serde_json::to_value(code).expect("a code serialises");
            let name = name.as_str().expect("a code is a string");
            let row = format!("| `{name}` | {} |", code.status().as_u16());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}
