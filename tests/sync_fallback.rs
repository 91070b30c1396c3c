//! Sync without Background Sync, in each engine: queued writes are pushed when
//! the database opens and when the network comes back. Firefox and WebKit have
//! no Background Sync, so these two triggers are what gets their writes out;
//! this suite runs on every engine against the reference server that
//! `scripts/test.sh` starts (its URL is `TIDEWAY_TEST_SERVER` at build time,
//! so the suite is built only with `--features server-tests`).
#![cfg(all(target_arch = "wasm32", feature = "server-tests"))]

use tideway::js::Tideway;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const SERVER: &str = env!("TIDEWAY_TEST_SERVER");
const TOKEN: &str = "engines-token";

#[wasm_bindgen(inline_js = r#"
export function syncOptions(name, url, token, auto) {
  return {
    name,
    collections: { notes: {} },
    sync: { url, getToken: () => token, auto, interval: 0, debounce: 10 },
  };
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
export function fire(event) { globalThis.dispatchEvent(new Event(event)); }
export { sleep };

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
    fn sync_options(name: &str, url: &str, token: &str, auto: bool) -> JsValue;
    fn eventually(condition: &js_sys::Function, ms: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = putNotes)]
    fn put_notes(db: &JsValue, ids: &js_sys::Array) -> js_sys::Promise;
    #[wasm_bindgen(js_name = pendingNow)]
    fn pending_now(db: &JsValue) -> f64;
    fn fire(event: &str);
    fn sleep(ms: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = serverIds)]
    fn server_ids(url: &str, token: &str) -> js_sys::Promise;
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

async fn open(name: &str, auto: bool) -> JsValue {
    let db = Tideway::open(sync_options(name, SERVER, TOKEN, auto)).await.expect("open with sync");
    JsValue::from(db)
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
    let condition = Closure::<dyn Fn() -> bool>::new(move || pending_now(&db) == 0.0);
    JsFuture::from(eventually(condition.as_ref().unchecked_ref(), ms)).await.ok().and_then(|v| v.as_bool()) == Some(true)
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
