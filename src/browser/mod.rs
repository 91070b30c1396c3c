//! The JS half of the browser code (`browser.js`, beside this file: the
//! IndexedDB store's transactions, the Web Locks and Background Sync calls of
//! `crate::contexts`, and the compression of request bodies) and what Rust and
//! it agree on: how several strings travel as one text, what a write's op code
//! says, which faults a test may inject, and the shape of the records in each
//! object store. Both sides spell the contract out once (here,
//! and at the top of `browser.js`); a browser test compares them.
//!
//! `browser.js` is one module on purpose: a page or worker fetches each JS
//! module of the library while it loads, so one module is one request. Every
//! binding of it is here, in one `extern` block (and one for the test-only
//! faults), so the rest of the crate calls JS through this module only.

use js_sys::{Array, JsString, Object, Uint8Array};
use wasm_bindgen::prelude::*;

/// What separates the strings packed into one text (`WriteBatch.send`,
/// `knownDocs`, `currentDocs`, `joinDocs`, `Commits.take`, `RecordCache.evict`):
/// NUL, which neither an entity id nor JSON text holds.
pub const SEPARATOR: &str = "\0";

/// A position of no object store, where a call takes positions in a list of
/// stores.
pub const NO_STORE: u32 = u32::MAX;

/// A write's op code is its collection's position shifted left by this,
/// ORed with one of the kinds below.
pub const OP_SHIFT: u32 = 2;
/// Writes an entity.
pub const WRITE: u32 = 0;
/// Writes an entity that must still be stored as the store believes.
pub const CHECKED_WRITE: u32 = 1;
/// Checks, without writing, that the store's belief about one entity holds.
pub const CHECK: u32 = 2;
/// Acknowledges an entity: its new doc, which changes only sync metadata,
/// goes to the acknowledgement log instead of into its record (see
/// `crate::store::layout`).
pub const ACK: u32 = 3;

/// The op code of a write of `kind` to the collection at `position`.
pub fn op(position: u32, kind: u32) -> u32 {
    position << OP_SHIFT | kind
}

/// The fields of an entity store's records, `{ id, doc, ix }`: `id` is the key
/// path, `doc` the entity as JSON text, `ix` the key of each declared index.
pub const ENTITY_RECORD: [&str; 3] = ["id", "doc", "ix"];
/// The fields of an outbox record as written, `{ doc }`; IndexedDB adds the
/// key path, `mutationId`, from its key generator.
pub const OUTBOX_RECORD: [&str; 1] = ["doc"];

/// A failure a test makes the next write meet, each as a browser produces it.
#[cfg(feature = "fault-injection")]
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

#[cfg(feature = "fault-injection")]
impl Fault {
    pub const ALL: [Fault; 3] = [Fault::Constraint, Fault::LostBeforeCommit, Fault::LostAfterCommit];

    /// The name `WriteBatch.inject` knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Constraint => "constraint",
            Fault::LostBeforeCommit => "lost-before-commit",
            Fault::LostAfterCommit => "lost-after-commit",
        }
    }
}

#[wasm_bindgen(module = "/src/browser/browser.js")]
extern "C" {
    /// `{ id, doc, ix }`, built in one call rather than property by property.
    #[wasm_bindgen(js_name = entityRecord)]
    pub fn entity_record(id: &str, doc: &str, ix: &Object) -> JsValue;
    /// `{ doc }`, an outbox record as written.
    #[wasm_bindgen(js_name = outboxRecord)]
    pub fn outbox_record(doc: &str) -> JsValue;

    /// Reads every entity of some stores, chunk by chunk (see `Loader` in `browser.js`).
    pub type Loader;
    #[wasm_bindgen(constructor, catch)]
    pub fn new(db: &web_sys::IdbDatabase, stores: &Array, known: &Array, records: &Array, commits: &Commits) -> Result<Loader, JsValue>;
    /// Resolves with the next `LoadedChunk`, or null after the last.
    #[wasm_bindgen(method)]
    pub fn next(this: &Loader) -> js_sys::Promise;

    /// Saves the database's image (see `saveImage` in `browser.js`) now if
    /// one is pending on `db`: its transaction still completes once `db` is
    /// closed.
    #[wasm_bindgen(js_name = saveImageNow)]
    pub fn save_image_now(db: &web_sys::IdbDatabase) -> js_sys::Promise;

    /// One chunk a `Loader` read: the docs of some records of one store.
    pub type LoadedChunk;
    #[wasm_bindgen(method, getter)]
    pub fn store(this: &LoadedChunk) -> u32;
    #[wasm_bindgen(method, getter)]
    pub fn json(this: &LoadedChunk) -> Uint8Array;
    /// How many records of its store this chunk and the ones after it hold,
    /// as counted when the store's read began.
    #[wasm_bindgen(method, getter)]
    pub fn left(this: &LoadedChunk) -> u32;

    /// Begins a readwrite transaction on the entity stores at `positions` of
    /// `stores`, the outbox and the meta store.
    #[wasm_bindgen(js_name = beginWrite, catch)]
    pub fn begin_write(db: &web_sys::IdbDatabase, stores: &Array, positions: &[u32]) -> Result<JsValue, JsValue>;
    /// Asks, in `tx` (with the acknowledgement log in its scope), for the log:
    /// before the first read of an entity whose doc `settled_doc` then gives.
    #[wasm_bindgen(js_name = readAcks)]
    pub fn read_acks(tx: &web_sys::IdbTransaction) -> JsValue;
    /// The doc of entity `id` of `store` as it stands, `record` being what
    /// `tx` read of it: its doc with the log `read_acks` read applied.
    #[wasm_bindgen(js_name = settledDoc)]
    pub fn settled_doc(tx: &web_sys::IdbTransaction, store: &str, id: &str, record: &JsValue) -> Option<String>;
    /// Folds the oldest record of the acknowledgement log into the entities'
    /// records; resolves with whether more of the log is left.
    #[wasm_bindgen(js_name = foldAcks)]
    pub fn fold_acks(db: &web_sys::IdbDatabase) -> js_sys::Promise;
    /// Finds out, once per realm and in the background, whether write
    /// transactions may commit before their requests have settled.
    #[wasm_bindgen(js_name = probeEarlyCommit)]
    pub fn probe_early_commit(db: &web_sys::IdbDatabase, store: &str, key: &str);
    /// Reads the entities `ids` (joined by `SEPARATOR`), each in the store at
    /// the same place in `positions` (of `stores`, with `knowns`), inside
    /// `tx`, refreshing the `known` maps; resolves with the docs (undefined
    /// where absent). The calls below name entities the same way.
    #[wasm_bindgen(js_name = readDocs)]
    pub fn read_docs(tx: &JsValue, stores: &Array, knowns: &Array, positions: &[u32], ids: &str) -> js_sys::Promise;
    /// `read_docs` of what another context committed; with that commit's
    /// `marks` (or null), the maps may hold every entity again afterwards
    /// (see `Commits.advance`).
    #[wasm_bindgen(js_name = readCommitted)]
    pub fn read_committed(
        tx: &JsValue,
        stores: &Array,
        knowns: &Array,
        positions: &[u32],
        ids: &str,
        commits: &Commits,
        marks: &JsValue,
    ) -> js_sys::Promise;
    /// What another context's commit stored for the entities named, taken
    /// from its message (its `marks` and `docs`) without reading it,
    /// when the maps then hold every entity again; null otherwise (see
    /// `toldDocs` in `browser.js`).
    #[wasm_bindgen(js_name = toldDocs)]
    pub fn told_docs(stores: &Array, knowns: &Array, positions: &[u32], ids: &str, commits: &Commits, marks: &JsValue, docs: &Array) -> JsValue;
    /// `read_docs`, answered from the `known` maps when `commits` says they
    /// hold every entity as stored in `tx`.
    #[wasm_bindgen(js_name = currentDocs)]
    pub fn current_docs(tx: &JsValue, stores: &Array, knowns: &Array, positions: &[u32], ids: &str, commits: &Commits) -> js_sys::Promise;
    /// `[position, id, doc]` of each entity of `stores` stored otherwise than
    /// `knowns` say, the maps brought up to date (and then known to hold
    /// every entity, see `Commits`).
    #[wasm_bindgen(js_name = changedDocs)]
    pub fn changed_docs(db: &web_sys::IdbDatabase, stores: &Array, knowns: &Array, commits: &Commits) -> js_sys::Promise;

    /// Whether a store's `known` maps hold every entity as stored (see `Commits` in `browser.js`).
    pub type Commits;
    #[wasm_bindgen(constructor)]
    pub fn new() -> Commits;
    /// The maps may have missed a commit: every doc is read until the next full read.
    #[wasm_bindgen(method)]
    pub fn forget(this: &Commits);
    /// In a readwrite transaction with `meta` in its scope, leaves a new mark
    /// that no other context hears of: they all read every doc afterwards.
    #[wasm_bindgen(method)]
    pub fn leave(this: &Commits, tx: &JsValue);
    /// The marks of the commit just made, `[found, left, docs]`, for the
    /// message telling the other contexts that it wrote the entities `ids`
    /// (joined by `SEPARATOR`), each of the store at the same place in
    /// `positions` (of `stores`; [`NO_STORE`] for none); null unless exactly
    /// one commit of entities was made since the last call, and the message
    /// names every entity it wrote. `docs[i]`: the doc it stored for the i-th
    /// id, or null; `docs` is null when too large or not `with_docs`.
    #[wasm_bindgen(method)]
    pub fn take(this: &Commits, stores: &Array, positions: &[u32], ids: &str, with_docs: bool) -> JsValue;
    /// `docs` (texts, or undefined where absent) as one text, joined by
    /// `SEPARATOR`, an absent doc empty (see `Packed`).
    #[wasm_bindgen(js_name = joinDocs)]
    pub fn join_docs(docs: &Array) -> JsString;
    /// Encodes `text` as UTF-8 into `into`: the bytes written, or -1 if they
    /// did not fit.
    #[wasm_bindgen(js_name = encodeInto)]
    pub fn encode_into(text: &JsString, into: &mut [u8]) -> i32;
    /// Reads up to `limit` outbox entries after key `after` in `tx`; resolves
    /// with `[keys, docs]`: a `Float64Array`, and their docs as `join_docs`
    /// joins them (absent where unreadable).
    #[wasm_bindgen(js_name = readOutbox)]
    pub fn read_outbox(tx: &web_sys::IdbTransaction, after: f64, limit: u32) -> js_sys::Promise;
    /// For each id of `ids` (joined by `SEPARATOR`), the doc (JSON text) the
    /// `known` map at the same place in `positions` holds, or undefined.
    #[wasm_bindgen(js_name = knownDocs)]
    pub fn known_docs(knowns: &Array, positions: &[u32], ids: &str) -> Array;

    /// The records of one `apply`, in one transaction (see `WriteBatch` in `browser.js`).
    pub type WriteBatch;
    #[wasm_bindgen(constructor)]
    pub fn new(tx: &JsValue, stores: &Array, knowns: &Array, commits: &Commits) -> WriteBatch;
    /// Sends a run of packed writes (see `Outgoing` in `src/store/indexeddb/pack.rs`).
    #[wasm_bindgen(method)]
    pub fn send(this: &WriteBatch, entities: &str, mutations: &str, ops: &[u32]);
    #[wasm_bindgen(method)]
    pub fn abandon(this: &WriteBatch);
    /// Resolves with the outbox keys once committed, or null when a check failed.
    #[wasm_bindgen(method)]
    pub fn run(this: &WriteBatch) -> js_sys::Promise;
    /// Whether the batch was stored, when the connection was lost before `run` could tell.
    #[wasm_bindgen(method)]
    pub fn outcome(this: &WriteBatch, tx: &JsValue) -> js_sys::Promise;

    /// A stored record, read through direct property access.
    pub type StoredRecord;
    #[wasm_bindgen(method, getter)]
    pub fn id(this: &StoredRecord) -> JsValue;
    #[wasm_bindgen(method, getter)]
    pub fn doc(this: &StoredRecord) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = mutationId)]
    pub fn mutation_id(this: &StoredRecord) -> Option<f64>;

    /// Keeps the release of each Web Lock taken from now on in `releases`
    /// while it is held or waited for (see `trackLocks` in `index.js`).
    #[wasm_bindgen(js_name = trackLocks)]
    pub fn track_locks(releases: &js_sys::Set);
    /// A held Web Lock (see `holdLock`).
    pub type HeldLock;
    /// Queues for the Web Lock `name`; `acquired` runs once this context holds it.
    /// Undefined where Web Locks are missing.
    #[wasm_bindgen(js_name = holdLock)]
    pub fn hold_lock(name: &str, acquired: &js_sys::Function) -> Option<HeldLock>;
    #[wasm_bindgen(method)]
    pub fn release(this: &HeldLock);
    /// Resolves with whether the lock was free and taken at once.
    #[wasm_bindgen(method, getter)]
    pub fn decided(this: &HeldLock) -> js_sys::Promise;
    /// Runs `task` under the Web Lock `name` if it is free: `{ ran, value }`.
    #[wasm_bindgen(js_name = withLockIfFree)]
    pub fn with_lock_if_free(name: &str, task: &js_sys::Function) -> js_sys::Promise;
    /// A task waiting in the queue of a Web Lock (see `withLockOnceFree`).
    pub type QueuedTask;
    /// Runs `task` once this context holds the Web Lock `name`.
    #[wasm_bindgen(js_name = withLockOnceFree)]
    pub fn with_lock_once_free(name: &str, task: &js_sys::Function) -> QueuedTask;
    /// Resolves with what the task resolved with, once it ran.
    #[wasm_bindgen(method, getter)]
    pub fn done(this: &QueuedTask) -> js_sys::Promise;
    /// Leaves the queue (a task that started runs to its end).
    #[wasm_bindgen(method)]
    pub fn cancel(this: &QueuedTask);
    /// Registers the Background Sync (and, where allowed, periodic) tag `tag`.
    #[wasm_bindgen(js_name = requestBackgroundSync)]
    pub fn request_background_sync(tag: &str) -> js_sys::Promise;
    /// `{ usage, quota, persisted }` of the origin's storage; with `persist`,
    /// after asking the browser to keep it from eviction.
    #[wasm_bindgen(js_name = storageState)]
    pub fn storage_state(persist: bool) -> js_sys::Promise;
    /// "window", "worker" or "service-worker".
    #[wasm_bindgen(js_name = contextKind)]
    pub fn context_kind() -> String;
    /// Resolves with whether IndexedDB can open a database here.
    #[wasm_bindgen(js_name = indexedDbUsable)]
    pub fn indexed_db_usable() -> js_sys::Promise;

    /// The frozen JS records of one collection (`src/js/collection.rs`).
    /// The repository's mirror observer evicts changed entities.
    #[derive(Clone)]
    pub type RecordCache;
    #[wasm_bindgen(constructor)]
    pub fn new() -> RecordCache;
    #[wasm_bindgen(method)]
    pub fn seed(this: &RecordCache, docs: &js_sys::Map, records: &js_sys::Map);
    #[wasm_bindgen(method)]
    pub fn get(this: &RecordCache, id: &JsValue, include_deleted: bool) -> JsValue;
    #[wasm_bindgen(method, js_name = get)]
    pub fn get_by_str(this: &RecordCache, id: &str, include_deleted: bool) -> JsValue;
    #[wasm_bindgen(method)]
    pub fn set(this: &RecordCache, id: &str, record: &JsValue);
    /// Forgets the entities of `ids`, joined by `SEPARATOR`.
    #[wasm_bindgen(method)]
    pub fn evict(this: &RecordCache, ids: &str);
    #[wasm_bindgen(method)]
    pub fn clear(this: &RecordCache);

    // Reading and freezing JS values (`src/js/convert.rs`).
    #[wasm_bindgen(js_name = deepFreeze)]
    pub fn deep_freeze(value: JsValue) -> JsValue;
    /// Appends to `records` each record of `json` (a JSON array), deep-frozen.
    #[wasm_bindgen(js_name = appendRecords)]
    pub fn append_records(records: &js_sys::Array, json: &str);
    #[wasm_bindgen(js_name = isPlainObject)]
    pub fn is_plain_object(value: &JsValue) -> bool;
    #[wasm_bindgen(js_name = typeName)]
    pub fn type_name(value: &JsValue) -> String;
    #[wasm_bindgen(js_name = entriesJson)]
    pub fn entries_json(entries: &JsValue, max_depth: usize, start: u32, end: u32) -> Option<String>;
    #[wasm_bindgen(js_name = dataJson)]
    pub fn data_json(data: &JsValue, max_depth: usize) -> Option<String>;

    /// `json` gzipped (a `Blob`), or `undefined` where the engine cannot
    /// compress (`src/remote/http.rs`); in a worker where one can be started.
    pub fn gzip(json: &[u8]) -> js_sys::Promise;

    // The docs of a commit's message (`src/contexts/channel.rs`).
    /// Posts the message `text` on `channel`, with `docs` (an array, or null)
    /// written into it as its field `docs`; fails once the channel is closed.
    #[wasm_bindgen(catch, js_name = postWithDocs)]
    pub fn post_with_docs(channel: &web_sys::BroadcastChannel, text: &str, docs: &JsValue) -> Result<(), JsValue>;
    /// A message as heard, `[its text without its field docs, the docs]`;
    /// the docs are null where it has none that are strings or null.
    #[wasm_bindgen(js_name = takeDocs)]
    pub fn take_docs(data: &JsValue) -> Array;
}

#[cfg(feature = "fault-injection")]
#[wasm_bindgen(module = "/src/browser/browser.js")]
extern "C" {
    /// Makes the batch's transaction meet the fault named `fault`.
    #[wasm_bindgen(method)]
    pub fn inject(this: &WriteBatch, fault: &str);
    /// Resolves with what `probeEarlyCommit` found (false if never asked).
    #[wasm_bindgen(js_name = commitsEarly)]
    pub fn commits_early() -> js_sys::Promise;
    /// Saves every pending image now; resolves once each is saved or passed over.
    #[wasm_bindgen(js_name = saveImagesNow)]
    pub fn save_images_now() -> js_sys::Promise;
    /// Sets how long after the last commit a context saves the image by
    /// itself, how many entities' docs it takes per task, and the size of its
    /// parts; returns the settings before, as `[delayMs, slice, partLength]`.
    #[wasm_bindgen(js_name = setImageTiming)]
    pub fn set_image_timing(delay_ms: u32, slice: f64, part_length: f64) -> js_sys::Array;
    /// The JS side of the contract, for the test that compares it with this module.
    #[wasm_bindgen(js_name = contract)]
    pub fn js_contract() -> JsValue;
}
