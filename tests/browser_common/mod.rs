//! What the page and service-worker suites share: the IndexedDB harness for
//! the conformance suite, and checks of the JS API as JS calls it.

// A check written here but not listed in `browser_tests!` would never run:
// as dead code, it fails the build instead.
#![deny(dead_code)]

use js_sys::{Function, Promise, Reflect};
use tideway::core::{Data, Error, Op, Schema, Store, Write};
use tideway::js::{Collection, Tideway};
use tideway::browser::Fault;
use tideway::store::indexeddb::IdbStore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

mod acks;
mod contexts;
mod images;
mod js_api;
pub use acks::*;
pub use contexts::*;
pub use images::*;
pub use js_api::*;

/// The checks of this module, each as a `#[wasm_bindgen_test]` of the suite
/// that includes it (the page suite, the service-worker suite).
#[macro_export]
macro_rules! browser_tests {
    () => {
        browser_tests!(upgrade_from_another_connection_closes_this_one a_lost_connection_is_opened_again
            a_write_cut_off_before_commit_is_stored_once a_write_cut_off_after_commit_is_not_stored_twice
            a_deleted_database_is_not_created_again js_api_round_trip js_api_bad_arguments_give_typed_errors
            bulk_put_answers_the_records_get_gives a_write_on_a_stale_entity_is_computed_on_what_is_stored
            early_commit_only_where_it_keeps_a_transaction_atomic a_large_load_reads_every_entity_once
            records_built_while_loading_are_the_records_reads_give a_batch_sent_in_runs_is_checked_and_written_whole
            bulk_put_reads_entries_in_one_go_as_one_by_one a_batch_left_unfinished_writes_nothing
            the_js_half_keeps_the_same_contract a_load_reads_a_store_of_any_size_in_few_chunks
            a_chunk_of_any_text_reaches_rust_whole docs_cross_to_rust_whole_and_each_in_its_place
            a_database_of_a_newer_format_is_refused_at_open
            a_database_of_an_older_format_is_raised_and_closes_older_connections
            a_failed_write_on_the_early_commit_path_stores_nothing
            answers_are_recorded_on_known_docs_until_another_connection_writes
            a_commit_read_back_with_its_marks_leaves_known_docs_trusted
            marks_travel_only_with_the_one_commit_whose_entities_a_message_names
            a_commit_read_back_with_its_docs_takes_them_when_it_follows_on
            a_commit_raced_by_another_is_filled_in_from_its_message
            a_push_takes_what_the_outbox_holds_whoever_appended_it);
        browser_tests!(acknowledgements_wait_in_a_log_that_every_reader_applies the_log_is_folded_in_the_background
            an_open_that_finds_a_log_folds_it a_connection_reads_each_record_of_the_log_once);
        browser_tests!(an_open_reads_the_image_the_last_commit_left an_image_older_than_the_last_commit_is_not_read
            a_hidden_page_saves_the_image_at_once an_image_saved_by_itself_takes_the_docs_a_slice_at_a_time
            an_image_saved_part_by_part_lets_writes_in_between a_close_takes_over_an_image_saved_part_by_part
            a_save_stores_only_the_parts_whose_docs_changed a_save_stores_anew_the_parts_another_handles_image_replaced);
        browser_tests!(closing_drops_every_timer_and_listener);
        browser_tests!(a_database_without_sync_reports_changes_and_status);
        browser_tests!(a_request_past_its_timeout_is_aborted);
        browser_tests!(a_watch_calls_back_only_when_its_result_differs a_watch_follows_changes_from_elsewhere_and_from_sync);
        browser_tests!(a_commit_reaches_every_handle_of_the_database one_handle_syncs_and_the_other_hands_it_its_syncs);
        browser_tests!(a_handle_that_hears_of_every_commit_reads_no_entity_to_update_them a_commit_made_while_a_handle_loads_is_in_its_mirror);
        browser_tests!(a_handle_takes_in_another_handles_commit_without_reading_it a_commit_told_before_a_handle_hears_the_channel_is_in_its_mirror);
        browser_tests!(a_commit_carries_its_docs_only_once_another_context_is_heard);
        browser_tests!(without_web_locks_every_handle_syncs_on_its_own an_upgrade_elsewhere_closes_this_handle_after_its_queued_writes);
        browser_tests!(a_commit_its_syncer_never_told_is_taken_in_when_another_takes_over);
        browser_tests!(outbox_and_collections_tell_what_the_database_holds the_log_tells_leadership_and_forwarded_syncs);
        browser_tests!(syncs_called_at_once_without_auto_sync_take_turns a_database_is_kept_in_memory_where_indexeddb_is_refused);
    };
    ($($name:ident)*) => {
        $(#[wasm_bindgen_test::wasm_bindgen_test] async fn $name() { browser_common::$name().await; })*
    };
}

pub struct IdbHarness;

impl crate::conformance::Harness for IdbHarness {
    type Store = IdbStore;

    async fn open(&self, name: &str, schema: Schema) -> IdbStore {
        IdbStore::open(name, schema).await.expect("open IndexedDB")
    }

    fn fail_next_apply(store: &IdbStore) {
        store.fail_next_apply();
    }

    // A real constraint violation inside the transaction; the error is the failing request's.
    const INJECTED_FAILURE: &'static str = "ConstraintError";
}

/// Checks that the suite runs in the global scope it was configured for (`"Window"`,
/// `"ServiceWorkerGlobalScope"`): a runner that quietly ran it elsewhere would
/// leave that context untested.
pub fn assert_global_scope(expected: &str) {
    let check = format!("typeof {expected} === 'function' && globalThis instanceof {expected}");
    let inside = js_sys::eval(&check).expect("evaluate the scope check").as_bool();
    let actual = js_sys::eval("Object.prototype.toString.call(globalThis)").ok().and_then(|v| v.as_string());
    assert_eq!(inside, Some(true), "expected to run in a {expected}, running in {actual:?}");
}

/// A schema upgrade from another connection (another tab, in real life) is not
/// blocked by this one: every engine fires `versionchange` here, the store closes
/// its connection, and its later calls say why with `DatabaseClosed`.
pub async fn upgrade_from_another_connection_closes_this_one() {
    let name = format!("upgrade-elsewhere-{}", uuid::Uuid::new_v4());
    let old = notes_schema();
    let first = IdbStore::open(&name, old).await.expect("open");
    let put = Write { collection: "notes".into(), id: "a".into(), op: Op::Put, data: Some(Data::new().into()), at: 1.0 };
    first.apply(&[put]).await.expect("write before the upgrade");

    let new = Schema::new([("notes", vec!["title", "rank"])]).unwrap();
    let second = IdbStore::open(&name, new).await.expect("the upgrade goes through while the first connection is open");
    match first.pending_count().await {
        Err(Error::DatabaseClosed(reason)) => assert!(reason.contains("upgraded"), "{reason}"),
        other => panic!("expected DatabaseClosed, got {other:?}"),
    }
    assert!(second.get("notes", "a").await.unwrap().is_some(), "the data is kept");
    assert_eq!(second.pending_count().await.unwrap(), 1);
    second.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

pub(crate) fn put(id: &str, title: &str) -> Write {
    let data: Data = serde_json::from_value(serde_json::json!({ "title": title })).unwrap();
    Write { collection: "notes".into(), id: id.into(), op: Op::Put, data: Some(data.into()), at: 1.0 }
}

pub(crate) fn patch(id: &str, fields: serde_json::Value) -> Write {
    let data: Data = serde_json::from_value(fields).unwrap();
    Write { collection: "notes".into(), id: id.into(), op: Op::Patch, data: Some(data.into()), at: 1.0 }
}

/// The schema of the store checks: one `notes` collection, indexed by title.
pub(crate) fn notes_schema() -> Schema {
    Schema::new([("notes", vec!["title"])]).unwrap()
}

pub(crate) async fn open_store(test: &str) -> (String, IdbStore) {
    let name = format!("{test}-{}", uuid::Uuid::new_v4());
    let store = IdbStore::open(&name, notes_schema()).await.expect("open");
    (name, store)
}

/// The outbox as (entity id, mutation id) pairs, oldest first.
async fn outbox_of(store: &IdbStore) -> Vec<(String, u64)> {
    store.outbox(100).await.expect("read the outbox").into_iter().map(|m| (m.id, m.mutation_id)).collect()
}

pub(crate) fn title_of(entity: Option<tideway::core::Entity>) -> Option<String> {
    entity.and_then(|e| e.data().get("title").and_then(|t| t.as_str()).map(str::to_owned))
}

/// The browser taking the connection away between calls, as WebKit does when
/// its IndexedDB process goes away: the next call, read or write, opens a new
/// connection and goes on.
pub async fn a_lost_connection_is_opened_again() {
    let (name, store) = open_store("lost-connection").await;
    store.apply(&[put("a", "first")]).await.expect("write");

    store.lose_connection();
    assert_eq!(store.pending_count().await.expect("a read after the loss"), 1);
    store.lose_connection();
    store.apply(&[put("b", "second")]).await.expect("a write after the loss");
    store.lose_connection();
    assert_eq!(title_of(store.get("notes", "b").await.expect("get")), Some("second".into()));
    let outbox = outbox_of(&store).await;
    assert_eq!(outbox.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a", "b"]);

    store.close();
    let again = IdbStore::open(&name, notes_schema()).await.expect("reopen");
    assert_eq!(again.load().await.unwrap().collections[0].1.len(), 2, "both writes are durable");
    again.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Writes, then checks that `store` holds exactly what they describe: both
/// entities, and one outbox entry per write, with the mutation ids the call
/// returned.
async fn check_cut_off_write(fault: Fault) {
    let (name, store) = open_store("cut-off-write").await;
    let first = store.apply(&[put("a", "first")]).await.expect("write");

    store.fail_next_write_with(fault);
    let results = store.apply(&[put("a", "edited"), put("b", "new")]).await.expect("the write succeeds once reconnected");
    let returned: Vec<u64> = results.iter().map(|r| r.as_ref().expect("applied").mutation.mutation_id).collect();

    let outbox = outbox_of(&store).await;
    let stored: Vec<u64> = outbox.iter().map(|(_, mutation_id)| *mutation_id).collect();
    assert_eq!(outbox.len(), 3, "one outbox entry per write, none twice: {outbox:?}");
    assert_eq!(stored[0], first[0].as_ref().unwrap().mutation.mutation_id);
    assert_eq!(stored[1..], returned[..], "the call reports the mutation ids stored");
    let a = store.get("notes", "a").await.expect("get").expect("a is stored");
    assert_eq!((title_of(Some(a.clone())), a.pending), (Some("edited".into()), 2));
    assert_eq!(title_of(store.get("notes", "b").await.unwrap()), Some("new".into()));

    // The next write checks against what is stored, on the new connection.
    store.apply(&[put("a", "again")]).await.expect("a later write");
    assert_eq!(store.get("notes", "a").await.unwrap().unwrap().pending, 3);
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// The connection lost while a write transaction runs: it is aborted, nothing
/// is stored, and the store writes the batch again on a new connection.
pub async fn a_write_cut_off_before_commit_is_stored_once() {
    check_cut_off_write(Fault::LostBeforeCommit).await;
}

/// The connection lost right after a write transaction committed, before the
/// page heard of it: the store finds the batch stored and does not write it again.
pub async fn a_write_cut_off_after_commit_is_not_stored_twice() {
    check_cut_off_write(Fault::LostAfterCommit).await;
}

/// The database deleted under an open store (the site's data cleared, storage
/// evicted): calls fail with `DatabaseClosed` for good, and the database is
/// not quietly created again empty, which would hide the loss.
pub async fn a_deleted_database_is_not_created_again() {
    let (name, store) = open_store("deleted").await;
    store.apply(&[put("a", "first")]).await.expect("write");
    let client_id = store.load().await.unwrap().client_id;

    store.lose_connection();
    IdbStore::delete(&name).await.expect("delete the database");
    for attempt in 0..2 {
        match store.pending_count().await {
            Err(Error::DatabaseClosed(reason)) => assert!(reason.contains("deleted"), "{reason}"),
            other => panic!("attempt {attempt}: expected DatabaseClosed, got {other:?}"),
        }
    }
    assert!(matches!(store.apply(&[put("b", "second")]).await, Err(Error::DatabaseClosed(_))));

    let again = IdbStore::open(&name, notes_schema()).await.expect("open anew");
    let snapshot = again.load().await.unwrap();
    assert!(snapshot.collections[0].1.is_empty(), "nothing was written after the deletion");
    assert_ne!(snapshot.client_id, client_id, "a new database, with a new client id");
    again.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Two connections to one database, as two tabs have. A write is computed on
/// the entity as its connection last saw it stored; when the other connection
/// changed that entity since, or created it, the transaction's check finds
/// out, and the whole batch is computed again on what is stored.
pub async fn a_write_on_a_stale_entity_is_computed_on_what_is_stored() {
    let (name, mine) = open_store("stale-write").await;
    mine.apply(&[put("a", "first")]).await.expect("write");
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load: a is \"first\", b and c do not exist");

    mine.apply(&[patch("a", serde_json::json!({ "body": "mine" })), put("b", "mine"), put("c", "mine")])
        .await
        .expect("write");
    let results = theirs
        .apply(&[
            patch("a", serde_json::json!({ "title": "theirs" })),
            patch("b", serde_json::json!({ "title": "theirs" })),
            put("c", "theirs"),
        ])
        .await
        .expect("write on stale beliefs");
    assert!(results.iter().all(Result::is_ok), "each write applies to what is stored: {results:?}");

    let a = theirs.get("notes", "a").await.unwrap().expect("a is stored");
    assert_eq!(a.data().get("body").and_then(|b| b.as_str()), Some("mine"), "the patch kept the other tab's change");
    assert_eq!((title_of(Some(a.clone())), a.pending), (Some("theirs".into()), 3));
    assert_eq!(title_of(theirs.get("notes", "b").await.unwrap()), Some("theirs".into()), "patched, not refused");
    let c = theirs.get("notes", "c").await.unwrap().expect("c is stored");
    assert_eq!((title_of(Some(c.clone())), c.pending), (Some("theirs".into()), 2), "c's two puts are both queued");
    let outbox: Vec<String> = outbox_of(&theirs).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(outbox, ["a", "a", "b", "c", "a", "b", "c"], "every write once, in commit order");

    // Each connection now knows what is stored: the next writes need no second pass.
    theirs.apply(&[patch("a", serde_json::json!({ "title": "again" }))]).await.expect("write");
    mine.apply(&[patch("a", serde_json::json!({ "body": "again" }))]).await.expect("write");
    let a = mine.get("notes", "a").await.unwrap().unwrap();
    assert_eq!(
        (title_of(Some(a.clone())), a.data().get("body").and_then(|b| b.as_str())),
        (Some("again".into()), Some("again"))
    );
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Recording sync answers takes each entity's doc from what this connection
/// knows, reading none, while no other connection wrote since its last full
/// read; a write of another connection (which leaves its mark in `meta`)
/// makes it read them. Shown with a change written without a mark, which the
/// first recording does not see, and one written with a mark, which the
/// second keeps.
pub async fn answers_are_recorded_on_known_docs_until_another_connection_writes() {
    use tideway::core::reconcile::Policies;
    use tideway::core::SyncStatus;
    let (name, mine) = open_store("known-docs").await;
    mine.apply(&[put("a", "first"), put("b", "first")]).await.expect("write");
    mine.load().await.expect("load");
    let outbox = mine.outbox(10).await.expect("outbox");

    // A write that leaves no mark, as no Tideway of this format makes: unseen.
    settle(contexts::retitle_behind_its_back(&name, "a", "unmarked")).await.expect("write without a mark");
    assert_eq!(title_of(mine.get("notes", "a").await.unwrap()), Some("unmarked".into()));
    mine.settle(&[acknowledgement(&outbox[0])], &Policies::default(), 9_000.0, None, Box::new(|| ())).await.expect("record");
    let a = mine.get("notes", "a").await.unwrap().expect("a");
    assert_eq!((title_of(Some(a.clone())), a.sync_status), (Some("first".into()), SyncStatus::Synced), "computed on the known doc");

    // Another connection's write leaves a mark: b is read, and its change kept.
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load");
    theirs.apply(&[patch("b", serde_json::json!({ "body": "theirs" }))]).await.expect("write");
    mine.settle(&[acknowledgement(&outbox[1])], &Policies::default(), 9_001.0, None, Box::new(|| ())).await.expect("record");
    let b = mine.get("notes", "b").await.unwrap().expect("b");
    assert_eq!(b.data().get("body").and_then(|body| body.as_str()), Some("theirs"), "the other connection's change is kept");
    assert_eq!((b.version, b.pending, b.sync_status), (1, 1, SyncStatus::Dirty), "acknowledged, with their write still queued");
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// What a push sends of each entry (not `attempts` nor `last_error`).
fn as_pushed(entries: Vec<tideway::core::Mutation>) -> Vec<(u64, String, Option<String>, u64)> {
    entries.into_iter().map(|m| (m.mutation_id, m.id, m.data.map(|data| data.as_str().to_owned()), m.base_version)).collect()
}

/// The entries `store` gives a push past `after`, up to `limit`, by entity id,
/// checked to be what the outbox holds.
async fn same(store: &IdbStore, after: u64, limit: usize) -> Vec<String> {
    let pushed = as_pushed(store.pushable_after(after, limit).await.expect("entries to push"));
    assert_eq!(pushed, as_pushed(store.outbox_after(after, limit).await.expect("outbox")), "after {after}, up to {limit}");
    pushed.into_iter().map(|(_, id, _, _)| id).collect()
}

/// A push takes the entries its connection appended without reading them back,
/// and reads those another connection appended: either way it gets what the
/// outbox holds, in order, whoever answered or counted a failure of an entry.
pub async fn a_push_takes_what_the_outbox_holds_whoever_appended_it() {
    use tideway::core::reconcile::Policies;
    let (name, mine) = open_store("pushable").await;
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    mine.apply(&[put("a", "mine"), put("b", "mine")]).await.expect("write");
    theirs.apply(&[put("c", "theirs")]).await.expect("write");
    mine.apply(&[put("d", "mine")]).await.expect("write");
    assert_eq!(same(&mine, 0, 10).await, ["a", "b", "c", "d"]);
    let outbox = mine.outbox(10).await.expect("outbox");
    assert_eq!(same(&mine, outbox[2].mutation_id, 10).await, ["d"], "all its own");
    assert_eq!(same(&mine, 0, 2).await, ["a", "b"]);
    assert_eq!(same(&theirs, 0, 10).await, ["a", "b", "c", "d"]);

    // The other connection records answers to two of this one's entries, and a failed push of another.
    theirs.settle(&[acknowledgement(&outbox[0]), acknowledgement(&outbox[3])], &Policies::default(), 9_000.0, None, Box::new(|| ()))
        .await
        .expect("record");
    theirs.note_failed_push(&[outbox[1].mutation_id], "offline").await.expect("count the failure");
    assert_eq!(same(&mine, 0, 10).await, ["b", "c"]);
    assert_eq!(same(&mine, outbox[1].mutation_id, 10).await, ["c"]);

    // This one records the rest.
    mine.settle(&[acknowledgement(&outbox[1]), acknowledgement(&outbox[2])], &Policies::default(), 9_001.0, None, Box::new(|| ()))
        .await
        .expect("record");
    assert_eq!(same(&mine, 0, 10).await, Vec::<String>::new());
    mine.apply(&[put("e", "mine")]).await.expect("write");
    assert_eq!(same(&mine, 0, 10).await, ["e"]);
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// The pushed answer acknowledging `mutation` at version 1.
pub(crate) fn acknowledgement(mutation: &tideway::core::Mutation) -> tideway::core::reconcile::ServerAnswer {
    use tideway_protocol::PushStatus;
    tideway::core::reconcile::ServerAnswer::Pushed {
        mutation: mutation.clone(),
        result: tideway::core::sync::MutationAnswer {
            mutation_id: mutation.mutation_id,
            status: PushStatus::Applied,
            version: Some(1),
            server_updated_at: Some(5_000),
            remote_id: Some(mutation.id.clone()),
            current: None,
            error: None,
        },
    }
}

/// Another connection's commits, read back with the marks they left, keep
/// this connection's `known` maps trusted: recording an answer afterwards
/// takes the entity's doc from them, so a write that left no mark goes unseen
/// (as it would with no commit at all). When a commit was missed, or came
/// without marks, the maps are not trusted, and the entity is read.
pub async fn a_commit_read_back_with_its_marks_leaves_known_docs_trusted() {
    use tideway::core::reconcile::Policies;
    let (name, mine) = open_store("read-back").await;
    mine.apply(&["a", "b", "c", "d", "e"].map(|id| put(id, "first"))).await.expect("write");
    mine.load().await.expect("load");
    let outbox = mine.outbox(10).await.expect("outbox");
    let acknowledge = |id: &str| acknowledgement(outbox.iter().find(|m| m.id == id).expect("queued"));
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load");
    let b = vec![("notes".to_owned(), "b".to_owned())];
    let their_patch = |body: &str| patch("b", serde_json::json!({ "body": body }));
    // An unmarked write to `id`, then an answer about it: the title it keeps.
    let recorded = |id: &'static str, at: f64| {
        let (name, mine, answer) = (&name, &mine, acknowledge(id));
        async move {
            settle(contexts::retitle_behind_its_back(name, id, "unmarked")).await.expect("write without a mark");
            mine.settle(&[answer], &Policies::default(), at, None, Box::new(|| ())).await.expect("record");
            title_of(mine.get("notes", id).await.unwrap())
        }
    };

    // Their commit, read back with its marks: the maps still hold everything.
    theirs.apply(&[their_patch("one")]).await.expect("their write");
    let marks = theirs.take_commit_marks(&b, true).expect("the marks of their one commit").marks;
    assert_eq!(mine.read_stored(b.clone(), Some(&marks), None).await.expect("read back").len(), 1);
    assert_eq!(recorded("a", 9_000.0).await, Some("first".into()), "computed on the known doc");

    // Two commits, each read back once both are made: the second follows on from the first.
    theirs.apply(&[their_patch("two")]).await.expect("their write");
    let first = theirs.take_commit_marks(&b, true).expect("marks").marks;
    theirs.apply(&[their_patch("three")]).await.expect("their write");
    let second = theirs.take_commit_marks(&b, true).expect("marks").marks;
    mine.read_stored(b.clone(), Some(&first), None).await.expect("read back");
    mine.read_stored(b.clone(), Some(&second), None).await.expect("read back");
    assert_eq!(recorded("c", 9_001.0).await, Some("first".into()), "computed on the known doc");

    // A commit missed: the next one's marks do not follow on from what this connection trusted.
    theirs.apply(&[their_patch("four")]).await.expect("their write");
    assert!(theirs.take_commit_marks(&b, true).is_some(), "marks of a commit whose message is lost");
    theirs.apply(&[their_patch("five")]).await.expect("their write");
    let after_the_missed_one = theirs.take_commit_marks(&b, true).expect("marks").marks;
    mine.read_stored(b.clone(), Some(&after_the_missed_one), None).await.expect("read back");
    assert_eq!(recorded("d", 9_002.0).await, Some("unmarked".into()), "read: the maps missed a commit");

    // After a full read, a commit read back without marks.
    mine.load().await.expect("load");
    theirs.apply(&[their_patch("six")]).await.expect("their write");
    mine.read_stored(b.clone(), None, None).await.expect("read back");
    assert_eq!(recorded("e", 9_003.0).await, Some("unmarked".into()), "read: no marks");
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A commit's marks are handed out once, and only for a message that names
/// every entity it wrote: not when two commits were made since the last
/// call, nor for a message missing one of its entities, nor for a commit
/// that wrote no entity (it left no mark).
pub async fn marks_travel_only_with_the_one_commit_whose_entities_a_message_names() {
    let (name, store) = open_store("marks").await;
    let key = |id: &str| ("notes".to_owned(), id.to_owned());
    store.apply(&[put("a", "one"), put("b", "one")]).await.expect("write");
    assert_eq!(store.take_commit_marks(&[key("a")], true), None, "b is not named");
    store.apply(&[put("a", "two"), put("b", "two")]).await.expect("write");
    let taken = store.take_commit_marks(&[key("b"), key("a"), key("c")], false).expect("every entity named, in any order");
    assert!(taken.docs.is_none(), "no docs unless asked for");
    let (found, left) = taken.marks;
    assert_ne!(found, left);
    assert_eq!(store.take_commit_marks(&[key("a"), key("b")], true), None, "handed out once");

    // A write that cannot apply writes no entity: no marks, and the mark stays as it was.
    let results = store.apply(&[patch("missing", serde_json::json!({ "title": "x" }))]).await.expect("write");
    assert!(results[0].is_err());
    assert_eq!(store.take_commit_marks(&[key("missing")], true), None, "no commit of entities");
    store.apply(&[put("c", "one")]).await.expect("write");
    let (after_nothing, _) = store.take_commit_marks(&[key("c")], true).expect("one commit of entities").marks;
    assert_eq!(after_nothing, left, "it found the mark the last commit of entities left");

    store.apply(&[put("a", "three")]).await.expect("write");
    store.apply(&[put("b", "three")]).await.expect("write");
    assert_eq!(store.take_commit_marks(&[key("a"), key("b")], true), None, "two commits since the last call");
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A load reads each store in chunks of a few thousand records: every entity
/// of every collection arrives once, in id order, across chunk boundaries.
pub async fn a_large_load_reads_every_entity_once() {
    let name = format!("large-load-{}", uuid::Uuid::new_v4());
    let schema = || Schema::new([("notes", vec!["title"]), ("tags", vec![])]).unwrap();
    let store = IdbStore::open(&name, schema()).await.expect("open");
    let mut writes: Vec<Write> = (0..9001).map(|i| put(&format!("n{i:05}"), &format!("note {i}"))).collect();
    writes.extend((0..3).map(|i| Write { collection: "tags".into(), ..put(&format!("t{i}"), "tag") }));
    store.apply(&writes).await.expect("write");
    store.close();

    let again = IdbStore::open(&name, schema()).await.expect("reopen");
    let loaded = again.load().await.expect("load");
    let ids = |collection: &str| -> Vec<String> {
        let (_, entities) = loaded.collections.iter().find(|(c, _)| c == collection).expect("the collection is loaded");
        entities.iter().map(|e| e.id.clone()).collect()
    };
    let expected: Vec<String> = (0..9001).map(|i| format!("n{i:05}")).collect();
    assert_eq!(ids("notes"), expected, "each note once, in id order");
    assert_eq!(ids("tags"), ["t0", "t1", "t2"]);
    let last = loaded.collections.iter().flat_map(|(_, e)| e).find(|e| e.id == "n09000").unwrap();
    assert_eq!(title_of(Some(last.clone())), Some("note 9000".into()));
    again.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// What the engine does with a transaction whose request fails after
/// `commit()`: `{ aborted, keptOther }`, for `commit()` called at once or, as
/// a batch with checks does, once a first read has answered.
const FAILED_REQUEST_AFTER_COMMIT: &str = r#"async (afterRead) => {
  const name = "commit-then-fail-" + crypto.randomUUID();
  const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
  const opening = indexedDB.open(name, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore("s");
  const db = await request(opening);
  await request(db.transaction("s", "readwrite").objectStore("s").put(1, "taken"));
  const tx = db.transaction("s", "readwrite");
  const read = tx.objectStore("s").get("taken");
  for (let i = 0; i < 20; i++) tx.objectStore("s").put(i, "other" + i);
  tx.objectStore("s").add(3, "taken").onerror = (event) => event.stopPropagation();
  if (afterRead) read.onsuccess = () => tx.commit();
  else tx.commit();
  const aborted = await new Promise((resolve) => { tx.oncomplete = () => resolve(false); tx.onabort = () => resolve(true); });
  const other = await request(db.transaction("s").objectStore("s").get("other0"));
  db.close();
  await request(indexedDB.deleteDatabase(name));
  return { aborted, keptOther: other !== undefined };
}"#;

/// Write transactions commit without waiting for their requests exactly
/// where the engine keeps them atomic when a request fails after `commit()`:
/// what the store found out at open matches what the engine does, both when
/// `commit()` comes at once and when it comes once a first read answered.
pub async fn early_commit_only_where_it_keeps_a_transaction_atomic() {
    let (name, store) = open_store("early-commit").await;
    let has_commit = js_sys::eval("typeof IDBTransaction.prototype.commit === 'function'").unwrap().as_bool() == Some(true);
    let mut atomic = has_commit;
    if has_commit {
        let check: Function = js_sys::eval(&format!("({FAILED_REQUEST_AFTER_COMMIT})")).expect("the check").unchecked_into();
        for attempt in 0..6 {
            let after_read = attempt % 2 == 1;
            let promise: Promise = check.call1(&JsValue::NULL, &after_read.into()).expect("run the check").unchecked_into();
            let outcome = JsFuture::from(promise).await.expect("the check ran");
            let flag = |field: &str| Reflect::get(&outcome, &field.into()).unwrap().as_bool().unwrap();
            atomic &= flag("aborted") && !flag("keptOther");
        }
    }
    assert_eq!(IdbStore::commits_early().await, atomic, "commits early exactly where a failed request aborts it all");
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// `bulkPut` answers with the same frozen records `get` gives, in the order given,
/// in an array of its own that the caller may change.
pub async fn bulk_put_answers_the_records_get_gives() {
    let name = format!("bulk-put-records-{}", uuid::Uuid::new_v4());
    let options = notes_options(&name);
    let db = Tideway::open(options).await.expect("open");
    let notes = db.collection("notes".into()).unwrap();
    let entries = js_sys::JSON::parse(
        r#"[{"id": "b", "data": {"title": "second", "tags": ["x", {"deep": [1]}]}}, {"id": "a", "data": {}}, {"data": {"n": 2.5}}]"#,
    )
    .unwrap();
    let records: js_sys::Array = JsFuture::from(notes.bulk_put(entries)).await.expect("bulkPut").unchecked_into();
    assert_eq!(records.length(), 3);
    assert!(!js_sys::Object::is_frozen(&records), "the array is the caller's");
    let frozen = |value: &JsValue| js_sys::Object::is_frozen(value.unchecked_ref::<js_sys::Object>());
    for record in records.iter() {
        let id = js_sys::Reflect::get(&record, &"id".into()).unwrap();
        let got = notes.get(id.clone(), JsValue::UNDEFINED).unwrap();
        let json = |value: &JsValue| js_sys::JSON::stringify(value).unwrap().as_string().unwrap();
        assert_eq!(json(&record), json(&got), "{id:?}");
        assert!(frozen(&record), "{id:?}");
    }
    let first = records.get(0);
    assert_eq!(js_sys::Reflect::get(&first, &"id".into()).unwrap().as_string().as_deref(), Some("b"));
    let tags = js_sys::Reflect::get(&js_sys::Reflect::get(&first, &"data".into()).unwrap(), &"tags".into()).unwrap();
    let deep = js_sys::Reflect::get(&js_sys::Array::from(&tags).get(1), &"deep".into()).unwrap();
    assert!(frozen(&tags) && frozen(&deep), "records are frozen all the way down");
    JsFuture::from(db.close()).await.expect("close");
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A batch is sent to IndexedDB a few hundred writes at a time, while the rest
/// are computed. A stale belief found in a later run still aborts the whole
/// transaction: the batch is computed again and each write stored once.
pub async fn a_batch_sent_in_runs_is_checked_and_written_whole() {
    let (name, mine) = open_store("batch-in-runs").await;
    mine.apply(&[put("stale", "first")]).await.expect("write");
    let theirs = IdbStore::open(&name, notes_schema()).await.expect("a second connection");
    theirs.load().await.expect("load: only \"stale\" exists");
    let notes = |from: usize, count: usize| (from..from + count).map(|i| put(&format!("n{i:04}"), "theirs")).collect::<Vec<_>>();

    // A write checked against a doc that changed, far into the batch.
    mine.apply(&[patch("stale", serde_json::json!({ "body": "mine" }))]).await.expect("write");
    let mut writes = notes(0, 1200);
    writes[1100] = patch("stale", serde_json::json!({ "title": "theirs" }));
    let results = theirs.apply(&writes).await.expect("write on a stale belief");
    assert!(results.iter().all(Result::is_ok), "each write applies to what is stored");
    let stale = theirs.get("notes", "stale").await.unwrap().expect("stored");
    assert_eq!(stale.data().get("body").and_then(|b| b.as_str()), Some("mine"), "the patch kept the other tab's change");
    assert_eq!(title_of(Some(stale)), Some("theirs".into()));

    // A write refused on the belief that its entity is missing, far into the batch.
    mine.apply(&[put("missing", "mine")]).await.expect("write");
    let mut writes = notes(1200, 800);
    writes[700] = patch("missing", serde_json::json!({ "title": "theirs" }));
    let results = theirs.apply(&writes).await.expect("write on a stale belief");
    assert!(results.iter().all(Result::is_ok), "each write applies to what is stored");
    assert_eq!(title_of(theirs.get("notes", "missing").await.unwrap()), Some("theirs".into()), "patched, not refused");

    // A write of an entity believed missing that exists, far into the batch.
    mine.apply(&[put("created", "mine")]).await.expect("write");
    let mut writes = notes(2000, 700);
    writes[600] = put("created", "theirs");
    let results = theirs.apply(&writes).await.expect("write on a stale belief");
    assert!(results.iter().all(Result::is_ok), "each write applies to what is stored");
    let created = theirs.get("notes", "created").await.unwrap().expect("stored");
    assert_eq!((title_of(Some(created.clone())), created.pending), (Some("theirs".into()), 2), "both puts are queued");

    for id in ["n0000", "n0499", "n0500", "n1199", "n1200", "n1999", "n2000", "n2699"] {
        let note = theirs.get("notes", id).await.unwrap().expect("stored");
        assert_eq!(note.pending, 1, "{id} was written once");
    }
    assert_eq!(theirs.pending_count().await.unwrap(), 4 + 2700, "every write queued once");
    mine.close();
    theirs.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A batch whose making stops half way (as when wasm traps) writes nothing,
/// though some of its runs were sent: the transaction is aborted, not left
/// to commit on its own.
pub async fn a_batch_left_unfinished_writes_nothing() {
    let (name, store) = open_store("unfinished-batch").await;
    let writes: Vec<Write> = (0..600).map(|i| put(&format!("n{i:03}"), "never")).collect();
    let tx = store.send_and_stop(&writes).expect("send the writes");
    let ended = Function::new_with_args(
        "tx",
        "return new Promise((resolve) => { tx.oncomplete = () => resolve('committed'); tx.onabort = () => resolve('aborted'); })",
    );
    let ended = Promise::from(ended.call1(&JsValue::NULL, &tx).unwrap());
    assert_eq!(JsFuture::from(ended).await.unwrap().as_string().as_deref(), Some("aborted"));
    for id in ["n000", "n599"] {
        assert!(store.get("notes", id).await.unwrap().is_none(), "{id} was not written");
    }
    assert_eq!(store.pending_count().await.unwrap(), 0, "nor any outbox entry");
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

/// `bulkPut` reads its entries in one go where JSON holds them exactly, and
/// one by one otherwise: either way the same.
pub async fn bulk_put_reads_entries_in_one_go_as_one_by_one() {
    let exact = js_sys::eval(
        r#"[
            { id: "a", data: { s: "text é😀", n: 1, f: 0.1 + 0.2, negativeZero: -0, large: 2 ** 53 - 1, tiny: 1e-7,
                               t: true, z: null, left: undefined, list: [1, "x", [null, { k: 1.5 }]],
                               bare: Object.assign(Object.create(null), { p: 1 }) } },
            { data: {} },
            { id: undefined, data: { nested: { a: { b: { c: [[[]]] } } } } },
        ]"#,
    )
    .unwrap();
    let walked = tideway::js::entries_walked(&exact).expect("plain JSON");
    assert_eq!(tideway::js::entries_as_json(&exact), Some(walked.clone()), "read in one go, exactly as walked");
    // A put or a patch reads its data the same way, and keeps it as JSON's text.
    let data = Reflect::get(&js_sys::Array::from(&exact).get(0), &"data".into()).unwrap();
    assert_eq!(tideway::js::data_from_js(&data, "data").ok(), Some(walked[0].1.clone()));

    // JSON would not hold these as they are walked (or they are wrong): they are walked.
    for entries in [
        "[{ data: { n: 2 ** 53 } }]",
        "[{ data: { s: '\\ud800' } }]",
        "[{ data: { when: new Date(0) } }]",
        "[{ data: { list: [1, undefined] } }]",
        "[{ data: { n: NaN } }]",
        "[{ data: { own: { toJSON() { return 1; } } } }]",
        "[{ data: { list: Object.assign([1], { toJSON: () => 2 }) } }]",
        "[{ data: {} }, { data: [] }]",
        "[{ id: 5, data: {} }]",
        "[{ data: {}, extra: 1 }]",
        "[{}]",
        "[5]",
    ] {
        let entries = js_sys::eval(entries).unwrap();
        assert_eq!(tideway::js::entries_as_json(&entries), None, "{entries:?}");
        let data = Reflect::get(&js_sys::Array::from(&entries).get(0), &"data".into()).unwrap_or_default();
        let (read, walked) = (tideway::js::data_from_js(&data, "data"), tideway::js::data_walked(&data, "data").map(Into::into));
        assert_eq!(read.as_ref().ok(), walked.as_ref().ok(), "{entries:?}");
    }
    let deep = js_sys::eval("[{ data: { d: JSON.parse('['.repeat(40) + ']'.repeat(40)) } }]").unwrap();
    assert_eq!(tideway::js::entries_as_json(&deep), None, "deeper than data may nest");
    assert!(tideway::js::entries_walked(&deep).is_err());

    // Many entries go over in several texts, and one that JSON would not hold
    // as it is walked, in any of them, has them all walked.
    let many = js_sys::eval("Array.from({ length: 2500 }, (_, i) => ({ id: `n${i}`, data: { i } }))").unwrap();
    let walked = tideway::js::entries_walked(&many).expect("plain JSON");
    assert_eq!(tideway::js::entries_as_json(&many), Some(walked), "read in several goes, exactly as walked");
    many.unchecked_ref::<js_sys::Array>().set(2100, js_sys::eval("({ data: { when: new Date(0) } })").unwrap());
    assert_eq!(tideway::js::entries_as_json(&many), None);
}

/// Rust (`tideway::browser`) and the JS half (`browser.js`) spell the contract
/// between them the same way: the separator, the op codes, the fault names and
/// the fields of the records each object store holds.
pub async fn the_js_half_keeps_the_same_contract() {
    use tideway::store::layout;
    use tideway::browser::{ACK, CHECK, CHECKED_WRITE, ENTITY_RECORD, OP_SHIFT, OUTBOX_RECORD, SEPARATOR, WRITE};

    let js = tideway::browser::js_contract();
    let strings = |path: &str| -> Vec<String> { js_sys::Array::from(&field(&js, path)).iter().filter_map(|v| v.as_string()).collect() };
    let number = |path: &str| field(&js, path).as_f64().map(|n| n as u32);
    assert_eq!(field(&js, "separator").as_string().as_deref(), Some(SEPARATOR));
    assert_eq!(number("opShift"), Some(OP_SHIFT));
    assert_eq!(
        [number("kinds.write"), number("kinds.checkedWrite"), number("kinds.check"), number("kinds.ack")],
        [Some(WRITE), Some(CHECKED_WRITE), Some(CHECK), Some(ACK)]
    );
    assert_eq!(field(&js, "acksStore").as_string().as_deref(), Some(layout::ACKS_STORE));
    assert_eq!(strings("faults"), Fault::ALL.map(|fault| fault.name().to_owned()));
    assert_eq!(strings("entityRecord"), ENTITY_RECORD);
    assert_eq!(strings("outboxRecord"), OUTBOX_RECORD);
    // The key paths the layout declares are fields of those records (the
    // outbox's is filled in by IndexedDB's key generator).
    assert!(ENTITY_RECORD.contains(&layout::ENTITY_KEY_PATH));
    assert!(!OUTBOX_RECORD.contains(&layout::OUTBOX_KEY_PATH));
}

/// A load reads a store of any size in chunks of at most the loader's limit,
/// and in few of them: the limit's worth, plus those that shrink towards the
/// store's end, the last holding at most the tail.
pub async fn a_load_reads_a_store_of_any_size_in_few_chunks() {
    let js = tideway::browser::js_contract();
    let chunks: Function = field(&js, "loadChunks").unchecked_into();
    let limit = field(&js, "loadLimits.chunk").as_f64().expect("the chunk limit") as usize;
    let tail = field(&js, "loadLimits.tail").as_f64().expect("the tail") as usize;
    for count in [1, 250, 251, 4_000, 9_001, 16_500, 20_000, 100_000] {
        let sizes = js_sys::Array::from(&chunks.call1(&JsValue::NULL, &(count as f64).into()).unwrap());
        let sizes: Vec<usize> = sizes.iter().map(|size| size.as_f64().unwrap() as usize).collect();
        assert_eq!(sizes.iter().sum::<usize>(), count, "{sizes:?}");
        assert!(sizes.iter().all(|&size| (1..=limit).contains(&size)), "{sizes:?}");
        assert!(sizes.last().is_some_and(|&last| last <= tail), "{sizes:?}");
        assert!(sizes.len() <= count / limit + 12, "{count} records in {} chunks", sizes.len());
    }
}

/// A chunk's docs reach Rust as one UTF-8 JSON array, sized first for ASCII
/// and grown when a doc needs more: whatever the docs hold, every byte of each
/// doc and every "[", "," and "]" between them is there, including when a doc
/// ends exactly where the array was sized to end. And a note whose text sized
/// the array so opens again.
pub async fn a_chunk_of_any_text_reaches_rust_whole() {
    let json_array: Function = field(&tideway::browser::js_contract(), "jsonArray").unchecked_into();
    let docs_of = |texts: &[String]| -> Vec<String> { texts.iter().map(|t| serde_json::json!({ "t": t }).to_string()).collect() };
    let mut cases: Vec<Vec<String>> = vec![vec![], docs_of(&["中".into()]), docs_of(&["éé".into()]), docs_of(&["😀".into()])];
    // Every pair of docs of up to 8 of one character, ASCII or not: among them,
    // docs that fill the array exactly before a "," and before the "]".
    for a in ["a", "é", "中", "😀"] {
        for b in ["a", "é", "中", "😀"] {
            for (i, j) in (0..9).flat_map(|i| (0..9).map(move |j| (i, j))) {
                cases.push(docs_of(&[a.repeat(i), b.repeat(j)]));
            }
        }
    }
    for docs in &cases {
        let array: js_sys::Array = docs.iter().map(|doc| JsValue::from_str(doc)).collect();
        let bytes = js_sys::Uint8Array::new(&json_array.call1(&JsValue::NULL, &array).unwrap()).to_vec();
        assert_eq!(String::from_utf8(bytes).unwrap(), format!("[{}]", docs.join(",")), "{docs:?}");
    }

    let name = format!("any-text-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    settle(notes.put(js(r#"{"title": "中"}"#), js(r#"{"id": "n1"}"#))).await.expect("put");
    settle(db.close()).await.unwrap();
    let db = open(&name).await;
    let note = db.collection("notes".into()).unwrap().get("n1".into(), JsValue::UNDEFINED).unwrap();
    assert_eq!(field(&note, "data.title").as_string().as_deref(), Some("中"));
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

/// Docs cross to Rust joined in one text (see `joinDocs` in
/// `src/browser/browser.js`): the outbox's entries, and the entities a write
/// and a recording read, come back whole and each in its place, whatever
/// their characters. An entry an earlier version stored as UTF-8 bytes reads
/// as before; one whose doc is damaged fails the read with a storage error
/// rather than shifting the others, and stays queued.
pub async fn docs_cross_to_rust_whole_and_each_in_its_place() {
    use tideway::core::reconcile::Policies;
    let (name, store) = open_store("docs-cross").await;
    let titles = ["a", "é", "", "中", "😀", "a\u{0}b", "plain"];
    let ids: Vec<String> = (0..titles.len()).map(|i| format!("n{i}")).collect();
    store.apply(&ids.iter().zip(titles).map(|(id, title)| put(id, title)).collect::<Vec<_>>()).await.expect("write");
    // Patches compute on the docs the `known` maps hold.
    store.apply(&ids.iter().map(|id| patch(id, serde_json::json!({ "n": 1 }))).collect::<Vec<_>>()).await.expect("patch");
    let outbox = store.outbox(100).await.expect("read the outbox");
    let queued = |outbox: &[tideway::core::Mutation]| -> Vec<(String, Option<String>)> {
        outbox.iter().map(|m| (m.id.clone(), m.data.as_ref().map(|data| data.as_str().to_owned()))).collect()
    };
    let title_json = |title: &str| serde_json::json!({ "title": title }).to_string();
    let expected: Vec<(String, Option<String>)> = ids
        .iter()
        .zip(titles)
        .map(|(id, title)| (id.clone(), Some(title_json(title))))
        .chain(ids.iter().map(|id| (id.clone(), Some(r#"{"n":1}"#.to_owned()))))
        .collect();
    assert_eq!(queued(&outbox), expected);

    // A recording reads every entity it acknowledges.
    let answers: Vec<_> = outbox[..titles.len()].iter().map(acknowledgement).collect();
    let settled = store.settle(&answers, &Policies::default(), 9_000.0, None, Box::new(|| ())).await.expect("record");
    for ((id, title), settled) in ids.iter().zip(titles).zip(&settled) {
        let entity = settled.entity.as_ref().expect("acknowledged");
        assert_eq!((&entity.id, entity.data().get("title").and_then(|t| t.as_str())), (id, Some(title)));
        assert_eq!((entity.version, entity.pending), (1, 1), "{id}: acknowledged, its patch still queued");
    }

    // The first entry left, as an earlier version stored it: bytes.
    settle(rewrite_outbox_doc(&name, 0, "bytes")).await.expect("store the doc as bytes");
    assert_eq!(queued(&store.outbox(100).await.expect("read the outbox")), expected[titles.len()..]);
    settle(rewrite_outbox_doc(&name, 1, "damaged")).await.expect("damage a doc");
    match store.outbox(100).await {
        Err(Error::Storage(message)) => assert!(message.contains("outbox"), "{message}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(store.pending_count().await.unwrap(), titles.len(), "every entry stays queued");
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
/**
 * Rewrites the doc of the outbox entry at `position` (oldest first) of the
 * database `name`: as UTF-8 bytes (`how` "bytes", as an earlier version
 * stored it), or followed by a NUL and a copy of itself ("damaged"): two
 * docs where the store holds one.
 */
export function rewriteOutboxDoc(name, position, how) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const outbox = db.transaction("outbox", "readwrite").objectStore("outbox");
      const read = outbox.getAll();
      read.onsuccess = () => {
        const record = read.result[position];
        const doc = record.doc;
        record.doc = how === "bytes" ? new TextEncoder().encode(doc) : `${doc}\0${doc}`;
        outbox.put(record);
      };
      outbox.transaction.oncomplete = () => { db.close(); resolve(); };
      outbox.transaction.onabort = () => { db.close(); reject(outbox.transaction.error); };
    };
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = rewriteOutboxDoc)]
    fn rewrite_outbox_doc(name: &str, position: u32, how: &str) -> Promise;
}

/// A database written by a newer Tideway (a higher storage format in `meta`)
/// is refused at open with `SCHEMA_ERROR` rather than misread, and is left
/// as it was.
pub async fn a_database_of_a_newer_format_is_refused_at_open() {
    let name = format!("newer-format-{}", uuid::Uuid::new_v4());
    settle(open(&name).await.close()).await.unwrap();
    let bump = format!(
        "new Promise((resolve, reject) => {{ const open = indexedDB.open({name:?}); open.onerror = () => reject(open.error);
           open.onsuccess = () => {{ const db = open.result; const tx = db.transaction('meta', 'readwrite');
             tx.objectStore('meta').put({newer}, 'formatVersion'); tx.oncomplete = () => {{ db.close(); resolve(); }};
             tx.onabort = () => reject(tx.error); }}; }})",
        newer = tideway::store::layout::FORMAT_VERSION + 1
    );
    settle(js_sys::eval(&bump).unwrap().unchecked_into()).await.expect("write a newer format");
    let options = notes_options(&name);
    let refused = Tideway::open(options).await.err().expect("refused");
    assert_eq!(code(&refused), "SCHEMA_ERROR");
    let message = Reflect::get(&refused, &"message".into()).unwrap().as_string().unwrap_or_default();
    assert!(message.contains("newer"), "{message}");
    IdbStore::delete(&name).await.expect("delete the database");
}

/// A database of storage format 1 (each doc holding its base in full), as an
/// older Tideway wrote it, opens: its entities read as they were, it is raised
/// to this format in an upgrade, and that upgrade closes the connection the
/// older Tideway still held, which would misread what this one writes.
pub async fn a_database_of_an_older_format_is_raised_and_closes_older_connections() {
    let name = format!("older-format-{}", uuid::Uuid::new_v4());
    let make = format!(
        r#"new Promise((resolve, reject) => {{
          const open = indexedDB.open({name:?}, 1);
          open.onupgradeneeded = () => {{
            const db = open.result;
            const meta = db.createObjectStore('meta');
            meta.put('client-1', 'clientId');
            meta.put(1, 'formatVersion');
            db.createObjectStore('outbox', {{ keyPath: 'mutationId', autoIncrement: true }});
            const doc = {{ id: 'n1', remoteId: 'r1', data: {{ title: 'synced' }}, base: {{ title: 'synced' }}, version: 3,
              updatedAt: 5, serverUpdatedAt: 6, syncStatus: 'synced', deleted: false, pending: 0 }};
            db.createObjectStore('e:notes', {{ keyPath: 'id' }}).put({{ id: 'n1', doc: JSON.stringify(doc), ix: {{}} }});
          }};
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {{
            const db = open.result;
            const old = {{ closed: false }};
            db.onversionchange = () => {{ old.closed = true; db.close(); }};
            resolve(old);
          }};
        }})"#
    );
    let old = settle(js_sys::eval(&make).unwrap().unchecked_into()).await.expect("write a database of format 1");

    let store = IdbStore::open(&name, notes_schema()).await.expect("a database of format 1 opens");
    let entity = store.get("notes", "n1").await.unwrap().expect("its entity reads");
    assert_eq!(entity.base(), Some(entity.data()));
    assert_eq!((entity.remote_id.as_deref(), entity.version), (Some("r1"), 3));
    assert_eq!(field(&old, "closed").as_bool(), Some(true), "the older connection was asked to close");
    let format = format!(
        "new Promise((resolve, reject) => {{ const open = indexedDB.open({name:?}); open.onerror = () => reject(open.error);
           open.onsuccess = () => {{ const get = open.result.transaction('meta').objectStore('meta').get('formatVersion');
             get.onsuccess = () => {{ open.result.close(); resolve(get.result); }}; }}; }})"
    );
    store.close();
    let format = settle(js_sys::eval(&format).unwrap().unchecked_into()).await.expect("read the format");
    assert_eq!(format.as_f64(), Some(tideway::store::layout::FORMAT_VERSION as f64));
    IdbStore::delete(&name).await.expect("delete the database");
}

/// Which engine runs the suite, as far as its early commit goes.
fn engine() -> &'static str {
    let agent = js_sys::eval("navigator.userAgent").unwrap().as_string().unwrap_or_default();
    if agent.contains("Firefox") {
        "firefox"
    } else if agent.contains("Chrome") {
        "chromium"
    } else {
        "webkit"
    }
}

/// The risky path of writes, committing before the requests have answered,
/// is the one Chromium and WebKit take (and Firefox does not), and a failure
/// inside such a transaction still stores nothing of it: neither the new
/// entity, nor the change to an existing one, nor an outbox entry.
pub async fn a_failed_write_on_the_early_commit_path_stores_nothing() {
    let (name, store) = open_store("early-commit-failure").await;
    let commits_early = IdbStore::commits_early().await;
    assert_eq!(commits_early, engine() != "firefox", "{} commits early: {commits_early}", engine());
    store.apply(&[put("kept", "v1")]).await.unwrap().pop().unwrap().unwrap();
    let kept = store.get("notes", "kept").await.unwrap();
    store.fail_next_apply();
    let failed = store.apply(&[put("new", "lost"), patch("kept", serde_json::json!({"title": "lost"}))]).await;
    assert!(matches!(&failed, Err(Error::Storage(message)) if message.contains("ConstraintError")), "{failed:?}");
    assert_eq!(store.get("notes", "new").await.unwrap(), None);
    assert_eq!(store.get("notes", "kept").await.unwrap(), kept);
    assert_eq!(outbox_of(&store).await.len(), 1);
    store.close();
    IdbStore::delete(&name).await.expect("delete the database");
}

fn js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON parses")
}

/// Open options for the database `name` with one collection, `notes`, and no sync.
fn notes_options(name: &str) -> JsValue {
    js(&format!(r#"{{"name": "{name}", "collections": {{"notes": {{}}}}}}"#))
}

async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

fn code(error: &JsValue) -> String {
    assert_eq!(Reflect::get(error, &"name".into()).unwrap().as_string().as_deref(), Some("TidewayError"), "{error:?}");
    Reflect::get(error, &"code".into()).unwrap().as_string().unwrap_or_default()
}

fn field(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, key| Reflect::get(&v, &key.into()).unwrap_or(JsValue::UNDEFINED))
}

async fn open(name: &str) -> Tideway {
    let options = js(&format!(r#"{{"name": "{name}", "collections": {{"notes": {{"indexes": ["updatedAt", "title"]}}}}}}"#));
    Tideway::open(options).await.expect("open")
}

/// Open builds the records of most entities while IndexedDB reads the next
/// ones: those records are the very ones a read built from the mirror would
/// give, frozen, and a write replaces them.
pub async fn records_built_while_loading_are_the_records_reads_give() {
    let name = format!("records-at-load-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    let entries: js_sys::Array = (0..4500)
        .map(|i| js(&format!(r#"{{"id": "n{i:04}", "data": {{"title": "note {i}", "tags": ["a", {{"n": {i}}}], "x": 0.1}}}}"#)))
        .collect();
    let written: js_sys::Array = settle(notes.bulk_put(entries.into())).await.expect("bulkPut").unchecked_into();
    settle(db.close()).await.unwrap();

    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    let json = |value: &JsValue| js_sys::JSON::stringify(value).unwrap().as_string().unwrap();
    let frozen = |value: &JsValue| js_sys::Object::is_frozen(value.unchecked_ref::<js_sys::Object>());
    // n0000 is in the first chunk (built while loading), n4499 in the last (built on first read).
    for i in [0, 1, 3999, 4000, 4499] {
        let id = format!("n{i:04}");
        let record = notes.get(id.clone().into(), JsValue::UNDEFINED).unwrap();
        assert_eq!(json(&record), json(&written.get(i)), "{id}");
        assert!(frozen(&record) && frozen(&field(&record, "data.tags")) && frozen(&field(&record, "meta")), "{id}");
    }
    // Built once and reused: every read of an entity gives the same object
    // until the entity changes, whichever call reads it.
    let same = |a: &JsValue, b: &JsValue| js_sys::Object::is(a, b);
    let get = |id: &str| notes.get(id.into(), JsValue::UNDEFINED).unwrap();
    let (first, other) = (get("n0001"), get("n4499"));
    assert!(same(&first, &get("n0001")) && same(&other, &get("n4499")), "get twice gives one object");
    assert!(same(&first, &notes.all().unwrap().get(1)), "all() gives the object get gave");
    let by_title = notes.query(js(r#"{"index": "title", "gte": "note 1", "lte": "note 1"}"#)).unwrap();
    assert!(same(&first, &by_title.get(0)), "so does a query");
    settle(notes.patch("n0001".into(), js(r#"{"title": "changed"}"#))).await.expect("patch");
    let changed = get("n0001");
    assert!(!same(&changed, &first), "a write replaces the record");
    assert!(same(&changed, &get("n0001")) && same(&other, &get("n4499")), "and leaves the others as they were");
    assert_eq!(field(&changed, "data.title").as_string().as_deref(), Some("changed"));
    assert_eq!(field(&notes.all().unwrap().get(1), "data.title").as_string().as_deref(), Some("changed"));
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.into()).await.expect("delete the database");
}

pub async fn js_api_round_trip() {
    let name = format!("js-api-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    let notes: Collection = db.collection("notes".into()).unwrap();

    let pending = notes.put(js(r#"{"title": "first", "tags": ["a"]}"#), js(r#"{"id": "n1"}"#));
    let record = notes.get("n1".into(), JsValue::UNDEFINED).unwrap();
    assert_eq!(field(&record, "data.title").as_string().as_deref(), Some("first"), "visible before the promise settles");
    assert_eq!(field(&record, "meta.syncStatus").as_string().as_deref(), Some("dirty"));
    assert_eq!(field(&record, "meta.version").as_f64(), Some(0.0));
    assert!(js_sys::Object::is_frozen(record.unchecked_ref::<js_sys::Object>()), "records are frozen");
    assert!(js_sys::Object::is_frozen(field(&record, "data").unchecked_ref::<js_sys::Object>()), "deeply");
    settle(pending).await.expect("durable");

    let heard = js_sys::Array::new();
    let sink = heard.clone();
    let callback = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |changes: JsValue| {
        sink.push(&changes);
    });
    let unsubscribe: Function = notes.subscribe(callback.as_ref().clone()).unwrap();
    settle(notes.patch("n1".into(), js(r#"{"title": "second", "tags": null}"#))).await.expect("patch");
    assert_eq!(heard.length(), 1);
    let change = Reflect::get(&heard.get(0), &0.into()).unwrap();
    assert_eq!(field(&change, "origin").as_string().as_deref(), Some("local"));
    assert_eq!(field(&change, "record.data.title").as_string().as_deref(), Some("second"));
    assert!(field(&change, "record.data.tags").is_undefined(), "null removes a field");
    unsubscribe.call0(&JsValue::NULL).unwrap();

    settle(notes.put(js(r#"{"title": "zzz"}"#), JsValue::UNDEFINED)).await.expect("generated id");
    let by_title = notes.query(js(r#"{"index": "title", "reverse": true, "limit": 1}"#)).unwrap();
    assert_eq!(field(&by_title.get(0), "data.title").as_string().as_deref(), Some("zzz"));
    assert_eq!(heard.length(), 1, "unsubscribed");

    settle(notes.delete("n1".into())).await.expect("delete");
    assert!(notes.get("n1".into(), JsValue::UNDEFINED).unwrap().is_undefined());
    let tombstone = notes.get("n1".into(), js(r#"{"includeDeleted": true}"#)).unwrap();
    assert_eq!(field(&tombstone, "meta.deleted").as_bool(), Some(true));
    assert_eq!(notes.all().unwrap().length(), 1);
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(4.0));
    let live = field(&notes.all().unwrap().get(0), "id");
    settle(db.close()).await.unwrap();
    let closed = settle(notes.put(js("{}"), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(code(&closed), "DATABASE_CLOSED");
    // The mirror is let go at close: reads say so rather than answer from it.
    assert_eq!(code(&notes.get(live, JsValue::UNDEFINED).unwrap_err()), "DATABASE_CLOSED");
    assert_eq!(code(&notes.all().unwrap_err()), "DATABASE_CLOSED");

    let db = open(&name).await;
    let notes = db.collection("notes".into()).unwrap();
    assert_eq!(notes.all().unwrap().length(), 1, "persisted");
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(4.0));
    settle(db.close()).await.unwrap();
    Tideway::delete_database(name.clone().into()).await.expect("delete the database");
    let db = open(&name).await;
    assert_eq!(db.collection("notes".into()).unwrap().all().unwrap().length(), 0, "deleted");
    settle(db.close()).await.unwrap();
    drop(callback);
}

pub async fn js_api_bad_arguments_give_typed_errors() {
    for (options, expected) in [
        ("null", "INVALID_ARGUMENT"),
        (r#"{"collections": {}}"#, "INVALID_ARGUMENT"),
        (r#"{"name": "x", "collections": {}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"no tes": {}}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"notes": {"indexes": "title"}}}"#, "INVALID_ARGUMENT"),
        (r#"{"name": "x", "collections": {"notes": {"indexes": ["a..b"]}}}"#, "SCHEMA_ERROR"),
        (r#"{"name": "x", "collections": {"notes": {}}, "extra": 1}"#, "INVALID_ARGUMENT"),
    ] {
        let error = Tideway::open(js(options)).await.err().unwrap_or_else(|| panic!("{options} should fail"));
        assert_eq!(code(&error), expected, "{options}");
    }

    let name = format!("js-errors-{}", uuid::Uuid::new_v4());
    let db = open(&name).await;
    assert_eq!(code(&db.collection("nope".into()).err().unwrap()), "NOT_FOUND");
    assert_eq!(code(&db.collection(42.into()).err().unwrap()), "INVALID_ARGUMENT");
    let notes = db.collection("notes".into()).unwrap();

    let date = js_sys::eval("({ when: new Date() })").unwrap();
    let cyclic = js_sys::eval("(() => { const o = {}; o.self = o; return o; })()").unwrap();
    for (data, options) in [
        (JsValue::from_str("not an object"), JsValue::UNDEFINED),
        (js("[1, 2]"), JsValue::UNDEFINED),
        (JsValue::NULL, JsValue::UNDEFINED),
        (date, JsValue::UNDEFINED),
        (cyclic, JsValue::UNDEFINED),
        (js_sys::eval("({ n: NaN })").unwrap(), JsValue::UNDEFINED),
        (js_sys::eval("({ f() {} })").unwrap(), JsValue::UNDEFINED),
        (js("{}"), js(r#"{"id": "has space"}"#)),
        (js("{}"), js(r#"{"id": 7}"#)),
        (js("{}"), js(r#"{"idd": "x"}"#)),
    ] {
        let error = settle(notes.put(data.clone(), options)).await.unwrap_err();
        assert_eq!(code(&error), "INVALID_ARGUMENT", "{data:?}");
    }
    assert_eq!(code(&notes.get(42.into(), JsValue::UNDEFINED).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"revers": true}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"index": "title", "gte": true}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"index": "nope"}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.query(js(r#"{"limit": -1}"#)).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&settle(notes.patch("missing".into(), js("{}"))).await.unwrap_err()), "NOT_FOUND");
    assert_eq!(code(&settle(notes.delete(JsValue::UNDEFINED)).await.unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&settle(notes.bulk_put(js(r#"[{"data": {}}, {"data": 5}]"#))).await.unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(code(&notes.subscribe(JsValue::from_str("nope")).unwrap_err()), "INVALID_ARGUMENT");
    assert_eq!(notes.all().unwrap().length(), 0, "nothing was written by any refused call");
    assert_eq!(settle(db.pending_count()).await.unwrap().as_f64(), Some(0.0));
    settle(db.close()).await.unwrap();
}
