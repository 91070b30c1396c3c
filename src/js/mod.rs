//! The JS API: `#[wasm_bindgen]` bindings over the repository. Only argument
//! conversion and error translation live here; the behaviour is in `core`.
//! The TypeScript declarations are written by hand in `tideway.d.ts` so that
//! they can be exact (generic collections, literal unions).

mod collection;
mod convert;
mod database;
mod error;
mod events;
mod handles;
mod panic;
mod peers;
mod sync;

pub use collection::Collection;
#[doc(hidden)]
pub use convert::{data_from_js, data_walked, entries_as_json, entries_walked};
pub use database::Tideway;

#[wasm_bindgen::prelude::wasm_bindgen(typescript_custom_section)]
const TYPESCRIPT: &str = include_str!("tideway.d.ts");
