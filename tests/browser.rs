//! The conformance suite and the JS API, on IndexedDB in a browser page.
#![cfg(target_arch = "wasm32")]

mod browser_common;
mod conformance;

use browser_common::IdbHarness;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

conformance_tests!(wasm: IdbHarness);

#[wasm_bindgen_test]
fn runs_in_a_page() {
    browser_common::assert_global_scope("Window");
}

browser_tests!();

#[wasm_bindgen_test]
async fn a_page_catches_up_with_what_it_missed_when_it_comes_back() {
    browser_common::a_page_catches_up_with_what_it_missed_when_it_comes_back().await;
}
