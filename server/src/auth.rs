//! Authentication of API requests: the `User` extractor reads the bearer token
//! and looks it up in the configured `Tokens`, under the failed-attempts throttle.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::ApiError;

/// The user a request's bearer token belongs to; rejects with 401 otherwise.
pub struct User(pub String);

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        // Checked before the token, so a client past its failures learns nothing more.
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        if let Some(wait) = client.and_then(|ip| state.auth_throttle.blocked(ip)) {
            return Err(ApiError::TooManyRequests(wait));
        }
        let user = bearer_token(parts).and_then(|token| state.tokens.user(token));
        match user {
            Some(user) => Ok(User(user.to_string())),
            None => {
                if let Some(ip) = client {
                    state.auth_throttle.record_failure(ip);
                }
                Err(ApiError::Unauthorized)
            }
        }
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
