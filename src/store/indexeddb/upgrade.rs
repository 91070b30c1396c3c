//! Bringing a database to the layout a schema asks for: the object stores and
//! indexes [`UpgradePlan`] lists are made in the `versionchange` transaction
//! (through web-sys: `indexed_db_futures` does not hand that transaction to its
//! upgrade callback), then the `ix` fields of collections that gained an index
//! are filled in.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::connection::open_existing;
use super::error::describe_js_error;
use super::pack::{encode, index_keys, parse_text};
use super::read::{all, settled_doc};
use super::IdbStore;
use crate::browser;
use crate::core::{Entity, Error, Result};
use crate::store::layout::{
    entity_store, Layout, UpgradePlan, ACKS_STORE, BACKFILL_KEY, ENTITY_KEY_PATH, FORMAT_VERSION, META_STORE, OUTBOX_KEY_PATH, OUTBOX_STORE,
};

impl IdbStore {
    /// Recomputes `ix` for the collections listed in `pending`, which gained
    /// an index in an upgrade.
    pub(super) async fn backfill(&self, pending: &JsValue) -> Result<()> {
        let collections: Vec<String> = Array::from(pending).iter().filter_map(|v| v.as_string()).collect();
        let mut stores: Vec<String> = collections.iter().map(|c| entity_store(c)).collect();
        stores.extend([META_STORE.to_owned(), ACKS_STORE.to_owned()]);
        let connection = self.connection();
        let tx = connection.db.transaction(stores.as_slice()).with_mode(TransactionMode::Readwrite).build()?;
        // Each record is written back as it stands: acknowledgements logged
        // for it are then in it, and their entries match it no more.
        browser::read_acks(tx.as_sys());
        for collection in &collections {
            let Ok(info) = self.collection_info(collection) else { continue };
            let store_name = entity_store(collection);
            let store = tx.object_store(&store_name)?;
            let records = all(store.get_all().primitive()?.await)?;
            for record in records {
                let entity: Entity = parse_text(&settled_doc(tx.as_sys(), &store_name, &record, collection)?, collection)?;
                let doc = encode(&entity, "entity")?;
                let record = browser::entity_record(&entity.id, &doc, &index_keys(&entity, &info.index_fields));
                store.put(record).primitive()?;
            }
        }
        // Other contexts must not take their docs from what they knew before.
        self.commits.leave(tx.as_sys());
        // The last request settling means every put has (see `apply`).
        tx.object_store(META_STORE)?.delete(BACKFILL_KEY).primitive()?.await?;
        Ok(tx.commit().await?)
    }
}

/// The object stores of `db` and the index names of each.
pub(super) fn read_layout(db: &Database) -> Result<Layout> {
    let names: Vec<String> = db.object_store_names().collect();
    let mut layout = Layout::new();
    if names.is_empty() {
        return Ok(layout);
    }
    let tx = db.transaction(names.as_slice()).build()?;
    for name in names {
        let store = tx.object_store(&name)?;
        // By insertion: collecting would sort first, a sort more in the module (see bench/README.md).
        let mut indexes = BTreeSet::new();
        indexes.extend(store.index_names());
        layout.insert(name, indexes);
    }
    Ok(layout)
}

/// `db`, a connection to `name`, once `plan` is carried out: the same
/// connection when there is nothing to do, else a new one after the upgrade
/// (which needs every connection to the database closed, this one included).
pub(super) async fn upgraded(name: &str, db: Database, plan: &UpgradePlan) -> Result<Database> {
    if plan.is_empty() {
        return Ok(db);
    }
    let version = db.version() + 1.0;
    db.close();
    upgrade(name, version, plan).await?;
    open_existing(name).await
}

/// Opens `name` at `version` and applies `plan` in the `versionchange` transaction.
async fn upgrade(name: &str, version: f64, plan: &UpgradePlan) -> Result<()> {
    let factory = idb_factory()?;
    let request = factory.open_with_f64(name, version).map_err(|e| Error::Storage(describe_js_error(&e)))?;
    let failure: Rc<RefCell<Option<String>>> = Rc::default();
    let plan = plan.clone();
    let on_upgrade = {
        let failure = failure.clone();
        let request = request.clone();
        Closure::once(move |_event: web_sys::Event| {
            if let Err(error) = apply_plan(&request, &plan) {
                *failure.borrow_mut() = Some(error);
                if let Some(tx) = request.transaction() {
                    let _ = tx.abort();
                }
            }
        })
    };
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    let outcome = JsFuture::from(done).await;
    request.set_onupgradeneeded(None);
    if let Some(message) = failure.borrow_mut().take() {
        return Err(Error::Schema(message));
    }
    outcome.map_err(|_| {
        let message = request.error().ok().flatten().map(|e| format!("{}: {}", e.name(), e.message()));
        Error::Schema(format!("the schema upgrade failed: {}", message.unwrap_or_else(|| "unknown error".into())))
    })?;
    if let Ok(db) = request.result() {
        db.unchecked_into::<web_sys::IdbDatabase>().close();
    }
    Ok(())
}

fn apply_plan(request: &web_sys::IdbOpenDbRequest, plan: &UpgradePlan) -> std::result::Result<(), String> {
    let describe = |e: JsValue| describe_js_error(&e);
    let db: web_sys::IdbDatabase = request.result().map_err(describe)?.unchecked_into();
    let tx = request.transaction().ok_or("no versionchange transaction")?;
    if plan.create_meta {
        let meta = db.create_object_store(META_STORE).map_err(describe)?;
        let client_id = uuid::Uuid::new_v4().to_string();
        meta.put_with_key(&client_id.into(), &"clientId".into()).map_err(describe)?;
        meta.put_with_key(&FORMAT_VERSION.into(), &"formatVersion".into()).map_err(describe)?;
    }
    if plan.create_outbox {
        let params = web_sys::IdbObjectStoreParameters::new();
        params.set_key_path(&OUTBOX_KEY_PATH.into());
        params.set_auto_increment(true);
        db.create_object_store_with_optional_parameters(OUTBOX_STORE, &params).map_err(describe)?;
    }
    if plan.create_acks {
        let params = web_sys::IdbObjectStoreParameters::new();
        params.set_auto_increment(true);
        db.create_object_store_with_optional_parameters(ACKS_STORE, &params).map_err(describe)?;
    }
    for change in &plan.stores {
        let store = if change.create {
            let params = web_sys::IdbObjectStoreParameters::new();
            params.set_key_path(&ENTITY_KEY_PATH.into());
            db.create_object_store_with_optional_parameters(&change.store, &params).map_err(describe)?
        } else {
            tx.object_store(&change.store).map_err(describe)?
        };
        for index in &change.remove_indexes {
            store.delete_index(index).map_err(describe)?;
        }
        for (index, key_path) in &change.add_indexes {
            store.create_index_with_str(index, key_path).map_err(describe)?;
        }
    }
    if plan.raise_format {
        let meta = tx.object_store(META_STORE).map_err(describe)?;
        meta.put_with_key(&FORMAT_VERSION.into(), &"formatVersion".into()).map_err(describe)?;
    }
    if !plan.backfill.is_empty() {
        let meta = tx.object_store(META_STORE).map_err(describe)?;
        let list: Array = plan.backfill.iter().map(|c| JsValue::from_str(c)).collect();
        meta.put_with_key(&list, &BACKFILL_KEY.into()).map_err(describe)?;
    }
    Ok(())
}

fn idb_factory() -> Result<web_sys::IdbFactory> {
    let factory = Reflect::get(&js_sys::global(), &"indexedDB".into()).unwrap_or(JsValue::UNDEFINED);
    factory
        .dyn_into::<web_sys::IdbFactory>()
        .map_err(|_| Error::Storage("IndexedDB is not available in this context".into()))
}
