//! Checks of the database-level JS API as JS calls it: the browser handles a
//! database holds (and gives back at close), events and status without sync,
//! and the request timeout.

use js_sys::{Array, Function, Reflect};
use tideway::js::Tideway;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{code, field, js, open, settle};

#[wasm_bindgen(inline_js = r#"
const WATCHED_EVENTS = ["online", "offline", "visibilitychange"];
const capture = (options) => (typeof options === "boolean" ? options : Boolean(options && options.capture));

/**
 * Records, until `restore()`, which timers with one of `delays` (ms) and
 * which online / offline / visibilitychange listeners are registered: through
 * the very globals the library calls.
 */
export function watchHandles(delays) {
  const original = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval,
    clearInterval: globalThis.clearInterval,
    add: EventTarget.prototype.addEventListener,
    remove: EventTarget.prototype.removeEventListener,
  };
  const timers = new Map();
  const listeners = [];
  globalThis.setTimeout = function (handler, ms, ...rest) {
    if (!delays.includes(ms)) return original.setTimeout.call(globalThis, handler, ms, ...rest);
    const id = original.setTimeout.call(globalThis, (...args) => { timers.delete(id); handler(...args); }, ms, ...rest);
    timers.set(id, `setTimeout(${ms})`);
    return id;
  };
  globalThis.clearTimeout = function (id) {
    timers.delete(id);
    return original.clearTimeout.call(globalThis, id);
  };
  globalThis.setInterval = function (handler, ms, ...rest) {
    const id = original.setInterval.call(globalThis, handler, ms, ...rest);
    if (delays.includes(ms)) timers.set(id, `setInterval(${ms})`);
    return id;
  };
  globalThis.clearInterval = function (id) {
    timers.delete(id);
    return original.clearInterval.call(globalThis, id);
  };
  EventTarget.prototype.addEventListener = function (type, listener, options) {
    if (WATCHED_EVENTS.includes(type) && listener) listeners.push({ target: this, type, listener, capture: capture(options) });
    return original.add.call(this, type, listener, options);
  };
  EventTarget.prototype.removeEventListener = function (type, listener, options) {
    const at = listeners.findIndex((l) => l.target === this && l.type === type && l.listener === listener && l.capture === capture(options));
    if (at >= 0) listeners.splice(at, 1);
    return original.remove.call(this, type, listener, options);
  };
  return {
    live: () => [...timers.values(), ...listeners.map((l) => l.type)].sort(),
    restore() {
      for (const name of ["setTimeout", "clearTimeout", "setInterval", "clearInterval"]) globalThis[name] = original[name];
      EventTarget.prototype.addEventListener = original.add;
      EventTarget.prototype.removeEventListener = original.remove;
    },
  };
}

/**
 * Open options syncing through functions: the first pull hands out cursor
 * "c1", the pull from "c1" brings one server change, the rest are empty.
 */
export function handlerSyncOptions(name, interval, debounce) {
  return {
    name,
    collections: { notes: {} },
    sync: {
      interval,
      debounce,
      push: ({ mutations }) => ({
        results: mutations.map((m) => ({ mutationId: m.mutationId, status: "applied", version: 1, serverUpdatedAt: 1 })),
      }),
      pull: ({ cursor }) =>
        cursor === "c1"
          ? { changes: [{ collection: "notes", id: "s1", data: { title: "from the server" }, version: 1, serverUpdatedAt: 1 }], cursor: "c2", hasMore: false }
          : { changes: [], cursor: cursor ?? "c1", hasMore: false },
    },
  };
}

/** Keeps what a callback receives; `next(predicate)` resolves with the first item, past or future, that matches. */
export function recorder() {
  const seen = [];
  let waiting = [];
  const callback = (detail) => {
    const items = Array.isArray(detail) ? detail : [detail];
    seen.push(...items);
    for (const item of items) {
      waiting = waiting.filter(({ predicate, resolve }) => (predicate(item) ? (resolve(item), false) : true));
    }
  };
  const next = (predicate) => {
    const found = seen.find(predicate);
    return found ? Promise.resolve(found) : new Promise((resolve) => waiting.push({ predicate, resolve }));
  };
  return { callback, next, seen };
}

export function withOrigin(origin) { return (change) => change.origin === origin; }

/** Makes `fetch` hold every request until its signal aborts it; returns the function that puts `fetch` back. */
export function stallFetch() {
  const original = globalThis.fetch;
  globalThis.fetch = (request) =>
    new Promise((_, reject) => {
      request.signal.addEventListener("abort", () => reject(request.signal.reason));
      // Bounds only the failure: a request nobody aborts fails the check instead of hanging the suite.
      setTimeout(() => reject(new TypeError("the request was not aborted within 10 s")), 10000);
    });
  return () => { globalThis.fetch = original; };
}

export function fire(event) { globalThis.dispatchEvent(new Event(event)); }
export function hasDocument() { return typeof document !== "undefined"; }
export function navigatorOnline() { return navigator.onLine; }
"#)]
extern "C" {
    type Handles;
    #[wasm_bindgen(js_name = watchHandles)]
    fn watch_handles(delays: Vec<u32>) -> Handles;
    #[wasm_bindgen(method, js_name = live)]
    fn live_array(this: &Handles) -> Array;
    #[wasm_bindgen(method)]
    fn restore(this: &Handles);

    #[wasm_bindgen(js_name = handlerSyncOptions)]
    fn handler_sync_options(name: &str, interval: u32, debounce: u32) -> JsValue;

    type Recorder;
    fn recorder() -> Recorder;
    #[wasm_bindgen(method, getter)]
    fn callback(this: &Recorder) -> Function;
    #[wasm_bindgen(method)]
    fn next(this: &Recorder, predicate: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(method, getter)]
    fn seen(this: &Recorder) -> Array;
    #[wasm_bindgen(js_name = withOrigin)]
    fn with_origin(origin: &str) -> JsValue;

    #[wasm_bindgen(js_name = stallFetch)]
    fn stall_fetch() -> Function;
    fn fire(event: &str);
    #[wasm_bindgen(js_name = hasDocument)]
    fn has_document() -> bool;
    #[wasm_bindgen(js_name = navigatorOnline)]
    fn navigator_online() -> bool;
}

impl Handles {
    /// What is registered now, sorted: `"online"`, `"setTimeout(4343)"`...
    fn live(&self) -> Vec<String> {
        self.live_array().iter().filter_map(|item| item.as_string()).collect()
    }
}

/// Delays no browser uses on its own, so that the timers watched are the database's.
const INTERVAL_MS: u32 = 4242;
const DEBOUNCE_MS: u32 = 4343;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// A syncing database holds the `online` / `offline` listeners of its status,
/// the `online` and `visibilitychange` listeners and the interval that
/// trigger syncs, and the debounce timer a write arms; `close` gives every
/// one of them back. Along the way, `change` reports local and synced changes.
pub async fn closing_drops_every_timer_and_listener() {
    let name = unique("close-handles");
    let handles = watch_handles(vec![INTERVAL_MS, DEBOUNCE_MS]);
    let db = Tideway::open(handler_sync_options(&name, INTERVAL_MS, DEBOUNCE_MS)).await.expect("open with sync");
    let changes = recorder();
    db.on("change".into(), changes.callback().into()).expect("on change");
    settle(db.sync()).await.expect("sync");
    let pulled = JsFuture::from(changes.next(&with_origin("sync"))).await.unwrap();
    assert_eq!(field(&pulled, "record.data.title").as_string().as_deref(), Some("from the server"));

    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "local"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    let local = JsFuture::from(changes.next(&with_origin("local"))).await.unwrap();
    assert_eq!((field(&local, "collection").as_string(), field(&local, "id").as_string()), (Some("notes".into()), Some("n1".into())));

    let mut expected = vec!["offline", "online", "online", "setInterval(4242)", "setTimeout(4343)"];
    if has_document() {
        expected.push("visibilitychange");
    }
    expected.sort_unstable();
    assert_eq!(handles.live(), expected, "what an open, syncing database holds after a write");
    settle(db.close()).await.expect("close");
    assert_eq!(handles.live(), Vec::<String>::new(), "close gives every timer and listener back");
    handles.restore();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Without sync, `db.status()` tells what is true locally, `change` fires for
/// local commits, and `status` for the network; `close` stops the latter.
pub async fn a_database_without_sync_reports_changes_and_status() {
    let name = unique("local-events");
    let handles = watch_handles(vec![]);
    let db = open(&name).await;
    let status = db.status();
    let keys: Vec<String> = js_sys::Object::keys(status.unchecked_ref::<js_sys::Object>()).iter().filter_map(|k| k.as_string()).collect();
    assert_eq!(
        keys,
        ["online", "reachable", "syncing", "pending", "failed", "conflicts", "lastSyncAt", "lastError", "nextRetryAt", "counters", "syncer"],
        "the same shape as with sync"
    );
    assert_eq!(field(&status, "online").as_bool(), Some(navigator_online()));
    for never in ["reachable", "lastSyncAt", "lastError", "nextRetryAt"] {
        assert!(field(&status, never).is_null(), "{never}");
    }
    assert_eq!(field(&status, "syncing").as_bool(), Some(false));
    for zero in ["pending", "failed", "conflicts", "counters.pushed", "counters.pulled", "counters.failed"] {
        assert_eq!(field(&status, zero).as_f64(), Some(0.0), "{zero}");
    }

    let notes = db.collection("notes".into()).unwrap();
    let changes = recorder();
    let off: Function = db.on("change".into(), changes.callback().into()).expect("on change without sync");
    settle(notes.put(js(r#"{"title": "first"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    settle(notes.patch("n1".into(), js(r#"{"title": "second"}"#))).await.expect("patch");
    let seen = changes.seen();
    assert_eq!(seen.length(), 2, "one change per commit");
    assert_eq!(field(&seen.get(1), "origin").as_string().as_deref(), Some("local"));
    assert_eq!(field(&seen.get(1), "record.data.title").as_string().as_deref(), Some("second"));
    off.call0(&JsValue::NULL).unwrap();
    settle(notes.put(js(r#"{"title": "third"}"#), js(r#"{"id": "n2"}"#))).await.expect("put");
    assert_eq!(changes.seen().length(), 2, "unsubscribed");
    assert_eq!(field(&db.status(), "pending").as_f64(), Some(3.0), "every write waits in the outbox");

    let statuses = recorder();
    db.on("status".into(), statuses.callback().into()).expect("on status without sync");
    fire("offline");
    assert_eq!(statuses.seen().length(), 1);
    assert_eq!(field(&statuses.seen().get(0), "online").as_bool(), Some(false));
    assert_eq!(field(&db.status(), "online").as_bool(), Some(false));
    fire("online");
    assert_eq!(field(&statuses.seen().get(1), "online").as_bool(), Some(true));
    assert_eq!(handles.live(), ["offline", "online"]);
    assert_eq!(code(&settle(db.sync()).await.unwrap_err()), "INVALID_ARGUMENT", "sync itself still needs `sync` options");

    settle(db.close()).await.expect("close");
    assert_eq!(handles.live(), Vec::<String>::new(), "close removes the network listeners");
    fire("offline");
    fire("online");
    assert_eq!(statuses.seen().length(), 2, "no status after close");
    handles.restore();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A request still unanswered after `sync.timeout` ms is aborted and counts
/// as a transient failure.
pub async fn a_request_past_its_timeout_is_aborted() {
    let name = unique("timeout");
    let options = js(&format!(
        r#"{{"name": "{name}", "collections": {{"notes": {{}}}}, "sync": {{"url": "http://127.0.0.1:9", "auto": false, "timeout": 50}}}}"#
    ));
    let db = Tideway::open(options).await.expect("open");
    let restore_fetch = stall_fetch();
    let failed = settle(db.sync()).await;
    restore_fetch.call0(&JsValue::NULL).unwrap();
    let error = failed.expect_err("the sync fails");
    assert_eq!(code(&error), "SYNC_FAILED");
    assert_eq!(Reflect::get(&error, &"kind".into()).unwrap().as_string().as_deref(), Some("transient"));
    let message = Reflect::get(&error, &"message".into()).unwrap().as_string().unwrap_or_default();
    // Exactly the timeout's own message: the browser's "signal timed out" taken as any network failure would not do.
    assert_eq!(message, "sync failed: the request timed out");
    settle(db.close()).await.expect("close");
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// `db.outbox()` lists what waits to be pushed, oldest first, as the outbox holds it;
/// `db.collections()` counts what each collection holds, from memory.
pub async fn outbox_and_collections_tell_what_the_database_holds() {
    let name = unique("inspect");
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "a"}"#), js(r#"{"id": "a"}"#))).await.expect("put a");
    settle(notes.put(js(r#"{"title": "b"}"#), js(r#"{"id": "b"}"#))).await.expect("put b");
    settle(notes.patch("a".into(), js(r#"{"body": "x"}"#))).await.expect("patch a");
    settle(notes.delete("b".into())).await.expect("delete b");

    let outbox: Array = settle(db.outbox(JsValue::UNDEFINED)).await.expect("outbox").unchecked_into();
    let entries: Vec<(String, String, f64)> = outbox
        .iter()
        .map(|e| (field(&e, "id").as_string().unwrap(), field(&e, "op").as_string().unwrap(), field(&e, "mutationId").as_f64().unwrap()))
        .collect();
    let ops: Vec<(&str, &str)> = entries.iter().map(|(id, op, _)| (id.as_str(), op.as_str())).collect();
    assert_eq!(ops, [("a", "put"), ("b", "put"), ("a", "patch"), ("b", "delete")]);
    assert!(entries.windows(2).all(|w| w[0].2 < w[1].2), "oldest first: {entries:?}");
    let first = outbox.get(0);
    assert_eq!(js_sys::JSON::stringify(&field(&first, "data")).unwrap(), "{\"title\":\"a\"}");
    assert_eq!(field(&first, "attempts").as_f64(), Some(0.0));
    assert!(field(&first, "lastError").is_null());
    assert_eq!(field(&first, "syncStatus").as_string().as_deref(), Some("dirty"));
    assert_eq!(field(&first, "collection").as_string().as_deref(), Some("notes"));
    assert!(field(&outbox.get(3), "data").is_undefined(), "a delete carries no data");

    let limited: Array = settle(db.outbox(2.into())).await.expect("outbox(2)").unchecked_into();
    assert_eq!(limited.length(), 2);
    for bad in [JsValue::from(0), JsValue::from(1.5), JsValue::from("2")] {
        assert_eq!(code(&settle(db.outbox(bad)).await.unwrap_err()), "INVALID_ARGUMENT");
    }

    let collections = db.collections().expect("collections");
    assert_eq!(collections.length(), 1);
    let summary = js_sys::JSON::stringify(&collections.get(0)).unwrap().as_string().unwrap();
    assert_eq!(summary, r#"{"name":"notes","count":1,"deleted":1,"pending":4,"failed":0,"conflicts":0}"#);

    settle(db.close()).await.expect("close");
    assert_eq!(code(&settle(db.outbox(JsValue::UNDEFINED)).await.unwrap_err()), "DATABASE_CLOSED");
    assert_eq!(code(&db.collections().unwrap_err()), "DATABASE_CLOSED");
    Tideway::delete_database(name.into()).await.expect("delete the database");
}
