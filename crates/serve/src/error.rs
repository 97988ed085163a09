//! What a request can fail with, and the status each gives. Every body is one line.

use axum::http::StatusCode;

use crate::pool::Overloaded;
use crate::render::RenderError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{key:?}: {source}")]
    Render {
        key: String,
        #[source]
        source: RenderError,
    },
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// The store failed (not a missing key); logged, and answered 502.
    #[error("store error: {0}")]
    Store(String),
    #[error("method not allowed: use GET or HEAD")]
    Method,
}

impl ServeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::NotFound(_) => StatusCode::NOT_FOUND,
            ServeError::Render { source, .. } => match source {
                // The key names something that is not a photo this server can show.
                RenderError::NotAnImage | RenderError::Undecodable(_) => StatusCode::NOT_FOUND,
                RenderError::TooLarge { .. } => StatusCode::BAD_REQUEST,
            },
            ServeError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Store(_) => StatusCode::BAD_GATEWAY,
            ServeError::Method => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}
