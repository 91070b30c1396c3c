//! What a server says about local entities (answers to a push, pulled
//! changes), and what recording one did, for events and counters.

use crate::core::sync::{MutationAnswer, ServerChange};

use crate::core::entity::Entity;
use crate::core::mutation::{Mutation, MutationId};

/// A server answer to record.
// Push and pull answers come by the thousand, each built once and recorded
// once: boxing the larger variant would cost an allocation per answer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ServerAnswer {
    /// The result of one pushed mutation.
    Pushed { mutation: Mutation, result: MutationAnswer },
    /// A push refused as a whole, blamed on this mutation: it can never apply.
    Refused { mutation: Mutation, error: String },
    /// A change pulled from the server, addressed to the local entity `id`.
    Pulled { id: String, change: ServerChange },
}

impl ServerAnswer {
    pub fn collection(&self) -> &str {
        match self {
            ServerAnswer::Pushed { mutation, .. } | ServerAnswer::Refused { mutation, .. } => &mutation.collection,
            ServerAnswer::Pulled { change, .. } => &change.collection,
        }
    }

    /// The outbox entry the answer is about, for answers to a push. A store
    /// records such an answer only while that entry is still in the outbox:
    /// a second syncer (another tab) may have recorded it already.
    pub fn mutation_id(&self) -> Option<MutationId> {
        match self {
            ServerAnswer::Pushed { mutation, .. } | ServerAnswer::Refused { mutation, .. } => Some(mutation.mutation_id),
            ServerAnswer::Pulled { .. } => None,
        }
    }

    /// The local id of the entity the answer is about.
    pub fn id(&self) -> &str {
        match self {
            ServerAnswer::Pushed { mutation, .. } | ServerAnswer::Refused { mutation, .. } => &mutation.id,
            ServerAnswer::Pulled { id, .. } => id,
        }
    }
}

/// What happened to the entity, for events and counters.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server acknowledged the mutation.
    Pushed,
    /// The mutation can never apply; the entity is marked `failed`.
    Failed(String),
    /// A pulled change was taken as is.
    Pulled,
    /// A pulled change was already known (or is the tombstone of an unknown entity).
    Unchanged,
    /// Both sides changed the entity; the policy settled it and named the winner.
    Resolved(Resolution),
    /// Both sides changed the entity; it waits in `conflict` for the app.
    Conflict,
    /// The push conflicted, but the server left its version's data out of the
    /// answer (the answer would have been too large): the mutation stays
    /// queued, and the pull brings that version, which settles the conflict.
    Withheld,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The server's version was kept as it is.
    Server,
    /// A new version (local or merged) was queued for the server.
    Queued,
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
