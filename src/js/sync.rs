//! When a database syncs: the browser side of the engine. Sync runs on open,
//! on going online, shortly after local writes (debounced), when the page
//! becomes visible, on an interval and on `db.sync()`; after a failure, not
//! before the retry time the engine set (which survives a reload), except
//! when the app asks or the network returns. What the engine reports reaches
//! the app through [`DatabaseEvents`].
//!
//! Of all the contexts that open one database with automatic sync, only the
//! one holding its sync lock runs these triggers (see [`crate::contexts`]);
//! the others' `db.sync()` is run by that one, and they show its status.
//! When a sync fails for want of network with writes queued, a page asks for
//! a Background Sync, so its service worker can push once the network returns.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::{select, Either};

use gloo_events::EventListener;
use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Array, Function, Object, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{data_from_js, invalid_type, Options};
use super::error::{error_fields, error_of_fields, invalid, sync_unavailable, JsResult};
use super::events::{DatabaseEvents, Event, SyncerSeen};
use super::handles::{Engine, Repo};
use super::peers::Peers;
use crate::browser;
use crate::contexts::{self, Leadership, Message};
use crate::core::reconcile::{ConflictPolicy, Policies};
use crate::core::sync::{Backoff, ErrorClass, Step, SyncConfig, SyncEngine, SyncError, SyncEvent, SyncReport};
use crate::core::{Change, Origin, SharedData};
use crate::remote::{from_js_json, HandlerRemote, HttpRemote, JsRemote};
use crate::store::browser::StorageKind;

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
        let timeout_ms = options.count("timeout")?.map_or(15_000, |ms| ms as u32);
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
            // Held to the rules of a put, as its answer is stored like one.
            data_from_js(&merged, "the conflict resolver's answer").map(SharedData::into_data).map_err(|error| {
                let message = error.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()));
                message.unwrap_or_else(|| crate::remote::describe(&error))
            })
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

/// How long a `db.sync()` handed to the syncing context waits for its answer.
const FORWARDED_SYNC_TIMEOUT_MS: u32 = 60_000;

/// Drives one database's engine in a page or a worker. Every timer and
/// browser listener it sets is an owned handle: dropping it, as `close` does,
/// cancels or removes it.
pub struct Syncer {
    engine: Engine,
    events: Rc<DatabaseEvents>,
    peers: Rc<Peers>,
    /// The database's sync lock (and Background Sync tag).
    lock: String,
    /// What kind of context this is: "window", "worker", "service-worker".
    context: String,
    /// The place in the sync lock's queue, then the lock.
    leadership: RefCell<Option<Leadership>>,
    /// Whether this context is the one that syncs.
    leading: Cell<bool>,
    /// `db.sync()` calls handed to the syncing context, by request id.
    forwarded: RefCell<HashMap<String, oneshot::Sender<JsResult<JsValue>>>>,
    /// Taken by each `db.sync()` of a context that does not hold the sync lock,
    /// so that its calls take turns: a second call while the first holds the
    /// lock would find it taken and hand itself to the holder, which is this
    /// very context and never hears its own message.
    turns: futures::lock::Mutex<()>,
    auto: bool,
    interval_ms: f64,
    debounce_ms: f64,
    log: Option<Function>,
    /// The one-shot timer of the next due sync, and when it fires.
    timer: RefCell<Option<(Timeout, f64)>>,
    /// The due sync the timer started, while it runs or waits for the one
    /// before it; `Again`: another became due meanwhile, to run after it.
    due: Cell<Due>,
    interval: RefCell<Option<Interval>>,
    /// The browser events that trigger a sync (`online`, `visibilitychange`).
    triggers: RefCell<Vec<EventListener>>,
    /// The repository subscription that schedules a sync after local writes.
    writes: Cell<Option<u64>>,
    closed: Cell<bool>,
}

/// Where the due sync the timer started stands (see `Syncer::due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Idle,
    Running,
    Again,
}

impl Syncer {
    /// Starts syncing the database `name`: with automatic sync, this context
    /// queues for the database's sync lock and runs the triggers once it
    /// holds it (at once where Web Locks are missing).
    pub async fn start(
        name: &str,
        repository: Repo,
        events: Rc<DatabaseEvents>,
        peers: Rc<Peers>,
        options: SyncOptions,
    ) -> Result<Rc<Syncer>, crate::core::Error> {
        let SyncOptions { remote, auto, interval_ms, debounce_ms, config, log } = options;
        // A database kept in memory is this context's alone: it syncs under a
        // lock of its own, never waiting for or handing its syncs to another.
        let lock = match repository.store().kind() {
            StorageKind::IndexedDb => contexts::lock_name(name),
            StorageKind::Memory => format!("{}:memory:{}", contexts::lock_name(name), uuid::Uuid::new_v4()),
        };
        let engine = SyncEngine::open(repository.clone(), remote, config, Box::new(js_sys::Math::random)).await?;
        events.attach_engine(engine.clone());
        let syncer = Rc::new(Syncer {
            engine,
            events,
            peers,
            lock,
            context: browser::context_kind(),
            leadership: RefCell::new(None),
            leading: Cell::new(false),
            forwarded: RefCell::default(),
            turns: futures::lock::Mutex::new(()),
            auto,
            interval_ms,
            debounce_ms,
            log,
            timer: RefCell::new(None),
            due: Cell::new(Due::Idle),
            interval: RefCell::new(None),
            triggers: RefCell::default(),
            writes: Cell::new(None),
            closed: Cell::new(false),
        });
        let weak = Rc::downgrade(&syncer);
        syncer.engine.listen(Rc::new(move |event: &SyncEvent| {
            if let Some(syncer) = weak.upgrade() {
                syncer.dispatch(event);
            }
        }));
        if syncer.auto {
            let weak = Rc::downgrade(&syncer);
            let writes = repository.subscribe(
                None,
                Rc::new(move |changes: &[Change]| {
                    if let Some(syncer) = weak.upgrade() {
                        if changes.iter().any(|c| c.origin == Origin::Local) {
                            syncer.schedule(syncer.debounce_ms);
                        }
                    }
                }),
            )?;
            syncer.writes.set(Some(writes));
            syncer.watch();
            match syncer.queue_for_lock() {
                Some(leadership) => {
                    // Known before open resolves, so that a `db.sync()` right
                    // after it runs here or goes to the syncer that exists.
                    leadership.decided().await;
                    *syncer.leadership.borrow_mut() = Some(leadership);
                }
                // Without Web Locks every context syncs on its own.
                None => syncer.lead(),
            }
        }
        syncer.peers.attach(&syncer);
        // Whoever syncs says so, and this context shows its status.
        syncer.peers.post(&Message::Hello);
        Ok(syncer)
    }

    /// Takes the sync lock if free, else queues for it; [`Syncer::lead`] runs
    /// once this context holds it. `None` where Web Locks are missing.
    fn queue_for_lock(self: &Rc<Self>) -> Option<Leadership> {
        let weak = Rc::downgrade(self);
        Leadership::request(&self.lock, move || {
            if let Some(syncer) = weak.upgrade() {
                syncer.lead();
            }
        })
    }

    /// A page being frozen, or put in the back/forward cache, cannot sync:
    /// it hands the lock to the next context and queues again when it is back.
    fn step_down(&self) {
        if self.leadership.borrow_mut().take().is_some() {
            self.leading.set(false);
            self.log(&ContextStep::Leadership { leading: false, context: &self.context });
            self.events.set_syncer(SyncerSeen::Unknown);
        }
    }

    fn rejoin(self: &Rc<Self>) {
        if self.closed.get() || self.leadership.borrow().is_some() {
            return;
        }
        if let Some(leadership) = self.queue_for_lock() {
            *self.leadership.borrow_mut() = Some(leadership);
        }
    }

    /// This context now holds the sync lock: it runs the triggers from now on.
    fn lead(self: &Rc<Self>) {
        if self.closed.get() {
            return;
        }
        self.leading.set(true);
        self.log(&ContextStep::Leadership { leading: true, context: &self.context });
        self.events.set_syncer(SyncerSeen::Here(self.context.clone()));
        self.peers.post(&Message::Leading);
        // The syncer before this one may have stopped (its page closed)
        // between a commit and that commit's message.
        self.peers.take_in_unheard_after(async {});
        self.announce_status();
        self.answer_own_forwarded();
        self.run_due();
    }

    /// `db.sync()` calls this context handed to the syncer it now succeeds are
    /// its own to run: one sync answers them all.
    fn answer_own_forwarded(self: &Rc<Self>) {
        let waiting: Vec<_> = self.forwarded.borrow_mut().drain().map(|(_, answer)| answer).collect();
        if waiting.is_empty() {
            return;
        }
        let syncer = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = syncer.sync_to_js().await;
            for answer in waiting {
                let _ = answer.send(result.clone());
            }
        });
    }

    /// `db.sync()`: here if this context syncs or can take the sync lock at
    /// once; otherwise by the context that holds it. Resolves with the report.
    pub async fn sync_anywhere(self: &Rc<Self>) -> JsResult<JsValue> {
        if self.leading.get() {
            return self.sync_to_js().await;
        }
        let _turn = self.turns.lock().await;
        if self.leading.get() {
            return self.sync_to_js().await;
        }
        match contexts::run_if_free(&self.lock, self.sync_here()).await? {
            Some(report) => Ok(report),
            None => self.forward().await,
        }
    }

    /// One sync here, as a JS function returning the Promise of its report:
    /// the task run under the sync lock.
    fn sync_here(self: &Rc<Self>) -> Function {
        let here = self.clone();
        Closure::<dyn FnMut() -> js_sys::Promise>::new(move || {
            let here = here.clone();
            wasm_bindgen_futures::future_to_promise(async move { here.sync_to_js().await })
        })
        .into_js_value()
        .unchecked_into()
    }

    /// One sync here, its report or its error as JS values.
    async fn sync_to_js(self: &Rc<Self>) -> JsResult<JsValue> {
        let report = self.sync_now().await?;
        Ok(report.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL))
    }

    /// Hands a `db.sync()` to the context that syncs and waits for its answer.
    /// Should that context go away first (closed, crashed, frozen), the next
    /// to take the lock answers: the one it hands the lock to (see
    /// [`Syncer::lead`]), or this one, queued for the lock meanwhile.
    async fn forward(self: &Rc<Self>) -> JsResult<JsValue> {
        let request = uuid::Uuid::new_v4().to_string();
        let (answer, answered) = oneshot::channel();
        self.forwarded.borrow_mut().insert(request.clone(), answer);
        self.log(&ContextStep::Forwarded { direction: "sent" });
        self.peers.post(&Message::SyncRequest { request: request.clone() });
        let here = contexts::RunOnceFree::queue(&self.lock, &self.sync_here());
        let deadline = gloo_timers::future::TimeoutFuture::new(FORWARDED_SYNC_TIMEOUT_MS);
        let outcome = select(answered, select(here, deadline)).await;
        self.forwarded.borrow_mut().remove(&request);
        match outcome {
            Either::Left((Ok(answer), _)) => answer,
            Either::Right((Either::Left((ran_here, _)), _)) => ran_here,
            _ => Err(sync_unavailable("the context that syncs this database did not answer; try again")),
        }
    }

    /// A message from another context of the database.
    pub fn receive(self: &Rc<Self>, message: Message) {
        match message {
            Message::SyncRequest { request } if self.leading.get() => {
                self.log(&ContextStep::Forwarded { direction: "received" });
                let syncer = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let (report, error) = match syncer.sync_to_js().await {
                        Ok(report) => (from_js_json(&report).ok(), None),
                        Err(error) => (None, Some(error_fields(&error))),
                    };
                    syncer.peers.post(&Message::SyncAnswer { request, report, error });
                });
            }
            Message::SyncAnswer { request, report, error } => {
                if let Some(answer) = self.forwarded.borrow_mut().remove(&request) {
                    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
                    let _ = answer.send(match error {
                        Some(fields) => Err(error_of_fields(&fields)),
                        None => Ok(report.serialize(&serializer).unwrap_or(JsValue::NULL)),
                    });
                }
            }
            Message::SyncerStatus { context, status } if !self.leading.get() => {
                self.events.set_syncer(SyncerSeen::Elsewhere { context, status });
            }
            Message::Hello if self.leading.get() => self.announce_status(),
            Message::Leading if !self.leading.get() => {
                for request in self.forwarded.borrow().keys() {
                    self.peers.post(&Message::SyncRequest { request: request.clone() });
                }
            }
            _ => {}
        }
    }

    /// Another context committed local writes: the syncer pushes them soon.
    /// Without Web Locks every context syncs, and the one that wrote pushes
    /// its own writes: were the others to push them too, each would go out
    /// once per context.
    pub fn written_elsewhere(self: &Rc<Self>) {
        let with_web_locks = self.leadership.borrow().is_some();
        if self.leading.get() && self.auto && with_web_locks {
            self.schedule(self.debounce_ms);
        }
    }

    /// Tells the other contexts where sync stands, when this one syncs.
    fn announce_status(&self) {
        if !self.leading.get() {
            return;
        }
        self.post_status(&self.events.status());
    }

    fn post_status(&self, status: &JsValue) {
        let status = from_js_json(status).unwrap_or(serde_json::Value::Null);
        self.peers.post(&Message::SyncerStatus { context: self.context.clone(), status });
    }

    /// `db.sync()`, and every automatic sync once due: now, whatever the
    /// backoff says; then notes reachability and schedules any retry.
    pub async fn sync_now(self: &Rc<Self>) -> Result<SyncReport, SyncError> {
        let result = self.engine.sync().await;
        self.after(&result);
        result
    }

    /// Cancels every timer and removes every listener; the engine finishes a
    /// sync in flight.
    pub fn close(&self) {
        self.closed.set(true);
        if self.leading.replace(false) {
            self.log(&ContextStep::Leadership { leading: false, context: &self.context });
        }
        // Leaving the queue, or handing the lock to the next context in it.
        self.leadership.borrow_mut().take();
        self.timer.borrow_mut().take();
        self.interval.borrow_mut().take();
        self.triggers.borrow_mut().clear();
        if let Some(id) = self.writes.take() {
            self.engine.repository().unsubscribe(id);
        }
    }

    /// Listens for the network coming back, visibility and the interval.
    /// (`DatabaseEvents` follows `online` / `offline` for the status; its
    /// listener, added at open, runs before this one.)
    fn watch(self: &Rc<Self>) {
        let mut triggers = Vec::new();
        let global = js_sys::global();
        if let Some(global) = global.dyn_ref::<web_sys::EventTarget>() {
            triggers.push(self.on_event(global, "online", |syncer| {
                if !syncer.leading.get() {
                    return;
                }
                let syncer = syncer.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let JsRemote::Http(http) = syncer.engine.remote() {
                        syncer.events.set_reachable(http.healthy().await);
                    }
                    // Back online: the backoff was about the network; try at once.
                    let _ = syncer.sync_now().await;
                });
            }));
        }
        // Workers have no document, hence no visibility.
        if let Some(document) = Reflect::get(&global, &"document".into()).ok().and_then(|d| d.dyn_into::<web_sys::Document>().ok()) {
            let target: web_sys::EventTarget = document.clone().unchecked_into();
            triggers.push(self.on_event(&target, "visibilitychange", move |syncer| {
                if document.visibility_state() == web_sys::VisibilityState::Visible {
                    syncer.run_due();
                }
            }));
            triggers.push(self.on_event(&target, "freeze", |syncer| syncer.step_down()));
            triggers.push(self.on_event(&target, "resume", |syncer| syncer.rejoin()));
            if let Some(window) = global.dyn_ref::<web_sys::EventTarget>() {
                let persisted = |event: &web_sys::Event| Reflect::get(event, &"persisted".into()).ok().and_then(|p| p.as_bool()) == Some(true);
                let weak = Rc::downgrade(self);
                triggers.push(EventListener::new(window, "pagehide", move |event| {
                    if let Some(syncer) = weak.upgrade().filter(|_| persisted(event)) {
                        syncer.step_down();
                    }
                }));
                let weak = Rc::downgrade(self);
                triggers.push(EventListener::new(window, "pageshow", move |event| {
                    if let Some(syncer) = weak.upgrade().filter(|_| persisted(event)) {
                        syncer.rejoin();
                    }
                }));
            }
        }
        *self.triggers.borrow_mut() = triggers;
        if self.interval_ms > 0.0 {
            let weak = Rc::downgrade(self);
            let tick = Interval::new(timer_ms(self.interval_ms), move || {
                if let Some(syncer) = weak.upgrade() {
                    syncer.run_due();
                }
            });
            *self.interval.borrow_mut() = Some(tick);
        }
    }

    fn on_event(self: &Rc<Self>, target: &web_sys::EventTarget, event: &'static str, handler: impl Fn(&Rc<Syncer>) + 'static) -> EventListener {
        let weak = Rc::downgrade(self);
        EventListener::new(target, event, move |_| {
            if let Some(syncer) = weak.upgrade() {
                handler(&syncer);
            }
        })
    }

    /// Syncs now if online and not backing off; otherwise when the backoff ends.
    fn run_due(self: &Rc<Self>) {
        if self.closed.get() || !self.leading.get() || !self.events.online() {
            return;
        }
        let now = js_sys::Date::now();
        if let Some(retry_at) = self.engine.state().next_retry_at.filter(|at| *at > now) {
            self.schedule(retry_at - now);
            return;
        }
        // One due sync at a time: a burst of writes, each scheduling one,
        // would otherwise leave a waiting sync per write, each the size of
        // a whole sync's state.
        if self.due.get() != Due::Idle {
            self.due.set(Due::Again);
            return;
        }
        self.due.set(Due::Running);
        let syncer = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // A failure reaches the app through the status and error events.
            let _ = syncer.sync_now().await;
            if syncer.due.replace(Due::Idle) == Due::Again {
                syncer.run_due();
            }
        });
    }

    /// Notes reachability and schedules the retry after a sync.
    fn after(self: &Rc<Self>, result: &Result<SyncReport, SyncError>) {
        match result {
            Ok(_) => self.events.set_reachable(true),
            Err(SyncError::Remote { class, retry_at, .. }) => {
                if matches!(class, ErrorClass::Transient { .. }) {
                    self.events.set_reachable(false);
                    self.ask_for_background_sync();
                }
                if self.auto {
                    self.schedule((retry_at - js_sys::Date::now()).max(0.0));
                }
            }
            Err(SyncError::Store(_)) => {}
        }
        self.events.emit_status();
    }

    /// After a failure for want of network, with writes queued: asks the
    /// browser to wake the service worker once the network is back (where
    /// this is a page under a service worker, on Chromium). Not for a
    /// database kept in memory, which the worker cannot see.
    fn ask_for_background_sync(self: &Rc<Self>) {
        let repository = self.engine.repository().clone();
        if repository.store().kind() == StorageKind::Memory {
            return;
        }
        let tag = self.lock.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if repository.pending_count().await.unwrap_or(0) > 0 {
                let _ = wasm_bindgen_futures::JsFuture::from(browser::request_background_sync(&tag)).await;
            }
        });
    }

    /// Arms the one-shot timer for `delay_ms`, unless it already fires sooner.
    fn schedule(self: &Rc<Self>, delay_ms: f64) {
        if self.closed.get() {
            return;
        }
        let fire_at = js_sys::Date::now() + delay_ms;
        let mut timer = self.timer.borrow_mut();
        if matches!(&*timer, Some((_, at)) if *at <= fire_at) {
            return;
        }
        let weak = Rc::downgrade(self);
        // Replacing the pending timer drops it, which cancels it.
        *timer = Some((
            Timeout::new(timer_ms(delay_ms), move || {
                if let Some(syncer) = weak.upgrade() {
                    syncer.timer.borrow_mut().take();
                    syncer.run_due();
                }
            }),
            fire_at,
        ));
    }

    fn dispatch(&self, event: &SyncEvent) {
        let events = &self.events;
        match event {
            SyncEvent::Status if self.leading.get() => {
                // One scan of the mirror for both: the app's listeners and the other contexts.
                let status = events.status();
                if events.wants(Event::Status) {
                    events.emit(Event::Status, &status);
                }
                self.post_status(&status);
            }
            SyncEvent::Status => events.emit_status(),
            SyncEvent::Conflict { collection, id } => {
                let detail = Object::new();
                let _ = Reflect::set(&detail, &"collection".into(), &collection.into());
                let _ = Reflect::set(&detail, &"id".into(), &id.into());
                events.emit(Event::Conflict, &detail);
            }
            SyncEvent::Error { message, collection, id } => {
                let detail = Object::new();
                let _ = Reflect::set(&detail, &"message".into(), &message.into());
                let _ = Reflect::set(&detail, &"collection".into(), &collection.as_deref().map_or(JsValue::NULL, JsValue::from));
                let _ = Reflect::set(&detail, &"id".into(), &id.as_deref().map_or(JsValue::NULL, JsValue::from));
                events.emit(Event::Error, &detail);
            }
            SyncEvent::Log(step) => self.log(step),
        }
    }

    /// Hands one entry to `sync.log` and the `log` listeners, with its time; the
    /// entry that ends a sync (`done`, `failed`) also carries the status's counters,
    /// with `queued` the mutations waiting. Built only when someone listens.
    fn log<S: Serialize + LogStep>(&self, step: &S) {
        if self.log.is_none() && !self.events.wants(Event::Log) {
            return;
        }
        let entry = step.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL);
        let _ = Reflect::set(&entry, &"at".into(), &js_sys::Date::now().into());
        if step.ends_a_sync() {
            let status = self.events.status();
            let counters = Reflect::get(&status, &"counters".into()).unwrap_or(JsValue::NULL);
            if counters.is_object() {
                let _ = Reflect::set(&counters, &"queued".into(), &Reflect::get(&status, &"pending".into()).unwrap_or(JsValue::NULL));
                let _ = Reflect::set(&entry, &"counters".into(), &counters);
            }
        }
        if let Some(log) = &self.log {
            let _ = log.call1(&JsValue::NULL, &entry);
        }
        self.events.emit(Event::Log, &entry);
    }
}

/// Log entries about this context rather than one sync: the engine's own steps
/// are [`Step`]s.
#[derive(Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
enum ContextStep<'a> {
    /// This context became the one that syncs the database, or stopped being it
    /// (frozen, put in the back/forward cache, closed).
    Leadership { leading: bool, context: &'a str },
    /// A `db.sync()` handed to the context that syncs (`sent`), or run there for another one (`received`).
    Forwarded { direction: &'static str },
}

/// Which log entries end a sync, and so carry the counters.
trait LogStep {
    fn ends_a_sync(&self) -> bool;
}

impl LogStep for Step {
    fn ends_a_sync(&self) -> bool {
        matches!(self, Step::Done { .. } | Step::Failed { .. })
    }
}

impl LogStep for ContextStep<'_> {
    fn ends_a_sync(&self) -> bool {
        false
    }
}

/// A delay as timers take it: browsers run a delay past 2^31 - 1 ms (about
/// 24.8 days) at once, so a longer one is cut to that; the sync it triggers
/// finds the retry time not yet come and waits again.
fn timer_ms(delay_ms: f64) -> u32 {
    delay_ms.clamp(0.0, i32::MAX as f64) as u32
}
