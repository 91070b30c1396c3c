//! The repository: instant reads from an in-memory mirror, writes that reach
//! the mirror at once and the store (entity + outbox entry, atomically) soon
//! after, and subscriptions to committed changes.
//!
//! Writes are staged in call order and handed to the store by one committer,
//! which takes everything queued at that moment as one transaction (group
//! commit). Until a write is durable the mirror shows it optimistically; if
//! the store refuses it, the mirror is rebuilt from the durable state plus the
//! writes still queued, and subscribers hear of the rollback.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;

use futures::channel::oneshot;

use super::collection::Collection;
use super::entity::{Entity, SharedData, SyncStatus};
use super::error::{Error, Result};
use super::mutation::{written_entity, Applied, Op, Write};
use super::schema::Schema;
use super::store::{collections_of, Store};
use super::reconcile::Settled;

/// Why a change happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A local write became durable.
    Local,
    /// A local write failed; the entity went back to what it was. Carries the error.
    Rollback(Error),
    /// Sync changed the entity: a server answer was recorded, or a push started.
    Sync,
    /// Another tab or worker on the same database committed the change.
    Elsewhere,
}

/// One changed entity, as subscribers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub collection: String,
    pub id: String,
    /// The entity now (tombstones included), or `None` if it no longer exists at all.
    pub entity: Option<Entity>,
    pub origin: Origin,
}

/// Called with every batch of committed changes.
pub type Subscriber = Rc<dyn Fn(&[Change])>;

/// Called synchronously whenever the mirror's view of entities changes, with
/// their (collection, id) pairs.
pub type MirrorObserver = Box<dyn Fn(&[(&str, &str)])>;

/// What a commit of this repository made durable, for other contexts on the
/// same database to hear of.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The entities stored, as (collection, id).
    pub keys: Vec<(String, String)>,
    /// Whether local writes made it (so the outbox grew), rather than sync.
    pub local: bool,
}

/// Called with each commit once it is durable.
pub type CommitObserver = Box<dyn Fn(&Committed)>;

type Key = (String, String);

/// Writes staged but not yet handed to the store, in call order, and the
/// callers waiting for them: each caller's writes are a consecutive run.
#[derive(Default)]
struct Queue {
    writes: Vec<Write>,
    callers: Vec<(usize, oneshot::Sender<Result<Vec<Entity>>>)>,
}

impl Queue {
    fn touching<'a>(&'a self, key: &'a Key) -> impl Iterator<Item = &'a Write> + 'a {
        self.writes.iter().filter(move |write| write.collection == key.0 && write.id == key.1)
    }
}

#[derive(Default)]
struct State {
    mirror: BTreeMap<String, Collection>,
    queue: Queue,
    /// The batch the store is writing now.
    in_flight: Option<Rc<Queue>>,
    /// The durable state of every entity that has writes in flight or queued
    /// (boxed: in a bulk write of new entities every slot is empty, and an
    /// entity in place would make each slot its size).
    durable: HashMap<Key, Option<Box<Entity>>>,
    committing: bool,
    /// Told when the batch being committed, and any queued after it, are settled.
    idle: Vec<oneshot::Sender<()>>,
    subscribers: Vec<(u64, Option<String>, Subscriber)>,
    next_subscriber: u64,
    closed: bool,
}

pub struct Repository<S: Store> {
    store: S,
    schema: Schema,
    client_id: String,
    clock: Box<dyn Fn() -> f64>,
    observer: Option<MirrorObserver>,
    committed: RefCell<Option<CommitObserver>>,
    state: RefCell<State>,
}

impl<S: Store + 'static> Repository<S> {
    /// Loads every entity into the mirror. `clock` gives device time in ms.
    pub async fn open(store: S, schema: Schema, clock: Box<dyn Fn() -> f64>) -> Result<Rc<Self>> {
        Self::open_observed(store, schema, clock, None).await
    }

    /// Like [`Repository::open`], with an observer told synchronously of every
    /// change to the mirror (the JS layer evicts its read cache with it).
    pub async fn open_observed(
        store: S,
        schema: Schema,
        clock: Box<dyn Fn() -> f64>,
        observer: Option<MirrorObserver>,
    ) -> Result<Rc<Self>> {
        let snapshot = store.load().await?;
        let client_id = snapshot.client_id.clone();
        // By insertion: collecting would sort first, a sort more in the module (see bench/README.md).
        let mut mirror = BTreeMap::new();
        mirror.extend(collections_of(snapshot, &schema));
        let state = RefCell::new(State { mirror, ..State::default() });
        Ok(Rc::new(Repository { store, schema, client_id, clock, observer, committed: RefCell::new(None), state }))
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Device time, ms since the epoch.
    pub fn now(&self) -> f64 {
        (self.clock)()
    }

    /// This device's client id: generated when the database was created, then kept.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Runs `read` on a collection of the mirror.
    pub fn read<R>(&self, collection: &str, read: impl FnOnce(&Collection) -> R) -> Result<R> {
        self.check_open()?;
        self.schema.collection(collection)?;
        Ok(read(&self.state.borrow().mirror[collection]))
    }

    /// Creates or replaces an entity; `id` defaults to a new UUID.
    pub fn put(
        self: &Rc<Self>,
        collection: &str,
        id: Option<String>,
        data: impl Into<SharedData>,
    ) -> Result<impl Future<Output = Result<Entity>>> {
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let write = self.write_of(collection, id, Op::Put, Some(data.into()))?;
        Ok(single(self.stage(vec![write])?))
    }

    /// Creates or replaces many entities in one transaction: all or none.
    pub fn put_many(
        self: &Rc<Self>,
        collection: &str,
        entries: Vec<(Option<String>, SharedData)>,
    ) -> Result<impl Future<Output = Result<Vec<Entity>>>> {
        let writes = entries
            .into_iter()
            .map(|(id, data)| {
                let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                self.write_of(collection, id, Op::Put, Some(data))
            })
            .collect::<Result<Vec<_>>>()?;
        self.stage(writes)
    }

    /// Changes some fields of an entity; a field set to `null` is removed.
    pub fn patch(
        self: &Rc<Self>,
        collection: &str,
        id: String,
        fields: impl Into<SharedData>,
    ) -> Result<impl Future<Output = Result<Entity>>> {
        let write = self.write_of(collection, id, Op::Patch, Some(fields.into()))?;
        Ok(single(self.stage(vec![write])?))
    }

    /// Deletes an entity, leaving a tombstone that syncs the delete.
    pub fn delete(self: &Rc<Self>, collection: &str, id: String) -> Result<impl Future<Output = Result<Entity>>> {
        let write = self.write_of(collection, id, Op::Delete, None)?;
        Ok(single(self.stage(vec![write])?))
    }

    /// Registers a callback for committed changes, of one collection or of all.
    pub fn subscribe(&self, collection: Option<&str>, subscriber: Subscriber) -> Result<u64> {
        if let Some(name) = collection {
            self.schema.collection(name)?;
        }
        let mut state = self.state.borrow_mut();
        state.next_subscriber += 1;
        let id = state.next_subscriber;
        state.subscribers.push((id, collection.map(str::to_owned), subscriber));
        Ok(id)
    }

    pub fn unsubscribe(&self, id: u64) {
        self.state.borrow_mut().subscribers.retain(|(sid, _, _)| *sid != id);
    }

    /// How many mutations wait in the outbox (as stored, so other tabs' count too).
    pub async fn pending_count(&self) -> Result<usize> {
        self.check_open()?;
        self.store.pending_count().await
    }

    /// Waits for every staged write to be durable, then closes the store and
    /// lets the mirror go: reads fail with `DatabaseClosed` from then on.
    pub async fn close(&self) -> Result<()> {
        if self.state.borrow().closed {
            return Ok(());
        }
        self.commit_queued().await;
        // Another call may still be committing: wait until it has settled everything.
        let committing = {
            let mut state = self.state.borrow_mut();
            state.committing.then(|| {
                let (idle, done) = oneshot::channel();
                state.idle.push(idle);
                done
            })
        };
        if let Some(done) = committing {
            let _ = done.await;
        }
        let mirror = {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            std::mem::take(&mut state.mirror)
        };
        self.store.close();
        // Freed now rather than whenever the app drops its handle.
        drop(mirror);
        Ok(())
    }

    /// Shows `syncing` on entities whose mutations are being pushed. Only the
    /// mirror shows it: if the page closes mid-push, the stored `dirty` stands.
    pub fn mark_syncing(&self, keys: &[(String, String)]) {
        self.set_status(keys, SyncStatus::Dirty, SyncStatus::Syncing);
    }

    /// Undoes [`Repository::mark_syncing`] for entities no answer has settled.
    pub fn unmark_syncing(&self, keys: &[(String, String)]) {
        self.set_status(keys, SyncStatus::Syncing, SyncStatus::Dirty);
    }

    fn set_status(&self, keys: &[(String, String)], from: SyncStatus, to: SyncStatus) {
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            // Entities are copied for subscribers only.
            let announce = !state.subscribers.is_empty();
            for (collection, id) in keys {
                let Some(mirror) = state.mirror.get_mut(collection) else { continue };
                let Some(entity) = mirror.restatus(id, from, to) else { continue };
                if announce {
                    changes.push(Change { collection: collection.clone(), id: id.clone(), entity: Some(entity.clone()), origin: Origin::Sync });
                }
                changed.push((collection.as_str(), id.as_str()));
            }
        }
        self.observe(changed.into_iter());
        self.notify(&changes);
    }

    /// Tells `observer` of every commit from now on (the contexts sharing the
    /// database hear of them through it).
    pub fn on_commit(&self, observer: CommitObserver) {
        *self.committed.borrow_mut() = Some(observer);
    }

    /// Shows entities that sync has just stored: the mirror takes the stored
    /// entity with any still-queued local writes replayed on top.
    pub fn absorb(&self, settled: &[Settled]) {
        let stored: Vec<(&str, &str, &Entity)> =
            settled.iter().filter_map(|item| Some((item.collection.as_str(), item.id.as_str(), item.entity.as_ref()?))).collect();
        self.absorb_stored(&stored, Origin::Sync);
        let keys: Vec<(String, String)> = stored.iter().map(|(collection, id, _)| (collection.to_string(), id.to_string())).collect();
        self.tell_committed(keys, false);
    }

    /// Shows entities another context stored (read back from the store): the
    /// mirror takes each with this context's still-queued writes replayed on top.
    pub fn absorb_elsewhere(&self, stored: &[(String, String, Entity)]) {
        let stored: Vec<(&str, &str, &Entity)> = stored.iter().map(|(c, id, entity)| (c.as_str(), id.as_str(), entity)).collect();
        self.absorb_stored(&stored, Origin::Elsewhere);
    }

    fn tell_committed(&self, keys: Vec<(String, String)>, local: bool) {
        if keys.is_empty() {
            return;
        }
        if let Some(observer) = &*self.committed.borrow() {
            observer(&Committed { keys, local });
        }
    }

    fn absorb_stored(&self, items: &[(&str, &str, &Entity)], origin: Origin) {
        if self.state.borrow().closed {
            return;
        }
        let mut changed = Vec::new();
        let mut changes = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            // Entities are copied for subscribers only.
            let announce = !state.subscribers.is_empty();
            for &(collection, id, stored) in items {
                let key = (collection.to_owned(), id.to_owned());
                let has_local_writes = state.durable.contains_key(&key);
                if has_local_writes {
                    state.durable.insert(key.clone(), Some(Box::new(stored.clone())));
                }
                let in_flight = state.in_flight.iter().flat_map(|batch| batch.touching(&key));
                let view = in_flight.chain(state.queue.touching(&key)).fold(Some(stored.clone()), replay);
                let Some(mirror) = state.mirror.get_mut(&key.0) else { continue };
                if mirror.get(&key.1) != view.as_ref() {
                    let entity = announce.then(|| view.clone());
                    mirror.set(&key.1, view);
                    changed.push((collection, id));
                    if let Some(entity) = entity {
                        let (collection, id) = key;
                        changes.push(Change { collection, id, entity, origin: origin.clone() });
                    }
                }
            }
        }
        self.observe(changed.into_iter());
        self.notify(&changes);
    }

    fn check_open(&self) -> Result<()> {
        if self.state.borrow().closed {
            Err(Error::DatabaseClosed("the database was closed with close()".into()))
        } else {
            Ok(())
        }
    }

    fn write_of(&self, collection: &str, id: String, op: Op, data: Option<SharedData>) -> Result<Write> {
        self.schema.collection(collection)?;
        tideway_protocol::validate_entity_id(&id)?;
        if let Some(data) = &data {
            data.validate()
                .map_err(|(_, invalid)| Error::InvalidArgument(format!("data of {id:?}: {invalid}")))?;
        }
        Ok(Write { collection: collection.to_owned(), id, op, data, at: (self.clock)() })
    }

    /// Applies `writes` to the mirror now and queues them for the store.
    /// Fails without any effect if one of them cannot apply.
    fn stage(self: &Rc<Self>, writes: Vec<Write>) -> Result<impl Future<Output = Result<Vec<Entity>>>> {
        self.check_open()?;
        let (done, receiver) = oneshot::channel();
        {
            let mut state = self.state.borrow_mut();
            let State { mirror, durable, .. } = &mut *state;
            // What the mirror showed before each write, in write order.
            let mut before: Vec<Option<Entity>> = Vec::with_capacity(writes.len());
            for write in &writes {
                let collection = mirror.get_mut(&write.collection).expect("collection checked in write_of");
                match written_entity(collection.get(&write.id), write) {
                    Ok(entity) => before.push(collection.set(&write.id, Some(entity))),
                    Err(error) => {
                        for (write, entity) in writes.iter().zip(before).rev() {
                            if let Some(collection) = mirror.get_mut(&write.collection) {
                                collection.set(&write.id, entity);
                            }
                        }
                        return Err(error);
                    }
                }
            }
            // Room for them all at once: a bulk write would otherwise grow the map many times.
            durable.reserve(writes.len());
            for (write, entity) in writes.iter().zip(before) {
                durable.entry((write.collection.clone(), write.id.clone())).or_insert(entity.map(Box::new));
            }
            self.observe(writes.iter().map(|write| (write.collection.as_str(), write.id.as_str())));
            state.queue.callers.push((writes.len(), done));
            state.queue.writes.extend(writes);
        }
        let repository = self.clone();
        Ok(async move {
            repository.commit_queued().await;
            receiver.await.unwrap_or_else(|_| Err(Error::DatabaseClosed("the write was abandoned".into())))
        })
    }

    /// Hands queued writes to the store until the queue is empty. Only one
    /// caller commits at a time; the others find their write already taken.
    async fn commit_queued(&self) {
        if std::mem::replace(&mut self.state.borrow_mut().committing, true) {
            return;
        }
        loop {
            let batch = Rc::new(std::mem::take(&mut self.state.borrow_mut().queue));
            if batch.writes.is_empty() {
                break;
            }
            self.state.borrow_mut().in_flight = Some(batch.clone());
            let outcome = self.store.apply(&batch.writes).await;
            self.state.borrow_mut().in_flight = None;
            let batch = Rc::try_unwrap(batch).ok().expect("the in-flight batch is shared only while the store writes it");
            self.settle(batch, outcome);
        }
        let idle = {
            let mut state = self.state.borrow_mut();
            state.committing = false;
            std::mem::take(&mut state.idle)
        };
        for waiter in idle {
            let _ = waiter.send(());
        }
    }

    /// Records the store's verdict on a batch: updates the durable state,
    /// brings the mirror in line, notifies subscribers, answers the callers.
    fn settle(&self, batch: Queue, outcome: Result<Vec<Result<Applied>>>) {
        let (mut results, batch_error) = match outcome {
            Ok(results) => (results.into_iter(), None),
            Err(error) => (Vec::new().into_iter(), Some(error)),
        };
        let mut changes = Vec::new();
        let mut rolled_back: Vec<(Key, Error)> = Vec::new();
        // Each write's key and the entity it stored (`None`: it failed), in batch order.
        let mut stored: Vec<(Key, Option<Entity>)> = Vec::with_capacity(batch.writes.len());
        let mut failures = Vec::with_capacity(batch.callers.len());
        let mut changed = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            let announce = !state.subscribers.is_empty();
            let mut writes = batch.writes.into_iter();
            for (count, _) in &batch.callers {
                let mut failure = batch_error.clone();
                for write in writes.by_ref().take(*count) {
                    let key = (write.collection, write.id);
                    let entity = match results.next() {
                        Some(Ok(applied)) => {
                            if announce {
                                changes.push(Change {
                                    collection: key.0.clone(),
                                    id: key.1.clone(),
                                    entity: Some(applied.entity.clone()),
                                    origin: Origin::Local,
                                });
                            }
                            Some(applied.entity)
                        }
                        Some(Err(error)) => {
                            rolled_back.push((key.clone(), error.clone()));
                            failure = Some(error);
                            None
                        }
                        None => {
                            rolled_back.push((key.clone(), batch_error.clone().unwrap_or_else(missing_result)));
                            None
                        }
                    };
                    stored.push((key, entity));
                }
                failures.push(failure);
            }

            let State { mirror, queue, durable, .. } = &mut *state;
            // The still-queued writes by entity, each entity's in call order.
            let queued = by_entity(queue.writes.iter().map(|write| (write.collection.as_str(), write.id.as_str())));
            // The batch's writes by entity, each entity's in batch order.
            let order = by_entity(stored.iter().map(|((collection, id), _)| (collection.as_str(), id.as_str())));
            for group in order.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let key = &stored[group[0].2].0;
                // What the store now holds: the last entity this batch stored, or else the durable state as it was.
                let last_stored = group.iter().rev().find_map(|&(_, _, i)| stored[i].1.as_ref());
                let still_queued = queued_for(&queued, key);
                // The mirror shows the durable state with the still-queued writes replayed on top.
                let view: Option<Cow<Entity>> = if still_queued.is_empty() {
                    let before = durable.remove(key).flatten().map(|entity| *entity);
                    last_stored.map(Cow::Borrowed).or(before.map(Cow::Owned))
                } else {
                    if let Some(entity) = last_stored {
                        durable.insert(key.clone(), Some(Box::new(entity.clone())));
                    }
                    let base = durable.get(key).cloned().flatten().map(|entity| *entity);
                    still_queued.iter().map(|&(_, _, i)| &queue.writes[i]).fold(base, replay).map(Cow::Owned)
                };
                let collection = mirror.get_mut(&key.0).expect("staged writes name declared collections");
                if collection.get(&key.1) != view.as_deref() {
                    collection.set(&key.1, view.map(Cow::into_owned));
                    changed.push(key.clone());
                }
            }
            for ((collection, id), error) in rolled_back {
                let entity = mirror[&collection].get(&id).cloned();
                changes.push(Change { collection, id, entity, origin: Origin::Rollback(error) });
            }
        }
        self.observe(changed.iter().map(|(collection, id)| (collection.as_str(), id.as_str())));
        if self.committed.borrow().is_some() {
            let mut keys: Vec<(String, String)> = stored.iter().filter(|(_, entity)| entity.is_some()).map(|(key, _)| key.clone()).collect();
            keys.dedup();
            self.tell_committed(keys, true);
        }
        let mut stored = stored.into_iter();
        for ((count, done), failure) in batch.callers.into_iter().zip(failures) {
            let entities: Vec<Entity> = stored.by_ref().take(count).filter_map(|(_, entity)| entity).collect();
            let answer = failure.map_or(Ok(entities), Err);
            // The caller may have stopped waiting; the outcome stands either way.
            let _ = done.send(answer);
        }
        self.notify(&changes);
    }

    fn observe<'k>(&self, changed: impl Iterator<Item = (&'k str, &'k str)>) {
        if let Some(observer) = &self.observer {
            let changed: Vec<(&str, &str)> = changed.collect();
            if !changed.is_empty() {
                observer(&changed);
            }
        }
    }

    fn notify(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let subscribers: Vec<(Option<String>, Subscriber)> =
            self.state.borrow().subscribers.iter().map(|(_, collection, s)| (collection.clone(), s.clone())).collect();
        for (collection, subscriber) in subscribers {
            match collection {
                None => subscriber(changes),
                Some(name) => {
                    let mine: Vec<Change> = changes.iter().filter(|c| c.collection == name).cloned().collect();
                    if !mine.is_empty() {
                        subscriber(&mine);
                    }
                }
            }
        }
    }
}

/// `current` with `write` replayed on top; a write that no longer applies is skipped.
fn replay(current: Option<Entity>, write: &Write) -> Option<Entity> {
    written_entity(current.as_ref(), write).map(Some).unwrap_or(current)
}

/// Each `(collection, id)` of `keys` with its position, sorted by entity, each
/// entity's in their order (the position breaks ties). Every caller sorts the
/// same type: each type sorted adds a sort of its own to the module.
fn by_entity<'k>(keys: impl Iterator<Item = (&'k str, &'k str)>) -> Vec<(&'k str, &'k str, usize)> {
    let mut sorted: Vec<_> = keys.enumerate().map(|(position, (collection, id))| (collection, id, position)).collect();
    sorted.sort_unstable();
    sorted
}

/// The entries of `queued` (from `by_entity`) for the entity `key`.
fn queued_for<'q, 'k>(queued: &'q [(&'k str, &'k str, usize)], key: &Key) -> &'q [(&'k str, &'k str, usize)] {
    let key = (key.0.as_str(), key.1.as_str());
    let start = queued.partition_point(|&(collection, id, _)| (collection, id) < key);
    let end = start + queued[start..].partition_point(|&(collection, id, _)| (collection, id) == key);
    &queued[start..end]
}

fn missing_result() -> Error {
    Error::Storage("the store answered fewer writes than it was given".into())
}

async fn single(future: impl Future<Output = Result<Vec<Entity>>>) -> Result<Entity> {
    future.await?.pop().ok_or_else(missing_result)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use futures::executor::{block_on, LocalPool};
    use futures::task::LocalSpawnExt;
    use serde_json::{json, Value};

    use super::*;
    use crate::core::reconcile::{Policies, ServerAnswer};
    use crate::core::{Meanwhile, Mutation, Query, Snapshot, SyncMeta};
    use crate::store::MemoryStore;

    /// A memory store whose `apply` first waits for the next gate the test
    /// holds (if any), so that writes can be staged while a batch is in flight.
    struct Gated {
        inner: MemoryStore,
        gates: RefCell<VecDeque<oneshot::Receiver<()>>>,
    }

    impl Gated {
        fn gate(&self) -> oneshot::Sender<()> {
            let (open, gate) = oneshot::channel();
            self.gates.borrow_mut().push_back(gate);
            open
        }
    }

    impl Store for Gated {
        async fn load(&self) -> Result<Snapshot> {
            self.inner.load().await
        }
        async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
            let gate = self.gates.borrow_mut().pop_front();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            self.inner.apply(writes).await
        }
        async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
            self.inner.get(collection, id).await
        }
        async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
            self.inner.query(collection, query).await
        }
        async fn outbox_after(&self, after: crate::core::MutationId, limit: usize) -> Result<Vec<Mutation>> {
            self.inner.outbox_after(after, limit).await
        }
        async fn pending_count(&self) -> Result<usize> {
            self.inner.pending_count().await
        }
        async fn settle(
            &self,
            answers: &[ServerAnswer],
            policies: &Policies,
            now: f64,
            cursor: Option<&str>,
            meanwhile: Meanwhile<'_>,
        ) -> Result<Vec<Settled>> {
            self.inner.settle(answers, policies, now, cursor, meanwhile).await
        }
        async fn note_failed_push(&self, mutation_ids: &[crate::core::MutationId], error: &str) -> Result<()> {
            self.inner.note_failed_push(mutation_ids, error).await
        }
        async fn sync_meta(&self) -> Result<SyncMeta> {
            self.inner.sync_meta().await
        }
        async fn save_sync_meta(&self, meta: &SyncMeta) -> Result<()> {
            self.inner.save_sync_meta(meta).await
        }
        fn close(&self) {
            self.inner.close()
        }
    }

    fn schema() -> Schema {
        Schema::new([("notes", vec!["title"])]).unwrap()
    }

    fn data(value: Value) -> crate::core::Data {
        value.as_object().cloned().unwrap()
    }

    fn open(inner: MemoryStore) -> Rc<Repository<Gated>> {
        let store = Gated { inner, gates: RefCell::default() };
        let now = std::cell::Cell::new(0.0);
        let clock = Box::new(move || {
            now.set(now.get() + 1.0);
            now.get()
        });
        block_on(Repository::open(store, schema(), clock)).unwrap()
    }

    fn mirrored(repo: &Repository<Gated>, id: &str) -> Option<Entity> {
        repo.read("notes", |c| c.get(id).cloned()).unwrap()
    }

    fn stored(repo: &Repository<Gated>, id: &str) -> Option<Entity> {
        block_on(repo.store().get("notes", id)).unwrap()
    }

    #[test]
    fn a_failed_batch_shows_the_durable_state_with_the_queued_writes_on_top() {
        let repo = open(MemoryStore::new(schema()));
        block_on(repo.put("notes", Some("a".into()), data(json!({"title": "v1"}))).unwrap()).unwrap();
        let heard: Rc<RefCell<Vec<Change>>> = Rc::default();
        let sink = heard.clone();
        repo.subscribe(None, Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes))).unwrap();

        let mut pool = LocalPool::new();
        let first_gate = repo.store().gate();
        let failing = pool.spawner().spawn_local_with_handle(repo.patch("notes", "a".into(), data(json!({"title": "v2"}))).unwrap()).unwrap();
        pool.run_until_stalled();
        // The patch is in flight; these two queue behind it.
        repo.store().inner.fail_next_apply();
        let second_gate = repo.store().gate();
        let queued = pool.spawner().spawn_local_with_handle(repo.patch("notes", "a".into(), data(json!({"body": "x"}))).unwrap()).unwrap();
        let created = pool.spawner().spawn_local_with_handle(repo.put("notes", Some("b".into()), data(json!({"title": "b"}))).unwrap()).unwrap();
        pool.run_until_stalled();
        assert_eq!(Value::Object(mirrored(&repo, "a").unwrap().into_data()), json!({"title": "v2", "body": "x"}));

        first_gate.send(()).unwrap();
        pool.run_until_stalled();
        // The first batch failed; the second is in flight.
        let a = mirrored(&repo, "a").unwrap();
        assert_eq!(Value::Object(a.data().clone()), json!({"title": "v1", "body": "x"}), "v1 with the queued patch on top");
        assert_eq!(repo.read("notes", |c| c.query(&Query { index: Some("title".into()), ..Query::default() }).unwrap().len()).unwrap(), 2);
        assert!(heard.borrow().iter().any(|c| c.id == "a" && c.entity.as_ref() == Some(&a) && matches!(c.origin, Origin::Rollback(_))));

        second_gate.send(()).unwrap();
        pool.run_until_stalled();
        assert!(block_on(failing).is_err());
        assert_eq!(block_on(queued).unwrap(), stored(&repo, "a").unwrap());
        assert_eq!(block_on(created).unwrap(), stored(&repo, "b").unwrap());
        for id in ["a", "b"] {
            assert_eq!(mirrored(&repo, id), stored(&repo, id), "{id}: the mirror shows what is stored");
        }
        assert!(repo.state.borrow().durable.is_empty(), "nothing is in flight or queued");
    }

    /// Subscribers hear of a write only once it is durable: while its batch
    /// is held inside the store they hear nothing, though the mirror shows it.
    #[test]
    fn subscribers_hear_a_write_only_once_its_batch_committed() {
        let repo = open(MemoryStore::new(schema()));
        let heard: Rc<RefCell<Vec<Change>>> = Rc::default();
        let sink = heard.clone();
        repo.subscribe(None, Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes))).unwrap();
        let mut pool = LocalPool::new();
        let gate = repo.store().gate();
        let write = pool.spawner().spawn_local_with_handle(repo.put("notes", Some("a".into()), data(json!({"title": "a"}))).unwrap()).unwrap();
        pool.run_until_stalled();
        assert!(mirrored(&repo, "a").is_some(), "the mirror shows the write at once");
        assert!(stored(&repo, "a").is_none(), "its batch is held in the store");
        assert!(heard.borrow().is_empty(), "subscribers hear nothing before the commit");

        gate.send(()).unwrap();
        pool.run_until_stalled();
        let written = block_on(write).unwrap();
        let heard = heard.borrow();
        assert_eq!(heard.len(), 1);
        assert_eq!((heard[0].id.as_str(), heard[0].entity.as_ref(), &heard[0].origin), ("a", Some(&written), &Origin::Local));
    }

    /// Two contexts on one database: what one commits, it announces; the other
    /// reads it back from the store and shows it, with its own queued writes
    /// still on top, and its subscribers hear of it as `Elsewhere`.
    #[test]
    fn a_commit_in_one_context_reaches_the_other_mirror() {
        let inner = MemoryStore::new(schema());
        let (a, b) = (open(inner.reopen(schema())), open(inner.reopen(schema())));
        let announced: Rc<RefCell<Vec<Committed>>> = Rc::default();
        let sink = announced.clone();
        a.on_commit(Box::new(move |committed: &Committed| sink.borrow_mut().push(committed.clone())));
        let heard: Rc<RefCell<Vec<Change>>> = Rc::default();
        let sink = heard.clone();
        b.subscribe(None, Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes))).unwrap();

        block_on(a.put("notes", Some("n".into()), data(json!({"title": "from a"}))).unwrap()).unwrap();
        assert_eq!(*announced.borrow(), [Committed { keys: vec![("notes".into(), "n".into())], local: true }]);
        // b has a write of its own queued (its batch held in the store) when a's commit arrives.
        let mut pool = LocalPool::new();
        let gate = b.store().gate();
        let queued = pool.spawner().spawn_local_with_handle(b.put("notes", Some("mine".into()), data(json!({"title": "b"}))).unwrap()).unwrap();
        pool.run_until_stalled();
        let read_back: Vec<(String, String, Entity)> =
            announced.borrow()[0].keys.iter().map(|(c, id)| (c.clone(), id.clone(), stored(&a, id).unwrap())).collect();
        b.absorb_elsewhere(&read_back);
        assert_eq!(mirrored(&b, "n"), stored(&a, "n"));
        assert!(mirrored(&b, "mine").is_some(), "its own queued write stays");
        assert!(heard.borrow().iter().any(|c| c.id == "n" && c.origin == Origin::Elsewhere));
        gate.send(()).unwrap();
        pool.run_until_stalled();
        block_on(queued).unwrap();
    }

    #[test]
    fn close_waits_for_the_batch_in_flight_then_refuses_reads() {
        let repo = open(MemoryStore::new(schema()));
        let mut pool = LocalPool::new();
        let gate = repo.store().gate();
        let write = pool.spawner().spawn_local_with_handle(repo.put("notes", Some("a".into()), data(json!({"title": "a"}))).unwrap()).unwrap();
        pool.run_until_stalled();
        // The write is in flight when close is called: close waits for it.
        let closing = repo.clone();
        let close = pool.spawner().spawn_local_with_handle(async move { closing.close().await }).unwrap();
        pool.run_until_stalled();
        assert!(mirrored(&repo, "a").is_some(), "not closed while a write is in flight");

        gate.send(()).unwrap();
        pool.run_until_stalled();
        // The memory store refuses writes once closed: the write got there first.
        assert!(block_on(write).is_ok(), "the write was durable before the store closed");
        block_on(close).unwrap();
        assert!(matches!(repo.read("notes", |c| c.len()), Err(Error::DatabaseClosed(_))));
        assert!(repo.state.borrow().mirror.is_empty(), "the mirror is let go");
    }

    #[test]
    fn writes_to_one_entity_in_one_batch_settle_on_what_the_store_computed() {
        let inner = MemoryStore::new(schema());
        let repo = open(inner.reopen(schema()));
        block_on(repo.put("notes", Some("a".into()), data(json!({"title": "v1"}))).unwrap()).unwrap();
        // Another tab deletes the entity; this one still shows it live.
        let delete = Write { collection: "notes".into(), id: "a".into(), op: Op::Delete, data: None, at: 50.0 };
        block_on(inner.apply(&[delete])).unwrap().pop().unwrap().unwrap();

        let deleted = repo.delete("notes", "a".into()).unwrap();
        let replaced = repo.put("notes", Some("a".into()), data(json!({"title": "v2"}))).unwrap();
        let (deleted, replaced) = block_on(futures::future::join(deleted, replaced));
        assert!(matches!(deleted, Err(Error::NotFound(_))), "the store saw a tombstone: {deleted:?}");
        let replaced = replaced.unwrap();
        assert_eq!(Some(&replaced), stored(&repo, "a").as_ref());
        assert_eq!(mirrored(&repo, "a").as_ref(), Some(&replaced), "the mirror shows what the store computed");
        assert!(repo.state.borrow().durable.is_empty());
    }
}
