//! The one error type of the HTTP layer. Every failure a handler can meet ends
//! here and leaves as `{"error": {"code", "message"}}` with the status that fits,
//! so clients can switch on a stable code and never have to parse prose.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tideway_protocol::{codes, PushRequestError, ServerEntity};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A 400 whose code names what was wrong (one of `codes::INVALID_*`, `MALFORMED_JSON`).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, mutation_id: Option<u64> },
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// Too many failed authentications from this address; retry after the wait.
    #[error("too many failed authentications from this address; retry later")]
    TooManyRequests(std::time::Duration),
    #[error("{0}")]
    NotFound(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    /// The entity exists and the request did not name the version it replaces.
    #[error("{message}")]
    Conflict { message: String, current: Option<Box<ServerEntity>> },
    #[error("{0}")]
    CursorExpired(String),
    #[error("{message}")]
    PreconditionFailed { message: String, current: Option<Box<ServerEntity>> },
    /// A 413 (`PAYLOAD_TOO_LARGE`, `BATCH_TOO_LARGE` or `DATA_TOO_LARGE`).
    #[error("{message}")]
    TooLarge { code: &'static str, message: String, mutation_id: Option<u64> },
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// A body in a `Content-Encoding` this server does not take (the value sent).
    #[error("a body encoded as {0:?} is not accepted here: send it plain, or in an encoding the answer's Accept-Encoding lists")]
    UnsupportedEncoding(String),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("the request was not received and answered in time")]
    RequestTimeout,
    #[error("the server is handling as many requests as it may; retry shortly")]
    Overloaded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into(), mutation_id: None }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, codes::TOO_MANY_REQUESTS),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, codes::CONFLICT),
            ApiError::CursorExpired(_) => (StatusCode::GONE, codes::CURSOR_EXPIRED),
            ApiError::PreconditionFailed { .. } => (StatusCode::PRECONDITION_FAILED, codes::PRECONDITION_FAILED),
            ApiError::TooLarge { code, .. } => (StatusCode::PAYLOAD_TOO_LARGE, code),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::UNSUPPORTED_MEDIA_TYPE),
            ApiError::UnsupportedEncoding(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::UNSUPPORTED_ENCODING),
            ApiError::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, codes::IDEMPOTENCY_KEY_REUSED),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, codes::REQUEST_TIMEOUT),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE),
            ApiError::Store(e) if e.is_transient() => (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        }
    }
}

/// The most bytes of an error message sent to a client.
const MAX_MESSAGE_BYTES: usize = 512;

fn cap_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

/// A push refused as a whole: 413 for the size limits, 400 for the rest.
impl From<PushRequestError> for ApiError {
    fn from(e: PushRequestError) -> Self {
        let PushRequestError { code, message, mutation_id } = e;
        if code.ends_with("_too_large") {
            ApiError::TooLarge { code, message, mutation_id }
        } else {
            ApiError::BadRequest { code, message, mutation_id }
        }
    }
}

/// The wire shape: `ErrorBody` plus optional fields clients may ignore.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<&'a ServerEntity>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutation_id: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            // Database details stay in the log: they help an operator, not a client.
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                if e.is_transient() {
                    "the database is busy or unreachable; retry later".to_string()
                } else {
                    "internal server error".to_string()
                }
            }
            // Parser messages can quote the input (serde's "unknown variant `…`"):
            // never send back more than a bounded part of it.
            other => cap_message(other.to_string()),
        };
        let mutation_id = match &self {
            ApiError::BadRequest { mutation_id, .. } | ApiError::TooLarge { mutation_id, .. } => *mutation_id,
            _ => None,
        };
        let current = match &self {
            ApiError::Conflict { current, .. } | ApiError::PreconditionFailed { current, .. } => current.as_deref(),
            _ => None,
        };
        let body = Body { error: Detail { code, message, mutation_id }, current };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests(wait) = &self {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, ApiError::Overloaded) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if code == codes::PAYLOAD_TOO_LARGE || code == codes::REQUEST_TIMEOUT {
            // The rest of the body was never read, so this connection cannot carry
            // another request: tell the client not to reuse it.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(entity) = current {
            if let Ok(etag) = crate::app::etag(entity.version) {
                response.headers_mut().insert(header::ETAG, etag);
            }
        }
        response
    }
}
