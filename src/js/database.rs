//! `Tideway`: opening, closing and deleting a database.

use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::collection::{Collection, RecordCache};
use super::convert::{invalid_type, string_from_js, Options};
use super::error::{invalid, to_js, JsResult};
use crate::core::{Repository, Schema};
use crate::store::indexeddb::IdbStore;

pub type Repo = Rc<Repository<IdbStore>>;

/// A Tideway database.
#[wasm_bindgen(skip_typescript)]
pub struct Tideway {
    name: String,
    repository: Repo,
    caches: Rc<HashMap<String, RecordCache>>,
}

#[wasm_bindgen]
impl Tideway {
    /// Opens (creating or migrating as needed) and loads every entity into memory.
    pub async fn open(options: JsValue) -> JsResult<Tideway> {
        let (name, schema) = open_options(&options)?;
        let store = IdbStore::open(&name, schema.clone()).await.map_err(|e| to_js(&e))?;
        let caches: Rc<HashMap<String, RecordCache>> =
            Rc::new(schema.collections.keys().map(|c| (c.clone(), RecordCache::new())).collect());
        let observed = caches.clone();
        let evict = Box::new(move |collection: &str, id: &str| {
            if let Some(cache) = observed.get(collection) {
                cache.evict(id);
            }
        });
        let repository = Repository::open_observed(store, schema, Box::new(js_sys::Date::now), Some(evict))
            .await
            .map_err(|e| to_js(&e))?;
        for (collection, cache) in caches.iter() {
            if let Some(docs) = repository.store().stored_docs(collection) {
                cache.seed(&docs);
            }
        }
        Ok(Tideway { name, repository, caches })
    }

    /// Deletes a database and everything in it.
    #[wasm_bindgen(js_name = deleteDatabase)]
    pub async fn delete_database(name: JsValue) -> JsResult<()> {
        let name = string_from_js(&name, "the database name")?;
        IdbStore::delete(&name).await.map_err(|e| to_js(&e))
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
        self.repository.schema().collection(&name).map_err(|e| to_js(&e))?;
        Ok(Collection::new(name.clone(), self.repository.clone(), self.caches[&name].clone()))
    }

    /// How many changes wait in the outbox.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> Promise {
        let repository = self.repository.clone();
        future_to_promise(async move {
            let count = repository.pending_count().await.map_err(|e| to_js(&e))?;
            Ok(JsValue::from_f64(count as f64))
        })
    }

    /// Waits for pending writes to be durable, then closes.
    pub fn close(&self) -> Promise {
        let repository = self.repository.clone();
        future_to_promise(async move {
            repository.close().await.map_err(|e| to_js(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// `{ name, collections: { notes: { indexes: [...] } } }`
fn open_options(value: &JsValue) -> JsResult<(String, Schema)> {
    let options = Options::new(value, "open options", &["name", "collections"])?;
    let name = options.string("name")?.ok_or_else(|| invalid("open options.name is required"))?;
    if name.is_empty() {
        return Err(invalid("open options.name must not be empty"));
    }
    let collections = options.get("collections").ok_or_else(|| invalid("open options.collections is required"))?;
    if !collections.is_object() {
        return Err(invalid_type(&collections, "open options.collections must be an object"));
    }
    let mut declared = Vec::new();
    for entry in Object::entries(collections.unchecked_ref()).iter() {
        let collection = Reflect::get(&entry, &0.into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
        let spec = Reflect::get(&entry, &1.into()).unwrap_or(JsValue::UNDEFINED);
        let what = format!("collections.{collection}");
        let spec = Options::new(&spec, &what, &["indexes"])?;
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
    let schema = Schema::new(declared.iter().map(|(c, ix)| (c.as_str(), ix.iter().map(String::as_str).collect())))
        .map_err(|e| to_js(&e))?;
    Ok((name, schema))
}
