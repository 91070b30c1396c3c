//! Sync: push the outbox, then pull the server's changes, settling each answer
//! in the same transaction that records it.
//!
//! * [`settle`]: what one server answer does to an entity and the outbox (pure).
//! * [`merge`]: the three-way, field-by-field merge.
//! * [`remote`]: the server as the engine sees it, and the classification of failures.
//! * [`backoff`]: when to try again.
//! * [`engine`]: the push-then-pull state machine over a repository and a remote.

mod backoff;
mod engine;
mod merge;
mod remote;
mod settle;

// The engine's tests run natively; the browser suites test it against the real server.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod fake;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use std::collections::HashMap;

pub use backoff::Backoff;
pub use engine::{Counters, Step, SyncConfig, SyncEngine, SyncError, SyncEvent, SyncReport, SyncState};
pub use merge::{three_way, Side};
pub use remote::{ErrorClass, Remote, RemoteError};
pub use settle::{settle, ConflictPolicy, ConflictSides, Outcome, Resolution, Resolver, ServerAnswer, Settlement};

use super::entity::Entity;

/// The conflict policy of each collection; collections not named use the default.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub default: ConflictPolicy,
    pub collections: HashMap<String, ConflictPolicy>,
}

impl Policies {
    pub fn of(&self, collection: &str) -> &ConflictPolicy {
        self.collections.get(collection).unwrap_or(&self.default)
    }
}

/// One recorded answer, as the store reports it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub collection: String,
    pub id: String,
    /// The entity as now stored, when the answer changed it.
    pub entity: Option<Entity>,
    pub outcome: Outcome,
}
