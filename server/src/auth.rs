//! Bearer tokens mapped to users. Tokens are kept only as SHA-256 digests, so
//! a lookup's timing says nothing useful about a token's characters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::routes::AppState;

#[derive(Debug, Default, Clone)]
pub struct Tokens {
    users_by_digest: HashMap<[u8; 32], String>,
}

impl Tokens {
    pub fn insert(&mut self, token: &str, user: &str) {
        self.users_by_digest.insert(Sha256::digest(token.as_bytes()).into(), user.to_string());
    }

    pub fn user(&self, token: &str) -> Option<&str> {
        self.users_by_digest.get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes()))).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.users_by_digest.is_empty()
    }
}

/// The user a request's bearer token belongs to; rejects with 401 otherwise.
pub struct User(pub String);

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        state.tokens.user(token.trim()).map(|u| User(u.to_string())).ok_or(ApiError::Unauthorized)
    }
}
