//! How IndexedDB's failures become the store's [`Error`]: by the `DOMException`
//! name the browser reports, whichever path (`indexed_db_futures`, web-sys, or a
//! Promise of the JS half) it arrived by.

use wasm_bindgen::{JsCast, JsValue};

use crate::core::Error;

impl From<indexed_db_futures::error::Error> for Error {
    fn from(error: indexed_db_futures::error::Error) -> Error {
        match error {
            indexed_db_futures::error::Error::DomException(exception) => {
                let exception: web_sys::DomException = exception.into();
                dom_error(&exception.name(), &exception.message())
            }
            other => Error::Storage(other.to_string()),
        }
    }
}

impl From<indexed_db_futures::error::OpenDbError> for Error {
    fn from(error: indexed_db_futures::error::OpenDbError) -> Error {
        match error {
            indexed_db_futures::error::OpenDbError::Base(inner) => inner.into(),
            // What the library reports when `indexedDB.open` throws, whatever
            // the browser threw (never a zero version: none is asked for).
            indexed_db_futures::error::OpenDbError::VersionZero => Error::Storage(
                "the browser refused to open an IndexedDB database here (storage may be blocked for this page)".to_owned(),
            ),
            other => Error::Storage(other.to_string()),
        }
    }
}

fn dom_error(name: &str, message: &str) -> Error {
    match name {
        "QuotaExceededError" => Error::QuotaExceeded(message.to_owned()),
        "InvalidStateError" => Error::DatabaseClosed(message.to_owned()),
        "VersionError" => Error::Schema(message.to_owned()),
        _ => Error::Storage(format!("{name}: {message}")),
    }
}

/// Maps what a Promise of the JS half rejected with to the store's error.
pub(super) fn js_error(error: JsValue) -> Error {
    match error.dyn_ref::<web_sys::DomException>() {
        Some(exception) => dom_error(&exception.name(), &exception.message()),
        None => Error::Storage(describe_js_error(&error)),
    }
}

/// A failure as one line of text: a `DOMException`'s name and message, an
/// `Error`'s message, or the value itself.
pub(super) fn describe_js_error(error: &JsValue) -> String {
    if let Some(exception) = error.dyn_ref::<web_sys::DomException>() {
        format!("{}: {}", exception.name(), exception.message())
    } else if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        String::from(error.message())
    } else {
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    }
}
