//! Several handles on one database, as several tabs or workers hold them:
//! each has its own mirror and, syncing, queues for the one sync lock. Two
//! handles in one context talk over the same BroadcastChannel and Web Locks
//! as two tabs do, so these checks run on every engine.

use js_sys::Reflect;
use tideway::core::{Schema, Store};
use tideway::js::Tideway;
use tideway::store::indexeddb::{CommitMarks, IdbStore};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{field, js, notes_options, settle};

#[wasm_bindgen(inline_js = r#"
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms for up to `ms`; resolves with whether it came true. */
export async function eventually(condition, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) {
    if (condition()) return true;
  }
  return condition();
}

/** Open options syncing through the app's own push and pull, which count the mutations pushed. */
export function syncedOptions(name, pushed) {
  return {
    name,
    collections: { notes: {} },
    sync: {
      interval: 0,
      debounce: 10,
      push: async ({ mutations }) => {
        pushed.push(...mutations.map((m) => m.id));
        return { results: mutations.map((m) => ({ mutationId: m.mutationId, status: "applied", version: 1 })) };
      },
      pull: async () => ({ changes: [], cursor: "c", hasMore: false }),
    },
  };
}

/** Hides the Web Locks API, as engines without it have none; returns a function that brings it back. */
export function hideWebLocks() {
  Object.defineProperty(navigator, "locks", { value: undefined, configurable: true });
  return () => delete navigator.locks;
}

/**
 * Changes a note's title straight in IndexedDB, as a commit this handle never
 * heard of (a frozen page misses the messages): no library code runs.
 */
export function retitleBehindItsBack(name, id, title) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const store = db.transaction("e:notes", "readwrite").objectStore("e:notes");
      const read = store.get(id);
      read.onsuccess = () => {
        const record = read.result;
        const entity = JSON.parse(record.doc);
        // `baseIsData` stands for a base equal to the data: the base keeps the old data.
        if (entity.baseIsData) {
          entity.base = structuredClone(entity.data);
          delete entity.baseIsData;
        }
        entity.data.title = title;
        store.put({ ...record, doc: JSON.stringify(entity) });
        store.transaction.oncomplete = () => { db.close(); resolve(); };
      };
    };
  });
}

/** Counts the entity reads (`method`, `get` unless told, on an `e:` store) made until `stop()`, which gives the count. */
export function countEntityReads(method = "get") {
  const original = IDBObjectStore.prototype[method];
  const counter = { count: 0, stop: () => { IDBObjectStore.prototype[method] = original; return counter.count; } };
  IDBObjectStore.prototype[method] = function (...args) {
    if (this.name.startsWith("e:")) counter.count++;
    return original.apply(this, args);
  };
  return counter;
}

/**
 * Notes, of each commit message posted on any channel until `stop()`,
 * whether it carries the docs its commit stored; `stop()` gives the list.
 */
export function watchCommitMessages() {
  const post = BroadcastChannel.prototype.postMessage;
  const carried = [];
  BroadcastChannel.prototype.postMessage = function (message) {
    if (typeof message === "string" && message.startsWith('{"type":"committed"')) carried.push(message.includes('"docs":'));
    return post.call(this, message);
  };
  return { stop: () => { BroadcastChannel.prototype.postMessage = post; return carried; } };
}

/**
 * Resolves a moment after an end of the channel of the database `name`,
 * opened now, hears a context answer a probe: the context that probed hears
 * that answer about when this end does.
 */
export function answerToAProbe(name) {
  const channel = new BroadcastChannel(`tideway-sync:${name}`);
  return new Promise((resolve) => {
    channel.onmessage = ({ data }) => {
      if (data !== '{"type":"present"}') return;
      channel.close();
      setTimeout(resolve, 50);
    };
  });
}

/** `countEntityReads` of the reads of whole stores. */
export function countEntityScans() {
  return countEntityReads("getAll");
}

/**
 * Holds back the next chunk a load reads from an entity store: the load gets it
 * only at `release()`, after its transaction ended. `held` resolves once the
 * chunk was read and is being held.
 */
export function holdNextLoadedChunk() {
  const getAll = IDBObjectStore.prototype.getAll;
  let release, reached;
  const hold = {
    held: new Promise((resolve) => { reached = resolve; }),
    release: () => release(),
  };
  IDBObjectStore.prototype.getAll = function (...args) {
    const request = getAll.apply(this, args);
    if (this.name.startsWith("e:")) {
      IDBObjectStore.prototype.getAll = getAll;
      Object.defineProperty(request, "onsuccess", {
        set(handler) {
          request.addEventListener("success", (event) => {
            release = () => handler.call(request, event);
            reached();
          });
        },
      });
    }
    return request;
  };
  return hold;
}

/**
 * Holds back the probes a handle joining a database's channel posts to learn
 * when its end hears the others (see `Channel::join`), as a browser still
 * registering that end would not deliver them: `held` resolves once the first
 * was posted, `release()` sends them all.
 */
export function holdProbes() {
  const post = BroadcastChannel.prototype.postMessage;
  const probes = [];
  let reached;
  BroadcastChannel.prototype.postMessage = function (message) {
    if (typeof message !== "string" || !message.startsWith('{"type":"probe"')) return post.call(this, message);
    probes.push([this, message]);
    reached();
  };
  return {
    held: new Promise((resolve) => { reached = resolve; }),
    release() {
      BroadcastChannel.prototype.postMessage = post;
      for (const [channel, message] of probes) {
        try { post.call(channel, message); } catch { /* a prober that stopped waiting is closed */ }
      }
    },
  };
}

export function comeBackFromTheBackForwardCache() {
  globalThis.dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true }));
}

/** A change listener that notes `id:origin` of each change in `heard`. */
export function recorder(heard) {
  return (changes) => heard.push(...changes.map((c) => `${c.id}:${c.origin}`));
}
"#)]
extern "C" {
    async fn eventually(condition: &js_sys::Function, ms: u32) -> JsValue;
    #[wasm_bindgen(js_name = syncedOptions)]
    fn synced_options(name: &str, pushed: &js_sys::Array) -> JsValue;
    fn recorder(heard: &js_sys::Array) -> JsValue;
    /// Changes a note's title straight in IndexedDB, leaving no commit mark
    /// and telling no handle (see `retitleBehindItsBack` above).
    #[wasm_bindgen(js_name = retitleBehindItsBack)]
    pub(super) fn retitle_behind_its_back(name: &str, id: &str, title: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = countEntityReads)]
    fn count_entity_reads() -> JsValue;
    #[wasm_bindgen(js_name = countEntityScans)]
    fn count_entity_scans() -> JsValue;
    #[wasm_bindgen(js_name = watchCommitMessages)]
    fn watch_commit_messages() -> JsValue;
    #[wasm_bindgen(js_name = answerToAProbe)]
    fn answer_to_a_probe(name: &str) -> js_sys::Promise;
    type Hold;
    #[wasm_bindgen(js_name = holdNextLoadedChunk)]
    fn hold_next_loaded_chunk() -> Hold;
    #[wasm_bindgen(method, getter)]
    fn held(this: &Hold) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    fn release(this: &Hold);
    #[wasm_bindgen(js_name = holdProbes)]
    fn hold_probes() -> Hold;
    #[wasm_bindgen(js_name = comeBackFromTheBackForwardCache)]
    fn come_back_from_the_back_forward_cache();
    #[wasm_bindgen(js_name = hideWebLocks)]
    fn hide_web_locks() -> js_sys::Function;
}

async fn until(condition: impl Fn() -> bool + 'static, ms: u32) -> bool {
    let condition = Closure::<dyn Fn() -> bool>::new(condition);
    eventually(condition.as_ref().unchecked_ref(), ms).await.as_bool() == Some(true)
}

/// The store of the database `name` alone, with the schema `notes_options` declares.
async fn store_of(name: &str) -> IdbStore {
    IdbStore::open(name, Schema::new([("notes", vec![])]).unwrap()).await.expect("open the store")
}

/// Puts the note `id` titled `title` through the store alone: a commit that
/// leaves its mark, as every commit does, and posts nothing on the channel.
async fn commit_unheard(name: &str, id: &str, title: &str) {
    let store = store_of(name).await;
    store.apply(&[super::put(id, title)]).await.expect("write through the store");
    store.close();
}

/// Records a change of the note `id` pulled from the server, through the
/// store alone, as a syncer does: a commit that leaves its mark and no outbox
/// entry, and posts nothing on the channel.
async fn pull_unheard(name: &str, id: &str, title: &str) {
    use tideway::core::reconcile::{Policies, ServerAnswer};
    let store = store_of(name).await;
    store.load().await.expect("load");
    let data = serde_json::json!({ "title": title }).as_object().cloned().unwrap();
    let data = tideway::core::DataText::of(&data);
    let change = tideway::core::sync::ServerChange { collection: "notes".into(), id: id.into(), data, version: 1, server_updated_at: 1, deleted: false };
    store.settle(&[ServerAnswer::Pulled { id: id.into(), change }], &Policies::default(), 1.0, None, Box::new(|| ())).await.expect("record the pull");
    store.close();
}

fn title(db: &Tideway, id: &str) -> Option<String> {
    let record = db.collection("notes".into()).ok()?.get(id.into(), JsValue::UNDEFINED).ok()?;
    field(&record, "data.title").as_string()
}

/// A commit through one handle reaches the other handle's mirror and its
/// subscribers (origin "elsewhere"), both ways, and local writes queued in the
/// other handle stay on top.
pub async fn a_commit_reaches_every_handle_of_the_database() {
    let name = format!("contexts-coherence-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let (a, b) = (Tideway::open(options()).await.expect("open a"), Tideway::open(options()).await.expect("open b"));
    let heard = js_sys::Array::new();
    let _off = b.on("change".into(), recorder(&heard)).expect("listen");
    let notes_a = a.collection("notes".into()).unwrap();
    settle(notes_a.put(js(r#"{"title": "from a"}"#), js(r#"{"id": "n1"}"#))).await.expect("put in a");
    let b = std::rc::Rc::new(b);
    let seen = b.clone();
    assert!(until(move || title(&seen, "n1").as_deref() == Some("from a"), 5_000).await, "b's get shows a's write");
    assert!(heard.iter().any(|h| h.as_string().as_deref() == Some("n1:elsewhere")), "{:?}", heard.to_vec());

    let notes_b = b.collection("notes".into()).unwrap();
    settle(notes_b.patch("n1".into(), js(r#"{"title": "from b"}"#))).await.expect("patch in b");
    let a = std::rc::Rc::new(a);
    let seen = a.clone();
    assert!(until(move || title(&seen, "n1").as_deref() == Some("from b"), 5_000).await, "and back");
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// What a watch of the inline JS above (`countEntityReads`,
/// `watchCommitMessages`) saw, once stopped.
fn stop(watch: &JsValue) -> JsValue {
    let stop: js_sys::Function = Reflect::get(watch, &"stop".into()).unwrap().unchecked_into();
    stop.call0(watch).unwrap()
}

/// What `work` gives, and the reads of entities (`get`) it made, in every
/// handle of this realm.
async fn with_entity_reads<T>(work: impl std::future::Future<Output = T>) -> (T, f64) {
    let counter = count_entity_reads();
    let done = work.await;
    (done, stop(&counter).as_f64().unwrap())
}

/// Two connections on a new database of notes `a` and `b` (titled "first"),
/// each having loaded it: `(name, mine, theirs)`.
async fn two_loaded_connections(test: &str) -> (String, IdbStore, IdbStore) {
    let (name, mine) = super::open_store(test).await;
    mine.apply(&["a", "b"].map(|id| super::put(id, "first"))).await.expect("write");
    mine.load().await.expect("load");
    let theirs = IdbStore::open(&name, super::notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load");
    (name, mine, theirs)
}

/// The keys of the notes `ids`.
fn note_keys(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter().map(|id| ("notes".to_owned(), id.to_string())).collect()
}

/// Reads back the notes `ids` into `mine` with what the message of their
/// commit carried (`told`): the entity reads it made, and each note's id and title.
async fn read_back(mine: &IdbStore, ids: &[&str], told: CommitMarks) -> (f64, Vec<(String, String)>) {
    let (read, reads) = with_entity_reads(mine.read_stored(note_keys(ids), Some(&told.marks), told.docs.as_ref())).await;
    let titles = read.expect("read back").into_iter().map(|(_, id, entity)| (id, super::title_of(Some(entity)).unwrap_or_default())).collect();
    (reads, titles)
}

/// Their commit of the note `id`, titled `title`, and what its message
/// (naming that note) carries.
async fn their_commit(theirs: &IdbStore, id: &str, title: &str) -> CommitMarks {
    theirs.apply(&[super::put(id, title)]).await.expect("their write");
    theirs.take_commit_marks(&note_keys(&[id]), true).expect("the marks of their one commit")
}

/// Each `(id, title)` pair as `read_back` gives it.
fn titled(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(id, title)| (id.to_string(), title.to_string())).collect()
}

/// A commit's message carries the docs it stored. A connection takes them
/// without reading the entities when its maps held every entity at the mark
/// the commit found (it missed no commit before), even when later commits
/// have landed since: their messages follow and bring their changes in turn.
/// Not when a later commit's message came first: it was read back as stored
/// then, and taking the earlier docs after it would bring an older version
/// back for good; both are read, until a full read. Nor after a missed
/// commit. Docs too large to send stay behind.
pub async fn a_commit_read_back_with_its_docs_takes_them_when_it_follows_on() {
    let (name, mine, theirs) = two_loaded_connections("told-docs").await;

    // Their commit of a, in a message that names b too, which it did not write.
    theirs.apply(&[super::put("a", "told")]).await.expect("their write");
    let told = theirs.take_commit_marks(&note_keys(&["a", "b"]), true).expect("the marks of their one commit");
    let docs = told.docs.clone().expect("its docs travel with its marks");
    assert!(docs.get(0).as_string().is_some_and(|doc| doc.contains("told")), "{docs:?}");
    assert!(docs.get(1).is_null(), "b was not written");
    assert_eq!(read_back(&mine, &["a", "b"], told).await, (0.0, titled(&[("a", "told"), ("b", "first")])), "taken from the message");

    // Two commits, the first taken in once both are made: as it stored a, then as the second did.
    let first = their_commit(&theirs, "a", "overwritten").await;
    let second = their_commit(&theirs, "a", "current").await;
    assert_eq!(read_back(&mine, &["a"], first).await, (0.0, titled(&[("a", "overwritten")])), "a later commit's message follows");
    assert_eq!(read_back(&mine, &["a"], second).await, (0.0, titled(&[("a", "current")])), "the second follows on from the first");

    // Two messages heard in the wrong order: the later commit is read back, and so is the earlier.
    let earlier = their_commit(&theirs, "a", "older").await;
    let later = their_commit(&theirs, "a", "newer").await;
    assert_eq!(read_back(&mine, &["a"], later).await, (1.0, titled(&[("a", "newer")])), "read: its commit does not follow on");
    assert_eq!(read_back(&mine, &["a"], earlier).await, (1.0, titled(&[("a", "newer")])), "read, not taken back to the older");
    let next = their_commit(&theirs, "b", "after both").await;
    assert_eq!(read_back(&mine, &["b"], next).await, (1.0, titled(&[("b", "after both")])), "read until a full read");
    mine.load().await.expect("a full read");
    let next = their_commit(&theirs, "b", "after the full read").await;
    assert_eq!(read_back(&mine, &["b"], next).await, (0.0, titled(&[("b", "after the full read")])), "taken again");

    // A commit missed: the next one's docs are not taken, as this connection's maps may be out of date.
    theirs.apply(&[super::put("b", "missed")]).await.expect("their write");
    assert!(theirs.take_commit_marks(&note_keys(&["b"]), true).is_some(), "marks of a commit whose message is lost");
    theirs.apply(&[super::put("a", "after the missed one")]).await.expect("their write");
    let after = theirs.take_commit_marks(&note_keys(&["a", "b"]), true).expect("marks");
    assert_eq!(read_back(&mine, &["a", "b"], after).await, (2.0, titled(&[("a", "after the missed one"), ("b", "missed")])), "read");

    // Docs past the size a message carries: the marks travel alone.
    theirs.apply(&[super::put("a", &"x".repeat(1024 * 1024))]).await.expect("their write");
    assert!(theirs.take_commit_marks(&note_keys(&["a"]), true).expect("marks").docs.is_none(), "too large to send");
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A commit of this connection's that came right after another connection's
/// commit, which it had not heard of, leaves its maps missing that one
/// commit: they are trusted again, and it reads no entity to write, once that
/// commit's message arrives with its docs. Where both wrote an entity, this
/// connection's later doc is kept. A further commit of theirs after this
/// connection's is taken in from its own message in turn.
pub async fn a_commit_raced_by_another_is_filled_in_from_its_message() {
    let (name, mine, theirs) = two_loaded_connections("raced").await;
    // The entity reads one write of mine makes.
    let write = |id: &'static str, title: &'static str| {
        let mine = &mine;
        async move { with_entity_reads(mine.apply(&[super::put(id, title)])).await.1 }
    };
    let title = |id: &'static str| {
        let mine = &mine;
        async move { super::title_of(mine.get("notes", id).await.unwrap()) }
    };
    assert_eq!(write("b", "trusted").await, 0.0, "no other commit yet");

    // Their commit of a; then two of mine of b, the first before mine heard of theirs.
    let told = their_commit(&theirs, "a", "theirs").await;
    assert_eq!(write("b", "raced").await, 1.0, "stale, so written again reading b");
    assert_eq!(write("b", "after the race").await, 1.0, "a mark it cannot place: b is read");
    assert_eq!(read_back(&mine, &["a"], told).await, (0.0, titled(&[("a", "theirs")])));
    assert_eq!(write("b", "filled in").await, 0.0, "their commit was all its maps missed");

    // Both write a: mine's later doc is the one kept.
    let told = their_commit(&theirs, "a", "theirs again").await;
    assert_eq!(write("a", "mine, after theirs").await, 1.0, "stale, so written again reading a");
    assert_eq!(read_back(&mine, &["a"], told).await, (0.0, titled(&[("a", "mine, after theirs")])));
    mine.apply(&[super::patch("a", serde_json::json!({ "body": "patched" }))]).await.expect("patch");
    assert_eq!(title("a").await.as_deref(), Some("mine, after theirs"), "the patch was computed on mine's doc");
    assert_eq!(write("b", "trusted again").await, 0.0);

    // A further commit after mine: the gap is filled in, and the maps are
    // trusted again once that commit's message is taken in too.
    let third = their_commit(&theirs, "a", "theirs, third").await;
    assert_eq!(write("b", "raced again").await, 1.0);
    let fourth = their_commit(&theirs, "a", "theirs, fourth").await;
    assert_eq!(read_back(&mine, &["a"], third).await, (0.0, titled(&[("a", "theirs, third")])), "the gap's commit");
    assert_eq!(write("b", "still unsure").await, 1.0, "their fourth commit is not taken in yet");
    assert_eq!(read_back(&mine, &["a"], fourth).await, (0.0, titled(&[("a", "theirs, fourth")])), "the gap before that write");
    assert_eq!(write("b", "trusted once more").await, 0.0);
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Through the channel: a handle takes in another's commit from its message,
/// reading no entity, and then holds the docs it stored.
pub async fn a_handle_takes_in_another_handles_commit_without_reading_it() {
    let name = format!("contexts-told-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let a = std::rc::Rc::new(Tideway::open(options()).await.expect("open a"));
    let b = Tideway::open(options()).await.expect("open b");
    let entries = (0..20).map(|i| format!(r#"{{"id": "n{i}", "data": {{"title": "from b"}}}}"#)).collect::<Vec<_>>().join(",");
    let ((), reads) = with_entity_reads(async {
        settle(b.collection("notes".into()).unwrap().bulk_put(js(&format!("[{entries}]")))).await.expect("bulk put in b");
        let seen = a.clone();
        assert!(until(move || (0..20).all(|i| title(&seen, &format!("n{i}")).as_deref() == Some("from b")), 5_000).await, "a has b's notes");
    })
    .await;
    assert_eq!(reads, 0.0, "neither b's commit nor a's taking it in read an entity");
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A commit's message carries the docs it stored only once another context
/// is known to listen: a handle alone posts its commits without them; one
/// that joins later is heard by its probe, and hears the others answer it.
pub async fn a_commit_carries_its_docs_only_once_another_context_is_heard() {
    let name = format!("contexts-alone-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let put = |db: &Tideway, id: &str| settle(db.collection("notes".into()).unwrap().put(js(r#"{"title": "t"}"#), js(&format!(r#"{{"id": "{id}"}}"#))));
    let watch = watch_commit_messages();
    let a = Tideway::open(options()).await.expect("open a");
    put(&a, "n1").await.expect("put in a");
    // b's open waits for its own probe, not for a's answer to it.
    let answered = answer_to_a_probe(&name);
    let b = Tideway::open(options()).await.expect("open b");
    settle(answered).await.expect("a answers b's probe");
    put(&b, "n2").await.expect("put in b");
    put(&a, "n3").await.expect("put in a");
    let carried: Vec<bool> = js_sys::Array::from(&stop(&watch)).iter().map(|c| c.as_bool().unwrap()).collect();
    assert_eq!(carried, [false, true, true], "a alone; b, which heard a answer its probe; a, which heard b join");
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A handle that hears of the other handle's commit, and reads it back,
/// still takes every entity's doc from what it knows: updating notes it
/// loaded reads none of them from IndexedDB. A commit it does not hear of
/// (made without telling the channel, as by a context that missed it) makes
/// it read them, until it has read them again.
pub async fn a_handle_that_hears_of_every_commit_reads_no_entity_to_update_them() {
    let name = format!("contexts-known-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let a = std::rc::Rc::new(Tideway::open(options()).await.expect("open a"));
    let b = std::rc::Rc::new(Tideway::open(options()).await.expect("open b"));
    let entries = |title: &str| js(&format!("[{}]", (0..20).map(|i| format!(r#"{{"id": "n{i}", "data": {{"title": "{title}"}}}}"#)).collect::<Vec<_>>().join(",")));
    settle(a.collection("notes".into()).unwrap().bulk_put(entries("one"))).await.expect("bulk put in a");
    // The entity reads an update of the 20 notes makes in a, once b has read
    // back a's last commit (its reads would count too).
    let update = |before: &'static str, title: &'static str| {
        let notes = a.collection("notes".into()).unwrap();
        let b = b.clone();
        async move {
            assert!(until(move || self::title(&b, "n19").as_deref() == Some(before), 5_000).await, "b has read back a's last commit");
            let (updated, reads) = with_entity_reads(settle(notes.bulk_put(entries(title)))).await;
            updated.expect("update in a");
            reads
        }
    };
    assert_eq!(update("one", "two").await, 0.0, "a's own commits keep its docs trusted");

    settle(b.collection("notes".into()).unwrap().put(js(r#"{"title": "from b"}"#), js(r#"{"id": "b1"}"#))).await.expect("put in b");
    let seen = a.clone();
    assert!(until(move || title(&seen, "b1").as_deref() == Some("from b"), 5_000).await, "a hears of b's write");
    assert_eq!(update("two", "three").await, 0.0, "b's commit, heard of and read back");

    commit_unheard(&name, "u1", "unheard").await;
    assert_eq!(update("three", "four").await, 20.0, "a commit not heard of: every note is read");
    assert_eq!(update("four", "five").await, 20.0, "and still, until a reads everything again");
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A commit made after a handle's load read the stores and before the handle
/// joined the channel, so that nobody listening heard of it, is in the
/// handle's mirror once it is open.
pub async fn a_commit_made_while_a_handle_loads_is_in_its_mirror() {
    let name = format!("contexts-loading-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let b = Tideway::open(options()).await.expect("open b");
    let notes = b.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "loaded"}"#), js(r#"{"id": "n1"}"#))).await.expect("put in b");
    // a's load gets its chunk only once b has committed after the chunk was read.
    let hold = hold_next_loaded_chunk();
    let write_meanwhile = async {
        JsFuture::from(hold.held()).await.unwrap();
        settle(notes.put(js(r#"{"title": "committed while a loaded"}"#), js(r#"{"id": "n1"}"#))).await.expect("put in b");
        hold.release();
    };
    let (a, ()) = futures::join!(Tideway::open(options()), write_meanwhile);
    let a = a.expect("open a");
    assert_eq!(title(&a, "n1").as_deref(), Some("committed while a loaded"));

    // With no commit between its load and its joining, an open reads the stores once.
    let counter = count_entity_scans();
    let c = Tideway::open(options()).await.expect("open c");
    assert_eq!(stop(&counter).as_f64(), Some(1.0), "the load's one chunk, and no second read");
    settle(c.close()).await.unwrap();
    settle(a.close()).await.unwrap();
    settle(b.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A commit made once a handle has joined the channel but before the browser
/// delivers it the others' messages, whose message the handle so never gets,
/// is in the handle's mirror once it is open: it reads what changed once its
/// end of the channel hears the others, not as soon as it has joined.
pub async fn a_commit_told_before_a_handle_hears_the_channel_is_in_its_mirror() {
    let name = format!("contexts-joining-{}", uuid::Uuid::new_v4());
    let options = || notes_options(&name);
    let hold = hold_probes();
    let commit_meanwhile = async {
        JsFuture::from(hold.held()).await.unwrap();
        commit_unheard(&name, "n1", "told too early").await;
        hold.release();
    };
    let (a, ()) = futures::join!(Tideway::open(options()), commit_meanwhile);
    let a = a.expect("open a");
    assert_eq!(title(&a, "n1").as_deref(), Some("told too early"));
    settle(a.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Two handles syncing the same database: exactly one holds the sync lock
/// and syncs; the other's `db.sync()` is run by it, and its writes are pushed
/// by it. When the syncing handle closes, the other takes over.
pub async fn one_handle_syncs_and_the_other_hands_it_its_syncs() {
    let name = format!("contexts-leader-{}", uuid::Uuid::new_v4());
    let pushed = js_sys::Array::new();
    let first = std::rc::Rc::new(Tideway::open(synced_options(&name, &pushed)).await.expect("open the first"));
    let second = std::rc::Rc::new(Tideway::open(synced_options(&name, &pushed)).await.expect("open the second"));
    let here = |db: &Tideway| field(&db.status(), "syncer.here").as_bool();
    let (f, s) = (first.clone(), second.clone());
    assert!(until(move || here(&f) == Some(true) && here(&s) == Some(false), 5_000).await, "the first to ask syncs, the other knows it");
    assert_eq!(field(&second.status(), "syncer.context").as_string(), field(&first.status(), "syncer.context").as_string());

    let notes = second.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "queued in the second"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    let report = settle(second.sync()).await.expect("the second's sync runs in the first");
    let counted = pushed.clone();
    assert!(until(move || counted.length() == 1, 5_000).await, "pushed once: {:?}", pushed.to_vec());
    assert!(Reflect::get(&report, &"pushed".into()).is_ok());
    let waiting = second.clone();
    assert!(until(move || field(&waiting.status(), "pending").as_f64() == Some(0.0), 5_000).await, "the second sees it settled");

    settle(first.close()).await.unwrap();
    let s = second.clone();
    assert!(until(move || here(&s) == Some(true), 5_000).await, "the second takes over");
    settle(notes.put(js(r#"{"title": "after the handover"}"#), js(r#"{"id": "n2"}"#))).await.expect("put");
    let counted = pushed.clone();
    assert!(until(move || counted.length() == 2, 5_000).await, "the new syncer pushes: {:?}", pushed.to_vec());
    settle(second.close()).await.unwrap();
    let _ = JsFuture::from(js_sys::Promise::resolve(&JsValue::UNDEFINED)).await;
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Without Web Locks (an engine that lacks them) no handle waits for another:
/// each syncs on its own, as before there was a lock, and a write made in one
/// is still pushed once: by the handle that made it, not also by the other on
/// hearing of it.
pub async fn without_web_locks_every_handle_syncs_on_its_own() {
    let restore = hide_web_locks();
    let name = format!("contexts-no-locks-{}", uuid::Uuid::new_v4());
    let pushed = js_sys::Array::new();
    let first = Tideway::open(synced_options(&name, &pushed)).await.expect("open the first");
    let second = Tideway::open(synced_options(&name, &pushed)).await.expect("open the second");
    restore.call0(&JsValue::NULL).unwrap();
    for db in [&first, &second] {
        assert_eq!(field(&db.status(), "syncer.here").as_bool(), Some(true), "each syncs itself");
    }
    let notes = first.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "one"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    settle(first.sync()).await.expect("sync the first");
    settle(second.sync()).await.expect("sync the second");
    assert_eq!(pushed.to_vec().iter().filter_map(|id| id.as_string()).collect::<Vec<_>>(), ["n1"]);
    settle(first.close()).await.unwrap();
    settle(second.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A syncer that stopped between a commit and its message (its page closed)
/// leaves a commit no other handle heard of: once another handle takes over
/// the sync lock, it and the handles that hear it lead take that commit in.
pub async fn a_commit_its_syncer_never_told_is_taken_in_when_another_takes_over() {
    let name = format!("contexts-handover-{}", uuid::Uuid::new_v4());
    let pushed = js_sys::Array::new();
    let first = Tideway::open(synced_options(&name, &pushed)).await.expect("open the first");
    let second = std::rc::Rc::new(Tideway::open(synced_options(&name, &pushed)).await.expect("open the second"));
    let third = std::rc::Rc::new(
        Tideway::open(notes_options(&name)).await.expect("open the third"),
    );
    let here = |db: &Tideway| field(&db.status(), "syncer.here").as_bool();
    let s = second.clone();
    assert!(until(move || here(&s) == Some(false), 5_000).await, "the first to open syncs");
    pull_unheard(&name, "n1", "never told").await;
    settle(first.close()).await.unwrap();
    let s = second.clone();
    assert!(until(move || here(&s) == Some(true), 5_000).await, "the second takes over");
    for (db, which) in [(&second, "the new syncer"), (&third, "a handle that does not sync")] {
        let db = db.clone();
        assert!(until(move || title(&db, "n1").as_deref() == Some("never told"), 5_000).await, "{which} holds the commit");
    }
    settle(second.close()).await.unwrap();
    settle(third.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Another context opening the database with a newer schema: this handle
/// commits the write it had queued, closes (the upgrade waits for it), and
/// says so with a `versionchange` event; reopened with the new schema, it
/// goes on without a reload.
pub async fn an_upgrade_elsewhere_closes_this_handle_after_its_queued_writes() {
    let name = format!("contexts-upgrade-{}", uuid::Uuid::new_v4());
    let old = Tideway::open(notes_options(&name)).await.expect("open");
    let heard = js_sys::Array::new();
    let sink = heard.clone();
    let listener = Closure::<dyn Fn(JsValue)>::new(move |detail: JsValue| {
        sink.push(&detail);
    });
    let _off = old.on("versionchange".into(), listener.as_ref().clone()).expect("listen");
    let queued = old.collection("notes".into()).unwrap().put(js(r#"{"title": "queued"}"#), js(r#"{"id": "q"}"#));
    let newer = js(&format!(r#"{{"name": "{name}", "collections": {{"notes": {{}}, "tags": {{}}}}}}"#));
    let upgraded = Tideway::open(newer.clone()).await.expect("the upgrade goes through");
    settle(queued).await.expect("the queued write was committed, not lost");
    let seen = heard.clone();
    assert!(until(move || seen.length() == 1, 5_000).await, "a versionchange event");
    assert_eq!(field(&heard.get(0), "committed").as_bool(), Some(true));
    assert_eq!(title(&upgraded, "q").as_deref(), Some("queued"));
    let closed = old.collection("notes".into()).unwrap().get("q".into(), JsValue::UNDEFINED).unwrap_err();
    assert_eq!(field(&closed, "code").as_string().as_deref(), Some("DATABASE_CLOSED"));
    settle(upgraded.close()).await.unwrap();
    let reopened = Tideway::open(newer).await.expect("reopen without a reload");
    assert_eq!(title(&reopened, "q").as_deref(), Some("queued"));
    settle(reopened.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// A page back from the back/forward cache (or from being frozen) missed the
/// other contexts' messages: it reads what changed from IndexedDB and shows
/// it, without reloading. Only a page has these events, so only the page
/// suite runs this check.
#[allow(dead_code)]
pub async fn a_page_catches_up_with_what_it_missed_when_it_comes_back() {
    let name = format!("contexts-resume-{}", uuid::Uuid::new_v4());
    let db = std::rc::Rc::new(Tideway::open(notes_options(&name)).await.expect("open"));
    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "before"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    // As a commit made while this page was away reaches it: not at all.
    commit_unheard(&name, "n1", "while away").await;
    let seen = db.clone();
    assert!(!until(move || title(&seen, "n1").as_deref() == Some("while away"), 300).await, "nothing told it yet");
    come_back_from_the_back_forward_cache();
    let seen = db.clone();
    assert!(until(move || title(&seen, "n1").as_deref() == Some("while away"), 5_000).await, "caught up on coming back");
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}


#[wasm_bindgen(inline_js = r#"
/** A log listener that notes each entry in `heard` as `step`, `step:leading` or `step:direction`. */
export function logRecorder(heard) {
  return (entry) => heard.push([entry.step, entry.leading ?? entry.direction].filter((part) => part !== undefined).join(":"));
}

/** `options` with a `sync.log` that records into `heard`. */
export function withLog(options, heard) {
  options.sync.log = logRecorder(heard);
  return options;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = logRecorder)]
    fn log_recorder(heard: &js_sys::Array) -> JsValue;
    #[wasm_bindgen(js_name = withLog)]
    fn with_log(options: JsValue, heard: &js_sys::Array) -> JsValue;
}

/// The log says which handle syncs and where a `db.sync()` went: a `leadership`
/// entry as the lock changes hands, a `forwarded` one in the handle that asked
/// and in the one that ran it.
pub async fn the_log_tells_leadership_and_forwarded_syncs() {
    let name = format!("contexts-log-{}", uuid::Uuid::new_v4());
    let pushed = js_sys::Array::new();
    let (first_log, second_log) = (js_sys::Array::new(), js_sys::Array::new());
    // Taking the lock happens during open: only `sync.log` hears it.
    let first = Tideway::open(with_log(synced_options(&name, &pushed), &first_log)).await.expect("open the first");
    let second = std::rc::Rc::new(Tideway::open(synced_options(&name, &pushed)).await.expect("open the second"));
    let _off = second.on("log".into(), log_recorder(&second_log)).expect("listen");
    let entries = |log: &js_sys::Array| log.iter().filter_map(|e| e.as_string()).collect::<Vec<_>>();
    assert!(entries(&first_log).contains(&"leadership:true".to_owned()), "{:?}", entries(&first_log));

    settle(second.sync()).await.expect("the second's sync runs in the first");
    assert!(entries(&second_log).contains(&"forwarded:sent".to_owned()), "{:?}", entries(&second_log));
    assert!(entries(&first_log).contains(&"forwarded:received".to_owned()), "{:?}", entries(&first_log));
    assert!(!entries(&second_log).contains(&"push".to_owned()), "the steps are logged where the sync runs");

    settle(first.close()).await.unwrap();
    assert_eq!(entries(&first_log).last().map(String::as_str), Some("leadership:false"), "closing hands the lock on");
    let heard = second_log.clone();
    assert!(until(move || entries(&heard).contains(&"leadership:true".to_owned()), 5_000).await, "the second takes over");
    settle(second.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}
