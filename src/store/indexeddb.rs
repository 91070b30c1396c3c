//! The IndexedDB store: one readwrite transaction per batch of writes, each
//! entity and its outbox entry in it together.
//!
//! Everyday work goes through `indexed_db_futures`. Schema upgrades use
//! web-sys directly, because an upgrade must reach the `versionchange`
//! transaction (to add an index to an existing object store), which that
//! crate's upgrade callback does not expose.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use indexed_db_futures::KeyRange as IdbKeyRange;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::layout::{
    check_format, entity_store, index_field, Layout, UpgradePlan, BACKFILL_KEY, CURSOR_KEY, FORMAT_VERSION, META_STORE,
    OUTBOX_STORE, SYNC_KEY,
};
use crate::core::sync::{settle, Outcome, Policies, ServerAnswer, Settled, Settlement};
use crate::core::{
    apply_write, Applied, Entity, Error, IndexKey, IndexSpec, Mutation, Query, Result, Schema, Snapshot, Store, SyncMeta,
    Write,
};

/// A [`Store`] on one IndexedDB database.
pub struct IdbStore {
    db: Database,
    schema: Schema,
    /// Per collection, each declared index with the `ix` field holding its key
    /// (as a JS string made once, not on every write).
    index_fields: HashMap<String, Vec<(IndexSpec, JsValue)>>,
    client_id: String,
    /// Set when the app or the browser closed the connection; the reason.
    closed: Rc<RefCell<Option<String>>>,
    fail_next_apply: Cell<bool>,
    _on_version_change: Closure<dyn FnMut()>,
}

impl IdbStore {
    /// Opens `name`, creating it or upgrading its layout to fit `schema`.
    pub async fn open(name: &str, schema: Schema) -> Result<IdbStore> {
        let db = open_existing(name).await?;
        let plan = UpgradePlan::new(&read_layout(&db)?, &schema);
        let db = if plan.is_empty() {
            db
        } else {
            let version = db.version() + 1.0;
            db.close();
            upgrade(name, version, &plan).await?;
            open_existing(name).await?
        };

        let tx = db.transaction(META_STORE).build().map_err(idb_error)?;
        let meta = tx.object_store(META_STORE).map_err(idb_error)?;
        let format: Option<JsValue> = meta.get("formatVersion").primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        check_format(format.and_then(|v| v.as_f64()).map(|v| v as u32))?;
        let client_id: Option<String> = meta.get("clientId").primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        let client_id = client_id.ok_or_else(|| Error::Storage("the database has no client id".into()))?;
        drop(meta);
        drop(tx);

        // Another tab upgrading the schema needs this connection gone; close
        // it, and let every later call say why.
        let closed = Rc::new(RefCell::new(None));
        let on_version_change = {
            let closed = closed.clone();
            let sys: web_sys::IdbDatabase = db.as_sys().clone().unchecked_into();
            let db_for_close = sys.clone();
            let handler = Closure::<dyn FnMut()>::new(move || {
                db_for_close.close();
                *closed.borrow_mut() = Some("another tab or worker upgraded the database; open it again".to_owned());
            });
            sys.set_onversionchange(Some(handler.as_ref().unchecked_ref()));
            handler
        };

        let index_fields = schema
            .collections
            .iter()
            .map(|(name, collection)| {
                let fields = collection.indexes.iter().map(|index| (index.clone(), index_field(&index.name).into())).collect();
                (name.clone(), fields)
            })
            .collect();
        let store = IdbStore {
            db,
            schema,
            index_fields,
            client_id,
            closed,
            fail_next_apply: Cell::new(false),
            _on_version_change: on_version_change,
        };
        store.backfill().await?;
        Ok(store)
    }

    /// Deletes a database by name.
    pub async fn delete(name: &str) -> Result<()> {
        Database::delete_by_name(name).map_err(open_error)?.await.map_err(idb_error)
    }

    /// Makes the next `apply` fail inside its transaction, after its writes
    /// were issued, by a real IndexedDB constraint violation: the browser
    /// must then roll every write of that transaction back. For tests.
    #[doc(hidden)]
    pub fn fail_next_apply(&self) {
        self.fail_next_apply.set(true);
    }

    fn check_open(&self) -> Result<()> {
        match &*self.closed.borrow() {
            Some(reason) => Err(Error::DatabaseClosed(reason.clone())),
            None => Ok(()),
        }
    }

    fn index_fields(&self, collection: &str) -> Result<&[(IndexSpec, JsValue)]> {
        self.schema.collection(collection)?;
        Ok(&self.index_fields[collection])
    }

    /// Recomputes `ix` for collections that gained an index in an upgrade.
    async fn backfill(&self) -> Result<()> {
        let tx = self.db.transaction(META_STORE).build().map_err(idb_error)?;
        let pending: Option<JsValue> =
            tx.object_store(META_STORE).map_err(idb_error)?.get(BACKFILL_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        drop(tx);
        let Some(pending) = pending else { return Ok(()) };
        let collections: Vec<String> = Array::from(&pending).iter().filter_map(|v| v.as_string()).collect();
        let mut stores: Vec<String> = collections.iter().map(|c| entity_store(c)).collect();
        stores.push(META_STORE.to_owned());
        let tx = self.db.transaction(stores.as_slice()).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
        for collection in &collections {
            let Ok(fields) = self.index_fields(collection) else { continue };
            let store = tx.object_store(&entity_store(collection)).map_err(idb_error)?;
            let records = all(store.get_all().primitive().map_err(idb_error)?.await)?;
            for record in records {
                let entity = entity_of(&record, collection)?;
                store.put(entity_record(&entity, fields)?).primitive().map_err(idb_error)?;
            }
        }
        // The last request settling means every put has (see `apply`).
        tx.object_store(META_STORE).map_err(idb_error)?.delete(BACKFILL_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        tx.commit().await.map_err(idb_error)
    }
}

impl Store for IdbStore {
    async fn load(&self) -> Result<Snapshot> {
        self.check_open()?;
        let names: Vec<String> = self.schema.collections.keys().map(|c| entity_store(c)).collect();
        let tx = self.db.transaction(names.as_slice()).build().map_err(idb_error)?;
        let mut collections = Vec::with_capacity(names.len());
        for collection in self.schema.collections.keys() {
            let store = tx.object_store(&entity_store(collection)).map_err(idb_error)?;
            let records = all(store.get_all().primitive().map_err(idb_error)?.await)?;
            let entities = records.iter().map(|record| entity_of(record, collection)).collect::<Result<Vec<_>>>()?;
            collections.push((collection.clone(), entities));
        }
        Ok(Snapshot { client_id: self.client_id.clone(), collections })
    }

    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        self.check_open()?;
        let mut names: BTreeSet<String> = writes.iter().map(|w| entity_store(&w.collection)).collect();
        names.insert(OUTBOX_STORE.to_owned());
        let inject_failure = self.fail_next_apply.replace(false);
        if inject_failure {
            names.insert(META_STORE.to_owned());
        }
        let names: Vec<String> = names.into_iter().collect();
        let tx = self.db.transaction(names.as_slice()).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
        let outbox = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;

        // Read every touched entity as stored (all requests go out at once),
        // so that a write made by another tab is built upon, not overwritten.
        let mut current: HashMap<(String, String), Option<Entity>> = HashMap::new();
        let mut reads = Vec::new();
        for write in writes {
            let key = (write.collection.clone(), write.id.clone());
            if current.insert(key.clone(), None).is_none() {
                let store = tx.object_store(&entity_store(&write.collection)).map_err(idb_error)?;
                let read = store.get::<JsValue, _, _>(write.id.as_str()).primitive().map_err(idb_error)?;
                reads.push((key, read));
            }
        }
        for (key, read) in reads {
            let record: Option<JsValue> = read.await.map_err(idb_error)?;
            let entity = record.map(|record| entity_of(&record, &key.0)).transpose()?;
            current.insert(key, entity);
        }

        let mut results = Vec::with_capacity(writes.len());
        let mut appends = Vec::new();
        for write in writes {
            let key = (write.collection.clone(), write.id.clone());
            let result = apply_write(current[&key].as_ref(), write);
            if let Ok(applied) = &result {
                let store = tx.object_store(&entity_store(&write.collection)).map_err(idb_error)?;
                store.put(entity_record(&applied.entity, self.index_fields(&write.collection)?)?).primitive().map_err(idb_error)?;
                let append = outbox.add(mutation_record(&applied.mutation)?).with_key_type::<f64>().primitive().map_err(idb_error)?;
                appends.push(append);
                current.insert(key, Some(applied.entity.clone()));
            }
            results.push(result);
        }
        let injected = if inject_failure {
            // `clientId` exists: this add fails with ConstraintError and aborts the transaction.
            let meta = tx.object_store(META_STORE).map_err(idb_error)?;
            Some(meta.add("duplicate").with_key("clientId").primitive().map_err(idb_error)?)
        } else {
            None
        };

        // Commit only once every request has settled. Firefox keeps the other
        // writes of a transaction whose request fails after `commit()` was
        // called (it completes instead of aborting), so committing with
        // requests in flight would break atomicity there. Requests settle in
        // the order they were made, and a failed one aborts the transaction,
        // failing every later one: awaiting them in order finds any failure.
        let mut mutation_ids = Vec::with_capacity(appends.len());
        for append in appends {
            mutation_ids.push(append.await.map_err(idb_error)? as u64);
        }
        if let Some(injected) = injected {
            injected.await.map_err(idb_error)?;
        }
        tx.commit().await.map_err(idb_error)?;

        let mut mutation_ids = mutation_ids.into_iter();
        for applied in results.iter_mut().flatten() {
            applied.mutation.mutation_id = mutation_ids.next().unwrap_or_default();
        }
        Ok(results)
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        self.check_open()?;
        self.schema.collection(collection)?;
        let store_name = entity_store(collection);
        let tx = self.db.transaction(store_name.as_str()).build().map_err(idb_error)?;
        let store = tx.object_store(&store_name).map_err(idb_error)?;
        let record: Option<JsValue> = store.get(id).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        record.map(|record| entity_of(&record, collection)).transpose()
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        self.check_open()?;
        let range = query.range()?;
        let store_name = entity_store(collection);
        self.schema.collection(collection)?;
        let tx = self.db.transaction(store_name.as_str()).build().map_err(idb_error)?;
        let store = tx.object_store(&store_name).map_err(idb_error)?;
        let js_range = key_range(&range);
        let records: Vec<JsValue> = match &query.index {
            None => {
                range.id_bounds()?;
                all(match js_range {
                    Some(r) => store.get_all().with_query::<JsValue, _>(r).primitive().map_err(idb_error)?.await,
                    None => store.get_all().primitive().map_err(idb_error)?.await,
                })?
            }
            Some(index_name) => {
                let schema = self.schema.collection(collection)?;
                schema.index(index_name).ok_or_else(|| Error::InvalidArgument(format!("query: no index {index_name:?}")))?;
                let index = store.index(index_name).map_err(idb_error)?;
                all(match js_range {
                    Some(r) => index.get_all().with_query::<JsValue, _>(r).primitive().map_err(idb_error)?.await,
                    None => index.get_all().primitive().map_err(idb_error)?.await,
                })?
            }
        };
        let mut entities = records.iter().map(|record| entity_of(record, collection)).collect::<Result<Vec<_>>>()?;
        if query.reverse {
            entities.reverse();
        }
        Ok(query.page(entities.into_iter()))
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<Mutation>> {
        self.check_open()?;
        let tx = self.db.transaction(OUTBOX_STORE).build().map_err(idb_error)?;
        let store = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let records = all(store.get_all().with_limit(limit).primitive().map_err(idb_error)?.await)?;
        records
            .iter()
            .map(|record| {
                let mut mutation: Mutation = parse_doc(record, "outbox")?;
                mutation.mutation_id = record.unchecked_ref::<StoredRecord>().mutation_id().unwrap_or_default() as u64;
                Ok(mutation)
            })
            .collect()
    }

    async fn pending_count(&self) -> Result<usize> {
        self.check_open()?;
        let tx = self.db.transaction(OUTBOX_STORE).build().map_err(idb_error)?;
        let store = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;
        let count: u32 = store.count().primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        Ok(count as usize)
    }

    async fn settle(&self, answers: &[ServerAnswer], policies: &Policies, now: f64, cursor: Option<&str>) -> Result<Vec<Settled>> {
        self.check_open()?;
        let known = |answer: &&ServerAnswer| self.schema.collections.contains_key(answer.collection());
        let answers: Vec<&ServerAnswer> = answers.iter().filter(known).collect();
        let mut names: BTreeSet<String> = answers.iter().map(|a| entity_store(a.collection())).collect();
        names.insert(OUTBOX_STORE.to_owned());
        names.insert(META_STORE.to_owned());
        let names: Vec<String> = names.into_iter().collect();
        let tx = self.db.transaction(names.as_slice()).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
        let outbox = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;
        let meta = tx.object_store(META_STORE).map_err(idb_error)?;

        let mut current: HashMap<(String, String), Option<Entity>> = HashMap::new();
        let mut reads = Vec::new();
        for answer in &answers {
            let key = (answer.collection().to_owned(), answer.id().to_owned());
            if current.insert(key.clone(), None).is_none() {
                let store = tx.object_store(&entity_store(&key.0)).map_err(idb_error)?;
                let read = store.get::<JsValue, _, _>(key.1.as_str()).primitive().map_err(idb_error)?;
                reads.push((key, read));
            }
        }
        for (key, read) in reads {
            let record: Option<JsValue> = read.await.map_err(idb_error)?;
            current.insert(key.clone(), record.map(|record| entity_of(&record, &key.0)).transpose()?);
        }

        // Answers to a push count only while their outbox entry is there: another
        // tab's syncer may have recorded the same answer already.
        let mut queued = HashMap::new();
        for mutation_id in answers.iter().filter_map(|a| a.mutation_id()) {
            let read = outbox.count().with_query(mutation_id as f64).primitive().map_err(idb_error)?;
            queued.insert(mutation_id, read);
        }
        let mut still_queued = BTreeSet::new();
        for (mutation_id, read) in queued {
            if read.await.map_err(idb_error)? > 0 {
                still_queued.insert(mutation_id);
            }
        }

        let mut decisions = Vec::with_capacity(answers.len());
        for answer in answers {
            let key = (answer.collection().to_owned(), answer.id().to_owned());
            if answer.mutation_id().is_some_and(|id| !still_queued.contains(&id)) {
                decisions.push((key, Settlement { entity: None, remove: None, drop_pending: false, enqueue: None, outcome: Outcome::Unchanged }));
                continue;
            }
            let decision = settle(current[&key].as_ref(), answer, policies.of(&key.0), now);
            if let Some(entity) = &decision.entity {
                current.insert(key.clone(), Some(entity.clone()));
            }
            decisions.push((key, decision));
        }

        let superseded: BTreeSet<&(String, String)> =
            decisions.iter().filter(|(_, d)| d.drop_pending).map(|(key, _)| key).collect();
        if !superseded.is_empty() {
            // Conflicts are rare, so finding an entity's entries by reading the
            // outbox beats keeping an index on every outbox row. This runs
            // before the resolutions are appended, so they are not among them.
            for record in all(outbox.get_all().primitive().map_err(idb_error)?.await)? {
                let mutation: Mutation = parse_doc(&record, "outbox")?;
                let Some(mutation_id) = record.unchecked_ref::<StoredRecord>().mutation_id() else { continue };
                if superseded.contains(&(mutation.collection, mutation.id)) {
                    outbox.delete(mutation_id).primitive().map_err(idb_error)?;
                }
            }
        }
        let mut settled = Vec::with_capacity(decisions.len());
        for ((collection, id), decision) in decisions {
            if let Some(mutation_id) = decision.remove {
                outbox.delete(mutation_id as f64).primitive().map_err(idb_error)?;
            }
            if let Some(mutation) = &decision.enqueue {
                outbox.add(mutation_record(mutation)?).primitive().map_err(idb_error)?;
            }
            if let Some(entity) = &decision.entity {
                let store = tx.object_store(&entity_store(&collection)).map_err(idb_error)?;
                store.put(entity_record(entity, self.index_fields(&collection)?)?).primitive().map_err(idb_error)?;
            }
            settled.push(Settled { collection, id, entity: decision.entity, outcome: decision.outcome });
        }
        if let Some(cursor) = cursor {
            meta.put(cursor).with_key(CURSOR_KEY).primitive().map_err(idb_error)?;
        }
        if self.fail_next_apply.replace(false) {
            let _ = meta.add("duplicate").with_key("clientId").primitive();
        }
        // Commit only once every request has settled (see `apply`): requests
        // settle in order and a failure aborts the rest, so a last read that
        // succeeds means every write before it did.
        let _: u32 = meta.count().primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        tx.commit().await.map_err(idb_error)?;
        Ok(settled)
    }

    async fn sync_meta(&self) -> Result<SyncMeta> {
        self.check_open()?;
        let tx = self.db.transaction(META_STORE).build().map_err(idb_error)?;
        let meta = tx.object_store(META_STORE).map_err(idb_error)?;
        let cursor: Option<String> = meta.get(CURSOR_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        let saved: Option<String> = meta.get(SYNC_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        let saved: SyncMeta = match saved {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Storage(format!("unreadable sync state: {e}")))?,
            None => SyncMeta::default(),
        };
        Ok(SyncMeta { cursor, ..saved })
    }

    async fn save_sync_meta(&self, saved: &SyncMeta) -> Result<()> {
        self.check_open()?;
        let text = serde_json::to_string(&SyncMeta { cursor: None, ..saved.clone() })
            .map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))?;
        let tx = self.db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
        let meta = tx.object_store(META_STORE).map_err(idb_error)?;
        meta.put(text).with_key(SYNC_KEY).primitive().map_err(idb_error)?;
        tx.commit().await.map_err(idb_error)
    }

    fn close(&self) {
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some("the database was closed with close()".to_owned());
            let sys: &web_sys::IdbDatabase = self.db.as_sys();
            sys.close();
        }
    }
}

/// Collects the records of a `getAll` request.
fn all<I>(records: std::result::Result<I, indexed_db_futures::error::Error>) -> Result<Vec<JsValue>>
where
    I: Iterator<Item = std::result::Result<JsValue, indexed_db_futures::error::Error>>,
{
    records.map_err(idb_error)?.collect::<std::result::Result<Vec<_>, _>>().map_err(idb_error)
}

/// Opens a database at its current version (creating an empty one if needed).
async fn open_existing(name: &str) -> Result<Database> {
    Database::open(name).await.map_err(open_error)
}

/// The object stores of `db` and the index names of each.
fn read_layout(db: &Database) -> Result<Layout> {
    let names: Vec<String> = db.object_store_names().collect();
    let mut layout = Layout::new();
    if names.is_empty() {
        return Ok(layout);
    }
    let tx = db.transaction(names.as_slice()).build().map_err(idb_error)?;
    for name in names {
        let store = tx.object_store(&name).map_err(idb_error)?;
        layout.insert(name, store.index_names().collect());
    }
    Ok(layout)
}

/// Opens `name` at `version` and applies `plan` in the `versionchange` transaction.
async fn upgrade(name: &str, version: f64, plan: &UpgradePlan) -> Result<()> {
    let factory = idb_factory()?;
    let request = factory.open_with_f64(name, version).map_err(js_storage_error)?;
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
        params.set_key_path(&"mutationId".into());
        params.set_auto_increment(true);
        db.create_object_store_with_optional_parameters(OUTBOX_STORE, &params).map_err(describe)?;
    }
    for change in &plan.stores {
        let store = if change.create {
            let params = web_sys::IdbObjectStoreParameters::new();
            params.set_key_path(&"id".into());
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

#[wasm_bindgen(inline_js = "
export function entityRecord(id, doc, ix) { return { id, doc, ix }; }
export function mutationRecord(doc) { return { doc }; }
")]
extern "C" {
    /// `{ id, doc, ix }`, built in one call rather than property by property.
    #[wasm_bindgen(js_name = entityRecord)]
    fn make_entity_record(id: &str, doc: &Uint8Array, ix: &Object) -> JsValue;
    #[wasm_bindgen(js_name = mutationRecord)]
    fn make_mutation_record(doc: &Uint8Array) -> JsValue;

    /// A stored record, read through direct property access.
    type StoredRecord;
    #[wasm_bindgen(method, getter)]
    fn doc(this: &StoredRecord) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = mutationId)]
    fn mutation_id(this: &StoredRecord) -> Option<f64>;
}

/// The stored form of an entity.
fn entity_record(entity: &Entity, index_fields: &[(IndexSpec, JsValue)]) -> Result<JsValue> {
    let doc = serde_json::to_vec(entity).map_err(|e| Error::Storage(format!("cannot encode entity: {e}")))?;
    let ix = Object::new();
    for (index, field) in index_fields {
        if let Some(key) = index.key_of(entity) {
            // Setting a property on a plain object we just created cannot fail.
            let _ = Reflect::set(&ix, field, &key_to_js(&key));
        }
    }
    Ok(make_entity_record(&entity.id, &Uint8Array::from(doc.as_slice()), &ix))
}

fn mutation_record(mutation: &Mutation) -> Result<JsValue> {
    let doc = serde_json::to_vec(mutation).map_err(|e| Error::Storage(format!("cannot encode mutation: {e}")))?;
    Ok(make_mutation_record(&Uint8Array::from(doc.as_slice())))
}

fn entity_of(record: &JsValue, collection: &str) -> Result<Entity> {
    parse_doc(record, collection)
}

/// Decodes a record's `doc`: UTF-8 JSON bytes, copied into wasm memory in one
/// go (much cheaper than transcoding a JS string); a JSON string is read too.
fn parse_doc<T: serde::de::DeserializeOwned>(record: &JsValue, place: &str) -> Result<T> {
    let doc = record.unchecked_ref::<StoredRecord>().doc();
    let parsed = if let Some(bytes) = doc.dyn_ref::<Uint8Array>() {
        serde_json::from_slice(&bytes.to_vec())
    } else if let Some(text) = doc.as_string() {
        serde_json::from_str(&text)
    } else {
        return Err(Error::Storage(format!("a record in {place:?} has no readable `doc`")));
    };
    parsed.map_err(|e| Error::Storage(format!("a record in {place:?} is unreadable: {e}")))
}

pub(crate) fn key_to_js(key: &IndexKey) -> JsValue {
    match key {
        IndexKey::Number(n) => JsValue::from_f64(*n),
        IndexKey::String(s) => JsValue::from_str(s),
        IndexKey::Array(items) => items.iter().map(key_to_js).collect::<Array>().into(),
    }
}

fn key_range(range: &crate::core::KeyRange) -> Option<IdbKeyRange<JsValue>> {
    use std::ops::Bound::*;
    let bound = |b: &std::ops::Bound<IndexKey>| match b {
        Included(key) => Some((key_to_js(key), false)),
        Excluded(key) => Some((key_to_js(key), true)),
        Unbounded => None,
    };
    match (bound(&range.lower), bound(&range.upper)) {
        (None, None) => None,
        (Some((low, open)), None) => Some(IdbKeyRange::LowerBound(low, open)),
        (None, Some((high, open))) => Some(IdbKeyRange::UpperBound(high, open)),
        (Some((low, low_open)), Some((high, high_open))) => Some(IdbKeyRange::Bound(low, low_open, high, high_open)),
    }
}

/// Maps a failure of `indexed_db_futures` to the store's error.
fn idb_error(error: indexed_db_futures::error::Error) -> Error {
    match error {
        indexed_db_futures::error::Error::DomException(exception) => {
            let exception: web_sys::DomException = exception.into();
            dom_error(&exception.name(), &exception.message())
        }
        other => Error::Storage(other.to_string()),
    }
}

fn open_error(error: indexed_db_futures::error::OpenDbError) -> Error {
    match error {
        indexed_db_futures::error::OpenDbError::Base(inner) => idb_error(inner),
        other => Error::Storage(other.to_string()),
    }
}

fn dom_error(name: &str, message: &str) -> Error {
    match name {
        "QuotaExceededError" => Error::QuotaExceeded(message.to_owned()),
        "InvalidStateError" => Error::DatabaseClosed(message.to_owned()),
        "VersionError" => Error::Schema(message.to_owned()),
        _ => Error::Storage(format!("{name}: {message}")),
    }
}

fn js_storage_error(error: JsValue) -> Error {
    Error::Storage(describe_js_error(&error))
}

fn describe_js_error(error: &JsValue) -> String {
    match error.dyn_ref::<web_sys::DomException>() {
        Some(exception) => format!("{}: {}", exception.name(), exception.message()),
        None => error.as_string().unwrap_or_else(|| format!("{error:?}")),
    }
}
