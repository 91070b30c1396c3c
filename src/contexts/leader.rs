//! One syncer per database, elected with the Web Locks API.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::browser::{self, HeldLock};

/// A place in the queue for a database's sync lock, then the lock itself.
/// Dropping it leaves the queue, or releases the lock.
pub struct Leadership {
    held: HeldLock,
    // Kept alive until the lock is granted (or the queue left).
    _acquired: Closure<dyn FnMut()>,
}

impl Leadership {
    /// Takes the lock `name` if it is free, else queues for it; `acquired`
    /// runs once this context holds it. `None` where Web Locks are missing.
    pub fn request(name: &str, acquired: impl FnOnce() + 'static) -> Option<Leadership> {
        let mut acquired = Some(acquired);
        let acquired = Closure::<dyn FnMut()>::new(move || {
            if let Some(acquired) = acquired.take() {
                acquired();
            }
        });
        let held = browser::hold_lock(name, acquired.as_ref().unchecked_ref())?;
        Some(Leadership { held, _acquired: acquired })
    }
}

impl Leadership {
    /// Resolves once it is known whether the lock was free: then `acquired`
    /// has run already; otherwise another context holds it.
    pub async fn decided(&self) -> bool {
        JsFuture::from(self.held.decided()).await.ok().and_then(|taken| taken.as_bool()).unwrap_or(false)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.held.release();
    }
}

/// Runs `task` while holding the lock `name` if no other context holds it.
/// `Ok(None)`: another context holds it. Without Web Locks the task runs.
pub async fn run_if_free(name: &str, task: js_sys::Function) -> Result<Option<JsValue>, JsValue> {
    let outcome = JsFuture::from(browser::with_lock_if_free(name, &task)).await?;
    let ran = js_sys::Reflect::get(&outcome, &"ran".into())?.as_bool().unwrap_or(false);
    Ok(if ran { Some(js_sys::Reflect::get(&outcome, &"value".into())?) } else { None })
}

/// `task` waiting in the queue of the lock `name`, behind the contexts queued
/// before this one: resolves with what it resolved with, once it ran under the
/// lock. Dropping it leaves the queue. Never resolves where Web Locks are missing.
pub struct RunOnceFree {
    queued: browser::QueuedTask,
    done: JsFuture,
}

impl RunOnceFree {
    pub fn queue(name: &str, task: &js_sys::Function) -> RunOnceFree {
        let queued = browser::with_lock_once_free(name, task);
        let done = JsFuture::from(queued.done());
        RunOnceFree { queued, done }
    }
}

impl Future for RunOnceFree {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.done).poll(cx)
    }
}

impl Drop for RunOnceFree {
    fn drop(&mut self) {
        self.queued.cancel();
    }
}
