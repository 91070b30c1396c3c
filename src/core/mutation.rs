//! Local writes and the outbox entries they produce.
//!
//! A [`Write`] is what the app asked for; [`apply_write`] turns it, against the
//! entity as currently stored, into the new entity and the [`Mutation`] that
//! the outbox keeps until the server has acknowledged it. Both stores call the
//! same function inside their write transaction, and the repository's mirror
//! calls its entity step, [`written_entity`], so the rules live here once.

use serde::{Deserialize, Serialize};
use super::entity::{DataText, Entity, SharedData, SyncStatus};
use super::error::{Error, Result};
pub use tideway_protocol::Op;

/// Per-client, strictly increasing mutation number, assigned by the store in
/// the transaction that appends the mutation (IndexedDB's key generator), so
/// every tab and worker sharing the database draws from one sequence. A
/// committed number is never reused, even after its entry leaves the outbox.
pub type MutationId = u64;

/// A change the app asked for, not yet applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub collection: String,
    pub id: String,
    pub op: Op,
    /// Full data for `put`, the fields to change for `patch`, nothing for `delete`.
    pub data: Option<SharedData>,
    /// Device time of the call, ms since the epoch.
    pub at: f64,
}

/// An outbox entry: one local change waiting to be pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// 0 until the store assigns the real number on append.
    pub mutation_id: MutationId,
    pub collection: String,
    /// The entity's local id.
    pub id: String,
    pub op: Op,
    /// As JSON text: written once when the change is made, then stored,
    /// read back and pushed as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataText>,
    /// The server version the change was made on (0: the server has not seen the entity).
    pub base_version: u64,
    #[serde(serialize_with = "super::entity::whole_ms")]
    pub created_at: f64,
    /// How many pushes carrying this mutation failed without an answer (the
    /// network, the server, a refusal of the whole push); an answered one
    /// leaves the outbox or is settled as a conflict.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last of those pushes failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The result of applying a write to the stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub entity: Entity,
    pub mutation: Mutation,
}

/// Applies `write` to `current` (the stored entity, tombstones included):
/// the new entity ([`written_entity`]) and its outbox entry.
pub fn apply_write(current: Option<&Entity>, write: &Write) -> Result<Applied> {
    let entity = written_entity(current, write)?;
    let mutation = Mutation::of(write, entity.version);
    Ok(Applied { entity, mutation })
}

/// The entity `write` makes of `current` (the stored entity, tombstones
/// included), without the outbox entry: what the mirror shows of a write.
///
/// * `put` replaces the data, creating the entity or bringing a tombstone back.
/// * `patch` merges the given fields shallowly; a field set to `null` is removed.
/// * `delete` turns the entity into a tombstone (its data is kept, for undo
///   and for conflict resolution).
///
/// `patch` and `delete` of an entity that does not exist, or is deleted,
/// fail with `NOT_FOUND`.
pub fn written_entity(current: Option<&Entity>, write: &Write) -> Result<Entity> {
    // A tombstone in conflict can still be deleted: that settles the conflict.
    let live = current.filter(|entity| !entity.deleted || (write.op == Op::Delete && entity.conflict.is_some()));
    let not_found = || Error::NotFound(format!("no entity {:?} in collection {:?}", write.id, write.collection));

    let mut entity = match write.op {
        Op::Put => {
            // The data is replaced, so the current data is not copied first.
            let data = write.data.clone().unwrap_or_default();
            let mut entity = match current {
                None => Entity::new(write.id.clone(), data, write.at),
                Some(existing) => existing.with_data(data),
            };
            entity.deleted = false;
            entity
        }
        Op::Patch => {
            let mut entity = live.ok_or_else(not_found)?.clone();
            if let Some(fields) = &write.data {
                tideway_protocol::apply_patch(entity.data_mut(), fields.get());
            }
            entity
        }
        Op::Delete => {
            let mut entity = live.ok_or_else(not_found)?.clone();
            entity.deleted = true;
            entity
        }
    };
    entity.updated_at = write.at;
    entity.sync_status = SyncStatus::Dirty;
    entity.last_error = None;
    entity.pending += 1;
    // A write on a conflicted entity settles the conflict: it is made on top of
    // the server's side, which the entity's version and base already hold.
    entity.conflict = None;
    Ok(entity)
}

impl Mutation {
    /// The outbox entry of `write`, made on the entity's server version `base_version`.
    pub fn of(write: &Write, base_version: u64) -> Mutation {
        Mutation {
            mutation_id: 0,
            collection: write.collection.clone(),
            id: write.id.clone(),
            op: write.op,
            data: match write.op {
                Op::Delete => None,
                _ => write.data.as_ref().map(SharedData::to_text),
            },
            base_version,
            created_at: write.at,
            attempts: 0,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Data;
    use serde_json::{json, Value};

    fn data(value: Value) -> Data {
        value.as_object().cloned().unwrap()
    }

    fn text(value: Value) -> DataText {
        DataText::of(&data(value))
    }

    fn write(op: Op, value: Option<Value>, at: f64) -> Write {
        Write { collection: "notes".into(), id: "n1".into(), op, data: value.map(|value| data(value).into()), at }
    }

    #[test]
    fn put_creates_a_dirty_unsynced_entity() {
        let applied = apply_write(None, &write(Op::Put, Some(json!({"title": "a"})), 5.0)).unwrap();
        assert_eq!(applied.entity.version, 0);
        assert_eq!(applied.entity.sync_status, SyncStatus::Dirty);
        assert_eq!(applied.entity.updated_at, 5.0);
        assert_eq!(applied.mutation.base_version, 0);
        assert_eq!(applied.mutation.data, Some(text(json!({"title": "a"}))));
    }

    #[test]
    fn patch_merges_shallowly_and_null_removes() {
        let created = apply_write(None, &write(Op::Put, Some(json!({"a": 1, "b": {"x": 1}, "c": 3})), 1.0)).unwrap();
        let mut synced = created.entity;
        synced.version = 4;
        synced.sync_status = SyncStatus::Synced;
        let patched = apply_write(Some(&synced), &write(Op::Patch, Some(json!({"b": {"y": 2}, "c": null})), 2.0)).unwrap();
        assert_eq!(Value::Object(patched.entity.data().clone()), json!({"a": 1, "b": {"y": 2}}));
        assert_eq!(patched.mutation.base_version, 4);
        assert_eq!(patched.mutation.data, Some(text(json!({"b": {"y": 2}, "c": null}))));
        assert_eq!(patched.entity.sync_status, SyncStatus::Dirty);
    }

    #[test]
    fn patch_and_delete_need_a_live_entity() {
        assert!(matches!(apply_write(None, &write(Op::Patch, Some(json!({})), 1.0)), Err(Error::NotFound(_))));
        assert!(matches!(apply_write(None, &write(Op::Delete, None, 1.0)), Err(Error::NotFound(_))));
        let created = apply_write(None, &write(Op::Put, Some(json!({"a": 1})), 1.0)).unwrap().entity;
        let deleted = apply_write(Some(&created), &write(Op::Delete, None, 2.0)).unwrap();
        assert!(deleted.entity.deleted);
        assert_eq!(deleted.mutation.data, None);
        assert!(matches!(
            apply_write(Some(&deleted.entity), &write(Op::Patch, Some(json!({"a": 2})), 3.0)),
            Err(Error::NotFound(_))
        ));
        let revived = apply_write(Some(&deleted.entity), &write(Op::Put, Some(json!({"a": 3})), 4.0)).unwrap();
        assert!(!revived.entity.deleted);
    }

    /// Each op on an entity the server knows at version 3: the entity the
    /// mirror and the store get, and the outbox entry that goes with it (a
    /// patch queues only its fields, a delete no data; both are based on
    /// version 3).
    #[test]
    fn each_op_gives_its_entity_and_its_outbox_entry() {
        let mut synced = apply_write(None, &write(Op::Put, Some(json!({"a": 1, "b": 1})), 1.0)).unwrap().entity;
        synced.version = 3;
        synced.pending = 0;
        synced.sync_status = SyncStatus::Synced;

        let put = apply_write(Some(&synced), &write(Op::Put, Some(json!({"c": 3})), 2.0)).unwrap();
        assert_eq!(Value::Object(put.entity.data().clone()), json!({"c": 3}));
        assert_eq!((put.mutation.op, put.mutation.data.clone(), put.mutation.base_version), (Op::Put, Some(text(json!({"c": 3}))), 3));

        let patch = apply_write(Some(&synced), &write(Op::Patch, Some(json!({"a": null, "c": 3})), 2.0)).unwrap();
        assert_eq!(Value::Object(patch.entity.data().clone()), json!({"b": 1, "c": 3}));
        assert_eq!(patch.mutation.data, Some(text(json!({"a": null, "c": 3}))), "the patch, not the patched data");
        assert_eq!(patch.mutation.base_version, 3);

        let delete = apply_write(Some(&synced), &write(Op::Delete, None, 2.0)).unwrap();
        assert!(delete.entity.deleted);
        assert_eq!(Value::Object(delete.entity.data().clone()), json!({"a": 1, "b": 1}), "a tombstone keeps its data");
        assert_eq!((delete.mutation.op, delete.mutation.data.clone(), delete.mutation.base_version), (Op::Delete, None, 3));

        for applied in [&put, &patch, &delete] {
            let entity = &applied.entity;
            assert_eq!((entity.version, entity.pending, entity.sync_status, entity.updated_at), (3, 1, SyncStatus::Dirty, 2.0));
            assert_eq!(applied.mutation.created_at, 2.0);
        }
        assert!(matches!(apply_write(None, &write(Op::Patch, Some(json!({"a": 2})), 2.0)), Err(Error::NotFound(_))));
    }

    #[test]
    fn the_outbox_entry_carries_the_write_and_its_base_version() {
        let put = write(Op::Put, Some(json!({"a": 1})), 7.0);
        let mutation = Mutation::of(&put, 4);
        assert_eq!(
            mutation,
            Mutation {
                mutation_id: 0,
                collection: "notes".into(),
                id: "n1".into(),
                op: Op::Put,
                data: Some(text(json!({"a": 1}))),
                base_version: 4,
                created_at: 7.0,
                attempts: 0,
                last_error: None,
            }
        );
        assert_eq!(Mutation::of(&write(Op::Delete, Some(json!({"a": 1})), 7.0), 4).data, None, "a delete carries no data");
        let stored = serde_json::to_string(&mutation).unwrap();
        assert!(stored.contains(r#""createdAt":7,"#), "a whole time is stored as an integer: {stored}");
        assert_eq!(serde_json::from_str::<Mutation>(&stored).unwrap(), mutation);
    }

    #[test]
    fn put_keeps_sync_metadata() {
        let mut entity = apply_write(None, &write(Op::Put, Some(json!({"a": 1})), 1.0)).unwrap().entity;
        entity.version = 7;
        entity.remote_id = Some("r7".into());
        entity.set_base(Some(data(json!({"a": 1}))));
        let replaced = apply_write(Some(&entity), &write(Op::Put, Some(json!({"b": 2})), 2.0)).unwrap().entity;
        assert_eq!((replaced.version, replaced.remote_id.as_deref()), (7, Some("r7")));
        assert_eq!(replaced.base(), Some(&data(json!({"a": 1}))));
    }
}
