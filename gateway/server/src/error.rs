//! `ApiError`: the one error type handlers return, with one status mapping. The client gets a
//! safe body; the log gets the whole chain.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use pairgate_protocol::error::{OpenAiError, OpenAiErrorBody};

/// Who caused a failure: decides the status class and whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent something wrong; retrying the same request fails the same way.
    Client,
    /// The upstream provider failed.
    Provider,
    /// We failed (database, plugin, bug).
    Gateway,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("request body too large")]
    TooLarge,
    #[error("temporarily unavailable")]
    Unavailable(#[source] pairgate_store::StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            ApiError::BadRequest { .. } | ApiError::TooLarge => Blame::Client,
            ApiError::Unavailable(_) | ApiError::Internal(_) => Blame::Gateway,
        }
    }

    /// Whether the client may retry the same request unchanged.
    pub fn retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable(_))
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::TooLarge => "request_too_large",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<pairgate_store::StoreError> for ApiError {
    fn from(e: pairgate_store::StoreError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.blame() == Blame::Gateway {
            tracing::error!(error = %self_chain(&self), "request failed");
        }
        let body = OpenAiErrorBody {
            error: OpenAiError {
                message: self.to_string(),
                r#type: match self.blame() {
                    Blame::Client => "invalid_request_error".into(),
                    _ => "server_error".into(),
                },
                code: Some(self.code().into()),
                param: None,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The error and its sources as one printable chain for the log.
fn self_chain(e: &ApiError) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
