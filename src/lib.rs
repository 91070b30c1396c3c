//! Tideway: an offline-first data runtime for web apps.
//!
//! Every read and write hits a local store at once; each change and its
//! outbox entry are written in one IndexedDB transaction; a sync engine pushes
//! and pulls in the background.
//!
//! * [`core`] — the entity model, outbox, queries and repository: pure Rust,
//!   tested natively.
//! * [`store`] — the [`core::Store`] implementations: memory and IndexedDB.
//! * `browser` — the JS half of the browser code, and the contract with it.
//! * `contexts` — several tabs and workers on one database: one syncer, mirrors that agree.
//! * [`core::sync`] — the sync engine, generic over a store and a remote.
//! * `remote` — the remotes a browser uses: HTTP, or the app's own functions.
//! * `js` — the `#[wasm_bindgen]` API a page or a service worker calls.

pub mod core;
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod contexts;

#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod remote;
