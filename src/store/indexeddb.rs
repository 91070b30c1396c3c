//! The IndexedDB store: one readwrite transaction per batch of writes, each
//! entity and its outbox entry in it together.
//!
//! The two hot paths, `apply` and `load`, run their transaction in a few lines
//! of JS (the IndexedDB part of `src/browser.js`): for `apply` Rust hands over
//! the prepared records and awaits one Promise; `load` takes each store's
//! records a few thousand at a time, parsing one chunk while IndexedDB reads
//! the next. Neither pays for a listener closure per request. Where the engine
//! keeps a transaction atomic after `commit()` (Chromium and WebKit; not
//! Firefox, found out at open), a write commits as soon as no check can abort
//! it, sparing a round trip. Other reads go through `indexed_db_futures`.
//! Schema upgrades use web-sys directly, because an upgrade must reach the
//! `versionchange` transaction (to add an index to an existing object store),
//! which that crate's upgrade callback does not expose.
//!
//! Writes are checked rather than preceded by a read. The store remembers, per
//! entity, the doc it last saw stored (`known`: filled by `load`, updated by every
//! commit), computes each write on it and sends everything at once: an entity
//! believed absent is written with `add` (which fails if another tab or worker
//! created it meanwhile), one believed present is read in the same transaction
//! just before its `put` and compared with what was believed. Any mismatch aborts
//! the transaction, and the batch runs again reading every entity first inside
//! its transaction, as stored. So the common case costs no round trip beyond the
//! writes themselves, and a write is never computed on a stale entity.
//!
//! The browser can take the connection away: WebKit loses it when its
//! IndexedDB process goes away ("Connection to Indexed Database server lost",
//! notably on iOS after the app was in the background), and every engine
//! closes it when the site's storage is cleared. After a failure the store
//! checks whether its connection still works; if the browser closed it, the
//! store opens a new one and carries on (see [`IdbStore::reconnect`]), unless
//! the database itself is gone, which is `DatabaseClosed` for good. A call
//! that only reads runs again on the new connection. A write whose transaction
//! was cut off is never simply sent again: the store first reads what was
//! stored, so it is written exactly once (see [`IdbStore::apply`]).

use std::cell::{Cell, RefCell};
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use indexed_db_futures::KeyRange as IdbKeyRange;
use js_sys::{Array, Map, Object, Reflect, Uint8Array};
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
    name: String,
    /// The current connection; replaced when the browser closed the last one.
    connection: RefCell<Rc<Connection>>,
    schema: Schema,
    collections: HashMap<String, CollectionInfo>,
    /// Each collection's object store name and `known` map, in `position` order.
    stores: Array,
    knowns: Array,
    client_id: String,
    /// Set when the app closed the store or it cannot go on (the database was
    /// upgraded elsewhere, or deleted); the reason.
    closed: Rc<RefCell<Option<String>>>,
    /// A failure the next write is made to meet, for tests.
    fault: Cell<Option<Fault>>,
}

/// One connection to the database, and the handler that watches it.
struct Connection {
    db: Database,
    _on_version_change: Closure<dyn FnMut()>,
}

impl Connection {
    /// Wraps `db`. Another tab upgrading the schema needs this connection
    /// gone: it is closed then, and `closed` says why to every later call.
    fn new(db: Database, closed: &Rc<RefCell<Option<String>>>) -> Rc<Connection> {
        let sys: web_sys::IdbDatabase = db.as_sys().clone().unchecked_into();
        let on_version_change = {
            let closed = closed.clone();
            let sys = sys.clone();
            Closure::<dyn FnMut()>::new(move || {
                sys.close();
                *closed.borrow_mut() = Some(UPGRADED_ELSEWHERE.to_owned());
            })
        };
        sys.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Rc::new(Connection { db, _on_version_change: on_version_change })
    }

    fn sys(&self) -> &web_sys::IdbDatabase {
        self.db.as_sys()
    }

    /// Whether the browser has closed this connection: it then refuses to
    /// start a transaction.
    fn is_broken(&self) -> bool {
        self.sys().transaction_with_str(META_STORE).is_err()
    }
}

/// How many writes a batch computes before it sends their requests: IndexedDB
/// stores the first ones while the next ones are computed.
const SEND_EVERY: usize = 500;

const UPGRADED_ELSEWHERE: &str = "another tab or worker upgraded the database; open it again";
const DELETED: &str = "the browser deleted the database (the site's storage was cleared or evicted); \
                       open it again: it starts empty, with a new client id";

/// A failure a test makes the next write meet, each as a browser produces it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A request fails inside the transaction, after the writes were issued
    /// (a real constraint violation): the browser rolls every write back.
    Constraint,
    /// The connection is lost while the transaction runs: it is aborted.
    LostBeforeCommit,
    /// The connection is lost once the transaction has committed, before the
    /// page hears of it: the write is stored, but the call sees a failure.
    LostAfterCommit,
}

impl Fault {
    fn as_js(fault: Option<Fault>) -> Option<&'static str> {
        fault.map(|fault| match fault {
            Fault::Constraint => "constraint",
            Fault::LostBeforeCommit => "lost-before-commit",
            Fault::LostAfterCommit => "lost-after-commit",
        })
    }
}

/// How a write transaction failed.
struct Failed {
    error: Error,
    /// What was sent, when the transaction got that far; its outcome is
    /// then unknown if the connection was lost.
    sent: Option<Sent>,
}

/// The batch a transaction carried and the outcome computed for it.
struct Sent {
    batch: WriteBatch,
    results: Vec<Result<Applied>>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed { error, sent: None }
    }
}

/// What the store keeps per declared collection.
struct CollectionInfo {
    /// Where this collection is in `IdbStore::stores` and `IdbStore::knowns`.
    position: u32,
    /// The object store's name, as a JS string made once.
    store: JsValue,
    /// Each declared index with the `ix` field holding its key.
    index_fields: Vec<IndexField>,
    /// A JS `Map`: entity id → the doc (JSON text) this connection last saw stored.
    known: Map,
    /// A JS `Map`: entity id → the record (as reads return it) built while
    /// loading, for the JS layer to take (see `Loader` in `src/browser.js`).
    records: RefCell<Map>,
}

/// A declared index and the field of a record's `ix` that holds its key.
struct IndexField {
    index: IndexSpec,
    name: String,
    /// `name` as a JS string made once.
    js: JsValue,
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

        // One transaction, all three reads sent at once.
        let tx = db.transaction(META_STORE).build().map_err(idb_error)?;
        let meta = tx.object_store(META_STORE).map_err(idb_error)?;
        let format = meta.get("formatVersion").primitive().map_err(idb_error)?;
        let client_id = meta.get("clientId").primitive().map_err(idb_error)?;
        let backfill = meta.get(BACKFILL_KEY).primitive().map_err(idb_error)?;
        let format: Option<JsValue> = format.await.map_err(idb_error)?;
        let client_id: Option<String> = client_id.await.map_err(idb_error)?;
        let backfill: Option<JsValue> = backfill.await.map_err(idb_error)?;
        check_format(format.and_then(|v| v.as_f64()).map(|v| v as u32))?;
        let client_id = client_id.ok_or_else(|| Error::Storage("the database has no client id".into()))?;
        drop(meta);
        drop(tx);
        // `clientId` exists now: the probe's add of it must fail.
        probe_early_commit(db.as_sys().unchecked_ref(), META_STORE, "clientId");

        let closed = Rc::new(RefCell::new(None));
        let infos: Vec<(String, CollectionInfo)> = schema
            .collections
            .iter()
            .enumerate()
            .map(|(position, (name, collection))| {
                let index_fields = collection
                    .indexes
                    .iter()
                    .map(|index| {
                        let name = index_field(&index.name);
                        IndexField { index: index.clone(), js: JsValue::from_str(&name), name }
                    })
                    .collect();
                let info = CollectionInfo {
                    position: position as u32,
                    store: entity_store(name).into(),
                    index_fields,
                    known: Map::new(),
                    records: RefCell::new(Map::new()),
                };
                (name.clone(), info)
            })
            .collect();
        let stores = infos.iter().map(|(_, info)| info.store.clone()).collect();
        let knowns = infos.iter().map(|(_, info)| JsValue::from(&info.known)).collect();
        let store = IdbStore {
            name: name.to_owned(),
            connection: RefCell::new(Connection::new(db, &closed)),
            schema,
            collections: infos.into_iter().collect(),
            stores,
            knowns,
            client_id,
            closed,
            fault: Cell::new(None),
        };
        if let Some(pending) = backfill {
            store.backfill(&pending).await?;
        }
        Ok(store)
    }

    /// Entity id → doc (JSON text) as this connection last saw it stored;
    /// right after `load`, every doc it read. The JS layer builds its first
    /// records from them.
    pub fn stored_docs(&self, collection: &str) -> Option<Map> {
        self.collections.get(collection).map(|info| info.known.clone())
    }

    /// The records `load` built, from its docs, while IndexedDB read the next
    /// ones (id → frozen record), handed over once: the store keeps none.
    pub fn take_loaded_records(&self, collection: &str) -> Option<Map> {
        self.collections.get(collection).map(|info| info.records.replace(Map::new()))
    }

    /// Deletes a database by name.
    pub async fn delete(name: &str) -> Result<()> {
        Database::delete_by_name(name).map_err(open_error)?.await.map_err(idb_error)
    }

    /// Makes the next `apply` (or `settle`) fail inside its transaction,
    /// after its writes were issued, by a real IndexedDB constraint violation:
    /// the browser must then roll every write of that transaction back. For tests.
    #[doc(hidden)]
    pub fn fail_next_apply(&self) {
        self.fault.set(Some(Fault::Constraint));
    }

    /// Makes the next `apply` meet `fault`. For tests.
    #[doc(hidden)]
    pub fn fail_next_write_with(&self, fault: Fault) {
        self.fault.set(Some(fault));
    }

    /// Whether write transactions commit as soon as no check can abort them
    /// (see `WriteBatch.run` in `src/browser.js`), as found out at the first open. For tests.
    #[doc(hidden)]
    pub async fn commits_early() -> bool {
        JsFuture::from(commits_early_js()).await.ok().and_then(|answer| answer.as_bool()).unwrap_or(false)
    }

    /// Closes the connection as the browser does when it takes it away: the
    /// store has not closed it and is not told. For tests.
    #[doc(hidden)]
    pub fn lose_connection(&self) {
        self.connection().sys().close();
    }

    /// Makes and sends `writes` as `apply` does, then stops before waiting
    /// for them, as when wasm traps half way; returns the transaction. For tests.
    #[doc(hidden)]
    pub fn send_and_stop(&self, writes: &[Write]) -> Result<JsValue> {
        let tx = self.begin_write(&self.connection(), writes, false)?;
        let batch = WriteBatch::new(&tx, None, &self.stores, &self.knowns);
        self.compute(writes, self.believed(writes)?, &batch, true)?;
        Ok(tx)
    }

    fn check_open(&self) -> Result<()> {
        match &*self.closed.borrow() {
            Some(reason) => Err(Error::DatabaseClosed(reason.clone())),
            None => Ok(()),
        }
    }

    fn connection(&self) -> Rc<Connection> {
        self.connection.borrow().clone()
    }

    /// What to make of `error`, met on `connection`: a new connection when the
    /// browser had closed that one and a new one could be opened (the caller
    /// decides whether to run its call again), otherwise the error to give.
    async fn recover(&self, connection: &Rc<Connection>, error: Error) -> Result<Rc<Connection>> {
        self.check_open()?;
        if !connection.is_broken() {
            return Err(error);
        }
        self.reconnect(connection).await
    }

    /// Opens a new connection in place of `lost`, at the same version, unless
    /// the database is gone. Opening must not create it again: an empty
    /// database under the old name would hide that every entity and queued
    /// mutation was lost, so the upgrade such an open starts is refused, and
    /// the store stays closed with `DatabaseClosed`.
    async fn reconnect(&self, lost: &Rc<Connection>) -> Result<Rc<Connection>> {
        let gone = Rc::new(Cell::new(false));
        let opened = Database::open(self.name.as_str())
            .with_version(lost.db.version())
            .with_on_upgrade_needed({
                let gone = gone.clone();
                move |_event, _db| {
                    gone.set(true);
                    Err(JsValue::from(js_sys::Error::new("the database no longer exists")).into())
                }
            })
            .await;
        let db = match opened {
            Ok(db) => db,
            Err(error) => {
                let reason = if gone.get() {
                    DELETED
                } else {
                    match open_error(error) {
                        // A newer version: another tab upgraded the database meanwhile.
                        Error::Schema(_) => UPGRADED_ELSEWHERE,
                        other => return Err(other),
                    }
                };
                self.closed.borrow_mut().get_or_insert_with(|| reason.to_owned());
                return Err(Error::DatabaseClosed(reason.to_owned()));
            }
        };
        // Two calls may have found the connection lost at once: keep one new connection.
        let mut current = self.connection.borrow_mut();
        if Rc::ptr_eq(&current, lost) {
            *current = Connection::new(db, &self.closed);
        } else {
            db.close();
        }
        Ok(current.clone())
    }

    /// Runs `call` on the connection, and once more on a new one when the
    /// browser had closed the first. Only for calls that read, or write what
    /// is harmless to write twice.
    async fn idempotent<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Rc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.check_open()?;
        let connection = self.connection();
        match call(connection.clone()).await {
            Err(error) => call(self.recover(&connection, error).await?).await,
            done => done,
        }
    }

    fn collection_info(&self, collection: &str) -> Result<&CollectionInfo> {
        self.schema.collection(collection)?;
        Ok(&self.collections[collection])
    }

    /// Recomputes `ix` for the collections listed in `pending`, which gained
    /// an index in an upgrade.
    async fn backfill(&self, pending: &JsValue) -> Result<()> {
        let collections: Vec<String> = Array::from(pending).iter().filter_map(|v| v.as_string()).collect();
        let mut stores: Vec<String> = collections.iter().map(|c| entity_store(c)).collect();
        stores.push(META_STORE.to_owned());
        let connection = self.connection();
        let tx = connection.db.transaction(stores.as_slice()).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
        for collection in &collections {
            let Ok(info) = self.collection_info(collection) else { continue };
            let store = tx.object_store(&entity_store(collection)).map_err(idb_error)?;
            let records = all(store.get_all().primitive().map_err(idb_error)?.await)?;
            for record in records {
                let entity: Entity = parse_doc(&record, collection)?;
                let doc = encode(&entity, "entity")?;
                let record = make_entity_record(&entity.id, &doc, &index_keys(&entity, &info.index_fields));
                store.put(record).primitive().map_err(idb_error)?;
            }
        }
        // The last request settling means every put has (see `apply`).
        tx.object_store(META_STORE).map_err(idb_error)?.delete(BACKFILL_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        tx.commit().await.map_err(idb_error)
    }

    /// Computes `writes` on `current` (each touched entity as believed or read
    /// stored) and adds the records to `batch`, which sends them as it goes.
    /// With `check`, the first write to each entity also checks that the
    /// entity is still stored as `known` says. Returns each write's outcome;
    /// on an error the batch is abandoned, having written nothing.
    fn prepare<'w>(
        &self,
        writes: &'w [Write],
        current: HashMap<(&'w str, &'w str), Option<Entity>>,
        batch: &WriteBatch,
        check: bool,
    ) -> Result<Vec<Result<Applied>>> {
        let results = self.compute(writes, current, batch, check);
        if results.is_err() {
            batch.abandon();
        }
        results
    }

    /// `prepare`, but for abandoning the batch on an error.
    fn compute<'w>(
        &self,
        writes: &'w [Write],
        mut current: HashMap<(&'w str, &'w str), Option<Entity>>,
        batch: &WriteBatch,
        check: bool,
    ) -> Result<Vec<Result<Applied>>> {
        // `current` holds each touched entity once. When no entity is written
        // twice (a single write, a bulk put of new entities), every write is
        // the first and the last to its entity: nothing is kept between writes.
        let repeated = current.len() < writes.len();
        let mut checked: HashSet<(&'w str, &'w str)> = HashSet::new();
        let mut results = Vec::with_capacity(writes.len());
        let mut outgoing = Outgoing::default();
        for write in writes {
            let key = (write.collection.as_str(), write.id.as_str());
            let first = !repeated || checked.insert(key);
            let result = apply_write(current.get(&key).and_then(Option::as_ref), write);
            if let Ok(applied) = &result {
                outgoing.write(self.collection_info(&write.collection)?, applied, check && first)?;
                if repeated {
                    current.insert(key, Some(applied.entity.clone()));
                }
            } else if check && first {
                // Refused on what was believed (say, a patch of a missing
                // entity): the belief must hold for the refusal to stand.
                outgoing.check(self.collection_info(&write.collection)?, &write.id);
            }
            results.push(result);
            if results.len() % SEND_EVERY == 0 {
                outgoing.send(batch)?;
            }
        }
        outgoing.send(batch)?;
        Ok(results)
    }

    /// Each entity `writes` touch, as this connection last saw it stored.
    fn believed<'w>(&self, writes: &'w [Write]) -> Result<HashMap<(&'w str, &'w str), Option<Entity>>> {
        let mut believed = HashMap::with_capacity(writes.len());
        let mut keys = Vec::with_capacity(writes.len());
        let mut positions = Vec::with_capacity(writes.len());
        let mut ids = String::new();
        for write in writes {
            let key = (write.collection.as_str(), write.id.as_str());
            if let Entry::Vacant(slot) = believed.entry(key) {
                slot.insert(None);
                keys.push(key);
                positions.push(self.collection_info(&write.collection)?.position);
                if !ids.is_empty() {
                    ids.push_str(SEPARATOR);
                }
                ids.push_str(&write.id);
            }
        }
        if keys.is_empty() {
            return Ok(believed);
        }
        // One call for all: a call per write would cost more than the lookups.
        let docs = known_docs(&self.knowns, &positions, &ids);
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(doc) = docs.get(i as u32).as_string() {
                believed.insert(key, Some(parse_text(&doc, key.0)?));
            }
        }
        Ok(believed)
    }

    /// Begins a write transaction on `connection` over the entity stores
    /// `writes` touch, plus the outbox (and `meta` when a test injects a failure).
    fn begin_write(&self, connection: &Connection, writes: &[Write], inject_failure: bool) -> Result<JsValue> {
        let mut positions: Vec<u32> =
            writes.iter().map(|w| self.collection_info(&w.collection).map(|info| info.position)).collect::<Result<_>>()?;
        positions.sort_unstable();
        positions.dedup();
        begin_write(connection.sys(), &self.stores, &positions, inject_failure).map_err(|e| js_error(&e))
    }

    /// One go at `apply` on `connection`: computes the writes on the entities
    /// as this connection last saw them stored, and lets the transaction check
    /// that they still are; if another tab or worker changed one, computes
    /// them again on the entities read inside a second transaction.
    async fn write(&self, connection: &Connection, writes: &[Write]) -> std::result::Result<Vec<Result<Applied>>, Failed> {
        let fault = self.fault.take();
        let believed = self.believed(writes)?;
        let tx = self.begin_write(connection, writes, fault == Some(Fault::Constraint))?;
        let batch = WriteBatch::new(&tx, Fault::as_js(fault), &self.stores, &self.knowns);
        let results = self.prepare(writes, believed, &batch, true)?;
        match JsFuture::from(batch.run()).await {
            Ok(stale) if stale.is_null() => {}
            Ok(mutation_ids) => return Ok(with_mutation_ids(results, &mutation_ids)),
            Err(error) => return Err(Failed { error: js_error(&error), sent: Some(Sent { batch, results }) }),
        }

        // Another tab or worker changed one of these entities: read them
        // inside the transaction, then compute on what is stored.
        let tx = self.begin_write(connection, writes, fault == Some(Fault::Constraint))?;
        let mut keys: Vec<(&str, &str)> = writes.iter().map(|w| (w.collection.as_str(), w.id.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        let stores: Array = keys.iter().map(|(c, _)| self.collections[*c].store.clone()).collect();
        let known: Array = keys.iter().map(|(c, _)| self.collections[*c].known.clone()).collect();
        let ids: Array = keys.iter().map(|(_, id)| JsValue::from_str(id)).collect();
        let docs = JsFuture::from(read_docs(&tx, &stores, &known, &ids)).await.map_err(|e| js_error(&e))?;
        let mut stored = HashMap::with_capacity(keys.len());
        for (key, doc) in keys.into_iter().zip(Array::from(&docs).iter()) {
            stored.insert(key, doc.as_string().map(|doc| parse_text(&doc, key.0)).transpose()?);
        }
        let batch = WriteBatch::new(&tx, Fault::as_js(fault), &self.stores, &self.knowns);
        let results = self.prepare(writes, stored, &batch, false)?;
        match JsFuture::from(batch.run()).await {
            Ok(mutation_ids) => Ok(with_mutation_ids(results, &mutation_ids)),
            Err(error) => Err(Failed { error: js_error(&error), sent: Some(Sent { batch, results }) }),
        }
    }

    /// `settle` on `connection`.
    async fn record(
        &self,
        connection: &Connection,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
    ) -> Result<Vec<Settled>> {
        let known = |answer: &&ServerAnswer| self.schema.collections.contains_key(answer.collection());
        let answers: Vec<&ServerAnswer> = answers.iter().filter(known).collect();
        let mut names: BTreeSet<String> = answers.iter().map(|a| entity_store(a.collection())).collect();
        names.insert(OUTBOX_STORE.to_owned());
        names.insert(META_STORE.to_owned());
        let names: Vec<String> = names.into_iter().collect();
        let tx = connection.db.transaction(names.as_slice()).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
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
            current.insert(key.clone(), record.map(|record| parse_doc(&record, &key.0)).transpose()?);
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
        let mut written = Vec::new();
        for ((collection, id), decision) in decisions {
            if let Some(mutation_id) = decision.remove {
                outbox.delete(mutation_id as f64).primitive().map_err(idb_error)?;
            }
            if let Some(mutation) = &decision.enqueue {
                let record = Object::new();
                let _ = Reflect::set(&record, &"doc".into(), &encode(mutation, "a mutation")?.into());
                outbox.add(record).primitive().map_err(idb_error)?;
            }
            if let Some(entity) = &decision.entity {
                let info = self.collection_info(&collection)?;
                let doc = encode(entity, "an entity")?;
                let record = make_entity_record(&entity.id, &doc, &index_keys(entity, &info.index_fields));
                tx.object_store(&entity_store(&collection)).map_err(idb_error)?.put(record).primitive().map_err(idb_error)?;
                written.push((info, entity.id.clone(), doc));
            }
            settled.push(Settled { collection, id, entity: decision.entity, outcome: decision.outcome });
        }
        if let Some(cursor) = cursor {
            meta.put(cursor).with_key(CURSOR_KEY).primitive().map_err(idb_error)?;
        }
        if self.fault.take() == Some(Fault::Constraint) {
            let _ = meta.add("duplicate").with_key("clientId").primitive();
        }
        // Commit only once every request has settled (see `apply`): requests
        // settle in order and a failure aborts the rest, so a last read that
        // succeeds means every write before it did.
        let _: u32 = meta.count().primitive().map_err(idb_error)?.await.map_err(idb_error)?;
        tx.commit().await.map_err(idb_error)?;
        // Later checked writes compare against what is stored now.
        for (info, id, doc) in written {
            info.known.set(&id.into(), &doc.into());
        }
        Ok(settled)
    }
}

/// Fills in the outbox keys the store assigned, in order, to the writes that applied.
fn with_mutation_ids(mut results: Vec<Result<Applied>>, mutation_ids: &JsValue) -> Vec<Result<Applied>> {
    let mutation_ids = Array::from(mutation_ids);
    let mut mutation_ids = mutation_ids.iter();
    for applied in results.iter_mut().flatten() {
        applied.mutation.mutation_id = mutation_ids.next().and_then(|id| id.as_f64()).unwrap_or_default() as u64;
    }
    results
}

impl Store for IdbStore {
    async fn load(&self) -> Result<Snapshot> {
        let names: &Vec<&String> = &self.collections.keys().collect();
        let stores: &Array = &self.collections.values().map(|info| info.store.clone()).collect();
        let known: &Array = &self.collections.values().map(|info| info.known.clone()).collect();
        let records: &Array = &self.collections.values().map(|info| info.records.borrow().clone()).collect();
        let loaded = self
            .idempotent(|connection| async move {
                let loader = Loader::new(connection.sys(), stores, known, records).map_err(|e| js_error(&e))?;
                let mut loaded: Vec<Vec<Entity>> = names.iter().map(|_| Vec::new()).collect();
                loop {
                    let chunk = JsFuture::from(loader.next()).await.map_err(|e| js_error(&e))?;
                    if chunk.is_null() {
                        break Ok(loaded);
                    }
                    let chunk: LoadedChunk = chunk.unchecked_into();
                    let (index, json) = (chunk.store() as usize, chunk.json().to_vec());
                    // One copy into wasm memory and one parse per chunk, while IndexedDB reads the next.
                    let entities: Vec<Entity> = serde_json::from_slice(&json).map_err(|e| unreadable(names[index], e))?;
                    loaded[index].extend(entities);
                }
            })
            .await?;
        let collections = names.iter().map(|name| (*name).clone()).zip(loaded).collect();
        Ok(Snapshot { client_id: self.client_id.clone(), collections })
    }

    /// Writes `writes` in one transaction on the connection. If the browser
    /// closed the connection meanwhile, a new one is opened, and:
    /// - if the transaction was never started, the writes go on the new one;
    /// - if it was cut off, the entities it wrote are read back: all of them
    ///   as it left them means it committed (its outcome stands); all as they
    ///   were before means it did not (the writes go on the new connection).
    ///   Either way each write is stored once. Anything else (another tab
    ///   wrote the same entities in between) fails the call.
    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        self.check_open()?;
        let connection = self.connection();
        let failed = match self.write(&connection, writes).await {
            Ok(results) => return Ok(results),
            Err(failed) => failed,
        };
        let connection = self.recover(&connection, failed.error).await?;
        let Some(Sent { batch, results }) = failed.sent else {
            return self.write(&connection, writes).await.map_err(|failed| failed.error);
        };
        let tx = self.begin_write(&connection, writes, false)?;
        match JsFuture::from(batch.outcome(&tx)).await.map_err(|e| js_error(&e))? {
            outcome if outcome.is_null() => self.write(&connection, writes).await.map_err(|failed| failed.error),
            mutation_ids => Ok(with_mutation_ids(results, &mutation_ids)),
        }
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        self.schema.collection(collection)?;
        let store_name = &entity_store(collection);
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(store_name.as_str()).build().map_err(idb_error)?;
            let store = tx.object_store(store_name).map_err(idb_error)?;
            let record: Option<JsValue> = store.get(id).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
            record.map(|record| parse_doc(&record, collection)).transpose()
        })
        .await
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        let range = &query.range()?;
        let schema = self.schema.collection(collection)?;
        match &query.index {
            None => range.id_bounds().map(drop)?,
            Some(index) => {
                schema.index(index).ok_or_else(|| Error::InvalidArgument(format!("query: no index {index:?}")))?;
            }
        }
        let store_name = &entity_store(collection);
        let records = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(store_name.as_str()).build().map_err(idb_error)?;
                let store = tx.object_store(store_name).map_err(idb_error)?;
                let js_range = key_range(range);
                match &query.index {
                    None => all(match js_range {
                        Some(r) => store.get_all().with_query::<JsValue, _>(r).primitive().map_err(idb_error)?.await,
                        None => store.get_all().primitive().map_err(idb_error)?.await,
                    }),
                    Some(index_name) => {
                        let index = store.index(index_name).map_err(idb_error)?;
                        all(match js_range {
                            Some(r) => index.get_all().with_query::<JsValue, _>(r).primitive().map_err(idb_error)?.await,
                            None => index.get_all().primitive().map_err(idb_error)?.await,
                        })
                    }
                }
            })
            .await?;
        let mut entities = records.iter().map(|record| parse_doc(record, collection)).collect::<Result<Vec<_>>>()?;
        if query.reverse {
            entities.reverse();
        }
        Ok(query.page(entities.into_iter()))
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<Mutation>> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let records = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(OUTBOX_STORE).build().map_err(idb_error)?;
                let store = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;
                all(store.get_all().with_limit(limit).primitive().map_err(idb_error)?.await)
            })
            .await?;
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
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(OUTBOX_STORE).build().map_err(idb_error)?;
            let store = tx.object_store(OUTBOX_STORE).map_err(idb_error)?;
            let count: u32 = store.count().primitive().map_err(idb_error)?.await.map_err(idb_error)?;
            Ok(count as usize)
        })
        .await
    }

    /// Records the answers in one transaction. If the connection was lost
    /// meanwhile, the call fails and a new connection is opened for the next
    /// one. Whether the transaction committed is left to the next sync to find
    /// out: it meets the same answers again, and they are idempotent (an
    /// answer to a push counts only while its mutation is queued; a pull
    /// starts again from the cursor stored with the changes it covers).
    async fn settle(&self, answers: &[ServerAnswer], policies: &Policies, now: f64, cursor: Option<&str>) -> Result<Vec<Settled>> {
        self.check_open()?;
        let connection = self.connection();
        match self.record(&connection, answers, policies, now, cursor).await {
            Err(error) => {
                self.recover(&connection, error.clone()).await?;
                Err(error)
            }
            settled => settled,
        }
    }

    async fn sync_meta(&self) -> Result<SyncMeta> {
        let (cursor, saved) = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(META_STORE).build().map_err(idb_error)?;
                let meta = tx.object_store(META_STORE).map_err(idb_error)?;
                let cursor: Option<String> = meta.get(CURSOR_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
                let saved: Option<String> = meta.get(SYNC_KEY).primitive().map_err(idb_error)?.await.map_err(idb_error)?;
                Ok((cursor, saved))
            })
            .await?;
        let saved: SyncMeta = match saved {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Storage(format!("unreadable sync state: {e}")))?,
            None => SyncMeta::default(),
        };
        Ok(SyncMeta { cursor, ..saved })
    }

    async fn save_sync_meta(&self, saved: &SyncMeta) -> Result<()> {
        let text = &serde_json::to_string(&SyncMeta { cursor: None, ..saved.clone() })
            .map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))?;
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build().map_err(idb_error)?;
            let meta = tx.object_store(META_STORE).map_err(idb_error)?;
            meta.put(text.as_str()).with_key(SYNC_KEY).primitive().map_err(idb_error)?;
            tx.commit().await.map_err(idb_error)
        })
        .await
    }

    fn close(&self) {
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some("the database was closed with close()".to_owned());
            self.connection().sys().close();
            // No write will be checked against them any more.
            for info in self.collections.values() {
                info.known.clear();
            }
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

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    /// `{ id, doc, ix }`, built in one call rather than property by property.
    #[wasm_bindgen(js_name = entityRecord)]
    fn make_entity_record(id: &str, doc: &str, ix: &Object) -> JsValue;
    type Loader;
    #[wasm_bindgen(constructor, catch)]
    fn new(db: &web_sys::IdbDatabase, stores: &Array, known: &Array, records: &Array) -> std::result::Result<Loader, JsValue>;
    #[wasm_bindgen(method)]
    fn next(this: &Loader) -> js_sys::Promise;

    /// One chunk a `Loader` read: the docs of some records of one store.
    type LoadedChunk;
    #[wasm_bindgen(method, getter)]
    fn store(this: &LoadedChunk) -> u32;
    #[wasm_bindgen(method, getter)]
    fn json(this: &LoadedChunk) -> Uint8Array;
    #[wasm_bindgen(js_name = beginWrite, catch)]
    fn begin_write(db: &web_sys::IdbDatabase, stores: &Array, positions: &[u32], meta: bool) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = probeEarlyCommit)]
    fn probe_early_commit(db: &web_sys::IdbDatabase, store: &str, key: &str);
    #[wasm_bindgen(js_name = commitsEarly)]
    fn commits_early_js() -> js_sys::Promise;
    #[wasm_bindgen(js_name = readDocs)]
    fn read_docs(tx: &JsValue, stores: &Array, known: &Array, ids: &Array) -> js_sys::Promise;

    type WriteBatch;
    #[wasm_bindgen(constructor)]
    fn new(tx: &JsValue, fault: Option<&str>, stores: &Array, knowns: &Array) -> WriteBatch;
    #[wasm_bindgen(method)]
    fn send(this: &WriteBatch, entities: &str, mutations: &str, ops: &[u32]);
    #[wasm_bindgen(method)]
    fn abandon(this: &WriteBatch);
    #[wasm_bindgen(method)]
    fn run(this: &WriteBatch) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    fn outcome(this: &WriteBatch, tx: &JsValue) -> js_sys::Promise;

    /// For each id of `ids` (joined by `SEPARATOR`), the doc (JSON text) the
    /// `known` map at the same place in `positions` holds, or undefined.
    #[wasm_bindgen(js_name = knownDocs)]
    fn known_docs(knowns: &Array, positions: &[u32], ids: &str) -> Array;

    /// A stored record, read through direct property access.
    type StoredRecord;
    #[wasm_bindgen(method, getter)]
    fn doc(this: &StoredRecord) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = mutationId)]
    fn mutation_id(this: &StoredRecord) -> Option<f64>;
}

fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Storage(format!("cannot encode {what}: {e}")))
}

/// The `ix` object of an entity's record: the key of each declared index it has one for.
fn index_keys(entity: &Entity, index_fields: &[IndexField]) -> Object {
    let ix = Object::new();
    for field in index_fields {
        if let Some(key) = field.index.key_of(entity) {
            // Setting a property on a plain object we just created cannot fail.
            let _ = Reflect::set(&ix, &field.js, &key_to_js(&key));
        }
    }
    ix
}

/// What separates the strings `WriteBatch.send`, `knownDocs` and
/// `RecordCache.evict` take in one text: NUL, which neither an entity id nor
/// JSON text holds.
pub(crate) const SEPARATOR: &str = "\0";

/// A batch's writes computed since it last sent, packed for one call to
/// `WriteBatch.send`: handing JS a few long strings costs far less than a few
/// short ones per write.
#[derive(Default)]
struct Outgoing {
    /// Per op, its id then, for a write, the entity's doc; separated by NUL.
    entities: Vec<u8>,
    /// The mutation docs, separated by NUL.
    mutations: Vec<u8>,
    /// The `ix` of each entity written, as a JSON array.
    ix: Vec<u8>,
    /// Per op, its collection's `position` shifted left by 2, ORed with
    /// `WRITE`, `CHECKED_WRITE` or `CHECK` (their meaning is in `WriteBatch.send`).
    ops: Vec<u32>,
}

const WRITE: u32 = 0;
const CHECKED_WRITE: u32 = 1;
const CHECK: u32 = 2;

impl Outgoing {
    fn write(&mut self, info: &CollectionInfo, applied: &Applied, check: bool) -> Result<()> {
        let entity = &applied.entity;
        self.op(info, if check { CHECKED_WRITE } else { WRITE }, &entity.id);
        self.entities.extend_from_slice(SEPARATOR.as_bytes());
        json_into(&mut self.entities, entity, "an entity")?;
        if !self.mutations.is_empty() {
            self.mutations.extend_from_slice(SEPARATOR.as_bytes());
        }
        json_into(&mut self.mutations, &applied.mutation, "a mutation")?;
        self.ix.push(if self.ix.is_empty() { b'[' } else { b',' });
        self.ix.push(b'{');
        let mut first = true;
        for field in &info.index_fields {
            if let Some(key) = field.index.key_of(entity) {
                if !std::mem::take(&mut first) {
                    self.ix.push(b',');
                }
                json_into(&mut self.ix, &field.name, "an index name")?;
                self.ix.push(b':');
                json_into(&mut self.ix, &key, "an index key")?;
            }
        }
        self.ix.push(b'}');
        Ok(())
    }

    fn check(&mut self, info: &CollectionInfo, id: &str) {
        self.op(info, CHECK, id);
    }

    fn op(&mut self, info: &CollectionInfo, kind: u32, id: &str) {
        if !self.ops.is_empty() {
            self.entities.extend_from_slice(SEPARATOR.as_bytes());
        }
        self.entities.extend_from_slice(id.as_bytes());
        self.ops.push(info.position << 2 | kind);
    }

    /// Hands what was computed to `batch`, which sends it, and starts afresh.
    fn send(&mut self, batch: &WriteBatch) -> Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        if !self.mutations.is_empty() {
            self.mutations.extend_from_slice(SEPARATOR.as_bytes());
        }
        if self.ix.is_empty() {
            self.ix.push(b'['); // only checks in this run
        }
        self.mutations.append(&mut self.ix);
        self.mutations.push(b']');
        let text = |bytes| std::str::from_utf8(bytes).map_err(|e| Error::Storage(format!("cannot encode a write: {e}")));
        batch.send(text(&self.entities)?, text(&self.mutations)?, &self.ops);
        self.entities.clear();
        self.mutations.clear();
        self.ops.clear();
        Ok(())
    }
}

/// Appends `value` as JSON text to `buffer`.
fn json_into<T: serde::Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T, what: &str) -> Result<()> {
    serde_json::to_writer(buffer, value).map_err(|e| Error::Storage(format!("cannot encode {what}: {e}")))
}

fn parse_text<T: serde::de::DeserializeOwned>(text: &str, place: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| unreadable(place, e))
}

fn unreadable(place: &str, error: serde_json::Error) -> Error {
    Error::Storage(format!("a record in {place:?} is unreadable: {error}"))
}

/// Decodes a record's `doc`: JSON text, or UTF-8 JSON bytes in records an
/// earlier version wrote.
fn parse_doc<T: serde::de::DeserializeOwned>(record: &JsValue, place: &str) -> Result<T> {
    let doc = record.unchecked_ref::<StoredRecord>().doc();
    if let Some(text) = doc.as_string() {
        parse_text(&text, place)
    } else if let Some(bytes) = doc.dyn_ref::<Uint8Array>() {
        serde_json::from_slice(&bytes.to_vec()).map_err(|e| unreadable(place, e))
    } else {
        Err(Error::Storage(format!("a record in {place:?} has no readable `doc`")))
    }
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

/// Maps what a JS transaction helper rejected with to the store's error.
fn js_error(error: &JsValue) -> Error {
    match error.dyn_ref::<web_sys::DomException>() {
        Some(exception) => dom_error(&exception.name(), &exception.message()),
        None => Error::Storage(describe_js_error(error)),
    }
}

fn js_storage_error(error: JsValue) -> Error {
    Error::Storage(describe_js_error(&error))
}

fn describe_js_error(error: &JsValue) -> String {
    if let Some(exception) = error.dyn_ref::<web_sys::DomException>() {
        format!("{}: {}", exception.name(), exception.message())
    } else if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        String::from(error.message())
    } else {
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    }
}
