//! The storage contract the repository runs on. Two implementations honour it:
//! the memory store (native tests) and IndexedDB (browsers); one conformance
//! suite (`tests/conformance/`) checks both against the same expectations.

use super::collection::Collection;
use super::entity::Entity;
use super::error::Result;
use super::mutation::{Applied, Mutation, MutationId, Write};
use super::query::Query;
use super::reconcile::{Policies, ServerAnswer, Settled};

/// Everything the repository loads at open.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Generated once when the database is created, kept forever.
    pub client_id: String,
    /// Every declared collection with all its entities, tombstones included.
    pub collections: Vec<(String, Vec<Entity>)>,
}

/// Sync bookkeeping that must survive a reload.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncMeta {
    /// The last pull cursor whose page is durably applied (`None`: pull from the start).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Consecutive failed syncs, for the backoff schedule.
    #[serde(default)]
    pub failures: u32,
    /// No automatic sync before this time (ms since the epoch): a reload
    /// during backoff does not hammer a struggling server.
    #[serde(default)]
    pub retry_at: Option<f64>,
    /// When a sync last completed (ms since the epoch).
    #[serde(default)]
    pub last_sync_at: Option<f64>,
    /// What the remote learned about the server and keeps for the next
    /// session (see [`crate::core::sync::Remote::learned`]).
    #[serde(default)]
    pub remote: Option<String>,
}

/// Work for this thread while a commit completes elsewhere (see [`Store::settle`]).
/// Boxed: a type parameter would copy each store's recording code once per caller.
pub type Meanwhile<'a> = Box<dyn FnOnce() + 'a>;

/// Durable storage for entities, the outbox and metadata.
///
/// Futures are not `Send`: in a browser every handle is a JS object.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Loads the client id and every entity of every declared collection.
    async fn load(&self) -> Result<Snapshot>;

    /// Applies `writes` in order in ONE transaction: for each, the entity as
    /// stored is read, [`crate::core::apply_write`] computes the new entity,
    /// and the entity and its outbox entry are written. A write that cannot
    /// apply (a patch of a missing entity) is skipped with its error; if the
    /// transaction fails, nothing is written and the whole call fails.
    async fn apply(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>>;

    /// Reads one entity (tombstones included) straight from storage.
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Entity>>;

    /// Answers a query from storage, with the same order as [`Collection::query`].
    async fn query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>>;

    /// The oldest `limit` outbox entries, in mutation id order.
    async fn outbox(&self, limit: usize) -> Result<Vec<Mutation>> {
        self.outbox_after(0, limit).await
    }

    /// The oldest `limit` outbox entries whose mutation id is above `after`, in
    /// mutation id order: sync reads its next batch past the one whose answers
    /// it is still recording, without reading that one again.
    async fn outbox_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>>;

    /// [`Store::outbox_after`] for a push to send: the same entries, but their
    /// `attempts` and `last_error`, which a push does not send, may be out of
    /// date, so that a store can hand over what it appended itself rather
    /// than read it back. The default reads the outbox.
    async fn pushable_after(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        self.outbox_after(after, limit).await
    }

    /// How many mutations wait in the outbox.
    async fn pending_count(&self) -> Result<usize>;

    /// Records server answers in ONE transaction, by the one rule of
    /// [`crate::core::reconcile::plan`]:
    ///
    /// 1. Inside the transaction, read what [`Reads::of`](crate::core::reconcile::Reads::of)
    ///    names: each entity the answers are about (in declared collections;
    ///    answers about other collections are ignored) and whether each
    ///    answered mutation is still in the outbox.
    /// 2. Plan on exactly that, then carry the plan out in the order
    ///    [`SettlementPlan`](crate::core::reconcile::SettlementPlan) gives:
    ///    removals and supersessions first, touching only entries queued
    ///    before the call; then the appends, with new mutation ids; then the
    ///    entities; then the pull page's `cursor`, so the cursor never runs
    ///    ahead of the changes it covers.
    ///
    /// Hence, whatever the store: an answer takes effect on the entity as the
    /// answers before it left it; an answer to a push counts only while its
    /// entry is queued (another context may have recorded it, or an earlier
    /// answer superseded it); a resolution is never dropped by the call that
    /// appended it; entities the answers do not name are not touched; and if
    /// the transaction fails, nothing of it is stored. Returns what each
    /// answer did, in answer order.
    ///
    /// `meanwhile` is called exactly once: when the writes are handed to
    /// storage and only their commit is awaited, or else before the call
    /// returns. Sync shows the answers recorded by the call before there, so
    /// that this thread's work overlaps the commit, which takes place elsewhere.
    async fn settle(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: Meanwhile<'_>,
    ) -> Result<Vec<Settled>>;

    /// A push of these outbox entries failed without an answer: each one still
    /// queued counts one more attempt and keeps `error` as its last. For people
    /// looking at the outbox (`db.outbox()`); sync decides nothing on it.
    async fn note_failed_push(&self, mutation_ids: &[MutationId], error: &str) -> Result<()>;

    /// The sync bookkeeping kept beside the outbox.
    async fn sync_meta(&self) -> Result<SyncMeta>;

    /// Saves the retry schedule and the time of the last sync. (The cursor is
    /// saved only by [`Store::settle`].)
    async fn save_sync_meta(&self, meta: &SyncMeta) -> Result<()>;

    /// Closes the connection; every later call fails with `DATABASE_CLOSED`.
    fn close(&self);
}

/// Builds the mirror collections of a snapshot.
pub fn collections_of(snapshot: Snapshot, schema: &super::schema::Schema) -> Vec<(String, Collection)> {
    let mut loaded: std::collections::HashMap<String, Vec<Entity>> = snapshot.collections.into_iter().collect();
    schema
        .collections
        .iter()
        .map(|(name, collection_schema)| {
            let entities = loaded.remove(name).unwrap_or_default();
            (name.clone(), Collection::from_entities(collection_schema.clone(), entities))
        })
        .collect()
}
