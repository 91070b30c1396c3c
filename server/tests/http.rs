//! The server over real HTTP: each scenario spawns the built `tideway-server`
//! binary (a real process on a free port) and runs once against SQLite and once
//! against PostgreSQL (`TIDEWAY_TEST_POSTGRES_URL`; see `scripts/test-server.sh`).

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tideway_protocol::MAX_BODY_BYTES;

/// Runs a scenario against both databases, as two tests.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::new(super::Kind::Sqlite).await.expect("sqlite");
                super::$scenario(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::TestDb::new(super::Kind::Postgres).await {
                    super::$scenario(db).await;
                }
            }
        }
    )*};
}

on_both_databases!(
    replay_after_lost_response_applies_once,
    mutation_id_gaps_and_late_ids,
    patch_put_delete_semantics,
    concurrent_stale_writers_get_conflicts,
    pull_pages_under_concurrent_writes_skip_and_repeat_nothing,
    tombstones_are_pulled,
    users_are_isolated_on_every_endpoint,
    rest_etags_preconditions_and_idempotency_keys,
    unservable_cursors_answer_410,
    two_server_processes_share_one_database,
    hostile_requests_get_json_4xx_and_change_nothing,
    cors_and_health,
    conflicts_carry_bounded_data_and_records_keep_none,
    pull_pages_stop_at_a_byte_budget,
    rotating_the_epoch_expires_every_cursor,
    purge_drops_old_records_and_expires_cursors_behind_it,
    one_user_cannot_stall_another,
    data_that_would_be_stored_changed_is_refused,
    a_push_decides_each_mutation_as_if_pushed_alone,
    a_client_pulls_what_others_wrote_and_moves_past_its_own,
    a_push_carries_the_pull_that_follows_it,
    mutations_chained_with_after_apply_in_order,
    a_chain_stops_at_its_first_mutation_not_applied,
    an_after_naming_another_mutation_refuses_the_push,
);

async fn replay_after_lost_response_applies_once(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let batch = json!([
        put(1, "notes", "n1", json!({"title": "a"}), 0),
        patch(2, "notes", "n1", json!({"done": true}), 1),
        put(3, "notes", "n2", json!({"title": "b"}), 0),
    ]);
    let first = api.push_ok(ALICE, "c1", batch.clone()).await;
    assert!(first.iter().all(|r| r["status"] == "applied"), "{first:?}");
    let after_first = db.dump().await;
    // The response was "lost": the client sends the very same batch again.
    let replay = api.push_ok(ALICE, "c1", batch).await;
    assert_eq!(first, replay, "a replay answers the original results");
    assert_eq!(after_first, db.dump().await, "a replay changes nothing");
    // A batch overlapping the processed ones applies only the new mutation.
    let overlap = api.push_ok(ALICE, "c1", json!([put(3, "notes", "n2", json!({"title": "b"}), 0), patch(4, "notes", "n2", json!({"x": 1}), 1)])).await;
    assert_eq!(overlap[0], first[2]);
    assert_eq!(overlap[1]["status"], "applied");
    assert_eq!(overlap[1]["version"], 2);
    let (changes, _) = api.pull_all(ALICE, "", 100).await;
    let n1 = changes.iter().find(|c| c["id"] == "n1").expect("n1");
    assert_eq!(n1["version"], 2);
    assert_eq!(n1["data"], json!({"title": "a", "done": true}));
    // A conflict is recorded too: replaying it answers the same conflict.
    let stale = json!([put(5, "notes", "n1", json!({"title": "stale"}), 1)]);
    let conflict = api.push_ok(ALICE, "c1", stale.clone()).await;
    assert_eq!(conflict[0]["status"], "conflict");
    assert_eq!(conflict[0]["current"]["version"], 2);
    assert_eq!(api.push_ok(ALICE, "c1", stale).await, conflict);
}

async fn mutation_id_gaps_and_late_ids(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    // Gaps are fine: ids only have to increase.
    let r = api.push_ok(ALICE, "c1", json!([put(3, "notes", "a", json!({}), 0), put(10, "notes", "b", json!({}), 0)])).await;
    assert!(r.iter().all(|r| r["status"] == "applied"));
    // An id below the highest processed that the server never saw: rejected, not applied.
    let r = api.push_ok(ALICE, "c1", json!([put(7, "notes", "c", json!({}), 0), put(11, "notes", "d", json!({}), 0)])).await;
    assert_eq!(r[0]["status"], "rejected");
    assert_eq!(r[0]["error"]["code"], "out_of_order");
    assert_eq!(r[1]["status"], "applied", "a rejection does not block the rest of the queue");
    assert_eq!(api.send(Method::GET, "/v1/collections/notes/c", Some(ALICE), &[], None).await.status, StatusCode::NOT_FOUND);
    // Other clients of the same user count their ids separately.
    let r = api.push_ok(ALICE, "c2", json!([put(1, "notes", "e", json!({}), 0)])).await;
    assert_eq!(r[0]["status"], "applied");
    // An empty push is fine and does nothing.
    assert!(api.push_ok(ALICE, "c3", json!([])).await.is_empty());
}

async fn patch_put_delete_semantics(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let r = api.push_ok(ALICE, "c1", json!([
        put(1, "notes", "a", json!({"x": 1, "y": {"deep": true}, "z": null}), 0),
        patch(2, "notes", "a", json!({"y": {"other": 1}, "x": null, "w": 2}), 1),
        patch(3, "notes", "missing", json!({"x": 1}), 0),
        delete(4, "notes", "missing", 0),
        patch(5, "notes", "missing2", json!({"x": 1}), 4),
        put(6, "notes", "a", json!({"replaced": true}), 2),
    ])).await;
    let statuses: Vec<_> = r.iter().map(|r| r["status"].as_str().unwrap_or("")).collect();
    assert_eq!(statuses, ["applied", "applied", "rejected", "rejected", "conflict", "applied"]);
    assert_eq!(r[2]["error"]["code"], "not_found");
    assert!(r[4].get("current").is_none(), "a conflict on a missing entity has no current");
    let got = api.send(Method::GET, "/v1/collections/notes/a", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], json!({"replaced": true}));
    assert_eq!(got.body["version"], 3);
    assert_eq!(got.header("etag"), Some("\"3\""));
    // The patch merged shallowly and dropped null fields; check through a pull of version 2.
    let r = api.push_ok(ALICE, "c1", json!([patch(7, "notes", "a", json!({"replaced": null, "k": [1, 2]}), 3)])).await;
    assert_eq!(r[0]["version"], 4);
    let got = api.send(Method::GET, "/v1/collections/notes/a", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], json!({"k": [1, 2]}));
    // Strings with NUL and non-ASCII characters round-trip (PostgreSQL TEXT cannot hold NUL raw).
    let odd = json!({"nul": "a\u{0}b", "emoji": "🦀", "quote": "'\";--"});
    let r = api.push_ok(ALICE, "c1", json!([put(9, "notes", "odd", odd.clone(), 0)])).await;
    assert_eq!(r[0]["status"], "applied");
    let got = api.send(Method::GET, "/v1/collections/notes/odd", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], odd);
    // Put keeps nulls in data as given.
    api.push_ok(ALICE, "c1", json!([put(10, "notes", "n", json!({"v": null}), 0)])).await;
    let got = api.send(Method::GET, "/v1/collections/notes/n", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], json!({"v": null}));
}

async fn concurrent_stale_writers_get_conflicts(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "seed", json!([put(1, "notes", "hot", json!({"n": 0}), 0)])).await;
    // Eight clients all believe version 1 is current and write at once.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.push_ok(ALICE, &format!("w{i}"), json!([put(1, "notes", "hot", json!({"n": i}), 1)])).await })
        })
        .collect();
    let mut applied = 0;
    for writer in writers {
        let r = writer.await.expect("writer");
        match r[0]["status"].as_str() {
            Some("applied") => applied += 1,
            Some("conflict") => assert_eq!(r[0]["current"]["version"], 2),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1, "exactly one stale writer wins");
    // The same through REST If-Match.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.json(Method::PUT, "/v1/collections/notes/hot", ALICE, &[("if-match", "\"2\"")], &json!({"rest": i})).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for writer in writers {
        statuses.push(writer.await.expect("writer"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count(), 7, "{statuses:?}");
    let got = api.send(Method::GET, "/v1/collections/notes/hot", Some(ALICE), &[], None).await;
    assert_eq!(got.body["version"], 3);
}

async fn pull_pages_under_concurrent_writes_skip_and_repeat_nothing(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    const WRITERS: usize = 4;
    const BATCHES: u64 = 15;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut final_versions = HashMap::new();
                for b in 0..BATCHES {
                    // Three creates, and an update of an entity created earlier, so
                    // entities move to the head of the sequence while being paged.
                    let mut mutations = vec![];
                    for k in 0..3 {
                        let id = format!("w{w}-b{b}-{k}");
                        mutations.push(put(b * 10 + k + 1, "items", &id, json!({"w": w}), 0));
                        final_versions.insert(id, 1u64);
                    }
                    if b > 0 {
                        let id = format!("w{w}-b{}-0", b - 1);
                        mutations.push(patch(b * 10 + 5, "items", &id, json!({"touched": b}), 1));
                        final_versions.insert(id, 2);
                    }
                    let r = api.push_ok(ALICE, &format!("writer{w}"), Value::Array(mutations)).await;
                    assert!(r.iter().all(|r| r["status"] == "applied"), "{r:?}");
                }
                final_versions
            })
        })
        .collect();
    // The reader pages with a small limit while the writers run.
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut cursor = String::new();
    let mut writers_done = false;
    let mut expected = HashMap::new();
    let mut writers = writers;
    loop {
        let reply = api.pull(ALICE, &cursor, 5).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        for change in reply.body["changes"].as_array().expect("changes") {
            seen.push((change["id"].as_str().expect("id").to_string(), change["version"].as_u64().expect("version")));
        }
        cursor = reply.body["cursor"].as_str().expect("cursor").to_string();
        if writers_done && reply.body["hasMore"] == false {
            break;
        }
        if !writers_done && writers.iter().all(|w| w.is_finished()) {
            for w in writers.drain(..) {
                expected.extend(w.await.expect("writer"));
            }
            writers_done = true;
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a change was delivered twice");
    let mut last_seen: HashMap<String, u64> = HashMap::new();
    for (id, version) in &seen {
        let previous = last_seen.insert(id.clone(), *version);
        assert!(previous.is_none_or(|p| p < *version), "{id} went back in time");
    }
    assert_eq!(last_seen, expected, "every entity's latest change reached the reader");
    assert!(seen.len() >= expected.len());
}

async fn tombstones_are_pulled(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({"t": 1}), 0), put(2, "notes", "b", json!({"t": 2}), 0)])).await;
    let (changes, cursor) = api.pull_all(ALICE, "", 10).await;
    assert_eq!(changes.len(), 2);
    let r = api.push_ok(ALICE, "c1", json!([delete(3, "notes", "a", 1)])).await;
    assert_eq!(r[0]["status"], "applied");
    assert_eq!(r[0]["version"], 2);
    let reply = api.send(Method::DELETE, "/v1/collections/notes/b", Some(ALICE), &[], None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    let (changes, _) = api.pull_all(ALICE, &cursor, 10).await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    for change in &changes {
        assert_eq!(change["deleted"], true);
        assert_eq!(change["version"], 2);
        assert_eq!(change["data"], json!({}));
    }
    // A fresh client sees the tombstones too.
    let (all, _) = api.pull_all(ALICE, "", 10).await;
    assert!(all.iter().all(|c| c["deleted"] == true));
    // Deleted entities are absent to GET, and a put over a tombstone needs its version.
    assert_eq!(api.send(Method::GET, "/v1/collections/notes/a", Some(ALICE), &[], None).await.status, StatusCode::NOT_FOUND);
    let r = api.push_ok(ALICE, "c1", json!([put(4, "notes", "a", json!({"again": 1}), 0), put(5, "notes", "a", json!({"again": 2}), 2)])).await;
    assert_eq!(r[0]["status"], "conflict");
    assert_eq!(r[0]["current"]["deleted"], true);
    assert_eq!(r[1]["status"], "applied");
    assert_eq!(r[1]["version"], 3);
}

async fn users_are_isolated_on_every_endpoint(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "shared-client", json!([put(1, "notes", "secret", json!({"pin": 1234}), 0)])).await;
    let rest = api.json(Method::PUT, "/v1/collections/notes/rest", ALICE, &[("idempotency-key", "k1")], &json!({"a": 1})).await;
    assert_eq!(rest.status, StatusCode::CREATED);
    let (_, alice_cursor) = api.pull_all(ALICE, "", 10).await;
    let before = db.dump().await;

    // Bob cannot see them...
    assert_eq!(api.send(Method::GET, "/v1/collections/notes/secret", Some(BOB), &[], None).await.status, StatusCode::NOT_FOUND);
    let (bob_changes, _) = api.pull_all(BOB, "", 10).await;
    assert!(bob_changes.is_empty());
    // ...nor use Alice's cursor to page through her changes.
    let reply = api.pull(BOB, &alice_cursor, 10).await;
    assert!(reply.status == StatusCode::GONE || reply.body["changes"] == json!([]), "{}", reply.body);
    // ...nor overwrite or delete them (they answer as if absent).
    let reply = api.json(Method::PUT, "/v1/collections/notes/secret", BOB, &[("if-match", "\"1\"")], &json!({"pin": 0})).await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    assert!(reply.body.get("current").is_none());
    assert_eq!(api.send(Method::DELETE, "/v1/collections/notes/secret", Some(BOB), &[], None).await.status, StatusCode::NOT_FOUND);
    let r = api.push_ok(BOB, "shared-client", json!([
        patch(1, "notes", "secret", json!({"pin": 0}), 1),
        delete(2, "notes", "secret", 1),
        patch(3, "notes", "secret", json!({"pin": 0}), 0),
    ])).await;
    assert_eq!(r[0]["status"], "conflict");
    assert!(r[0].get("current").is_none());
    assert_eq!(r[2]["status"], "rejected");
    assert_eq!(r[2]["error"]["code"], "not_found");
    // Bob's mutation ids and idempotency keys are his own, not Alice's replays.
    let bob_rest = api.json(Method::PUT, "/v1/collections/notes/rest", BOB, &[("idempotency-key", "k1")], &json!({"a": 1})).await;
    assert_eq!(bob_rest.status, StatusCode::CREATED);
    assert!(bob_rest.header("idempotent-replayed").is_none());
    // Bob creating his own "secret" leaves Alice's untouched.
    let r = api.push_ok(BOB, "shared-client", json!([put(4, "notes", "secret", json!({"bob": true}), 0)])).await;
    assert_eq!(r[0]["status"], "applied");
    assert_eq!(r[0]["version"], 1);
    let alice_rows: Vec<_> = before.iter().filter(|l| l.contains("| alice |")).collect();
    let after = db.dump().await;
    let alice_rows_after: Vec<_> = after.iter().filter(|l| l.contains("| alice |")).collect();
    assert_eq!(alice_rows, alice_rows_after, "nothing of Alice's changed");
    let got = api.send(Method::GET, "/v1/collections/notes/secret", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], json!({"pin": 1234}));
    let (alice_changes, _) = api.pull_all(ALICE, "", 10).await;
    assert_eq!(alice_changes.len(), 2);
}

async fn rest_etags_preconditions_and_idempotency_keys(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let path = "/v1/collections/todos/t1";
    let created = api.json(Method::PUT, path, ALICE, &[("idempotency-key", "create-t1")], &json!({"title": "x"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.header("location"), Some(path));
    let snapshot = db.dump().await;
    let replay = api.json(Method::PUT, path, ALICE, &[("idempotency-key", "create-t1")], &json!({"title": "x"})).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, created.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(db.dump().await, snapshot, "an idempotent replay changes nothing");
    let reused = api.json(Method::PUT, path, ALICE, &[("idempotency-key", "create-t1")], &json!({"title": "other"})).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    // Without If-Match an existing entity is not overwritten.
    let blind = api.json(Method::PUT, path, ALICE, &[], &json!({"title": "blind"})).await;
    assert_eq!(blind.status, StatusCode::CONFLICT);
    assert_eq!(blind.body["current"]["data"], json!({"title": "x"}));
    let stale = api.json(Method::PUT, path, ALICE, &[("if-match", "\"7\", W/\"1\"")], &json!({"title": "stale"})).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.body["current"]["version"], 1);
    let ok = api.json(Method::PUT, path, ALICE, &[("if-match", "\"1\"")], &json!({"title": "y"})).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    let any = api.json(Method::PUT, path, ALICE, &[("if-match", "*")], &json!({"title": "z"})).await;
    assert_eq!(any.header("etag"), Some("\"3\""));
    let got = api.send(Method::GET, path, Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"], json!({"title": "z"}));
    assert_eq!(got.header("etag"), Some("\"3\""));
    let stale_delete = api.send(Method::DELETE, path, Some(ALICE), &[("if-match", "\"2\"")], None).await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let deleted = api.send(Method::DELETE, path, Some(ALICE), &[("if-match", "\"3\""), ("idempotency-key", "del")], None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = api.send(Method::DELETE, path, Some(ALICE), &[("if-match", "\"3\""), ("idempotency-key", "del")], None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "the replayed delete answers as the first did");
    assert_eq!(api.send(Method::DELETE, path, Some(ALICE), &[], None).await.status, StatusCode::NOT_FOUND);
    // REST writes show up in pull like pushed ones.
    let (changes, _) = api.pull_all(ALICE, "", 10).await;
    assert_eq!(changes, vec![json!({"collection": "todos", "id": "t1", "data": {}, "version": 4, "serverUpdatedAt": changes[0]["serverUpdatedAt"], "deleted": true})]);
}

async fn unservable_cursors_answer_410(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({}), 0)])).await;
    let (_, cursor) = api.pull_all(ALICE, "", 10).await;
    // A cursor from another database (say, the server's database was replaced).
    let other_db = TestDb::new(db.kind).await.expect("second database");
    let other = Server::start(&other_db).await;
    let reply = other.api().pull(ALICE, &cursor, 10).await;
    assert_eq!(reply.status, StatusCode::GONE, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "cursor_expired");
    // A cursor ahead of the history (say, a database restored from a backup).
    let (epoch, _) = cursor.split_once('.').expect("cursor shape");
    let reply = api.pull(ALICE, &format!("{epoch}.999"), 10).await;
    assert_eq!(reply.status, StatusCode::GONE);
    // Starting over always works.
    assert_eq!(api.pull_all(ALICE, "", 10).await.0.len(), 1);
}

async fn two_server_processes_share_one_database(db: TestDb) {
    let one = Server::start(&db).await;
    let two = Server::start(&db).await;
    let (a, b) = (one.api(), two.api());
    a.push_ok(ALICE, "seed", json!([put(1, "notes", "hot", json!({}), 0)])).await;
    // Stale writers spread over both processes: one wins.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let api = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { api.push_ok(ALICE, &format!("w{i}"), json!([put(1, "notes", "hot", json!({"i": i}), 1)])).await })
        })
        .collect();
    let mut applied = 0;
    for w in writers {
        if w.await.expect("writer")[0]["status"] == "applied" {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    // A mutation pushed to one process and replayed to the other applies once.
    let batch = json!([put(1, "notes", "once", json!({}), 0), patch(2, "notes", "once", json!({"n": 1}), 1)]);
    let first = a.push_ok(ALICE, "roaming", batch.clone()).await;
    assert_eq!(b.push_ok(ALICE, "roaming", batch).await, first);
    // Writers on both processes while a reader alternates between them.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = if w % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for n in 0..20u64 {
                    let r = api.push_ok(ALICE, &format!("pw{w}"), json!([put(n + 1, "items", &format!("{w}-{n}"), json!({}), 0)])).await;
                    assert_eq!(r[0]["status"], "applied");
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    let mut turn = 0;
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        let api = if turn % 2 == 0 { &a } else { &b };
        turn += 1;
        let reply = api.pull(ALICE, &cursor, 3).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        for c in reply.body["changes"].as_array().expect("changes") {
            let key = (c["id"].as_str().unwrap_or("").to_string(), c["version"].as_u64().unwrap_or(0));
            assert!(seen.insert(key), "repeated {c}");
        }
        cursor = reply.body["cursor"].as_str().expect("cursor").to_string();
        if finished && reply.body["hasMore"] == false {
            break;
        }
    }
    for w in writers {
        w.await.expect("writer");
    }
    let items = seen.iter().filter(|(id, _)| id.contains('-')).count();
    assert_eq!(items, 80, "every item created on either process was pulled once");
}

async fn hostile_requests_get_json_4xx_and_change_nothing(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({"t": 1}), 0)])).await;
    api.json(Method::PUT, "/v1/collections/notes/r", ALICE, &[("idempotency-key", "k")], &json!({"x": 1})).await;
    let before = db.dump().await;

    let mutation = |extra: Value| {
        let mut m = put(2, "notes", "b", json!({"ok": true}), 0);
        for (k, v) in extra.as_object().expect("object") {
            m[k] = v.clone();
        }
        m
    };
    let push_with = |mutations: Value| serde_json::to_vec(&json!({"clientId": "c1", "mutations": mutations})).expect("json");
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let mut deeper = String::from("1");
    for _ in 0..300 {
        deeper = format!("[{deeper}]");
    }
    let many: Vec<Value> = (1..=1001).map(|i| put(i + 1, "notes", &format!("m{i}"), json!({}), 0)).collect();
    let huge_body = {
        let mut v = br#"{"clientId":"c1","mutations":[],"pad":""#.to_vec();
        v.extend(std::iter::repeat_n(b'x', 9 * 1024 * 1024));
        v.extend(br#""}"#);
        v
    };
    let json_ct = ("content-type", "application/json");
    let long_key = "k".repeat(300);
    type Case<'a> = (&'a str, Method, String, Option<&'a str>, Vec<(&'a str, &'a str)>, Option<Vec<u8>>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no token", Method::POST, "/v1/push".into(), None, vec![json_ct], Some(push_with(json!([mutation(json!({}))]))), 401, "unauthorized"),
        ("unknown token", Method::POST, "/v1/push".into(), Some("nope"), vec![json_ct], Some(push_with(json!([mutation(json!({}))]))), 401, "unauthorized"),
        ("pull without token", Method::GET, "/v1/pull".into(), None, vec![], None, 401, "unauthorized"),
        ("REST without token", Method::DELETE, "/v1/collections/notes/a".into(), None, vec![], None, 401, "unauthorized"),
        ("truncated JSON", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(br#"{"clientId":"c1","mutations":[{"#.to_vec()), 400, "malformed_json"),
        ("not JSON", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(b"hello".to_vec()), 400, "malformed_json"),
        ("invalid UTF-8", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(b"{\"clientId\":\"\xff\xfe\",\"mutations\":[]}".to_vec()), 400, "malformed_json"),
        ("lone surrogate", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(br#"{"clientId":"\ud800","mutations":[]}"#.to_vec()), 400, "malformed_json"),
        ("text/plain body", Method::POST, "/v1/push".into(), Some(ALICE), vec![("content-type", "text/plain")], Some(push_with(json!([mutation(json!({}))]))), 415, "unsupported_media_type"),
        ("no content type", Method::POST, "/v1/push".into(), Some(ALICE), vec![], Some(push_with(json!([mutation(json!({}))]))), 415, "unsupported_media_type"),
        ("mutations not an array", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(br#"{"clientId":"c1","mutations":"x"}"#.to_vec()), 400, "invalid_request"),
        ("missing clientId", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(br#"{"mutations":[]}"#.to_vec()), 400, "invalid_request"),
        ("duplicate field", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(br#"{"clientId":"c1","clientId":"c2","mutations":[]}"#.to_vec()), 400, "invalid_request"),
        ("empty clientId", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(serde_json::to_vec(&json!({"clientId": "", "mutations": []})).expect("json")), 400, "invalid_client_id"),
        ("NUL in clientId", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(serde_json::to_vec(&json!({"clientId": "a\u{0}b", "mutations": []})).expect("json")), 400, "invalid_client_id"),
        ("negative mutationId", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"mutationId": -1}))]))), 400, "invalid_request"),
        ("fractional mutationId", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"mutationId": 1.5}))]))), 400, "invalid_request"),
        ("mutationId 0", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"mutationId": 0}))]))), 400, "invalid_mutation_id"),
        ("mutationId above 2^53", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"mutationId": 1u64 << 60}))]))), 400, "invalid_mutation_id"),
        ("baseVersion as string", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"baseVersion": "0"}))]))), 400, "invalid_request"),
        ("baseVersion above 2^53", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"baseVersion": u64::MAX}))]))), 400, "invalid_base_version"),
        ("unknown op", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"op": "upsert"}))]))), 400, "invalid_request"),
        ("path traversal collection", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"collection": "../etc"}))]))), 400, "invalid_collection"),
        ("SQL in collection", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"collection": "x'; DROP TABLE tw_entities; --"}))]))), 400, "invalid_collection"),
        ("slash in id", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"id": "a/b"}))]))), 400, "invalid_id"),
        ("id too long", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"id": "x".repeat(129)}))]))), 400, "invalid_id"),
        ("data is an array", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"data": [1, 2]}))]))), 400, "invalid_request"),
        ("put without data", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"data": null}))]))), 400, "invalid_data"),
        ("data 41 levels deep", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"data": {"d": deep}}))]))), 400, "invalid_data"),
        ("JSON 300 levels deep", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(format!(r#"{{"clientId":"c1","mutations":[{{"mutationId":2,"collection":"n","id":"b","op":"put","baseVersion":0,"data":{{"d":{deeper}}}}}]}}"#).into_bytes()), 400, "malformed_json"),
        ("valid then invalid mutation", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({})), put(3, "notes", "c", json!({}), 0), put(4, "no tes", "d", json!({}), 0)]))), 400, "invalid_collection"),
        ("ids not increasing", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([put(5, "notes", "b", json!({}), 0), put(4, "notes", "c", json!({}), 0)]))), 400, "invalid_mutation_id"),
        ("1001 mutations", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(Value::Array(many))), 413, "batch_too_large"),
        ("entity data over 1 MiB", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(push_with(json!([mutation(json!({"data": {"blob": "x".repeat(1024 * 1024)}}))]))), 413, "data_too_large"),
        ("body over 8 MiB", Method::POST, "/v1/push".into(), Some(ALICE), vec![json_ct], Some(huge_body), 413, "payload_too_large"),
        ("garbage cursor", Method::GET, "/v1/pull?cursor=not-a-cursor".into(), Some(ALICE), vec![], None, 400, "invalid_cursor"),
        ("limit 0", Method::GET, "/v1/pull?limit=0".into(), Some(ALICE), vec![], None, 400, "invalid_limit"),
        ("limit too big", Method::GET, "/v1/pull?limit=100000".into(), Some(ALICE), vec![], None, 400, "invalid_limit"),
        ("limit not a number", Method::GET, "/v1/pull?limit=ten".into(), Some(ALICE), vec![], None, 400, "invalid_limit"),
        ("bad clientId on pull", Method::GET, "/v1/pull?clientId=not%20an%20id".into(), Some(ALICE), vec![], None, 400, "invalid_client_id"),
        ("REST bad collection", Method::PUT, "/v1/collections/1bad/x".into(), Some(ALICE), vec![json_ct], Some(b"{}".to_vec()), 400, "invalid_collection"),
        ("REST encoded slash in id", Method::PUT, "/v1/collections/notes/a%2Fb".into(), Some(ALICE), vec![json_ct], Some(b"{}".to_vec()), 400, "invalid_id"),
        ("REST body not an object", Method::PUT, "/v1/collections/notes/z".into(), Some(ALICE), vec![json_ct], Some(b"[1]".to_vec()), 400, "invalid_data"),
        ("REST malformed If-Match", Method::PUT, "/v1/collections/notes/a".into(), Some(ALICE), vec![json_ct, ("if-match", "1")], Some(b"{}".to_vec()), 400, "invalid_header"),
        ("REST Idempotency-Key too long", Method::PUT, "/v1/collections/notes/z".into(), Some(ALICE), vec![json_ct, ("idempotency-key", long_key.as_str())], Some(b"{}".to_vec()), 400, "invalid_header"),
        ("REST stale If-Match", Method::PUT, "/v1/collections/notes/a".into(), Some(ALICE), vec![json_ct, ("if-match", "\"9\"")], Some(b"{}".to_vec()), 412, "precondition_failed"),
        ("REST If-Match on missing", Method::PUT, "/v1/collections/notes/zz".into(), Some(ALICE), vec![json_ct, ("if-match", "\"1\"")], Some(b"{}".to_vec()), 412, "precondition_failed"),
        ("REST reused Idempotency-Key", Method::PUT, "/v1/collections/notes/other".into(), Some(ALICE), vec![json_ct, ("idempotency-key", "k")], Some(b"{}".to_vec()), 422, "idempotency_key_reused"),
        ("REST delete missing", Method::DELETE, "/v1/collections/notes/missing".into(), Some(ALICE), vec![], None, 404, "not_found"),
        ("REST too many segments", Method::GET, "/v1/collections/notes/a/b".into(), Some(ALICE), vec![], None, 404, "not_found"),
        ("unknown route", Method::GET, "/v1/nope".into(), Some(ALICE), vec![], None, 404, "not_found"),
        ("wrong method", Method::POST, "/v1/pull".into(), Some(ALICE), vec![], None, 405, "method_not_allowed"),
    ];
    // A case copied without being changed would test nothing new.
    let names: std::collections::HashSet<&str> = cases.iter().map(|case| case.0).collect();
    assert_eq!(names.len(), cases.len(), "every case has a name of its own");
    for (name, method, path, token, headers, body, status, code) in cases {
        let reply = api.send(method, &path, token, &headers, body).await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.body);
        assert!(reply.status.is_client_error(), "{name}");
        assert_eq!(reply.header("content-type"), Some("application/json"), "{name}");
        assert_eq!(reply.body["error"]["code"], code, "{name}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    assert_eq!(db.dump().await, before, "hostile requests changed the database");
    // And the server still works.
    let r = api.push_ok(ALICE, "c1", json!([put(2, "notes", "b", json!({}), 0)])).await;
    assert_eq!(r[0]["status"], "applied");
}

async fn cors_and_health(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let health = api.send(Method::GET, "/v1/health", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    assert_eq!(api.send(Method::HEAD, "/v1/health", None, &[], None).await.status, StatusCode::OK);
    let preflight = |origin: &'static str| {
        let api = api.clone();
        async move {
            api.send(Method::OPTIONS, "/v1/push", None, &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,content-encoding,content-type,idempotency-key,if-match"),
            ], None)
            .await
        }
    };
    let ok = preflight("http://127.0.0.1:39113").await;
    assert_eq!(ok.header("access-control-allow-origin"), Some("http://127.0.0.1:39113"));
    let allowed = ok.header("access-control-allow-headers").unwrap_or("").to_string();
    for h in ["authorization", "content-encoding", "content-type", "if-match", "idempotency-key"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    assert!(preflight("http://localhost:5173").await.header("access-control-allow-origin").is_some());
    assert!(preflight("http://evil.example").await.header("access-control-allow-origin").is_none());
    // Errors carry CORS headers too, so a browser page can read them.
    let denied = api.send(Method::GET, "/v1/pull", None, &[("origin", "http://localhost:8080")], None).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.header("access-control-allow-origin"), Some("http://localhost:8080"));
    let exposed = denied.header("access-control-expose-headers").unwrap_or("").to_string();
    assert!(exposed.contains("etag") && exposed.contains("accept-encoding"), "{exposed}");
}

async fn conflicts_carry_bounded_data_and_records_keep_none(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let blob = "x".repeat(1024 * 1024 - 64);
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "big", json!({"blob": blob}), 0)])).await;
    // 1000 stale deletes of one 1 MiB entity: a small request that used to answer
    // and store 1000 copies of the entity.
    let stale: Vec<Value> = (2..=1001).map(|n| delete(n, "notes", "big", 7)).collect();
    let reply = api.push(ALICE, "c1", Value::Array(stale.clone())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let results = reply.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == "conflict" && r["version"] == 1), "every result says the version it met");
    let with_current = results.iter().filter(|r| r.get("current").is_some()).count();
    assert!((1..=2).contains(&with_current), "{with_current} results carry the entity's data");
    assert_eq!(results[0]["current"]["data"]["blob"].as_str().map(str::len), Some(blob.len()), "the first conflict has its data");
    let body_bytes = serde_json::to_vec(&reply.body).expect("json").len();
    assert!(body_bytes <= 2 * 1024 * 1024 + 200_000, "the answer is {body_bytes} bytes");
    // The records keep the version, not the data.
    let records: usize = db.dump().await.iter().filter(|row| row.starts_with("mutation |")).map(String::len).sum();
    assert!(records < 400_000, "the push's records take {records} bytes");
    // A replay answers the same results, within the same budget.
    let replay = api.push(ALICE, "c1", Value::Array(stale)).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body, reply.body);
}

async fn pull_pages_stop_at_a_byte_budget(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let blob = "y".repeat(900 * 1024);
    for n in 0..5u64 {
        let r = api.push_ok(ALICE, "c1", json!([put(n + 1, "blobs", &format!("b{n}"), json!({"blob": blob}), 0)])).await;
        assert_eq!(r[0]["status"], "applied");
    }
    api.push_ok(ALICE, "c1", json!([put(6, "notes", "small", json!({"t": 1}), 0)])).await;
    // limit would allow all six; the 4 MiB budget stops the page after four blobs.
    let first = api.pull(ALICE, "", 1000).await;
    assert_eq!(first.status, StatusCode::OK);
    let page = first.body["changes"].as_array().expect("changes");
    assert_eq!(page.len(), 4, "a page stops before passing the byte budget");
    assert_eq!(first.body["hasMore"], true);
    let cursor = first.body["cursor"].as_str().expect("cursor");
    let (rest, _) = api.pull_all(ALICE, cursor, 1000).await;
    let ids: Vec<&str> = page.iter().chain(rest.iter()).map(|c| c["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["b0", "b1", "b2", "b3", "b4", "small"], "every change once, in order");
    // A page always holds at least one change, however large.
    let one = api.pull(ALICE, cursor, 1).await;
    assert_eq!(one.body["changes"].as_array().map(Vec::len), Some(1));
    assert_eq!(one.body["hasMore"], true);
}

async fn rotating_the_epoch_expires_every_cursor(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({}), 0)])).await;
    let (_, cursor) = api.pull_all(ALICE, "", 10).await;
    assert_eq!(api.pull(ALICE, &cursor, 10).await.status, StatusCode::OK);
    // As after restoring a backup: the operator rotates the epoch.
    let out = run_server_command(&["rotate-epoch", "--db", &db.url]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The running server sees the new epoch at once: the old cursor is refused...
    let reply = api.pull(ALICE, &cursor, 10).await;
    assert_eq!(reply.status, StatusCode::GONE, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "cursor_expired");
    // ...and pulling from the start gives everything and a cursor that works.
    let (changes, fresh) = api.pull_all(ALICE, "", 10).await;
    assert_eq!(changes.len(), 1);
    assert_ne!(fresh, cursor);
    assert_eq!(api.pull(ALICE, &fresh, 10).await.status, StatusCode::OK);
    drop(server);
    let restarted = Server::start(&db).await;
    assert_eq!(restarted.api().pull(ALICE, &fresh, 10).await.status, StatusCode::OK, "the new epoch is kept");
}

async fn purge_drops_old_records_and_expires_cursors_behind_it(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({"t": 1}), 0), put(2, "notes", "b", json!({}), 0)])).await;
    api.push_ok(BOB, "c1", json!([put(1, "notes", "kept", json!({}), 0)])).await;
    let (_, behind) = api.pull_all(ALICE, "", 10).await;
    let deleted = api.push_ok(ALICE, "c1", json!([delete(3, "notes", "a", 1)])).await;
    let rest = api.json(Method::PUT, "/v1/collections/notes/r", ALICE, &[("idempotency-key", "k1")], &json!({})).await;
    assert_eq!(rest.status, StatusCode::CREATED);
    let (_, caught_up) = api.pull_all(ALICE, &behind, 10).await;

    let out = run_server_command(&["purge", "--db", &db.url, "--retention", "0s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = db.dump().await;
    assert!(!rows.iter().any(|r| r.starts_with("entity |") && r.contains("| a |")), "the tombstone is gone: {rows:#?}");
    assert!(!rows.iter().any(|r| r.starts_with("rest |")), "Idempotency-Key outcomes are gone");
    let records: Vec<&String> = rows.iter().filter(|r| r.starts_with("mutation |")).collect();
    assert_eq!(records.len(), 2, "only each client's latest result is kept: {records:#?}");
    assert!(records.iter().any(|r| r.contains("| alice | c1 | 3 |")) && records.iter().any(|r| r.contains("| bob | c1 | 1 |")));

    // A cursor that had not delivered the purged tombstone cannot be served...
    let reply = api.pull(ALICE, &behind, 10).await;
    assert_eq!(reply.status, StatusCode::GONE, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "cursor_expired");
    // ...one that had can, and so can a pull from the start, without the tombstone.
    assert_eq!(api.pull(ALICE, &caught_up, 10).await.status, StatusCode::OK);
    let (all, _) = api.pull_all(ALICE, "", 10).await;
    let ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["b", "r"]);
    assert_eq!(api.pull_all(BOB, "", 10).await.0.len(), 1, "Bob kept his entity");
    // The latest result still answers its replay, and ids below it stay used.
    assert_eq!(api.push_ok(ALICE, "c1", json!([delete(3, "notes", "a", 1)])).await, deleted);
    let late = api.push_ok(ALICE, "c1", json!([put(2, "notes", "b", json!({}), 0)])).await;
    assert_eq!(late[0]["error"]["code"], "out_of_order");
    // An entity created again continues above the purged tombstone's version.
    let again = api.push_ok(ALICE, "c1", json!([put(4, "notes", "a", json!({"t": 2}), 0)])).await;
    assert_eq!(again[0]["status"], "applied");
    assert_eq!(again[0]["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_purges_on_its_schedule() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start_with(&db, &["--retention", "0s", "--purge-interval", "1s"]).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({}), 0)])).await;
    let (_, behind) = api.pull_all(ALICE, "", 10).await;
    api.push_ok(ALICE, "c1", json!([delete(2, "notes", "a", 1)])).await;
    // No purge command: the server's own schedule must remove the tombstone.
    let mut expired = false;
    for _ in 0..600 {
        if api.pull(ALICE, &behind, 10).await.status == StatusCode::GONE {
            expired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(expired, "the scheduled purge removed the tombstone behind the cursor");
    assert!(!db.dump().await.iter().any(|r| r.starts_with("entity |")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_log_prints_each_recorded_result_once() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start(&db).await;
    let api = server.api();
    let batch = json!([put(1, "notes", "a", json!({"n": 1}), 0), put(2, "notes", "a", json!({"n": 2}), 0)]);
    api.push_ok(ALICE, "c1", batch.clone()).await;
    // A replay (its answer lost) adds no record.
    api.push_ok(ALICE, "c1", batch).await;
    let out = run_server_command(&["push-log", "--db", &db.url]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    let summary: Vec<(u64, String, Option<u64>)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["clientId"], "c1");
            (r["mutationId"].as_u64().unwrap(), r["result"]["status"].as_str().unwrap().to_string(), r["result"]["version"].as_u64())
        })
        .collect();
    assert_eq!(summary, [(1, "applied".to_string(), Some(1)), (2, "conflict".to_string(), Some(1))]);
}

/// Deadline for something that must happen after a one-second server timeout;
/// far above it so a slow machine never fails, while a missing timeout still does.
const WELL_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

fn stalled_push(token: &str) -> String {
    format!(
        "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"clientId\":"
    )
}

/// Whether the server has answered or closed `stream` (this takes what it reads).
fn answered(stream: &tokio::net::TcpStream) -> bool {
    !matches!(stream.try_read(&mut [0; 64]), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start_with(&db, &["--header-timeout", "1s"]).await;
    let mut idle = server.connect().await;
    let mut half = server.connect().await;
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    assert!(read_until_closed(&mut half, WELL_AFTER).await.is_some(), "a connection that never finishes its headers is closed");
    assert!(read_until_closed(&mut idle, WELL_AFTER).await.is_some(), "a connection that sends nothing is closed");
    assert_eq!(server.api().send(Method::GET, "/v1/health", None, &[], None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_answers_408() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start_with(&db, &["--body-timeout", "1s"]).await;
    let mut stalled = server.connect().await;
    stalled.write_all(stalled_push(ALICE).as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut stalled, WELL_AFTER).await.expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_concurrency_limit_answer_503() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server =
        Server::start_with(&db, &["--max-requests", "1", "--body-timeout", "1h", "--request-timeout", "1h"]).await;
    let api = server.api();
    let stall = || async {
        let mut stalled = server.connect().await;
        stalled.write_all(stalled_push(ALICE).as_bytes()).await.expect("write");
        stalled
    };
    let mut stalled = stall().await;
    // The stalled upload holds the only slot once the server reads its headers,
    // which a loaded machine may take a while to do. Until then a pull takes the
    // slot, and if the stalled request arrives meanwhile it is the one refused:
    // then it is sent again.
    let deadline = tokio::time::Instant::now() + WELL_AFTER;
    let busy = loop {
        let reply = api.pull(BOB, "", 10).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            break reply;
        }
        if answered(&stalled) {
            stalled = stall().await;
        }
        assert!(tokio::time::Instant::now() < deadline, "a request beyond the limit is refused");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(busy.body["error"]["code"], "unavailable");
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Refused before it reached the endpoints, it still lists the features served.
    assert_eq!(busy.header(tideway_protocol::FEATURES_HEADER), Some("after"));
    drop(stalled);
    let deadline = tokio::time::Instant::now() + WELL_AFTER;
    while api.pull(BOB, "", 10).await.status != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the slot is free again once the stalled client leaves");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stalled_client() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let mut server =
        Server::start_with(&db, &["--shutdown-timeout", "1s", "--body-timeout", "1h", "--request-timeout", "1h"]).await;
    let mut stalled = server.connect().await;
    stalled.write_all(stalled_push(ALICE).as_bytes()).await.expect("write");
    // The request is in flight once the server answers others: make one.
    assert_eq!(server.api().send(Method::GET, "/v1/health", None, &[], None).await.status, StatusCode::OK);
    let status = server.terminate(WELL_AFTER).await.expect("the server exits within its shutdown deadline");
    assert!(status.success(), "{status:?}");
}

async fn one_user_cannot_stall_another(db: TestDb) {
    // Lock waits in the database fail fast here, so any wait of Bob's behind
    // Alice in the database would show as a 503.
    let server = Server::start_with(&db, &["--db-lock-timeout", "50ms"]).await;
    let api = server.api();
    let blob = "z".repeat(1024 * 1024 - 64);
    // Alice: eight parallel pushes of 4 MiB each, as many as the pool has connections.
    let alice: Vec<_> = (0..8u64)
        .map(|p| {
            let api = api.clone();
            let blob = blob.clone();
            tokio::spawn(async move {
                let batch: Vec<Value> =
                    (0..4u64).map(|k| put(p * 10 + k + 1, "blobs", &format!("p{p}-{k}"), json!({"blob": blob}), 0)).collect();
                api.push(ALICE, &format!("device{p}"), Value::Array(batch)).await
            })
        })
        .collect();
    // Bob, meanwhile: small pushes and pulls, each of which must get through.
    for n in 1..=5u64 {
        let r = api.push(BOB, "phone", json!([put(n, "notes", &format!("n{n}"), json!({"n": n}), 0)])).await;
        assert_eq!(r.status, StatusCode::OK, "Bob's push {n}: {}", r.body);
        assert_eq!(r.body["results"][0]["status"], "applied");
        assert_eq!(api.pull(BOB, "", 100).await.status, StatusCode::OK);
    }
    for push in alice {
        let reply = push.await.expect("alice");
        assert_eq!(reply.status, StatusCode::OK, "Alice's pushes wait their turn, they do not fail: {}", reply.body);
    }
    assert_eq!(api.pull_all(ALICE, "", 1000).await.0.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_throttled() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start_with(&db, &["--max-auth-failures", "3"]).await;
    let api = server.api();
    for _ in 0..3 {
        assert_eq!(api.pull("guess", "", 10).await.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = api.pull("another-guess", "", 10).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    assert_eq!(throttled.body["error"]["code"], "too_many_requests");
    let wait: u64 = throttled.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Even a right token waits: the throttle answers before looking at tokens.
    assert_eq!(api.pull(ALICE, "", 10).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api.send(Method::GET, "/v1/health", None, &[], None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_stay_inside_their_folder() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let base = std::env::temp_dir().join(format!("tideway-site-{}", uuid::Uuid::new_v4().simple()));
    let site = base.join("site");
    std::fs::create_dir_all(site.join("js")).expect("site dir");
    std::fs::create_dir_all(base.join("outside")).expect("outside dir");
    std::fs::write(site.join("index.html"), "<!doctype html><title>app</title>").expect("write");
    std::fs::write(site.join("sw.js"), "self.addEventListener('fetch', () => {});").expect("write");
    std::fs::write(site.join("js/app.js"), "export {};").expect("write");
    std::fs::write(site.join(".env"), "SECRET=1").expect("write");
    std::fs::write(base.join("outside/secret.txt"), "outside").expect("write");
    std::os::unix::fs::symlink(base.join("outside/secret.txt"), site.join("leak.txt")).expect("symlink");
    std::os::unix::fs::symlink(base.join("outside"), site.join("elsewhere")).expect("symlink");
    let site_arg = site.display().to_string();
    let server = Server::start_with(&db, &["--static", &site_arg]).await;
    let api = server.api();

    let index = api.send(Method::GET, "/", None, &[("origin", "http://localhost:5173")], None).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert!(index.header("content-security-policy").is_some_and(|csp| csp.contains("default-src 'self'")));
    assert!(index.header_joined("vary").contains("origin"), "the CORS Vary header stays");
    assert_eq!(api.send(Method::GET, "/index.html", None, &[], None).await.header("cache-control"), Some("no-cache"));
    assert_eq!(api.send(Method::GET, "/sw.js", None, &[], None).await.header("cache-control"), Some("no-cache"));
    let script = api.send(Method::GET, "/js/app.js", None, &[], None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.header("cache-control"), None, "other files keep the browser's usual caching");

    for path in ["/.env", "/%2eenv", "/leak.txt", "/elsewhere/secret.txt", "/missing.js", "/js/../.env"] {
        let reply = api.send(Method::GET, path, None, &[], None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["error"]["code"], "not_found", "{path}: {}", reply.body);
    }
    let post = api.send(Method::POST, "/js/app.js", None, &[], Some(b"x".to_vec())).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.body["error"]["code"], "method_not_allowed");
    let _ = std::fs::remove_dir_all(&base);
}

/// The raw bytes of a GET of `path` that accepts `encoding` ("" for none), with
/// the answer's `Content-Encoding`, `Content-Type` and `Vary`.
async fn get_encoded(api: &Api, path: &str, token: Option<&str>, encoding: &str) -> (Vec<u8>, [Option<String>; 3]) {
    let (status, headers, bytes) = api.send_raw(Method::GET, path, token, &[("accept-encoding", encoding)], None).await;
    assert_eq!(status, StatusCode::OK, "{path} accepting {encoding:?}");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    (bytes, [header("content-encoding"), header("content-type"), Some(join_header(&headers, "vary"))])
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match encoding {
        "br" => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out),
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_end(&mut out),
        other => panic!("no decoder for {other}"),
    }
    .expect("the body decodes");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_for_clients_that_accept_it() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let site = std::env::temp_dir().join(format!("tideway-compressed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&site).expect("site dir");
    let module: Vec<u8> = (0..20_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    let mut module_br = Vec::new();
    brotli::BrotliCompress(&mut &module[..], &mut module_br, &Default::default()).expect("compress");
    std::fs::write(site.join("app.wasm"), &module).expect("write");
    std::fs::write(site.join("app.wasm.br"), &module_br).expect("write");
    let script = "export const notes = [];\n".repeat(100);
    std::fs::write(site.join("app.js"), &script).expect("write");
    let site_arg = site.display().to_string();
    let server = Server::start_with(&db, &["--static", &site_arg]).await;
    let api = server.api();
    let notes: Vec<Value> =
        (1..=50).map(|i| put(i, "notes", &format!("n{i}"), json!({"title": format!("note {i}"), "body": "words ".repeat(40)}), 0)).collect();
    api.push_ok(ALICE, "c1", Value::Array(notes)).await;

    // A pull page: the same JSON whichever way it travels, far smaller compressed.
    let path = "/v1/pull?limit=100";
    let (plain, [encoding, _, _]) = get_encoded(&api, path, Some(ALICE), "").await;
    assert_eq!(encoding, None, "nothing is compressed for a client that accepts no encoding");
    let page: Value = serde_json::from_slice(&plain).expect("a JSON page");
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(50));
    for encoding in ["br", "gzip"] {
        let (bytes, [used, _, vary]) = get_encoded(&api, path, Some(ALICE), encoding).await;
        assert_eq!(used.as_deref(), Some(encoding));
        assert!(vary.is_some_and(|v| v.contains("accept-encoding")), "a cache must tell the encodings apart");
        assert!(bytes.len() * 5 < plain.len(), "{encoding}: {} bytes of {}", bytes.len(), plain.len());
        let decoded: Value = serde_json::from_slice(&decode(encoding, &bytes)).expect("a JSON page");
        assert_eq!(decoded["changes"], page["changes"], "{encoding}");
    }
    // A browser, which accepts both, gets brotli.
    let (_, [used, _, _]) = get_encoded(&api, path, Some(ALICE), "gzip, deflate, br").await;
    assert_eq!(used.as_deref(), Some("br"));

    // A file with a precompressed sibling goes out as that sibling, with its own type.
    let (bytes, [used, kind, _]) = get_encoded(&api, "/app.wasm", None, "gzip, deflate, br").await;
    assert_eq!((used.as_deref(), kind.as_deref()), (Some("br"), Some("application/wasm")));
    assert_eq!(bytes, module_br, "the sibling as it is stored");
    let (bytes, [used, _, _]) = get_encoded(&api, "/app.wasm", None, "").await;
    assert_eq!((used, bytes == module), (None, true), "the file itself to a client that accepts no encoding");
    // A file without one is compressed as it is sent.
    let (bytes, [used, kind, _]) = get_encoded(&api, "/app.js", None, "gzip").await;
    assert_eq!((used.as_deref(), kind.as_deref()), (Some("gzip"), Some("text/javascript")));
    assert_eq!(decode("gzip", &bytes), script.as_bytes());

    // With --no-compression, answers go out as they are; precompressed siblings still do.
    let plain_server = Server::start_with(&db, &["--static", &site_arg, "--no-compression"]).await;
    let plain_api = plain_server.api();
    let (bytes, [used, _, vary]) = get_encoded(&plain_api, path, Some(ALICE), "gzip, deflate, br").await;
    assert_eq!((used, bytes.len()), (None, plain.len()));
    assert!(vary.is_some_and(|v| !v.contains("accept-encoding")));
    let (bytes, [used, _, _]) = get_encoded(&plain_api, "/app.js", None, "gzip, deflate, br").await;
    assert_eq!((used, bytes), (None, script.into_bytes()));
    let (bytes, [used, _, _]) = get_encoded(&plain_api, "/app.wasm", None, "gzip, deflate, br").await;
    assert_eq!((used.as_deref(), bytes), (Some("br"), module_br));
    let _ = std::fs::remove_dir_all(&site);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_may_come_gzipped() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start(&db).await;
    let api = server.api();
    let push_encoded = |api: &Api, encoding: &'static str, body: Vec<u8>| {
        let api = api.clone();
        async move {
            let headers = [("content-type", "application/json"), ("content-encoding", encoding)];
            api.send(Method::POST, "/v1/push", Some(ALICE), &headers, Some(body)).await
        }
    };
    let notes: Vec<Value> =
        (1..=50).map(|i| put(i, "notes", &format!("n{i}"), json!({"title": format!("note {i}"), "body": "words ".repeat(40)}), 0)).collect();
    let push = serde_json::to_vec(&json!({"clientId": "c1", "mutations": notes})).expect("json");

    // Every API answer says which encodings a body may come in (RFC 7694).
    let health = api.send(Method::GET, "/v1/health", None, &[], None).await;
    assert_eq!(health.header("accept-encoding"), Some("gzip"));

    // A gzipped push is taken as the plain one would be.
    let packed = gzip(&push);
    assert!(packed.len() * 5 < push.len(), "{} bytes of {}", packed.len(), push.len());
    let reply = push_encoded(&api, "gzip", packed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("accept-encoding"), Some("gzip"));
    assert!(reply.body["results"].as_array().expect("results").iter().all(|r| r["status"] == "applied"), "{}", reply.body);
    let (changes, _) = api.pull_all(ALICE, "", 100).await;
    assert_eq!(changes.len(), 50);
    assert_eq!(changes[49]["data"]["body"], json!("words ".repeat(40)));

    // A body that does not decompress is a bad request, and changes nothing.
    let mut cut = gzip(&serde_json::to_vec(&json!({"clientId": "c1", "mutations": [put(51, "notes", "n51", json!({}), 0)]})).expect("json"));
    cut.truncate(cut.len() / 2);
    let reply = push_encoded(&api, "gzip", cut).await;
    assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{}", reply.body);
    // Other encodings are refused before the body is read, naming those taken.
    let reply = push_encoded(&api, "br", push.clone()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.body["error"]["code"], "unsupported_encoding");
    assert_eq!(reply.header("accept-encoding"), Some("gzip"));
    // The body limit counts decompressed bytes: a few KB that inflate past it are too large.
    let mut bomb = b"{\"clientId\": \"c1\", \"mutations\": []".to_vec();
    bomb.resize(MAX_BODY_BYTES + 1, b' ');
    bomb.push(b'}');
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let reply = push_encoded(&api, "gzip", bomb).await;
    assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    assert_eq!(api.pull_all(ALICE, "", 100).await.0.len(), 50, "nothing else was stored");

    // With --no-compression, bodies come plain only, and answers say so.
    let plain_server = Server::start_with(&db, &["--no-compression"]).await;
    let plain_api = plain_server.api();
    let reply = push_encoded(&plain_api, "gzip", gzip(&push)).await;
    assert_eq!((reply.status, reply.body["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_encoding")));
    assert_eq!(reply.header("accept-encoding"), Some("identity"));
    let reply = push_encoded(&plain_api, "identity", push).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("accept-encoding"), Some("identity"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_do_not_echo_or_leak() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start(&db).await;
    let api = server.api();
    // A 2 MB id and a 2 MB unknown op come back as a short message, not in full.
    let huge = "x".repeat(2 * 1024 * 1024);
    for mutation in [put(1, "notes", &huge, json!({}), 0), json!({"mutationId": 1, "collection": "notes", "id": "a", "op": huge, "baseVersion": 0})] {
        let reply = api.push(ALICE, "c1", json!([mutation])).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let size = serde_json::to_vec(&reply.body).expect("json").len();
        assert!(size < 2048, "a {size}-byte error: {}", &reply.body.to_string()[..200]);
    }
    // API answers, errors included, are never cached.
    assert_eq!(api.pull(ALICE, "", 10).await.header("cache-control"), Some("no-store"));
    assert_eq!(api.pull("wrong", "", 10).await.header("cache-control"), Some("no-store"));
    assert_eq!(api.push(ALICE, "c1", json!([])).await.header("cache-control"), Some("no-store"));
    // The database file is the owner's alone.
    let path = db.url.trim_start_matches("sqlite://");
    let mode = std::fs::metadata(path).expect("database file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let wal = std::fs::metadata(format!("{path}-wal")).expect("WAL file").permissions().mode() & 0o777;
    assert_eq!(wal, 0o600, "{wal:o}");
    // An unsupported database URL is refused without printing its password.
    let out = run_server_command(&["--db", "mysql://app:hunter2@db.example:3306/tw", "--token", "0123456789abcdef0123:alice"]).await;
    assert!(!out.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("unsupported database url") && said.contains("app:***@"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

async fn data_that_would_be_stored_changed_is_refused(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let before = db.dump().await;
    let raw_push = |data: &str| {
        format!(r#"{{"clientId":"c1","mutations":[{{"mutationId":1,"collection":"notes","id":"a","op":"put","baseVersion":0,"data":{data}}}]}}"#)
            .into_bytes()
    };
    let json_ct = [("content-type", "application/json")];
    for (name, data) in [
        ("duplicate key", r#"{"title":"a","title":"b"}"#),
        ("nested duplicate key", r#"{"t":[{"x":1,"x":1}]}"#),
        ("integer beyond 2^53", r#"{"n":9007199254740993}"#),
        ("negative integer beyond 2^53", r#"{"n":-9007199254740993}"#),
        ("non-zero literal underflowing to 0", r#"{"n":1e-400}"#),
    ] {
        let reply = api.send(Method::POST, "/v1/push", Some(ALICE), &json_ct, Some(raw_push(data))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_data", "{name}: {}", reply.body);
        let rest = api.send(Method::PUT, "/v1/collections/notes/r", Some(ALICE), &json_ct, Some(data.as_bytes().to_vec())).await;
        assert_eq!(rest.status, StatusCode::BAD_REQUEST, "REST {name}: {}", rest.body);
        assert_eq!(rest.body["error"]["code"], "invalid_data", "REST {name}: {}", rest.body);
    }
    for id in [".", ".."] {
        let reply = api.push(ALICE, "c1", json!([put(1, "notes", id, json!({}), 0)])).await;
        assert_eq!(reply.body["error"]["code"], "invalid_id", "{id}: {}", reply.body);
    }
    let reply = api.push(ALICE, ".", json!([])).await;
    assert_eq!(reply.body["error"]["code"], "invalid_client_id");
    assert_eq!(db.dump().await, before, "nothing was stored");
    // What JavaScript reads exactly is kept exactly.
    let fine = r#"{"max":9007199254740991,"min":-9007199254740991,"tiny":1e-300,"zero":0e-400,"big":1e300}"#;
    let reply = api.send(Method::POST, "/v1/push", Some(ALICE), &json_ct, Some(raw_push(fine))).await;
    assert_eq!(reply.body["results"][0]["status"], "applied", "{}", reply.body);
    let got = api.send(Method::GET, "/v1/collections/notes/a", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"]["max"], json!(9007199254740991u64));
    assert_eq!(got.body["data"]["tiny"], json!(1e-300));
    assert_eq!(api.push_ok(ALICE, "c1", json!([put(2, "notes", "...", json!({}), 0)])).await[0]["status"], "applied");
}

/// `value` without its `serverUpdatedAt` fields (at any depth): the only part of
/// a result that depends on when it was written.
fn without_times(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(k, _)| *k != "serverUpdatedAt").map(|(k, v)| (k.clone(), without_times(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

/// A user's stored entities, push records and sequence row, without the user
/// and the write times.
async fn stored_state(db: &TestDb, user: &str) -> Vec<String> {
    let mut state = Vec::new();
    for row in db.dump().await {
        let mut cells: Vec<&str> = row.split(" | ").collect();
        if cells.len() < 2 || cells[1] != user {
            continue;
        }
        cells.remove(1);
        match cells[0] {
            // 'entity', collection, id, data, version, updated_at, deleted, seq
            "entity" => {
                cells.remove(5);
                state.push(cells.join(" | "));
            }
            // 'mutation', client, mutation id, result
            "mutation" => {
                let result: Value = serde_json::from_str(cells[3]).expect("record json");
                state.push(format!("{} | {}", cells[..3].join(" | "), without_times(&result)));
            }
            _ => state.push(cells.join(" | ")),
        }
    }
    state
}

/// One push applies its mutations in batched statements; each must still be
/// decided as if it had been pushed alone. Alice pushes whole batches, Bob the
/// same mutations one per push: their results and stored rows must match, and
/// the results are the expected ones. The batches hold several mutations of one
/// entity (each seeing the one before), more mutations than one statement
/// writes, replays mixed with new mutations, an id out of order, and an entity
/// created twice above a purged tombstone.
async fn a_push_decides_each_mutation_as_if_pushed_alone(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let mut first = vec![
        put(1, "notes", "a", json!({"x": 1}), 0),
        patch(2, "notes", "a", json!({"y": 2}), 1),
        put(3, "notes", "a", json!({"stale": true}), 1),
        delete(4, "notes", "a", 2),
        patch(5, "notes", "a", json!({"z": 1}), 3),
        put(6, "notes", "a", json!({"again": true}), 3),
        patch(7, "notes", "seeded", json!({"p": 1}), 1),
        delete(8, "notes", "seeded", 1),
    ];
    first.extend((0..520u64).map(|n| put(9 + n, "notes", &format!("e{n}"), json!({"n": n}), 0)));
    first.extend([
        patch(529, "notes", "e5", json!({"patched": true}), 1),
        patch(530, "notes", "e519", json!({"patched": true}), 1),
        put(531, "other", "e1", json!({"other": true}), 0),
        delete(533, "notes", "e9", 0),
    ]);
    let mut second: Vec<Value> = first[..8].to_vec();
    second.extend(first[528..531].iter().cloned());
    second.extend([
        put(532, "notes", "late", json!({}), 0),
        put(534, "notes", "a", json!({"fifth": true}), 4),
        patch(535, "notes", "a", json!({"k": 1}), 4),
        delete(536, "notes", "e0", 1),
        put(537, "notes", "e0", json!({"back": true}), 2),
    ]);
    let third = vec![put(539, "notes", "e10", json!({"new": 1}), 0), put(540, "notes", "e10", json!({"new": 2}), 3)];

    let mut batched = Vec::new();
    let mut alone = Vec::new();
    for (token, results) in [(ALICE, &mut batched), (BOB, &mut alone)] {
        api.push_ok(token, "seed", json!([put(1, "notes", "seeded", json!({"s": 1}), 0)])).await;
        for batch in [&first, &second] {
            let mut batch_results = Vec::new();
            if token == ALICE {
                batch_results = api.push_ok(token, "c1", json!(batch)).await;
            } else {
                for m in batch.iter() {
                    batch_results.extend(api.push_ok(token, "c1", json!([m])).await);
                }
            }
            results.push(batch_results);
        }
        api.push_ok(token, "c1", json!([delete(538, "notes", "e10", 1)])).await;
    }
    let out = run_server_command(&["purge", "--db", &db.url, "--retention", "0s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    batched.push(api.push_ok(ALICE, "c1", json!(third)).await);
    alone.push(Vec::new());
    for m in &third {
        alone[2].extend(api.push_ok(BOB, "c1", json!([m])).await);
    }

    for (push, (batched, alone)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(batched.len(), alone.len());
        for (batched, alone) in batched.iter().zip(alone) {
            assert_eq!(without_times(batched), without_times(alone), "push {push}: batched and one at a time differ");
        }
    }
    assert_eq!(stored_state(&db, "alice").await, stored_state(&db, "bob").await, "batched pushes stored other rows");

    // The expected results, as such.
    let [first_results, second_results, third_results] = [&batched[0], &batched[1], &batched[2]];
    let statuses = |results: &[Value]| results.iter().map(|r| r["status"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    let versions = |results: &[Value]| results.iter().map(|r| r["version"].as_u64().unwrap_or(0)).collect::<Vec<_>>();
    assert_eq!(first_results.len(), first.len());
    let head = &first_results[..8];
    assert_eq!(statuses(head), ["applied", "applied", "conflict", "applied", "rejected", "applied", "applied", "conflict"]);
    assert_eq!(versions(head), [1, 2, 2, 3, 0, 4, 2, 2]);
    assert_eq!(head[2]["current"]["data"], json!({"x": 1, "y": 2}), "a conflict carries the data of the write before it");
    assert_eq!(head[4]["error"]["code"], "not_found");
    assert_eq!(head[7]["current"]["data"], json!({"s": 1, "p": 1}));
    assert!(first_results[8..528].iter().all(|r| r["status"] == "applied" && r["version"] == 1));
    let tail = &first_results[528..];
    assert_eq!(statuses(tail), ["applied", "applied", "applied", "conflict"]);
    assert_eq!(versions(tail), [2, 2, 1, 1]);
    assert_eq!(tail[3]["current"]["data"], json!({"n": 9}));

    // Replays answer the recorded results; a conflict's current only while the entity is at that version.
    let mut replayed_stale = first_results[2].clone();
    replayed_stale.as_object_mut().expect("result").remove("current");
    assert_eq!(second_results[2], replayed_stale);
    for (replay, original) in [(0, 0), (1, 1), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 528), (9, 529), (10, 530)] {
        assert_eq!(second_results[replay], first_results[original], "replay of result {original}");
    }
    let fresh = &second_results[11..];
    assert_eq!(statuses(fresh), ["rejected", "applied", "conflict", "applied", "applied"]);
    assert_eq!(fresh[0]["error"]["code"], "out_of_order");
    assert_eq!(versions(&fresh[1..]), [5, 5, 2, 3]);
    assert_eq!(fresh[2]["current"]["data"], json!({"fifth": true}), "a conflict carries the data of the write before it");
    // Tombstones up to version 2 were purged: e10 is created again at 3, then replaced.
    assert_eq!(statuses(third_results), ["applied", "applied"]);
    assert_eq!(versions(third_results), [3, 4]);

    let get = |path: &'static str| api.send(Method::GET, path, Some(ALICE), &[], None);
    let a = get("/v1/collections/notes/a").await;
    assert_eq!((a.body["version"].clone(), a.body["data"].clone()), (json!(5), json!({"fifth": true})));
    assert_eq!(get("/v1/collections/notes/e5").await.body["data"], json!({"n": 5, "patched": true}));
    assert_eq!(get("/v1/collections/notes/e0").await.body["data"], json!({"back": true}));
    assert_eq!(get("/v1/collections/notes/e10").await.body["data"], json!({"new": 2}));
    // One sequence number per write: seed 1, first push 4 + 1 + 520 + 3, second 3, the delete 1, third 2.
    let state = stored_state(&db, "alice").await;
    let seq_row = state.iter().find(|row| row.starts_with("seq |")).expect("sequence row");
    assert!(seq_row.starts_with("seq | 535 |"), "{seq_row}");
    let (changes, _) = api.pull_all(ALICE, "", 1000).await;
    assert_eq!(changes.len(), 523, "a, seeded, e0 to e519 and other/e1, each once");
}

/// A pull that names its client leaves out the changes whose latest write was
/// that client's push (it has them from its push answers), and still moves its
/// cursor past them; everything else arrives as in any pull.
async fn a_client_pulls_what_others_wrote_and_moves_past_its_own(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let ids = |changes: &[Value]| -> Vec<String> { changes.iter().map(|c| c["id"].as_str().expect("id").to_string()).collect() };
    // Interleaved: this client's pushes, another client's, a REST write.
    api.push_ok(ALICE, "me", json!([put(1, "notes", "m1", json!({"n": 1}), 0), put(2, "notes", "m2", json!({"n": 2}), 0)])).await;
    api.push_ok(ALICE, "other", json!([put(1, "notes", "o1", json!({"n": 3}), 0)])).await;
    api.push_ok(ALICE, "me", json!([put(3, "notes", "m3", json!({"n": 4}), 0)])).await;
    let rest = api.json(Method::PUT, "/v1/collections/notes/r1", ALICE, &[], &json!({"n": 5})).await;
    assert!(rest.status.is_success(), "{}", rest.body);
    api.push_ok(ALICE, "me", json!([put(4, "notes", "m4", json!({"n": 6}), 0)])).await;
    // Last written by this client now: left out too.
    api.push_ok(ALICE, "me", json!([patch(5, "notes", "o1", json!({"mine": true}), 1)])).await;
    api.push_ok(ALICE, "me", json!([put(6, "notes", "m5", json!({"n": 7}), 0)])).await;

    let (everything, head) = api.pull_all(ALICE, "", 1000).await;
    assert_eq!(ids(&everything), ["m1", "m2", "m3", "r1", "m4", "o1", "m5"]);
    // In one page and in pages of one, from the start and from a cursor.
    for limit in [1000, 1] {
        let (changes, cursor) = api.pull_all_as(ALICE, Some("me"), "", limit).await;
        assert_eq!(ids(&changes), ["r1"], "limit {limit}");
        assert_eq!(cursor, head, "the cursor moves past the client's own changes");
    }
    let first = api.pull(ALICE, "", 2).await;
    let after_two = first.body["cursor"].as_str().expect("cursor");
    let (changes, cursor) = api.pull_all_as(ALICE, Some("me"), after_two, 1).await;
    assert_eq!((ids(&changes), cursor), (vec!["r1".to_string()], head.clone()));
    // The other client gets everything but its own change, which "me" has overwritten since.
    let (changes, _) = api.pull_all_as(ALICE, Some("other"), "", 1000).await;
    assert_eq!(ids(&changes), ["m1", "m2", "m3", "r1", "m4", "o1", "m5"]);

    // Nothing new: the cursor stays where it is.
    let reply = api.pull_as(ALICE, "me", &head, 10).await;
    assert_eq!((reply.body["changes"].clone(), reply.body["cursor"].as_str()), (json!([]), Some(head.as_str())));
    assert_eq!(reply.body["hasMore"], false);
    // Another client's change after this client's own, and a delete by it.
    api.push_ok(ALICE, "me", json!([put(7, "notes", "m6", json!({"n": 8}), 0)])).await;
    api.push_ok(ALICE, "other", json!([patch(2, "notes", "m1", json!({"theirs": true}), 1), delete(3, "notes", "m2", 1)])).await;
    api.push_ok(ALICE, "me", json!([put(8, "notes", "m7", json!({"n": 9}), 0)])).await;
    let (changes, last) = api.pull_all_as(ALICE, Some("me"), &head, 1).await;
    assert_eq!(ids(&changes), ["m1", "m2"]);
    assert_eq!((changes[0]["version"].as_u64(), changes[1]["deleted"].as_bool()), (Some(2), Some(true)));
    assert_eq!(last, api.pull_all(ALICE, &head, 1000).await.1, "both pulls end at the same head");
}

/// A push may carry the pull that follows it: the page comes in the push's
/// answer, served once the push is applied, exactly as `GET /v1/pull` would
/// serve it then. One that cannot be served as asked is left out, and the push
/// is applied as if it came alone.
async fn a_push_carries_the_pull_that_follows_it(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let push_pulling = |client: &str, mutations: Value, pull: Value| json!({"clientId": client, "mutations": mutations, "pull": pull});
    api.push_ok(ALICE, "other", json!([put(1, "notes", "o1", json!({"n": 1}), 0)])).await;

    let reply = api
        .json(Method::POST, "/v1/push", ALICE, &[], &push_pulling("me", json!([put(1, "notes", "m1", json!({"n": 2}), 0)]), json!({"limit": 1000, "clientId": "me"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!((reply.body["results"][0]["status"].as_str(), reply.body["results"][0]["version"].as_u64()), (Some("applied"), Some(1)));
    let page = &reply.body["pull"];
    let (changes, head) = api.pull_all_as(ALICE, Some("me"), "", 1000).await;
    assert_eq!((page["changes"].as_array().expect("changes"), page["cursor"].as_str()), (&changes, Some(head.as_str())));
    assert_eq!((changes.len(), changes[0]["id"].as_str(), page["hasMore"].as_bool()), (1, Some("o1"), Some(false)));

    // From a cursor, past this push's own change; in pages as a pull's limit says.
    api.push_ok(ALICE, "other", json!([put(2, "notes", "o2", json!({"n": 3}), 0), put(3, "notes", "o3", json!({"n": 4}), 0)])).await;
    let pulling = json!({"cursor": head, "limit": 1, "clientId": "me"});
    let reply = api.json(Method::POST, "/v1/push", ALICE, &[], &push_pulling("me", json!([put(2, "notes", "m2", json!({"n": 5}), 0)]), pulling.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let page = &reply.body["pull"];
    assert_eq!((page["changes"][0]["id"].as_str(), page["changes"].as_array().map(Vec::len), page["hasMore"].as_bool()), (Some("o2"), Some(1), Some(true)));
    // Sent again (a lost answer): the push is answered from its record, and the pull served as it stands.
    let again = api.json(Method::POST, "/v1/push", ALICE, &[], &push_pulling("me", json!([put(2, "notes", "m2", json!({"n": 5}), 0)]), pulling)).await;
    assert_eq!((again.body["results"].clone(), again.body["pull"].clone()), (reply.body["results"].clone(), reply.body["pull"].clone()));

    // Pulls that cannot be served as asked: the pushes are applied, the pages left out.
    for (n, pull) in [
        json!({"cursor": "not-a-cursor", "limit": 10}),
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"limit": 10, "clientId": "not an id"}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("x{n}");
        let reply = api.json(Method::POST, "/v1/push", ALICE, &[], &push_pulling("me", json!([put(3 + n as u64, "notes", &id, json!({}), 0)]), pull.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{pull}: {}", reply.body);
        assert_eq!(reply.body["results"][0]["status"], "applied", "{pull}");
        assert!(reply.body.get("pull").is_none(), "{pull}: {}", reply.body);
    }
    // And a push that carries no pull gets no page.
    let reply = api.push(ALICE, "me", json!([put(7, "notes", "m3", json!({}), 0)])).await;
    assert!(reply.body.get("pull").is_none(), "{}", reply.body);
}

/// Mutations of one entity chained with `after` apply in order, each on the
/// version the one before made, whatever their `baseVersion` says: as the same
/// mutations pushed one at a time with the versions they build on. The chain
/// may span the push's transactions, and a push sent again continues a chain
/// from the recorded results.
async fn mutations_chained_with_after_apply_in_order(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    let chained = json!([
        put(1, "notes", "a", json!({"title": "one"}), 0),
        after(patch(2, "notes", "a", json!({"done": true}), 0), 1),
        after(put(3, "notes", "a", json!({"title": "three"}), 7), 2),
        put(4, "notes", "b", json!({"b": 1}), 0),
        after(patch(5, "notes", "a", json!({"tag": "x"}), 3), 3),
    ]);
    let alone = [
        put(1, "notes", "a", json!({"title": "one"}), 0),
        patch(2, "notes", "a", json!({"done": true}), 1),
        put(3, "notes", "a", json!({"title": "three"}), 2),
        put(4, "notes", "b", json!({"b": 1}), 0),
        patch(5, "notes", "a", json!({"tag": "x"}), 3),
    ];
    let results = api.push_ok(ALICE, "c1", chained.clone()).await;
    let mut one_at_a_time = Vec::new();
    for m in &alone {
        one_at_a_time.extend(api.push_ok(BOB, "c1", json!([m])).await);
    }
    assert_eq!(without_times(&json!(results)), without_times(&json!(one_at_a_time)));
    assert_eq!(stored_state(&db, "alice").await, stored_state(&db, "bob").await);
    assert!(results.iter().all(|r| r["status"] == "applied"), "{results:?}");
    let versions: Vec<_> = results.iter().map(|r| r["version"].as_u64()).collect();
    assert_eq!(versions, [Some(1), Some(2), Some(3), Some(1), Some(4)]);
    let (changes, _) = api.pull_all(ALICE, "", 100).await;
    let a = changes.iter().find(|c| c["id"] == "a").expect("a");
    assert_eq!((a["version"].clone(), a["data"].clone()), (json!(4), json!({"title": "three", "tag": "x"})));
    assert_eq!(changes.len(), 2, "each entity once, at its latest version");

    // Sent again: the same answers, and nothing changes.
    let stored = db.dump().await;
    assert_eq!(api.push_ok(ALICE, "c1", chained).await, results);
    assert_eq!(db.dump().await, stored);
    // A push that replays the end of a chain (its head without the `after` that
    // named a mutation of the earlier push) and continues it: the new mutation
    // stands on the version the recorded one made.
    let continued = api
        .push_ok(ALICE, "c1", json!([alone[3], alone[4], after(delete(6, "notes", "a", 0), 5)]))
        .await;
    assert_eq!(continued[..2], results[3..]);
    assert_eq!((continued[2]["status"].as_str(), continued[2]["version"].as_u64()), (Some("applied"), Some(5)));
    let (changes, _) = api.pull_all(ALICE, "", 100).await;
    let a = changes.iter().find(|c| c["id"] == "a").expect("a");
    assert_eq!((a["version"].clone(), a["deleted"].clone()), (json!(5), json!(true)));

    // 1.4 MiB of data: applied in two transactions, the chain across them.
    let blob = "x".repeat(700 * 1024);
    let big = api
        .push_ok(ALICE, "c1", json!([put(7, "notes", "big", json!({"one": blob}), 0), after(put(8, "notes", "big", json!({"two": blob}), 0), 7)]))
        .await;
    let versions: Vec<_> = big.iter().map(|r| (r["status"].as_str(), r["version"].as_u64())).collect();
    assert_eq!(versions, [(Some("applied"), Some(1)), (Some("applied"), Some(2))]);
    let got = api.send(Method::GET, "/v1/collections/notes/big", Some(ALICE), &[], None).await;
    assert_eq!(got.body["data"]["two"].as_str().map(str::len), Some(blob.len()));
}

/// A chain stops at its first mutation not applied (a conflict or a
/// rejection): every later one of it is answered `conflict`, as a conflict is,
/// and changes nothing, while the other entities of the push are applied.
async fn a_chain_stops_at_its_first_mutation_not_applied(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({"s": 1}), 0)])).await;
    let batch = json!([
        // A stale head: its chain would apply on version 1 on its own.
        put(2, "notes", "a", json!({"x": 1}), 5),
        after(patch(3, "notes", "a", json!({"y": 1}), 1), 2),
        put(4, "notes", "b", json!({"b": 1}), 0),
        after(delete(5, "notes", "a", 1), 3),
        // A rejected head: a patch of an entity that does not exist.
        patch(6, "notes", "missing", json!({"z": 1}), 0),
        after(put(7, "notes", "missing", json!({"z": 1}), 0), 6),
        // A rejection inside a chain: a patch of the tombstone just written.
        put(8, "notes", "c", json!({"c": 1}), 0),
        after(delete(9, "notes", "c", 0), 8),
        after(patch(10, "notes", "c", json!({"p": 1}), 0), 9),
        after(put(11, "notes", "c", json!({"back": true}), 2), 10),
    ]);
    let results = api.push_ok(ALICE, "c1", batch.clone()).await;
    let statuses: Vec<_> = results.iter().map(|r| r["status"].as_str().unwrap_or("")).collect();
    assert_eq!(statuses, ["conflict", "conflict", "applied", "conflict", "rejected", "conflict", "applied", "applied", "rejected", "conflict"]);
    for r in [&results[0], &results[1], &results[3]] {
        assert_eq!((r["version"].as_u64(), r["current"]["data"].clone()), (Some(1), json!({"s": 1})), "{r}");
        assert!(r["serverUpdatedAt"].is_i64(), "{r}");
    }
    assert_eq!(results[4]["error"]["code"], "not_found");
    assert!(results[5].get("version").is_none() && results[5].get("current").is_none(), "{}", results[5]);
    assert_eq!(results[8]["error"]["code"], "not_found");
    assert_eq!((results[9]["version"].as_u64(), results[9]["current"]["deleted"].as_bool()), (Some(2), Some(true)));
    let get = |path: &'static str| api.send(Method::GET, path, Some(ALICE), &[], None);
    let a = get("/v1/collections/notes/a").await;
    assert_eq!((a.body["version"].clone(), a.body["data"].clone()), (json!(1), json!({"s": 1})));
    assert_eq!(get("/v1/collections/notes/missing").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get("/v1/collections/notes/c").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get("/v1/collections/notes/b").await.body["version"], 1);

    // Sent again: the same answers from the records, and nothing changes.
    let stored = db.dump().await;
    assert_eq!(api.push_ok(ALICE, "c1", batch.clone()).await, results);
    assert_eq!(db.dump().await, stored);
    // A chain continued from a recorded conflict does not apply either.
    let continued = api.push_ok(ALICE, "c1", json!([batch[0].clone(), after(put(12, "notes", "a", json!({"x": 2}), 1), 2)])).await;
    assert_eq!(continued[0], results[0]);
    assert_eq!((continued[1]["status"].as_str(), continued[1]["version"].as_u64()), (Some("conflict"), Some(1)));
    // Nor one continued from a recorded write the entity has moved past since.
    let first = put(13, "notes", "d", json!({"d": 1}), 0);
    api.push_ok(ALICE, "c1", json!([first.clone()])).await;
    api.push_ok(ALICE, "c2", json!([patch(1, "notes", "d", json!({"other": true}), 1)])).await;
    let late = api.push_ok(ALICE, "c1", json!([first, after(patch(14, "notes", "d", json!({"late": true}), 1), 13)])).await;
    assert_eq!((late[0]["status"].as_str(), late[0]["version"].as_u64()), (Some("applied"), Some(1)));
    assert_eq!((late[1]["status"].as_str(), late[1]["version"].as_u64()), (Some("conflict"), Some(2)));
    assert_eq!(late[1]["current"]["data"], json!({"d": 1, "other": true}));
}

/// An `after` must name the mutation before it for the same entity in the same
/// push: anything else refuses the whole push, naming the mutation.
async fn an_after_naming_another_mutation_refuses_the_push(db: TestDb) {
    let server = Server::start(&db).await;
    let api = server.api();
    api.push_ok(ALICE, "c1", json!([put(1, "notes", "a", json!({}), 0)])).await;
    let before = db.dump().await;
    for (name, mutations, culprit) in [
        ("another entity's", json!([put(2, "notes", "a", json!({}), 1), put(3, "notes", "b", json!({}), 0), after(put(4, "notes", "a", json!({}), 0), 3)]), 4),
        ("not the latest", json!([put(2, "notes", "a", json!({}), 1), after(put(3, "notes", "a", json!({}), 0), 2), after(put(4, "notes", "a", json!({}), 0), 2)]), 4),
        ("itself", json!([put(2, "notes", "a", json!({}), 1), after(put(3, "notes", "a", json!({}), 0), 3)]), 3),
        ("a later one", json!([put(2, "notes", "b", json!({}), 0), after(put(3, "notes", "b", json!({}), 0), 4), put(4, "notes", "b", json!({}), 0)]), 3),
        ("one of an earlier push", json!([put(2, "notes", "b", json!({}), 0), after(patch(3, "notes", "a", json!({}), 0), 1)]), 3),
    ] {
        let reply = api.push(ALICE, "c1", mutations).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_after", "{name}: {}", reply.body);
        assert_eq!(reply.body["error"]["mutationId"], culprit, "{name}: {}", reply.body);
    }
    assert_eq!(db.dump().await, before, "a refused push changed the database");
}

/// Every API answer lists the optional parts of the protocol the server
/// serves, and CORS answers expose that header, so a page's `fetch` reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_list_the_features_served() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    let server = Server::start(&db).await;
    let api = server.api();
    let origin = ("origin", "http://localhost:8080");
    let answers = [
        ("health", api.send(Method::GET, "/v1/health", None, &[origin], None).await),
        ("push", api.json(Method::POST, "/v1/push", ALICE, &[origin], &json!({"clientId": "c1", "mutations": [put(1, "notes", "a", json!({}), 0)]})).await),
        ("pull", api.send(Method::GET, "/v1/pull", Some(ALICE), &[origin], None).await),
        ("entity", api.send(Method::GET, "/v1/collections/notes/a", Some(ALICE), &[origin], None).await),
        ("refused push", api.push(ALICE, "c1", json!([put(2, "notes", "a", json!({}), 1), after(put(3, "notes", "b", json!({}), 0), 2)])).await),
        ("unauthorized", api.send(Method::GET, "/v1/pull", None, &[origin], None).await),
        ("no route", api.send(Method::GET, "/v1/nope", Some(ALICE), &[origin], None).await),
        ("refused encoding", api.send(Method::POST, "/v1/push", Some(ALICE), &[origin, ("content-type", "application/json"), ("content-encoding", "br")], Some(b"{}".to_vec())).await),
    ];
    for (name, reply) in answers {
        let features = reply.header(tideway_protocol::FEATURES_HEADER).unwrap_or("");
        assert!(tideway_protocol::serves_feature(features, tideway_protocol::FEATURE_AFTER), "{name}: {features:?}");
        assert_eq!(features, "after", "{name}");
        if name != "refused push" {
            let exposed = reply.header_joined("access-control-expose-headers").to_ascii_lowercase();
            assert!(exposed.split(',').any(|h| h.trim() == "tideway-features"), "{name}: {exposed}");
        }
    }
}
