//! `Tideway`: opening, closing and deleting a database, and its events.

use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::collection::Collection;
use super::convert::{function_from, invalid_type, string_from_js, Options};
use super::error::{invalid, JsResult};
use super::events::{DatabaseEvents, Event};
use super::handles::Repo;
use super::peers::Peers;
use super::sync::{policy_from_js, SyncOptions, Syncer};
use crate::core::reconcile::Policies;
use crate::core::{rescue, Data, DataText, Mutation, Op, Repository, Schema, Store, SyncStatus, Tally};
use crate::browser::{RecordCache, SEPARATOR};
use crate::store::browser::BrowserStore;
use crate::store::indexeddb::IdbStore;

/// A Tideway database.
#[wasm_bindgen(skip_typescript)]
pub struct Tideway {
    name: String,
    repository: Repo,
    caches: Rc<HashMap<String, RecordCache>>,
    events: Rc<DatabaseEvents>,
    peers: Rc<Peers>,
    syncer: Option<Rc<Syncer>>,
}

#[wasm_bindgen]
impl Tideway {
    /// Opens (creating or migrating as needed) and loads every entity into memory.
    pub async fn open(options: JsValue) -> JsResult<Tideway> {
        let (name, schema, sync, persist) = open_options(&options)?;
        if persist {
            // The answer is what `storage().persisted` reports from now on.
            let _ = wasm_bindgen_futures::JsFuture::from(crate::browser::storage_state(true)).await;
        }
        let store = BrowserStore::open(&name, schema.clone()).await?;
        let caches: Rc<HashMap<String, RecordCache>> =
            Rc::new(schema.collections.keys().map(|c| (c.clone(), RecordCache::new())).collect());
        let observed = caches.clone();
        let evict = Box::new(move |changed: &[(&str, &str)]| {
            for (collection, cache) in observed.iter() {
                let ids: Vec<&str> = changed.iter().filter(|(c, _)| c == collection).map(|(_, id)| *id).collect();
                if !ids.is_empty() {
                    cache.evict(&ids.join(SEPARATOR));
                }
            }
        });
        let repository = Repository::open_observed(store, schema, Box::new(js_sys::Date::now), Some(evict)).await?;
        if let Some(store) = repository.store().indexed_db() {
            for (collection, cache) in caches.iter() {
                if let (Some(docs), Some(records)) = (store.stored_docs(collection), store.take_loaded_records(collection)) {
                    cache.seed(&docs, &records);
                }
            }
        }
        let events = DatabaseEvents::watch(repository.clone());
        // Another context may have committed after the load read the stores
        // and before this one heard the channel, telling nobody listening:
        // joining takes that in.
        let peers = Peers::join(&name, repository.clone()).await;
        let syncer = match sync {
            Some(options) => Some(Syncer::start(&name, repository.clone(), events.clone(), peers.clone(), options).await?),
            None => None,
        };
        let database = Tideway { name, repository, caches, events, peers, syncer };
        database.close_on_upgrade_elsewhere();
        Ok(database)
    }

    /// Deletes a database and everything in it.
    #[wasm_bindgen(js_name = deleteDatabase)]
    pub async fn delete_database(name: JsValue) -> JsResult<()> {
        let name = string_from_js(&name, "the database name")?;
        Ok(IdbStore::delete(&name).await?)
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.repository.client_id().to_owned()
    }

    /// A declared collection.
    pub fn collection(&self, name: JsValue) -> JsResult<Collection> {
        let name = string_from_js(&name, "the collection name")?;
        self.repository.schema().collection(&name)?;
        Ok(Collection::new(name.clone(), self.repository.clone(), self.caches[&name].clone()))
    }

    /// Where the site's storage stands: `{ usage, quota, persisted }` (bytes;
    /// `null` where the engine does not say).
    pub fn storage(&self) -> Promise {
        crate::browser::storage_state(false)
    }

    /// How many changes wait in the outbox.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> Promise {
        let repository = self.repository.clone();
        future_to_promise(async move {
            let count = repository.pending_count().await?;
            Ok(JsValue::from_f64(count as f64))
        })
    }

    /// Pushes the outbox, then pulls, now (whatever the backoff says).
    /// Resolves with what it did; rejects with `SYNC_FAILED` (nothing is lost).
    pub fn sync(&self) -> Promise {
        let Some(syncer) = self.syncer.clone() else {
            return Promise::reject(&invalid("this database was opened without `sync` options"));
        };
        future_to_promise(async move { syncer.sync_anywhere().await })
    }

    /// The entities whose changes no server has acknowledged, as `{ collection, id,
    /// data, deleted, version, syncStatus }`, read from memory: it answers after the
    /// browser deleted the database under it (every other call then rejects
    /// `DATABASE_CLOSED`), until `close()`.
    pub fn unsynced(&self) -> JsResult<JsValue> {
        let entities = rescue::unsynced(&self.repository)?;
        let views: Vec<serde_json::Value> = entities
            .iter()
            .map(|(collection, entity)| {
                serde_json::json!({
                    "collection": collection,
                    "id": entity.id,
                    "data": if entity.deleted { serde_json::Value::Null } else { serde_json::Value::Object(entity.data().clone()) },
                    "deleted": entity.deleted,
                    "version": entity.version,
                    "syncStatus": entity.sync_status,
                })
            })
            .collect();
        // JSON values always serialize, and their text always parses.
        let json = serde_json::to_string(&views).unwrap_or_default();
        Ok(js_sys::JSON::parse(&json).unwrap_or(JsValue::UNDEFINED))
    }

    /// Writes the unsynced entities of `from` (a database whose storage died) into
    /// this one with their outbox entries, based on the versions the server last
    /// acknowledged, so they push and merge as they would have. Resolves with how
    /// many were written; rejects `NOT_FOUND`, writing nothing, if this database does
    /// not declare one of their collections.
    pub fn rescue(&self, from: &Tideway) -> Promise {
        let entities = rescue::unsynced(&from.repository);
        let into = self.repository.clone();
        future_to_promise(async move {
            let written = rescue::rescue_into(&into, entities?).await?;
            Ok(JsValue::from_f64(written as f64))
        })
    }

    /// Where the database stands: `{ online, reachable, syncing, pending, failed, conflicts, lastSyncAt, lastError, nextRetryAt, counters }`.
    pub fn status(&self) -> JsValue {
        self.events.status()
    }

    /// Calls `callback` on `"status"`, `"change"`, `"conflict"`, `"error"` or `"log"`; returns the unsubscribe function.
    pub fn on(&self, event: JsValue, callback: JsValue) -> JsResult<js_sys::Function> {
        let event = string_from_js(&event, "the event name")?;
        let callback: js_sys::Function =
            callback.dyn_into().map_err(|other| invalid_type(&other, "on() takes a callback function"))?;
        let id = self.events.on(&event, callback)?;
        let events = Rc::downgrade(&self.events);
        Ok(function_from(move || {
            if let Some(events) = events.upgrade() {
                events.off(id);
            }
        }))
    }

    /// Waits for pending writes to be durable, stops syncing and following
    /// the network, then closes and lets the in-memory mirror go: later reads
    /// throw `DATABASE_CLOSED`.
    pub fn close(&self) -> Promise {
        let closing = self.closing();
        future_to_promise(async move {
            closing.run().await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Tideway {
    fn closing(&self) -> Closing {
        Closing {
            repository: self.repository.clone(),
            caches: self.caches.clone(),
            events: self.events.clone(),
            peers: self.peers.clone(),
            syncer: self.syncer.clone(),
        }
    }

    /// When another context upgrades the database: commit what is queued,
    /// close (the other context's open waits for it), then tell the app.
    fn close_on_upgrade_elsewhere(&self) {
        let Some(store) = self.repository.store().indexed_db() else { return };
        let closing = self.closing();
        store.on_upgrade_elsewhere(move || {
            let closing = closing.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let events = closing.events.clone();
                let committed = closing.run().await;
                let detail = js_sys::Object::new();
                let reason = "another tab or worker upgraded the database; open it again to go on";
                let _ = Reflect::set(&detail, &"reason".into(), &reason.into());
                let _ = Reflect::set(&detail, &"committed".into(), &committed.is_ok().into());
                events.emit(Event::VersionChange, &detail);
            });
        });
    }
}

/// What closing a database lets go of, in order: syncing, following the
/// network and the other contexts, then (once every queued write is durable)
/// the store, the mirror and the read caches.
#[derive(Clone)]
struct Closing {
    repository: Repo,
    caches: Rc<HashMap<String, RecordCache>>,
    events: Rc<DatabaseEvents>,
    peers: Rc<Peers>,
    syncer: Option<Rc<Syncer>>,
}

impl Closing {
    async fn run(self) -> JsResult<()> {
        if let Some(syncer) = &self.syncer {
            syncer.close();
        }
        self.events.close();
        self.peers.close();
        self.repository.close().await?;
        for cache in self.caches.values() {
            cache.clear();
        }
        if let Some(store) = self.repository.store().indexed_db() {
            store.closed().await;
        }
        Ok(())
    }
}

/// `{ name, collections: { notes: { indexes: [...], conflict } }, sync, persist }`
fn open_options(value: &JsValue) -> JsResult<(String, Schema, Option<SyncOptions>, bool)> {
    let options = Options::new(value, "open options", &["name", "collections", "sync", "persist"])?;
    let name = options.string("name")?.ok_or_else(|| invalid("open options.name is required"))?;
    if name.is_empty() {
        return Err(invalid("open options.name must not be empty"));
    }
    let collections = options.get("collections").ok_or_else(|| invalid("open options.collections is required"))?;
    if !collections.is_object() {
        return Err(invalid_type(&collections, "open options.collections must be an object"));
    }
    let mut declared = Vec::new();
    let mut policies = Policies::default();
    for entry in Object::entries(collections.unchecked_ref()).iter() {
        let collection = Reflect::get(&entry, &0.into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
        let spec = Reflect::get(&entry, &1.into()).unwrap_or(JsValue::UNDEFINED);
        let what = format!("collections.{collection}");
        let spec = Options::new(&spec, &what, &["indexes", "conflict"])?;
        if let Some(policy) = spec.get("conflict") {
            policies.collections.insert(collection.clone(), policy_from_js(&policy, &format!("{what}.conflict"))?);
        }
        let indexes = match spec.get("indexes") {
            None => Vec::new(),
            Some(list) if js_sys::Array::is_array(&list) => js_sys::Array::from(&list)
                .iter()
                .map(|index| string_from_js(&index, &format!("an index of {what}")))
                .collect::<JsResult<Vec<_>>>()?,
            Some(other) => return Err(invalid_type(&other, &format!("{what}.indexes must be an array of strings"))),
        };
        declared.push((collection, indexes));
    }
    let schema = Schema::new(declared.iter().map(|(c, ix)| (c.as_str(), ix.iter().map(String::as_str).collect())))?;
    let sync = options.get("sync").map(|sync| SyncOptions::from_js(&sync, policies)).transpose()?;
    let persist = match options.get("persist") {
        None => false,
        Some(value) => value.as_bool().ok_or_else(|| invalid_type(&value, "open options.persist must be a boolean"))?,
    };
    Ok((name, schema, sync, persist))
}

/// What an inspector (or any tool) reads of a database: the outbox and what each
/// collection holds. Plain reads, through the same store and mirror as the rest.
#[wasm_bindgen]
impl Tideway {
    /// The mutations waiting in the outbox, oldest first (at most `limit`, when given):
    /// `{ mutationId, collection, id, op, data, baseVersion, createdAt, attempts, lastError, syncStatus }`:
    /// `attempts` counts the pushes of it that failed without an answer, `lastError` says why the
    /// last one did, `syncStatus` is the entity's now.
    pub fn outbox(&self, limit: JsValue) -> Promise {
        let limit = match limit_from_js(&limit) {
            Ok(limit) => limit,
            Err(error) => return Promise::reject(&error),
        };
        let repository = self.repository.clone();
        future_to_promise(async move {
            let mutations = repository.store().outbox(limit).await?;
            let serializer = serde_wasm_bindgen::Serializer::json_compatible();
            let entries: Array = mutations
                .iter()
                .map(|mutation| {
                    let sync_status = repository
                        .read(&mutation.collection, |c| c.get(&mutation.id).map(|e| e.sync_status))
                        .ok()
                        .flatten();
                    OutboxEntry::of(mutation, sync_status).serialize(&serializer).unwrap_or(JsValue::NULL)
                })
                .collect();
            Ok(entries.into())
        })
    }

    /// Each declared collection and what it holds, from memory, in name order:
    /// `{ name, count, deleted, pending, failed, conflicts }`.
    pub fn collections(&self) -> JsResult<Array> {
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let mut list = Vec::new();
        for name in self.repository.schema().collections.keys() {
            let summary = self.repository.read(name, |collection| {
                let Tally { live, deleted, pending, failed, conflicts } = collection.tally();
                let summary = CollectionSummary { name, count: live, deleted, pending, failed, conflicts };
                summary.serialize(&serializer).unwrap_or(JsValue::NULL)
            })?;
            list.push(summary);
        }
        Ok(list.into_iter().collect())
    }
}

/// One entry of `db.outbox()`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboxEntry<'a> {
    mutation_id: u64,
    collection: &'a str,
    id: &'a str,
    op: Op,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data>,
    base_version: u64,
    created_at: f64,
    attempts: u32,
    last_error: Option<&'a str>,
    sync_status: Option<SyncStatus>,
}

impl<'a> OutboxEntry<'a> {
    fn of(mutation: &'a Mutation, sync_status: Option<SyncStatus>) -> Self {
        OutboxEntry {
            mutation_id: mutation.mutation_id,
            collection: &mutation.collection,
            id: &mutation.id,
            op: mutation.op,
            // Parsed: the text is JSON, and this is a JS object.
            data: mutation.data.as_ref().map(DataText::parse),
            base_version: mutation.base_version,
            created_at: mutation.created_at,
            attempts: mutation.attempts,
            last_error: mutation.last_error.as_deref(),
            sync_status,
        }
    }
}

/// One entry of `db.collections()`.
#[derive(Serialize)]
struct CollectionSummary<'a> {
    name: &'a str,
    /// Live entities (tombstones not counted).
    count: u64,
    deleted: u64,
    /// Mutations waiting in the outbox.
    pending: u64,
    failed: u64,
    conflicts: u64,
}

/// `outbox(limit)`: a positive whole number, or nothing for every entry.
fn limit_from_js(value: &JsValue) -> JsResult<usize> {
    if value.is_undefined() || value.is_null() {
        return Ok(usize::MAX);
    }
    match value.as_f64() {
        Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok(n.min(usize::MAX as f64) as usize),
        _ => Err(invalid_type(value, "outbox(limit) takes a positive whole number of entries")),
    }
}
