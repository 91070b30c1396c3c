//! One conformance suite for every `Store`: the memory store runs it natively
//! (`tests/memory_store.rs`), IndexedDB in headless browsers (`tests/browser.rs`,
//! `tests/service_worker.rs`). Each check goes through the repository too, so
//! the mirror and the store are held to the same expectations.

// A check written here but not listed in `conformance_tests!` would never
// run: as dead code, it fails the build instead.
#![deny(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};
use tideway::core::{
    Change, Data, DataText, Entity, Error, IndexKey, Op, Origin, Query, Repository, Schema, SharedData, Store, SyncStatus, Write,
};

/// How a suite run opens stores of its kind.
#[allow(async_fn_in_trait)]
pub trait Harness {
    type Store: Store + 'static;
    /// Opens (or reopens) the database `name` with `schema`.
    async fn open(&self, name: &str, schema: Schema) -> Self::Store;
    /// Makes the store's next apply fail inside its transaction.
    fn fail_next_apply(store: &Self::Store);
    /// What the error of that failure says, whichever store: a failure
    /// reported some other way (say, a generic abort) would not say it.
    const INJECTED_FAILURE: &'static str;
    /// A database name no other test uses.
    fn unique_name(&self, test: &str) -> String {
        format!("conformance-{test}-{}", uuid::Uuid::new_v4())
    }
}

fn data(value: Value) -> Data {
    value.as_object().cloned().expect("test data is an object")
}

fn notes_schema() -> Schema {
    Schema::new([("notes", vec!["updatedAt", "title", "rank", "author.name"]), ("tags", vec![])]).unwrap()
}

fn clock() -> Box<dyn Fn() -> f64> {
    let now = Rc::new(RefCell::new(1_000.0));
    Box::new(move || {
        *now.borrow_mut() += 1.0;
        *now.borrow()
    })
}

async fn repository<H: Harness>(h: &H, name: &str, schema: Schema) -> Rc<Repository<H::Store>> {
    let store = h.open(name, schema.clone()).await;
    Repository::open(store, schema, clock()).await.expect("open the repository")
}

fn write(collection: &str, id: &str, op: Op, value: Option<Value>, at: f64) -> Write {
    Write { collection: collection.into(), id: id.into(), op, data: value.map(|value| data(value).into()), at }
}

fn ids(entities: &[Entity]) -> Vec<String> {
    entities.iter().map(|e| e.id.clone()).collect()
}

pub async fn writes_reach_store_and_outbox_in_order<H: Harness>(h: &H) {
    let name = h.unique_name("order");
    let store = h.open(&name, notes_schema()).await;
    let results = store
        .apply(&[
            write("notes", "a", Op::Put, Some(json!({"title": "A"})), 1.0),
            write("tags", "t", Op::Put, Some(json!({"label": "x"})), 2.0),
            write("notes", "a", Op::Patch, Some(json!({"body": "b"})), 3.0),
        ])
        .await
        .expect("apply");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let stored = store.get("notes", "a").await.unwrap().expect("stored");
    assert_eq!(Value::Object(stored.data().clone()), json!({"title": "A", "body": "b"}));
    assert_eq!(stored.sync_status, SyncStatus::Dirty);
    assert_eq!(stored.version, 0);
    assert_eq!(stored.updated_at, 3.0);

    let outbox = store.outbox(100).await.unwrap();
    assert_eq!(outbox.len(), 3);
    assert_eq!(store.pending_count().await.unwrap(), 3);
    let ops: Vec<(&str, &str, Op)> = outbox.iter().map(|m| (m.collection.as_str(), m.id.as_str(), m.op)).collect();
    assert_eq!(ops, vec![("notes", "a", Op::Put), ("tags", "t", Op::Put), ("notes", "a", Op::Patch)]);
    assert!(outbox.windows(2).all(|w| w[0].mutation_id < w[1].mutation_id), "ids increase: {outbox:?}");
    assert!(outbox[0].mutation_id >= 1);
    assert_eq!(outbox[2].data, Some(DataText::of(&data(json!({"body": "b"})))));
    assert_eq!(store.outbox(2).await.unwrap().len(), 2, "limit is honoured");
    // Past a mutation id: the entries after it, from the next one on, limit honoured.
    let ids = ids_of(&outbox);
    assert_eq!(ids_of(&store.outbox_after(ids[0], 10).await.unwrap()), ids[1..]);
    assert_eq!(ids_of(&store.outbox_after(ids[0], 1).await.unwrap()), ids[1..2]);
    assert_eq!(ids_of(&store.outbox_after(ids[0] - 1, 10).await.unwrap()), ids, "from the first");
    assert_eq!(ids_of(&store.outbox_after(ids[2], 10).await.unwrap()), Vec::<u64>::new());
    store.close();
}

pub async fn mutation_ids_keep_increasing_across_reopen<H: Harness>(h: &H) {
    let name = h.unique_name("ids");
    let store = h.open(&name, notes_schema()).await;
    store.apply(&[write("notes", "a", Op::Put, Some(json!({})), 1.0)]).await.unwrap();
    let first = store.outbox(10).await.unwrap()[0].mutation_id;
    store.close();
    let store = h.open(&name, notes_schema()).await;
    let applied = store.apply(&[write("notes", "b", Op::Put, Some(json!({})), 2.0)]).await.unwrap();
    let second = applied[0].as_ref().unwrap().mutation.mutation_id;
    assert!(second > first, "{second} > {first}");
    store.close();
}

pub async fn data_survives_close_and_reopen<H: Harness>(h: &H) {
    let name = h.unique_name("persist");
    let repo = repository(h, &name, notes_schema()).await;
    let client_id = repo.client_id().to_owned();
    assert!(!client_id.is_empty());
    // Numbers whose shortest decimal form needs all 17 digits, or an extreme
    // exponent: a parser that is only nearly right changes their last bit.
    let numbers = json!([0.30000000000000004, 532422178817.57916, 1.0715660391465826e-75, -1.81996730402717e-179, 1.7976931348623157e308]);
    repo.put("notes", Some("n1".into()), data(json!({"title": "kept", "nested": {"list": [1, 2.5, "x", null, true]}, "numbers": numbers})))
        .unwrap()
        .await
        .unwrap();
    repo.put("tags", Some("t1".into()), data(json!({"label": "red"}))).unwrap().await.unwrap();
    repo.delete("tags", "t1".into()).unwrap().await.unwrap();
    repo.close().await.unwrap();
    assert!(matches!(repo.pending_count().await, Err(Error::DatabaseClosed(_))));

    let repo = repository(h, &name, notes_schema()).await;
    assert_eq!(repo.client_id(), client_id, "the client id is generated once");
    let note = repo.read("notes", |c| c.get("n1").cloned()).unwrap().expect("note kept");
    assert_eq!(
        Value::Object(note.data().clone()),
        json!({"title": "kept", "nested": {"list": [1, 2.5, "x", null, true]}, "numbers": numbers}),
        "data, key order and every bit of each number survive"
    );
    let tag = repo.read("tags", |c| c.get("t1").cloned()).unwrap().expect("tombstone kept");
    assert!(tag.deleted);
    assert_eq!(repo.pending_count().await.unwrap(), 3);
    repo.close().await.unwrap();
}

pub async fn failed_write_leaves_nothing_and_rolls_back<H: Harness>(h: &H) {
    let name = h.unique_name("atomic");
    let store = h.open(&name, notes_schema()).await;
    store.apply(&[write("notes", "untouched", Op::Put, Some(json!({"title": "stays"})), 1.0)]).await.unwrap().pop().unwrap().unwrap();
    let untouched = store.get("notes", "untouched").await.unwrap();
    H::fail_next_apply(&store);
    let outcome = store
        .apply(&[
            write("notes", "x", Op::Put, Some(json!({"title": "lost"})), 2.0),
            write("notes", "untouched", Op::Patch, Some(json!({"title": "lost too"})), 2.0),
        ])
        .await;
    match &outcome {
        Err(Error::Storage(message)) => assert!(message.contains(H::INJECTED_FAILURE), "{message}"),
        other => panic!("the injected failure surfaces as a storage error: {other:?}"),
    }
    assert_eq!(store.get("notes", "x").await.unwrap(), None, "no entity");
    assert_eq!(store.get("notes", "untouched").await.unwrap(), untouched, "the entity as it was");
    assert_eq!(store.pending_count().await.unwrap(), 1, "no outbox entry but the first write's");
    store.close();

    let repo = repository(h, &name, notes_schema()).await;
    repo.put("notes", Some("keep".into()), data(json!({"title": "v1"}))).unwrap().await.unwrap();
    let heard: Rc<RefCell<Vec<Change>>> = Rc::default();
    let sink = heard.clone();
    repo.subscribe(Some("notes"), Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes)))
        .unwrap();

    H::fail_next_apply(repo.store());
    let pending = repo.patch("notes", "keep".into(), data(json!({"title": "v2"}))).unwrap();
    let created = repo.put("notes", Some("new".into()), data(json!({"title": "fresh"}))).unwrap();
    assert_eq!(repo.read("notes", |c| c.get("keep").unwrap().data()["title"].clone()).unwrap(), json!("v2"), "optimistic");
    assert!(repo.read("notes", |c| c.get("new").is_some()).unwrap(), "optimistic");
    assert!(pending.await.is_err());
    assert!(created.await.is_err(), "writes committed in the same transaction fail with it");

    assert_eq!(repo.read("notes", |c| c.get("keep").unwrap().data()["title"].clone()).unwrap(), json!("v1"), "rolled back");
    assert!(repo.read("notes", |c| c.get("new").is_none()).unwrap(), "rolled back");
    {
        let heard = heard.borrow();
        assert!(heard.iter().any(|c| c.id == "keep" && matches!(c.origin, Origin::Rollback(_))), "{heard:?}");
        assert!(heard.iter().any(|c| c.id == "new" && c.entity.is_none() && matches!(c.origin, Origin::Rollback(_))));
    }
    assert_eq!(repo.pending_count().await.unwrap(), 2, "only the puts before the failure are queued");

    repo.patch("notes", "keep".into(), data(json!({"title": "v3"}))).unwrap().await.expect("later writes work");
    assert_eq!(repo.store().get("notes", "keep").await.unwrap().unwrap().data()["title"], json!("v3"));
    repo.close().await.unwrap();
}

pub async fn deletes_leave_tombstones<H: Harness>(h: &H) {
    let name = h.unique_name("tombstones");
    let repo = repository(h, &name, notes_schema()).await;
    repo.put("notes", Some("a".into()), data(json!({"title": "A"}))).unwrap().await.unwrap();
    repo.put("notes", Some("b".into()), data(json!({"title": "B"}))).unwrap().await.unwrap();
    repo.delete("notes", "a".into()).unwrap().await.unwrap();

    let stored = repo.store().get("notes", "a").await.unwrap().expect("tombstone stored");
    assert!(stored.deleted);
    assert_eq!(stored.sync_status, SyncStatus::Dirty);
    let live = repo.store().query("notes", &Query::default()).await.unwrap();
    assert_eq!(ids(&live), vec!["b"]);
    let everything = repo.store().query("notes", &Query { include_deleted: true, ..Query::default() }).await.unwrap();
    assert_eq!(ids(&everything), vec!["a", "b"]);
    let mirror: Vec<String> = repo.read("notes", |c| c.query(&Query::default()).unwrap().iter().map(|e| e.id.clone()).collect()).unwrap();
    assert_eq!(mirror, vec!["b"]);
    let last = repo.store().outbox(10).await.unwrap().pop().unwrap();
    assert_eq!((last.op, last.data), (Op::Delete, None));

    assert!(matches!(repo.delete("notes", "a".into()), Err(Error::NotFound(_))), "deleting twice");
    assert!(matches!(repo.patch("notes", "a".into(), Data::new()), Err(Error::NotFound(_))));
    assert!(matches!(repo.patch("notes", "zz".into(), Data::new()), Err(Error::NotFound(_))));
    repo.put("notes", Some("a".into()), data(json!({"title": "again"}))).unwrap().await.unwrap();
    assert!(!repo.store().get("notes", "a").await.unwrap().unwrap().deleted, "a put revives");
    repo.close().await.unwrap();
}

/// A dataset mixing every kind of key, and the queries to run on it.
fn query_dataset() -> Vec<(&'static str, Value)> {
    vec![
        ("e1", json!({"title": "banana", "rank": 2, "author": {"name": "Zoé"}})),
        ("e2", json!({"title": "apple", "rank": 10, "author": {"name": "adam"}})),
        ("e3", json!({"title": "Cherry", "rank": -1.5})),
        ("e4", json!({"title": "\u{1F600} emoji", "rank": "high"})),
        ("e5", json!({"title": "\u{FF61} halfwidth", "rank": [1, "a"]})),
        ("e6", json!({"title": "apple", "rank": true})),
        ("e7", json!({"title": 42, "rank": [1]})),
        ("e8", json!({"rank": 2})),
        ("e9", json!({"title": "date", "rank": null, "author": {"name": "Émile"}})),
    ]
}

fn number(n: f64) -> Option<IndexKey> {
    Some(IndexKey::Number(n))
}

fn text(s: &str) -> Option<IndexKey> {
    Some(IndexKey::String(s.into()))
}

fn query_cases() -> Vec<(Query, Vec<&'static str>)> {
    let index = |name: &str| Some(name.to_string());
    vec![
        // Numbers before strings; strings by UTF-16 units ("C" < "a", U+1F600 < U+FF61).
        (Query { index: index("title"), ..Query::default() }, vec!["e7", "e3", "e2", "e6", "e1", "e9", "e4", "e5"]),
        (Query { index: index("title"), equals: text("apple"), ..Query::default() }, vec!["e2", "e6"]),
        (Query { index: index("title"), equals: text("apple"), reverse: true, ..Query::default() }, vec!["e6", "e2"]),
        (Query { index: index("title"), gt: text("apple"), lt: text("date"), ..Query::default() }, vec!["e1"]),
        (Query { index: index("title"), gte: text("apple"), lte: text("date"), ..Query::default() }, vec!["e2", "e6", "e1", "e9"]),
        (Query { index: index("title"), gte: text("b"), ..Query::default() }, vec!["e1", "e9", "e4", "e5"]),
        (Query { index: index("title"), lt: text("b"), reverse: true, limit: Some(3), ..Query::default() }, vec!["e6", "e2", "e3"]),
        (Query { index: index("title"), offset: 2, limit: Some(2), ..Query::default() }, vec!["e2", "e6"]),
        // Booleans and null are not keys; arrays come after strings.
        (Query { index: index("rank"), ..Query::default() }, vec!["e3", "e1", "e8", "e2", "e4", "e7", "e5"]),
        (Query { index: index("rank"), gt: number(2.0), ..Query::default() }, vec!["e2", "e4", "e7", "e5"]),
        (Query { index: index("rank"), gte: Some(IndexKey::Array(vec![])), ..Query::default() }, vec!["e7", "e5"]),
        (Query { index: index("rank"), lte: number(2.0), reverse: true, ..Query::default() }, vec!["e8", "e1", "e3"]),
        (Query { index: index("author.name"), ..Query::default() }, vec!["e1", "e2", "e9"]),
        // The primary key.
        (Query { gte: text("e3"), lt: text("e6"), ..Query::default() }, vec!["e3", "e4", "e5"]),
        (Query { reverse: true, limit: Some(2), ..Query::default() }, vec!["e9", "e8"]),
    ]
}

pub async fn index_queries_follow_indexeddb_order<H: Harness>(h: &H) {
    let name = h.unique_name("queries");
    let repo = repository(h, &name, notes_schema()).await;
    let entries = query_dataset().into_iter().map(|(id, value)| (Some(id.to_string()), data(value).into())).collect();
    repo.put_many("notes", entries).unwrap().await.unwrap();
    for (query, expected) in query_cases() {
        let from_store = ids(&repo.store().query("notes", &query).await.expect("store query"));
        let from_mirror: Vec<String> =
            repo.read("notes", |c| c.query(&query).unwrap().iter().map(|e| e.id.clone()).collect()).unwrap();
        assert_eq!(from_store, expected, "store: {query:?}");
        assert_eq!(from_mirror, expected, "mirror: {query:?}");
    }
    // updatedAt is metadata: every put got a later clock tick.
    let by_time = Query { index: Some("updatedAt".into()), reverse: true, limit: Some(1), ..Query::default() };
    assert_eq!(ids(&repo.store().query("notes", &by_time).await.unwrap()), vec!["e9"]);
    let bad = Query { index: Some("nope".into()), ..Query::default() };
    assert!(matches!(repo.read("notes", |c| c.query(&bad).map(|_| ())).unwrap(), Err(Error::InvalidArgument(_))));
    assert!(repo.store().query("notes", &bad).await.is_err());
    repo.close().await.unwrap();
}

pub async fn subscribers_hear_committed_changes<H: Harness>(h: &H) {
    let name = h.unique_name("subscribe");
    let repo = repository(h, &name, notes_schema()).await;
    let notes_heard: Rc<RefCell<Vec<Change>>> = Rc::default();
    let all_heard: Rc<RefCell<Vec<Change>>> = Rc::default();
    let sink = notes_heard.clone();
    let notes_sub = repo
        .subscribe(Some("notes"), Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes)))
        .unwrap();
    let sink = all_heard.clone();
    repo.subscribe(None, Rc::new(move |changes: &[Change]| sink.borrow_mut().extend_from_slice(changes))).unwrap();
    assert!(repo.subscribe(Some("nope"), Rc::new(|_: &[Change]| {})).is_err());

    // That nothing is heard before the commit is shown with a store that holds
    // the batch (`subscribers_hear_a_write_only_once_its_batch_committed`).
    repo.put("notes", Some("a".into()), data(json!({"title": "A"}))).unwrap().await.unwrap();
    repo.put("tags", Some("t".into()), data(json!({}))).unwrap().await.unwrap();
    {
        let heard = notes_heard.borrow();
        assert_eq!(heard.len(), 1);
        assert_eq!((heard[0].id.as_str(), &heard[0].origin), ("a", &Origin::Local));
        assert_eq!(heard[0].entity.as_ref().unwrap().data()["title"], json!("A"));
    }
    assert_eq!(all_heard.borrow().len(), 2);
    repo.unsubscribe(notes_sub);
    repo.delete("notes", "a".into()).unwrap().await.unwrap();
    assert_eq!(notes_heard.borrow().len(), 1, "unsubscribed");
    assert!(all_heard.borrow().last().unwrap().entity.as_ref().unwrap().deleted);
    repo.close().await.unwrap();
}

/// Writes made while no batch is in flight go to the store together, as one
/// transaction (group commit), in the order they were made: a failure made
/// to hit the next transaction fails all of them and stores none.
pub async fn concurrent_writes_commit_together_in_order<H: Harness>(h: &H) {
    let name = h.unique_name("group");
    let repo = repository(h, &name, notes_schema()).await;
    H::fail_next_apply(repo.store());
    let failing: Vec<_> = (0..20).map(|i| repo.put("notes", Some(format!("f{i:02}")), data(json!({"rank": i}))).unwrap()).collect();
    for write in failing {
        assert!(write.await.is_err(), "every write of the transaction fails with it");
    }
    assert_eq!(repo.store().pending_count().await.unwrap(), 0);
    assert_eq!(repo.read("notes", |c| c.len()).unwrap(), 0, "all rolled back");

    let writes: Vec<_> = (0..50)
        .map(|i| repo.put("notes", Some(format!("n{i:02}")), data(json!({"title": format!("t{i}"), "rank": i}))).unwrap())
        .collect();
    let patch = repo.patch("notes", "n07".into(), data(json!({"title": "patched"}))).unwrap();
    assert_eq!(repo.read("notes", |c| c.len()).unwrap(), 50, "all visible at once");
    for write in writes {
        write.await.unwrap();
    }
    patch.await.unwrap();
    let outbox = repo.store().outbox(100).await.unwrap();
    assert_eq!(outbox.len(), 51);
    let order: Vec<&str> = outbox.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(order[0], "n00");
    assert_eq!(order[49], "n49");
    assert_eq!(order[50], "n07");
    assert_eq!(repo.store().get("notes", "n07").await.unwrap().unwrap().data()["title"], json!("patched"));
    repo.close().await.unwrap();
}

pub async fn schema_changes_keep_data<H: Harness>(h: &H) {
    let name = h.unique_name("migrate");
    let old = Schema::new([("notes", vec!["title", "obsolete"])]).unwrap();
    let repo = repository(h, &name, old).await;
    repo.put("notes", Some("a".into()), data(json!({"title": "A", "priority": 3}))).unwrap().await.unwrap();
    repo.put("notes", Some("b".into()), data(json!({"title": "B", "priority": 1}))).unwrap().await.unwrap();
    repo.close().await.unwrap();

    // The app adds an index on existing data, drops one, and adds a collection.
    let new = Schema::new([("notes", vec!["title", "priority"]), ("tags", vec!["label"])]).unwrap();
    let repo = repository(h, &name, new).await;
    assert_eq!(repo.read("notes", |c| c.len()).unwrap(), 2, "no entity lost");
    assert_eq!(repo.pending_count().await.unwrap(), 2, "no mutation lost");
    let by_priority = Query { index: Some("priority".into()), ..Query::default() };
    assert_eq!(ids(&repo.store().query("notes", &by_priority).await.unwrap()), vec!["b", "a"], "existing data indexed");
    let gone = Query { index: Some("obsolete".into()), ..Query::default() };
    assert!(repo.store().query("notes", &gone).await.is_err());
    repo.put("tags", Some("t".into()), data(json!({"label": "new"}))).unwrap().await.unwrap();
    repo.close().await.unwrap();

    // Reopening with the same schema changes nothing.
    let same = Schema::new([("notes", vec!["title", "priority"]), ("tags", vec!["label"])]).unwrap();
    let repo = repository(h, &name, same).await;
    assert_eq!(repo.read("tags", |c| c.len()).unwrap(), 1);
    repo.close().await.unwrap();
}

pub async fn invalid_writes_are_refused_without_effect<H: Harness>(h: &H) {
    let name = h.unique_name("invalid");
    let repo = repository(h, &name, notes_schema()).await;
    assert!(matches!(repo.put("nope", None, Data::new()), Err(Error::NotFound(_))));
    assert!(matches!(repo.put("notes", Some("bad id".into()), Data::new()), Err(Error::InvalidArgument(_))));
    assert!(matches!(repo.put("notes", Some(String::new()), Data::new()), Err(Error::InvalidArgument(_))));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let huge = "x".repeat(tideway_protocol::MAX_DATA_BYTES);
    for too_much in [json!({"x": deep}), json!({"x": huge})] {
        assert!(matches!(repo.put("notes", None, data(too_much.clone())), Err(Error::InvalidArgument(_))));
        // Held to the same limits when kept as the JSON text it came as.
        let text = SharedData::from_json(too_much.to_string()).expect("an object");
        assert!(matches!(repo.put("notes", None, text), Err(Error::InvalidArgument(_))));
    }
    for not_data in ["[]", "1", "{", "{\"n\": 1e400}", "{\"s\": \"\\ud800\"}"] {
        assert!(SharedData::from_json(not_data.to_owned()).is_none(), "{not_data}");
    }
    let half_valid = vec![(Some("ok".to_string()), Data::new().into()), (Some("not ok!".to_string()), Data::new().into())];
    assert!(repo.put_many("notes", half_valid).is_err());
    assert_eq!(repo.read("notes", |c| c.len()).unwrap(), 0, "nothing of a refused bulk remains");
    assert_eq!(repo.pending_count().await.unwrap(), 0);
    let generated = repo.put("notes", None, Data::new()).unwrap().await.unwrap();
    assert_eq!(generated.id.len(), 36, "a UUID is generated: {}", generated.id);
    repo.close().await.unwrap();
    assert!(matches!(repo.put("notes", None, Data::new()), Err(Error::DatabaseClosed(_))));
}


/// Server answers are recorded in one transaction with the pull cursor: an
/// acknowledged mutation leaves the outbox, a pulled entity appears, a
/// conflict's resolution replaces the entity's queued mutations, and a
/// failed transaction leaves entities, outbox and cursor as they were.
pub async fn sync_answers_settle_in_one_transaction<H: Harness>(h: &H) {
    use tideway::core::reconcile::{ConflictPolicy, Outcome, Policies, Resolution, ServerAnswer};
    use tideway::core::sync::{MutationAnswer, ServerChange};
    use tideway_protocol::PushStatus;

    let name = h.unique_name("settle");
    let repo = repository(h, &name, notes_schema()).await;
    repo.put("notes", Some("n1".into()), data(json!({"title": "one"}))).unwrap().await.unwrap();
    repo.put("notes", Some("n2".into()), data(json!({"title": "two", "body": "b"}))).unwrap().await.unwrap();
    let store = repo.store();
    let outbox = store.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 2);
    let policies = Policies { default: ConflictPolicy::Merge, ..Policies::default() };
    let server = |id: &str, value: Value, version: u64| ServerChange {
        collection: "notes".into(),
        id: id.into(),
        data: DataText::of(&data(value)),
        version,
        server_updated_at: 5_000,
        deleted: false,
    };
    let applied = MutationAnswer {
        mutation_id: outbox[0].mutation_id,
        status: PushStatus::Applied,
        version: Some(1),
        server_updated_at: Some(5_000),
        remote_id: Some("n1".into()),
        current: None,
        error: None,
    };
    let answers = [
        ServerAnswer::Pushed { mutation: outbox[0].clone(), result: applied },
        ServerAnswer::Pulled { id: "n3".into(), change: server("n3", json!({"title": "three"}), 4) },
    ];
    let calls = std::cell::Cell::new(0);
    let meanwhile = || calls.set(calls.get() + 1);
    let settled = store.settle(&answers, &policies, 9_000.0, Some("cursor-1"), Box::new(meanwhile)).await.unwrap();
    assert_eq!(settled.iter().map(|s| s.outcome.clone()).collect::<Vec<_>>(), [Outcome::Pushed, Outcome::Pulled]);
    assert_eq!(calls.get(), 1, "`meanwhile` runs once");
    repo.absorb(&settled);
    let n1 = store.get("notes", "n1").await.unwrap().unwrap();
    assert_eq!((n1.version, n1.sync_status, n1.pending), (1, SyncStatus::Synced, 0));
    assert_eq!(n1.base(), Some(&data(json!({"title": "one"}))));
    assert_eq!(store.get("notes", "n3").await.unwrap().unwrap().version, 4);
    assert_eq!(repo.read("notes", |c| c.get("n3").map(|e| e.version)).unwrap(), Some(4));
    assert_eq!(ids_of(&store.outbox(10).await.unwrap()), [outbox[1].mutation_id]);
    assert_eq!(store.sync_meta().await.unwrap().cursor.as_deref(), Some("cursor-1"));
    // The same answer again (another tab's syncer got it too) changes nothing.
    let again = store.settle(&answers[..1], &policies, 9_000.5, None, Box::new(|| ())).await.unwrap();
    assert_eq!((again[0].outcome.clone(), again[0].entity.clone()), (Outcome::Unchanged, None));
    assert_eq!(store.get("notes", "n1").await.unwrap().unwrap(), n1);

    // n2's push conflicts: the merge replaces its queued mutation with a newer one.
    let conflict = MutationAnswer {
        mutation_id: outbox[1].mutation_id,
        status: PushStatus::Conflict,
        version: Some(3),
        server_updated_at: Some(5_000),
        remote_id: None,
        current: Some(server("n2", json!({"title": "TWO"}), 3)),
        error: None,
    };
    let answer = [ServerAnswer::Pushed { mutation: outbox[1].clone(), result: conflict }];
    let settled = store.settle(&answer, &policies, 9_001.0, None, Box::new(|| ())).await.unwrap();
    assert_eq!(settled[0].outcome, Outcome::Resolved(Resolution::Queued));
    let queued = store.outbox(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].mutation_id > outbox[1].mutation_id);
    assert_eq!((queued[0].op, queued[0].base_version), (Op::Put, 3));
    let n2 = store.get("notes", "n2").await.unwrap().unwrap();
    assert_eq!(Value::Object(n2.data().clone()), json!({"title": "TWO", "body": "b"}), "edits to different fields combine");
    assert_eq!((n2.version, n2.pending, n2.sync_status), (3, 1, SyncStatus::Dirty));

    // A failed transaction: nothing of the page, not even its cursor.
    H::fail_next_apply(store);
    let page = [ServerAnswer::Pulled { id: "n4".into(), change: server("n4", json!({"title": "four"}), 1) }];
    assert!(store.settle(&page, &policies, 9_002.0, Some("cursor-2"), Box::new(meanwhile)).await.is_err());
    assert_eq!(calls.get(), 2, "`meanwhile` runs once when the transaction fails too");
    assert!(store.get("notes", "n4").await.unwrap().is_none());
    assert_eq!(store.sync_meta().await.unwrap().cursor.as_deref(), Some("cursor-1"));
    assert_eq!(store.outbox(10).await.unwrap().len(), 1);

    // The retry schedule and what the remote learned survive a reopen; saving them keeps the cursor.
    let learned = Some("gzip https://sync.example".to_string());
    let meta = tideway::core::SyncMeta { cursor: None, failures: 2, retry_at: Some(12_345.0), last_sync_at: Some(11.0), remote: learned.clone() };
    store.save_sync_meta(&meta).await.unwrap();
    repo.close().await.unwrap();
    let reopened = h.open(&name, notes_schema()).await;
    let saved = reopened.sync_meta().await.unwrap();
    assert_eq!((saved.failures, saved.retry_at, saved.last_sync_at), (2, Some(12_345.0), Some(11.0)));
    assert_eq!(saved.remote, learned);
    assert_eq!(saved.cursor.as_deref(), Some("cursor-1"));
}

/// The answers of one batch take effect in order, each on what the ones
/// before it left (the `Store::settle` contract): two queued writes of one
/// entity both conflict, and the first answer's resolution supersedes the
/// second write, so the outbox ends with one resolution, not two. A failed
/// transaction recording a push answer leaves its outbox entry and entity
/// as they were, and entities the answers do not name are never touched.
pub async fn answers_of_one_batch_take_effect_in_order<H: Harness>(h: &H) {
    use tideway::core::reconcile::{ConflictPolicy, Outcome, Policies, Resolution, ServerAnswer};
    use tideway::core::sync::{MutationAnswer, ServerChange};
    use tideway_protocol::PushStatus;

    let name = h.unique_name("settle-order");
    let repo = repository(h, &name, notes_schema()).await;
    repo.put("notes", Some("n1".into()), data(json!({"title": "first"}))).unwrap().await.unwrap();
    repo.put("notes", Some("n1".into()), data(json!({"title": "second"}))).unwrap().await.unwrap();
    repo.put("notes", Some("other".into()), data(json!({"title": "untouched"}))).unwrap().await.unwrap();
    let store = repo.store();
    let outbox = store.outbox(10).await.unwrap();
    let other = store.get("notes", "other").await.unwrap();
    let policies = Policies { default: ConflictPolicy::ClientWins, ..Policies::default() };
    let current = ServerChange {
        collection: "notes".into(),
        id: "n1".into(),
        data: DataText::of(&data(json!({"title": "theirs"}))),
        version: 2,
        server_updated_at: 5_000,
        deleted: false,
    };
    let conflict = |mutation: &tideway::core::Mutation| ServerAnswer::Pushed {
        mutation: mutation.clone(),
        result: MutationAnswer {
            mutation_id: mutation.mutation_id,
            status: PushStatus::Conflict,
            version: Some(2),
            server_updated_at: Some(5_000),
            remote_id: None,
            current: Some(current.clone()),
            error: None,
        },
    };
    let answers = [conflict(&outbox[0]), conflict(&outbox[1])];

    H::fail_next_apply(store);
    assert!(store.settle(&answers, &policies, 9_000.0, None, Box::new(|| ())).await.is_err());
    assert_eq!(ids_of(&store.outbox(10).await.unwrap()), ids_of(&outbox), "a failed transaction removes no entry");
    let n1 = store.get("notes", "n1").await.unwrap().unwrap();
    assert_eq!((n1.version, n1.pending), (0, 2), "nor changes the entity");

    let settled = store.settle(&answers, &policies, 9_000.0, None, Box::new(|| ())).await.unwrap();
    let outcomes: Vec<Outcome> = settled.iter().map(|s| s.outcome.clone()).collect();
    assert_eq!(outcomes, [Outcome::Resolved(Resolution::Queued), Outcome::Unchanged]);
    let queued = store.outbox(10).await.unwrap();
    let of_n1: Vec<_> = queued.iter().filter(|m| m.id == "n1").collect();
    assert_eq!(of_n1.len(), 1, "one resolution replaces both writes: {queued:?}");
    assert_eq!((of_n1[0].op, of_n1[0].base_version), (Op::Put, 2));
    assert_eq!(of_n1[0].data, Some(DataText::of(&data(json!({"title": "second"})))));
    assert!(of_n1[0].mutation_id > outbox[2].mutation_id, "appended after every queued entry");
    assert_eq!(queued.iter().filter(|m| m.id == "other").count(), 1);
    let n1 = store.get("notes", "n1").await.unwrap().unwrap();
    assert_eq!((n1.version, n1.pending, n1.sync_status), (2, 1, SyncStatus::Dirty));
    assert_eq!(store.get("notes", "other").await.unwrap(), other);
}

/// A push that got no answer counts one attempt on each of its entries still
/// queued, with its error; the rest of the outbox, and the order, stay as they were.
pub async fn failed_pushes_are_counted_on_their_outbox_entries<H: Harness>(h: &H) {
    let name = h.unique_name("attempts");
    let store = h.open(&name, notes_schema()).await;
    let writes = [
        write("notes", "a", Op::Put, Some(json!({"title": "a"})), 1.0),
        write("notes", "b", Op::Put, Some(json!({"title": "b"})), 2.0),
    ];
    store.apply(&writes).await.unwrap();
    let before = store.outbox(10).await.unwrap();
    assert_eq!(before.iter().map(|m| (m.attempts, m.last_error.clone())).collect::<Vec<_>>(), [(0, None), (0, None)]);
    let (a, b) = (before[0].mutation_id, before[1].mutation_id);
    // The second id is gone from the outbox (another context's answer removed it, say): skipped.
    store.note_failed_push(&[a, b + 1000], "network error: offline").await.unwrap();
    store.note_failed_push(&[a], "HTTP 503").await.unwrap();
    store.close();

    let store = h.open(&name, notes_schema()).await;
    let after = store.outbox(10).await.unwrap();
    assert_eq!(ids_of(&after), [a, b], "still queued, in order");
    assert_eq!((after[0].attempts, after[0].last_error.as_deref()), (2, Some("HTTP 503")));
    assert_eq!((after[1].attempts, after[1].last_error.as_deref()), (0, None));
    assert_eq!(after[0].data, before[0].data, "nothing else of the entry changes");
    assert_eq!(store.pending_count().await.unwrap(), 2);
    store.close();
}

fn ids_of(mutations: &[tideway::core::Mutation]) -> Vec<u64> {
    mutations.iter().map(|m| m.mutation_id).collect()
}

/// Declares one test per conformance check. `native` wraps each in
/// `block_on`; `wasm` declares `wasm_bindgen_test` async tests.
#[macro_export]
macro_rules! conformance_tests {
    ($runner:ident: $harness:expr) => {
        $crate::conformance_tests!(@each $runner $harness;
            writes_reach_store_and_outbox_in_order mutation_ids_keep_increasing_across_reopen
            data_survives_close_and_reopen failed_write_leaves_nothing_and_rolls_back deletes_leave_tombstones
            index_queries_follow_indexeddb_order subscribers_hear_committed_changes
            concurrent_writes_commit_together_in_order schema_changes_keep_data invalid_writes_are_refused_without_effect
            sync_answers_settle_in_one_transaction answers_of_one_batch_take_effect_in_order
            failed_pushes_are_counted_on_their_outbox_entries);
    };
    (@each native $harness:expr; $($name:ident)*) => {
        $(#[test] fn $name() { futures::executor::block_on(conformance::$name(&$harness)); })*
    };
    (@each wasm $harness:expr; $($name:ident)*) => {
        $(#[wasm_bindgen_test::wasm_bindgen_test] async fn $name() { conformance::$name(&$harness).await; })*
    };
}
