//! The one error type of the local store and repository.
//!
//! Each variant has a stable `code()` that crosses the JS boundary unchanged,
//! so an app can `switch (err.code)` without parsing messages.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The caller passed something the API does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// The entity (or collection) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The browser refused to store more data.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The database was closed, by the app or by the browser.
    #[error("database is closed: {0}")]
    DatabaseClosed(String),
    /// The declared schema is invalid or cannot be applied to the stored database.
    #[error("schema error: {0}")]
    Schema(String),
    /// Any other storage failure, with the browser's own description.
    #[error("storage error: {0}")]
    Storage(String),
}

impl Error {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Error::DatabaseClosed(_) => "DATABASE_CLOSED",
            Error::Schema(_) => "SCHEMA_ERROR",
            Error::Storage(_) => "STORAGE_ERROR",
        }
    }
}

impl From<tideway_protocol::Invalid> for Error {
    fn from(invalid: tideway_protocol::Invalid) -> Self {
        Error::InvalidArgument(invalid.0)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
