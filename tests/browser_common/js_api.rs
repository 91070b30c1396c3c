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

/** Keeps every result a watch calls back with; `count(n)` resolves once there are `n` (and fails after 5 s). */
export function watchLog() {
  const results = [];
  let waiting = [];
  return {
    results,
    callback: (result) => {
      results.push(result);
      waiting = waiting.filter(({ n, resolve }) => (results.length >= n ? (resolve(), false) : true));
    },
    count: (n) =>
      results.length >= n
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            waiting.push({ n, resolve });
            setTimeout(() => reject(new Error(`${results.length} results after 5 s, expected ${n}`)), 5000);
          }),
    /** The ids of result `i`, joined by commas. */
    ids: (i) => Array.from(results[i], (record) => record.id).join(","),
  };
}

/**
 * Makes IndexedDB unusable, as the private modes of some engines do: opening a
 * database fails. Returns a function that brings it back.
 */
export function refuseIndexedDb() {
  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function () {
    throw new DOMException("IndexedDB is refused here", "InvalidStateError");
  };
  return () => {
    IDBFactory.prototype.open = open;
  };
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
    #[wasm_bindgen(js_name = refuseIndexedDb)]
    fn refuse_indexed_db() -> Function;

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

    type WatchLog;
    #[wasm_bindgen(js_name = watchLog)]
    fn watch_log() -> WatchLog;
    #[wasm_bindgen(method, getter)]
    fn results(this: &WatchLog) -> Array;
    #[wasm_bindgen(method, getter)]
    fn callback(this: &WatchLog) -> Function;
    #[wasm_bindgen(method)]
    fn count(this: &WatchLog, n: u32) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    fn ids(this: &WatchLog, i: u32) -> String;

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
        // The syncer's, and the one that saves the database's image when the page is hidden.
        expected.extend(["visibilitychange", "visibilitychange"]);
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
        ["online", "reachable", "syncing", "pending", "failed", "conflicts", "lastSyncAt", "lastError", "nextRetryAt", "counters", "syncer", "storage"],
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
    // In a page, also the listener that saves the database's image once the page is hidden.
    let expected: &[&str] = if has_document() { &["offline", "online", "visibilitychange"] } else { &["offline", "online"] };
    assert_eq!(handles.live(), expected);
    assert_eq!(code(&settle(db.sync()).await.unwrap_err()), "INVALID_ARGUMENT", "sync itself still needs `sync` options");

    settle(db.close()).await.expect("close");
    assert_eq!(handles.live(), Vec::<String>::new(), "close removes the network and page listeners");
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

/// `watch` calls back at once with the query's result, then only for batches
/// that change it: writes outside its range pass it by, and a new result keeps
/// the very records that did not change. `watchRecord` does the same for one
/// entity; the function each returns stops it; bad arguments throw typed errors.
pub async fn a_watch_calls_back_only_when_its_result_differs() {
    let name = unique("watch");
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    let fruit = r#"[{"id": "a", "data": {"title": "apple"}}, {"id": "b", "data": {"title": "banana"}}, {"id": "k", "data": {"title": "kiwi"}}]"#;
    settle(notes.bulk_put(js(fruit))).await.expect("bulk put");

    let log = watch_log();
    let stop = notes.watch(js(r#"{"index": "title", "lt": "c"}"#), log.callback().into()).expect("watch");
    assert_eq!((log.results().length(), log.ids(0)), (1, "a,b".to_owned()), "called back at once");
    let first = log.results().get(0);
    assert!(js_sys::Object::is_frozen(first.unchecked_ref::<js_sys::Object>()), "results are frozen");
    assert_eq!(Array::from(&first).get(0), notes.get("a".into(), JsValue::UNDEFINED).unwrap(), "the records reads give");

    // The first title: entities past it are in its range, yet do not change it.
    let first_title = watch_log();
    let stop_first = notes.watch(js(r#"{"index": "title", "limit": 1}"#), first_title.callback().into()).expect("watch");

    settle(notes.put(js(r#"{"title": "zucchini"}"#), js(r#"{"id": "z"}"#))).await.expect("put outside");
    settle(notes.patch("k".into(), js(r#"{"title": "kumquat"}"#))).await.expect("patch outside");
    assert_eq!(log.results().length(), 1, "writes outside the range pass it by");
    assert_eq!(first_title.results().length(), 1, "a query run again to the same result calls back nothing");
    stop_first.call0(&JsValue::NULL).unwrap();

    settle(notes.put(js(r#"{"title": "avocado"}"#), js(r#"{"id": "v"}"#))).await.expect("put inside");
    assert_eq!((log.results().length(), log.ids(1)), (2, "a,v,b".to_owned()));
    let second = Array::from(&log.results().get(1));
    assert!(second.get(0) == Array::from(&first).get(0) && second.get(2) == Array::from(&first).get(1), "unchanged records stay ===");

    settle(notes.patch("b".into(), js(r#"{"title": "blueberry"}"#))).await.expect("patch inside");
    settle(notes.delete("a".into())).await.expect("delete inside");
    JsFuture::from(log.count(4)).await.expect("two more results");
    assert_eq!((log.ids(2), log.ids(3)), ("a,v,b".to_owned(), "v,b".to_owned()));
    assert!(Array::from(&log.results().get(2)).get(2) != second.get(2), "the patched record is a new one");

    let record_log = watch_log();
    let stop_record = notes.watch_record("k".into(), record_log.callback().into()).expect("watch a record");
    assert_eq!(field(&record_log.results().get(0), "data.title").as_string().as_deref(), Some("kumquat"));
    settle(notes.patch("z".into(), js(r#"{"title": "zest"}"#))).await.expect("patch another");
    settle(notes.patch("k".into(), js(r#"{"title": "kiwi"}"#))).await.expect("patch it");
    settle(notes.delete("k".into())).await.expect("delete it");
    JsFuture::from(record_log.count(3)).await.expect("two more records");
    assert_eq!(record_log.results().length(), 3, "another entity's change passes it by");
    assert_eq!(field(&record_log.results().get(1), "data.title").as_string().as_deref(), Some("kiwi"));
    assert!(record_log.results().get(2).is_undefined(), "undefined once deleted");
    let missing = watch_log();
    let _stop_missing = notes.watch_record("nothing".into(), missing.callback().into()).expect("watch a missing record");
    assert!(missing.results().get(0).is_undefined() && missing.results().length() == 1);

    stop.call0(&JsValue::NULL).unwrap();
    stop_record.call0(&JsValue::NULL).unwrap();
    stop.call0(&JsValue::NULL).unwrap();
    settle(notes.put(js(r#"{"title": "apricot"}"#), js(r#"{"id": "k"}"#))).await.expect("put after stop");
    assert_eq!((log.results().length(), record_log.results().length()), (4, 3), "stopped watches hear nothing");

    let callback = || log.callback().into();
    assert_eq!(code(&notes.watch(js(r#"{"index": "body"}"#), callback()).unwrap_err()), "INVALID_ARGUMENT", "undeclared index");
    assert_eq!(code(&notes.watch(js(r#"{"gt": 2, "gte": 1}"#), callback()).unwrap_err()), "INVALID_ARGUMENT", "bad bounds");
    assert_eq!(code(&notes.watch(js("{}"), JsValue::from(5)).unwrap_err()), "INVALID_ARGUMENT", "not a function");
    assert_eq!(code(&notes.watch_record(JsValue::from(5), callback()).unwrap_err()), "INVALID_ARGUMENT", "not an id");
    settle(db.close()).await.expect("close");
    assert_eq!(code(&notes.watch(js("{}"), callback()).unwrap_err()), "DATABASE_CLOSED");
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A watch follows changes that did not start here: those another handle of
/// the database commits (another tab, in real life) and those sync pulls.
pub async fn a_watch_follows_changes_from_elsewhere_and_from_sync() {
    let name = unique("watch-elsewhere");
    let (a, b) = (open(&name).await, open(&name).await);
    let log = watch_log();
    let _stop = b.collection("notes".into()).unwrap().watch(js(r#"{"index": "title"}"#), log.callback().into()).expect("watch in b");
    let notes_a = a.collection("notes".into()).unwrap();
    settle(notes_a.put(js(r#"{"title": "from a"}"#), js(r#"{"id": "n1"}"#))).await.expect("put in a");
    JsFuture::from(log.count(2)).await.expect("b's watch hears a's write");
    assert_eq!(log.ids(1), "n1");
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");

    let name = unique("watch-pulled");
    let options = handler_sync_options(&name, INTERVAL_MS, DEBOUNCE_MS);
    Reflect::set(&field(&options, "sync"), &"auto".into(), &false.into()).unwrap();
    let db = Tideway::open(options).await.expect("open with sync");
    let log = watch_log();
    let _stop = db.collection("notes".into()).unwrap().watch(JsValue::UNDEFINED, log.callback().into()).expect("watch");
    // The first pull hands out a cursor, the second brings the server's entity.
    settle(db.sync()).await.expect("first sync");
    settle(db.sync()).await.expect("second sync");
    JsFuture::from(log.count(2)).await.expect("the watch hears the pulled entity");
    assert_eq!((log.ids(0), log.ids(1), log.results().length()), (String::new(), "s1".to_owned(), 2));
    settle(db.close()).await.unwrap();
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

/// Two `db.sync()` calls at once in a context that does not sync on its own
/// (`auto: false`, as in a service worker) take turns under the sync lock:
/// the second is not handed to another context (none holds the lock) and both
/// resolve with a report.
pub async fn syncs_called_at_once_without_auto_sync_take_turns() {
    let name = unique("two-syncs");
    let options = handler_sync_options(&name, INTERVAL_MS, DEBOUNCE_MS);
    Reflect::set(&field(&options, "sync"), &"auto".into(), &false.into()).unwrap();
    let db = Tideway::open(options).await.expect("open with sync");
    settle(db.collection("notes".into()).unwrap().put(js(r#"{"title": "a"}"#), js(r#"{"id": "a"}"#))).await.expect("put");
    let (first, second) = (db.sync(), db.sync());
    let first = settle(first).await.expect("the first sync");
    let second = settle(second).await.expect("the second sync, not handed to a context that is not there");
    assert_eq!(field(&first, "pushed").as_f64(), Some(1.0), "the first pushed the write");
    assert_eq!(field(&second, "pushed").as_f64(), Some(0.0), "the second found nothing left to push");
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Where the browser refuses IndexedDB, `open` keeps the database in memory and
/// says so in `status().storage`: it reads, writes, pushes and pulls as usual.
pub async fn a_database_is_kept_in_memory_where_indexeddb_is_refused() {
    let name = unique("refused");
    let db = open(&name).await;
    assert_eq!(field(&db.status(), "storage").as_string().as_deref(), Some("indexeddb"));
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.clone().into()).await.expect("delete the database");

    let options = handler_sync_options(&name, INTERVAL_MS, DEBOUNCE_MS);
    Reflect::set(&field(&options, "sync"), &"auto".into(), &false.into()).unwrap();
    let restore = refuse_indexed_db();
    // The store alone says what happened (the library under it reports "Version cannot be zero").
    let refused = tideway::store::indexeddb::IdbStore::open(&name, super::notes_schema()).await.err().map(|error| error.to_string());
    let opened = Tideway::open(options).await;
    restore.call0(&JsValue::NULL).unwrap();
    assert!(refused.as_deref().is_some_and(|message| message.contains("the browser refused to open an IndexedDB database")), "{refused:?}");
    let db = opened.expect("open where IndexedDB is refused");
    assert_eq!(field(&db.status(), "storage").as_string().as_deref(), Some("memory"));
    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "kept in memory"}"#), js(r#"{"id": "m1"}"#))).await.expect("put");
    assert_eq!(field(&notes.get("m1".into(), JsValue::UNDEFINED).unwrap(), "data.title").as_string().as_deref(), Some("kept in memory"));
    assert_eq!(field(&db.status(), "pending").as_f64(), Some(1.0));
    let first = settle(db.sync()).await.expect("first sync");
    assert_eq!(field(&first, "pushed").as_f64(), Some(1.0), "the write was pushed");
    settle(db.sync()).await.expect("second sync");
    assert!(!notes.get("s1".into(), JsValue::UNDEFINED).unwrap().is_undefined(), "the server's entity was pulled");
    assert_eq!(field(&db.status(), "pending").as_f64(), Some(0.0));
    settle(db.close()).await.expect("close");
    assert_eq!(code(&settle(db.pending_count()).await.unwrap_err()), "DATABASE_CLOSED");
}
