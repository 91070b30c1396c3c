//! `Collection`: instant reads from the mirror, writes, subscriptions, live queries.

use std::cell::{Cell, OnceCell, RefCell};
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
use crate::browser::RecordCache;
use crate::core::{Change, Entity, LiveQuery, Target, Watches};

/// One collection of a database.
#[wasm_bindgen(skip_typescript)]
pub struct Collection {
    source: Source,
    /// The watches of this handle, made on the first `watch`.
    live: OnceCell<Rc<LiveFeed>>,
}

/// Where a collection's records come from: the mirror, through the cache of JS records.
#[derive(Clone)]
struct Source {
    name: String,
    repository: Repo,
    cache: RecordCache,
}

impl Collection {
    pub fn new(name: String, repository: Repo, cache: RecordCache) -> Self {
        Collection { source: Source { name, repository, cache }, live: OnceCell::new() }
    }

    fn live(&self) -> &Rc<LiveFeed> {
        self.live.get_or_init(|| {
            Rc::new(LiveFeed { source: self.source.clone(), watches: RefCell::default(), subscription: Cell::new(None) })
        })
    }
}

impl Source {
    /// The JS records of `entities`: the cached ones, the others made and cached.
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

    /// The record `collection.get(id)` gives, tombstones as `undefined`.
    fn record(&self, id: &str) -> JsResult<JsValue> {
        let cached = self.cache.get_by_str(id, false);
        if !cached.is_null() {
            return Ok(cached);
        }
        let found = self.repository.read(&self.name, |c| c.get(id).map(|entity| (entity.deleted, record_to_js(entity))))?;
        let Some((deleted, record)) = found else { return Ok(JsValue::UNDEFINED) };
        self.cache.set(id, &record);
        Ok(if deleted { JsValue::UNDEFINED } else { record })
    }
}

/// The live queries and record watches of one collection handle, fed by one
/// repository subscription while any watch is open. The core decides which
/// watches a batch of changes may alter; those run again here, and their
/// callbacks hear only of results that differ from the last by identity.
struct LiveFeed {
    source: Source,
    watches: RefCell<Watches<Watcher>>,
    subscription: Cell<Option<u64>>,
}

struct Watcher {
    callback: Function,
    /// What the callback last received: a frozen array of records, or a record or `undefined`.
    last: JsValue,
}

impl LiveFeed {
    /// Adds a watch whose first result is `first`, and calls back with it at once.
    fn add(self: &Rc<Self>, target: Target, first: JsValue, callback: Function) -> JsResult<Function> {
        if self.subscription.get().is_none() {
            let feed = Rc::downgrade(self);
            let subscriber = Rc::new(move |changes: &[Change]| {
                if let Some(feed) = feed.upgrade() {
                    feed.refresh(changes);
                }
            });
            self.subscription.set(Some(self.source.repository.subscribe(Some(&self.source.name), subscriber)?));
        }
        let id = self.watches.borrow_mut().add(target, Watcher { callback: callback.clone(), last: first.clone() });
        call_back(&callback, &first);
        let feed = self.clone();
        Ok(function_from(move || feed.remove(id)))
    }

    fn remove(&self, id: u64) {
        let mut watches = self.watches.borrow_mut();
        if watches.remove(id).is_some() && watches.is_empty() {
            if let Some(subscription) = self.subscription.take() {
                self.source.repository.unsubscribe(subscription);
            }
        }
    }

    /// Runs again the watches `changes` may alter, then calls back those whose result differs.
    fn refresh(&self, changes: &[Change]) {
        let affected = self.watches.borrow().affected(changes);
        let mut calls = Vec::new();
        for id in affected {
            let mut watches = self.watches.borrow_mut();
            // An earlier callback may have removed it.
            let Some((target, watcher)) = watches.get_mut(id) else { continue };
            let now = match target {
                Target::Query(live) => {
                    let rerun = self.source.repository.read(&self.source.name, |c| live.rerun(c).map(|e| self.source.records(e)));
                    match rerun {
                        Ok(Ok(records)) if !same_records(&records, &watcher.last) => Object::freeze(&records).into(),
                        _ => continue,
                    }
                }
                Target::Record(id) => match self.source.record(id) {
                    Ok(record) if record != watcher.last => record,
                    _ => continue,
                },
            };
            watcher.last = now.clone();
            calls.push((watcher.callback.clone(), now));
        }
        // Outside the borrow: a callback may watch or unwatch.
        for (callback, result) in calls {
            call_back(&callback, &result);
        }
    }
}

/// Whether `records` holds the very records of `last`, in the same order.
fn same_records(records: &Array, last: &JsValue) -> bool {
    let last: &Array = last.unchecked_ref();
    records.length() == last.length() && records.iter().zip(last.iter()).all(|(a, b)| a == b)
}

fn call_back(callback: &Function, result: &JsValue) {
    if let Err(error) = callback.call1(&JsValue::NULL, result) {
        // One failing watcher must not keep the others from hearing of the change.
        web_sys::console::error_2(&"Tideway: a watch callback threw".into(), &error);
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

fn callback_from(value: JsValue, message: &str) -> JsResult<Function> {
    value.dyn_into().map_err(|other| invalid_type(&other, message))
}

fn rejected(error: JsValue) -> Promise {
    Promise::reject(&error)
}

#[wasm_bindgen]
impl Collection {
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.source.name.clone()
    }

    /// The collection's cache of JS records, from which the package entry's
    /// `get` answers without entering the module (see index.js).
    #[wasm_bindgen(getter, js_name = __recordCache, skip_typescript)]
    pub fn record_cache(&self) -> RecordCache {
        self.source.cache.clone()
    }

    /// Instant read: the entity, or `undefined` (also for tombstones unless `includeDeleted`).
    pub fn get(&self, id: JsValue, options: JsValue) -> JsResult<JsValue> {
        let include_deleted = Options::new(&options, "get options", &["includeDeleted"])?.bool("includeDeleted")?;
        let cached = self.source.cache.get(&id, include_deleted);
        if !cached.is_null() {
            return Ok(cached);
        }
        let id = string_from_js(&id, "the id")?;
        let found = self.source.repository.read(&self.source.name, |c| c.get(&id).map(|entity| (entity.deleted, record_to_js(entity))))?;
        let Some((deleted, record)) = found else { return Ok(JsValue::UNDEFINED) };
        self.source.cache.set(&id, &record);
        Ok(if deleted && !include_deleted { JsValue::UNDEFINED } else { record })
    }

    /// Every live entity, in id order.
    pub fn all(&self) -> JsResult<Array> {
        self.query(JsValue::UNDEFINED)
    }

    /// Instant range query, in IndexedDB order.
    pub fn query(&self, options: JsValue) -> JsResult<Array> {
        let query = query_from_js(&options)?;
        Ok(self.source.repository.read(&self.source.name, |collection| collection.query(&query).map(|entities| self.source.records(entities)))??)
    }

    /// Creates or replaces an entity.
    pub fn put(&self, data: JsValue, options: JsValue) -> Promise {
        let staged = (|| {
            let data = data_from_js(&data, "data")?;
            let id = Options::new(&options, "put options", &["id"])?.string("id")?;
            Ok::<_, JsValue>((id, data))
        })();
        match staged {
            Ok((id, data)) => promise(self.source.repository.put(&self.source.name, id, data), |e| record_to_js(&e)),
            Err(error) => rejected(error),
        }
    }

    /// Creates or replaces many entities in one transaction: all or none.
    #[wasm_bindgen(js_name = bulkPut)]
    pub fn bulk_put(&self, entries: JsValue) -> Promise {
        match entries_from_js(&entries) {
            Ok(entries) => {
                promise(self.source.repository.put_many(&self.source.name, entries), |entities: Vec<Entity>| records_to_js(&entities).into())
            }
            Err(error) => rejected(error),
        }
    }

    /// Changes some fields; a field set to `null` is removed.
    pub fn patch(&self, id: JsValue, fields: JsValue) -> Promise {
        let parsed = string_from_js(&id, "the id").and_then(|id| Ok((id, data_from_js(&fields, "fields")?)));
        match parsed {
            Ok((id, fields)) => promise(self.source.repository.patch(&self.source.name, id, fields), |e| record_to_js(&e)),
            Err(error) => rejected(error),
        }
    }

    /// Deletes an entity, leaving a tombstone that syncs the delete.
    pub fn delete(&self, id: JsValue) -> Promise {
        match string_from_js(&id, "the id") {
            Ok(id) => promise(self.source.repository.delete(&self.source.name, id), |_| JsValue::UNDEFINED),
            Err(error) => rejected(error),
        }
    }

    /// Entities in `conflict` (manual policy), each with its local, server and base data
    /// (`null` for a side that is deleted).
    pub fn conflicts(&self) -> JsResult<Array> {
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let entries = self.source.repository.read(&self.source.name, |collection| {
            collection
                .iter()
                .filter_map(|entity| {
                    let state = entity.conflict.as_ref()?;
                    let entry = Object::new();
                    let side = |deleted: bool, data: Option<&crate::core::Data>| {
                        if deleted { JsValue::NULL } else { data.serialize(&serializer).unwrap_or(JsValue::NULL) }
                    };
                    let _ = Reflect::set(&entry, &"id".into(), &entity.id.as_str().into());
                    let _ = Reflect::set(&entry, &"local".into(), &side(state.local_deleted, Some(entity.data())));
                    let _ = Reflect::set(&entry, &"server".into(), &side(state.server_deleted, entity.base()));
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
            .source
            .repository
            .read(&self.source.name, |c| c.get(&id).is_some_and(|e| e.conflict.is_some()))
            .unwrap_or(false);
        if !in_conflict {
            return rejected(crate::core::Error::NotFound(format!("{:?} in {:?} is not in conflict", id, self.source.name)).into());
        }
        if data.is_null() {
            return promise(self.source.repository.delete(&self.source.name, id), |_| JsValue::UNDEFINED);
        }
        match data_from_js(&data, "the resolved data") {
            Ok(data) => promise(self.source.repository.put(&self.source.name, Some(id), data), |entity| record_to_js(&entity)),
            Err(error) => rejected(error),
        }
    }

    /// Calls `callback(records)` now with the query's result, then after each
    /// batch of committed changes whose result differs from the last; returns
    /// the function that stops it. Results are frozen arrays of the very records
    /// reads give, so an unchanged one is never sent twice.
    pub fn watch(&self, options: JsValue, callback: JsValue) -> JsResult<Function> {
        let callback = callback_from(callback, "watch takes a query and a function")?;
        let query = query_from_js(&options)?;
        let source = &self.source;
        let (live, first) = source.repository.read(&source.name, |collection| {
            LiveQuery::start(collection, query).map(|(live, entities)| (live, source.records(entities)))
        })??;
        self.live().add(Target::Query(Box::new(live)), Object::freeze(&first).into(), callback)
    }

    /// Calls `callback(record)` now with what `get(id)` gives, then after each
    /// committed change of that entity that gives another record (`undefined`
    /// once it is deleted); returns the function that stops it.
    #[wasm_bindgen(js_name = watchRecord)]
    pub fn watch_record(&self, id: JsValue, callback: JsValue) -> JsResult<Function> {
        let callback = callback_from(callback, "watchRecord takes an id and a function")?;
        let id = string_from_js(&id, "the id")?;
        let first = self.source.record(&id)?;
        self.live().add(Target::Record(id), first, callback)
    }

    /// Calls `callback(changes)` after each committed change; returns the unsubscribe function.
    pub fn subscribe(&self, callback: JsValue) -> JsResult<Function> {
        let callback = callback_from(callback, "subscribe takes a function")?;
        let subscriber = Rc::new(move |changes: &[Change]| {
            let list: Array = changes.iter().map(change_to_js).collect();
            if let Err(error) = callback.call1(&JsValue::NULL, &list) {
                // One failing subscriber must not keep the others from hearing of the change.
                web_sys::console::error_2(&"Tideway: a subscriber threw".into(), &error);
            }
        });
        let id = self.source.repository.subscribe(Some(&self.source.name), subscriber)?;
        let repository = Rc::downgrade(&self.source.repository);
        Ok(function_from(move || {
            if let Some(repository) = repository.upgrade() {
                repository.unsubscribe(id);
            }
        }))
    }
}
