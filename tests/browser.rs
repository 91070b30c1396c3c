//! The conformance suite and the JS API, on IndexedDB in a browser page.
#![cfg(target_arch = "wasm32")]

mod browser_common;
mod conformance;

use browser_common::IdbHarness;
use tideway::store::indexeddb::IdbStore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

conformance_tests!(wasm: IdbHarness);

#[wasm_bindgen_test]
fn runs_in_a_page() {
    browser_common::assert_global_scope("Window");
}

#[wasm_bindgen_test]
async fn upgrade_from_another_connection_closes_this_one() {
    browser_common::upgrade_from_another_connection_closes_this_one().await;
}

#[wasm_bindgen_test]
async fn js_api_round_trip() {
    browser_common::js_api_round_trip().await;
}

#[wasm_bindgen_test]
async fn js_api_bad_arguments_give_typed_errors() {
    browser_common::js_api_bad_arguments_give_typed_errors().await;
}

/// `bulkPut` answers with the same frozen records `get` gives, in the order given,
/// in an array of its own that the caller may change.
#[wasm_bindgen_test]
async fn bulk_put_answers_the_records_get_gives() {
    let name = format!("bulk-put-records-{}", uuid::Uuid::new_v4());
    let options = js_sys::JSON::parse(&format!(r#"{{"name": "{name}", "collections": {{"notes": {{}}}}}}"#)).unwrap();
    let db = tideway::js::Tideway::open(options).await.expect("open");
    let notes = db.collection("notes".into()).unwrap();
    let entries = js_sys::JSON::parse(
        r#"[{"id": "b", "data": {"title": "second", "tags": ["x", {"deep": [1]}]}}, {"id": "a", "data": {}}, {"data": {"n": 2.5}}]"#,
    )
    .unwrap();
    let records: js_sys::Array = JsFuture::from(notes.bulk_put(entries)).await.expect("bulkPut").unchecked_into();
    assert_eq!(records.length(), 3);
    assert!(!js_sys::Object::is_frozen(&records), "the array is the caller's");
    let frozen = |value: &JsValue| js_sys::Object::is_frozen(value.unchecked_ref::<js_sys::Object>());
    for record in records.iter() {
        let id = js_sys::Reflect::get(&record, &"id".into()).unwrap();
        let got = notes.get(id.clone(), JsValue::UNDEFINED).unwrap();
        let json = |value: &JsValue| js_sys::JSON::stringify(value).unwrap().as_string().unwrap();
        assert_eq!(json(&record), json(&got), "{id:?}");
        assert!(frozen(&record), "{id:?}");
    }
    let first = records.get(0);
    assert_eq!(js_sys::Reflect::get(&first, &"id".into()).unwrap().as_string().as_deref(), Some("b"));
    let tags = js_sys::Reflect::get(&js_sys::Reflect::get(&first, &"data".into()).unwrap(), &"tags".into()).unwrap();
    let deep = js_sys::Reflect::get(&js_sys::Array::from(&tags).get(1), &"deep".into()).unwrap();
    assert!(frozen(&tags) && frozen(&deep), "records are frozen all the way down");
    JsFuture::from(db.close()).await.expect("close");
    IdbStore::delete(&name).await.expect("delete the database");
}
