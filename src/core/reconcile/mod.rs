//! Reconciling local entities with what the server says: the answers a sync
//! brings back, the conflict policies and the three-way merge that settle
//! them, and the plan that records a batch of answers. The `Store` contract
//! and the repository depend on this module; the sync engine produces its
//! inputs. Everything here is pure.
//!
//! * [`answer`]: server answers, and what recording each did.
//! * [`policy`]: how a collection settles a conflict.
//! * [`merge`]: the three-way, field-by-field merge.
//! * [`settle`]: what one answer does to an entity and the outbox.
//! * [`plan`]: what a batch of answers does, in order: the one rule both stores carry out.

mod answer;
mod merge;
mod plan;
mod policy;
mod settle;

pub use answer::{Outcome, Resolution, ServerAnswer, Settled};
pub use merge::{three_way, Merged, Side};
pub use plan::{plan, EntityKey, Reads, SettlementPlan, Stored};
pub use policy::{ConflictPolicy, ConflictSides, Policies, Resolver};
pub use settle::{settle, Settlement};
