import type { Collection, Data, EntityRecord, QueryOptions, SyncStatusReport, Tideway } from "./index.js";

/** The records `collection.query(query)` gives, kept current; a frozen array that stays `===` while unchanged. */
export function useQuery<T extends Data, I extends string>(
  collection: Collection<T, I>,
  query?: QueryOptions<NoInfer<I>>,
): readonly EntityRecord<T>[];

/** The record `collection.get(id)` gives, kept current (`undefined` while there is none). */
export function useRecord<T extends Data>(collection: Collection<T, string>, id: string): EntityRecord<T> | undefined;

/** `db.status()`, kept current: on sync and network events and after every committed change. */
export function useSyncStatus(db: Tideway<any>): SyncStatusReport;
