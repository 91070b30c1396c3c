//! The BroadcastChannel every context of one database joins, and what travels
//! on it: JSON text of [`Message`], so both ends agree on one shape.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::{self, Either};
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use js_sys::Array;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::browser;

/// How long a new channel waits to hear its probe before posting another.
const PROBE_EVERY_MS: u32 = 50;
/// How many probes a new channel posts before it stops waiting for one.
const PROBES: u32 = 20;
/// What a context posts on hearing another's probe: it is here too.
const PRESENT: &str = r#"{"type":"present"}"#;

/// One message between the contexts of a database.
///
/// Read through [`Wire`]: serde would read an internally tagged enum by first
/// buffering each message into a generic tree, 20 KB of code in the module
/// for this one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase", try_from = "Wire")]
pub enum Message {
    /// A commit is durable: these entities are stored anew. `local`: made by
    /// local writes (so the outbox grew), not by sync. `marks`: the commit
    /// mark it found and the one it left (see `Commits` in
    /// `src/browser/browser.js`), when the context that made it knows them;
    /// `docs`, with them: the doc it stored for each key (null where it
    /// wrote none), unless they were too large to send. They travel in the
    /// message's JSON as its field `docs`, but as JS strings from the commit
    /// that wrote them to the context that reads them: JS writes them into
    /// the text and takes them out of it (see [`Channel::post`]).
    Committed {
        keys: Vec<(String, String)>,
        local: bool,
        marks: Option<(String, String)>,
        #[serde(skip)]
        docs: Option<Array>,
    },
    /// A context without the lock asks the syncer to sync now.
    SyncRequest { request: String },
    /// The syncer's answer: the sync report, or the fields of its error.
    SyncAnswer { request: String, report: Option<serde_json::Value>, error: Option<serde_json::Value> },
    /// The syncer's state, after each change of it.
    SyncerStatus { context: String, status: serde_json::Value },
    /// A context asks whoever syncs to say so (a new context, or one back from the back/forward cache).
    Hello,
    /// A context has just taken the sync lock: requests the one before it left
    /// unanswered are sent again.
    Leading,
}

/// A message's JSON read flat: its `type`, and the fields of every kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    keys: Option<Vec<(String, String)>>,
    local: Option<bool>,
    marks: Option<(String, String)>,
    request: Option<String>,
    report: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
    context: Option<String>,
    status: Option<serde_json::Value>,
}

impl TryFrom<Wire> for Message {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Message, String> {
        fn field<T>(value: Option<T>, kind: &str, name: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("a `{kind}` message without `{name}`"))
        }
        let kind = wire.kind.as_str();
        Ok(match kind {
            "committed" => Message::Committed {
                keys: field(wire.keys, kind, "keys")?,
                local: field(wire.local, kind, "local")?,
                marks: wire.marks,
                docs: None,
            },
            "syncRequest" => Message::SyncRequest { request: field(wire.request, kind, "request")? },
            "syncAnswer" => {
                Message::SyncAnswer { request: field(wire.request, kind, "request")?, report: wire.report, error: wire.error }
            }
            "syncerStatus" => {
                Message::SyncerStatus { context: field(wire.context, kind, "context")?, status: field(wire.status, kind, "status")? }
            }
            "hello" => Message::Hello,
            "leading" => Message::Leading,
            _ => return Err(format!("an unknown message type `{kind}`")),
        })
    }
}

/// This context's end of a database's channel. Dropping it closes it.
pub struct Channel {
    channel: web_sys::BroadcastChannel,
    _listener: EventListener,
    /// Whether this end has heard another context: a message, a probe, or
    /// the answer to its own probe. Until then nobody is known to listen.
    heard_others: Rc<Cell<bool>>,
}

impl Channel {
    /// Joins the channel `name`; `receive` gets every message other contexts
    /// post (not this one's own). `None` where BroadcastChannel is missing.
    ///
    /// Browsers register a new BroadcastChannel with the other processes
    /// asynchronously, and a message posted elsewhere before that is never
    /// delivered to it (whatwg/html#7267). So the returned future resolves
    /// once this end is known to hear the others: when it has heard a probe
    /// posted from a second end of the same name, which the browser routes
    /// only to ends it has registered. A commit whose message this end missed
    /// was made before then, so a read begun after it sees that commit. Should
    /// no probe be heard within a second, it resolves all the same.
    ///
    /// The contexts already there answer each probe with [`PRESENT`], which
    /// the browser routes after the probe: so a new end that hears its own
    /// probe hears their answers too, and knows whether anybody listens to
    /// what it posts (see [`Channel::heard_others`]).
    pub fn join(name: &str, receive: impl Fn(Message) + 'static) -> Option<(Channel, impl Future<Output = ()>)> {
        let channel = web_sys::BroadcastChannel::new(name).ok()?;
        let probe = format!(r#"{{"type":"probe","id":"{}"}}"#, uuid::Uuid::new_v4());
        let (heard, hear) = oneshot::channel();
        let heard = Cell::new(Some(heard));
        let heard_others = Rc::new(Cell::new(false));
        let listener = {
            let (probe, heard_others, answer) = (probe.clone(), heard_others.clone(), channel.clone());
            EventListener::new(&channel, "message", move |event| {
                let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else { return };
                let taken = browser::take_docs(&event.data());
                let (text, docs) = (taken.get(0).as_string(), taken.get(1));
                if text.as_deref() == Some(probe.as_str()) {
                    if let Some(heard) = heard.take() {
                        let _ = heard.send(());
                    }
                    return;
                }
                heard_others.set(true);
                if text.as_deref().is_some_and(|text| text.starts_with(r#"{"type":"probe","#)) {
                    let _ = answer.post_message(&PRESENT.into());
                    return;
                }
                if text.as_deref() == Some(PRESENT) {
                    return;
                }
                // A message this version cannot read (another version of the library) is ignored.
                if let Some(mut message) = text.and_then(|text| serde_json::from_str::<Message>(&text).ok()) {
                    if let Message::Committed { docs: told, .. } = &mut message {
                        *told = docs.dyn_into().ok();
                    }
                    receive(message);
                }
            })
        };
        let prober = web_sys::BroadcastChannel::new(name).ok();
        let joined = async move {
            let Some(prober) = prober else { return };
            let mut hear = hear;
            for _ in 0..PROBES {
                let _ = prober.post_message(&probe.as_str().into());
                if let Either::Left(_) = future::select(&mut hear, TimeoutFuture::new(PROBE_EVERY_MS)).await {
                    break;
                }
            }
            prober.close();
        };
        Some((Channel { channel, _listener: listener, heard_others }, joined))
    }

    /// Whether another context is known to listen: this end has heard one
    /// since it joined. A context that joins later says so before it can
    /// miss anything (its probe), and one that misses a commit's docs reads
    /// that commit back, so a commit's docs need only travel once some
    /// context has been heard (see `Commits.take` in `src/browser/browser.js`).
    pub fn heard_others(&self) -> bool {
        self.heard_others.get()
    }

    pub fn post(&self, message: &Message) {
        if let Ok(text) = serde_json::to_string(message) {
            let docs = match message {
                Message::Committed { docs: Some(docs), .. } => docs.into(),
                _ => JsValue::NULL,
            };
            // Posting fails only once the channel is closed: nobody is left to tell.
            let _ = browser::post_with_docs(&self.channel, &text, &docs);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.close();
    }
}
