//! What an app observes of a database, whether it syncs or not: the
//! `db.on(...)` callbacks, `db.status()`, and the network state both report.
//! A syncer reports through it; without one, local commits and the network
//! are still reported.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use gloo_events::EventListener;
use js_sys::{Array, Function, Reflect};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use super::convert::change_to_js;
use super::error::{invalid, JsResult};
use super::handles::{Engine, Repo};
use crate::core::sync::Counters;
use crate::core::Change;

/// The events `db.on` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Status,
    Change,
    Conflict,
    Error,
    Log,
    /// Another context upgraded the database: this handle has closed (its
    /// queued writes committed first); open it again to go on.
    VersionChange,
}

impl Event {
    fn parse(name: &str) -> JsResult<Event> {
        Ok(match name {
            "status" => Event::Status,
            "change" => Event::Change,
            "conflict" => Event::Conflict,
            "error" => Event::Error,
            "log" => Event::Log,
            "versionchange" => Event::VersionChange,
            other => {
                return Err(invalid(format!(
                    "unknown event {other:?}; use \"status\", \"change\", \"conflict\", \"error\", \"log\" or \"versionchange\""
                )))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Event::Status => "status",
            Event::Change => "change",
            Event::Conflict => "conflict",
            Event::Error => "error",
            Event::Log => "log",
            Event::VersionChange => "versionchange",
        }
    }
}

/// Which context syncs the database, as this one knows it.
#[derive(Debug, Clone, Default)]
pub enum SyncerSeen {
    /// None that this context has heard of.
    #[default]
    Unknown,
    /// This context, of this kind ("window", "worker", "service-worker").
    Here(String),
    /// Another context, of this kind, which last reported this status.
    Elsewhere { context: String, status: serde_json::Value },
}

/// One database's event callbacks and status.
pub struct DatabaseEvents {
    repository: Repo,
    callbacks: RefCell<Vec<(u64, Event, Function)>>,
    last_callback_id: Cell<u64>,
    /// The repository subscription that feeds `change` callbacks. Held only
    /// while one is registered: without subscribers, commits build no change
    /// lists at all.
    change_feed: Cell<Option<u64>>,
    /// `navigator.onLine`, kept current by `online` / `offline` events.
    online: Cell<bool>,
    /// Whether the server answered last time; `None` before the first attempt.
    reachable: Cell<Option<bool>>,
    /// The sync engine, when the database syncs.
    engine: OnceCell<Engine>,
    /// Which context syncs this database, as far as this one knows.
    syncer: RefCell<SyncerSeen>,
    /// The `online` / `offline` listeners; dropping them removes them.
    network: RefCell<Vec<EventListener>>,
    closed: Cell<bool>,
}

impl DatabaseEvents {
    /// Starts following the network. Pages and workers alike have `online` /
    /// `offline` on their global scope (a service worker has no `window`).
    pub fn watch(repository: Repo) -> Rc<DatabaseEvents> {
        let events = Rc::new(DatabaseEvents {
            repository,
            callbacks: RefCell::default(),
            last_callback_id: Cell::new(0),
            change_feed: Cell::new(None),
            online: Cell::new(navigator_online()),
            reachable: Cell::new(None),
            engine: OnceCell::new(),
            syncer: RefCell::default(),
            network: RefCell::default(),
            closed: Cell::new(false),
        });
        if let Ok(global) = js_sys::global().dyn_into::<web_sys::EventTarget>() {
            let follow = |event: &'static str, online: bool| {
                let weak = Rc::downgrade(&events);
                EventListener::new(&global, event, move |_| {
                    if let Some(events) = weak.upgrade() {
                        events.online.set(online);
                        events.emit_status();
                    }
                })
            };
            *events.network.borrow_mut() = vec![follow("online", true), follow("offline", false)];
        }
        events
    }

    /// Adds what sync knows (progress, counters, reachability) to the status.
    pub fn attach_engine(&self, engine: Engine) {
        let _ = self.engine.set(engine);
    }

    /// Notes which context syncs, and tells the status listeners.
    pub fn set_syncer(&self, syncer: SyncerSeen) {
        *self.syncer.borrow_mut() = syncer;
        self.emit_status();
    }

    pub fn online(&self) -> bool {
        self.online.get()
    }

    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.set(Some(reachable));
    }

    /// `db.on(event, callback)`; returns the id for [`DatabaseEvents::off`].
    pub fn on(self: &Rc<Self>, event: &str, callback: Function) -> JsResult<u64> {
        let event = Event::parse(event)?;
        if event == Event::Change && self.change_feed.get().is_none() && !self.closed.get() {
            let weak = Rc::downgrade(self);
            let feed = self.repository.subscribe(
                None,
                Rc::new(move |changes: &[Change]| {
                    if let Some(events) = weak.upgrade() {
                        let list: Array = changes.iter().map(change_to_js).collect();
                        events.emit(Event::Change, &list);
                    }
                }),
            )?;
            self.change_feed.set(Some(feed));
        }
        let id = self.last_callback_id.get() + 1;
        self.last_callback_id.set(id);
        self.callbacks.borrow_mut().push((id, event, callback));
        Ok(id)
    }

    pub fn off(&self, id: u64) {
        self.callbacks.borrow_mut().retain(|(cid, _, _)| *cid != id);
        if !self.wants(Event::Change) {
            self.stop_change_feed();
        }
    }

    /// Removes the network listeners and the change feed. Callbacks stay: a
    /// sync in flight at close still reports how it ended.
    pub fn close(&self) {
        self.closed.set(true);
        self.network.borrow_mut().clear();
        self.stop_change_feed();
    }

    /// `db.status()`: without sync, the sync fields keep their values from
    /// before any sync (`reachable`, `lastSyncAt`, `lastError`, `nextRetryAt`
    /// null, counters 0, `syncing` false).
    pub fn status(&self) -> JsValue {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Status<'a> {
            online: bool,
            reachable: Option<bool>,
            syncing: bool,
            pending: u64,
            failed: u64,
            conflicts: u64,
            last_sync_at: Option<f64>,
            last_error: &'a Option<String>,
            next_retry_at: Option<f64>,
            counters: &'a Counters,
            syncer: Option<Syncer<'a>>,
            storage: &'static str,
        }
        #[derive(Serialize)]
        struct Syncer<'a> {
            context: &'a str,
            here: bool,
        }
        let mut sync = self.engine.get().map(|engine| engine.state()).unwrap_or_default();
        let seen = self.syncer.borrow();
        let syncer = match &*seen {
            SyncerSeen::Unknown => None,
            SyncerSeen::Here(context) => Some(Syncer { context, here: true }),
            SyncerSeen::Elsewhere { context, status } => {
                // What the syncing context reported stands for sync here.
                let number = |field: &str| status.get(field).and_then(serde_json::Value::as_f64);
                sync.syncing = status.get("syncing").and_then(serde_json::Value::as_bool).unwrap_or(false);
                sync.last_sync_at = number("lastSyncAt");
                sync.next_retry_at = number("nextRetryAt");
                sync.last_error = status.get("lastError").and_then(|e| e.as_str()).map(str::to_owned);
                if let Some(reachable) = status.get("reachable").and_then(serde_json::Value::as_bool) {
                    self.reachable.set(Some(reachable));
                }
                Some(Syncer { context, here: false })
            }
        };
        let (mut pending, mut failed, mut conflicts) = (0u64, 0u64, 0u64);
        for name in self.repository.schema().collections.keys() {
            // A closed database counts nothing: its mirror is gone.
            let _ = self.repository.read(name, |collection| {
                let tally = collection.tally();
                pending += tally.pending;
                failed += tally.failed;
                conflicts += tally.conflicts;
            });
        }
        let status = Status {
            online: self.online.get(),
            reachable: self.reachable.get(),
            syncing: sync.syncing,
            pending,
            failed,
            conflicts,
            last_sync_at: sync.last_sync_at,
            last_error: &sync.last_error,
            next_retry_at: sync.next_retry_at,
            counters: &sync.counters,
            syncer,
            storage: self.repository.store().kind().name(),
        };
        status.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
    }

    pub fn emit_status(&self) {
        if self.wants(Event::Status) {
            self.emit(Event::Status, &self.status());
        }
    }

    /// Whether any callback listens to `event`: spares building an argument
    /// nobody reads.
    pub fn wants(&self, event: Event) -> bool {
        self.callbacks.borrow().iter().any(|(_, e, _)| *e == event)
    }

    /// Calls every callback of `event`. One that throws is reported and does
    /// not keep the others from being called.
    pub fn emit(&self, event: Event, argument: &JsValue) {
        // Cloned first: a callback may call `on` or `off`.
        let targets: Vec<Function> =
            self.callbacks.borrow().iter().filter(|(_, e, _)| *e == event).map(|(_, _, f)| f.clone()).collect();
        for callback in targets {
            if let Err(error) = callback.call1(&JsValue::NULL, argument) {
                web_sys::console::error_2(&format!("Tideway: a {} listener threw", event.name()).into(), &error);
            }
        }
    }

    fn stop_change_feed(&self) {
        if let Some(feed) = self.change_feed.take() {
            self.repository.unsubscribe(feed);
        }
    }
}

/// `navigator.onLine`, in a page or a worker (`true` where unknown).
fn navigator_online() -> bool {
    Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|navigator| Reflect::get(&navigator, &"onLine".into()))
        .ok()
        .and_then(|online| online.as_bool())
        .unwrap_or(true)
}
