//! A store kept in process memory, for native tests of everything above the
//! store. Clones share one state, so "closing and reopening" is cloning.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;

use crate::core::reconcile::{plan, Policies, Reads, ServerAnswer, Settled, Stored};
use crate::core::{
    apply_write, Applied, Collection, Entity, Error, Meanwhile, Mutation, MutationId, Query, Result, Schema, Snapshot,
    Store, SyncMeta, Write,
};

#[derive(Debug)]
struct State {
    client_id: String,
    collections: BTreeMap<String, Collection>,
    outbox: BTreeMap<u64, Mutation>,
    next_mutation_id: u64,
    sync: SyncMeta,
}

/// A [`Store`] in memory. Writes are atomic: a failed apply leaves no trace.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Rc<RefCell<State>>,
    schema: Schema,
    closed: Rc<Cell<bool>>,
    fail_next_apply: Rc<Cell<bool>>,
    /// What the next settle waits for before it reads anything (see `hold_next_settle`).
    held_settle: Rc<RefCell<Option<oneshot::Receiver<()>>>>,
}

impl MemoryStore {
    pub fn new(schema: Schema) -> Self {
        let state = State {
            client_id: uuid::Uuid::new_v4().to_string(),
            collections: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_mutation_id: 1,
            sync: SyncMeta::default(),
        };
        let mut store = MemoryStore {
            state: Rc::new(RefCell::new(state)),
            schema: schema.clone(),
            closed: Rc::new(Cell::new(false)),
            fail_next_apply: Rc::new(Cell::new(false)),
            held_settle: Rc::default(),
        };
        store.sync_collections(&schema);
        store
    }

    /// A new connection to the same data, with a possibly newer schema
    /// (collections are added; existing data is kept).
    pub fn reopen(&self, schema: Schema) -> Self {
        let mut store = MemoryStore {
            state: self.state.clone(),
            schema: schema.clone(),
            closed: Rc::new(Cell::new(false)),
            fail_next_apply: self.fail_next_apply.clone(),
            held_settle: self.held_settle.clone(),
        };
        store.sync_collections(&schema);
        store
    }

    /// Makes the next `apply` (or `settle`) fail, as a storage error would,
    /// so tests can check that nothing of it remains.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_apply(&self) {
        self.fail_next_apply.set(true);
    }

    /// Makes the next `settle` wait, before it reads anything, until the
    /// sender returned is used or dropped: a slow transaction.
    #[cfg(test)]
    pub fn hold_next_settle(&self) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel();
        *self.held_settle.borrow_mut() = Some(held);
        release
    }

    fn sync_collections(&mut self, schema: &Schema) {
        let mut state = self.state.borrow_mut();
        for (name, collection_schema) in &schema.collections {
            let mut rebuilt = Collection::new(collection_schema.clone());
            if let Some(existing) = state.collections.get(name) {
                for entity in existing.iter() {
                    rebuilt.set(&entity.id, Some(entity.clone()));
                }
            }
            state.collections.insert(name.clone(), rebuilt);
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.get() {
            Err(Error::DatabaseClosed("the memory store was closed".into()))
        } else {
            Ok(())
        }
    }

    /// [`Store::settle`], less its `meanwhile`.
    async fn record_answers(&self, answers: &[ServerAnswer], policies: &Policies, now: f64, cursor: Option<&str>) -> Result<Vec<Settled>> {
        let held = self.held_settle.borrow_mut().take();
        if let Some(held) = held {
            let _ = held.await;
        }
        self.check_open()?;
        if self.fail_next_apply.replace(false) {
            return Err(Error::Storage("injected failure: the transaction was aborted".into()));
        }
        let mut state = self.state.borrow_mut();
        let State { collections, outbox, next_mutation_id, sync, .. } = &mut *state;
        let reads = Reads::of(answers, |name| collections.contains_key(name));
        let entities = reads.entities.into_iter().map(|(name, id)| {
            let entity = collections[&name].get(&id).cloned();
            ((name, id), entity)
        });
        let mut stored = Stored { entities: entities.collect(), ..Stored::default() };
        // By insertion: collecting would sort first, a sort more in the module (see bench/README.md).
        stored.queued.extend(reads.mutations.into_iter().filter(|id| outbox.contains_key(id)));
        let plan = plan(answers, stored, policies, now, cursor);
        for mutation_id in &plan.remove {
            outbox.remove(mutation_id);
        }
        outbox.retain(|_, m| !plan.supersedes(&m.collection, &m.id));
        for mut mutation in plan.append {
            mutation.mutation_id = *next_mutation_id;
            *next_mutation_id += 1;
            outbox.insert(mutation.mutation_id, mutation);
        }
        for (name, entity) in plan.entities {
            if let Some(collection) = collections.get_mut(&name) {
                collection.set(&entity.id.clone(), Some(entity));
            }
        }
        if let Some(cursor) = plan.cursor {
            sync.cursor = Some(cursor);
        }
        Ok(plan.settled)
    }
}

impl Store for MemoryStore {
    async fn load(&self) -> Result<Snapshot> {
        self.check_open()?;
        let state = self.state.borrow();
        let collections = self
            .schema
            .collections
            .keys()
            .map(|name| (name.clone(), state.collections[name].iter().cloned().collect()))
            .collect();
        Ok(Snapshot { client_id: state.client_id.clone(), collections })
    }

    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        self.check_open()?;
        let mut state = self.state.borrow_mut();
        let State { collections, outbox, next_mutation_id, .. } = &mut *state;
        // Undo log: what each touched entity was before, restored if the "transaction" fails.
        let mut undo: Vec<(String, String, Option<Entity>)> = Vec::new();
        let first_mutation_id = *next_mutation_id;
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let Some(collection) = collections.get_mut(&write.collection) else {
                results.push(Err(Error::NotFound(format!("no collection {:?}", write.collection))));
                continue;
            };
            let before = collection.get(&write.id).cloned();
            let result = apply_write(before.as_ref(), write).map(|mut applied| {
                applied.mutation.mutation_id = *next_mutation_id;
                *next_mutation_id += 1;
                collection.set(&write.id, Some(applied.entity.clone()));
                outbox.insert(applied.mutation.mutation_id, applied.mutation.clone());
                applied
            });
            if result.is_ok() {
                undo.push((write.collection.clone(), write.id.clone(), before));
            }
            results.push(result);
        }
        if self.fail_next_apply.replace(false) {
            for (collection, id, before) in undo.into_iter().rev() {
                collections.get_mut(&collection).map(|c| c.set(&id, before));
            }
            outbox.retain(|id, _| *id < first_mutation_id);
            // Like IndexedDB's key generator, the counter is part of the aborted transaction.
            *next_mutation_id = first_mutation_id;
            return Err(Error::Storage("injected failure: the transaction was aborted".into()));
        }
        Ok(results)
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        self.check_open()?;
        let state = self.state.borrow();
        let collection = state.collections.get(collection).ok_or_else(|| Error::NotFound(format!("no collection {collection:?}")))?;
        Ok(collection.get(id).cloned())
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        self.check_open()?;
        let state = self.state.borrow();
        let collection = state.collections.get(collection).ok_or_else(|| Error::NotFound(format!("no collection {collection:?}")))?;
        Ok(collection.query(query)?.into_iter().cloned().collect())
    }

    async fn outbox_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        self.check_open()?;
        Ok(self.state.borrow().outbox.range(after.saturating_add(1)..).map(|(_, m)| m.clone()).take(limit).collect())
    }

    async fn pending_count(&self) -> Result<usize> {
        self.check_open()?;
        Ok(self.state.borrow().outbox.len())
    }

    async fn note_failed_push(&self, mutation_ids: &[MutationId], error: &str) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.borrow_mut();
        for mutation_id in mutation_ids {
            if let Some(mutation) = state.outbox.get_mut(mutation_id) {
                mutation.attempts += 1;
                mutation.last_error = Some(error.to_owned());
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: Meanwhile<'_>,
    ) -> Result<Vec<Settled>> {
        // Nothing here commits elsewhere: the work waits for the writes.
        let settled = self.record_answers(answers, policies, now, cursor).await;
        meanwhile();
        settled
    }

    async fn sync_meta(&self) -> Result<SyncMeta> {
        self.check_open()?;
        Ok(self.state.borrow().sync.clone())
    }

    async fn save_sync_meta(&self, meta: &SyncMeta) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.borrow_mut();
        let cursor = state.sync.cursor.take();
        state.sync = SyncMeta { cursor, ..meta.clone() };
        Ok(())
    }

    fn close(&self) {
        self.closed.set(true);
    }
}
