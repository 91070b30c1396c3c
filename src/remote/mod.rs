//! The [`Remote`] implementations a browser uses: HTTP to a server speaking
//! `docs/protocol.md`, or the app's own `push` / `pull` functions.

mod handlers;
mod http;

pub use handlers::HandlerRemote;
pub use http::HttpRemote;

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::core::sync::{PullPage, Push, PushAnswer, Remote, RemoteError};

/// The remote a database syncs with.
pub enum JsRemote {
    Http(HttpRemote),
    Handlers(HandlerRemote),
}

impl Remote for JsRemote {
    async fn push(&self, request: &Push) -> Result<PushAnswer, RemoteError> {
        match self {
            JsRemote::Http(remote) => remote.push(request).await,
            JsRemote::Handlers(remote) => remote.push(request).await,
        }
    }

    async fn prepare(&self, request: &Push) {
        if let JsRemote::Http(remote) = self {
            remote.prepare(request).await;
        }
    }

    /// A server speaking the protocol serves it, or leaves it out; an app's
    /// own functions push and pull as they are told.
    fn pulls_with_push(&self) -> bool {
        match self {
            JsRemote::Http(remote) => remote.pulls_with_push(),
            JsRemote::Handlers(_) => false,
        }
    }

    /// As a server says; an app's own functions get one mutation of an entity per push.
    fn chains(&self) -> bool {
        match self {
            JsRemote::Http(remote) => remote.chains(),
            JsRemote::Handlers(_) => false,
        }
    }

    async fn pull(&self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullPage, RemoteError> {
        match self {
            JsRemote::Http(remote) => remote.pull(cursor, limit, client_id).await,
            JsRemote::Handlers(remote) => remote.pull(cursor, limit, client_id).await,
        }
    }

    async fn refresh_auth(&self) -> Result<(), RemoteError> {
        match self {
            JsRemote::Http(remote) => remote.refresh_auth().await,
            JsRemote::Handlers(_) => Ok(()),
        }
    }

    fn learned(&self) -> Option<String> {
        match self {
            JsRemote::Http(remote) => remote.learned(),
            JsRemote::Handlers(_) => None,
        }
    }

    fn recall(&self, learned: &str) {
        if let JsRemote::Http(remote) = self {
            remote.recall(learned);
        }
    }
}

/// Calls an app function and waits for its answer, whether it returns a
/// value or a Promise. A throw or a rejection comes back as `Err`.
async fn call_app(function: &Function, argument: &JsValue) -> Result<JsValue, JsValue> {
    let returned = function.call1(&JsValue::NULL, argument)?;
    match returned.dyn_into::<Promise>() {
        Ok(promise) => JsFuture::from(promise).await,
        Err(value) => Ok(value),
    }
}

/// Reads a JS value as `T` through its JSON text (`JSON.stringify`): the way
/// a server's answer is read, so an app's handlers are read alike, by the
/// same parser. `Err` says why, for what JSON cannot hold too.
pub(crate) fn from_js_json<T: serde::de::DeserializeOwned>(value: &JsValue) -> Result<T, String> {
    let text = match js_sys::JSON::stringify(value) {
        Ok(text) => text.as_string().ok_or_else(|| format!("{} is not JSON", crate::browser::type_name(value)))?,
        Err(thrown) => return Err(describe(&thrown)),
    };
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A readable description of a thrown JS value.
pub(crate) fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(error.name()), String::from(error.message()));
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}
