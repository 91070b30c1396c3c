//! Turns the core's errors into JS `Error`s with a stable `code`.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

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
