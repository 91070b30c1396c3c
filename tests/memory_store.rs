//! The conformance suite on the memory store, natively.
#![cfg(not(target_arch = "wasm32"))]

mod conformance;

use std::cell::RefCell;
use std::collections::HashMap;

use tideway::core::Schema;
use tideway::store::MemoryStore;

#[derive(Default)]
struct MemoryHarness {
    databases: RefCell<HashMap<String, MemoryStore>>,
}

impl conformance::Harness for MemoryHarness {
    type Store = MemoryStore;

    async fn open(&self, name: &str, schema: Schema) -> MemoryStore {
        let mut databases = self.databases.borrow_mut();
        match databases.get(name) {
            Some(existing) => existing.reopen(schema),
            None => databases.entry(name.to_owned()).or_insert_with(|| MemoryStore::new(schema)).clone(),
        }
    }

    fn fail_next_apply(store: &MemoryStore) {
        store.fail_next_apply();
    }

    const INJECTED_FAILURE: &'static str = "injected failure";
}

conformance_tests!(native: MemoryHarness::default());
