//! The conformance suite and the JS API, on IndexedDB inside a real service worker.
#![cfg(target_arch = "wasm32")]

mod browser_common;
mod conformance;

use browser_common::IdbHarness;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_service_worker);

conformance_tests!(wasm: IdbHarness);

#[wasm_bindgen_test]
fn runs_inside_a_service_worker() {
    browser_common::assert_global_scope("ServiceWorkerGlobalScope");
}

browser_tests!();
