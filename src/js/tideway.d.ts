/** A JSON value as Tideway stores it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** An entity's data: a plain JSON object. */
export type Data = { [key: string]: Json };

export type SyncStatus = "dirty" | "syncing" | "synced" | "failed" | "conflict";

/** Sync metadata of an entity. */
export interface Meta {
  /** The server's id, `null` until a server acknowledges the entity. */
  remoteId: string | null;
  /** Server version; 0 until the server has seen the entity. */
  version: number;
  /** Device time of the last local change, ms since the epoch. */
  updatedAt: number;
  /** Server time of the last acknowledged change, or `null`. */
  serverUpdatedAt: number | null;
  syncStatus: SyncStatus;
  /** A tombstone: the entity was deleted and the delete waits to sync (or has synced). */
  deleted: boolean;
  lastError: string | null;
}

/** An entity as reads return it. Records are frozen snapshots: change them with put/patch/delete. */
export interface EntityRecord<T extends Data = Data> {
  readonly id: string;
  readonly data: Readonly<T>;
  readonly meta: Readonly<Meta>;
}

/** A value IndexedDB can use as a key. */
export type IndexKey = number | string | IndexKey[];

export interface QueryOptions {
  /** A declared index; omitted: walk entity ids. */
  index?: string;
  gte?: IndexKey;
  gt?: IndexKey;
  lte?: IndexKey;
  lt?: IndexKey;
  equals?: IndexKey;
  reverse?: boolean;
  limit?: number;
  offset?: number;
  includeDeleted?: boolean;
}

export interface GetOptions {
  /** Return tombstones too. */
  includeDeleted?: boolean;
}

/**
 * How an entity changed both locally and on the server is settled:
 * - `"merge"` (default): three-way, field by field against the last synced data; a field
 *   changed on both sides takes the server's value; a delete loses to an edit.
 * - `"serverWins"` / `"clientWins"`: one side replaces the other.
 * - `"manual"`: the entity is marked `conflict`; see `collection.conflicts()` and `resolve()`.
 * - a function `(local, server, base, { collection, id }) => merged data` (`null` for a deleted side).
 */
export type ConflictPolicy =
  | "merge"
  | "serverWins"
  | "clientWins"
  | "manual"
  | ((local: Data | null, server: Data | null, base: Data | null, context: { collection: string; id: string }) => Data);

export interface CollectionOptions {
  /** Secondary indexes: `updatedAt`, `serverUpdatedAt`, `version` (metadata) or a dotted path into data. */
  indexes?: string[];
  /** How conflicts in this collection are settled (default `"merge"`). */
  conflict?: ConflictPolicy;
}

/** One queued change, as `push` receives it (see docs/protocol.md). */
export interface PushMutation {
  mutationId: number;
  collection: string;
  /** The entity's server id when it has one (`meta.remoteId`), else its local id. */
  id: string;
  op: "put" | "patch" | "delete";
  data?: Data;
  /** The server version the change was made on (0: new to the server). */
  baseVersion: number;
}

export interface PushRequest {
  clientId: string;
  mutations: PushMutation[];
}

/** An entity as the server holds it. */
export interface ServerEntity {
  collection: string;
  id: string;
  data: Data;
  version: number;
  serverUpdatedAt: number;
  deleted?: boolean;
}

export interface MutationResult {
  mutationId: number;
  status: "applied" | "conflict" | "rejected";
  /** The new version (`applied`) or the server's current one (`conflict`). */
  version?: number;
  serverUpdatedAt?: number;
  /** The server's id for the entity (`applied`), when it assigns its own. */
  remoteId?: string;
  /** The server's entity, on `conflict`. */
  current?: ServerEntity;
  /** Why, on `rejected`. */
  error?: { code: string; message: string };
}

export interface PushResponse {
  /** One result per mutation, in order. */
  results: MutationResult[];
}

export interface PullRequest {
  /** `null`: from the beginning. */
  cursor: string | null;
  limit: number;
}

export interface PullResponse {
  changes: ServerEntity[];
  cursor: string;
  hasMore: boolean;
}

/**
 * Thrown by a custom `push` / `pull` to say how the failure should be treated, like the
 * HTTP status it stands for: 401 refreshes credentials, 408/429/5xx retry with backoff,
 * other 4xx fail the blamed mutation (`mutationId`). Any other throw is retried.
 */
export interface BackendError {
  status: number;
  code?: string;
  message?: string;
  mutationId?: number;
  /** Do not retry before this many ms. */
  retryAfter?: number;
}

export interface SyncTiming {
  /** Sync on open, on `online`, after writes, on visibility and on the interval (default `true`). */
  auto?: boolean;
  /** Ms between periodic syncs; 0 turns them off (default 60000). */
  interval?: number;
  /** Ms to wait after a local write before syncing (default 300). */
  debounce?: number;
  /** Ms before a request is aborted (default 15000). */
  timeout?: number;
  /** Mutations per push (default 100, at most 1000). */
  batchSize?: number;
  /** Changes per pull page (default 500, at most 1000). */
  pullLimit?: number;
  /** Receives one structured entry per sync step. */
  log?: (entry: SyncLogEntry) => void;
}

/** Sync with a server speaking the Tideway protocol. */
export interface ServerSyncOptions extends SyncTiming {
  /** The server's base URL (`/v1/...` is appended). */
  url: string;
  /** Returns the bearer token; called with `{ refresh: true }` once after a 401. */
  getToken?: (options: { refresh: boolean }) => string | null | Promise<string | null>;
}

/** Sync with the app's own backend through two functions speaking the protocol's shapes. */
export interface CustomSyncOptions extends SyncTiming {
  push: (request: PushRequest) => PushResponse | Promise<PushResponse>;
  pull: (request: PullRequest) => PullResponse | Promise<PullResponse>;
}

export type SyncOptions = ServerSyncOptions | CustomSyncOptions;

export interface OpenOptions {
  /** The IndexedDB database name. */
  name: string;
  collections: { [collection: string]: CollectionOptions };
  /** Omitted: a local-only database. */
  sync?: SyncOptions;
  /**
   * Asks the browser, at open, to keep the site's storage from eviction
   * (`navigator.storage.persist()`); `storage().persisted` reports its answer.
   */
  persist?: boolean;
}

/** Where the site's storage stands (`db.storage()`); `null` where the engine does not say. */
export interface StorageState {
  /** Bytes the origin uses. */
  usage: number | null;
  /** Bytes it may use; past it, writes reject with `QUOTA_EXCEEDED`. */
  quota: number | null;
  /** Whether the browser keeps the site's storage from eviction. */
  persisted: boolean | null;
}

export type SyncLogEntry = { at: number } & (
  | { step: "push"; mutations: number; firstMutationId: number }
  | { step: "pushed"; applied: number; conflicts: number; rejected: number }
  | { step: "pull"; hasCursor: boolean }
  | { step: "pulled"; changes: number; hasMore: boolean }
  | { step: "cursorReset" }
  | { step: "authRefresh" }
  | { step: "failed"; error: string; retryAt: number }
  | { step: "done"; pushed: number; pulled: number }
);

/** What one sync did. */
export interface SyncReport {
  pushed: number;
  pulled: number;
  /** Conflicts settled by the policy. */
  merged: number;
  /** Entities left in `conflict` for the app. */
  conflicted: number;
  /** Mutations the server refused for good. */
  failed: number;
}

export interface SyncCounters {
  pushed: number;
  pulled: number;
  merged: number;
  conflicted: number;
  retried: number;
  failed: number;
}

/**
 * Where a database stands (`db.status()`). A database opened without `sync` has the same
 * shape, telling what is true locally: `online` and `pending` as with sync, `syncing`
 * false, `reachable`, `lastSyncAt`, `lastError` and `nextRetryAt` null, and every counter 0.
 */
export interface SyncStatusReport {
  /** `navigator.onLine`, kept current by `online` / `offline` events. */
  online: boolean;
  /** Whether the server answered last time (`null` before the first attempt, and without sync). */
  reachable: boolean | null;
  syncing: boolean;
  /** Local mutations not yet acknowledged by a server (without sync: every local mutation, as `pendingCount()`). */
  pending: number;
  /** Entities whose last change the server refused (`meta.syncStatus === "failed"`). */
  failed: number;
  /** Entities waiting in `conflict`. */
  conflicts: number;
  lastSyncAt: number | null;
  lastError: string | null;
  /** After a failure: when the next automatic attempt is due. */
  nextRetryAt: number | null;
  /** Totals since the database was opened (by this context). */
  counters: SyncCounters;
  /**
   * Which context syncs this database: of all the tabs and workers that open it with
   * automatic sync, the one holding its sync lock. `here`: this one; otherwise `syncing`,
   * `lastSyncAt`, `lastError`, `nextRetryAt` and `reachable` are what that one reported.
   * `null` without sync, or before the syncing context has said so.
   */
  syncer: { context: "window" | "worker" | "service-worker"; here: boolean } | null;
}

/** A manual conflict: each side's data, `null` where that side is a delete. */
export interface Conflict<T extends Data = Data> {
  id: string;
  local: T | null;
  server: T | null;
  /** The data both sides started from (`null`: the server had never seen the entity). */
  base: T | null;
  serverVersion: number;
}

export interface Change<T extends Data = Data> {
  collection: string;
  id: string;
  /** The entity now (tombstones included), or `undefined` if it no longer exists. */
  record: EntityRecord<T> | undefined;
  /**
   * `local`: a local write became durable; `rollback`: a local write failed and was undone;
   * `sync`: sync changed the entity (a server answer, or a push starting); `elsewhere`:
   * another tab or worker on the same database committed it.
   */
  origin: "local" | "rollback" | "sync" | "elsewhere";
  /** Why, for a rollback. */
  error?: TidewayError;
}

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "QUOTA_EXCEEDED"
  | "DATABASE_CLOSED"
  | "SCHEMA_ERROR"
  | "STORAGE_ERROR"
  | "SYNC_FAILED";

/** Every error Tideway throws or rejects with. */
export interface TidewayError extends Error {
  name: "TidewayError";
  code: ErrorCode;
  /** `SYNC_FAILED` only: how the failure was classified. */
  kind?: "transient" | "auth" | "permanent" | "cursorExpired";
  /** `SYNC_FAILED` only: when the next automatic attempt is due (ms since the epoch). */
  retryAt?: number;
}

export interface PutOptions {
  /** Use this id instead of a generated UUID. */
  id?: string;
}

export interface Collection<T extends Data = Data> {
  readonly name: string;
  /** Instant read from memory. `undefined` if absent (or deleted, unless `includeDeleted`). */
  get(id: string, options?: GetOptions): EntityRecord<T> | undefined;
  /** Every live entity, in id order. */
  all(): EntityRecord<T>[];
  /** Instant range query, in IndexedDB order (index key, then id). */
  query(options?: QueryOptions): EntityRecord<T>[];
  /** Creates or replaces. Reads see it at once; resolves once it and its outbox entry are durable. */
  put(data: T, options?: PutOptions): Promise<EntityRecord<T>>;
  /** Creates or replaces many entities in one transaction: all or none. */
  bulkPut(entries: Array<{ id?: string; data: T }>): Promise<EntityRecord<T>[]>;
  /** Changes some fields; a field set to `null` is removed. */
  patch(id: string, fields: Partial<{ [K in keyof T]: T[K] | null }>): Promise<EntityRecord<T>>;
  /** Deletes, leaving a tombstone that syncs the delete. */
  delete(id: string): Promise<void>;
  /** Called after each committed change of this collection; returns the unsubscribe function. */
  subscribe(callback: (changes: Change<T>[]) => void): () => void;
  /** Entities waiting in `conflict` (the `"manual"` policy). */
  conflicts(): Conflict<T>[];
  /** Settles a conflict with this data (or deletes it with `null`); pushed with the next sync. Rejects `NOT_FOUND` if not in conflict. */
  resolve(id: string, data: T | null): Promise<EntityRecord<T> | undefined>;
}

/** The events of `db.on`. Without `sync`, only `status` and `change` ever fire. */
export interface SyncEvents {
  /** When a sync starts or ends, or the network comes or goes. */
  status: SyncStatusReport;
  /** Every committed change of every collection: local, rolled back, or from sync. */
  change: Change[];
  conflict: { collection: string; id: string };
  /** A failed sync (`collection`/`id` null) or a mutation refused for good. */
  error: { message: string; collection: string | null; id: string | null };
  log: SyncLogEntry;
}

/** A Tideway database: open once per page or worker. */
export class Tideway {
  private constructor();
  /** Opens (creating or migrating as needed) and loads every entity into memory. */
  static open(options: OpenOptions): Promise<Tideway>;
  /** Deletes a database and everything in it. Close open connections first. */
  static deleteDatabase(name: string): Promise<void>;
  readonly name: string;
  /** Generated once when the database is created, then kept. */
  readonly clientId: string;
  /** A declared collection; throws `NOT_FOUND` for an undeclared name. */
  collection<T extends Data = Data>(name: string): Collection<T>;
  /** How many changes wait in the outbox. */
  pendingCount(): Promise<number>;
  /** Pushes, then pulls, now. Rejects with `SYNC_FAILED` (nothing is lost) or if opened without `sync`. */
  /** Where the site's storage stands: usage, quota, whether it is kept from eviction. */
  storage(): Promise<StorageState>;
  sync(): Promise<SyncReport>;
  /** Where the database stands, with or without `sync` (see `SyncStatusReport`). */
  status(): SyncStatusReport;
  /** Listens to the database's events, with or without `sync`; returns the unsubscribe function. Throws `INVALID_ARGUMENT` for an unknown event. */
  on<E extends keyof SyncEvents>(event: E, callback: (detail: SyncEvents[E]) => void): () => void;
  /** Waits for pending writes to be durable, stops syncing and removes every timer and listener it set, then closes and lets the in-memory mirror go. Later reads throw, and later calls reject, with `DATABASE_CLOSED`. */
  close(): Promise<void>;
  /**
   * The entities whose changes no server has acknowledged, read from memory: it answers
   * after the browser deleted the database's storage (other calls then reject
   * `DATABASE_CLOSED`), until `close()`.
   */
  unsynced(): UnsyncedEntity[];
  /**
   * Writes the unsynced entities of `from` (a database whose storage died) into this one,
   * each queued to push on the version the server last acknowledged. Resolves with how
   * many were written; rejects `NOT_FOUND`, writing nothing, if a collection is not declared here.
   */
  rescue(from: Tideway): Promise<number>;
}

/** An entity with changes no server has acknowledged, as `db.unsynced()` lists it. */
export interface UnsyncedEntity {
  collection: string;
  id: string;
  /** The local data; `null` for a local delete. */
  data: Data | null;
  deleted: boolean;
  /** The server version the local changes were made on (0: new to the server). */
  version: number;
  syncStatus: SyncStatus;
}
