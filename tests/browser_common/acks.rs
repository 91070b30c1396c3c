//! Acknowledgements of large pushes wait in a log (`acks`) instead of being
//! written into each entity's record, and every reader of an entity applies
//! them: a load, a read or a query from storage, another connection, a write
//! computed on what is stored, the fold that writes them into the records.

use tideway::core::reconcile::Policies;
use tideway::core::{Store, SyncStatus};
use tideway::store::indexeddb::IdbStore;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{acknowledgement, notes_schema, open_store, patch, put, title_of};

#[wasm_bindgen(inline_js = r#"
/** Every record of the object store `store` of the database `name`, read straight from IndexedDB. */
export function rawRecords(name, store) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const read = db.transaction(store).objectStore(store).getAll();
      read.onsuccess = () => { db.close(); resolve(read.result); };
      read.onerror = () => { db.close(); reject(read.error); };
    };
  });
}

/** The doc of the record `id` among `records`, parsed. */
export function docOf(records, id) {
  const record = records.find((r) => r.id === id);
  return record && JSON.parse(record.doc);
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = rawRecords)]
    fn raw_records(name: &str, store: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = docOf)]
    fn doc_of(records: &JsValue, id: &str) -> JsValue;
}

async fn raw(name: &str, store: &str) -> JsValue {
    JsFuture::from(raw_records(name, store)).await.expect("read IndexedDB")
}

fn raw_status(records: &JsValue, id: &str) -> Option<String> {
    js_sys::Reflect::get(&doc_of(records, id), &"syncStatus".into()).ok().and_then(|status| status.as_string())
}

fn log_length(log: &JsValue) -> u32 {
    js_sys::Array::from(log).length()
}

/// Writes 120 notes titled `title` to `store` and records the acknowledgement of each, in one batch: logged.
async fn acknowledge_120(store: &IdbStore, title: &str) -> Vec<String> {
    let ids: Vec<String> = (0..120).map(|i| format!("n{i:03}")).collect();
    store.apply(&ids.iter().map(|id| put(id, title)).collect::<Vec<_>>()).await.expect("write");
    let answers: Vec<_> = store.outbox(1000).await.expect("outbox").iter().map(acknowledgement).collect();
    store.settle(&answers, &Policies::default(), 9_000.0, None, Box::new(|| ())).await.expect("record");
    ids
}

/// Whether the log of the database `name` is empty within 10 s, looked at every 100 ms.
async fn folded_within_10_s(name: &str) -> bool {
    for _ in 0..100 {
        gloo_timers::future::TimeoutFuture::new(100).await;
        if log_length(&raw(name, "acks").await) == 0 {
            return true;
        }
    }
    false
}

/// 300 acknowledgements in one batch: the log holds them, in two records,
/// and the entities' records do not, yet every way of reading an entity sees them; an entity written
/// after them keeps its write through the fold, which empties the log.
pub async fn acknowledgements_wait_in_a_log_that_every_reader_applies() {
    let (name, mine) = open_store("acks-log").await;
    let ids: Vec<String> = (0..300).map(|i| format!("n{i:03}")).collect();
    mine.apply(&ids.iter().map(|id| put(id, "first")).collect::<Vec<_>>()).await.expect("write");
    let outbox = mine.outbox(1000).await.expect("outbox");
    let answers: Vec<_> = outbox.iter().map(acknowledgement).collect();
    let settled = mine.settle(&answers, &Policies::default(), 9_000.0, None, Box::new(|| ())).await.expect("record");
    assert!(settled.iter().all(|s| s.entity.as_ref().is_some_and(|e| e.sync_status == SyncStatus::Synced)));

    let log = raw(&name, "acks").await;
    assert_eq!(log_length(&log), 2, "one batch logged, in records of up to 250");
    let records = raw(&name, "e:notes").await;
    assert_eq!(raw_status(&records, "n000").as_deref(), Some("dirty"), "the record is as it was");
    assert_eq!(mine.pending_count().await.unwrap(), 0, "the outbox entries are gone");

    // Read and queried from storage, by id and through the title index.
    let n0 = mine.get("notes", "n000").await.unwrap().expect("n000");
    assert_eq!((n0.version, n0.sync_status, n0.remote_id.as_deref()), (1, SyncStatus::Synced, Some("n000")));
    let query = tideway::core::Query { index: Some("title".into()), ..Default::default() };
    let found = mine.query("notes", &query).await.expect("query");
    assert_eq!(found.len(), 300);
    assert!(found.iter().all(|e| e.sync_status == SyncStatus::Synced && e.version == 1));

    // Another connection loads them so, and its write is computed on them.
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    let loaded = theirs.load().await.expect("load");
    assert!(loaded.collections[0].1.iter().all(|e| e.sync_status == SyncStatus::Synced));
    theirs.apply(&[patch("n001", serde_json::json!({ "body": "theirs" }))]).await.expect("their write");
    let n1 = theirs.get("notes", "n001").await.unwrap().expect("n001");
    assert_eq!((n1.version, n1.pending, n1.sync_status), (1, 1, SyncStatus::Dirty), "their write on the acknowledged version");
    // This connection missed that commit: it reads n002 as it stands, log applied.
    mine.apply(&[patch("n002", serde_json::json!({ "title": "mine" }))]).await.expect("my write");
    let n2 = mine.get("notes", "n002").await.unwrap().expect("n002");
    assert_eq!(title_of(Some(n2.clone())).as_deref(), Some("mine"));
    assert_eq!((n2.version, n2.pending, n2.sync_status), (1, 1, SyncStatus::Dirty), "my write on the acknowledged version");

    // The fold writes each acknowledgement into its record, but for those
    // of n001 and n002, made on docs written over since.
    mine.fold_acks().await.expect("fold");
    assert_eq!(log_length(&raw(&name, "acks").await), 0, "the log is empty");
    let records = raw(&name, "e:notes").await;
    assert_eq!(raw_status(&records, "n000").as_deref(), Some("synced"));
    assert_eq!(raw_status(&records, "n001").as_deref(), Some("dirty"));
    assert_eq!(raw_status(&records, "n002").as_deref(), Some("dirty"));
    assert_eq!(mine.get("notes", "n001").await.unwrap().expect("n001").data(), n1.data(), "their write is kept");
    assert_eq!(mine.get("notes", "n002").await.unwrap().expect("n002").data(), n2.data(), "my write is kept");
    let reloaded = mine.load().await.expect("load again");
    let synced = reloaded.collections[0].1.iter().filter(|e| e.sync_status == SyncStatus::Synced).count();
    assert_eq!(synced, 298);

    // A few acknowledgements are written into their records at once.
    let outbox = mine.outbox(10).await.expect("outbox");
    let few: Vec<_> = outbox.iter().map(acknowledgement).collect();
    mine.settle(&few, &Policies::default(), 9_001.0, None, Box::new(|| ())).await.expect("record");
    assert_eq!(log_length(&raw(&name, "acks").await), 0, "nothing logged");
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A connection reads each record of the log once, and keeps it while the
/// log holds it: a later transaction asks only for the records added since,
/// and lets those folded meanwhile go. Every read sees every acknowledgement.
pub async fn a_connection_reads_each_record_of_the_log_once() {
    let (name, mine) = open_store("acks-seen").await;
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load");
    let synced_as = |title: &'static str| {
        let theirs = &theirs;
        async move {
            let n0 = theirs.get("notes", "n000").await.unwrap().expect("n000");
            n0.sync_status == SyncStatus::Synced && title_of(Some(n0)).as_deref() == Some(title)
        }
    };
    acknowledge_120(&mine, "first").await;
    assert!(synced_as("first").await, "the first record of the log read");
    acknowledge_120(&mine, "second").await;
    assert_eq!(log_length(&raw(&name, "acks").await), 2);
    assert!(synced_as("second").await, "the record added since read");
    mine.fold_acks().await.expect("fold");
    assert!(synced_as("second").await, "from the record, once folded");
    acknowledge_120(&mine, "third").await;
    assert!(synced_as("third").await, "a record added after a fold read");
    let loaded = theirs.load().await.expect("load again");
    assert!(loaded.collections[0].1.iter().all(|e| e.sync_status == SyncStatus::Synced && title_of(Some(e.clone())).as_deref() == Some("third")));
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// The log is folded on its own a moment after the last batch was logged.
pub async fn the_log_is_folded_in_the_background() {
    let (name, store) = open_store("acks-fold").await;
    let ids = acknowledge_120(&store, "first").await;
    assert_eq!(log_length(&raw(&name, "acks").await), 1);
    assert!(folded_within_10_s(&name).await, "the log was folded within 10 s");
    let records = raw(&name, "e:notes").await;
    assert!(ids.iter().all(|id| raw_status(&records, id).as_deref() == Some("synced")));
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A store closed before its log was folded leaves the log; the next open
/// applies it as it loads, and folds it.
pub async fn an_open_that_finds_a_log_folds_it() {
    let (name, store) = open_store("acks-reopen").await;
    let ids = acknowledge_120(&store, "first").await;
    store.close();
    assert_eq!(log_length(&raw(&name, "acks").await), 1, "closed before the fold");

    let reopened = IdbStore::open(&name, notes_schema()).await.expect("open again");
    let loaded = reopened.load().await.expect("load");
    assert!(loaded.collections[0].1.iter().all(|e| e.sync_status == SyncStatus::Synced && e.version == 1));
    assert!(folded_within_10_s(&name).await, "the log was folded within 10 s of the open");
    let records = raw(&name, "e:notes").await;
    assert!(ids.iter().all(|id| raw_status(&records, id).as_deref() == Some("synced")));
    reopened.close();
    IdbStore::delete(&name).await.expect("delete the database");
}
