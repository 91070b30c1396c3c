//! Sync from inside a real service worker, against the reference server that
//! `scripts/test.sh` starts (`TIDEWAY_TEST_SERVER` at build time, so the suite
//! is built only with `--features server-tests`): what the service-worker
//! entry point does on a Background Sync, with the same JS API a page uses.
#![cfg(all(target_arch = "wasm32", feature = "server-tests"))]

mod sync_common;

use js_sys::Reflect;
use sync_common::PushEncodings;
use tideway::js::Tideway;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_service_worker);

const SERVER: &str = env!("TIDEWAY_TEST_SERVER");
const TOKEN: &str = "engines-token";

#[wasm_bindgen(inline_js = r#"
export function workerOptions(name, url, token) {
  return { name, collections: { notes: {} }, sync: { url, getToken: () => token, auto: false } };
}

export function isServiceWorker() {
  return typeof ServiceWorkerGlobalScope === "function" && globalThis instanceof ServiceWorkerGlobalScope;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = workerOptions)]
    fn worker_options(name: &str, url: &str, token: &str) -> JsValue;
    #[wasm_bindgen(js_name = isServiceWorker)]
    fn is_service_worker() -> bool;
}

fn js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON parses")
}

fn number(value: &JsValue, field: &str) -> Option<f64> {
    Reflect::get(value, &field.into()).ok().and_then(|value| value.as_f64())
}

/// Writes queued in a service worker's database are pushed by one `db.sync()`
/// (no page holds the sync lock, so the worker takes it), and another
/// database in the worker, a new device, pulls them from the server.
#[wasm_bindgen_test]
async fn a_service_worker_pushes_and_pulls_with_the_reference_server() {
    assert!(is_service_worker(), "runs inside a service worker");
    let run = uuid::Uuid::new_v4();
    let ids: Vec<String> = (0..3).map(|i| format!("sw-{run}-{i}")).collect();

    let db = Tideway::open(worker_options(&format!("sw-push-{run}"), SERVER, TOKEN)).await.expect("open");
    let notes = db.collection("notes".into()).unwrap();
    for id in &ids {
        JsFuture::from(notes.put(js(&format!(r#"{{"title": "{id}"}}"#)), js(&format!(r#"{{"id": "{id}"}}"#)))).await.expect("put");
    }
    let report = JsFuture::from(db.sync()).await.expect("sync from the worker");
    assert_eq!(number(&report, "pushed"), Some(3.0), "{report:?}");
    assert_eq!(JsFuture::from(db.pending_count()).await.unwrap().as_f64(), Some(0.0));
    JsFuture::from(db.close()).await.unwrap();

    let other = Tideway::open(worker_options(&format!("sw-pull-{run}"), SERVER, TOKEN)).await.expect("open another");
    JsFuture::from(other.sync()).await.expect("pull");
    let pulled = other.collection("notes".into()).unwrap();
    for id in &ids {
        let record = pulled.get(id.as_str().into(), JsValue::UNDEFINED).unwrap();
        assert_eq!(Reflect::get(&record, &"id".into()).unwrap().as_string().as_deref(), Some(id.as_str()), "{id} pulled");
    }
    JsFuture::from(other.close()).await.unwrap();
    for name in [format!("sw-push-{run}"), format!("sw-pull-{run}")] {
        Tideway::delete_database(name.into()).await.expect("delete");
    }
}

/// A backlog written in a service worker (as one left by a page gone offline)
/// goes out gzipped from its first push: that push is large, so the worker asks
/// the server first whether it takes gzip.
#[wasm_bindgen_test]
async fn a_service_workers_backlog_is_pushed_gzipped() {
    let run = uuid::Uuid::new_v4();
    let name = format!("sw-gzip-{run}");
    let watch = PushEncodings::watch();
    let db = Tideway::open(worker_options(&name, SERVER, TOKEN)).await.expect("open");
    // 200 notes: a push of about 40 KB.
    let entries: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id": "sw-{run}-{i}", "data": {{"title": "note {i} of a backlog written while the network was gone"}}}}"#))
        .collect();
    let notes = db.collection("notes".into()).unwrap();
    JsFuture::from(notes.bulk_put(js(&format!("[{}]", entries.join(","))))).await.expect("bulkPut");
    let report = JsFuture::from(db.sync()).await.expect("sync from the worker");
    let sent = watch.stop();
    assert_eq!(number(&report, "pushed"), Some(200.0), "{report:?}");
    assert_eq!(sent, [Some("gzip".to_owned())]);
    JsFuture::from(db.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete");
}
