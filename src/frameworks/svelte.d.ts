import type { Collection, Data, EntityRecord, QueryOptions, SyncStatusReport, Tideway } from "./index.js";

/** Svelte's store contract: `subscribe` calls back at once, then on every change, and returns the unsubscriber. */
export interface Readable<V> {
  subscribe(run: (value: V) => void): () => void;
}

/** A readable store of the records `collection.query(query)` gives. */
export function query<T extends Data, I extends string>(
  collection: Collection<T, I>,
  query?: QueryOptions<NoInfer<I>>,
): Readable<readonly EntityRecord<T>[]>;

/** A readable store of the record `collection.get(id)` gives. */
export function record<T extends Data>(collection: Collection<T, string>, id: string): Readable<EntityRecord<T> | undefined>;

/** A readable store of `db.status()`. */
export function syncStatus(db: Tideway<any>): Readable<SyncStatusReport>;
