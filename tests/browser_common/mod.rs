//! What the page and service-worker suites share: the IndexedDB harness for
//! the conformance suite, and checks of the JS API as JS calls it.

#![allow(dead_code)]

use js_sys::{Function, Promise, Reflect};
use tideway::core::{Data, Error, Op, Schema, Store, Write};
use tideway::js::{Collection, Tideway};
use tideway::store::indexeddb::IdbStore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

pub struct IdbHarness;

impl crate::conformance::Harness for IdbHarness {
    type Store = IdbStore;

    async fn open(&self, name: &str, schema: Schema) -> IdbStore {
        IdbStore::open(name, schema).await.expect("open IndexedDB")
    }

    fn fail_next_apply(store: &IdbStore) {
        store.fail_next_apply();
    }
}

/// Checks that the suite runs in the global scope it was configured for (`"Window"`,
/// `"ServiceWorkerGlobalScope"`): a runner that quietly ran it elsewhere would
/// leave that context untested.
pub fn assert_global_scope(expected: &str) {
    let check = format!("typeof {expected} === 'function' && globalThis instanceof {expected}");
    let inside = js_sys::eval(&check).expect("evaluate the scope check").as_bool();
    let actual = js_sys::eval("Object.prototype.toString.call(globalThis)").ok().and_then(|v| v.as_string());
    assert_eq!(inside, Some(true), "expected to run in a {expected}, running in {actual:?}");
}

/// A schema upgrade from another connection (another tab, in real life) is not
/// blocked by this one: every engine fires `versionchange` here, the store closes
/// its connection, and its later calls say why with `DatabaseClosed`.
pub async fn upgrade_from_another_connection_closes_this_one() {
    let name = format!("upgrade-elsewhere-{}", uuid::Uuid::new_v4());
    let old = Schema::new([("notes", vec!["title"])]).unwrap();
    let first = IdbStore::open(&name, old).await.expect("open");
    let put = Write { collection: "notes".into(), id: "a".into(), op: Op::Put, data: Some(Data::new()), at: 1.0 };
    first.apply(&[put]).await.expect("write before the upgrade");

    let new = Schema::new([("notes", vec!["title", "rank"])]).unwrap();
    let second = IdbStore::open(&name, new).await.expect("the upgrade goes through while the first connection is open");
    match first.pending_count().await {
        Err(Error::DatabaseClosed(reason)) => assert!(reason.contains("upgraded"), "{reason}"),
        other => panic!("expected DatabaseClosed, got {other:?}"),
    }
    assert!(second.get("notes", "a").await.unwrap().is_some(), "the data is kept");
    assert_eq!(second.pending_count().await.unwrap(), 1);
    second.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

fn js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON parses")
}

async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

fn code(error: &JsValue) -> String {
    assert_eq!(Reflect::get(error, &"name".into()).unwrap().as_string().as_deref(), Some("TidewayError"), "{error:?}");
    Reflect::get(error, &"code".into()).unwrap().as_string().unwrap_or_default()
}

fn field(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, key| Reflect::get(&v, &key.into()).unwrap_or(JsValue::UNDEFINED))
}

async fn open(name: &str) -> Tideway {
    let options = js(&format!(r#"{{"name": "{name}", "collections": {{"notes": {{"indexes": ["updatedAt", "title"]}}}}}}"#));
    Tideway::open(options).await.expect("open")
}

pub async fn js_api_round_trip() {
    let name = format!("js-api-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes: Collection = db.collection("notes".into()).unwrap();

    let pending = notes.put(js(r#"{"title": "first", "tags": ["a"]}"#), js(r#"{"id": "n1"}"#));
    let record = notes.get("n1".into(), JsValue::UNDEFINED).unwrap();
    assert_eq!(field(&record, "data.title").as_string().as_deref(), Some("first"), "visible before the promise settles");
    assert_eq!(field(&record, "meta.syncStatus").as_string().as_deref(), Some("dirty"));
    assert_eq!(field(&record, "meta.version").as_f64(), Some(0.0));
    assert!(js_sys::Object::is_frozen(record.unchecked_ref::<js_sys::Object>()), "records are frozen");
    assert!(js_sys::Object::is_frozen(field(&record, "data").unchecked_ref::<js_sys::Object>()), "deeply");
    settle(pending).await.expect("durable");

    let heard = js_sys::Array::new();
    let sink = heard.clone();
    let callback = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |changes: JsValue| {
        sink.push(&changes);
    });
    let unsubscribe: Function = notes.subscribe(callback.as_ref().clone()).unwrap();
    settle(notes.patch("n1".into(), js(r#"{"title": "second", "tags": null}"#))).await.expect("patch");
    assert_eq!(heard.length(), 1);
    let change = Reflect::get(&heard.get(0), &0.into()).unwrap();
    assert_eq!(field(&change, "origin").as_string().as_deref(), Some("local"));
    assert_eq!(field(&change, "record.data.title").as_string().as_deref(), Some("second"));
    assert!(field(&change, "record.data.tags").is_undefined(), "null removes a field");
    unsubscribe.call0(&JsValue::NULL).unwrap();

    settle(notes.put(js(r#"{"title": "zzz"}"#), JsValue::UNDEFINED)).await.expect("generated id");
    let by_title = notes.query(js(r#"{"index": "title", "reverse": true, "limit": 1}"#)).unwrap();
    assert_eq!(field(&by_title.get(0), "data.title").as_string().as_deref(), Some("zzz"));
    assert_eq!(heard.length(), 1, "unsubscribed");

    settle(notes.delete("n1".into())).await.expect("delete");
    assert!(notes.get("n1".into(), JsValue::UNDEFINED).unwrap().is_undefined());
    let tombstone = notes.get("n1".into(), js(r#"{"includeDeleted": true}"#)).unwrap();
    assert_eq!(field(&tombstone, "meta.deleted").as_bool(), Some(true));
    assert_eq!(notes.all().unwrap().length(), 1);
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(4.0));
    settle(db.close()).await.unwrap();
    let closed = settle(notes.put(js("{}"), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(code(&closed), "DATABASE_CLOSED");

    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    assert_eq!(notes.all().unwrap().length(), 1, "persisted");
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(4.0));
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.clone().into()).await.expect("delete the database");
    let db = open(&name).await;
    assert_eq!(db.collection("notes".into()).unwrap().all().unwrap().length(), 0, "deleted");
    settle(db.close()).await.unwrap();
    drop(callback);
}

pub async fn js_api_bad_arguments_give_typed_errors() {
    for (options, expected) in [
        ("null", "INVALID_ARGUMENT"),
        (r#"{"collections": {}}"#, "INVALID_ARGUMENT"),
        (r#"{"name": "x", "collections": {}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"no tes": {}}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"notes": {"indexes": "title"}}}"#, "INVALID_ARGUMENT"),
        (r#"{"name": "x", "collections": {"notes": {"indexes": ["a..b"]}}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"notes": {}}, "extra": 1}"#, "INVALID_ARGUMENT"),
    ] {
        let error = Tideway::open(js(options)).await.err().unwrap_or_else(|| panic!("{options} should fail"));
        assert_eq!(code(&error), expected, "{options}");
    }

    let name = format!("js-errors-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    assert_eq!(code(&db.collection("nope".into()).err().unwrap()), "NOT_FOUND");
    assert_eq!(code(&db.collection(42.into()).err().unwrap()), "INVALID_ARGUMENT");
    let notes = db.collection("notes".into()).unwrap();

    let date = js_sys::eval("({ when: new Date() })").unwrap();
    let cyclic = js_sys::eval("(() => { const o = {}; o.self = o; return o; })()").unwrap();
    for (data, options) in [
        (JsValue::from_str("not an object"), JsValue::UNDEFINED),
        (js("[1, 2]"), JsValue::UNDEFINED),
        (JsValue::NULL, JsValue::UNDEFINED),
        (date, JsValue::UNDEFINED),
        (cyclic, JsValue::UNDEFINED),
        (js_sys::eval("({ n: NaN })").unwrap(), JsValue::UNDEFINED),
        (js_sys::eval("({ f() {} })").unwrap(), JsValue::UNDEFINED),
        (js("{}"), js(r#"{"id": "has space"}"#)),
        (js("{}"), js(r#"{"id": 7}"#)),
        (js("{}"), js(r#"{"idd": "x"}"#)),
    ] {
        let error = settle(notes.put(data.clone(), options)).await.unwrap_err();
        assert_eq!(code(&error), "INVALID_ARGUMENT", "{data:?}");
    }
    assert_eq!(code(&notes.get(42.into(), JsValue::UNDEFINED).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"revers": true}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"index": "title", "gte": true}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"index": "nope"}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"limit": -1}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&settle(notes.patch("missing".into(), js("{}"))).await.unwrap_err()), "NOT_FOUND");
    assert_eq!(code(&settle(notes.delete(JsValue::UNDEFINED)).await.unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&settle(notes.bulk_put(js(r#"[{"data": {}}, {"data": 5}]"#))).await.unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.subscribe(JsValue::from_str("nope")).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(notes.all().unwrap().length(), 0, "nothing was written by any refused call");
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(0.0));
    settle(db.close()).await.unwrap();
}
