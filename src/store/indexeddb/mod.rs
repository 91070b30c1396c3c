//! The IndexedDB store: one readwrite transaction per batch of writes, each
//! entity and its outbox entry in it together.
//!
//! The two hot paths, `apply` and `load`, run their transaction in a few lines
//! of JS (the IndexedDB part of `src/browser/browser.js`): for `apply` Rust hands over
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
//! A check, like a read, is a request per entity, and most of the time no
//! other context has written at all. Every transaction that writes entities
//! replaces a mark in `meta` with one of its own (`Commits` in the JS half).
//! While the mark a transaction finds is the one this store left or last read
//! with everything (at `load`), no other tab or worker has written since, and
//! the `known` maps are exactly what is stored: a write then checks that one
//! mark instead of each entity, and recording sync answers takes the docs from
//! the maps instead of reading them. Once another context's mark shows up,
//! entities are checked and read one by one again, until the next full read.
//!
//! The browser can take the connection away: WebKit loses it when its
//! IndexedDB process goes away ("Connection to Indexed Database server lost",
//! notably on iOS after the app was in the background), and every engine
//! closes it when the site's storage is cleared. After a failure the store
//! checks whether its connection still works; if the browser closed it, the
//! store opens a new one and carries on (see `IdbStore::reconnect`), unless
//! the database itself is gone, which is `DatabaseClosed` for good. A call
//! that only reads runs again on the new connection. A write whose transaction
//! was cut off is never simply sent again: the store first reads what was
//! stored, so it is written exactly once (see `IdbStore::apply_writes`).
//!
//! A push reads only the keys of the outbox entries it takes where this
//! connection appended them: it keeps what it appended (see
//! [`crate::store::appended`]), and reading an entry's record costs IndexedDB
//! about sixteen times what reading its key does.
//!
//! One file per concern:
//! * `connection`: the connection, and a new one when the browser took it away;
//! * `upgrade`: bringing the database to the layout a schema asks for;
//! * `write`: the checked-write pipeline of `apply`;
//! * `pack`: writes packed into a few texts for the JS half, and docs read back;
//! * `read`: loading everything at open, and reads straight from storage;
//! * `settle`: recording server answers (the core's plan) and the sync bookkeeping;
//! * `error`: IndexedDB's failures as the store's errors.
//!
//! The JS half itself, and the contract with it, is [`crate::browser`].
mod connection;
mod error;
mod pack;
mod read;
mod settle;
mod upgrade;
mod write;

pub use read::CommitMarks;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use js_sys::{Array, Map};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use self::connection::{open_existing, Connection, UpgradeHandler, UPGRADED_ELSEWHERE};
use self::upgrade::{read_layout, upgraded};
use super::appended::Appended;
use super::layout::{check_format, entity_store, index_field, needs_raising, UpgradePlan, BACKFILL_KEY, META_STORE};
use crate::browser;
#[cfg(feature = "fault-injection")]
use crate::browser::{Fault, WriteBatch};
use crate::core::reconcile::{Policies, ServerAnswer, Settled};
use crate::core::{Applied, Entity, Error, IndexSpec, Meanwhile, Mutation, MutationId, Query, Result, Schema, Snapshot, Store, SyncMeta, Write};

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
    /// Whether the `known` maps hold every entity as stored.
    commits: browser::Commits,
    client_id: String,
    /// Set when the app closed the store or it cannot go on (the database was
    /// upgraded elsewhere, or deleted); the reason.
    closed: Rc<RefCell<Option<String>>>,
    /// What to do when another context upgrades the database.
    upgrade: UpgradeHandler,
    /// Whether another context upgraded the database: the reason `close` gives.
    upgraded_elsewhere: Rc<Cell<bool>>,
    /// The saving of the database's image that `close` began, if any (see
    /// [`IdbStore::closed`]).
    image_at_close: RefCell<Option<js_sys::Promise>>,
    /// The outbox entries this connection appended, for pushes to take
    /// without reading them back.
    appended: Appended,
    /// A failure the next write is made to meet, for tests.
    #[cfg(feature = "fault-injection")]
    fault: Cell<Option<Fault>>,
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
    /// loading, for the JS layer to take (see `Loader` in `src/browser/browser.js`).
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
        let db = upgraded(name, db, &plan).await?;

        // One transaction, all three reads sent at once.
        let tx = db.transaction(META_STORE).build()?;
        let meta = tx.object_store(META_STORE)?;
        let format = meta.get("formatVersion").primitive()?;
        let client_id = meta.get("clientId").primitive()?;
        let backfill = meta.get(BACKFILL_KEY).primitive()?;
        let format: Option<JsValue> = format.await?;
        let client_id: Option<String> = client_id.await?;
        let backfill: Option<JsValue> = backfill.await?;
        drop(meta);
        drop(tx);
        let format = format.and_then(|v| v.as_f64()).map(|v| v as u32);
        let checked = check_format(format).and_then(|()| client_id.ok_or_else(|| Error::Storage("the database has no client id".into())));
        let client_id = match checked {
            Ok(client_id) => client_id,
            Err(error) => {
                // A refused database keeps no connection: it would block other
                // contexts' upgrades, and deleting it.
                db.close();
                return Err(error);
            }
        };
        // Contexts running an older Tideway would misread what this one writes:
        // the upgrade that records this format closes their connections.
        let db = if needs_raising(format) { upgraded(name, db, &UpgradePlan::raise_format()).await? } else { db };
        // `clientId` exists now: the probe's add of it must fail.
        browser::probe_early_commit(db.as_sys().unchecked_ref(), META_STORE, "clientId");

        let closed = Rc::new(RefCell::new(None));
        let upgrade: UpgradeHandler = Rc::default();
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
            connection: RefCell::new(Connection::new(db, &closed, &upgrade)),
            upgrade,
            upgraded_elsewhere: Rc::default(),
            image_at_close: RefCell::default(),
            schema,
            collections: infos.into_iter().collect(),
            stores,
            knowns,
            commits: browser::Commits::new(),
            client_id,
            closed,
            appended: Appended::default(),
            #[cfg(feature = "fault-injection")]
            fault: Cell::new(None),
        };
        if let Some(pending) = backfill {
            store.backfill(&pending).await?;
        }
        Ok(store)
    }

    /// Saves the database's image now if one is pending (see `saveImage` in
    /// `src/browser/browser.js`) rather than once the database has been quiet
    /// for a while, whatever its size: the page is hidden, and may never be
    /// shown again.
    pub fn save_image_now(&self) {
        if self.closed.borrow().is_none() {
            let _ = browser::save_image_now(self.connection().sys());
        }
    }

    /// Resolves once the image of the database that `close` began to save
    /// (see `saveImage` in `src/browser/browser.js`) is stored or passed
    /// over: a page closed before would leave the next open to read every
    /// record.
    pub async fn closed(&self) {
        let saving = self.image_at_close.take();
        if let Some(saving) = saving {
            // A failure (the quota, say) leaves the next open to read every record.
            let _ = JsFuture::from(saving).await;
        }
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
        Ok(Database::delete_by_name(name)?.await?)
    }
    /// Calls `handler` (instead of closing at once) when another context
    /// upgrades the database; it must close the store soon, for the other
    /// context's open waits until then. Once: a handler set later replaces it.
    pub fn on_upgrade_elsewhere(&self, handler: impl Fn() + 'static) {
        let upgraded = self.upgraded_elsewhere.clone();
        *self.upgrade.borrow_mut() = Some(Rc::new(move || {
            upgraded.set(true);
            handler();
        }));
    }

    fn collection_info(&self, collection: &str) -> Result<&CollectionInfo> {
        self.schema.collection(collection)?;
        Ok(&self.collections[collection])
    }

    /// The entities `keys` name, as the JS half takes many in one call (see
    /// `Entities` in `src/browser/browser.js`): each one's store as its
    /// position in `stores` ([`browser::NO_STORE`] for a collection not
    /// declared), and the ids joined by [`browser::SEPARATOR`]. A crossing
    /// per entity would cost more than the lookups the call makes.
    fn entities_at<'k>(&self, keys: impl IntoIterator<Item = (&'k str, &'k str)>) -> (Vec<u32>, String) {
        let keys = keys.into_iter();
        let mut positions = Vec::with_capacity(keys.size_hint().0);
        let mut ids = String::new();
        for (collection, id) in keys {
            if !positions.is_empty() {
                ids.push_str(browser::SEPARATOR);
            }
            ids.push_str(id);
            positions.push(self.collections.get(collection).map_or(browser::NO_STORE, |info| info.position));
        }
        (positions, ids)
    }
}

/// How a context saves the database's image (see `saveImage` in
/// `src/browser/browser.js`), for tests that change it.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy)]
pub struct ImageTiming {
    /// How long after the last commit a context saves it by itself.
    pub delay_ms: u32,
    /// How many entities' docs it takes per task.
    pub slice: f64,
    /// About how many UTF-16 code units of docs each part holds.
    pub part_length: f64,
}

/// Hooks that make the store fail on purpose, or report what it found out
/// about the engine, for the test suites.
#[cfg(feature = "fault-injection")]
impl IdbStore {
    /// Makes the next `apply` (or `settle`) fail inside its transaction,
    /// after its writes were issued, by a real IndexedDB constraint violation:
    /// the browser must then roll every write of that transaction back.
    pub fn fail_next_apply(&self) {
        self.fault.set(Some(Fault::Constraint));
    }

    /// Makes the next `apply` meet `fault`.
    pub fn fail_next_write_with(&self, fault: Fault) {
        self.fault.set(Some(fault));
    }

    /// Whether write transactions commit as soon as no check can abort them
    /// (see `WriteBatch.run` in `src/browser/browser.js`), as found out at the first open.
    pub async fn commits_early() -> bool {
        JsFuture::from(browser::commits_early()).await.ok().and_then(|answer| answer.as_bool()).unwrap_or(false)
    }

    /// Saves the pending image of every database open in this context now
    /// (see `saveImage` in `src/browser/browser.js`) rather than once the
    /// database has been quiet for a while.
    pub async fn save_images_now() {
        JsFuture::from(browser::save_images_now()).await.expect("images are saved or passed over");
    }

    /// Makes a context save the image by itself `timing.delay_ms` after the
    /// last commit, taking the docs of `timing.slice` entities per task, in
    /// parts of about `timing.part_length`; returns the timing before.
    pub fn set_image_timing(timing: ImageTiming) -> ImageTiming {
        let before = browser::set_image_timing(timing.delay_ms, timing.slice, timing.part_length);
        let at = |i| before.get(i).as_f64().unwrap_or_default();
        ImageTiming { delay_ms: at(0) as u32, slice: at(1), part_length: at(2) }
    }

    /// Closes the connection as the browser does when it takes it away: the
    /// store has not closed it and is not told.
    pub fn lose_connection(&self) {
        self.connection().sys().close();
    }

    /// Makes and sends `writes` as `apply` does, then stops before waiting
    /// for them, as when wasm traps half way; returns the transaction.
    pub fn send_and_stop(&self, writes: &[Write]) -> Result<JsValue> {
        let tx = self.begin_write(&self.connection(), writes)?;
        let batch = WriteBatch::new(&tx, &self.stores, &self.knowns, &self.commits);
        self.compute(writes, self.believed(writes)?, &batch, true)?;
        Ok(tx)
    }
}

impl Store for IdbStore {
    async fn load(&self) -> Result<Snapshot> {
        self.load_all().await
    }

    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        let results = self.apply_writes(writes).await?;
        self.appended.keep(results.iter().flatten().map(|applied| &applied.mutation));
        Ok(results)
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        self.read_entity(collection, id).await
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        self.read_query(collection, query).await
    }

    async fn outbox_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        self.read_outbox(after, limit).await
    }

    async fn pushable_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        self.read_pushable(after, limit).await
    }

    async fn pending_count(&self) -> Result<usize> {
        self.count_outbox().await
    }

    async fn note_failed_push(&self, mutation_ids: &[MutationId], error: &str) -> Result<()> {
        self.count_failed_push(mutation_ids, error).await
    }

    async fn settle(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: Meanwhile<'_>,
    ) -> Result<Vec<Settled>> {
        let mut meanwhile = Some(meanwhile);
        let settled = self.record_answers(answers, policies, now, cursor, &mut meanwhile).await;
        if let Some(meanwhile) = meanwhile {
            meanwhile();
        }
        settled
    }

    async fn sync_meta(&self) -> Result<SyncMeta> {
        self.read_sync_meta().await
    }

    async fn save_sync_meta(&self, meta: &SyncMeta) -> Result<()> {
        self.write_sync_meta(meta).await
    }

    fn close(&self) {
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some(if self.upgraded_elsewhere.get() { UPGRADED_ELSEWHERE } else { "the database was closed with close()" }.to_owned());
            // The next open reads the image of this one's docs, if one is pending.
            self.image_at_close.replace(Some(browser::save_image_now(self.connection().sys())));
            self.connection().sys().close();
            // No write will be checked against them any more.
            for info in self.collections.values() {
                info.known.clear();
            }
            self.commits.forget();
            // The app's handler holds what holds this store: kept, it would keep both.
            self.upgrade.borrow_mut().take();
        }
    }
}
