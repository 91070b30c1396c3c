//! Request extractors that turn every malformed input into an `ApiError` with
//! the code that names it, so handlers only ever see validated values.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use tideway_protocol::strict::{find_underflowing_number, strict_value, DATA_ERROR_PREFIX};
use tideway_protocol::{
    codes, validate_client_id, validate_collection_name, validate_data, validate_entity_id, validate_idempotency_key,
    DEFAULT_PULL_LIMIT,
    MAX_BODY_BYTES, MAX_PULL_LIMIT, PullRequest,
};

use crate::error::ApiError;
use crate::store::IfMatch;

/// A JSON body, parsed into `T`. Demands `Content-Type: application/json`:
/// besides being honest, it forces browsers to send a CORS preflight, so a
/// foreign page cannot post a "simple" cross-site form at the API.
pub struct JsonBody<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if body_timed_out(&rejection) {
                ApiError::RequestTimeout
            } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    code: codes::PAYLOAD_TOO_LARGE,
                    message: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                    mutation_id: None,
                }
            } else {
                ApiError::bad_request(codes::INVALID_REQUEST, format!("could not read the body: {rejection}"))
            }
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data if e.to_string().starts_with(DATA_ERROR_PREFIX) => codes::INVALID_DATA,
                serde_json::error::Category::Data => codes::INVALID_REQUEST,
                _ => codes::MALFORMED_JSON,
            };
            ApiError::bad_request(code, format!("invalid body: {e}"))
        })?;
        // The parser reads such a literal as 0 without a word: refuse rather than
        // store a value the client never sent.
        if let Some(literal) = find_underflowing_number(&bytes) {
            return Err(ApiError::bad_request(
                codes::INVALID_DATA,
                format!("{DATA_ERROR_PREFIX}the number {literal} is not zero but too small for a 64-bit float"),
            ));
        }
        Ok(JsonBody(value, bytes))
    }
}

/// Whether the body stopped arriving for longer than the body timeout
/// (`tower_http`'s `RequestBodyTimeoutLayer` fails the body with `TimeoutError`).
fn body_timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut error = Some(rejection);
    while let Some(e) = error {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        error = e.source();
    }
    false
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON value read by the protocol's strict rules.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        strict_value(deserializer).map(StrictValue)
    }
}

/// The data object of a REST `PUT`: a JSON object within the depth and size limits.
pub struct EntityData(pub Map<String, Value>, pub Bytes);

impl<S: Send + Sync> FromRequest<S> for EntityData {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(StrictValue(value), bytes) = JsonBody::<StrictValue>::from_request(req, state).await?;
        let Value::Object(data) = value else {
            return Err(ApiError::bad_request(codes::INVALID_DATA, "the body must be a JSON object (the entity's data)"));
        };
        validate_data(&data).map_err(|(code, e)| {
            if code == codes::DATA_TOO_LARGE {
                ApiError::TooLarge { code, message: e.0, mutation_id: None }
            } else {
                ApiError::bad_request(code, e.0)
            }
        })?;
        Ok(EntityData(data, bytes))
    }
}

/// `{collection}/{id}` of the per-entity routes, both within their syntax.
pub struct EntityPath {
    pub collection: String,
    pub id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for EntityPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((collection, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(codes::INVALID_REQUEST, format!("invalid path: {e}")))?;
        validate_collection_name(&collection).map_err(|e| ApiError::bad_request(codes::INVALID_COLLECTION, e.0))?;
        validate_entity_id(&id).map_err(|e| ApiError::bad_request(codes::INVALID_ID, e.0))?;
        Ok(EntityPath { collection, id })
    }
}

/// `?cursor=&limit=` of `GET /v1/pull`; the cursor stays raw until the store's
/// epoch is at hand.
pub struct PullQuery {
    pub cursor: Option<String>,
    pub limit: usize,
    /// The pulling client, whose own pushes the page leaves out.
    pub client_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PullQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            cursor: Option<String>,
            limit: Option<String>,
            client_id: Option<String>,
        }
        let Query(raw) = Query::<Raw>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(codes::INVALID_REQUEST, format!("invalid query string: {e}")))?;
        let limit = match raw.limit.as_deref() {
            None | Some("") => DEFAULT_PULL_LIMIT,
            Some(text) => text.parse::<usize>().unwrap_or(0),
        };
        PullQuery::of(PullRequest { cursor: raw.cursor, limit, client_id: raw.client_id })
            .map_err(|(code, message)| ApiError::bad_request(code, message))
    }
}

impl PullQuery {
    /// The pull `request` asks for, checked as a query string is; the
    /// error's code and message otherwise.
    pub fn of(request: PullRequest) -> Result<Self, (&'static str, String)> {
        let PullRequest { cursor, limit, client_id } = request;
        if !(1..=MAX_PULL_LIMIT).contains(&limit) {
            return Err((codes::INVALID_LIMIT, format!("limit must be an integer from 1 to {MAX_PULL_LIMIT}")));
        }
        if let Some(id) = &client_id {
            validate_client_id(id).map_err(|e| (codes::INVALID_CLIENT_ID, e.0))?;
        }
        Ok(PullQuery { cursor, limit, client_id })
    }
}

/// The `If-Match` precondition (RFC 9110: `*` or a list of entity tags; weak
/// tags never match, since If-Match compares strongly).
pub struct Precondition(pub IfMatch);

impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let values: Vec<_> = parts.headers.get_all(IF_MATCH).iter().collect();
        if values.is_empty() {
            return Ok(Precondition(IfMatch::Absent));
        }
        let invalid = || ApiError::bad_request(codes::INVALID_HEADER, "If-Match must be * or a list of entity tags like \"3\"");
        let mut versions = Vec::new();
        for value in values {
            let text = value.to_str().map_err(|_| invalid())?;
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    return Ok(Precondition(IfMatch::Any));
                }
                let (weak, quoted) = match tag.strip_prefix("W/") {
                    Some(rest) => (true, rest),
                    None => (false, tag),
                };
                let inner = quoted.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(invalid)?;
                if inner.contains('"') {
                    return Err(invalid());
                }
                if let (false, Ok(version)) = (weak, inner.parse::<u64>()) {
                    versions.push(version);
                }
            }
        }
        Ok(Precondition(IfMatch::Versions(versions)))
    }
}

/// The optional `Idempotency-Key` header.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::bad_request(codes::INVALID_HEADER, "Idempotency-Key must be visible ASCII"))?;
        validate_idempotency_key(key).map_err(|e| ApiError::bad_request(codes::INVALID_HEADER, e.0))?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}
