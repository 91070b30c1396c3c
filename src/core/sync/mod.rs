//! Sync: push the outbox, then pull the server's changes; the store records
//! each batch of answers in one transaction (the rule is in
//! [`crate::core::reconcile`]).
//!
//! * [`remote`]: the server as the engine sees it, and the classification of failures.
//! * [`backoff`]: when to try again.
//! * [`engine`]: the push-then-pull state machine over a repository and a remote.
//! * [`log`]: what the log entries say about each answer and conflict.

mod backoff;
mod engine;
mod full_pull;
mod log;
mod remote;

// The engine's tests run natively; the browser suites test it against the real server.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod fake;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

pub use backoff::Backoff;
pub use log::{AnswerStatus, ConflictOutcome};
pub use engine::{Counters, Step, SyncConfig, SyncEngine, SyncError, SyncEvent, SyncReport, SyncState};
pub use remote::{ErrorClass, MutationAnswer, PullPage, Push, PushAnswer, Remote, RemoteError, ServerChange};
