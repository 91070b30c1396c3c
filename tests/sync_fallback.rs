//! Sync without Background Sync, in each engine: queued writes are pushed when
//! the database opens and when the network comes back, a write is pushed shortly
//! after it is made, and other devices' changes arrive on the interval and when the
//! page becomes visible. Firefox and WebKit have no Background Sync, so these
//! triggers are what moves their data; this suite runs on every engine against the
//! reference server that `scripts/test.sh` starts (its URL is `TIDEWAY_TEST_SERVER`
//! at build time, so the suite is built only with `--features server-tests`).
//! Each trigger has a test in which nothing else could have started the sync.
//! Being on every engine, the suite also checks that each compresses large pushes.
#![cfg(all(target_arch = "wasm32", feature = "server-tests"))]

mod sync_common;

use sync_common::PushEncodings;
use tideway::js::Tideway;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const SERVER: &str = env!("TIDEWAY_TEST_SERVER");
const TOKEN: &str = "engines-token";

#[wasm_bindgen(inline_js = r#"
/** `interval` 0 turns the interval off; a negative `debounce` leaves the default. */
export function syncOptions(name, url, token, auto, interval, debounce) {
  const sync = { url, getToken: () => token, auto, interval };
  if (debounce >= 0) sync.debounce = debounce;
  return { name, collections: { notes: {} }, sync };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 50 ms for up to `ms`; resolves with whether it came true. */
export async function eventually(condition, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    if (condition()) return true;
  }
  return condition();
}

export async function putNotes(db, ids) {
  for (const id of ids) await db.collection("notes").put({ title: id }, { id });
}

export function pendingNow(db) { return db.status().pending; }
export function syncedOnce(db) { return db.status().lastSyncAt !== null && !db.status().syncing; }
export function hasNote(db, id) { return db.collection("notes").get(id) !== undefined; }
export function fire(event) { globalThis.dispatchEvent(new Event(event)); }
export function fireOnDocument(event) { document.dispatchEvent(new Event(event)); }
export function visibility() { return document.visibilityState; }
export { sleep };

/** Another device writes a note straight to the server (the REST API). */
export async function putOnServer(url, token, id) {
  const response = await fetch(`${url}/v1/collections/notes/${encodeURIComponent(id)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "from another device" }),
  });
  if (response.status !== 201) throw new Error(`PUT ${id} answered ${response.status}`);
}

/** Every `status` event `db` emits from now on, in order. */
export function watchStatus(db) {
  const events = [];
  db.on("status", (status) => events.push(status));
  return events;
}

/**
 * What is wrong with the status events of a sync that pushed a write made at
 * `writtenAt`, against docs/sync.md: each event carries every documented field with
 * its type; one shows the sync under way with the write pending; the last shows it
 * done, nothing pending, no error and no retry.
 */
export function statusEventProblems(events, writtenAt) {
  const problems = [];
  const nullable = (type) => (value) => value === null || typeof value === type;
  const fields = {
    online: (v) => typeof v === "boolean",
    reachable: nullable("boolean"),
    syncing: (v) => typeof v === "boolean",
    pending: (v) => typeof v === "number",
    failed: (v) => typeof v === "number",
    conflicts: (v) => typeof v === "number",
    lastSyncAt: nullable("number"),
    lastError: nullable("string"),
    nextRetryAt: nullable("number"),
    counters: (v) => typeof v === "object" && v !== null,
    storage: (v) => v === "indexeddb",
  };
  const counters = ["pushed", "pulled", "merged", "conflicted", "retried", "failed"];
  events.forEach((event, i) => {
    for (const [field, valid] of Object.entries(fields)) {
      if (!(field in event) || !valid(event[field])) problems.push(`event ${i}: ${field} is ${JSON.stringify(event[field])}`);
    }
    for (const counter of counters) {
      if (typeof event.counters?.[counter] !== "number") problems.push(`event ${i}: counters.${counter} is ${event.counters?.[counter]}`);
    }
  });
  if (!events.some((e) => e.syncing && e.pending >= 1)) problems.push("no event showed the sync under way with the write pending");
  const last = events.at(-1);
  if (!last) problems.push("no status event at all");
  else {
    if (last.syncing || last.pending !== 0) problems.push(`the last event is not a finished sync: ${JSON.stringify(last)}`);
    if (!(last.lastSyncAt >= writtenAt)) problems.push(`lastSyncAt ${last.lastSyncAt} is before the write (${writtenAt})`);
    if (last.lastError !== null || last.nextRetryAt !== null) problems.push(`the last event shows a failure: ${JSON.stringify(last)}`);
    if (!(last.counters?.pushed >= 1)) problems.push(`counters.pushed is ${last.counters?.pushed}`);
    if (last.online !== true || last.reachable !== true) problems.push(`online ${last.online}, reachable ${last.reachable}`);
  }
  return problems;
}

export function syncNow(db) { return db.sync(); }

/** The ids the server holds under `notes` for this token. */
export async function serverIds(url, token) {
  const ids = [];
  let cursor = "";
  for (;;) {
    const response = await fetch(`${url}/v1/pull?limit=1000&cursor=${encodeURIComponent(cursor)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const page = await response.json();
    ids.push(...page.changes.filter((c) => c.collection === "notes").map((c) => c.id));
    cursor = page.cursor;
    if (!page.hasMore) return ids;
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = syncOptions)]
    fn sync_options(name: &str, url: &str, token: &str, auto: bool, interval: f64, debounce: f64) -> JsValue;
    fn eventually(condition: &js_sys::Function, ms: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = putNotes)]
    fn put_notes(db: &JsValue, ids: &js_sys::Array) -> js_sys::Promise;
    #[wasm_bindgen(js_name = pendingNow)]
    fn pending_now(db: &JsValue) -> f64;
    #[wasm_bindgen(js_name = syncedOnce)]
    fn synced_once(db: &JsValue) -> bool;
    #[wasm_bindgen(js_name = hasNote)]
    fn has_note(db: &JsValue, id: &str) -> bool;
    fn fire(event: &str);
    #[wasm_bindgen(js_name = fireOnDocument)]
    fn fire_on_document(event: &str);
    fn visibility() -> String;
    fn sleep(ms: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = putOnServer)]
    fn put_on_server(url: &str, token: &str, id: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = watchStatus)]
    fn watch_status(db: &JsValue) -> js_sys::Array;
    #[wasm_bindgen(js_name = statusEventProblems)]
    fn status_event_problems(events: &js_sys::Array, written_at: f64) -> js_sys::Array;
    #[wasm_bindgen(js_name = syncNow)]
    fn sync_now(db: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(js_name = serverIds)]
    fn server_ids(url: &str, token: &str) -> js_sys::Promise;
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// `debounce` of the tests that do not watch it: short, so a test never waits on it.
const SHORT_DEBOUNCE_MS: f64 = 10.0;
/// Leaves `debounce` at its documented default.
const DEFAULT_DEBOUNCE: f64 = -1.0;
/// How long a test waits for a sync to show its effect.
const WAIT_MS: f64 = 10_000.0;

async fn open(name: &str, auto: bool) -> JsValue {
    open_with(name, auto, 0.0, SHORT_DEBOUNCE_MS).await
}

async fn open_with(name: &str, auto: bool, interval_ms: f64, debounce_ms: f64) -> JsValue {
    let options = sync_options(name, SERVER, TOKEN, auto, interval_ms, debounce_ms);
    let db = Tideway::open(options).await.expect("open with sync");
    JsValue::from(db)
}

/// Polls `condition` until it holds, for at most `ms`.
async fn until(ms: f64, condition: impl Fn() -> bool + 'static) -> bool {
    let condition = Closure::<dyn Fn() -> bool>::new(condition);
    JsFuture::from(eventually(condition.as_ref().unchecked_ref(), ms)).await.ok().and_then(|v| v.as_bool()) == Some(true)
}

/// Opens with automatic sync and waits until the sync on open is over, so that
/// whatever syncs next was started by something else.
async fn open_and_settle(name: &str, interval_ms: f64, debounce_ms: f64) -> JsValue {
    let db = open_with(name, true, interval_ms, debounce_ms).await;
    let settled = db.clone();
    assert!(until(WAIT_MS, move || synced_once(&settled)).await, "the sync on open did not finish");
    db
}

/// Another device's note, written to the server; resolves with its id.
async fn written_elsewhere(prefix: &str) -> String {
    let id = unique(prefix);
    JsFuture::from(put_on_server(SERVER, TOKEN, &id)).await.expect("write on the server as another device");
    id
}

async fn until_pulled(db: &JsValue, id: &str) -> bool {
    let (db, id) = (db.clone(), id.to_owned());
    until(WAIT_MS, move || has_note(&db, &id)).await
}

async fn on_server(ids: &[String]) -> bool {
    let held: Vec<String> = js_sys::Array::from(&JsFuture::from(server_ids(SERVER, TOKEN)).await.expect("pull from the server"))
        .iter()
        .filter_map(|id| id.as_string())
        .collect();
    ids.iter().all(|id| held.contains(id))
}

async fn until_nothing_pending(db: &JsValue, ms: f64) -> bool {
    let db = db.clone();
    until(ms, move || pending_now(&db) == 0.0).await
}

/// Waits for the status event that ends the sync: the outbox empties (the
/// answers are recorded) a moment before the engine reports the sync done.
async fn until_sync_reported(events: &js_sys::Array, ms: f64) -> bool {
    let events = events.clone();
    until(ms, move || {
        let last = events.get(events.length().saturating_sub(1));
        js_sys::Reflect::get(&last, &"syncing".into()).ok().and_then(|s| s.as_bool()) == Some(false)
    })
    .await
}

fn ids(prefix: &str, count: usize) -> (Vec<String>, js_sys::Array) {
    let ids: Vec<String> = (0..count).map(|_| unique(prefix)).collect();
    let array = ids.iter().map(|id| JsValue::from_str(id)).collect();
    (ids, array)
}

async fn close(db: &JsValue) {
    let close: js_sys::Function = js_sys::Reflect::get(db, &"close".into()).unwrap().unchecked_into();
    JsFuture::from(close.call0(db).unwrap().unchecked_into::<js_sys::Promise>()).await.expect("close");
}

#[wasm_bindgen_test]
async fn queued_writes_are_pushed_when_the_database_opens() {
    let name = unique("startup");
    let (written, array) = ids("startup", 3);
    let db = open(&name, false).await;
    JsFuture::from(put_notes(&db, &array)).await.expect("write");
    assert_eq!(pending_now(&db), 3.0);
    close(&db).await;
    assert!(!on_server(&written).await, "nothing is pushed without a sync");

    // A new page load: the outbox is pushed on open, with no other trigger.
    let db = open(&name, true).await;
    assert!(until_nothing_pending(&db, 10_000.0).await, "the outbox was not pushed on open");
    assert!(on_server(&written).await);
    close(&db).await;
}

#[wasm_bindgen_test]
async fn queued_writes_are_pushed_when_the_network_returns() {
    let db = open(&unique("online"), true).await;
    assert!(until_nothing_pending(&db, 10_000.0).await);
    fire("offline");
    let (written, array) = ids("online", 2);
    JsFuture::from(put_notes(&db, &array)).await.expect("write");
    // Offline, the writes wait (well past the 10 ms debounce).
    JsFuture::from(sleep(300.0)).await.unwrap();
    assert_eq!(pending_now(&db), 2.0, "no sync is attempted while offline");
    fire("online");
    assert!(until_nothing_pending(&db, 10_000.0).await, "the outbox was not pushed on `online`");
    assert!(on_server(&written).await);
    close(&db).await;
}

#[wasm_bindgen_test]
async fn a_write_is_pushed_shortly_after_it_is_made() {
    // No interval, no visibility change, no network change: only the write can
    // start this sync. The debounce is the documented default.
    let db = open_and_settle(&unique("debounce"), 0.0, DEFAULT_DEBOUNCE).await;
    let events = watch_status(&db);
    let (written, array) = ids("debounce", 1);
    let written_at = js_sys::Date::now();
    JsFuture::from(put_notes(&db, &array)).await.expect("write");
    assert!(until_nothing_pending(&db, WAIT_MS).await, "the write was not pushed shortly after it was made");
    assert!(on_server(&written).await);
    assert!(until_sync_reported(&events, WAIT_MS).await, "no status event reported the sync done");
    let problems: Vec<String> = status_event_problems(&events, written_at).iter().filter_map(|p| p.as_string()).collect();
    assert!(problems.is_empty(), "status events: {problems:?}");
    close(&db).await;
}

#[wasm_bindgen_test]
async fn another_devices_write_arrives_on_the_interval() {
    // Nothing is written here and nothing else happens to the page: only the
    // interval can pull the other device's note.
    let db = open_and_settle(&unique("interval"), 300.0, SHORT_DEBOUNCE_MS).await;
    let id = written_elsewhere("interval").await;
    assert!(until_pulled(&db, &id).await, "the interval did not pull another device's write");
    close(&db).await;
}

#[wasm_bindgen_test]
async fn another_devices_write_arrives_when_the_page_becomes_visible() {
    assert_eq!(visibility(), "visible", "this test needs a page the engine reports as visible");
    // No interval and nothing written here: only the page becoming visible can
    // pull the other device's note.
    let db = open_and_settle(&unique("visible"), 0.0, SHORT_DEBOUNCE_MS).await;
    let id = written_elsewhere("visible").await;
    fire_on_document("visibilitychange");
    assert!(until_pulled(&db, &id).await, "the page becoming visible did not sync");
    close(&db).await;
}

#[wasm_bindgen_test]
async fn large_pushes_go_gzipped_once_the_server_says_it_takes_them() {
    let watch = PushEncodings::watch();
    let db = open(&unique("gzip"), false).await;
    let (first, array) = ids("gzip", 1);
    JsFuture::from(put_notes(&db, &array)).await.expect("write");
    JsFuture::from(sync_now(&db)).await.expect("the first sync");
    // Forty notes make a push of about 5 KB, past the size below which pushes go plain.
    let (many, array) = ids("gzip", 40);
    JsFuture::from(put_notes(&db, &array)).await.expect("write");
    JsFuture::from(sync_now(&db)).await.expect("the second sync");
    let sent = watch.stop();
    // The first push goes before the server has said anything; the second after.
    assert_eq!(sent, [None, Some("gzip".to_owned())]);
    assert!(on_server(&[first, many].concat()).await, "the server holds every note");
    close(&db).await;
}
