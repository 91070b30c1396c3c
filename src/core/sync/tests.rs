//! The engine against the fake server: every failure class, retries,
//! idempotent replay, cursors and each conflict policy.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::executor::block_on;
use serde_json::{json, Value};
use tideway_protocol::{codes, MutationResult, PushResponse, PushStatus};

use super::fake::{FakeRemote, Fault};
use super::*;
use crate::core::reconcile::*;
use crate::core::{Data, Entity, Op, Repository, Schema, Store, SyncStatus};
use crate::store::MemoryStore;

type Engine = Rc<SyncEngine<MemoryStore, FakeRemote>>;

fn data(value: Value) -> Data {
    value.as_object().cloned().expect("an object")
}

struct Device {
    store: MemoryStore,
    engine: Engine,
    log: Rc<RefCell<Vec<SyncEvent>>>,
}

fn device(remote: &FakeRemote, policy: ConflictPolicy) -> Device {
    let schema = Schema::new([("notes", vec!["title"])]).unwrap();
    let store = MemoryStore::new(schema.clone());
    open_device(remote, store, schema, policy)
}

fn open_device(remote: &FakeRemote, store: MemoryStore, schema: Schema, policy: ConflictPolicy) -> Device {
    let config = SyncConfig { policies: Policies { default: policy, ..Policies::default() }, ..SyncConfig::default() };
    open_configured(remote, store, schema, config)
}

fn open_configured(remote: &FakeRemote, store: MemoryStore, schema: Schema, config: SyncConfig) -> Device {
    let now = Rc::new(Cell::new(1_000_000.0));
    let clock = Box::new(move || {
        now.set(now.get() + 1.0);
        now.get()
    });
    let repository = block_on(Repository::open(store.clone(), schema, clock)).unwrap();
    let engine = block_on(SyncEngine::open(repository, remote.clone(), config, Box::new(|| 0.5))).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink = log.clone();
    engine.listen(Rc::new(move |event: &SyncEvent| sink.borrow_mut().push(event.clone())));
    Device { store, engine, log }
}

impl Device {
    fn put(&self, id: &str, value: Value) {
        block_on(self.engine.repository().put("notes", Some(id.into()), data(value)).unwrap()).unwrap();
    }

    fn patch(&self, id: &str, value: Value) {
        block_on(self.engine.repository().patch("notes", id.into(), data(value)).unwrap()).unwrap();
    }

    fn delete(&self, id: &str) {
        block_on(self.engine.repository().delete("notes", id.into()).unwrap()).unwrap();
    }

    fn sync(&self) -> Result<SyncReport, SyncError> {
        block_on(self.engine.sync())
    }

    fn get(&self, id: &str) -> Option<Entity> {
        self.engine.repository().read("notes", |c| c.get(id).cloned()).unwrap()
    }

    fn stored(&self, id: &str) -> Option<Entity> {
        block_on(self.store.get("notes", id)).unwrap()
    }

    fn pending(&self) -> usize {
        block_on(self.store.pending_count()).unwrap()
    }

    fn data(&self, id: &str) -> Value {
        Value::Object(self.get(id).expect("entity exists").into_data())
    }
}

fn server_data(remote: &FakeRemote, id: &str) -> Value {
    Value::Object(remote.server().get("notes", id).expect("on the server").data.clone())
}

#[test]
fn offline_writes_are_pushed_in_order_and_acknowledged() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.patch("n1", json!({"done": true}));
    a.put("n2", json!({"title": "two"}));
    a.delete("n2");
    assert_eq!(a.pending(), 4);
    let report = a.sync().unwrap();
    assert_eq!(report.pushed, 4);
    assert_eq!(a.pending(), 0);
    assert_eq!(server_data(&remote, "n1"), json!({"title": "one", "done": true}));
    assert!(remote.server().get("notes", "n2").unwrap().deleted);
    let n1 = a.stored("n1").unwrap();
    assert_eq!((n1.version, n1.sync_status, n1.pending), (2, SyncStatus::Synced, 0));
    assert_eq!(n1.base(), Some(&data(json!({"title": "one", "done": true}))));
    assert_eq!(n1.remote_id.as_deref(), Some("n1"));
    // Each mutation took effect exactly once, in order.
    let server = remote.server();
    let applied: Vec<(u64, &str, Op)> = server.applications.iter().map(|a| (a.mutation_id, a.id.as_str(), a.op)).collect();
    assert_eq!(applied, [(1, "n1", Op::Put), (2, "n1", Op::Patch), (3, "n2", Op::Put), (4, "n2", Op::Delete)]);
}

#[test]
fn a_lost_push_response_is_retried_and_applied_once() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.patch("n1", json!({"title": "two"}));
    remote.server().push_faults.push_back(Fault::After(RemoteError::Network("connection reset".into())));
    let error = a.sync().unwrap_err();
    assert!(matches!(error, SyncError::Remote { class: ErrorClass::Transient { .. }, .. }), "{error:?}");
    assert_eq!(a.pending(), 2, "nothing leaves the outbox without an answer");
    a.sync().unwrap();
    assert_eq!(a.pending(), 0);
    assert_eq!(server_data(&remote, "n1"), json!({"title": "two"}));
    assert_eq!(remote.server().get("notes", "n1").unwrap().version, 2);
    // The retry was answered from the idempotency record: each write took effect once.
    let applied: Vec<(u64, Op)> = remote.server().applications.iter().map(|a| (a.mutation_id, a.op)).collect();
    assert_eq!(applied, [(1, Op::Put), (2, Op::Patch)]);
}

#[test]
fn transient_failures_back_off_and_persist_the_retry_time() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    for _ in 0..3 {
        remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
    }
    let mut delays = Vec::new();
    for _ in 0..3 {
        let before = a.engine.repository().now();
        match a.sync().unwrap_err() {
            SyncError::Remote { retry_at, .. } => delays.push((retry_at - before).round()),
            other => panic!("{other:?}"),
        }
    }
    // 1 s, 2 s, 4 s (jitter drawn at the middle), give or take the test clock's ticks.
    assert!((delays[0] - 1_000.0).abs() < 10.0 && (delays[1] - 2_000.0).abs() < 10.0 && (delays[2] - 4_000.0).abs() < 10.0, "{delays:?}");
    let meta = block_on(a.store.sync_meta()).unwrap();
    assert_eq!(meta.failures, 3);
    assert_eq!(meta.retry_at, a.engine.state().next_retry_at);
    assert_eq!(a.engine.state().counters.retried, 3);
    // A reload keeps the schedule.
    let reopened = open_device(&remote, a.store.reopen(a.engine.repository().schema().clone()), a.engine.repository().schema().clone(), ConflictPolicy::Merge);
    assert_eq!(reopened.engine.state().next_retry_at, meta.retry_at);
    reopened.sync().unwrap();
    let meta = block_on(a.store.sync_meta()).unwrap();
    assert_eq!((meta.failures, meta.retry_at), (0, None));
    assert!(meta.last_sync_at.is_some());
}

/// What the remote learned about the server is kept with the sync state, by
/// a sync that failed as by one that succeeded, and a later session's remote
/// starts from it.
#[test]
fn what_the_remote_learned_is_kept_for_the_next_session() {
    let remote = FakeRemote::default();
    remote.server().says = Some("takes gzip".into());
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.sync().unwrap();
    assert_eq!(block_on(a.store.sync_meta()).unwrap().remote.as_deref(), Some("takes gzip"));
    assert!(remote.server().recalled.is_empty(), "nothing was kept before");

    // A sync that learns nothing keeps what was learned before.
    remote.server().says = None;
    remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
    a.put("n2", json!({"title": "two"}));
    a.sync().unwrap_err();
    assert_eq!(block_on(a.store.sync_meta()).unwrap().remote.as_deref(), Some("takes gzip"));

    let schema = a.engine.repository().schema().clone();
    let _reopened = open_device(&remote, a.store.reopen(schema.clone()), schema, ConflictPolicy::Merge);
    assert_eq!(remote.server().recalled, vec!["takes gzip".to_string()]);
}

/// The engine draws each delay's jitter from its random source: two devices
/// failing at the same moment retry at different times.
#[test]
fn devices_failing_together_retry_apart() {
    let remote = FakeRemote::default();
    let retry_delay = |random: f64| {
        let schema = Schema::new([("notes", vec!["title"])]).unwrap();
        let repository = block_on(Repository::open(MemoryStore::new(schema.clone()), schema, Box::new(|| 1_000.0))).unwrap();
        let engine = block_on(SyncEngine::open(repository, remote.clone(), SyncConfig::default(), Box::new(move || random))).unwrap();
        block_on(engine.repository().put("notes", Some("n1".into()), data(json!({"title": "one"}))).unwrap()).unwrap();
        remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
        match block_on(engine.sync()).unwrap_err() {
            SyncError::Remote { retry_at, .. } => retry_at - 1_000.0,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!([retry_delay(0.0), retry_delay(0.5), retry_delay(0.999_999)].map(f64::round), [800.0, 1_000.0, 1_200.0]);
}

#[test]
fn server_errors_and_429_honour_retry_after() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    let busy = RemoteError::Status { status: 429, code: None, message: "slow down".into(), mutation_id: None, retry_after: Some(30_000.0) };
    remote.server().push_faults.push_back(Fault::Before(busy));
    let before = a.engine.repository().now();
    match a.sync().unwrap_err() {
        SyncError::Remote { retry_at, class, .. } => {
            assert_eq!(class, ErrorClass::Transient { retry_after: Some(30_000.0) });
            assert!(retry_at - before >= 30_000.0);
        }
        other => panic!("{other:?}"),
    }
    remote.server().push_faults.push_back(Fault::Before(RemoteError::status(503, codes::UNAVAILABLE, "busy")));
    assert!(a.sync().is_err());
    assert_eq!(a.pending(), 1);
    a.sync().unwrap();
    assert_eq!(a.pending(), 0);
}

#[test]
fn a_rejected_mutation_is_marked_failed_and_the_queue_goes_on() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    // The server deletes n1 while a local patch of it waits: the push
    // conflicts, and the merge keeps the edit (an edit beats a delete).
    a.put("n1", json!({"title": "one"}));
    a.sync().unwrap();
    remote.server().write("notes", "n1", Value::Null, true);
    a.patch("n1", json!({"title": "edited"}));
    a.put("n2", json!({"title": "two"}));
    a.sync().unwrap();
    assert_eq!(server_data(&remote, "n1"), json!({"title": "edited"}));

    // A mutation the fake refuses for good, followed by one that applies.
    let forbidden = Schema::new([("notes", vec![]), ("forbidden", vec![])]).unwrap();
    let b = open_device(&remote, MemoryStore::new(forbidden.clone()), forbidden, ConflictPolicy::Merge);
    block_on(b.engine.repository().put("forbidden", Some("x".into()), data(json!({"a": 1}))).unwrap()).unwrap();
    b.put("n3", json!({"title": "three"}));
    let report = b.sync().unwrap();
    assert_eq!((report.failed, report.pushed), (1, 1));
    let x = block_on(b.store.get("forbidden", "x")).unwrap().unwrap();
    assert_eq!(x.sync_status, SyncStatus::Failed);
    assert!(x.last_error.as_deref().unwrap().starts_with("invalid_data"), "{:?}", x.last_error);
    assert_eq!(b.pending(), 0);
    assert!(remote.server().get("notes", "n3").is_some());
    assert!(b.log.borrow().iter().any(|e| matches!(e, SyncEvent::Error { id: Some(id), .. } if id == "x")));
}

#[test]
fn a_refused_push_blames_one_mutation_and_the_rest_go_on() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.put("n2", json!({"title": "two"}));
    a.put("n3", json!({"title": "three"}));
    let blamed = RemoteError::Status { status: 413, code: Some(codes::DATA_TOO_LARGE.into()), message: "too big".into(), mutation_id: Some(2), retry_after: None };
    remote.server().push_faults.push_back(Fault::Before(blamed));
    let report = a.sync().unwrap();
    assert_eq!((report.failed, report.pushed), (1, 2));
    assert_eq!(a.stored("n2").unwrap().sync_status, SyncStatus::Failed);
    assert!(remote.server().get("notes", "n2").is_none());

    // Refused without a culprit: the engine pushes one at a time to find it.
    a.put("n4", json!({"title": "four"}));
    a.put("n5", json!({"title": "five"}));
    remote.server().push_faults.push_back(Fault::Before(RemoteError::status(400, codes::INVALID_REQUEST, "bad batch")));
    remote.server().push_faults.push_back(Fault::Before(RemoteError::status(400, codes::INVALID_REQUEST, "bad one")));
    let report = a.sync().unwrap();
    assert_eq!((report.failed, report.pushed), (1, 1));
    assert_eq!(a.stored("n4").unwrap().sync_status, SyncStatus::Failed);
    assert_eq!(a.stored("n5").unwrap().sync_status, SyncStatus::Synced);
}

#[test]
fn refusals_about_where_a_push_went_cost_no_mutation() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.put("n2", json!({"title": "two"}));
    // A wrong URL (404), a forbidden user (403), a proxy refusing the body type (415).
    for status in [404, 403, 415] {
        remote.server().push_faults.push_back(Fault::Before(RemoteError::status(status, "x", "refused")));
        let error = a.sync().unwrap_err();
        assert!(matches!(error, SyncError::Remote { class: ErrorClass::Permanent { .. }, .. }), "{error:?}");
        assert_eq!(a.pending(), 2, "HTTP {status} drops nothing");
        assert_eq!(a.get("n1").unwrap().sync_status, SyncStatus::Dirty);
    }
    a.sync().unwrap();
    assert_eq!(a.pending(), 0);
}

#[test]
fn a_401_refreshes_the_token_once() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    remote.server().expired_tokens = 1;
    a.sync().unwrap();
    assert_eq!(remote.server().refreshes, 1);
    assert_eq!(a.pending(), 0);
    assert!(a.log.borrow().contains(&SyncEvent::Log(Step::AuthRefresh)));

    // Still refused after the refresh: the sync fails, with backoff, and nothing is lost.
    a.put("n2", json!({"title": "two"}));
    remote.server().expired_tokens = 5;
    let error = a.sync().unwrap_err();
    assert!(matches!(error, SyncError::Remote { class: ErrorClass::Auth, .. }), "{error:?}");
    assert_eq!(remote.server().refreshes, 2, "one refresh per sync, not a loop");
    assert_eq!(a.pending(), 1);
}

#[test]
fn malformed_replies_lose_nothing() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.put("n2", json!({"title": "two"}));
    remote.server().push_faults.push_back(Fault::Reply(PushResponse { results: vec![], pull: None }));
    let error = a.sync().unwrap_err();
    assert!(error.to_string().contains("answered 0 results"), "{error}");
    let wrong_id = MutationResult {
        mutation_id: 99,
        status: PushStatus::Applied,
        version: Some(1),
        server_updated_at: None,
        remote_id: None,
        current: None,
        error: None,
    };
    let no_version = MutationResult { mutation_id: 1, version: None, ..wrong_id.clone() };
    remote.server().push_faults.push_back(Fault::Reply(PushResponse { results: vec![wrong_id, no_version.clone()], pull: None }));
    assert!(a.sync().is_err());
    remote.server().push_faults.push_back(Fault::Reply(PushResponse {
        results: vec![no_version, MutationResult { mutation_id: 2, ..no_version_clone() }],
        pull: None,
    }));
    assert!(a.sync().is_err());
    assert_eq!(a.pending(), 2);
    assert_eq!(a.get("n1").unwrap().sync_status, SyncStatus::Dirty, "syncing is undone");
    a.sync().unwrap();
    assert_eq!(a.pending(), 0);
}

/// A pulled id holding U+0000, which the IndexedDB store cannot keep apart
/// from its neighbours where it joins ids, fails the pull as a malformed
/// reply: nothing of its page is recorded, and the cursor stays.
#[test]
fn a_pulled_id_holding_a_nul_is_a_malformed_reply() {
    let remote = FakeRemote::default();
    remote.server().write("notes", "s1", json!({"title": "one"}), false);
    remote.server().write("notes", "bad\u{0}id", json!({"title": "two"}), false);
    let a = device(&remote, ConflictPolicy::Merge);
    let error = a.sync().unwrap_err();
    assert!(matches!(error, SyncError::Remote { class: ErrorClass::Transient { .. }, .. }), "{error:?}");
    assert!(error.to_string().contains("U+0000"), "{error}");
    assert!(a.get("s1").is_none(), "nothing of the page is recorded");
    assert_eq!(block_on(a.store.sync_meta()).unwrap().cursor, None);
}

fn no_version_clone() -> MutationResult {
    MutationResult {
        mutation_id: 0,
        status: PushStatus::Applied,
        version: None,
        server_updated_at: None,
        remote_id: None,
        current: None,
        error: None,
    }
}

#[test]
fn pulls_page_by_page_and_saves_the_cursor_only_after_applying() {
    let remote = FakeRemote::default();
    for i in 0..1_200 {
        remote.server().write("notes", &format!("s{i:04}"), json!({"title": i}), false);
    }
    let a = device(&remote, ConflictPolicy::Merge);
    let report = a.sync().unwrap();
    assert_eq!(report.pulled, 1_200);
    assert_eq!(a.engine.repository().read("notes", |c| c.len()).unwrap(), 1_200);
    assert_eq!(block_on(a.store.sync_meta()).unwrap().cursor.as_deref(), Some("c1200"));
    assert_eq!(a.get("s0007").unwrap().sync_status, SyncStatus::Synced);

    // The store fails while applying the next page: the cursor stays behind it.
    remote.server().write("notes", "s0001", json!({"title": "changed"}), false);
    a.store.fail_next_apply();
    assert!(matches!(a.sync(), Err(SyncError::Store(_))));
    assert_eq!(block_on(a.store.sync_meta()).unwrap().cursor.as_deref(), Some("c1200"));
    assert_eq!(a.data("s0001"), json!({"title": 1}));
    a.sync().unwrap();
    assert_eq!(a.data("s0001"), json!({"title": "changed"}));
    assert_eq!(block_on(a.store.sync_meta()).unwrap().cursor.as_deref(), Some("c1201"));
}

/// Each page is shown while the next one is recorded: a pull that stops
/// shows the pages it recorded all the same.
#[test]
fn a_pull_that_stops_shows_the_pages_it_recorded() {
    let remote = FakeRemote::default();
    for i in 0..1_200 {
        remote.server().write("notes", &format!("s{i:04}"), json!({"title": i}), false);
    }
    remote.server().pull_faults.extend([Fault::Pass, Fault::Before(RemoteError::Timeout)]);
    let a = device(&remote, ConflictPolicy::Merge);
    assert!(matches!(a.sync(), Err(SyncError::Remote { .. })));
    assert_eq!(block_on(a.store.sync_meta()).unwrap().cursor.as_deref(), Some("c1000"));
    assert_eq!(a.engine.repository().read("notes", |c| c.len()).unwrap(), 1_000);
    assert_eq!(a.get("s0999").unwrap().sync_status, SyncStatus::Synced);
}

/// Each batch is shown while the next one is recorded: a push that stops
/// shows the batches it recorded all the same, and leaves the rest queued.
#[test]
fn a_push_that_stops_shows_the_batches_it_recorded() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    for i in 0..2_500 {
        a.put(&format!("n{i:04}"), json!({"title": i}));
    }
    remote.server().push_faults.extend([Fault::Pass, Fault::Pass, Fault::Before(RemoteError::Timeout)]);
    assert!(matches!(a.sync(), Err(SyncError::Remote { .. })));
    let synced = |ids: std::ops::Range<usize>| ids.filter(|i| a.get(&format!("n{i:04}")).unwrap().sync_status == SyncStatus::Synced).count();
    assert_eq!(synced(0..2_000), 2_000);
    assert_eq!(synced(2_000..2_500), 0);
    assert_eq!(a.pending(), 500);
}

#[test]
fn an_expired_cursor_pulls_again_from_the_start() {
    let remote = FakeRemote::default();
    remote.server().write("notes", "s1", json!({"title": "a"}), false);
    let a = device(&remote, ConflictPolicy::Merge);
    a.sync().unwrap();
    remote.server().write("notes", "s2", json!({"title": "b"}), false);
    remote.server().pull_faults.push_back(Fault::Before(RemoteError::status(410, codes::CURSOR_EXPIRED, "gone")));
    let report = a.sync().unwrap();
    assert_eq!(report.pulled, 1, "s1 is known at its version; only s2 is new");
    assert!(a.log.borrow().contains(&SyncEvent::Log(Step::CursorReset)));
    assert!(a.get("s2").is_some());
}

#[test]
fn pulls_leave_out_what_this_client_pushed() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.put("n2", json!({"title": "two"}));
    assert_eq!(a.sync().unwrap().pushed, 2);
    assert_eq!(remote.server().served, 0, "a new database had nothing to find deleted: its own pushes were left out");
    remote.server().write("notes", "s1", json!({"title": "elsewhere"}), false);
    a.put("n3", json!({"title": "three"}));
    let report = a.sync().unwrap();
    assert_eq!((report.pushed, report.pulled), (1, 1));
    assert_eq!(remote.server().served, 1, "only the other client's change");
    a.sync().unwrap();
    assert_eq!(remote.server().served, 1, "the cursor moved past this client's own changes");
    let n3 = a.stored("n3").unwrap();
    assert_eq!((n3.version, n3.sync_status), (1, SyncStatus::Synced), "known from the push answer");
    // Another device of the user gets all of it.
    let b = device(&remote, ConflictPolicy::Merge);
    assert_eq!(b.sync().unwrap().pulled, 4);
}

#[test]
fn a_pull_from_the_start_that_may_find_deletes_lists_this_clients_own_pushes() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("mine", json!({"title": "pushed here"}));
    a.sync().unwrap();
    remote.server().pull_faults.push_back(Fault::Before(RemoteError::status(410, codes::CURSOR_EXPIRED, "gone")));
    a.sync().unwrap();
    assert_eq!(remote.server().served, 1, "listed by the pull from the start");
    let mine = a.get("mine").unwrap();
    assert!(!mine.deleted && mine.sync_status == SyncStatus::Synced, "never taken for deleted on the server");
}

#[test]
fn a_pull_from_the_start_drops_synced_entities_the_server_no_longer_lists() {
    let remote = FakeRemote::default();
    for id in ["kept", "purged", "edited"] {
        remote.server().write("notes", id, json!({"title": id}), false);
    }
    let a = device(&remote, ConflictPolicy::Merge);
    a.sync().unwrap();
    // Deleted elsewhere, then the tombstones purged before this device pulled them.
    for id in ["purged", "edited"] {
        remote.server().write("notes", id, Value::Null, true);
        remote.server().entities.remove(&("notes".to_string(), id.to_string()));
    }
    a.patch("edited", json!({"title": "changed here"}));
    remote.server().pull_faults.push_back(Fault::Before(RemoteError::status(410, codes::CURSOR_EXPIRED, "gone")));
    a.sync().unwrap();
    assert!(a.get("kept").is_some_and(|e| !e.deleted));
    let purged = a.get("purged").unwrap();
    assert!(purged.deleted, "the full pull did not list it: it is gone on the server");
    assert_eq!(purged.sync_status, SyncStatus::Synced);
    // A local edit is pushed, never dropped for want of a listing.
    assert_eq!(a.data("edited"), json!({"title": "changed here"}));
    assert_eq!(remote.server().get("notes", "edited").map(|e| e.data.clone()), Some(json!({"title": "changed here"}).as_object().unwrap().clone()));
}

#[test]
fn unsynced_work_rescued_into_a_fresh_database_pushes_on_the_right_version() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("synced", json!({"title": "kept as is"}));
    a.put("edited", json!({"title": "t", "body": "b"}));
    a.put("deleted", json!({"title": "d"}));
    a.sync().unwrap();
    a.patch("edited", json!({"body": "changed on a"}));
    block_on(a.engine.repository().delete("notes", "deleted".into()).unwrap()).unwrap();
    a.put("new", json!({"title": "never pushed"}));
    // Meanwhile another device changed another field of "edited".
    remote.server().write("notes", "edited", json!({"title": "changed elsewhere", "body": "b"}), false);

    let rescued = crate::core::rescue::unsynced(a.engine.repository()).unwrap();
    let mut ids: Vec<&str> = rescued.iter().map(|(_, e)| e.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["deleted", "edited", "new"]);
    let b = device(&remote, ConflictPolicy::Merge);
    let written = block_on(crate::core::rescue::rescue_into(b.engine.repository(), rescued)).unwrap();
    assert_eq!(written, 3);
    let edited = b.get("edited").unwrap();
    assert_eq!((edited.version, edited.pending), (1, 1), "based on the version the server acknowledged");
    b.sync().unwrap();
    let server = |id: &str| remote.server().get("notes", id).cloned().unwrap();
    assert_eq!(Value::Object(server("edited").data), json!({"title": "changed elsewhere", "body": "changed on a"}), "merged, not overwritten");
    assert!(server("deleted").deleted);
    assert_eq!(Value::Object(server("new").data), json!({"title": "never pushed"}));
    assert_eq!(server("synced").version, 1, "synced entities are not pushed again");
    assert_eq!(b.data("edited"), json!({"title": "changed elsewhere", "body": "changed on a"}));
}

#[test]
fn pulled_deletes_become_tombstones() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.sync().unwrap();
    remote.server().write("notes", "n1", Value::Null, true);
    a.sync().unwrap();
    let n1 = a.get("n1").unwrap();
    assert!(n1.deleted);
    assert_eq!((n1.version, n1.sync_status), (2, SyncStatus::Synced));
}

/// Two devices edit the same note; returns them after both synced twice.
fn concurrent_edits(policy: ConflictPolicy, local: Value, other: Value) -> (FakeRemote, Device, Device) {
    let remote = FakeRemote::default();
    let a = device(&remote, policy.clone());
    let b = device(&remote, policy);
    a.put("n1", json!({"title": "t", "body": "b", "done": false}));
    a.sync().unwrap();
    b.sync().unwrap();
    b.patch("n1", other);
    b.sync().unwrap();
    a.patch("n1", local);
    a.sync().unwrap();
    b.sync().unwrap();
    a.sync().unwrap();
    (remote, a, b)
}

#[test]
fn merge_combines_edits_to_different_fields_and_converges() {
    let (remote, a, b) = concurrent_edits(ConflictPolicy::Merge, json!({"title": "A"}), json!({"body": "B"}));
    let expected = json!({"title": "A", "body": "B", "done": false});
    assert_eq!(server_data(&remote, "n1"), expected);
    assert_eq!(a.data("n1"), expected);
    assert_eq!(b.data("n1"), expected);
    assert_eq!(a.get("n1").unwrap().sync_status, SyncStatus::Synced);
    assert_eq!(a.engine.state().counters.merged, 1);
}

#[test]
fn merge_takes_the_server_value_for_the_same_field() {
    let (remote, a, b) = concurrent_edits(ConflictPolicy::Merge, json!({"title": "A"}), json!({"title": "B"}));
    assert_eq!(server_data(&remote, "n1")["title"], json!("B"));
    assert_eq!(a.data("n1"), b.data("n1"));
}

#[test]
fn server_wins_drops_the_local_edit() {
    let (remote, a, b) = concurrent_edits(ConflictPolicy::ServerWins, json!({"title": "A"}), json!({"body": "B"}));
    let expected = json!({"title": "t", "body": "B", "done": false});
    assert_eq!(server_data(&remote, "n1"), expected);
    assert_eq!(a.data("n1"), expected);
    assert_eq!(b.data("n1"), expected);
    assert_eq!(a.pending(), 0);
}

#[test]
fn client_wins_pushes_the_local_version_over_the_server() {
    let (remote, a, b) = concurrent_edits(ConflictPolicy::ClientWins, json!({"title": "A"}), json!({"body": "B"}));
    let expected = json!({"title": "A", "body": "b", "done": false});
    assert_eq!(server_data(&remote, "n1"), expected);
    assert_eq!(a.data("n1"), expected);
    assert_eq!(b.data("n1"), expected);
}

#[test]
fn a_custom_resolver_decides() {
    let resolver: Resolver = Rc::new(|sides: &ConflictSides| {
        let mut merged = sides.server.cloned().unwrap_or_default();
        let local = sides.local.and_then(|l| l.get("title")).and_then(Value::as_str).unwrap_or("");
        let server = sides.server.and_then(|s| s.get("title")).and_then(Value::as_str).unwrap_or("");
        merged.insert("title".into(), json!(format!("{server} | {local}")));
        Ok(merged)
    });
    let (remote, a, b) = concurrent_edits(ConflictPolicy::Custom(resolver), json!({"title": "A"}), json!({"title": "B"}));
    assert_eq!(server_data(&remote, "n1")["title"], json!("B | A"));
    assert_eq!(a.data("n1"), b.data("n1"));
}

#[test]
fn manual_conflicts_wait_for_the_app_then_push_its_resolution() {
    let (remote, a, b) = concurrent_edits(ConflictPolicy::Manual, json!({"title": "A"}), json!({"title": "B"}));
    let n1 = a.get("n1").unwrap();
    assert_eq!(n1.sync_status, SyncStatus::Conflict);
    assert_eq!(Value::Object(n1.data().clone()), json!({"title": "A", "body": "b", "done": false}), "the local side stays visible");
    assert_eq!(n1.base(), Some(&data(json!({"title": "B", "body": "b", "done": false}))), "the server side");
    assert_eq!(n1.conflict.as_ref().unwrap().base, Some(data(json!({"title": "t", "body": "b", "done": false}))));
    assert_eq!(a.pending(), 0, "nothing is pushed while in conflict");
    assert!(a.log.borrow().iter().any(|e| matches!(e, SyncEvent::Conflict { id, .. } if id == "n1")));
    // More server changes while the conflict waits update its server side.
    b.patch("n1", json!({"done": true}));
    b.sync().unwrap();
    a.sync().unwrap();
    let n1 = a.get("n1").unwrap();
    assert_eq!(n1.sync_status, SyncStatus::Conflict);
    assert_eq!(n1.base().unwrap()["done"], json!(true));
    // The app settles it with an ordinary write.
    a.put("n1", json!({"title": "A+B", "body": "b", "done": true}));
    assert!(a.get("n1").unwrap().conflict.is_none());
    a.sync().unwrap();
    b.sync().unwrap();
    assert_eq!(server_data(&remote, "n1"), json!({"title": "A+B", "body": "b", "done": true}));
    assert_eq!(b.data("n1"), server_data(&remote, "n1"));
    assert_eq!(a.get("n1").unwrap().sync_status, SyncStatus::Synced);
}

/// The server may leave its version's data out of a conflict answer (past
/// its byte budget): the mutation stays queued, the pull brings that version,
/// the policy settles the conflict on it, and the rest is pushed, all in one
/// sync. Read as "the entity is gone" instead, server-wins would have deleted
/// it here while the server keeps it.
#[test]
fn a_conflict_answered_without_the_servers_data_is_settled_by_the_pull() {
    for (policy, expected) in [
        (ConflictPolicy::Merge, json!({"title": "theirs", "body": "mine"})),
        (ConflictPolicy::ServerWins, json!({"title": "theirs"})),
    ] {
        let remote = FakeRemote::default();
        let a = device(&remote, policy);
        a.put("n1", json!({"title": "one"}));
        a.sync().unwrap();
        remote.server().write("notes", "n1", json!({"title": "theirs"}), false);
        remote.server().withholds_current = true;
        a.patch("n1", json!({"body": "mine"}));
        a.put("n2", json!({"title": "two"}));
        a.sync().unwrap();
        assert_eq!(server_data(&remote, "n1"), expected);
        assert_eq!(a.data("n1"), expected);
        assert!(!a.get("n1").unwrap().deleted);
        assert_eq!(server_data(&remote, "n2"), json!({"title": "two"}));
        assert_eq!(a.pending(), 0);
    }
}

#[test]
fn a_pull_never_overwrites_unpushed_local_changes() {
    use futures::FutureExt;
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "t", "body": "b"}));
    a.sync().unwrap();
    remote.server().write("notes", "n1", json!({"title": "t", "body": "server"}), false);
    // The local edit lands after this sync's push and before its pull.
    let repository = a.engine.repository().clone();
    let edited = Rc::new(Cell::new(false));
    let once = edited.clone();
    a.engine.listen(Rc::new(move |event: &SyncEvent| {
        if matches!(event, SyncEvent::Log(Step::Pull { .. })) && !once.replace(true) {
            let write = repository.patch("notes", "n1".into(), data(json!({"title": "local"}))).unwrap();
            write.now_or_never().expect("the memory store answers at once").unwrap();
        }
    }));
    a.sync().unwrap();
    assert!(edited.get());
    assert_eq!(a.data("n1"), json!({"title": "local", "body": "server"}), "merged, not overwritten");
    assert_eq!(a.pending(), 1, "the merge is queued for the server");
    a.sync().unwrap();
    assert_eq!(server_data(&remote, "n1"), json!({"title": "local", "body": "server"}));
    assert_eq!(a.get("n1").unwrap().sync_status, SyncStatus::Synced);
}

#[test]
fn writes_queued_behind_an_acknowledged_one_are_based_on_its_version() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Manual);
    a.put("n1", json!({"title": "1"}));
    a.patch("n1", json!({"title": "2"}));
    a.patch("n1", json!({"title": "3"}));
    a.sync().unwrap();
    assert_eq!(server_data(&remote, "n1"), json!({"title": "3"}));
    let n1 = a.get("n1").unwrap();
    assert_eq!((n1.version, n1.sync_status), (3, SyncStatus::Synced), "no conflict with its own writes");
}

#[test]
fn edits_of_one_entity_go_in_one_push_where_the_server_chains_them() {
    let edits = |chains: bool| {
        let remote = FakeRemote::default();
        remote.server().chains = chains;
        let a = device(&remote, ConflictPolicy::Manual);
        a.put("n1", json!({"title": "1"}));
        a.patch("n1", json!({"done": true}));
        a.put("n2", json!({"title": "two"}));
        a.put("n1", json!({"title": "3"}));
        a.delete("n2");
        a.sync().unwrap();
        assert_eq!(a.pending(), 0);
        assert_eq!(server_data(&remote, "n1"), json!({"title": "3"}));
        assert!(remote.server().get("notes", "n2").unwrap().deleted);
        let n1 = a.stored("n1").unwrap();
        assert_eq!((n1.version, n1.sync_status, n1.pending), (3, SyncStatus::Synced, 0), "no conflict with its own writes");
        assert_eq!(n1.base(), Some(&data(json!({"title": "3"}))));
        let server = remote.server();
        let applied: Vec<(u64, &str)> = server.applications.iter().map(|a| (a.mutation_id, a.id.as_str())).collect();
        assert_eq!(applied, [(1, "n1"), (2, "n1"), (3, "n2"), (4, "n1"), (5, "n2")], "each once, in order");
        server.pushes
    };
    assert_eq!(edits(true), 1, "one push where the server chains them");
    assert_eq!(edits(false), 3, "one push per edit of an entity otherwise");
}

#[test]
fn a_chain_stops_at_its_first_conflict_and_the_policy_settles_it() {
    let remote = FakeRemote::default();
    remote.server().chains = true;
    let a = device(&remote, ConflictPolicy::Merge);
    let b = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "t", "body": "b"}));
    a.sync().unwrap();
    b.sync().unwrap();
    b.patch("n1", json!({"body": "B"}));
    b.sync().unwrap();
    for title in ["A1", "A2", "A3"] {
        a.patch("n1", json!({ "title": title }));
    }
    a.put("n2", json!({"title": "other"}));
    a.sync().unwrap();
    let expected = json!({"title": "A3", "body": "B"});
    assert_eq!(server_data(&remote, "n1"), expected);
    assert_eq!(a.data("n1"), expected);
    assert_eq!((a.pending(), a.get("n1").unwrap().sync_status), (0, SyncStatus::Synced));
    assert_eq!(a.engine.state().counters.merged, 1, "one conflict, settled once");
    // None of the chain after its conflict took effect: the merge that settled it did.
    let server = remote.server();
    let applied: Vec<(&str, Op)> = server.applications.iter().skip(2).map(|a| (a.id.as_str(), a.op)).collect();
    assert_eq!(applied, [("n2", Op::Put), ("n1", Op::Put)]);
}

#[test]
fn backends_that_assign_their_own_ids_are_mapped() {
    let remote = FakeRemote::default();
    remote.server().assigns_ids = true;
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("local-1", json!({"title": "one"}));
    a.sync().unwrap();
    let entity = a.get("local-1").unwrap();
    assert_eq!(entity.remote_id.as_deref(), Some("srv-1"));
    a.patch("local-1", json!({"title": "edited"}));
    a.sync().unwrap();
    assert_eq!(server_data(&remote, "srv-1"), json!({"title": "edited"}));
    assert!(remote.server().get("notes", "local-1").is_none());
    // A server edit comes back to the local id, not a new entity.
    remote.server().write("notes", "srv-1", json!({"title": "from server"}), false);
    a.sync().unwrap();
    assert_eq!(a.data("local-1"), json!({"title": "from server"}));
    assert!(a.get("srv-1").is_none());
}

#[test]
fn one_sync_at_a_time() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    let (first, second) = block_on(futures::future::join(a.engine.sync(), a.engine.sync()));
    assert!(first.is_ok() && second.is_ok());
    assert_eq!(remote.server().pushes, 1, "the second call ran after the first, with nothing left to push");
    // The first pulled with its push, the second on its own.
    let server = remote.server();
    assert_eq!((server.pulls_with_push, server.pulls), (1, 1));
}

#[test]
fn status_events_bracket_each_sync() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    a.sync().unwrap();
    let log = a.log.borrow();
    assert_eq!(log.first(), Some(&SyncEvent::Status));
    assert_eq!(log.last(), Some(&SyncEvent::Status));
    assert!(log.contains(&SyncEvent::Log(Step::Push { mutations: 1, first_mutation_id: 1 })));
    assert!(log.contains(&SyncEvent::Log(Step::Done { pushed: 1, pulled: 0 })));
    assert!(!a.engine.state().syncing);
}

/// The log names each pushed mutation's answer and each conflict with its
/// policy's outcome, as they are recorded.
#[test]
fn the_log_tells_each_answer_and_conflict() {
    let (_remote, a, _b) = concurrent_edits(ConflictPolicy::Manual, json!({"title": "A"}), json!({"title": "B"}));
    let log = a.log.borrow();
    let answer = log.iter().position(|e| matches!(e, SyncEvent::Log(Step::Answer { id, status: AnswerStatus::Conflict, .. }) if id == "n1"));
    let conflict = log.iter().position(|e| {
        *e == SyncEvent::Log(Step::Conflict { collection: "notes".into(), id: "n1".into(), policy: "manual", outcome: ConflictOutcome::Manual })
    });
    assert!(answer.is_some() && conflict.is_some(), "{log:?}");
    let (answer, conflict) = (answer.unwrap(), conflict.unwrap());
    let pushed = answer + log[answer..].iter().position(|e| matches!(e, SyncEvent::Log(Step::Pushed { .. }))).unwrap();
    assert!(answer < conflict && conflict < pushed, "answers and conflicts come before the batch's summary: {log:?}");
}

/// After each failure the log says which failure in a row it was and when the retry is due.
#[test]
fn the_log_tells_when_a_retry_is_scheduled() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    for _ in 0..2 {
        remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
        a.sync().unwrap_err();
    }
    let retries: Vec<(u32, f64, f64)> = a
        .log
        .borrow()
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Log(Step::RetryScheduled { attempt, delay, retry_at }) => Some((*attempt, *delay, *retry_at)),
            _ => None,
        })
        .collect();
    assert_eq!(retries.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!((retries[0].1 - 1_000.0).abs() < 10.0 && (retries[1].1 - 2_000.0).abs() < 10.0, "{retries:?}");
    assert_eq!(Some(retries[1].2), a.engine.state().next_retry_at);
}

/// A push that fails without an answer is counted on the entries it carried,
/// with its error, for anyone looking at the outbox.
#[test]
fn failed_pushes_count_attempts_on_the_outbox() {
    let remote = FakeRemote::default();
    let a = device(&remote, ConflictPolicy::Merge);
    a.put("n1", json!({"title": "one"}));
    remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
    remote.server().push_faults.push_back(Fault::Before(RemoteError::Timeout));
    a.sync().unwrap_err();
    a.sync().unwrap_err();
    let outbox = block_on(a.store.outbox(10)).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].attempts, 2);
    assert_eq!(outbox[0].last_error, Some(RemoteError::Timeout.to_string()));
    a.sync().unwrap();
    assert_eq!(a.pending(), 0);
}

#[test]
fn pushes_stay_within_the_servers_body_limit() {
    let remote = FakeRemote::default();
    let device = device(&remote, ConflictPolicy::Merge);
    // Eight of these fill a push body; twenty need three pushes, not one
    // the server would refuse whole.
    let body = "x".repeat(1_000_000);
    for i in 0..20 {
        device.put(&format!("n{i}"), json!({ "body": body }));
    }
    let report = device.sync().unwrap();
    assert_eq!(report.pushed, 20);
    assert_eq!(remote.server().pushes, 3);
    assert_eq!(device.pending(), 0);
}

#[test]
fn a_full_outbox_goes_in_pushes_of_the_protocols_maximum() {
    let remote = FakeRemote::default();
    let device = device(&remote, ConflictPolicy::Merge);
    let entries = (0..2500).map(|i| (Some(format!("n{i}")), data(json!({ "title": i })).into())).collect();
    block_on(device.engine.repository().put_many("notes", entries).unwrap()).unwrap();
    let report = device.sync().unwrap();
    assert_eq!(report.pushed, 2500);
    assert_eq!(remote.server().pushes, 3, "1000 + 1000 + 500");
}

#[test]
fn the_next_batch_holds_no_entity_whose_answer_is_still_being_recorded() {
    let remote = FakeRemote::default();
    let device = device(&remote, ConflictPolicy::Manual);
    let entries = (0..1000).map(|i| (Some(format!("n{i}")), data(json!({ "title": i })).into())).collect();
    block_on(device.engine.repository().put_many("notes", entries).unwrap()).unwrap();
    device.patch("n0", json!({ "done": true }));
    device.put("n1000", json!({ "title": 1000 }));
    let report = device.sync().unwrap();
    // The patch of n0 is sent once the put's answer is recorded, on the version it brought.
    assert_eq!((report.pushed, report.conflicted), (1002, 0));
    assert_eq!(remote.server().pushes, 2);
    assert_eq!(server_data(&remote, "n0"), json!({ "title": 0, "done": true }));
    assert_eq!(device.stored("n0").unwrap().sync_status, SyncStatus::Synced);
}

/// A device pushing in batches of two, its first recording of answers held
/// until the sender returned is used.
fn device_with_a_slow_first_recording(remote: &FakeRemote) -> (Device, futures::channel::oneshot::Sender<()>) {
    let schema = Schema::new([("notes", vec!["title"])]).unwrap();
    let config = SyncConfig { push_batch: 2, ..SyncConfig::default() };
    let device = open_configured(remote, MemoryStore::new(schema.clone()), schema, config);
    let release = device.store.hold_next_settle();
    (device, release)
}

/// What a read of the memory store answers, without an executor: it never waits.
fn at_once<T>(read: impl std::future::Future<Output = crate::core::Result<T>>) -> T {
    use futures::FutureExt;
    read.now_or_never().expect("the memory store answers at once").unwrap()
}

/// Runs `sync` until `until` holds (which must happen while it runs), then
/// `then`, then the rest of `sync`.
fn sync_until(device: &Device, until: impl Fn() -> bool, then: impl FnOnce()) -> Result<SyncReport, SyncError> {
    let mut polls = 0;
    let mut then = Some(then);
    let watch = futures::future::poll_fn(|cx| {
        if until() {
            then.take().expect("called once")();
            return std::task::Poll::Ready(());
        }
        polls += 1;
        assert!(polls < 10_000, "the sync stalled before the condition held");
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    });
    let (report, ()) = block_on(futures::future::join(device.engine.sync(), watch));
    report
}

#[test]
fn later_batches_go_out_while_the_answers_before_them_are_recorded() {
    let remote = FakeRemote::default();
    let (device, release) = device_with_a_slow_first_recording(&remote);
    for id in ["a", "b", "c", "d", "e", "f"] {
        device.put(id, json!({ "title": id }));
    }
    let report = sync_until(
        &device,
        || remote.server().pushes == 3,
        || {
            // [c d] and [e f] went out while the answers to [a b] were being recorded.
            assert_eq!(at_once(device.store.get("notes", "a")).unwrap().sync_status, SyncStatus::Dirty);
            assert_eq!(at_once(device.store.pending_count()), 6);
            release.send(()).unwrap();
        },
    )
    .unwrap();
    assert_eq!(report.pushed, 6);
    assert_eq!(remote.server().pushes, 3);
    for id in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(device.stored(id).unwrap().sync_status, SyncStatus::Synced);
        assert_eq!(device.get(id).unwrap().sync_status, SyncStatus::Synced);
    }
    assert_eq!(device.pending(), 0);
}

#[test]
fn a_batch_waits_for_the_answers_to_its_entities_to_be_recorded() {
    let remote = FakeRemote::default();
    let (device, release) = device_with_a_slow_first_recording(&remote);
    for id in ["a", "b", "c", "d"] {
        device.put(id, json!({ "title": id }));
    }
    device.patch("a", json!({ "done": true }));
    let report = sync_until(
        &device,
        || remote.server().pushes >= 2,
        || {
            // [patch a] is read while [c d] is in flight; it waits for the
            // version the answer to [a b] brings.
            assert_eq!(remote.server().pushes, 2, "[patch a] went out before the answer to [a b] was recorded");
            assert_eq!(at_once(device.store.get("notes", "a")).unwrap().version, 0);
            release.send(()).unwrap();
        },
    )
    .unwrap();
    assert_eq!((report.pushed, report.conflicted), (5, 0));
    assert_eq!(remote.server().pushes, 3);
    assert_eq!(server_data(&remote, "a"), json!({ "title": "a", "done": true }));
    assert_eq!(device.stored("a").unwrap().version, 2);
    assert_eq!(device.pending(), 0);
}

#[test]
fn a_failed_recording_leaves_every_later_answer_to_the_next_sync() {
    let remote = FakeRemote::default();
    let (device, release) = device_with_a_slow_first_recording(&remote);
    for id in ["a", "b", "c", "d", "e", "f"] {
        device.put(id, json!({ "title": id }));
    }
    device.store.fail_next_apply();
    let failed = sync_until(&device, || remote.server().pushes == 3, || release.send(()).unwrap());
    assert!(matches!(failed, Err(SyncError::Store(_))), "{failed:?}");
    // Nothing was recorded: every entity is shown waiting to be pushed again.
    for id in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(device.get(id).unwrap().sync_status, SyncStatus::Dirty);
    }
    assert_eq!(device.pending(), 6);
    let report = device.sync().unwrap();
    assert_eq!(report.pushed, 6);
    assert_eq!(remote.server().applications.len(), 6, "each mutation applied once");
    assert_eq!(device.pending(), 0);
}

#[test]
fn a_batch_read_while_the_one_before_is_in_flight_carries_the_answers_before_that() {
    let remote = FakeRemote::default();
    let schema = Schema::new([("notes", vec!["title"])]).unwrap();
    let config = SyncConfig {
        push_batch: 2,
        policies: Policies { default: ConflictPolicy::Manual, ..Policies::default() },
        ..SyncConfig::default()
    };
    let device = open_configured(&remote, MemoryStore::new(schema.clone()), schema, config);
    for id in ["a", "b", "c", "d"] {
        device.put(id, json!({ "title": id }));
    }
    device.patch("a", json!({ "done": true }));
    device.patch("c", json!({ "done": true }));
    let report = device.sync().unwrap();
    // [a b], then [c d] read while [a b] is in flight, then [patch a] read while
    // [c d] is: after the answers of [a b], on the version they brought. The patch
    // of c waits for the answer of [c d].
    assert_eq!((report.pushed, report.conflicted), (6, 0));
    assert_eq!(remote.server().pushes, 4);
    let applied: Vec<(u64, String)> = remote.server().applications.iter().map(|a| (a.mutation_id, a.id.clone())).collect();
    let expected = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "a"), (6, "c")].map(|(m, id)| (m, id.to_string()));
    assert_eq!(applied, expected);
    for id in ["a", "c"] {
        assert_eq!(server_data(&remote, id), json!({ "title": id, "done": true }));
        assert_eq!((device.stored(id).unwrap().version, device.stored(id).unwrap().sync_status), (2, SyncStatus::Synced));
    }
    assert_eq!(device.pending(), 0);
}

#[test]
fn the_pull_is_asked_for_while_the_last_answers_are_recorded() {
    // From a server that leaves out the pulls pushes carry. In batches of two:
    // one batch; a full batch the outbox ends with; a batch after a full one.
    for ids in [&["a"][..], &["a", "b"], &["a", "b", "c"]] {
        let remote = FakeRemote::default();
        remote.server().ignores_pulls_with_push = true;
        remote.server().write("notes", "elsewhere", json!({ "title": "another client's" }), false);
        let (device, release) = device_with_a_slow_first_recording(&remote);
        for id in ids {
            device.put(id, json!({ "title": id }));
        }
        let report = sync_until(
            &device,
            || remote.server().pulls == 1,
            || {
                assert_eq!(at_once(device.store.get("notes", "a")).unwrap().sync_status, SyncStatus::Dirty, "{ids:?}");
                release.send(()).unwrap();
            },
        )
        .unwrap();
        assert_eq!((report.pushed, report.pulled), (ids.len(), 1), "{ids:?}");
        assert_eq!(remote.server().pulls, 1, "{ids:?}: the page asked for meanwhile is the one taken");
        assert_eq!(device.get("elsewhere").map(|e| e.sync_status), Some(SyncStatus::Synced), "{ids:?}");
        for id in ids {
            assert_eq!(device.stored(id).unwrap().sync_status, SyncStatus::Synced, "{ids:?}");
        }
        assert_eq!(device.pending(), 0);
    }
}

#[test]
fn a_write_made_while_the_last_answers_are_recorded_goes_before_the_pull() {
    let remote = FakeRemote::default();
    remote.server().ignores_pulls_with_push = true;
    let (device, release) = device_with_a_slow_first_recording(&remote);
    device.put("a", json!({ "title": "a" }));
    let report = sync_until(
        &device,
        || remote.server().pulls == 1,
        || {
            at_once(device.engine.repository().put("notes", Some("late".into()), data(json!({ "title": "late" }))).unwrap());
            release.send(()).unwrap();
        },
    )
    .unwrap();
    assert_eq!(report.pushed, 2);
    assert_eq!(remote.server().pushes, 2);
    // The page asked for before the late write went out is dropped, and asked for again after it.
    assert_eq!(remote.server().pulls, 2);
    assert_eq!(device.stored("late").unwrap().sync_status, SyncStatus::Synced);
    assert_eq!(device.pending(), 0);
}

/// Two devices' edits of one note, the first device's not pushed yet; its
/// merge queues a write when the server answers with a conflict.
fn a_conflict_to_merge(remote: &FakeRemote) -> Device {
    let (a, b) = (device(remote, ConflictPolicy::Merge), device(remote, ConflictPolicy::Merge));
    a.put("n1", json!({ "title": "t", "done": false }));
    a.sync().unwrap();
    b.sync().unwrap();
    b.patch("n1", json!({ "done": true }));
    b.sync().unwrap();
    a.patch("n1", json!({ "title": "here" }));
    a
}

/// The pushes and pulls of `device`'s log from entry `from` on.
fn requests_logged(device: &Device, from: usize) -> Vec<&'static str> {
    device.log.borrow()[from..]
        .iter()
        .filter_map(|event| match event {
            SyncEvent::Log(Step::Push { .. }) => Some("push"),
            SyncEvent::Log(Step::Pull { .. }) => Some("pull"),
            _ => None,
        })
        .collect()
}

#[test]
fn no_pull_is_asked_for_ahead_of_a_conflict_being_recorded() {
    let remote = FakeRemote::default();
    let a = a_conflict_to_merge(&remote);
    remote.server().ignores_pulls_with_push = true;
    let pushes = remote.server().pushes;
    let pulls = remote.server().pulls;
    let logged = a.log.borrow().len();
    assert_eq!(a.sync().unwrap().merged, 1);
    // The merge queues a write, pushed before the one pull that ends the sync.
    let server = remote.server();
    assert_eq!((server.pushes - pushes, server.pulls - pulls), (2, 1));
    drop(server);
    assert_eq!(requests_logged(&a, logged), ["push", "push", "pull"]);
    assert_eq!(server_data(&remote, "n1"), json!({ "title": "here", "done": true }));
}

#[test]
fn the_push_that_empties_the_outbox_carries_the_pull() {
    // In batches of two: [a b] then [c] with the pull; [a b], a full batch, with it.
    for (ids, requests) in [(&["a", "b", "c"][..], &["push", "push", "pull"][..]), (&["a", "b"], &["push", "pull"])] {
        let remote = FakeRemote::default();
        let schema = Schema::new([("notes", vec!["title"])]).unwrap();
        let config = SyncConfig { push_batch: 2, ..SyncConfig::default() };
        let device = open_configured(&remote, MemoryStore::new(schema.clone()), schema, config);
        remote.server().write("notes", "elsewhere", json!({ "title": "another client's" }), false);
        for id in ids {
            device.put(id, json!({ "title": id }));
        }
        let report = device.sync().unwrap();
        assert_eq!((report.pushed, report.pulled), (ids.len(), 1), "{ids:?}");
        let pushes = requests.len() - 1;
        let server = remote.server();
        assert_eq!((server.pushes as usize, server.pulls_with_push, server.pulls), (pushes, 1, 0), "{ids:?}");
        drop(server);
        assert_eq!(requests_logged(&device, 0), requests, "{ids:?}");
        assert_eq!(device.get("elsewhere").map(|e| e.sync_status), Some(SyncStatus::Synced));
        assert_eq!(device.pending(), 0);
        // The next sync, from the cursor that page brought: nothing new.
        device.put("d", json!({ "title": "d" }));
        assert_eq!(device.sync().unwrap().pulled, 0);
        let server = remote.server();
        assert_eq!((server.pushes as usize, server.pulls_with_push, server.pulls, server.served), (pushes + 1, 2, 0, 1), "{ids:?}");
    }
}

#[test]
fn a_page_carried_by_a_push_whose_conflict_queues_a_write_is_dropped() {
    let remote = FakeRemote::default();
    let a = a_conflict_to_merge(&remote);
    let (pushes, carried, pulls) = {
        let server = remote.server();
        (server.pushes, server.pulls_with_push, server.pulls)
    };
    let logged = a.log.borrow().len();
    assert_eq!(a.sync().unwrap().merged, 1);
    // Both pushes emptied the outbox, so both carried the pull; the page the
    // first one brought came before the merged write went out.
    let server = remote.server();
    assert_eq!((server.pushes - pushes, server.pulls_with_push - carried, server.pulls - pulls), (2, 2, 0));
    drop(server);
    assert_eq!(requests_logged(&a, logged), ["push", "pull", "push", "pull"]);
    assert_eq!(server_data(&remote, "n1"), json!({ "title": "here", "done": true }));
    assert_eq!(a.data("n1"), json!({ "title": "here", "done": true }));
    assert_eq!(a.pending(), 0);
}
