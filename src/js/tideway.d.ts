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

export interface CollectionOptions {
  /** Secondary indexes: `updatedAt`, `serverUpdatedAt`, `version` (metadata) or a dotted path into data. */
  indexes?: string[];
}

export interface OpenOptions {
  /** The IndexedDB database name. */
  name: string;
  collections: { [collection: string]: CollectionOptions };
}

export interface Change<T extends Data = Data> {
  collection: string;
  id: string;
  /** The entity now (tombstones included), or `undefined` if it no longer exists. */
  record: EntityRecord<T> | undefined;
  /** `local`: a local write became durable; `rollback`: a local write failed and was undone. */
  origin: "local" | "rollback";
  /** Why, for a rollback. */
  error?: TidewayError;
}

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "QUOTA_EXCEEDED"
  | "DATABASE_CLOSED"
  | "SCHEMA_ERROR"
  | "STORAGE_ERROR";

/** Every error Tideway throws or rejects with. */
export interface TidewayError extends Error {
  name: "TidewayError";
  code: ErrorCode;
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
  /** Waits for pending writes to be durable, then closes. Later calls reject with `DATABASE_CLOSED`. */
  close(): Promise<void>;
}
