//! Implementations of [`crate::core::Store`].

pub mod layout;
pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod indexeddb;

pub use memory::MemoryStore;
