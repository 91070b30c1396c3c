//! Where the core's errors become JS `Error`s: named `TidewayError`, with a
//! stable `code` an app can switch on. The `From` impls let every binding
//! use `?`, so no binding builds a JS error itself.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::core::sync::{ErrorClass, SyncError};
use crate::core::Error;

pub type JsResult<T> = Result<T, JsValue>;

impl From<Error> for JsValue {
    fn from(error: Error) -> JsValue {
        error_to_js(&error)
    }
}

/// A failed sync: a storage failure keeps its own code; a remote failure is
/// `SYNC_FAILED` with `kind` (`transient`, `auth`, `permanent`,
/// `cursorExpired`) and `retryAt` (ms since the epoch).
impl From<SyncError> for JsValue {
    fn from(error: SyncError) -> JsValue {
        match error {
            SyncError::Store(error) => error_to_js(&error),
            SyncError::Remote { message, class, retry_at } => {
                let kind = match class {
                    ErrorClass::Transient { .. } => "transient",
                    ErrorClass::Auth => "auth",
                    ErrorClass::Permanent { .. } => "permanent",
                    ErrorClass::CursorExpired => "cursorExpired",
                };
                let js_error = tideway_error(&format!("sync failed: {message}"), "SYNC_FAILED");
                let _ = Reflect::set(&js_error, &"kind".into(), &kind.into());
                let _ = Reflect::set(&js_error, &"retryAt".into(), &JsValue::from_f64(retry_at));
                js_error.into()
            }
        }
    }
}

/// The JS `Error` for `error`, for where the error is only borrowed (a
/// rolled-back change carries the error that undid it).
pub fn error_to_js(error: &Error) -> JsValue {
    tideway_error(&error.to_string(), error.code()).into()
}

/// A JS error's fields (`message`, `code`, `kind`, `retryAt`) as JSON, for
/// another context to rebuild it with [`error_of_fields`].
pub fn error_fields(error: &JsValue) -> serde_json::Value {
    let field = |name: &str| Reflect::get(error, &name.into()).unwrap_or(JsValue::UNDEFINED);
    serde_json::json!({
        "message": field("message").as_string().unwrap_or_else(|| crate::remote::describe(error)),
        "code": field("code").as_string().unwrap_or_else(|| "SYNC_FAILED".into()),
        "kind": field("kind").as_string(),
        "retryAt": field("retryAt").as_f64(),
    })
}

/// The `TidewayError` another context sent as [`error_fields`].
pub fn error_of_fields(fields: &serde_json::Value) -> JsValue {
    let text = |name: &str| fields.get(name).and_then(serde_json::Value::as_str);
    let js_error = tideway_error(text("message").unwrap_or("sync failed"), text("code").unwrap_or("SYNC_FAILED"));
    if let Some(kind) = text("kind") {
        let _ = Reflect::set(&js_error, &"kind".into(), &kind.into());
    }
    if let Some(retry_at) = fields.get("retryAt").and_then(serde_json::Value::as_f64) {
        let _ = Reflect::set(&js_error, &"retryAt".into(), &retry_at.into());
    }
    js_error.into()
}

/// `SYNC_FAILED` of kind `transient`, for a sync that could not be run here or elsewhere.
pub fn sync_unavailable(message: &str) -> JsValue {
    let js_error = tideway_error(message, "SYNC_FAILED");
    let _ = Reflect::set(&js_error, &"kind".into(), &"transient".into());
    js_error.into()
}

/// An `INVALID_ARGUMENT` error.
pub fn invalid(message: impl Into<String>) -> JsValue {
    Error::InvalidArgument(message.into()).into()
}

fn tideway_error(message: &str, code: &str) -> js_sys::Error {
    let js_error = js_sys::Error::new(message);
    js_error.set_name("TidewayError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = Reflect::set(&js_error, &"code".into(), &code.into());
    js_error
}
