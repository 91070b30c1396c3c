//! When a database syncs, and what it tells the app: the browser side of the
//! engine. Sync runs on open, on going online, shortly after local writes
//! (debounced), when the page becomes visible, on an interval and on
//! `db.sync()`; after a failure, not before the retry time the engine set
//! (which survives a reload), except when the app asks or the network returns.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{change_to_js, invalid_type, Options};
use super::error::{invalid, JsResult};
use super::handles::Engine;
use crate::core::sync::{Backoff, ConflictPolicy, Policies, SyncConfig, SyncEngine, SyncError, SyncEvent, SyncReport};
use crate::core::{Change, Origin, Repository, SyncStatus};
use crate::remote::{HandlerRemote, HttpRemote, JsRemote};
use crate::store::indexeddb::IdbStore;
use crate::timers::{clear_interval, clear_timeout, set_interval, set_timeout};

/// `open({ sync })`, parsed.
pub struct SyncOptions {
    remote: JsRemote,
    auto: bool,
    interval_ms: f64,
    debounce_ms: f64,
    config: SyncConfig,
    log: Option<Function>,
}

impl SyncOptions {
    /// Reads `sync` from the open options; `policies` come from the collections.
    pub fn from_js(value: &JsValue, policies: Policies) -> JsResult<SyncOptions> {
        let options = Options::new(
            value,
            "open options.sync",
            &["url", "getToken", "push", "pull", "auto", "interval", "debounce", "timeout", "batchSize", "pullLimit", "log"],
        )?;
        let function = |field: &str| -> JsResult<Option<Function>> {
            match options.get(field) {
                None => Ok(None),
                Some(value) => value
                    .dyn_into::<Function>()
                    .map(Some)
                    .map_err(|other| invalid_type(&other, &format!("open options.sync.{field} must be a function"))),
            }
        };
        let timeout_ms = options.count("timeout")?.map_or(15_000.0, |ms| ms as f64);
        let remote = match (options.string("url")?, function("push")?, function("pull")?) {
            (Some(url), None, None) => {
                if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/')) {
                    return Err(invalid(format!("open options.sync.url must be an http(s) URL or a path, got {url:?}")));
                }
                JsRemote::Http(HttpRemote::new(&url, function("getToken")?, timeout_ms))
            }
            (None, Some(push), Some(pull)) => JsRemote::Handlers(HandlerRemote::new(push, pull)),
            _ => return Err(invalid("open options.sync needs either `url` or both `push` and `pull` functions")),
        };
        let auto = match options.get("auto") {
            None => true,
            Some(value) => value.as_bool().ok_or_else(|| invalid("open options.sync.auto must be a boolean"))?,
        };
        let defaults = SyncConfig::default();
        let config = SyncConfig {
            push_batch: positive(options.count("batchSize")?, defaults.push_batch, tideway_protocol::MAX_PUSH_MUTATIONS, "batchSize")?,
            pull_limit: positive(options.count("pullLimit")?, defaults.pull_limit, tideway_protocol::MAX_PULL_LIMIT, "pullLimit")?,
            backoff: Backoff::default(),
            policies,
        };
        Ok(SyncOptions {
            remote,
            auto,
            interval_ms: options.count("interval")?.map_or(60_000.0, |ms| ms as f64),
            debounce_ms: options.count("debounce")?.map_or(300.0, |ms| ms as f64),
            config,
            log: function("log")?,
        })
    }
}

fn positive(value: Option<usize>, default: usize, max: usize, field: &str) -> JsResult<usize> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(invalid(format!("open options.sync.{field} must be from 1 to {max}"))),
    }
}

/// A collection's `conflict` option: a policy name or a resolver function.
pub fn policy_from_js(value: &JsValue, what: &str) -> JsResult<ConflictPolicy> {
    if let Some(resolve) = value.dyn_ref::<Function>() {
        let resolve = resolve.clone();
        return Ok(ConflictPolicy::Custom(Rc::new(move |sides| {
            let serializer = serde_wasm_bindgen::Serializer::json_compatible();
            let argument = |data: Option<&crate::core::Data>| data.serialize(&serializer).unwrap_or(JsValue::NULL);
            let context = Object::new();
            let _ = Reflect::set(&context, &"collection".into(), &sides.collection.into());
            let _ = Reflect::set(&context, &"id".into(), &sides.id.into());
            let merged = resolve
                .apply(&JsValue::NULL, &Array::of4(&argument(sides.local), &argument(sides.server), &argument(sides.base), &context))
                .map_err(|thrown| format!("the conflict resolver threw {}", crate::remote::describe(&thrown)))?;
            serde_wasm_bindgen::from_value(merged).map_err(|e| format!("the conflict resolver must return a data object: {e}"))
        })));
    }
    match value.as_string().as_deref() {
        Some("serverWins") => Ok(ConflictPolicy::ServerWins),
        Some("clientWins") => Ok(ConflictPolicy::ClientWins),
        Some("merge") => Ok(ConflictPolicy::Merge),
        Some("manual") => Ok(ConflictPolicy::Manual),
        _ => Err(invalid_type(value, &format!("{what} must be \"serverWins\", \"clientWins\", \"merge\", \"manual\" or a function"))),
    }
}

/// The app's event callbacks, by event name.
#[derive(Default)]
struct Callbacks {
    next: u64,
    entries: Vec<(u64, &'static str, Function)>,
}

/// Drives one database's engine in a page or a worker.
pub struct Syncer {
    engine: Engine,
    auto: bool,
    interval_ms: f64,
    debounce_ms: f64,
    log: Option<Function>,
    online: Cell<bool>,
    reachable: Cell<Option<bool>>,
    /// The pending one-shot timer and when it fires.
    timer: RefCell<Option<(JsValue, f64)>>,
    interval: RefCell<Option<(JsValue, Closure<dyn FnMut()>)>>,
    callbacks: RefCell<Callbacks>,
    /// Browser event listeners, removed on close.
    listeners: RefCell<Vec<(web_sys::EventTarget, &'static str, Closure<dyn FnMut()>)>>,
    subscription: Cell<Option<u64>>,
    closed: Cell<bool>,
}

impl Syncer {
    pub async fn start(repository: Rc<Repository<IdbStore>>, options: SyncOptions) -> Result<Rc<Syncer>, crate::core::Error> {
        let SyncOptions { remote, auto, interval_ms, debounce_ms, config, log } = options;
        let engine = SyncEngine::open(repository.clone(), remote, config, Box::new(js_sys::Math::random)).await?;
        let syncer = Rc::new(Syncer {
            engine,
            auto,
            interval_ms,
            debounce_ms,
            log,
            online: Cell::new(navigator_online()),
            reachable: Cell::new(None),
            timer: RefCell::new(None),
            interval: RefCell::new(None),
            callbacks: RefCell::default(),
            listeners: RefCell::default(),
            subscription: Cell::new(None),
            closed: Cell::new(false),
        });
        let weak = Rc::downgrade(&syncer);
        syncer.engine.listen(Rc::new(move |event: &SyncEvent| {
            if let Some(syncer) = weak.upgrade() {
                syncer.dispatch(event);
            }
        }));
        let weak = Rc::downgrade(&syncer);
        let subscription = repository.subscribe(
            None,
            Rc::new(move |changes: &[Change]| {
                if let Some(syncer) = weak.upgrade() {
                    syncer.changed(changes);
                }
            }),
        )?;
        syncer.subscription.set(Some(subscription));
        if syncer.auto {
            syncer.watch();
            syncer.run_due();
        }
        Ok(syncer)
    }

    /// `db.sync()`, and every automatic sync once due: now, whatever the
    /// backoff says; then notes reachability and schedules any retry.
    pub async fn sync_now(self: &Rc<Self>) -> Result<SyncReport, SyncError> {
        let result = self.engine.sync().await;
        self.after(&result);
        result
    }

    /// `db.status()`.
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
            counters: &'a crate::core::sync::Counters,
        }
        let state = self.engine.state();
        let repository = self.engine.repository();
        let (mut pending, mut failed, mut conflicts) = (0u64, 0u64, 0u64);
        for name in repository.schema().collections.keys() {
            let _ = repository.read(name, |collection| {
                for entity in collection.iter() {
                    pending += u64::from(entity.pending);
                    failed += u64::from(entity.sync_status == SyncStatus::Failed);
                    conflicts += u64::from(entity.sync_status == SyncStatus::Conflict);
                }
            });
        }
        let status = Status {
            online: self.online.get(),
            reachable: self.reachable.get(),
            syncing: state.syncing,
            pending,
            failed,
            conflicts,
            last_sync_at: state.last_sync_at,
            last_error: &state.last_error,
            next_retry_at: state.next_retry_at,
            counters: &state.counters,
        };
        status.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
    }

    /// `db.on(event, callback)`; returns the id for [`Syncer::off`].
    pub fn on(&self, event: &str, callback: Function) -> JsResult<u64> {
        let event = match event {
            "status" => "status",
            "change" => "change",
            "conflict" => "conflict",
            "error" => "error",
            "log" => "log",
            other => {
                return Err(invalid(format!(
                    "unknown event {other:?}; use \"status\", \"change\", \"conflict\", \"error\" or \"log\""
                )))
            }
        };
        let mut callbacks = self.callbacks.borrow_mut();
        callbacks.next += 1;
        let id = callbacks.next;
        callbacks.entries.push((id, event, callback));
        Ok(id)
    }

    pub fn off(&self, id: u64) {
        self.callbacks.borrow_mut().entries.retain(|(cid, _, _)| *cid != id);
    }

    /// Stops every timer and listener; the engine finishes a sync in flight.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some((handle, _)) = self.timer.borrow_mut().take() {
            clear_timeout(&handle);
        }
        if let Some((handle, _)) = self.interval.borrow_mut().take() {
            clear_interval(&handle);
        }
        for (target, event, closure) in self.listeners.borrow_mut().drain(..) {
            let _ = target.remove_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        }
        if let Some(id) = self.subscription.take() {
            self.engine.repository().unsubscribe(id);
        }
    }

    /// Listens for the network, visibility and the interval.
    fn watch(self: &Rc<Self>) {
        let global: web_sys::EventTarget = js_sys::global().unchecked_into();
        self.listen(&global, "online", |syncer| {
            syncer.online.set(true);
            syncer.emit_status();
            let syncer = syncer.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let JsRemote::Http(http) = syncer.engine.remote() {
                    syncer.reachable.set(Some(http.healthy().await));
                }
                // Back online: the backoff was about the network; try at once.
                let _ = syncer.sync_now().await;
            });
        });
        self.listen(&global, "offline", |syncer| {
            syncer.online.set(false);
            syncer.emit_status();
        });
        if let Some(document) = Reflect::get(&global, &"document".into()).ok().and_then(|d| d.dyn_into::<web_sys::Document>().ok()) {
            let target: web_sys::EventTarget = document.clone().unchecked_into();
            self.listen(&target, "visibilitychange", move |syncer| {
                if document.visibility_state() == web_sys::VisibilityState::Visible {
                    syncer.run_due();
                }
            });
        }
        if self.interval_ms > 0.0 {
            let weak = Rc::downgrade(self);
            let tick = Closure::<dyn FnMut()>::new(move || {
                if let Some(syncer) = weak.upgrade() {
                    syncer.run_due();
                }
            });
            let handle = set_interval(tick.as_ref().unchecked_ref(), self.interval_ms);
            *self.interval.borrow_mut() = Some((handle, tick));
        }
    }

    fn listen(self: &Rc<Self>, target: &web_sys::EventTarget, event: &'static str, handler: impl Fn(&Rc<Syncer>) + 'static) {
        let weak: Weak<Syncer> = Rc::downgrade(self);
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(syncer) = weak.upgrade() {
                if !syncer.closed.get() {
                    handler(&syncer);
                }
            }
        });
        if target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref()).is_ok() {
            self.listeners.borrow_mut().push((target.clone(), event, closure));
        }
    }

    /// Syncs now if online and not backing off; otherwise when the backoff ends.
    fn run_due(self: &Rc<Self>) {
        if self.closed.get() || !self.online.get() {
            return;
        }
        let now = js_sys::Date::now();
        if let Some(retry_at) = self.engine.state().next_retry_at.filter(|at| *at > now) {
            self.schedule(retry_at - now);
            return;
        }
        let syncer = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // A failure reaches the app through the status and error events.
            let _ = syncer.sync_now().await;
        });
    }

    /// Notes reachability and schedules the retry after a sync.
    fn after(self: &Rc<Self>, result: &Result<SyncReport, SyncError>) {
        match result {
            Ok(_) => self.reachable.set(Some(true)),
            Err(SyncError::Remote { class, retry_at, .. }) => {
                if matches!(class, crate::core::sync::ErrorClass::Transient { .. }) {
                    self.reachable.set(Some(false));
                }
                if self.auto {
                    self.schedule((retry_at - js_sys::Date::now()).max(0.0));
                }
            }
            Err(SyncError::Store(_)) => {}
        }
        self.emit_status();
    }

    /// Arms the one-shot timer for `delay_ms`, unless it already fires sooner.
    fn schedule(self: &Rc<Self>, delay_ms: f64) {
        if self.closed.get() {
            return;
        }
        let fire_at = js_sys::Date::now() + delay_ms;
        let mut timer = self.timer.borrow_mut();
        if let Some((handle, at)) = &*timer {
            if *at <= fire_at {
                return;
            }
            clear_timeout(handle);
        }
        let weak = Rc::downgrade(self);
        let fire = Closure::once_into_js(move || {
            if let Some(syncer) = weak.upgrade() {
                syncer.timer.borrow_mut().take();
                syncer.run_due();
            }
        });
        *timer = Some((set_timeout(fire.unchecked_ref(), delay_ms), fire_at));
    }

    fn changed(self: &Rc<Self>, changes: &[Change]) {
        if self.auto && changes.iter().any(|c| c.origin == Origin::Local) {
            self.schedule(self.debounce_ms);
        }
        if self.callbacks.borrow().entries.iter().any(|(_, event, _)| *event == "change") {
            let list: Array = changes.iter().map(change_to_js).collect();
            self.call("change", &list);
        }
    }

    fn dispatch(&self, event: &SyncEvent) {
        match event {
            SyncEvent::Status => self.emit_status(),
            SyncEvent::Conflict { collection, id } => {
                let detail = Object::new();
                let _ = Reflect::set(&detail, &"collection".into(), &collection.into());
                let _ = Reflect::set(&detail, &"id".into(), &id.into());
                self.call("conflict", &detail);
            }
            SyncEvent::Error { message, collection, id } => {
                let detail = Object::new();
                let _ = Reflect::set(&detail, &"message".into(), &message.into());
                let _ = Reflect::set(&detail, &"collection".into(), &collection.as_deref().map_or(JsValue::NULL, JsValue::from));
                let _ = Reflect::set(&detail, &"id".into(), &id.as_deref().map_or(JsValue::NULL, JsValue::from));
                self.call("error", &detail);
            }
            SyncEvent::Log(step) => {
                let entry = step.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL);
                let _ = Reflect::set(&entry, &"at".into(), &js_sys::Date::now().into());
                if let Some(log) = &self.log {
                    let _ = log.call1(&JsValue::NULL, &entry);
                }
                self.call("log", &entry);
            }
        }
    }

    fn emit_status(&self) {
        if self.callbacks.borrow().entries.iter().any(|(_, event, _)| *event == "status") {
            self.call("status", &self.status());
        }
    }

    fn call(&self, event: &str, argument: &JsValue) {
        let targets: Vec<Function> =
            self.callbacks.borrow().entries.iter().filter(|(_, e, _)| *e == event).map(|(_, _, f)| f.clone()).collect();
        for callback in targets {
            if let Err(error) = callback.call1(&JsValue::NULL, argument) {
                web_sys::console::error_2(&format!("Tideway: a {event} listener threw").into(), &error);
            }
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
