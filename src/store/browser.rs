//! The store a database opened in a browser runs on: IndexedDB, or memory
//! where the browser refuses IndexedDB (it is missing, or will not open a
//! database, as in the private modes of some engines). In memory the app works
//! for the session and syncs as usual; nothing outlives the page, and
//! `status().storage` says `"memory"` so the app can tell its user.

use crate::core::reconcile::{Policies, ServerAnswer, Settled};
use crate::core::{Applied, Entity, Error, Meanwhile, Mutation, MutationId, Query, Result, Schema, Snapshot, Store, SyncMeta, Write};
use crate::store::indexeddb::IdbStore;
use crate::store::MemoryStore;

pub enum BrowserStore {
    IndexedDb(IdbStore),
    Memory(MemoryStore),
}

/// What a database is stored in, as `status().storage` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    IndexedDb,
    Memory,
}

impl StorageKind {
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::IndexedDb => "indexeddb",
            StorageKind::Memory => "memory",
        }
    }
}

impl BrowserStore {
    /// Opens the IndexedDB database `name`; if that fails because IndexedDB
    /// cannot be used here at all, an empty store in memory instead. Any other
    /// failure (a newer format, a schema that cannot apply, a quota) is the
    /// caller's to see.
    pub async fn open(name: &str, schema: Schema) -> Result<BrowserStore> {
        match IdbStore::open(name, schema.clone()).await {
            Ok(store) => Ok(BrowserStore::IndexedDb(store)),
            Err(error) if !matches!(error, Error::Schema(_)) && !indexed_db_usable().await => Ok(BrowserStore::Memory(MemoryStore::new(schema))),
            Err(error) => Err(error),
        }
    }

    pub fn kind(&self) -> StorageKind {
        match self {
            BrowserStore::IndexedDb(_) => StorageKind::IndexedDb,
            BrowserStore::Memory(_) => StorageKind::Memory,
        }
    }

    /// The IndexedDB store, for what only it does (other contexts reading
    /// what it holds, upgrades from elsewhere, the records built at load).
    pub fn indexed_db(&self) -> Option<&IdbStore> {
        match self {
            BrowserStore::IndexedDb(store) => Some(store),
            BrowserStore::Memory(_) => None,
        }
    }
}

async fn indexed_db_usable() -> bool {
    wasm_bindgen_futures::JsFuture::from(crate::browser::indexed_db_usable()).await.map(|usable| usable.is_truthy()).unwrap_or(false)
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            BrowserStore::IndexedDb($store) => $call,
            BrowserStore::Memory($store) => $call,
        }
    };
}

impl Store for BrowserStore {
    async fn load(&self) -> Result<Snapshot> {
        each!(self, store => store.load().await)
    }

    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        each!(self, store => store.apply(writes).await)
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        each!(self, store => store.get(collection, id).await)
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        each!(self, store => store.query(collection, query).await)
    }

    async fn outbox_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        each!(self, store => store.outbox_after(after, limit).await)
    }

    async fn pushable_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        each!(self, store => store.pushable_after(after, limit).await)
    }

    async fn pending_count(&self) -> Result<usize> {
        each!(self, store => store.pending_count().await)
    }

    async fn settle(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: Meanwhile<'_>,
    ) -> Result<Vec<Settled>> {
        each!(self, store => store.settle(answers, policies, now, cursor, meanwhile).await)
    }

    async fn note_failed_push(&self, mutation_ids: &[MutationId], error: &str) -> Result<()> {
        each!(self, store => store.note_failed_push(mutation_ids, error).await)
    }

    async fn sync_meta(&self) -> Result<SyncMeta> {
        each!(self, store => store.sync_meta().await)
    }

    async fn save_sync_meta(&self, meta: &SyncMeta) -> Result<()> {
        each!(self, store => store.save_sync_meta(meta).await)
    }

    fn close(&self) {
        each!(self, store => store.close())
    }
}
