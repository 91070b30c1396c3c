//! `Collection`: instant reads from the mirror, writes, subscriptions.

use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use serde::Serialize;
use wasm_bindgen_futures::future_to_promise;

use super::convert::{
    change_to_js, data_from_js, entries_from_js, function_from, invalid_type, query_from_js, record_to_js, records_to_js,
    string_from_js, Options,
};
use super::error::JsResult;
use super::handles::Repo;
use crate::core::{Change, Entity};

#[wasm_bindgen(module = "/src/browser/browser.js")]
extern "C" {
    /// The frozen JS records of one collection. The repository's mirror
    /// observer evicts changed entities.
    #[derive(Clone)]
    pub type RecordCache;
    #[wasm_bindgen(constructor)]
    pub fn new() -> RecordCache;
    #[wasm_bindgen(method)]
    pub fn seed(this: &RecordCache, docs: &js_sys::Map, records: &js_sys::Map);
    #[wasm_bindgen(method)]
    fn get(this: &RecordCache, id: &JsValue, include_deleted: bool) -> JsValue;
    #[wasm_bindgen(method, js_name = get)]
    fn get_by_str(this: &RecordCache, id: &str, include_deleted: bool) -> JsValue;
    #[wasm_bindgen(method)]
    fn set(this: &RecordCache, id: &str, record: &JsValue);
    /// Forgets the entities of `ids`, joined by `SEPARATOR`.
    #[wasm_bindgen(method)]
    pub fn evict(this: &RecordCache, ids: &str);
    #[wasm_bindgen(method)]
    pub fn clear(this: &RecordCache);
}

/// One collection of a database.
#[wasm_bindgen(skip_typescript)]
pub struct Collection {
    name: String,
    repository: Repo,
    cache: RecordCache,
}

impl Collection {
    pub fn new(name: String, repository: Repo, cache: RecordCache) -> Self {
        Collection { name, repository, cache }
    }

    fn records(&self, entities: Vec<&Entity>) -> Array {
        entities
            .into_iter()
            .map(|entity| {
                let cached = self.cache.get_by_str(&entity.id, true);
                if !cached.is_null() {
                    return cached;
                }
                let record = record_to_js(entity);
                self.cache.set(&entity.id, &record);
                record
            })
            .collect()
    }
}

/// Turns a write's future into the Promise the API returns.
fn promise<F, T>(staged: crate::core::Result<F>, to_value: impl FnOnce(T) -> JsValue + 'static) -> Promise
where
    F: std::future::Future<Output = crate::core::Result<T>> + 'static,
{
    match staged {
        Ok(future) => future_to_promise(async move { Ok(to_value(future.await?)) }),
        Err(error) => Promise::reject(&error.into()),
    }
}

fn rejected(error: JsValue) -> Promise {
    Promise::reject(&error)
}

#[wasm_bindgen]
impl Collection {
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Instant read: the entity, or `undefined` (also for tombstones unless `includeDeleted`).
    pub fn get(&self, id: JsValue, options: JsValue) -> JsResult<JsValue> {
        let include_deleted = Options::new(&options, "get options", &["includeDeleted"])?.bool("includeDeleted")?;
        let cached = self.cache.get(&id, include_deleted);
        if !cached.is_null() {
            return Ok(cached);
        }
        let id = string_from_js(&id, "the id")?;
        let found = self.repository.read(&self.name, |c| c.get(&id).map(|entity| (entity.deleted, record_to_js(entity))))?;
        let Some((deleted, record)) = found else { return Ok(JsValue::UNDEFINED) };
        self.cache.set(&id, &record);
        Ok(if deleted && !include_deleted { JsValue::UNDEFINED } else { record })
    }

    /// Every live entity, in id order.
    pub fn all(&self) -> JsResult<Array> {
        self.query(JsValue::UNDEFINED)
    }

    /// Instant range query, in IndexedDB order.
    pub fn query(&self, options: JsValue) -> JsResult<Array> {
        let query = query_from_js(&options)?;
        Ok(self.repository.read(&self.name, |collection| collection.query(&query).map(|entities| self.records(entities)))??)
    }

    /// Creates or replaces an entity.
    pub fn put(&self, data: JsValue, options: JsValue) -> Promise {
        let staged = (|| {
            let data = data_from_js(&data, "data")?;
            let id = Options::new(&options, "put options", &["id"])?.string("id")?;
            Ok::<_, JsValue>((id, data))
        })();
        match staged {
            Ok((id, data)) => promise(self.repository.put(&self.name, id, data), |e| record_to_js(&e)),
            Err(error) => rejected(error),
        }
    }

    /// Creates or replaces many entities in one transaction: all or none.
    #[wasm_bindgen(js_name = bulkPut)]
    pub fn bulk_put(&self, entries: JsValue) -> Promise {
        match entries_from_js(&entries) {
            Ok(entries) => {
                promise(self.repository.put_many(&self.name, entries), |entities: Vec<Entity>| records_to_js(&entities).into())
            }
            Err(error) => rejected(error),
        }
    }

    /// Changes some fields; a field set to `null` is removed.
    pub fn patch(&self, id: JsValue, fields: JsValue) -> Promise {
        let parsed = string_from_js(&id, "the id").and_then(|id| Ok((id, data_from_js(&fields, "fields")?)));
        match parsed {
            Ok((id, fields)) => promise(self.repository.patch(&self.name, id, fields), |e| record_to_js(&e)),
            Err(error) => rejected(error),
        }
    }

    /// Deletes an entity, leaving a tombstone that syncs the delete.
    pub fn delete(&self, id: JsValue) -> Promise {
        match string_from_js(&id, "the id") {
            Ok(id) => promise(self.repository.delete(&self.name, id), |_| JsValue::UNDEFINED),
            Err(error) => rejected(error),
        }
    }

    /// Entities in `conflict` (manual policy), each with its local, server and base data
    /// (`null` for a side that is deleted).
    pub fn conflicts(&self) -> JsResult<Array> {
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let entries = self.repository.read(&self.name, |collection| {
            collection
                .iter()
                .filter_map(|entity| {
                    let state = entity.conflict.as_ref()?;
                    let entry = Object::new();
                    let side = |deleted: bool, data: Option<&crate::core::Data>| {
                        if deleted { JsValue::NULL } else { data.serialize(&serializer).unwrap_or(JsValue::NULL) }
                    };
                    let _ = Reflect::set(&entry, &"id".into(), &entity.id.as_str().into());
                    let _ = Reflect::set(&entry, &"local".into(), &side(state.local_deleted, Some(&entity.data)));
                    let _ = Reflect::set(&entry, &"server".into(), &side(state.server_deleted, entity.base.as_ref()));
                    let _ = Reflect::set(&entry, &"base".into(), &side(false, state.base.as_ref()));
                    let _ = Reflect::set(&entry, &"serverVersion".into(), &JsValue::from_f64(entity.version as f64));
                    Some(JsValue::from(entry))
                })
                .collect::<Array>()
        });
        Ok(entries?)
    }

    /// Settles a conflict with `data` (or deletes with `null`): written on top of
    /// the server's version and pushed with the next sync.
    pub fn resolve(&self, id: JsValue, data: JsValue) -> Promise {
        let id = match string_from_js(&id, "the id") {
            Ok(id) => id,
            Err(error) => return rejected(error),
        };
        let in_conflict = self
            .repository
            .read(&self.name, |c| c.get(&id).is_some_and(|e| e.conflict.is_some()))
            .unwrap_or(false);
        if !in_conflict {
            return rejected(crate::core::Error::NotFound(format!("{:?} in {:?} is not in conflict", id, self.name)).into());
        }
        if data.is_null() {
            return promise(self.repository.delete(&self.name, id), |_| JsValue::UNDEFINED);
        }
        match data_from_js(&data, "the resolved data") {
            Ok(data) => promise(self.repository.put(&self.name, Some(id), data), |entity| record_to_js(&entity)),
            Err(error) => rejected(error),
        }
    }

    /// Calls `callback(changes)` after each committed change; returns the unsubscribe function.
    pub fn subscribe(&self, callback: JsValue) -> JsResult<Function> {
        let callback: Function = callback
            .dyn_into()
            .map_err(|other| invalid_type(&other, "subscribe takes a function"))?;
        let subscriber = Rc::new(move |changes: &[Change]| {
            let list: Array = changes.iter().map(change_to_js).collect();
            if let Err(error) = callback.call1(&JsValue::NULL, &list) {
                // One failing subscriber must not keep the others from hearing of the change.
                web_sys::console::error_2(&"Tideway: a subscriber threw".into(), &error);
            }
        });
        let id = self.repository.subscribe(Some(&self.name), subscriber)?;
        let repository = Rc::downgrade(&self.repository);
        Ok(function_from(move || {
            if let Some(repository) = repository.upgrade() {
                repository.unsubscribe(id);
            }
        }))
    }
}
