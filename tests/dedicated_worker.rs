//! The conformance suite and the JS API, on IndexedDB inside a real dedicated worker.
#![cfg(target_arch = "wasm32")]

mod browser_common;
mod conformance;

use browser_common::IdbHarness;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

conformance_tests!(wasm: IdbHarness);

#[wasm_bindgen_test]
fn runs_inside_a_dedicated_worker() {
    browser_common::assert_global_scope("DedicatedWorkerGlobalScope");
}

browser_tests!();
