//! An entity: the app's JSON data plus the metadata that makes sync predictable.

use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
/// three-way merge can tell which side changed which field. How an entity is
/// written as JSON (a stored doc) is `DocOut`'s and `DocIn`'s business.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Generated on the device (UUID v4) or given by the caller; never changes.
    pub id: String,
    /// The server's id for this entity, once a server has acknowledged it.
    pub remote_id: Option<String>,
    /// Changed through [`Entity::data_mut`] (or replaced whole) once the
    /// entity has a base: the base may be this very data.
    pub data: Data,
    /// The server-acknowledged data: see [`Entity::base`].
    base: Base,
    /// The server's version; 0 means the server has never seen the entity.
    pub version: u64,
    /// Device time (ms since the epoch) of the last local change.
    pub updated_at: f64,
    /// Server time (ms since the epoch) of the last acknowledged change.
    pub server_updated_at: Option<f64>,
    pub sync_status: SyncStatus,
    /// A tombstone: deleted locally or on the server, kept so the delete syncs.
    pub deleted: bool,
    pub last_error: Option<String>,
    /// How many of this entity's mutations wait in the outbox. The entity is
    /// `synced` only when the server has answered every one of them.
    pub pending: u32,
    /// Set while the entity is in `conflict` under the manual policy.
    pub conflict: Option<ConflictState>,
}

/// The data the server last acknowledged.
#[derive(Debug, Clone)]
enum Base {
    /// Not acknowledged yet.
    None,
    /// The entity's own data, without a copy: the base of every entity the
    /// server holds as this device does, most of a database.
    Data,
    Own(Data),
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
            base: Base::None,
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
    /// copied (a `put` replaces it anyway) unless it is the base.
    pub fn with_data(&self, data: Data) -> Self {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data: _, base: _, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        Entity {
            id: id.clone(),
            remote_id: remote_id.clone(),
            data,
            base: self.base().map_or(Base::None, |base| Base::Own(base.clone())),
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

    /// The data the server last acknowledged, `None` until the first
    /// acknowledgement.
    pub fn base(&self) -> Option<&Data> {
        match &self.base {
            Base::None => None,
            Base::Data => Some(&self.data),
            Base::Own(base) => Some(base),
        }
    }

    /// Gives the entity a base of its own (`None`: not acknowledged yet).
    pub fn set_base(&mut self, base: Option<Data>) {
        self.base = base.map_or(Base::None, Base::Own);
    }

    /// Makes `data` the entity's data and its base, without a copy: what the
    /// server holds, as the device now does.
    pub fn take_server_data(&mut self, data: Data) {
        self.data = data;
        self.base = Base::Data;
    }

    /// The data, to change in place; a base that is this data keeps it as it was.
    pub fn data_mut(&mut self) -> &mut Data {
        if let Base::Data = self.base {
            self.base = Base::Own(self.data.clone());
        }
        &mut self.data
    }

    /// Looks up a dotted path (`"author.name"`) inside `data`.
    pub fn data_at(&self, path: &[String]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.data.get(first)?, |value, key| value.get(key))
    }
}

/// An entity as a stored doc is written: its fields in camelCase, those
/// without a value left out (less to store, load and parse), and a `base`
/// equal to `data` left out too, `baseIsData: true` standing for it. That is
/// the base of every entity the server holds as this device does, most of a
/// database, whose docs it makes about a third shorter. (Storage format 1,
/// before that, always wrote the base; `DocIn` reads both.)
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DocOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_id: Option<&'a str>,
    data: &'a Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a Data>,
    #[serde(skip_serializing_if = "is_false")]
    base_is_data: bool,
    version: u64,
    updated_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_updated_at: Option<f64>,
    sync_status: SyncStatus,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    pending: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'a ConflictState>,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl Serialize for Entity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data, base, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        let (base, base_is_data) = match base {
            Base::None => (None, false),
            Base::Data => (None, true),
            // Equal, for an entity that took the server's answer as its own data.
            Base::Own(base) if base == data => (None, true),
            Base::Own(base) => (Some(base), false),
        };
        DocOut {
            id,
            remote_id: remote_id.as_deref(),
            data,
            base,
            base_is_data,
            version: *version,
            updated_at: *updated_at,
            server_updated_at: *server_updated_at,
            sync_status: *sync_status,
            deleted: *deleted,
            last_error: last_error.as_deref(),
            pending: *pending,
            conflict: conflict.as_ref(),
        }
        .serialize(serializer)
    }
}

/// A stored doc as read: what `DocOut` writes, and docs of storage format 1.
/// Absent fields read as their empty value, as `null` does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocIn {
    id: String,
    #[serde(default)]
    remote_id: Option<String>,
    data: Data,
    #[serde(default)]
    base: Option<Data>,
    #[serde(default)]
    base_is_data: bool,
    version: u64,
    updated_at: f64,
    #[serde(default)]
    server_updated_at: Option<f64>,
    sync_status: SyncStatus,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    pending: u32,
    #[serde(default)]
    conflict: Option<ConflictState>,
}

impl<'de> Deserialize<'de> for Entity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DocIn { id, remote_id, data, base, base_is_data, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            DocIn::deserialize(deserializer)?;
        let base = match (base, base_is_data) {
            (None, false) => Base::None,
            (Some(base), false) => Base::Own(base),
            (None, true) => Base::Data,
            (Some(_), true) => return Err(de::Error::custom("a doc has both `base` and `baseIsData`")),
        };
        Ok(Entity { id, remote_id, data, base, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict })
    }
}

/// Equal in every field, `base` compared by value. Data is compared field by
/// field first, which is cheaper in the usual case (both sides computed from
/// the same write, their fields in the same order) than comparing maps (which
/// looks each field up by hash).
impl PartialEq for Entity {
    fn eq(&self, other: &Entity) -> bool {
        fn same_data(a: &Data, b: &Data) -> bool {
            a.iter().eq(b.iter()) || a == b
        }
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data, base: _, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        *version == other.version
            && *updated_at == other.updated_at
            && *server_updated_at == other.server_updated_at
            && *sync_status == other.sync_status
            && *deleted == other.deleted
            && *pending == other.pending
            && *id == other.id
            && *remote_id == other.remote_id
            && *last_error == other.last_error
            && *conflict == other.conflict
            && same_data(data, &other.data)
            && match (&self.base, &other.base) {
                (Base::Data, Base::Data) => true,
                _ => match (self.base(), other.base()) {
                    (Some(a), Some(b)) => same_data(a, b),
                    (a, b) => a.is_none() && b.is_none(),
                },
            }
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
    fn a_base_equal_to_the_data_is_left_out_and_read_back_whole() {
        let data = json!({"title": "t", "n": 1.5, "nested": {"a": [1, 2]}}).as_object().cloned().unwrap();
        let mut entity = Entity::new("n1".into(), data.clone(), 5.0);
        entity.set_base(Some(data.clone()));
        let doc = serde_json::to_value(&entity).unwrap();
        assert_eq!((doc.get("base"), &doc["baseIsData"]), (None, &json!(true)), "{doc}");
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);

        // A base that differs is stored whole.
        entity.set_base(json!({"title": "before"}).as_object().cloned());
        let doc = serde_json::to_value(&entity).unwrap();
        assert_eq!((&doc["base"], doc.get("baseIsData")), (&json!({"title": "before"}), None));
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);
    }

    #[test]
    fn docs_of_storage_format_1_read_the_same() {
        // Format 1 wrote the base in full, equal to the data or not.
        let doc = json!({
            "id": "n1", "data": {"title": "t"}, "base": {"title": "t"}, "version": 2, "updatedAt": 5.0,
            "serverUpdatedAt": 7.0, "syncStatus": "synced", "deleted": false, "pending": 0
        });
        let entity: Entity = serde_json::from_value(doc).unwrap();
        assert_eq!(entity.base(), Some(&entity.data));
        assert_eq!(serde_json::to_value(&entity).unwrap()["baseIsData"], json!(true));
    }

    #[test]
    fn a_doc_with_both_a_base_and_base_is_data_is_unreadable() {
        let doc = json!({"id": "n1", "data": {}, "base": {}, "baseIsData": true, "version": 0, "updatedAt": 5.0, "syncStatus": "dirty"});
        let error = serde_json::from_value::<Entity>(doc).unwrap_err().to_string();
        assert!(error.contains("both `base` and `baseIsData`"), "{error}");
    }

    #[test]
    fn with_data_keeps_everything_but_the_data() {
        let mut entity = Entity::new("n1".into(), json!({"a": 1}).as_object().cloned().unwrap(), 5.0);
        entity.remote_id = Some("r1".into());
        entity.set_base(json!({"a": 0}).as_object().cloned());
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
