//! Storage of entities, the change sequence and idempotency records, on SQLite or
//! PostgreSQL through one set of portable SQL statements.
//!
//! Every write runs in one transaction that first takes the writing user's row in
//! `tw_user_seq` (an upsert, so it locks the row in PostgreSQL and takes SQLite's
//! write lock). That serializes a user's writers, so change sequence numbers are
//! handed out and committed in the same order: a reader's snapshot always holds a
//! gap-free prefix of the user's sequence, and `seq > cursor` never skips a row
//! that commits late. Nothing lives in process memory, so any number of server
//! processes may share one PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use tideway_protocol::{
    codes, data_size, decide, Decision, ErrorDetail, MutationResult, Op, PushMutation, PushStatus, ServerEntity,
    standing_version, MAX_CONFLICT_CURRENT_BYTES, MAX_PULL_PAGE_BYTES,
};

use crate::gates::{WriteGates, WriterSlot};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The URL with any password masked.
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Errors worth retrying: the database is busy, locked or unreachable.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
            StoreError::Db(sqlx::Error::Database(e)) => {
                // SQLite: BUSY (5), LOCKED (6) and their extended codes. PostgreSQL:
                // serialization failure, deadlock, lock timeout, shutdown.
                let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
                let sqlite_busy = code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
                // 57014: canceled by statement_timeout.
                sqlite_busy || matches!(code.as_str(), "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P03")
            }
            _ => false,
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The most bytes of mutation data one write transaction applies: a larger push
/// is applied in several transactions, in order, so that no push holds the
/// write lock (SQLite's, or a user's row) for long.
pub const MAX_TRANSACTION_BYTES: usize = 1024 * 1024;

/// How the store uses its database.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// The longest wait for a lock: SQLite's busy timeout, PostgreSQL's
    /// `lock_timeout`. Past it the request answers 503 and the client retries.
    pub lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout` (SQLite statements are bounded by the
    /// request timeout only).
    pub statement_timeout: Duration,
}

impl StoreOptions {
    /// For maintenance commands: one connection, generous waits.
    pub fn maintenance() -> StoreOptions {
        StoreOptions { max_connections: 1, lock_timeout: Duration::from_secs(30), statement_timeout: Duration::ZERO }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The tables. Portable SQL: TEXT and BIGINT only (booleans as 0/1), so one
/// statement set serves both databases.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS tw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    // One row per user: the last change sequence number handed out (and the lock
    // that serializes the user's writers), the sequence up to which tombstones
    // were purged (cursors below it answer 410), and the highest version a purged
    // tombstone had (an entity created again starts above it, so that clients
    // holding the tombstone take the new entity as newer).
    "CREATE TABLE IF NOT EXISTS tw_user_seq (user_id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL, \
     purged_through BIGINT NOT NULL DEFAULT 0, purged_version BIGINT NOT NULL DEFAULT 0)",
    // The latest state of each entity, tombstones included; `seq` is the change
    // sequence number of its latest change, so pull is a range scan on (user_id, seq).
    // `writer` is the client whose push made the latest change (NULL for a REST
    // write): its own pulls leave the change out.
    "CREATE TABLE IF NOT EXISTS tw_entities (user_id TEXT NOT NULL, collection TEXT NOT NULL, \
     id TEXT NOT NULL, data TEXT NOT NULL, version BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
     deleted BIGINT NOT NULL, seq BIGINT NOT NULL, writer TEXT, PRIMARY KEY (user_id, collection, id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS tw_entities_by_seq ON tw_entities (user_id, seq)",
    // The result of every mutation a client pushed, written in the same transaction
    // as its effect: a replay answers from here and changes nothing.
    // `created_at` (ms) lets `purge` drop records past the retention period.
    "CREATE TABLE IF NOT EXISTS tw_mutations (user_id TEXT NOT NULL, client_id TEXT NOT NULL, \
     mutation_id BIGINT NOT NULL, result TEXT NOT NULL, created_at BIGINT NOT NULL DEFAULT 0, \
     PRIMARY KEY (user_id, client_id, mutation_id))",
    // The outcome of every REST write sent with an Idempotency-Key.
    "CREATE TABLE IF NOT EXISTS tw_rest_requests (user_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, \
     fingerprint TEXT NOT NULL, outcome TEXT NOT NULL, created_at BIGINT NOT NULL DEFAULT 0, \
     PRIMARY KEY (user_id, idempotency_key))",
];

/// Columns added after the first release, for databases created before them:
/// (table, column, definition). Rows from before count as created at time 0, so
/// the first purge treats them as old.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("tw_user_seq", "purged_version", "BIGINT NOT NULL DEFAULT 0"),
    ("tw_mutations", "created_at", "BIGINT NOT NULL DEFAULT 0"),
    ("tw_rest_requests", "created_at", "BIGINT NOT NULL DEFAULT 0"),
    ("tw_entities", "writer", "TEXT"),
];

/// Takes the user's lock row and reads the last sequence number handed out and
/// what was purged. The no-op update is what locks an existing row in PostgreSQL.
const LOCK_USER: &str = "INSERT INTO tw_user_seq (user_id, last_seq) VALUES ($1, 0) \
     ON CONFLICT (user_id) DO UPDATE SET last_seq = tw_user_seq.last_seq \
     RETURNING last_seq, purged_through, purged_version";

const ENTITY_COLUMNS: &str = "collection, id, data, version, updated_at, deleted, seq";

/// The entity without its data (read as `{}`): all the apply rule needs unless
/// a patch applies.
const HEAD_COLUMNS: &str = "collection, id, CAST('{}' AS TEXT), version, updated_at, deleted, seq";

/// Values in one `IN (…)` list, and rows in one multi-row statement (at most
/// 6 parameters a row): bounded so that every statement stays far below both
/// databases' parameter limits.
const IDS_PER_STATEMENT: usize = 500;
const ROWS_PER_STATEMENT: usize = 100;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    gates: Arc<WriteGates>,
}

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    pub push_records: u64,
    pub rest_records: u64,
    pub tombstones: u64,
}

/// One recorded push result, as `push-log` prints it: which client's mutation
/// it answered and what the server did (`result`: status, version, remoteId).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushRecord {
    pub user: String,
    pub client_id: String,
    pub mutation_id: i64,
    pub result: MutationResult,
}

/// One page of `pull`, or why the cursor cannot be served.
pub enum PullOutcome {
    Page { changes: Vec<ServerEntity>, last_seq: i64, has_more: bool },
    Expired(String),
}

/// What a REST write asks for.
pub enum RestAction {
    Put(Map<String, Value>),
    Delete,
}

/// `If-Match` as the request sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Absent,
    Any,
    /// The versions named by the entity tags; tags this server never issues match nothing.
    Versions(Vec<u64>),
}

/// The decided outcome of a REST write, stored under its Idempotency-Key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "entity", rename_all = "snake_case")]
pub enum RestOutcome {
    Created(ServerEntity),
    Replaced(ServerEntity),
    Deleted(ServerEntity),
    NotFound,
    Conflict(ServerEntity),
    PreconditionFailed(Option<ServerEntity>),
    /// The key was used before for a different request (never stored).
    KeyReused,
}

/// `url` with the password of its `user:password@` part, if any, masked.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Creates the SQLite file of `url` readable and writable by its owner only, if it
/// does not exist yet; SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_sqlite_file(url: &str) -> Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: it chose the mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(sqlx::Error::Io(e))),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Connects, creates the schema if needed and reads the database's epoch.
    /// `sqlite://PATH` creates the file if it is missing.
    pub async fn open(url: &str, settings: StoreOptions) -> Result<Store> {
        let max_connections = settings.max_connections.max(1);
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") {
                url.to_string()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            create_private_sqlite_file(&url)?;
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let mut options = AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            if url.contains(":memory:") {
                // Each connection to :memory: is its own database: keep exactly one, forever.
                options = options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            }
            let busy_timeout = format!("PRAGMA busy_timeout = {}", settings.lock_timeout.as_millis());
            options = options.after_connect(move |conn, _| {
                let busy_timeout = busy_timeout.clone();
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; the busy timeout makes
                    // writers of other processes queue for the lock instead of failing at
                    // once. FULL syncs the log at every commit: a push answered 200
                    // survives a power cut (NORMAL may lose the last commits, which
                    // clients already dropped).
                    for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", busy_timeout.as_str()] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        } else {
            // Bound every wait in the database, so a stuck transaction turns into 503s
            // that clients retry rather than a pool of connections waiting for ever.
            let settings_sql = [
                format!("SET lock_timeout = {}", settings.lock_timeout.as_millis()),
                format!("SET statement_timeout = {}", settings.statement_timeout.as_millis()),
            ];
            options = options.after_connect(move |conn, _| {
                let settings_sql = settings_sql.clone();
                Box::pin(async move {
                    for statement in &settings_sql {
                        sqlx::query(statement).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        // SQLite has one writer at a time: its writers queue in order in this
        // process. On PostgreSQL writers may use three quarters of the pool, so
        // reads always have connections left.
        let writer_connections = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => (max_connections - max_connections / 4) as usize,
        };
        let pool = options.connect(&url).await?;
        migrate(&pool, backend).await?;
        Ok(Store { pool, backend, gates: WriteGates::new(writer_connections) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database's epoch: a random id minted with its schema, and minted again
    /// by [`Store::rotate_epoch`]. Cursors carry it, so a cursor from another
    /// database, or from before a restore, answers 410 instead of silently
    /// skipping changes. Read on every pull rather than kept in memory, so a
    /// rotation reaches every running process at once.
    pub async fn epoch(&self) -> Result<String> {
        Ok(sqlx::query_scalar("SELECT value FROM tw_meta WHERE key = 'epoch'").fetch_one(&self.pool).await?)
    }

    /// Gives the database a new epoch, so every cursor issued before answers 410
    /// and its client pulls again from the start. Run it after restoring a
    /// backup: the restored sequence numbers will be handed out again, and
    /// clients holding cursors from after the backup would skip those changes.
    pub async fn rotate_epoch(&self) -> Result<String> {
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query("UPDATE tw_meta SET value = $1 WHERE key = 'epoch'").bind(&epoch).execute(&self.pool).await?;
        Ok(epoch)
    }

    /// Every recorded push result, in (user, client, mutation id) order: the
    /// evidence that each applied mutation was applied once, under one record.
    pub async fn push_records(&self) -> Result<Vec<PushRecord>> {
        let rows = sqlx::query(
            "SELECT user_id, client_id, mutation_id, result FROM tw_mutations ORDER BY user_id, client_id, mutation_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let result: String = row.try_get(3)?;
                Ok(PushRecord {
                    user: row.try_get(0)?,
                    client_id: row.try_get(1)?,
                    mutation_id: row.try_get(2)?,
                    result: serde_json::from_str(&result).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Begins a write transaction of `user`, whose entity writes are the push of
    /// `writer` (`None`: not a push); the caller holds the user's turn.
    async fn begin_write(&self, user: &str, writer: Option<&str>) -> Result<UserWrite> {
        let slot = self.gates.writer_slot().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(LOCK_USER).bind(user).fetch_one(&mut *tx).await?;
        let last_seq: i64 = row.try_get(0)?;
        Ok(UserWrite {
            tx,
            user: user.to_string(),
            writer: writer.map(str::to_string),
            start_seq: last_seq,
            last_seq,
            purged_through: row.try_get(1)?,
            purged_version: row.try_get(2)?,
            now: now_ms(),
            heads: Heads::default(),
            queued_writes: Vec::new(),
            queued_bytes: 0,
            queued_records: Vec::new(),
            _slot: slot,
        })
    }

    /// Removes what is older than `retention`: push results (except each
    /// client's latest, which tells later pushes which ids were already used),
    /// Idempotency-Key outcomes, and tombstones. A user's purged tombstones raise
    /// their `purged_through`, so cursors that had not yet delivered them answer
    /// 410 and their clients pull again from the start.
    pub async fn purge(&self, retention: Duration) -> Result<PurgeReport> {
        let cutoff = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let push_records = sqlx::query(
            "DELETE FROM tw_mutations WHERE created_at <= $1 AND mutation_id < (SELECT MAX(m.mutation_id) \
             FROM tw_mutations m WHERE m.user_id = tw_mutations.user_id AND m.client_id = tw_mutations.client_id)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let rest_records = sqlx::query("DELETE FROM tw_rest_requests WHERE created_at <= $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let mut report = PurgeReport { push_records, rest_records, tombstones: 0 };
        let users: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT user_id FROM tw_entities WHERE deleted = 1 AND updated_at <= $1")
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?;
        for user in users {
            // Under the user's lock, so no writer revives a tombstone half way.
            let _turn = self.gates.user_turn(&user).await;
            let mut w = self.begin_write(&user, None).await?;
            let row = sqlx::query(
                "SELECT MAX(seq), MAX(version) FROM tw_entities WHERE user_id = $1 AND deleted = 1 AND updated_at <= $2",
            )
            .bind(&user)
            .bind(cutoff)
            .fetch_one(&mut *w.tx)
            .await?;
            let (Some(through), Some(version)) = (row.try_get::<Option<i64>, _>(0)?, row.try_get::<Option<i64>, _>(1)?) else {
                continue;
            };
            sqlx::query("UPDATE tw_user_seq SET purged_through = $2, purged_version = $3 WHERE user_id = $1")
                .bind(&user)
                .bind(through.max(w.purged_through))
                .bind(version.max(w.purged_version))
                .execute(&mut *w.tx)
                .await?;
            report.tombstones += sqlx::query("DELETE FROM tw_entities WHERE user_id = $1 AND deleted = 1 AND updated_at <= $2")
                .bind(&user)
                .bind(cutoff)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            w.commit().await?;
        }
        Ok(report)
    }

    /// Applies a validated batch in mutationId order and answers one result per
    /// mutation; a mutation with an `after` applies only if the one it names
    /// did, on the version that one made. Each mutation is applied in the same
    /// transaction as its idempotency record; a batch whose data passes
    /// [`MAX_TRANSACTION_BYTES`] is applied in several transactions, one after
    /// the other.
    pub async fn push(&self, user: &str, client_id: &str, mutations: &[PushMutation]) -> Result<Vec<MutationResult>> {
        // A user's pushes queue here, so parallel pushes of one user hold one
        // database connection between them, not one each.
        let _turn = self.gates.user_turn(user).await;
        let mut budget = CurrentBudget { remaining: MAX_CONFLICT_CURRENT_BYTES, exhausted: false };
        let mut results = Vec::with_capacity(mutations.len());
        for run in transaction_runs(mutations) {
            self.push_run(user, client_id, run, &mut budget, &mut results).await?;
        }
        Ok(results)
    }

    async fn push_run(
        &self,
        user: &str,
        client_id: &str,
        mutations: &[PushMutation],
        budget: &mut CurrentBudget,
        results: &mut Vec<MutationResult>,
    ) -> Result<()> {
        let mut w = self.begin_write(user, Some(client_id)).await?;
        let mut highest: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(mutation_id), 0) FROM tw_mutations WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user)
        .bind(client_id)
        .fetch_one(&mut *w.tx)
        .await?;
        // Only ids at or below the highest processed can have a record: look up
        // exactly those, never every record in the span of the batch's ids.
        let seen: Vec<i64> = mutations.iter().map(|m| m.mutation_id as i64).filter(|id| *id <= highest).collect();
        let recorded = w.recorded_results(client_id, &seen).await?;
        // Only mutations above the highest id can apply: read the heads of their
        // entities in a few statements rather than one per mutation.
        let applicable = mutations.iter().filter(|m| m.mutation_id as i64 > highest);
        w.load_heads(applicable.map(|m| (m.collection.as_str(), m.id.as_str()))).await?;
        for m in mutations {
            let id = m.mutation_id as i64;
            let mut result = match recorded.get(&id) {
                Some(stored) => {
                    let mut result: MutationResult =
                        serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    // Records written by older versions of this server may hold the data.
                    result.current = None;
                    result
                }
                None => {
                    let result = if id <= highest {
                        rejected(m.mutation_id, codes::OUT_OF_ORDER, format!(
                            "mutationId {} is not above {highest}, the highest this client already pushed; \
                             mutations of a client must arrive in increasing order",
                            m.mutation_id
                        ))
                    } else {
                        // A mutation built on an earlier one of this push (its `after`)
                        // stands on the version that one made, applied now or before
                        // (a replay), and on nothing if that one did not apply.
                        w.apply(m, standing_version(m, results)).await?
                    };
                    // The record keeps the version a conflict met, never the entity's
                    // data: a replay reads the data again (see attach_current).
                    w.record(id, &result).await?;
                    highest = highest.max(id);
                    result
                }
            };
            if result.status == PushStatus::Conflict {
                w.attach_current(&mut result, m, budget).await?;
            }
            results.push(result);
        }
        w.commit().await
    }

    /// The user's changes after sequence number `after`, oldest first, leaving
    /// out those whose latest write was a push of `skip_writer`.
    pub async fn pull(&self, user: &str, after: i64, limit: usize, skip_writer: Option<&str>) -> Result<PullOutcome> {
        // The changes a client pushed itself are in its push answers already; its
        // cursor still moves past them. Every change numbered up to the head read
        // here has committed, so the page below sees all of them.
        let head = match skip_writer {
            Some(_) => self.last_seq(user).await?,
            None => after,
        };
        // The filter on the writer, its parameter numbered `n`.
        let others = |n: usize| match skip_writer {
            Some(_) => format!(" AND (writer IS NULL OR writer <> ${n})"),
            None => String::new(),
        };
        // First the page's extent, from sequence numbers and sizes alone, in the
        // database: the data of rows beyond the byte budget, and of the row that
        // tells whether there is more, is never read. octet_length can answer from
        // a value's header without reading its content. The page is the longest
        // prefix of the next `limit` rows within the budget, and at least one row.
        let extent_sql = format!(
            "SELECT CAST(MAX(CASE WHEN n <= $4 AND (n = 1 OR running <= $5) THEN seq END) AS BIGINT), \
                    CAST(SUM(CASE WHEN n <= $4 AND (n = 1 OR running <= $5) THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(COUNT(*) AS BIGINT) \
             FROM (SELECT seq, SUM(size) OVER (ORDER BY seq) AS running, ROW_NUMBER() OVER (ORDER BY seq) AS n \
                   FROM (SELECT seq, octet_length(data) AS size FROM tw_entities \
                         WHERE user_id = $1 AND seq > $2{} ORDER BY seq LIMIT $3) AS next_rows) AS page",
            others(6)
        );
        let mut extent = sqlx::query(&extent_sql)
            .bind(user)
            .bind(after)
            .bind(limit as i64 + 1)
            .bind(limit as i64)
            .bind(MAX_PULL_PAGE_BYTES as i64);
        if let Some(writer) = skip_writer {
            extent = extent.bind(writer);
        }
        let extent = extent.fetch_one(&self.pool).await?;
        let taken = extent.try_get::<Option<i64>, _>(1)?.unwrap_or(0);
        let has_more = extent.try_get::<i64, _>(2)? > taken;
        let mut page_end: i64 = extent.try_get::<Option<i64>, _>(0)?.unwrap_or(after);
        if !has_more {
            // Nothing else for this client up to the head: skip its own changes there.
            page_end = page_end.max(head);
        }
        // A row of the range that a writer moved meanwhile now has a sequence number
        // above every existing one, so the next page delivers it: nothing is skipped.
        let rows = if taken == 0 {
            Vec::new()
        } else {
            let rows_sql = format!(
                "SELECT {ENTITY_COLUMNS} FROM tw_entities WHERE user_id = $1 AND seq > $2 AND seq <= $3{} ORDER BY seq",
                others(4)
            );
            let mut rows = sqlx::query(&rows_sql).bind(user).bind(after).bind(page_end);
            if let Some(writer) = skip_writer {
                rows = rows.bind(writer);
            }
            rows.fetch_all(&self.pool).await?
        };
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            changes.push(entity_from_row(row)?.0);
        }
        let last = page_end;
        // Read after the page: a purge commits its tombstone deletions together with
        // the raised `purged_through`, so a page that missed a purged tombstone is
        // always followed by a read that sees the purge.
        let row = sqlx::query("SELECT last_seq, purged_through FROM tw_user_seq WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        let (last_seq, purged_through) = match row {
            Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?),
            None => (0, 0),
        };
        if after > last_seq {
            return Ok(PullOutcome::Expired(
                "the cursor is ahead of this server's history (was the database restored?); pull again from the start".into(),
            ));
        }
        if after > 0 && after < purged_through {
            return Ok(PullOutcome::Expired(
                "deletions after this cursor were purged; pull again from the start".into(),
            ));
        }
        Ok(PullOutcome::Page { changes, last_seq: last, has_more })
    }

    /// The last change sequence number handed out to the user.
    async fn last_seq(&self, user: &str) -> Result<i64> {
        let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM tw_user_seq WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        Ok(last.unwrap_or(0))
    }

    /// A live entity of the user (tombstones count as absent).
    pub async fn get(&self, user: &str, collection: &str, id: &str) -> Result<Option<ServerEntity>> {
        let row = sqlx::query(&format!(
            "SELECT {ENTITY_COLUMNS} FROM tw_entities WHERE user_id = $1 AND collection = $2 AND id = $3"
        ))
        .bind(user)
        .bind(collection)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(entity_from_row(&row)?.0).filter(|e| !e.deleted)),
            None => Ok(None),
        }
    }

    /// A REST write: decided under the user's lock, and recorded under the
    /// Idempotency-Key (with the request's fingerprint) in the same transaction.
    /// Answers the outcome and whether it is a replay.
    pub async fn rest_write(
        &self,
        user: &str,
        collection: &str,
        id: &str,
        action: RestAction,
        if_match: &IfMatch,
        idempotency: Option<(&str, &str)>,
    ) -> Result<(RestOutcome, bool)> {
        let _turn = self.gates.user_turn(user).await;
        let mut w = self.begin_write(user, None).await?;
        if let Some((key, fingerprint)) = idempotency {
            let row = sqlx::query("SELECT fingerprint, outcome FROM tw_rest_requests WHERE user_id = $1 AND idempotency_key = $2")
                .bind(user)
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await?;
            if let Some(row) = row {
                let stored_fingerprint: String = row.try_get(0)?;
                if stored_fingerprint != fingerprint {
                    return Ok((RestOutcome::KeyReused, false));
                }
                let outcome: String = row.try_get(1)?;
                let outcome = serde_json::from_str(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                return Ok((outcome, true));
            }
        }
        let current = w.load(collection, id).await?;
        let live = current.as_ref().filter(|c| !c.deleted);
        let matches = |entity: &ServerEntity| match if_match {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&entity.version),
            IfMatch::Absent => false,
        };
        let outcome = match (action, live) {
            (RestAction::Put(data), Some(entity)) if matches(entity) => {
                RestOutcome::Replaced(w.write(current.as_ref(), collection, id, data, false).await?)
            }
            (RestAction::Put(_), Some(entity)) if *if_match == IfMatch::Absent => RestOutcome::Conflict(entity.clone()),
            (RestAction::Put(_), Some(entity)) => RestOutcome::PreconditionFailed(Some(entity.clone())),
            (RestAction::Put(data), None) if *if_match == IfMatch::Absent => {
                RestOutcome::Created(w.write(current.as_ref(), collection, id, data, false).await?)
            }
            // If-Match only ever matches an entity that exists.
            (RestAction::Put(_), None) => RestOutcome::PreconditionFailed(None),
            (RestAction::Delete, Some(entity)) if *if_match == IfMatch::Absent || matches(entity) => {
                RestOutcome::Deleted(w.write(current.as_ref(), collection, id, Map::new(), true).await?)
            }
            (RestAction::Delete, Some(entity)) => RestOutcome::PreconditionFailed(Some(entity.clone())),
            (RestAction::Delete, None) => RestOutcome::NotFound,
        };
        if let Some((key, fingerprint)) = idempotency {
            let stored = serde_json::to_string(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO tw_rest_requests (user_id, idempotency_key, fingerprint, outcome, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
                .bind(user)
                .bind(key)
                .bind(fingerprint)
                .bind(stored)
                .bind(w.now)
                .execute(&mut *w.tx)
                .await?;
        }
        w.commit().await?;
        Ok((outcome, false))
    }
}

/// Creates the tables if needed, and the database's epoch. On PostgreSQL an
/// advisory lock keeps two processes starting at once from racing on DDL.
async fn migrate(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_lock(7411001)").execute(&mut *conn).await?;
    }
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    for (table, column, definition) in ADDED_COLUMNS {
        let present = sqlx::query(&format!("SELECT {column} FROM {table} WHERE 1 = 0")).execute(&mut *conn).await.is_ok();
        if !present {
            sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}")).execute(&mut *conn).await?;
        }
    }
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query("INSERT INTO tw_meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING")
        .bind(fresh)
        .execute(&mut *conn)
        .await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_unlock(7411001)").execute(&mut *conn).await?;
    }
    Ok(())
}

fn entity_from_row(row: &AnyRow) -> Result<(ServerEntity, i64)> {
    let data: String = row.try_get(2)?;
    let data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let entity = ServerEntity {
        collection: row.try_get(0)?,
        id: row.try_get(1)?,
        data,
        version: row.try_get::<i64, _>(3)? as u64,
        server_updated_at: row.try_get(4)?,
        deleted: row.try_get::<i64, _>(5)? != 0,
    };
    Ok((entity, row.try_get(6)?))
}

fn rejected(mutation_id: u64, code: &str, message: String) -> MutationResult {
    MutationResult {
        mutation_id,
        status: PushStatus::Rejected,
        version: None,
        server_updated_at: None,
        remote_id: None,
        current: None,
        error: Some(ErrorDetail { code: code.to_string(), message }),
    }
}

/// Splits a batch into runs of at most [`MAX_TRANSACTION_BYTES`] of data (at
/// least one mutation each), in order.
fn transaction_runs(mutations: &[PushMutation]) -> Vec<&[PushMutation]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in mutations.iter().enumerate() {
        let size = m.data.as_ref().map_or(0, data_size);
        if i > start && bytes + size > MAX_TRANSACTION_BYTES {
            runs.push(&mutations[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < mutations.len() {
        runs.push(&mutations[start..]);
    }
    runs
}

/// How many bytes of `current` data a push response may still carry.
struct CurrentBudget {
    remaining: usize,
    /// Set once a `current` did not fit: later conflicts go without, so the
    /// server never reads more than the budget plus one entity's data.
    exhausted: bool,
}

/// A write transaction holding one user's lock.
///
/// Entity writes and push records are queued and sent in multi-row statements
/// (at most [`ROWS_PER_STATEMENT`] rows each, and at the latest on commit),
/// rather than one statement each: per-row round trips through the database
/// driver were most of a push's time. The transaction keeps the head of every
/// entity it has read or written, so each decision sees the ones before it
/// exactly as if every write had been sent at once.
struct UserWrite {
    tx: Transaction<'static, Any>,
    user: String,
    /// The client whose push this is, written with each entity it changes and
    /// each push record.
    writer: Option<String>,
    start_seq: i64,
    last_seq: i64,
    purged_through: i64,
    /// The highest version of a purged tombstone of this user.
    purged_version: i64,
    now: i64,
    heads: Heads,
    /// Entity writes not yet sent, in order, at most one per entity.
    queued_writes: Vec<QueuedWrite>,
    /// The serialized data of `queued_writes`.
    queued_bytes: usize,
    queued_records: Vec<QueuedRecord>,
    /// Released when the transaction ends, by commit or drop.
    _slot: Option<WriterSlot>,
}

/// What a write transaction knows of the entities it has read or written, by
/// collection and id: each one's head as it stands in the transaction, its
/// own queued writes included.
#[derive(Default)]
struct Heads(HashMap<String, HashMap<String, Head>>);

struct Head {
    /// The entity without its data (`data` is empty); `None`: no row.
    entity: Option<ServerEntity>,
    /// A write of the entity is queued: the database still holds an older state.
    queued: bool,
}

impl Heads {
    fn get(&self, collection: &str, id: &str) -> Option<&Head> {
        self.0.get(collection)?.get(id)
    }

    fn insert(&mut self, collection: &str, id: &str, head: Head) {
        self.0.entry(collection.to_string()).or_default().insert(id.to_string(), head);
    }

    fn is_queued(&self, collection: &str, id: &str) -> bool {
        self.get(collection, id).is_some_and(|head| head.queued)
    }

    fn mark_sent(&mut self, collection: &str, id: &str) {
        if let Some(head) = self.0.get_mut(collection).and_then(|ids| ids.get_mut(id)) {
            head.queued = false;
        }
    }
}

/// An entity write decided in a transaction and not yet sent.
struct QueuedWrite {
    collection: String,
    id: String,
    /// The data, serialized.
    data: String,
    version: i64,
    deleted: bool,
    seq: i64,
    /// Whether it replaces an existing row (at the version before its own)
    /// rather than inserting a new one.
    replaces: bool,
}

/// The result of a pushed mutation, serialized, not yet written to `tw_mutations`.
struct QueuedRecord {
    mutation_id: i64,
    result: String,
}

/// `$first, $first+1, …`: `count` numbered placeholders.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Writes `rows` entity rows: `$1` the user, `$2` the time, `$3` the writer, then
/// six parameters a row (collection, id, data, version, deleted, seq). A new row is inserted
/// only where no row exists; a replacing row replaces only the version before
/// its own. A row that finds anything else is left alone, so the statement's
/// rows_affected falls short of `rows`.
fn write_entities_sql(rows: usize, replacing: bool) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p = 4 + row * 6;
            format!("($1, ${p}, ${}, ${}, ${}, $2, ${}, ${}, $3)", p + 1, p + 2, p + 3, p + 4, p + 5)
        })
        .collect();
    let on_conflict = if replacing {
        "DO UPDATE SET data = excluded.data, version = excluded.version, updated_at = excluded.updated_at, \
         deleted = excluded.deleted, seq = excluded.seq, writer = excluded.writer \
         WHERE tw_entities.version = excluded.version - 1"
    } else {
        "DO NOTHING"
    };
    format!(
        "INSERT INTO tw_entities (user_id, collection, id, data, version, updated_at, deleted, seq, writer) VALUES {} \
         ON CONFLICT (user_id, collection, id) {on_conflict}",
        values.join(", ")
    )
}

/// Inserts `rows` push records: `$1` the user, `$2` the time, `$3` the client,
/// then two parameters a row (mutation id, result).
fn insert_records_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p = 4 + row * 2;
            format!("($1, $3, ${p}, ${}, $2)", p + 1)
        })
        .collect();
    format!("INSERT INTO tw_mutations (user_id, client_id, mutation_id, result, created_at) VALUES {}", values.join(", "))
}

impl UserWrite {
    /// The entity with its data. A queued write of it is sent first, so that
    /// the database holds the state this transaction has reached.
    async fn load(&mut self, collection: &str, id: &str) -> Result<Option<ServerEntity>> {
        if self.heads.is_queued(collection, id) {
            self.send_writes().await?;
        }
        let row = sqlx::query(&format!(
            "SELECT {ENTITY_COLUMNS} FROM tw_entities WHERE user_id = $1 AND collection = $2 AND id = $3"
        ))
        .bind(&self.user)
        .bind(collection)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|row| entity_from_row(&row).map(|(entity, _)| entity)).transpose()
    }

    /// The entity's head as it stands in this transaction: known already, or
    /// read now (and kept).
    async fn head(&mut self, collection: &str, id: &str) -> Result<Option<ServerEntity>> {
        if self.heads.get(collection, id).is_none() {
            self.load_heads([(collection, id)]).await?;
        }
        Ok(self.heads.get(collection, id).and_then(|head| head.entity.clone()))
    }

    /// Reads the heads of the entities among `keys` (collection, id) that this
    /// transaction does not know yet: one statement per collection and
    /// [`IDS_PER_STATEMENT`] ids, instead of one per entity.
    async fn load_heads<'k>(&mut self, keys: impl IntoIterator<Item = (&'k str, &'k str)>) -> Result<()> {
        let mut unknown: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut listed = HashSet::new();
        for (collection, id) in keys {
            if self.heads.get(collection, id).is_none() && listed.insert((collection, id)) {
                unknown.entry(collection).or_default().push(id);
            }
        }
        for (collection, ids) in unknown {
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT {HEAD_COLUMNS} FROM tw_entities WHERE user_id = $1 AND collection = $2 AND id IN ({})",
                    placeholders(3, chunk.len())
                );
                // Not a prepared statement reused with a generic plan: that plan cannot
                // tell how many entities this user has in the collection, and may scan
                // them all against the id list (seconds for a large collection) rather
                // than look up each id. Planned with the values, it looks them up.
                let mut query = sqlx::query(&sql).persistent(false).bind(&self.user).bind(collection);
                for id in chunk {
                    query = query.bind(*id);
                }
                let rows = query.fetch_all(&mut *self.tx).await?;
                // Entities without a row are known too: as absent.
                for id in chunk {
                    self.heads.insert(collection, id, Head { entity: None, queued: false });
                }
                for row in &rows {
                    let (entity, _) = entity_from_row(row)?;
                    let key = (entity.collection.clone(), entity.id.clone());
                    self.heads.insert(&key.0, &key.1, Head { entity: Some(entity), queued: false });
                }
            }
        }
        Ok(())
    }

    /// The stored results of this client's mutations among `ids`.
    async fn recorded_results(&mut self, client_id: &str, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut recorded = HashMap::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT mutation_id, result FROM tw_mutations WHERE user_id = $1 AND client_id = $2 AND mutation_id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(&self.user).bind(client_id);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                recorded.insert(row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?);
            }
        }
        Ok(recorded)
    }

    /// Puts the entity's data in a conflict's `current` while the response's
    /// budget allows, and only if the entity is still at the version the
    /// conflict met (a replay may come after later changes).
    async fn attach_current(&mut self, result: &mut MutationResult, m: &PushMutation, budget: &mut CurrentBudget) -> Result<()> {
        let Some(version) = result.version else {
            return Ok(());
        };
        if budget.exhausted {
            return Ok(());
        }
        let Some(entity) = self.load(&m.collection, &m.id).await? else {
            return Ok(());
        };
        if entity.version != version {
            return Ok(());
        }
        let size = data_size(&entity.data);
        if size > budget.remaining {
            budget.exhausted = true;
            return Ok(());
        }
        budget.remaining -= size;
        result.current = Some(entity);
        Ok(())
    }

    /// Applies `m` on `base_version`: its `baseVersion`, or the version the
    /// mutation its `after` names made. `None` (that mutation did not apply):
    /// `m` does not apply either, and is answered as a conflict.
    async fn apply(&mut self, m: &PushMutation, base_version: Option<u64>) -> Result<MutationResult> {
        let mut current = self.head(&m.collection, &m.id).await?;
        let decision = match base_version {
            None => Decision::Conflict,
            Some(base_version) => {
                if m.op == Op::Patch && current.as_ref().is_some_and(|c| !c.deleted && c.version == base_version) {
                    current = self.load(&m.collection, &m.id).await?;
                }
                // decide() reads the base version from the mutation.
                if base_version == m.base_version {
                    decide(current.as_ref(), m)
                } else {
                    decide(current.as_ref(), &PushMutation { base_version, ..m.clone() })
                }
            }
        };
        let mut result = rejected(m.mutation_id, "", String::new());
        match decision {
            Decision::Write { data, deleted } => {
                let entity = self.write(current.as_ref(), &m.collection, &m.id, data, deleted).await?;
                result.status = PushStatus::Applied;
                result.version = Some(entity.version);
                result.server_updated_at = Some(entity.server_updated_at);
                result.remote_id = Some(entity.id);
                result.error = None;
            }
            Decision::Conflict => {
                result.status = PushStatus::Conflict;
                result.version = current.as_ref().map(|c| c.version);
                result.server_updated_at = current.as_ref().map(|c| c.server_updated_at);
                result.error = None;
            }
            Decision::Reject { code, message } => {
                result.error = Some(ErrorDetail { code: code.to_string(), message });
            }
        }
        Ok(result)
    }

    /// Writes the entity's next version under the next sequence number: queued,
    /// and sent with the next batch of writes. `current` is the entity as it
    /// stands in this transaction.
    async fn write(
        &mut self,
        current: Option<&ServerEntity>,
        collection: &str,
        id: &str,
        data: Map<String, Value>,
        deleted: bool,
    ) -> Result<ServerEntity> {
        // One statement may not write a row twice (PostgreSQL refuses it): a
        // second write of an entity first sends the queued ones.
        if self.heads.is_queued(collection, id) {
            self.send_writes().await?;
        }
        let current_version = current.map_or(0, |c| c.version) as i64;
        // An entity created where a tombstone was purged continues above its
        // version, so a client still holding the tombstone sees a newer version.
        let next_version = if current.is_none() { current_version.max(self.purged_version) + 1 } else { current_version + 1 };
        self.last_seq += 1;
        let text = serde_json::to_string(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.queued_bytes += text.len();
        self.queued_writes.push(QueuedWrite {
            collection: collection.to_string(),
            id: id.to_string(),
            data: text,
            version: next_version,
            deleted,
            seq: self.last_seq,
            replaces: current.is_some(),
        });
        let head = ServerEntity {
            collection: collection.to_string(),
            id: id.to_string(),
            data: Map::new(),
            version: next_version as u64,
            server_updated_at: self.now,
            deleted,
        };
        self.heads.insert(collection, id, Head { entity: Some(head), queued: true });
        // Bounded by bytes too: patched entities may be far larger than their
        // mutations, and a run of them is not all held in memory at once.
        if self.queued_writes.len() >= ROWS_PER_STATEMENT || self.queued_bytes >= MAX_TRANSACTION_BYTES {
            self.send_writes().await?;
        }
        Ok(ServerEntity {
            collection: collection.to_string(),
            id: id.to_string(),
            data,
            version: next_version as u64,
            server_updated_at: self.now,
            deleted,
        })
    }

    /// Sends the queued entity writes: new rows and replacing rows in separate
    /// multi-row statements, each checked to have written every row.
    async fn send_writes(&mut self) -> Result<()> {
        let writes = std::mem::take(&mut self.queued_writes);
        self.queued_bytes = 0;
        let (replacing, inserting): (Vec<&QueuedWrite>, Vec<&QueuedWrite>) = writes.iter().partition(|w| w.replaces);
        for (rows, replace) in [(inserting, false), (replacing, true)] {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = write_entities_sql(chunk.len(), replace);
                let mut query = sqlx::query(&sql).bind(&self.user).bind(self.now).bind(self.writer.as_deref());
                for w in chunk {
                    query = query.bind(&w.collection).bind(&w.id).bind(&w.data).bind(w.version).bind(w.deleted as i64).bind(w.seq);
                }
                let done = query.execute(&mut *self.tx).await?;
                // The user lock makes this impossible; checking keeps a bug from losing an update.
                if done.rows_affected() != chunk.len() as u64 {
                    let missed = (chunk.len() as u64).saturating_sub(done.rows_affected());
                    let keys: Vec<String> = chunk.iter().map(|w| format!("{}/{}", w.collection, w.id)).collect();
                    return Err(StoreError::Corrupt(format!(
                        "{missed} of these entities changed under the user lock: {}",
                        keys.join(", ")
                    )));
                }
            }
        }
        for w in &writes {
            self.heads.mark_sent(&w.collection, &w.id);
        }
        Ok(())
    }

    /// Queues the record of a pushed mutation's result, written with the
    /// transaction's other records in multi-row inserts.
    async fn record(&mut self, mutation_id: i64, result: &MutationResult) -> Result<()> {
        let result = serde_json::to_string(result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.queued_records.push(QueuedRecord { mutation_id, result });
        if self.queued_records.len() >= ROWS_PER_STATEMENT {
            self.send_records().await?;
        }
        Ok(())
    }

    async fn send_records(&mut self) -> Result<()> {
        let records = std::mem::take(&mut self.queued_records);
        if records.is_empty() {
            return Ok(());
        }
        let Some(client_id) = self.writer.as_deref() else {
            return Err(StoreError::Corrupt("push records in a transaction that is not a push".into()));
        };
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = insert_records_sql(chunk.len());
            let mut query = sqlx::query(&sql).bind(&self.user).bind(self.now).bind(client_id);
            for r in chunk {
                query = query.bind(r.mutation_id).bind(&r.result);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Sends what is queued, saves the last sequence number handed out, commits.
    async fn commit(mut self) -> Result<()> {
        self.send_writes().await?;
        self.send_records().await?;
        if self.last_seq != self.start_seq {
            sqlx::query("UPDATE tw_user_seq SET last_seq = $2 WHERE user_id = $1")
                .bind(&self.user)
                .bind(self.last_seq)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(mutation_id: u64, bytes: usize) -> PushMutation {
        let mut data = Map::new();
        data.insert("blob".into(), Value::from("x".repeat(bytes)));
        PushMutation { mutation_id, collection: "c".into(), id: format!("e{mutation_id}"), op: Op::Put, data: Some(data), base_version: 0, after: None }
    }

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(redact_url("mysql://app:hunter2@db:3306/x?ssl=1"), "mysql://app:***@db:3306/x?ssl=1");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn large_pushes_are_applied_in_runs_within_the_transaction_budget() {
        let half = MAX_TRANSACTION_BYTES / 2 - 100;
        let batch: Vec<PushMutation> = (1..=5).map(|n| put(n, half)).chain([put(6, MAX_TRANSACTION_BYTES)]).collect();
        let runs: Vec<Vec<u64>> = transaction_runs(&batch).iter().map(|r| r.iter().map(|m| m.mutation_id).collect()).collect();
        assert_eq!(runs, vec![vec![1, 2], vec![3, 4], vec![5], vec![6]]);
        let small: Vec<PushMutation> = (1..=1000).map(|n| put(n, 20)).collect();
        assert_eq!(transaction_runs(&small).len(), 1);
        assert!(transaction_runs(&[]).is_empty());
    }

    #[tokio::test]
    async fn sqlite_commits_are_synced_to_disk() {
        let dir = std::env::temp_dir().join("tideway-store-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}", path.display()), StoreOptions::maintenance()).await.expect("open");
        // 2 is FULL: the write-ahead log is synced at every commit.
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.pool).await.expect("pragma");
        assert_eq!(synchronous, 2);
        store.pool.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
