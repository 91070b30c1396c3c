//! A panic is a bug in Tideway. In wasm it stops the call where it happened
//! (a trap), and whatever that call was changing in memory may be half done,
//! so nothing after it can be trusted. The hook set here tells the package's
//! entry (`index.js`) what happened, with the panic's message and place,
//! before the trap: from then on every call, and every call still waiting,
//! fails with `INTERNAL_ERROR`. What was committed is in IndexedDB; a reload
//! opens the database again.

use std::cell::RefCell;
use std::sync::Once;

use js_sys::Function;
use wasm_bindgen::prelude::*;

#[cfg(feature = "fault-injection")]
use super::Tideway;

/// The stack trace of an Error made here, from which `index.js` learns how
/// the browser names this module's frames, to know a trap of this module's
/// among the page's uncaught errors.
#[wasm_bindgen(js_name = moduleStack, skip_typescript)]
pub fn module_stack() -> JsValue {
    js_sys::Reflect::get(&js_sys::Error::new("here"), &"stack".into()).unwrap_or_default()
}

thread_local! {
    static LISTENER: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Calls `listener(message)` when Tideway panics, just before the trap (one
/// listener: a later call replaces it).
#[wasm_bindgen(js_name = onPanic, skip_typescript)]
pub fn on_panic(listener: Function) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(report)));
    LISTENER.with(|current| *current.borrow_mut() = Some(listener));
}

fn report(info: &std::panic::PanicHookInfo<'_>) {
    let message = info.to_string();
    web_sys::console::error_1(&format!("Tideway: internal error: {message}").into());
    LISTENER.with(|listener| {
        if let Some(listener) = listener.try_borrow().ok().as_ref().and_then(|l| l.as_ref()) {
            let _ = listener.call1(&JsValue::NULL, &message.into());
        }
    });
}

/// Keeps the release of every Web Lock this module takes from now on in
/// `releases` (a `Set`) while the lock is held or waited for, for the
/// package's entry to call when the module stops: a stopped context can no
/// longer sync, and must not keep the other contexts from it.
#[wasm_bindgen(js_name = trackLocks, skip_typescript)]
pub fn track_locks(releases: js_sys::Set) {
    crate::browser::track_locks(&releases);
}

/// `Tideway.panicForTest(when)`: panics now (`"now"`), or in the Promise it
/// returns, as a sync or a write would (`"later"`). Only with the
/// `fault-injection` feature, for the tests of what a panic does.
#[cfg(feature = "fault-injection")]
#[wasm_bindgen]
impl Tideway {
    #[wasm_bindgen(js_name = panicForTest, skip_typescript)]
    pub fn panic_for_test(when: &str) -> js_sys::Promise {
        if when == "now" {
            panic!("a panic on purpose, for a test");
        }
        wasm_bindgen_futures::future_to_promise(async {
            gloo_timers::future::TimeoutFuture::new(0).await;
            panic!("a panic on purpose, for a test, in a future");
        })
    }

    /// `Tideway.trapForTest(when)`: as `panicForTest`, with a trap that calls
    /// no panic hook, the one that follows a failed allocation.
    #[wasm_bindgen(js_name = trapForTest, skip_typescript)]
    pub fn trap_for_test(when: &str) -> js_sys::Promise {
        fn out_of_memory() -> ! {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; 1 << 30]>())
        }
        if when == "now" {
            out_of_memory();
        }
        wasm_bindgen_futures::future_to_promise(async move {
            gloo_timers::future::TimeoutFuture::new(0).await;
            out_of_memory()
        })
    }
}
