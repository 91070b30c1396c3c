// React hooks over live queries (`tideway/react`). Each hook is a
// useSyncExternalStore over a watch: it renders from the synchronous mirror,
// never tears under concurrent rendering, and renders again only when what it
// returns changed (records are identity-stable).

import { useMemo, useSyncExternalStore } from "react";
import { liveStore, sameRecords, sameStatus, watchStatus } from "./live-store.js";

/** The records `collection.query(query)` gives, kept current; a frozen array that stays `===` while unchanged. */
export function useQuery(collection, query) {
  const key = JSON.stringify(query ?? null);
  const store = useMemo(
    () =>
      liveStore(
        (callback) => collection.watch(query, callback),
        () => Object.freeze(collection.query(query)),
        sameRecords,
      ),
    // The query by value: a literal written inline is a new object on every render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [collection, key],
  );
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

/** The record `collection.get(id)` gives, kept current (`undefined` while there is none). */
export function useRecord(collection, id) {
  const store = useMemo(
    () => liveStore((callback) => collection.watchRecord(id, callback), () => collection.get(id)),
    [collection, id],
  );
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

/** `db.status()`, kept current: on sync and network events and after every committed change. */
export function useSyncStatus(db) {
  const store = useMemo(() => liveStore((callback) => watchStatus(db, callback), () => db.status(), sameStatus), [db]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}
