//! A backend of the app's own: `sync: { push, pull }` functions that take and
//! answer the protocol's JSON shapes, so any API (REST with server-assigned
//! ids and 409s, GraphQL, Firestore...) can sit behind the same engine.
//!
//! A function that throws an object with a numeric `status` (and optionally
//! `code`, `mutationId`, `retryAfter` in ms) is classified like that HTTP
//! answer; any other throw counts as a network failure and is retried.

use js_sys::{Function, Reflect};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::{call_app, describe, from_js_json};
use crate::core::sync::{PullPage, Push, PushAnswer, RemoteError};

pub struct HandlerRemote {
    push: Function,
    pull: Function,
}

impl HandlerRemote {
    pub fn new(push: Function, pull: Function) -> Self {
        HandlerRemote { push, pull }
    }

    /// Calls `push({ clientId, mutations })`, expecting `{ results }`.
    pub async fn push(&self, request: &Push) -> Result<PushAnswer, RemoteError> {
        // The mutations' data is JSON text, so the request goes over as JSON.
        let argument = serde_json::to_string(request)
            .ok()
            .and_then(|json| js_sys::JSON::parse(&json).ok())
            .ok_or_else(|| RemoteError::Malformed("cannot pass the push request".to_string()))?;
        self.call(&self.push, &argument, "push").await
    }

    /// Calls `pull({ cursor, limit })`, expecting `{ changes, cursor, hasMore }`.
    pub async fn pull(&self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullPage, RemoteError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct PullRequest<'a> {
            cursor: Option<&'a str>,
            limit: usize,
            #[serde(skip_serializing_if = "Option::is_none")]
            client_id: Option<&'a str>,
        }
        let argument = PullRequest { cursor, limit, client_id }
            .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .map_err(|e| RemoteError::Malformed(format!("cannot pass the pull request: {e}")))?;
        self.call(&self.pull, &argument, "pull").await
    }

    async fn call<T: DeserializeOwned>(&self, function: &Function, argument: &JsValue, name: &str) -> Result<T, RemoteError> {
        let answer = call_app(function, argument).await.map_err(|thrown| thrown_error(&thrown))?;
        from_js_json(&answer)
            .map_err(|e| RemoteError::Malformed(format!("the app's {name} function answered an unexpected shape: {e}")))
    }
}

fn thrown_error(thrown: &JsValue) -> RemoteError {
    let field = |name: &str| Reflect::get(thrown, &name.into()).ok().filter(|v| !v.is_undefined() && !v.is_null());
    let is_object = thrown.is_object();
    match (is_object, field("status").and_then(|s| s.as_f64())) {
        (true, Some(status)) => RemoteError::Status {
            status: status as u16,
            code: field("code").and_then(|c| c.as_string()),
            message: field("message").and_then(|m| m.as_string()).unwrap_or_else(|| describe(thrown)),
            mutation_id: field("mutationId").and_then(|m| m.as_f64()).map(|m| m as u64),
            retry_after: field("retryAfter").and_then(|r| r.as_f64()),
        },
        _ => RemoteError::Network(describe(thrown)),
    }
}

