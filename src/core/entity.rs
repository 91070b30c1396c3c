//! An entity: the app's JSON data plus the metadata that makes sync predictable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An entity's JSON object.
pub type Data = Map<String, Value>;

/// Where an entity stands with respect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Changed locally; the change waits in the outbox.
    Dirty,
    /// A push carrying the change is in flight.
    Syncing,
    /// The server acknowledged the latest local change.
    Synced,
    /// The server rejected the change permanently; see `last_error`.
    Failed,
    /// The server holds a different version; the conflict policy decides.
    Conflict,
}

/// One stored entity with its sync metadata.
///
/// `base` keeps the data the server last acknowledged, so that a later
/// three-way merge can tell which side changed which field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// Generated on the device (UUID v4) or given by the caller; never changes.
    pub id: String,
    /// The server's id for this entity, once a server has acknowledged it.
    // Absent fields read as `None`: a stored doc leaves them out, which keeps
    // docs small (less to store, load and parse) and reads docs that have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    pub data: Data,
    /// The server-acknowledged data, `None` until the first acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Data>,
    /// The server's version; 0 means the server has never seen the entity.
    pub version: u64,
    /// Device time (ms since the epoch) of the last local change.
    pub updated_at: f64,
    /// Server time (ms since the epoch) of the last acknowledged change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_updated_at: Option<f64>,
    pub sync_status: SyncStatus,
    /// A tombstone: deleted locally or on the server, kept so the delete syncs.
    #[serde(default)]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// How many of this entity's mutations wait in the outbox. The entity is
    /// `synced` only when the server has answered every one of them.
    #[serde(default)]
    pub pending: u32,
    /// Set while the entity is in `conflict` under the manual policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictState>,
}

/// What a manual conflict keeps for the app to decide with. The server's side
/// is in the entity itself: `base` holds the server's data and `version` its
/// version, so that settling the conflict is an ordinary write on top of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictState {
    /// The data both sides started from (the base before the conflict).
    pub base: Option<Data>,
    /// Whether the server's side is a delete.
    pub server_deleted: bool,
    /// Whether the local side is a delete.
    pub local_deleted: bool,
}

impl Entity {
    /// A brand-new, never-synced entity.
    pub fn new(id: String, data: Data, at: f64) -> Self {
        Entity {
            id,
            remote_id: None,
            data,
            base: None,
            version: 0,
            updated_at: at,
            server_updated_at: None,
            sync_status: SyncStatus::Dirty,
            deleted: false,
            last_error: None,
            pending: 0,
            conflict: None,
        }
    }

    /// A copy of this entity holding `data` instead of its own, which is not
    /// copied (a `put` replaces it anyway).
    pub fn with_data(&self, data: Data) -> Self {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data: _, base, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        Entity {
            id: id.clone(),
            remote_id: remote_id.clone(),
            data,
            base: base.clone(),
            version: *version,
            updated_at: *updated_at,
            server_updated_at: *server_updated_at,
            sync_status: *sync_status,
            deleted: *deleted,
            last_error: last_error.clone(),
            pending: *pending,
            conflict: conflict.clone(),
        }
    }

    /// Looks up a dotted path (`"author.name"`) inside `data`.
    pub fn data_at(&self, path: &[String]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.data.get(first)?, |value, key| value.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_docs_leave_out_empty_metadata_and_read_docs_that_have_it() {
        let entity = Entity::new("n1".into(), json!({"a": 1}).as_object().cloned().unwrap(), 5.0);
        let doc = serde_json::to_value(&entity).unwrap();
        for absent in ["remoteId", "base", "serverUpdatedAt", "lastError", "conflict"] {
            assert!(doc.get(absent).is_none(), "{absent} is left out: {doc}");
        }
        let spelled_out = json!({
            "id": "n1", "remoteId": null, "data": {"a": 1}, "base": null, "version": 0, "updatedAt": 5.0,
            "serverUpdatedAt": null, "syncStatus": "dirty", "deleted": false, "lastError": null, "pending": 0
        });
        assert_eq!(serde_json::from_value::<Entity>(spelled_out).unwrap(), entity);
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);
    }

    #[test]
    fn with_data_keeps_everything_but_the_data() {
        let mut entity = Entity::new("n1".into(), json!({"a": 1}).as_object().cloned().unwrap(), 5.0);
        entity.remote_id = Some("r1".into());
        entity.base = json!({"a": 0}).as_object().cloned();
        entity.version = 3;
        entity.server_updated_at = Some(4.0);
        entity.sync_status = SyncStatus::Conflict;
        entity.deleted = true;
        entity.last_error = Some("refused".into());
        entity.pending = 2;
        entity.conflict = Some(ConflictState { base: None, server_deleted: true, local_deleted: false });

        let data = json!({"b": 2}).as_object().cloned().unwrap();
        assert_eq!(entity.with_data(data.clone()), Entity { data, ..entity.clone() });
    }

    /// Stores keep entities as JSON text: every number must come back with
    /// every bit, including those whose shortest form needs 17 digits.
    #[test]
    fn numbers_survive_json_exactly() {
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let numbers: Vec<f64> = std::iter::from_fn(|| {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            Some(f64::from_bits(bits))
        })
        .filter(|n| n.is_finite())
        .take(2000)
        .chain([0.1 + 0.2, 532422178817.57916, f64::MAX, f64::MIN_POSITIVE, 5e-324])
        .collect();
        let entity = Entity::new("n1".into(), json!({ "numbers": numbers }).as_object().cloned().unwrap(), 1.0);
        let back: Entity = serde_json::from_str(&serde_json::to_string(&entity).unwrap()).unwrap();
        let read: Vec<f64> = back.data["numbers"].as_array().unwrap().iter().map(|n| n.as_f64().unwrap()).collect();
        for (written, read) in numbers.iter().zip(&read) {
            assert_eq!(written.to_bits(), read.to_bits(), "{written:e} came back as {read:e}");
        }
    }
}
