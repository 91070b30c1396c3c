//! Harness for the HTTP tests: throwaway databases, real server processes
//! (the built `tideway-server` binary on a free port), a small JSON client and
//! a full dump of the server's tables.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{AnyConnection, Connection, Row};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The env var with the PostgreSQL server URL (any database on it; each test
/// creates its own). `scripts/test-server.sh` sets it.
pub const PG_URL_VAR: &str = "TIDEWAY_TEST_POSTGRES_URL";
/// Local opt-out: set to 1 to skip the PostgreSQL variants when no server is at hand.
pub const PG_SKIP_VAR: &str = "TIDEWAY_TEST_SKIP_POSTGRES";

pub const ALICE: &str = "token-alice";
pub const BOB: &str = "token-bob";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
}

impl TestDb {
    pub async fn new(kind: Kind) -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let name = format!("tw_{}", uuid::Uuid::new_v4().simple());
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join("tideway-server-tests");
                std::fs::create_dir_all(&dir).expect("temp dir");
                Some(TestDb { url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()), kind })
            }
            Kind::Postgres => {
                let Ok(base) = std::env::var(PG_URL_VAR) else {
                    if std::env::var(PG_SKIP_VAR).as_deref() == Ok("1") {
                        eprintln!("skipping the PostgreSQL variant: {PG_SKIP_VAR}=1");
                        return None;
                    }
                    panic!(
                        "{PG_URL_VAR} is not set: run scripts/test-server.sh, or set {PG_SKIP_VAR}=1 to skip the \
                         PostgreSQL variants locally"
                    );
                };
                let mut admin = AnyConnection::connect(&base).await.expect("connect to PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
                let _ = admin.close().await;
                let without_query = base.split('?').next().unwrap_or(&base);
                let (server, _) = without_query.rsplit_once('/').expect("URL with a database path");
                Some(TestDb { url: format!("{server}/{name}"), kind })
            }
        }
    }

    /// Every row of every table, in key order, as text.
    pub async fn dump(&self) -> Vec<String> {
        let mut conn = AnyConnection::connect(&self.url).await.expect("connect for dump");
        let queries = [
            "SELECT 'meta', key, value FROM tw_meta ORDER BY key",
            "SELECT 'seq', user_id, CAST(last_seq AS TEXT), CAST(purged_through AS TEXT) FROM tw_user_seq ORDER BY user_id",
            "SELECT 'entity', user_id, collection, id, data, CAST(version AS TEXT), CAST(updated_at AS TEXT), \
             CAST(deleted AS TEXT), CAST(seq AS TEXT) FROM tw_entities ORDER BY user_id, collection, id",
            "SELECT 'mutation', user_id, client_id, CAST(mutation_id AS TEXT), result FROM tw_mutations \
             ORDER BY user_id, client_id, mutation_id",
            "SELECT 'rest', user_id, idempotency_key, fingerprint, outcome FROM tw_rest_requests ORDER BY user_id, idempotency_key",
        ];
        let mut out = Vec::new();
        for q in queries {
            for row in sqlx::query(q).fetch_all(&mut conn).await.expect("dump query") {
                let cells: Vec<String> = (0..row.len()).map(|i| row.try_get::<String, _>(i).expect("text cell")).collect();
                out.push(cells.join(" | "));
            }
        }
        let _ = conn.close().await;
        out
    }
}

/// A SQLite database's files go with it (its write-ahead log and shared memory
/// too); each PostgreSQL database lives on the throwaway server the test script
/// removes.
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Runs `tideway-server` with `args` (a maintenance command) to its end.
pub async fn run_server_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tideway-server"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run tideway-server")
}

/// A running `tideway-server` process; killed when dropped.
pub struct Server {
    pub base: String,
    child: Child,
}

impl Server {
    pub async fn start(db: &TestDb) -> Server {
        Server::start_with(db, &[]).await
    }

    /// A server with extra command-line flags.
    pub async fn start_with(db: &TestDb, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tideway-server"))
            .args(["--listen", "127.0.0.1:0", "--db", &db.url, "--max-connections", "8"])
            .args(flags)
            .args(["--token", &format!("{ALICE}:alice"), "--token", &format!("{BOB}:bob")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tideway-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server started in time")
            .expect("read stdout")
            .expect("server printed its address");
        let base = line.rsplit(' ').next().expect("address").to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Server { base, child }
    }

    pub fn api(&self) -> Api {
        Api { base: self.base.clone(), http: reqwest::Client::new() }
    }

    /// A raw TCP connection to the server, for requests no HTTP client would send.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        let addr = self.base.trim_start_matches("http://");
        tokio::net::TcpStream::connect(addr).await.expect("connect")
    }

    /// Sends SIGTERM and waits for the process to exit (at most `deadline`).
    pub async fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().expect("running server").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill");
        assert!(sent.success());
        tokio::time::timeout(deadline, self.child.wait()).await.ok().map(|status| status.expect("wait"))
    }
}

/// Reads from `stream` until the server closes it, or `deadline` passes (`None`).
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream, deadline: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    match tokio::time::timeout(deadline, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header that may come on several lines (`Vary`), joined as one.
    pub fn header_joined(&self, name: &str) -> String {
        join_header(&self.headers, name)
    }
}

pub fn join_header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ")
}

impl Api {
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        let (status, headers, bytes) = self.send_raw(method, path, token, headers, body).await;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())) };
        Reply { status, headers, body }
    }

    /// As `send`, with the body as the bytes that came (not decoded, not parsed).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.expect("body read").to_vec())
    }

    pub async fn json(&self, method: Method, path: &str, token: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(method, path, Some(token), &all, Some(serde_json::to_vec(body).expect("json"))).await
    }

    pub async fn push(&self, token: &str, client_id: &str, mutations: Value) -> Reply {
        self.json(Method::POST, "/v1/push", token, &[], &serde_json::json!({"clientId": client_id, "mutations": mutations})).await
    }

    /// Pushes and answers the results, asserting a 200.
    pub async fn push_ok(&self, token: &str, client_id: &str, mutations: Value) -> Vec<Value> {
        let reply = self.push(token, client_id, mutations).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["results"].as_array().expect("results").clone()
    }

    pub async fn pull(&self, token: &str, cursor: &str, limit: usize) -> Reply {
        self.send(Method::GET, &format!("/v1/pull?cursor={cursor}&limit={limit}"), Some(token), &[], None).await
    }

    /// A pull by client `client_id`, which leaves out that client's own pushes.
    pub async fn pull_as(&self, token: &str, client_id: &str, cursor: &str, limit: usize) -> Reply {
        let path = format!("/v1/pull?cursor={cursor}&limit={limit}&clientId={client_id}");
        self.send(Method::GET, &path, Some(token), &[], None).await
    }

    /// Pulls every page from `cursor` on; answers the changes and the last cursor.
    pub async fn pull_all(&self, token: &str, cursor: &str, limit: usize) -> (Vec<Value>, String) {
        self.pull_all_as(token, None, cursor, limit).await
    }

    /// [`Api::pull_all`], as client `client_id` when given.
    pub async fn pull_all_as(&self, token: &str, client_id: Option<&str>, cursor: &str, limit: usize) -> (Vec<Value>, String) {
        let mut cursor = cursor.to_string();
        let mut changes = Vec::new();
        loop {
            let reply = match client_id {
                Some(client_id) => self.pull_as(token, client_id, &cursor, limit).await,
                None => self.pull(token, &cursor, limit).await,
            };
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            changes.extend(reply.body["changes"].as_array().expect("changes").iter().cloned());
            cursor = reply.body["cursor"].as_str().expect("cursor").to_string();
            if reply.body["hasMore"] == Value::Bool(false) {
                return (changes, cursor);
            }
        }
    }
}

pub fn put(mutation_id: u64, collection: &str, id: &str, data: Value, base_version: u64) -> Value {
    serde_json::json!({"mutationId": mutation_id, "collection": collection, "id": id, "op": "put", "data": data, "baseVersion": base_version})
}

pub fn patch(mutation_id: u64, collection: &str, id: &str, data: Value, base_version: u64) -> Value {
    serde_json::json!({"mutationId": mutation_id, "collection": collection, "id": id, "op": "patch", "data": data, "baseVersion": base_version})
}

pub fn delete(mutation_id: u64, collection: &str, id: &str, base_version: u64) -> Value {
    serde_json::json!({"mutationId": mutation_id, "collection": collection, "id": id, "op": "delete", "baseVersion": base_version})
}

/// `mutation` built on mutation `after`, the one before it for the same entity in the same push.
pub fn after(mut mutation: Value, after: u64) -> Value {
    mutation["after"] = Value::from(after);
    mutation
}
