//! What one server answer does to an entity and the outbox, decided on the
//! entity as stored at that moment (like `apply_write` for local writes).
//! [`super::plan`] calls it once per answer of a batch.

use tideway_protocol::PushStatus;

use super::answer::{Outcome, Resolution, ServerAnswer};
use super::merge::{three_way, Side};
use super::policy::{ConflictPolicy, ConflictSides};
use crate::core::entity::{ConflictState, Data, DataText, Entity, SharedData, SyncStatus};
use crate::core::mutation::{Mutation, MutationId, Op};
use crate::core::sync::{MutationAnswer, ServerChange};

/// The writes that record one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The entity to store (`None`: leave it as it is).
    pub entity: Option<Entity>,
    /// The outbox entry the answer settles.
    pub remove: Option<MutationId>,
    /// Remove every other outbox entry of the entity: a conflict resolution
    /// supersedes them (their effect is in the entity's local data).
    pub drop_pending: bool,
    /// A new outbox entry (its id is assigned by the store).
    pub enqueue: Option<Mutation>,
    pub outcome: Outcome,
}

impl Settlement {
    fn unchanged(remove: Option<MutationId>) -> Self {
        Settlement { entity: None, remove, drop_pending: false, enqueue: None, outcome: Outcome::Unchanged }
    }
}

/// The server's side of an answer: its data as the JSON text it came in,
/// parsed only where a conflict looks into it.
struct ServerSide {
    data: SharedData,
    deleted: bool,
    version: u64,
    server_updated_at: Option<f64>,
    remote_id: Option<String>,
}

impl ServerSide {
    fn of(change: &ServerChange) -> Self {
        ServerSide {
            data: if change.deleted { SharedData::default() } else { change.data.clone().into() },
            deleted: change.deleted,
            version: change.version,
            server_updated_at: Some(change.server_updated_at as f64),
            remote_id: Some(change.id.clone()),
        }
    }
}

/// Records `answer` on `current` (the entity as stored), with the
/// collection's conflict `policy`; `now` dates a re-queued mutation.
pub fn settle(current: Option<&Entity>, answer: &ServerAnswer, policy: &ConflictPolicy, now: f64) -> Settlement {
    let collection = answer.collection();
    match answer {
        ServerAnswer::Pushed { mutation, result } => {
            let Some(entity) = current else {
                return Settlement::unchanged(Some(mutation.mutation_id));
            };
            match result.status {
                PushStatus::Applied => acknowledged(entity, mutation, result),
                PushStatus::Rejected => {
                    let error = result.error.as_ref().map_or_else(
                        || "rejected by the server".to_string(),
                        |e| format!("{}: {}", e.code, e.message),
                    );
                    failed(entity, mutation, error)
                }
                PushStatus::Conflict => {
                    let server = match (&result.current, result.version) {
                        (Some(change), _) => ServerSide::of(change),
                        // The entity exists at that version, its data left out.
                        (None, Some(version)) if version > 0 => {
                            return Settlement { outcome: Outcome::Withheld, ..Settlement::unchanged(None) };
                        }
                        // The server holds nothing at all under this id.
                        (None, _) => ServerSide {
                            data: SharedData::default(),
                            deleted: true,
                            version: result.version.unwrap_or(0),
                            server_updated_at: None,
                            remote_id: entity.remote_id.clone(),
                        },
                    };
                    let mut settlement = conflict(collection, entity, server, policy, now);
                    settlement.remove = Some(mutation.mutation_id);
                    settlement
                }
            }
        }
        ServerAnswer::Refused { mutation, error } => match current {
            Some(entity) => failed(entity, mutation, error.clone()),
            None => Settlement::unchanged(Some(mutation.mutation_id)),
        },
        ServerAnswer::Pulled { id, change } => pulled(collection, current, id, change, policy, now),
    }
}

fn acknowledged(entity: &Entity, mutation: &Mutation, result: &MutationAnswer) -> Settlement {
    let mut next = entity.clone();
    next.pending = next.pending.saturating_sub(1);
    if let Some(version) = result.version {
        next.version = version;
    }
    if let Some(at) = result.server_updated_at {
        next.server_updated_at = Some(at as f64);
    }
    if let Some(remote_id) = &result.remote_id {
        next.remote_id = Some(remote_id.clone());
    }
    // The server now holds the base with this mutation applied, exactly as
    // the protocol defines the operation.
    match mutation.op {
        Op::Put => match &mutation.data {
            Some(data) => next.set_base_to(data),
            None => next.set_base(Some(Data::new())),
        },
        Op::Patch => {
            let mut base = next.take_base().unwrap_or_default();
            if let Some(fields) = &mutation.data {
                tideway_protocol::apply_patch(&mut base, &fields.parse());
            }
            next.set_base(Some(base));
        }
        Op::Delete => next.set_base(Some(Data::new())),
    }
    if next.pending == 0 {
        next.sync_status = SyncStatus::Synced;
        next.last_error = None;
    } else {
        next.sync_status = SyncStatus::Dirty;
    }
    Settlement { entity: Some(next), remove: Some(mutation.mutation_id), drop_pending: false, enqueue: None, outcome: Outcome::Pushed }
}

fn failed(entity: &Entity, mutation: &Mutation, error: String) -> Settlement {
    let mut next = entity.clone();
    next.pending = next.pending.saturating_sub(1);
    next.sync_status = SyncStatus::Failed;
    next.last_error = Some(error.clone());
    Settlement {
        entity: Some(next),
        remove: Some(mutation.mutation_id),
        drop_pending: false,
        enqueue: None,
        outcome: Outcome::Failed(error),
    }
}

fn pulled(collection: &str, current: Option<&Entity>, id: &str, change: &ServerChange, policy: &ConflictPolicy, now: f64) -> Settlement {
    let server = ServerSide::of(change);
    match current {
        None if change.deleted => Settlement::unchanged(None),
        None => {
            let mut entity = Entity::new(id.to_string(), Data::new(), server.server_updated_at.unwrap_or(now));
            take_server(&mut entity, server);
            Settlement { entity: Some(entity), remove: None, drop_pending: false, enqueue: None, outcome: Outcome::Pulled }
        }
        Some(entity) if entity.version >= change.version => Settlement::unchanged(None),
        // Local changes the server has not seen: never overwrite them silently.
        Some(entity) if entity.pending > 0 || entity.conflict.is_some() => conflict(collection, entity, server, policy, now),
        Some(entity) => {
            let mut next = entity.clone();
            take_server(&mut next, server);
            Settlement { entity: Some(next), remove: None, drop_pending: false, enqueue: None, outcome: Outcome::Pulled }
        }
    }
}

/// Makes `entity` exactly the server's version, synced.
fn take_server(entity: &mut Entity, server: ServerSide) {
    entity.take_server_data(server.data);
    entity.deleted = server.deleted;
    on_server_version(entity, &server.version, server.server_updated_at, server.remote_id);
    entity.sync_status = SyncStatus::Synced;
    entity.last_error = None;
    entity.pending = 0;
    entity.conflict = None;
}

fn on_server_version(entity: &mut Entity, version: &u64, at: Option<f64>, remote_id: Option<String>) {
    entity.version = *version;
    if at.is_some() {
        entity.server_updated_at = at;
    }
    if remote_id.is_some() {
        entity.remote_id = remote_id;
    }
}

/// Settles an entity changed on both sides with `policy`. Whatever the
/// policy, the entity's unpushed mutations are superseded: the resolution
/// carries their effect (it starts from the entity's local data).
fn conflict(collection: &str, entity: &Entity, server: ServerSide, policy: &ConflictPolicy, now: f64) -> Settlement {
    let local = Side { data: entity.data(), deleted: entity.deleted };
    let server_side = Side { data: server.data.get(), deleted: server.deleted };
    // During a manual conflict the entity's base is already the server's data;
    // the base both sides started from is the one kept with the conflict.
    let base = match &entity.conflict {
        Some(state) => state.base.as_ref(),
        None => entity.base(),
    };
    let settled: Option<Option<Data>> = match policy {
        ConflictPolicy::ServerWins => None,
        ConflictPolicy::ClientWins => Some((!entity.deleted).then(|| entity.data().clone())),
        ConflictPolicy::Merge => Some(three_way(base, local, server_side)),
        ConflictPolicy::Manual => return manual(entity, server, base.cloned(), None),
        ConflictPolicy::Custom(resolve) => {
            let sides = ConflictSides {
                collection,
                id: &entity.id,
                local: (!entity.deleted).then_some(entity.data()),
                server: (!server.deleted).then_some(server.data.get()),
                base,
            };
            match resolve(&sides) {
                Ok(data) => Some(Some(data)),
                Err(error) => return manual(entity, server, base.cloned(), Some(error)),
            }
        }
    };
    let mut next = entity.clone();
    let resolved = match settled {
        Some(resolved) if !same_as_server(&resolved, &server) => resolved,
        // The server's version is the answer: take it, nothing to push.
        _ => {
            take_server(&mut next, server);
            return Settlement {
                entity: Some(next),
                remove: None,
                drop_pending: true,
                enqueue: None,
                outcome: Outcome::Resolved(Resolution::Server),
            };
        }
    };
    let op = if resolved.is_some() { Op::Put } else { Op::Delete };
    next.set_base(Some(server.data.clone()));
    on_server_version(&mut next, &server.version, server.server_updated_at, server.remote_id);
    next.deleted = resolved.is_none();
    if let Some(data) = &resolved {
        next.set_data(data.clone());
    }
    next.sync_status = SyncStatus::Dirty;
    next.pending = 1;
    next.conflict = None;
    next.last_error = None;
    let mutation = Mutation {
        mutation_id: 0,
        collection: collection.to_string(),
        id: entity.id.clone(),
        op,
        data: resolved.as_ref().map(DataText::of),
        base_version: next.version,
        created_at: now,
        attempts: 0,
        last_error: None,
    };
    Settlement {
        entity: Some(next),
        remove: None,
        drop_pending: true,
        enqueue: Some(mutation),
        outcome: Outcome::Resolved(Resolution::Queued),
    }
}

fn same_as_server(resolved: &Option<Data>, server: &ServerSide) -> bool {
    match resolved {
        None => server.deleted,
        Some(data) => !server.deleted && data == server.data.get(),
    }
}

/// Parks the entity in `conflict`: the local side stays what the app sees,
/// the server's side becomes its version and base, so that the app's next
/// write (its resolution) is made on top of the server's version.
fn manual(entity: &Entity, server: ServerSide, base: Option<Data>, error: Option<String>) -> Settlement {
    let mut next = entity.clone();
    next.conflict = Some(Box::new(ConflictState { base, server_deleted: server.deleted, local_deleted: entity.deleted }));
    next.set_base(Some(server.data));
    on_server_version(&mut next, &server.version, server.server_updated_at, server.remote_id);
    next.sync_status = SyncStatus::Conflict;
    next.pending = 0;
    next.last_error = error;
    Settlement { entity: Some(next), remove: None, drop_pending: true, enqueue: None, outcome: Outcome::Conflict }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn data(value: Value) -> Data {
        value.as_object().cloned().expect("an object")
    }

    fn entity_with(data_value: Value, base: Option<Value>, version: u64, updated_at: f64) -> Entity {
        let mut entity = Entity::new("n1".into(), data(data_value), updated_at);
        entity.set_base(base.map(data));
        entity.version = version;
        entity.pending = 1;
        entity
    }

    proptest! {
        /// A conflict resolves to the same data whatever the device clocks say.
        #[test]
        fn conflict_resolution_ignores_device_clocks(
            local_title in "[ab]", server_title in "[ab]", updated_at in 0.0f64..1e13, now in 0.0f64..1e13, server_at in 0i64..1_000_000
        ) {
            let base = json!({"title": "t", "body": "b"});
            let local = json!({"title": local_title, "body": "b"});
            let change = ServerChange {
                collection: "notes".into(),
                id: "n1".into(),
                data: DataText::of(&data(json!({"title": server_title, "body": "B"}))),
                version: 2,
                server_updated_at: server_at,
                deleted: false,
            };
            let answer = ServerAnswer::Pulled { id: "n1".into(), change };
            let early = settle(Some(&entity_with(local.clone(), Some(base.clone()), 1, 0.0)), &answer, &ConflictPolicy::Merge, 0.0);
            let late = settle(Some(&entity_with(local, Some(base), 1, updated_at)), &answer, &ConflictPolicy::Merge, now);
            prop_assert_eq!(early.entity.map(Entity::into_data), late.entity.map(Entity::into_data));
            prop_assert_eq!(early.enqueue.map(|m| m.data), late.enqueue.map(|m| m.data));
        }
    }
}
