//! What every part of the HTTP layer shares: the state handed to handlers and
//! extractors, the CORS policy, and the entity tag of a version. It depends on
//! no other HTTP module, so they can all depend on it without a cycle.

use std::time::Duration;

use axum::http::HeaderValue;

use crate::store::Store;
use crate::tokens::{AuthThrottle, Tokens};

pub struct AppState {
    pub store: Store,
    pub tokens: Tokens,
    pub auth_throttle: AuthThrottle,
}

/// How requests are bounded once their headers are in.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// From headers read to response started: body, handler and database.
    pub request_timeout: Duration,
    /// The longest pause between two pieces of a request body.
    pub body_timeout: Duration,
    /// Requests handled at once; more answer 503 at once.
    pub max_in_flight: usize,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone)]
pub enum CorsPolicy {
    /// `localhost`, `127.0.0.1` and `[::1]` over http or https on any port: the default,
    /// so a dev page or a browser test on a random port can reach a local server.
    Localhost,
    /// Any origin (`--cors-origin '*'`).
    AnyOrigin,
    /// Exactly these origins, plus the localhost ones if `localhost` was listed.
    List { origins: Vec<HeaderValue>, localhost: bool },
}

impl CorsPolicy {
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            CorsPolicy::Localhost => is_localhost(origin),
            CorsPolicy::AnyOrigin => true,
            CorsPolicy::List { origins, localhost } => origins.contains(origin) || (*localhost && is_localhost(origin)),
        }
    }
}

fn is_localhost(origin: &HeaderValue) -> bool {
    let origin = origin.to_str().unwrap_or("");
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let (host, port) = if let Some(after) = rest.strip_prefix("[::1]") {
        ("[::1]", after)
    } else {
        rest.split_at(rest.find(':').unwrap_or(rest.len()))
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") && port_ok
}

pub fn etag(version: u64) -> Result<HeaderValue, axum::http::header::InvalidHeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins() {
        for ok in ["http://localhost", "https://localhost:8443", "http://localhost:5173", "http://127.0.0.1:41234", "http://[::1]:8080"] {
            assert!(is_localhost(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in ["http://localhost.evil.com", "http://127.0.0.1:", "http://127.0.0.1:80x", "null", "http://evil.com"] {
            assert!(!is_localhost(&HeaderValue::from_static(bad)), "{bad}");
        }
    }
}
