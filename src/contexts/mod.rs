//! Several tabs, workers and a service worker on one database. Each context
//! keeps its own mirror; they stay one database through two browser features:
//!
//! * [`Channel`] (BroadcastChannel): each durable commit is announced by the
//!   keys it stored; the other contexts read those entities back from
//!   IndexedDB into their mirrors, and the syncing context hears of writes to
//!   push. Sync requests, their answers and the syncer's status travel on it too.
//! * [`Leadership`] (Web Locks): the contexts that sync on their own queue for
//!   one lock per database; the holder is the one syncer, and when it goes
//!   away (tab closed, worker terminated) the browser hands the lock to the
//!   next in the queue.
//!
//! Where a feature is missing, each context does what it did alone: without
//! Web Locks every context syncs (the server's idempotency keeps a mutation
//! pushed twice from applying twice), without BroadcastChannel mirrors see
//! other contexts' commits when they next open.

mod channel;
mod leader;

pub use channel::{Channel, Message};
pub use leader::{run_if_free, Leadership, RunOnceFree};

/// The lock and channel names of the database `name`.
pub fn lock_name(name: &str) -> String {
    format!("tideway-sync:{name}")
}

/// The Background Sync tag a page registers for the database `name`, and the
/// one the service-worker entry point answers.
pub fn sync_tag(name: &str) -> String {
    format!("tideway-sync:{name}")
}
