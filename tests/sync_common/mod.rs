//! What the wasm sync suites share (`sync_fallback`, `sync_service_worker`).

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
/**
 * Records the `Content-Encoding` of each push this context sends (null for a plain
 * body) until `stop()`. The sync's requests are `Request` objects given to `fetch`.
 */
export function watchPushEncodings() {
  const sent = [];
  const fetch = globalThis.fetch;
  globalThis.fetch = function (input, init) {
    if (input instanceof Request && new URL(input.url).pathname === "/v1/push") sent.push(input.headers.get("content-encoding"));
    return fetch.call(this, input, init);
  };
  return { sent, stop: () => { globalThis.fetch = fetch; } };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = watchPushEncodings)]
    fn watch_push_encodings() -> JsValue;
}

/// The pushes this context sends while it is watched, by their `Content-Encoding`.
pub struct PushEncodings(JsValue);

impl PushEncodings {
    pub fn watch() -> PushEncodings {
        PushEncodings(watch_push_encodings())
    }

    /// Stops watching: the encoding of each push sent meanwhile, `None` for a plain body.
    pub fn stop(self) -> Vec<Option<String>> {
        let field = |name: &str| Reflect::get(&self.0, &name.into()).expect("a field of the watch");
        let stop: Function = field("stop").unchecked_into();
        stop.call0(&self.0).expect("stop watching");
        Array::from(&field("sent")).iter().map(|encoding| encoding.as_string()).collect()
    }
}
