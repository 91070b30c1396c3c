//! HTTP to a Tideway sync server: `POST /v1/push`, `GET /v1/pull`, bearer
//! tokens from the app's `getToken`, a timeout on every request, and push
//! bodies gzipped for a server that says it takes them.

use std::cell::{Cell, RefCell};

use gloo_net::http::{Request, RequestBuilder, Response};
use js_sys::{Function, Object, Reflect};
use serde::de::DeserializeOwned;
use tideway_protocol::{serves_feature, takes_gzip_bodies, ErrorBody, PullRequest, FEATURES_HEADER, FEATURE_AFTER};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use super::{call_app, describe};
use crate::core::sync::{PullPage, Push, PushAnswer, RemoteError};

pub struct HttpRemote {
    /// The server's base URL, without a trailing slash.
    url: String,
    get_token: Option<Function>,
    token: RefCell<Option<String>>,
    timeout_ms: u32,
    /// Whether the server's last answer said it takes gzipped bodies (its
    /// `Accept-Encoding`, RFC 7694); `None` until it has answered once.
    gzip_bodies: Cell<Option<bool>>,
    /// A gzipped body was refused (415) on the way, by the server or by
    /// something before it: from then on bodies go plain, whatever answers say.
    gzip_refused: Cell<bool>,
    /// The next push, gzipped ahead (`prepare`): what it was made of, and its
    /// JSON gzipped.
    prepared: RefCell<Option<(Made, Blob)>>,
    /// Later pushes carry no pull: one that carried its pull was refused (400
    /// or 422, naming no mutation) and then taken without it, as by a server
    /// that refuses the fields it does not know; or it timed out, which the
    /// page may have caused, where a push and a pull alone would each have
    /// come within the timeout.
    pulls_alone: Cell<bool>,
    /// Whether the server's last answer listed the `after` feature (see
    /// `Remote::chains`).
    chains: Cell<bool>,
}

/// Push bodies shorter than this go plain: a push of one note gains a few
/// hundred bytes at most from compression.
const MIN_GZIP_BYTES: usize = 2048;
/// A first push this large asks the server whether it takes gzip before it is
/// sent: on a slow uplink, a round trip costs less than the bytes it saves.
const ASK_FIRST_BYTES: usize = 16 * 1024;

/// What tells a push from another one of the same mutations, which is all
/// its JSON can differ by: what a push carries of a mutation never changes
/// once it is queued (its id is never reused) but its `baseVersion` and
/// `after`, which a push made again once answers were recorded takes from
/// them; and the push may carry another pull.
#[derive(PartialEq)]
struct Made {
    client_id: String,
    mutations: Vec<(u64, u64, Option<u64>)>,
    pull: Option<PullRequest>,
}

impl Made {
    fn of(request: &Push) -> Made {
        Made {
            client_id: request.client_id.clone(),
            mutations: request.mutations.iter().map(|m| (m.mutation_id, m.base_version, m.after)).collect(),
            pull: request.pull.clone(),
        }
    }
}

/// A request body, as JSON text or its gzipped bytes.
enum Body {
    Plain(String),
    Gzip(Blob),
}

impl HttpRemote {
    pub fn new(url: &str, get_token: Option<Function>, timeout_ms: u32) -> Self {
        HttpRemote {
            url: url.trim_end_matches('/').to_string(),
            get_token,
            token: RefCell::new(None),
            timeout_ms,
            gzip_bodies: Cell::new(None),
            gzip_refused: Cell::new(false),
            prepared: RefCell::new(None),
            pulls_alone: Cell::new(false),
            chains: Cell::new(false),
        }
    }

    /// Whether a push may carry the pull that follows it (see `pulls_alone`).
    pub fn pulls_with_push(&self) -> bool {
        !self.pulls_alone.get()
    }

    /// Whether a push may chain mutations of one entity, as the server's last answer said.
    pub fn chains(&self) -> bool {
        self.chains.get()
    }

    /// Whether push bodies go gzipped, as the server's last answer said.
    fn takes_gzip(&self) -> bool {
        self.gzip_bodies.get() == Some(true) && !self.gzip_refused.get()
    }

    /// Whether a push body of `bytes` goes gzipped.
    fn gzips(&self, bytes: usize) -> bool {
        self.takes_gzip() && bytes >= MIN_GZIP_BYTES
    }

    /// Gzips `request`'s body ahead, where it would go gzipped, so that the
    /// push goes out as soon as the answer to the one before has come. The
    /// push it is for checks that it is made the same (see [`Made`]).
    pub async fn prepare(&self, request: &Push) {
        let Ok(json) = serde_json::to_string(request) else { return };
        if !self.gzips(json.len()) {
            return;
        }
        if let Some(packed) = gzip(&json).await {
            *self.prepared.borrow_mut() = Some((Made::of(request), packed));
        }
    }

    /// The body gzipped ahead for `request`, if that is the one prepared.
    /// Another is left for its own push: the next push may be prepared while
    /// this one waits for its body (see `SyncEngine::push_batches`). One
    /// never sent (its request made again) is replaced by the next one
    /// prepared.
    fn take_prepared(&self, request: &Push) -> Option<Blob> {
        let mut prepared = self.prepared.borrow_mut();
        match &*prepared {
            Some((made, _)) if *made == Made::of(request) => prepared.take().map(|(_, packed)| packed),
            _ => None,
        }
    }

    /// Sends a push. One that carried its pull and was refused as a request
    /// of the wrong shape is sent again without it (see `pulls_alone`).
    pub async fn push(&self, request: &Push) -> Result<PushAnswer, RemoteError> {
        match self.send_push(request).await {
            Err(RemoteError::Status { status: 400 | 422, mutation_id: None, .. }) if request.pull.is_some() => {
                let answer = self.send_push(&Push { pull: None, ..request.clone() }).await;
                if answer.is_ok() {
                    self.pulls_alone.set(true);
                }
                answer
            }
            Err(RemoteError::Timeout) if request.pull.is_some() => {
                self.pulls_alone.set(true);
                Err(RemoteError::Timeout)
            }
            answer => answer,
        }
    }

    /// Sends a push, gzipped where the server takes it. A compressed push
    /// refused with 415 is sent again plain, and so are later ones.
    async fn send_push(&self, request: &Push) -> Result<PushAnswer, RemoteError> {
        // A body gzipped ahead goes as it is, without encoding the push again.
        if let Some(packed) = self.take_prepared(request).filter(|_| self.takes_gzip()) {
            match self.send_gzipped(packed).await {
                Err(RemoteError::Status { status: 415, .. }) => self.gzip_refused.set(true),
                answer => return answer,
            }
        }
        let json = serde_json::to_string(request).map_err(|e| RemoteError::Malformed(format!("cannot encode the push: {e}")))?;
        let mut packed_meanwhile = None;
        if self.gzip_bodies.get().is_none() && json.len() >= ASK_FIRST_BYTES {
            // Any answer says. A server that cannot be reached would not take
            // the push either. The body is gzipped during the round trip, in
            // case the server takes it so (thrown away if not).
            let (asked, packed) = futures::join!(self.send(Request::get(&format!("{}/v1/health", self.url)), None), gzip(&json));
            asked?;
            packed_meanwhile = packed;
        }
        if self.gzips(json.len()) {
            let packed = match packed_meanwhile {
                Some(packed) => Some(packed),
                None => gzip(&json).await,
            };
            if let Some(packed) = packed {
                match self.send_gzipped(packed).await {
                    Err(RemoteError::Status { status: 415, .. }) => self.gzip_refused.set(true),
                    answer => return answer,
                }
            }
        }
        let builder = self.authorized(Request::post(&format!("{}/v1/push", self.url))).await?;
        self.exchange(builder, Some(Body::Plain(json))).await
    }

    /// Sends a push whose JSON is `packed`, gzipped.
    async fn send_gzipped(&self, packed: Blob) -> Result<PushAnswer, RemoteError> {
        let builder = self.authorized(Request::post(&format!("{}/v1/push", self.url))).await?;
        self.exchange(builder, Some(Body::Gzip(packed))).await
    }

    pub async fn pull(&self, cursor: Option<&str>, limit: usize, client_id: Option<&str>) -> Result<PullPage, RemoteError> {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        if let Some(client_id) = client_id {
            query.push(("clientId", client_id));
        }
        let builder = self.authorized(Request::get(&format!("{}/v1/pull", self.url)).query(query)).await?;
        self.exchange(builder, None).await
    }

    /// What the server's answers said about gzipped bodies, for the next
    /// session (`gzip URL` or `identity URL`): its first large push then goes
    /// without asking first. A server that stops taking gzip at that URL
    /// refuses the push with 415, and it is sent again plain.
    pub fn learned(&self) -> Option<String> {
        let takes = !self.gzip_refused.get() && self.gzip_bodies.get()?;
        Some(format!("{} {}", if takes { "gzip" } else { "identity" }, self.url))
    }

    /// Starts from what [`HttpRemote::learned`] said, if it was about this
    /// server and no answer has said anything yet.
    pub fn recall(&self, learned: &str) {
        let said = match learned.split_once(' ') {
            Some(("gzip", url)) if url == self.url => true,
            Some(("identity", url)) if url == self.url => false,
            _ => return,
        };
        if self.gzip_bodies.get().is_none() {
            self.gzip_bodies.set(Some(said));
        }
    }

    /// Asks `getToken({ refresh: true })` for a new token after a 401.
    pub async fn refresh_auth(&self) -> Result<(), RemoteError> {
        let token = self.fetch_token(true).await?;
        *self.token.borrow_mut() = token;
        Ok(())
    }

    /// Whether `GET /v1/health` answers 2xx within the timeout.
    pub async fn healthy(&self) -> bool {
        matches!(self.send(Request::get(&format!("{}/v1/health", self.url)), None).await, Ok(response) if response.ok())
    }

    async fn authorized(&self, builder: RequestBuilder) -> Result<RequestBuilder, RemoteError> {
        if self.get_token.is_some() && self.token.borrow().is_none() {
            let token = self.fetch_token(false).await?;
            *self.token.borrow_mut() = token;
        }
        Ok(match &*self.token.borrow() {
            Some(token) => builder.header("Authorization", &format!("Bearer {token}")),
            None => builder,
        })
    }

    async fn fetch_token(&self, refresh: bool) -> Result<Option<String>, RemoteError> {
        let Some(get_token) = &self.get_token else { return Ok(None) };
        let argument = Object::new();
        let _ = Reflect::set(&argument, &"refresh".into(), &refresh.into());
        let token = call_app(get_token, &argument).await.map_err(|error| RemoteError::Status {
            status: 401,
            code: Some("unauthorized".into()),
            message: format!("getToken failed: {}", describe(&error)),
            mutation_id: None,
            retry_after: None,
        })?;
        Ok(token.as_string())
    }

    /// Sends a request and reads a protocol answer: the body on 2xx, the
    /// error body, status and `Retry-After` otherwise.
    async fn exchange<T: DeserializeOwned>(&self, builder: RequestBuilder, body: Option<Body>) -> Result<T, RemoteError> {
        let response = self.send(builder, body).await?;
        let status = response.status();
        if (200..300).contains(&status) {
            return response.json::<T>().await.map_err(|e| RemoteError::Malformed(e.to_string()));
        }
        let retry_after = response.headers().get("Retry-After").and_then(|value| retry_after_ms(&value));
        let text = response.text().await.unwrap_or_default();
        let (code, message, mutation_id) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(ErrorBody { error }) => {
                // `error.mutationId` is an optional extra the shared type does not carry.
                let mutation_id = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|value| value["error"]["mutationId"].as_u64());
                (Some(error.code), error.message, mutation_id)
            }
            Err(_) => (None, response.status_text(), None),
        };
        Err(RemoteError::Status { status, code, message, mutation_id, retry_after })
    }

    /// Sends with a timeout: `AbortSignal.timeout` aborts the request, and
    /// the reading of its body, once it is due. The browser owns that timer,
    /// so nothing is left to clear whichever way the request ends. Every
    /// answer says again whether the server takes gzipped bodies.
    async fn send(&self, builder: RequestBuilder, body: Option<Body>) -> Result<Response, RemoteError> {
        let builder = builder.abort_signal(Some(&web_sys::AbortSignal::timeout_with_u32(self.timeout_ms)));
        let request = match body {
            Some(Body::Plain(json)) => builder.header("Content-Type", "application/json").body(json),
            Some(Body::Gzip(bytes)) => {
                builder.header("Content-Type", "application/json").header("Content-Encoding", "gzip").body(bytes)
            }
            None => builder.build(),
        }
        .map_err(|e| RemoteError::Malformed(format!("cannot build the request: {e}")))?;
        let response = request.send().await.map_err(|error| match error {
            // A timeout signal rejects with a `TimeoutError`; engines that
            // predate it in fetch reject with an `AbortError`.
            gloo_net::Error::JsError(error) if error.name == "TimeoutError" || error.name == "AbortError" => RemoteError::Timeout,
            other => RemoteError::Network(other.to_string()),
        })?;
        let headers = response.headers();
        self.gzip_bodies.set(Some(headers.get("Accept-Encoding").is_some_and(|accepted| takes_gzip_bodies(&accepted))));
        self.chains.set(headers.get(FEATURES_HEADER).is_some_and(|features| serves_feature(&features, FEATURE_AFTER)));
        Ok(response)
    }
}

/// `json` gzipped, or `None` where the engine cannot compress.
async fn gzip(json: &str) -> Option<Blob> {
    JsFuture::from(crate::browser::gzip(json.as_bytes())).await.ok()?.dyn_into::<Blob>().ok()
}

/// `Retry-After` as milliseconds: delay-seconds (a whole number, RFC 9110) or
/// an HTTP date.
fn retry_after_ms(value: &str) -> Option<f64> {
    if let Ok(seconds) = value.trim().parse::<u32>() {
        return Some(f64::from(seconds) * 1000.0);
    }
    let date = js_sys::Date::parse(value);
    (!date.is_nan()).then(|| (date - js_sys::Date::now()).max(0.0))
}
