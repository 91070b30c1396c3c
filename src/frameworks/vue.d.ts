import type { MaybeRefOrGetter, ShallowRef } from "vue";
import type { Collection, Data, EntityRecord, QueryOptions, SyncStatusReport, Tideway } from "./index.js";

/** The records `collection.query(query)` gives, kept current; a new query (ref or getter) watches anew. */
export function useQuery<T extends Data, I extends string>(
  collection: Collection<T, I> | MaybeRefOrGetter<Collection<T, I>>,
  query?: MaybeRefOrGetter<QueryOptions<NoInfer<I>> | undefined>,
): Readonly<ShallowRef<readonly EntityRecord<T>[]>>;

/** The record `collection.get(id)` gives, kept current (`undefined` while there is none). */
export function useRecord<T extends Data>(
  collection: MaybeRefOrGetter<Collection<T, string>>,
  id: MaybeRefOrGetter<string>,
): Readonly<ShallowRef<EntityRecord<T> | undefined>>;

/** `db.status()`, kept current. */
export function useSyncStatus(db: MaybeRefOrGetter<Tideway<any>>): Readonly<ShallowRef<SyncStatusReport>>;
