//! Implementations of [`crate::core::Store`].

// Used by the IndexedDB store only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod appended;
pub mod layout;
pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod indexeddb;

pub use memory::MemoryStore;
