//! Turns the core's errors into JS `Error`s with a stable `code`.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::core::sync::{ErrorClass, SyncError};
use crate::core::Error;

pub type JsResult<T> = Result<T, JsValue>;

/// A JS `Error` named `TidewayError` whose `code` an app can switch on.
pub fn to_js(error: &Error) -> JsValue {
    let js_error = js_sys::Error::new(&error.to_string());
    js_error.set_name("TidewayError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = Reflect::set(&js_error, &"code".into(), &error.code().into());
    js_error.into()
}

pub fn invalid(message: impl Into<String>) -> JsValue {
    to_js(&Error::InvalidArgument(message.into()))
}

/// A failed sync as a JS `Error`: a storage failure keeps its own code; a
/// remote failure is `SYNC_FAILED` with `kind` (`transient`, `auth`,
/// `permanent`, `cursorExpired`) and `retryAt` (ms since the epoch).
pub fn sync_error_to_js(error: &SyncError) -> JsValue {
    match error {
        SyncError::Store(error) => to_js(error),
        SyncError::Remote { message, class, retry_at } => {
            let js_error = js_sys::Error::new(&format!("sync failed: {message}"));
            js_error.set_name("TidewayError");
            let kind = match class {
                ErrorClass::Transient { .. } => "transient",
                ErrorClass::Auth => "auth",
                ErrorClass::Permanent { .. } => "permanent",
                ErrorClass::CursorExpired => "cursorExpired",
            };
            let _ = Reflect::set(&js_error, &"code".into(), &"SYNC_FAILED".into());
            let _ = Reflect::set(&js_error, &"kind".into(), &kind.into());
            let _ = Reflect::set(&js_error, &"retryAt".into(), &JsValue::from_f64(*retry_at));
            js_error.into()
        }
    }
}
