//! The server side of sync, as the engine sees it, and the one place that
//! decides what each failure means.
//!
//! Two implementations exist in the browser: HTTP to a server speaking
//! `docs/protocol.md`, and the app's own `push` / `pull` functions. Native
//! tests use a fault-injecting fake.

use std::fmt;

use tideway_protocol::{MutationResult, PullResponse, PushRequest, PushResponse, ServerEntity};

use crate::core::DataText;

/// A push as a client sends it: each mutation's data is the JSON text it was
/// queued as, sent as it is.
pub type Push = PushRequest<DataText>;

/// A push's answer as a client reads it: the data of each entity it brings
/// is kept as the JSON text it came in (checked to be an object), and parsed
/// only where something looks into its fields, as a stored doc's is.
pub type PushAnswer = PushResponse<DataText>;

/// The answer for one mutation of a push, as a client reads it.
pub type MutationAnswer = MutationResult<DataText>;

/// A page of a pull as a client reads it, each change's data as its JSON text.
pub type PullPage = PullResponse<DataText>;

/// An entity as the server sends it, its data as its JSON text.
pub type ServerChange = ServerEntity<DataText>;

/// A failed call to the remote.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteError {
    /// No answer: the network is down, the connection was reset, DNS failed.
    Network(String),
    /// No answer within the request timeout.
    Timeout,
    /// The server answered with an error status.
    Status {
        status: u16,
        /// The protocol's error code, when the body had one.
        code: Option<String>,
        message: String,
        /// The mutation a refused push blames (`error.mutationId`).
        mutation_id: Option<u64>,
        /// `Retry-After`, in ms.
        retry_after: Option<f64>,
    },
    /// The server answered 2xx with a body that is not what the protocol says.
    Malformed(String),
}

impl RemoteError {
    pub fn status(status: u16, code: &str, message: &str) -> Self {
        RemoteError::Status { status, code: Some(code.into()), message: message.into(), mutation_id: None, retry_after: None }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Network(message) => write!(f, "network error: {message}"),
            RemoteError::Timeout => f.write_str("the request timed out"),
            RemoteError::Status { status, code, message, .. } => match code {
                Some(code) => write!(f, "HTTP {status} {code}: {message}"),
                None => write!(f, "HTTP {status}: {message}"),
            },
            RemoteError::Malformed(message) => write!(f, "malformed server reply: {message}"),
        }
    }
}

/// What the engine does about a failure. Every failure is classified here, once.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorClass {
    /// Try again later with backoff, not before `retry_after` ms if given.
    Transient { retry_after: Option<f64> },
    /// The credentials were refused: refresh them once, then retry.
    Auth,
    /// The request can never succeed as sent. On a push, the blamed mutation
    /// (if any) is marked failed and the rest of the queue goes on.
    Permanent { mutation_id: Option<u64> },
    /// The pull cursor can no longer be served: pull again from the start.
    CursorExpired,
}

impl RemoteError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RemoteError::Network(_) | RemoteError::Timeout => ErrorClass::Transient { retry_after: None },
            // A reply the client cannot read may be a proxy's error page or a
            // server bug being fixed; nothing is lost by asking again later.
            RemoteError::Malformed(_) => ErrorClass::Transient { retry_after: None },
            RemoteError::Status { status, retry_after, mutation_id, .. } => match status {
                401 => ErrorClass::Auth,
                410 => ErrorClass::CursorExpired,
                // 408 Request Timeout and 429 Too Many Requests say "later", not "never".
                408 | 429 => ErrorClass::Transient { retry_after: *retry_after },
                400..=499 => ErrorClass::Permanent { mutation_id: *mutation_id },
                _ => ErrorClass::Transient { retry_after: *retry_after },
            },
        }
    }
}

impl RemoteError {
    /// Whether a refusal can be about what a request carries (400, 413, 422),
    /// as opposed to where or how it was sent (a wrong URL's 404, a 403, a 415).
    /// Only the former may cost a mutation: the latter would fail every one.
    pub fn is_about_content(&self) -> bool {
        matches!(self, RemoteError::Status { status: 400 | 413 | 422, .. })
    }
}

/// A server the engine pushes to and pulls from.
///
/// Futures are not `Send`: in a browser they wrap JS promises.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// Sends one batch of mutations; the answer has one result per mutation, in order.
    async fn push(&self, request: &Push) -> Result<PushAnswer, RemoteError>;

    /// Gets `request` ready to go (encoded, compressed) while the push before
    /// it is in flight, so that a `push` of an equal request then goes out at
    /// once. The default has nothing to get ready.
    async fn prepare(&self, _request: &Push) {}

    /// Whether a push may carry the pull that follows it (`Push::pull`): the
    /// answer then brings its first page (`PushResponse::pull`), unless the
    /// server left it out. The default sends every push alone.
    fn pulls_with_push(&self) -> bool {
        false
    }

    /// Whether a push may carry several mutations of one entity, each built
    /// on the one before it (`PushMutation::after`): the server's answers
    /// listed the feature. The default sends one mutation of an entity per push.
    fn chains(&self) -> bool {
        false
    }

    /// Fetches the changes after `cursor` (`None`: from the beginning). With
    /// `client_id`, the server may leave out the changes whose latest write was
    /// that client's own push: the client has them from its push answers.
    async fn pull(&self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullPage, RemoteError>;

    /// Asks for fresh credentials after a 401. The default has none to refresh.
    async fn refresh_auth(&self) -> Result<(), RemoteError> {
        Ok(())
    }

    /// What this remote has learned about the server that the next session
    /// may start from (that it takes compressed bodies, say), as text that
    /// [`Remote::recall`] reads back. The engine keeps it with the sync state.
    /// The default learns nothing.
    fn learned(&self) -> Option<String> {
        None
    }

    /// Starts from what [`Remote::learned`] said in an earlier session,
    /// until the server says otherwise.
    fn recall(&self, _learned: &str) {}
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn status(status: u16) -> RemoteError {
        RemoteError::Status { status, code: None, message: String::new(), mutation_id: Some(3), retry_after: Some(1500.0) }
    }

    #[test]
    fn every_failure_has_one_class() {
        assert_eq!(RemoteError::Network("reset".into()).class(), ErrorClass::Transient { retry_after: None });
        assert_eq!(RemoteError::Timeout.class(), ErrorClass::Transient { retry_after: None });
        assert_eq!(RemoteError::Malformed("x".into()).class(), ErrorClass::Transient { retry_after: None });
        assert_eq!(status(500).class(), ErrorClass::Transient { retry_after: Some(1500.0) });
        assert_eq!(status(503).class(), ErrorClass::Transient { retry_after: Some(1500.0) });
        assert_eq!(status(429).class(), ErrorClass::Transient { retry_after: Some(1500.0) });
        assert_eq!(status(408).class(), ErrorClass::Transient { retry_after: Some(1500.0) });
        assert_eq!(status(401).class(), ErrorClass::Auth);
        assert_eq!(status(410).class(), ErrorClass::CursorExpired);
        for code in [400, 403, 404, 409, 413, 415, 422] {
            assert_eq!(status(code).class(), ErrorClass::Permanent { mutation_id: Some(3) }, "{code}");
        }
    }
}
