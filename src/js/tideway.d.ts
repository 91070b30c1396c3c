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

/** The query `collection.query`, `watch` and `useQuery` take; `I` names the collection's declared indexes. */
export interface QueryOptions<I extends string = string> {
  /** A declared index; omitted: walk entity ids. */
  index?: I;
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
 *   Its answer is checked as a `put`'s data; if it throws or answers what a `put` would
 *   refuse, the entity waits in `conflict` as with `"manual"`, the reason in `meta.lastError`.
 */
export type ConflictPolicy =
  | "merge"
  | "serverWins"
  | "clientWins"
  | "manual"
  | ((local: Data | null, server: Data | null, base: Data | null, context: { collection: string; id: string }) => Data);

/** The metadata fields an index can name by themselves. */
export type MetaIndex = "updatedAt" | "serverUpdatedAt" | "version";

type Deeper = [never, 0, 1, 2, 3];
/** Dotted paths into `T`, four levels deep at most; any string where `T` is the open `Data`. */
export type DataPath<T, Depth extends number = 4> = [Depth] extends [never]
  ? never
  : string extends keyof T
    ? string
    : {
        [K in keyof T & string]: NonNullable<T[K]> extends readonly unknown[]
          ? K
          : NonNullable<T[K]> extends object
            ? K | `${K}.${DataPath<NonNullable<T[K]>, Deeper[Depth]>}`
            : K;
      }[keyof T & string];

/** What an index of a collection of `T` may be declared on: metadata, or a path into the data (`data.` prefixed if need be). */
export type IndexName<T extends Data = Data> = MetaIndex | DataPath<T> | `data.${DataPath<T>}`;

export interface CollectionOptions<T extends Data = Data, I extends string = string> {
  /** Secondary indexes: `updatedAt`, `serverUpdatedAt`, `version` (metadata) or a dotted path into data. */
  indexes?: readonly I[];
  /** How conflicts in this collection are settled (default `"merge"`). */
  conflict?: ConflictPolicy;
}

declare const dataType: unique symbol;
/** Collection options that carry the type of the collection's data, as `collection<T>()` gives them. */
export type CollectionSpec<T extends Data = Data, I extends string = string> = CollectionOptions<T, I> & { readonly [dataType]?: T };

/** The collections of a database, by name, as `Tideway.open` takes them. */
export type Collections = { [collection: string]: CollectionOptions<any, string> };
/** The data type of a collection declared with `collection<T>()`; `Data` otherwise. */
export type DataOf<O> = O extends { readonly [dataType]?: infer T } ? (unknown extends T ? Data : T extends Data ? T : Data) : Data;
/** The index names a collection declares. */
export type IndexOf<O> = O extends { indexes?: readonly (infer I)[] } ? I & string : never;

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
  /**
   * This client's id, when the changes whose latest write was this client's own push
   * may be left out (it has them from its push answers). Absent when the pull must list
   * everything: from the beginning, and on each later page of a pull that began there.
   */
  clientId?: string;
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
  /** Mutations per push (default 1000, the protocol's maximum; fewer where the entities are large). */
  batchSize?: number;
  /** Changes per pull page (default 1000, the protocol's maximum). */
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

export interface OpenOptions<C extends Collections = Collections> {
  /** The IndexedDB database name. */
  name: string;
  /**
   * The collections, by name. Declared inline, their names and index names type
   * `db.collection(name)` and queries; `collection<T>()` adds the type of their data.
   */
  collections: C;
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
  | { step: "failed"; error: string; retryAt: number; counters: SyncCounters & { queued: number } }
  | { step: "done"; pushed: number; pulled: number; counters: SyncCounters & { queued: number } }
  | {
      step: "answer";
      mutationId: number;
      collection: string;
      id: string;
      status: "applied" | "conflict" | "rejected";
      error: string | null;
    }
  | {
      step: "conflict";
      collection: string;
      id: string;
      policy: "merge" | "serverWins" | "clientWins" | "manual" | "function";
      /** `server`: the entity took the server's version; `queued`: the policy's data is queued to push;
       * `manual`: it waits for the app; `deferred`: the pull that follows settles it. */
      outcome: "server" | "queued" | "manual" | "deferred";
    }
  | { step: "retryScheduled"; attempt: number; delay: number; retryAt: number }
  | { step: "leadership"; leading: boolean; context: "window" | "worker" | "service-worker" }
  | { step: "forwarded"; direction: "sent" | "received" }
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
  /**
   * Where this database is kept: `"indexeddb"`, or `"memory"` where the browser refused
   * IndexedDB at open (it is missing, or will not open a database, as in some private
   * modes). In memory everything works and syncs for this page's life, but nothing
   * outlives it and other tabs do not see it: tell the user, and sync often.
   */
  storage: "indexeddb" | "memory";
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
  | "SYNC_FAILED"
  /** A bug in Tideway: every call fails with it until the page is reloaded. */
  | "INTERNAL_ERROR";

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

/** A collection of entities holding `T`, with the declared indexes `I`. */
export interface Collection<T extends Data = Data, I extends string = string> {
  readonly name: string;
  /** Instant read from memory. `undefined` if absent (or deleted, unless `includeDeleted`). */
  get(id: string, options?: GetOptions): EntityRecord<T> | undefined;
  /** Every live entity, in id order. */
  all(): EntityRecord<T>[];
  /** Instant range query, in IndexedDB order (index key, then id). */
  query(options?: QueryOptions<I>): EntityRecord<T>[];
  /**
   * A live query: calls `callback` at once with the query's result, then after each batch of
   * committed changes (local, rolled back, from another tab, from sync) that gives another
   * result. Results are frozen arrays of the records reads give: an unchanged record stays
   * `===`, an unchanged result is never sent again. Returns the function that stops it.
   * Throws `INVALID_ARGUMENT` for a bad query.
   */
  watch(options: QueryOptions<I> | undefined, callback: (records: readonly EntityRecord<T>[]) => void): () => void;
  /** `watch` for one entity: calls back with what `get(id)` gives now, then each time it gives another record. */
  watchRecord(id: string, callback: (record: EntityRecord<T> | undefined) => void): () => void;
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
  /** Another tab or worker upgraded the database: this handle has closed (its queued writes committed first, if `committed`); open it again to go on. */
  versionchange: { reason: string; committed: boolean };
}

/** A Tideway database: open once per page or worker. `C` is the collections it was opened with. */
export class Tideway<C extends Collections = Collections> {
  private constructor();
  /**
   * Opens (creating or migrating as needed) and loads every entity into memory. Loads the
   * wasm module first if nothing has yet (see `init`).
   */
  static open<const C extends Collections>(options: OpenOptions<C>): Promise<Tideway<C>>;
  /** Deletes a database and everything in it. Close open connections first. */
  static deleteDatabase(name: string): Promise<void>;
  readonly name: string;
  /** Generated once when the database is created, then kept. */
  readonly clientId: string;
  /** A declared collection, typed by its declaration; throws `NOT_FOUND` for an undeclared name. */
  collection<N extends keyof C & string>(name: N): Collection<DataOf<C[N]>, IndexOf<C[N]>>;
  /** A declared collection, its data typed as `T` by the caller. */
  collection<T extends Data>(name: keyof C & string): Collection<T, IndexOf<C[keyof C & string]>>;
  /** How many changes wait in the outbox. */
  pendingCount(): Promise<number>;
  /** Where the site's storage stands: usage, quota, whether it is kept from eviction. */
  storage(): Promise<StorageState>;
  /** Pushes, then pulls, now. Rejects with `SYNC_FAILED` (nothing is lost) or if opened without `sync`. */
  sync(): Promise<SyncReport>;
  /** Where the database stands, with or without `sync` (see `SyncStatusReport`). */
  status(): SyncStatusReport;
  /** Listens to the database's events, with or without `sync`; returns the unsubscribe function. Throws `INVALID_ARGUMENT` for an unknown event. */
  on<E extends keyof SyncEvents>(event: E, callback: (detail: SyncEvents[E]) => void): () => void;
  /** Waits for pending writes to be durable, stops syncing and removes every timer and listener it set, then closes and lets the in-memory mirror go. Later reads throw, and later calls reject, with `DATABASE_CLOSED`. */
  close(): Promise<void>;
  /** The mutations waiting in the outbox, oldest first (at most `limit`). */
  outbox(limit?: number): Promise<OutboxEntry[]>;
  /** Each declared collection and what it holds, from memory, in name order. */
  collections(): CollectionSummary[];
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

/** A mutation waiting in the outbox (`db.outbox()`). */
export interface OutboxEntry {
  mutationId: number;
  collection: string;
  /** The entity's local id. */
  id: string;
  op: "put" | "patch" | "delete";
  /** The full data for a put, the given fields for a patch; absent for a delete. */
  data?: Data;
  /** The server version the change was made on (0: new to the server). */
  baseVersion: number;
  /** Device time the change was queued, ms since the epoch. */
  createdAt: number;
  /** Pushes of this mutation that failed without an answer (network, server, a refusal of the whole push). */
  attempts: number;
  /** Why the last of those failed; `null` if none did. */
  lastError: string | null;
  /** The entity's `meta.syncStatus` now (`null` if the entity is not in memory). */
  syncStatus: SyncStatus | null;
}

/** What a collection holds (`db.collections()`). */
export interface CollectionSummary {
  name: string;
  /** Live entities. */
  count: number;
  /** Tombstones. */
  deleted: number;
  /** Mutations waiting in the outbox. */
  pending: number;
  failed: number;
  conflicts: number;
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
