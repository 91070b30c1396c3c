//! The HTTP surface: one short handler per endpoint over the extractors in
//! `extract` and the shared state in `app`, and the cross-cutting layers (CORS,
//! request logs, body limit, compression both ways).

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::BoxError;
use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use tideway_protocol::{
    validate_push_request, PullResponse, PushRequest, PushResponse, ServerEntity, FEATURES_HEADER, FEATURE_AFTER, MAX_BODY_BYTES,
};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_http::CompressionLevel;
use tracing::Span;

use crate::app::{etag, AppState, CorsPolicy, RequestLimits};
use crate::auth::User;
use crate::cursor::{self, CursorError};
use crate::error::ApiError;
use crate::extract::{EntityData, EntityPath, IdempotencyKey, JsonBody, Precondition, PullQuery};
use crate::site::Site;
use crate::store::{PullOutcome, RestAction, RestOutcome};

pub fn router(state: Arc<AppState>, site: Option<Arc<Site>>, cors: CorsPolicy, limits: RequestLimits, compress: bool) -> Router {
    let body_encodings = accepted_body_encodings(compress);
    let features = HeaderName::from_bytes(FEATURES_HEADER.as_bytes()).expect("a valid header name");
    let api = Router::new()
        .route("/v1/health", get(health).head(health))
        .route("/v1/push", post(push))
        .route("/v1/pull", get(pull))
        .route("/v1/collections/{collection}/{id}", get(get_entity).put(put_entity).delete(delete_entity))
        .route("/v1", any(no_route))
        .route("/v1/{*rest}", any(no_route))
        .method_not_allowed_fallback(method_not_allowed)
        // API answers carry one user's data: no browser or proxy cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
        // Which encodings a request body may come in, as RFC 7694 has a server say
        // it: clients learn from any answer that they may compress their pushes.
        .layer(SetResponseHeaderLayer::overriding(ACCEPT_ENCODING, body_encodings.clone()));
    let app = match site {
        Some(site) => api.fallback(move |request: Request<Body>| {
            let site = site.clone();
            async move { site.serve(request).await }
        }),
        None => api.fallback(no_route),
    };
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| cors.allows(origin)))
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, CONTENT_ENCODING, IF_MATCH, HeaderName::from_static("idempotency-key")])
        .expose_headers([ETAG, ACCEPT_ENCODING, HeaderName::from_static("idempotent-replayed"), features.clone()])
        .max_age(Duration::from_secs(600));
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<_>| {
            // The path only: query strings carry cursors, which are nobody's business in a log.
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        })
        .on_request(())
        .on_response(|response: &Response, latency: Duration, _span: &Span| {
            tracing::info!(status = response.status().as_u16(), duration_ms = (latency.as_secs_f64() * 1e6).round() / 1e3, "request done");
        })
        .on_failure(());
    // Outermost first: an overloaded or timed-out request still gets CORS headers
    // and a log line. The concurrency permit is held until the answer is ready, and
    // the timeout covers the body upload, the handler and the database.
    let bounds = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overload_or_timeout))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(limits.max_in_flight))
        .timeout(limits.request_timeout)
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
    // Answers go out compressed (brotli or gzip) to clients that accept it, as
    // every browser does, unless `compress` is off: a pull page of notes shrinks
    // about five times. At quality 1, since each answer is compressed as it is
    // sent: a page of 1000 generated notes (447 KB) took 2 ms to 81 KB at
    // brotli's 1, 4 ms to 89 KB at its default 4, 11 ms to 73 KB at gzip's
    // default 6 (in Node's zlib). A static file with a precompressed sibling
    // goes out as that instead (see `site`).
    let compression = CompressionLayer::new()
        .quality(CompressionLevel::Precise(1))
        .compress_when(DefaultPredicate::new().and(move |_: StatusCode, _: Version, _: &HeaderMap, _: &Extensions| compress));
    // Request bodies may come gzipped (a push of 1000 notes shrinks about five
    // times, which counts on a slow uplink), unless `compress` is off. Bodies in
    // other encodings are refused before anything reads them. The body limit
    // counts the bytes as decompressed, so a small bomb is cut off like a large body.
    let decompression = RequestDecompressionLayer::new();
    let refuse_other_encodings = middleware::from_fn_with_state(body_encodings, refuse_other_encodings);
    // The optional parts of the protocol this server serves, on every answer: a
    // client goes by the last one it had, and one refused before it reached the
    // endpoints (a 503 at the limit, a 408, a 415 for the body's encoding) would
    // otherwise have it take nothing optional for its next request.
    let features = SetResponseHeaderLayer::overriding(features, HeaderValue::from_static(FEATURE_AFTER));
    // Browsers must take every answer, API or file, as the type it says it is.
    let nosniff = SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(decompression)
        .layer(refuse_other_encodings)
        .layer(compression)
        .layer(bounds)
        .layer(features)
        .layer(trace)
        .layer(cors)
        .layer(nosniff)
        .with_state(state)
}

/// `Accept-Encoding` as a server's answer states it (RFC 7694): the encodings
/// it takes a request body in besides plain.
fn accepted_body_encodings(compress: bool) -> HeaderValue {
    HeaderValue::from_static(if compress { "gzip" } else { "identity" })
}

/// Answers 415, naming the encodings taken, to a body in any other.
async fn refuse_other_encodings(State(accepted): State<HeaderValue>, request: Request<Body>, next: Next) -> Response {
    let refused = match request.headers().get(CONTENT_ENCODING) {
        Some(encoding) if encoding != "identity" && *encoding != accepted => encoding,
        _ => return next.run(request).await,
    };
    let mut response = ApiError::UnsupportedEncoding(String::from_utf8_lossy(refused.as_bytes()).into_owned()).into_response();
    response.headers_mut().insert(ACCEPT_ENCODING, accepted);
    response
}

async fn overload_or_timeout(error: BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::RequestTimeout
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else {
        tracing::error!(%error, "request failed in a middleware");
        ApiError::Overloaded
    }
}

async fn health() -> impl IntoResponse {
    ([(CACHE_CONTROL, "no-store")], Json(serde_json::json!({"status": "ok"})))
}

async fn no_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn push(
    State(state): State<Arc<AppState>>,
    User(user): User,
    JsonBody(request, _): JsonBody<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    // The whole batch is checked before anything is applied: a bad mutation
    // refuses the request, never half of it.
    validate_push_request(&request)?;
    let results = state.store.push(&user, &request.client_id, &request.mutations).await?;
    // The pull it carries, once the push is applied. One that cannot be served
    // as asked is left out: the client's `GET /v1/pull` then meets the error.
    let pull = match request.pull.map(PullQuery::of) {
        Some(Ok(query)) => match serve_pull(&state, &user, query).await {
            Ok(page) => Some(page),
            Err(error) => {
                tracing::info!(%error, "the pull a push carried is left out");
                None
            }
        },
        Some(Err((code, message))) => {
            tracing::info!(code, message, "the pull a push carried is left out");
            None
        }
        None => None,
    };
    Ok(Json(PushResponse { results, pull }))
}

async fn pull(State(state): State<Arc<AppState>>, User(user): User, query: PullQuery) -> Result<Json<PullResponse>, ApiError> {
    serve_pull(&state, &user, query).await.map(Json)
}

async fn serve_pull(state: &AppState, user: &str, query: PullQuery) -> Result<PullResponse, ApiError> {
    let epoch = state.store.epoch().await?;
    let after = cursor::decode(&epoch, query.cursor.as_deref()).map_err(|e| match e {
        CursorError::Malformed => ApiError::bad_request(tideway_protocol::codes::INVALID_CURSOR, "the cursor is not one this server issued"),
        CursorError::ForeignEpoch => ApiError::CursorExpired(
            "the cursor belongs to another database (was the server's database replaced?); pull again from the start".into(),
        ),
    })?;
    match state.store.pull(user, after, query.limit, query.client_id.as_deref()).await? {
        PullOutcome::Page { changes, last_seq, has_more } => Ok(PullResponse { changes, cursor: cursor::encode(&epoch, last_seq), has_more }),
        PullOutcome::Expired(message) => Err(ApiError::CursorExpired(message)),
    }
}

async fn get_entity(State(state): State<Arc<AppState>>, User(user): User, path: EntityPath) -> Result<Response, ApiError> {
    let entity = state
        .store
        .get(&user, &path.collection, &path.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{}/{} does not exist", path.collection, path.id)))?;
    Ok(entity_response(StatusCode::OK, entity))
}

async fn put_entity(
    State(state): State<Arc<AppState>>,
    User(user): User,
    path: EntityPath,
    Precondition(if_match): Precondition,
    IdempotencyKey(key): IdempotencyKey,
    EntityData(data, body): EntityData,
) -> Result<Response, ApiError> {
    let fingerprint = fingerprint("PUT", &path, &if_match, &body);
    let idempotency = key.as_deref().map(|k| (k, fingerprint.as_str()));
    let (outcome, replayed) =
        state.store.rest_write(&user, &path.collection, &path.id, RestAction::Put(data), &if_match, idempotency).await?;
    rest_response(outcome, replayed)
}

async fn delete_entity(
    State(state): State<Arc<AppState>>,
    User(user): User,
    path: EntityPath,
    Precondition(if_match): Precondition,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let fingerprint = fingerprint("DELETE", &path, &if_match, &[]);
    let idempotency = key.as_deref().map(|k| (k, fingerprint.as_str()));
    let (outcome, replayed) =
        state.store.rest_write(&user, &path.collection, &path.id, RestAction::Delete, &if_match, idempotency).await?;
    rest_response(outcome, replayed)
}

/// What makes two requests "the same" for an Idempotency-Key.
fn fingerprint(method: &str, path: &EntityPath, if_match: &crate::store::IfMatch, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{method}\n{}\n{}\n{if_match:?}\n", path.collection, path.id));
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn entity_response(status: StatusCode, entity: ServerEntity) -> Response {
    let mut response = (status, Json(&entity)).into_response();
    if let Ok(tag) = etag(entity.version) {
        response.headers_mut().insert(ETAG, tag);
    }
    response
}

fn rest_response(outcome: RestOutcome, replayed: bool) -> Result<Response, ApiError> {
    let mut response = match outcome {
        RestOutcome::Created(entity) => {
            let location = format!("/v1/collections/{}/{}", entity.collection, entity.id);
            let mut response = entity_response(StatusCode::CREATED, entity);
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        RestOutcome::Replaced(entity) => entity_response(StatusCode::OK, entity),
        RestOutcome::Deleted(entity) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Ok(tag) = etag(entity.version) {
                response.headers_mut().insert(ETAG, tag);
            }
            response
        }
        RestOutcome::NotFound => ApiError::NotFound("no such entity".into()).into_response(),
        RestOutcome::Conflict(current) => ApiError::Conflict {
            message: "the entity exists: send If-Match with its ETag (or *) to replace it".into(),
            current: Some(Box::new(current)),
        }
        .into_response(),
        RestOutcome::PreconditionFailed(current) => ApiError::PreconditionFailed {
            message: match current {
                Some(_) => "If-Match does not match the entity's current version".into(),
                None => "If-Match was sent but the entity does not exist".into(),
            },
            current: current.map(Box::new),
        }
        .into_response(),
        RestOutcome::KeyReused => return Err(ApiError::IdempotencyKeyReused),
    };
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
