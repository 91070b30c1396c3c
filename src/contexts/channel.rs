//! The BroadcastChannel every context of one database joins, and what travels
//! on it: JSON text of [`Message`], so both ends agree on one shape.

use gloo_events::EventListener;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;

/// One message between the contexts of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Message {
    /// A commit is durable: these entities are stored anew. `local`: made by
    /// local writes (so the outbox grew), not by sync.
    Committed { keys: Vec<(String, String)>, local: bool },
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

/// This context's end of a database's channel. Dropping it closes it.
pub struct Channel {
    channel: web_sys::BroadcastChannel,
    _listener: EventListener,
}

impl Channel {
    /// Joins the channel `name`; `receive` gets every message other contexts
    /// post (not this one's own). `None` where BroadcastChannel is missing.
    pub fn join(name: &str, receive: impl Fn(Message) + 'static) -> Option<Channel> {
        let channel = web_sys::BroadcastChannel::new(name).ok()?;
        let listener = EventListener::new(&channel, "message", move |event| {
            let text = event.dyn_ref::<web_sys::MessageEvent>().and_then(|event| event.data().as_string());
            // A message this version cannot read (another version of the library) is ignored.
            if let Some(message) = text.and_then(|text| serde_json::from_str(&text).ok()) {
                receive(message);
            }
        });
        Some(Channel { channel, _listener: listener })
    }

    pub fn post(&self, message: &Message) {
        if let Ok(text) = serde_json::to_string(message) {
            // Posting fails only once the channel is closed: nobody is left to tell.
            let _ = self.channel.post_message(&text.into());
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.close();
    }
}
