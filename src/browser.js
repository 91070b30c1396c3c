// The JS half of Tideway's browser code: the few places where a plain JS
// function beats a chain of calls across the wasm boundary.
//
// It is one module on purpose. Each JS module of a wasm-bindgen crate is a
// file that the page or worker fetches while it loads the library, and
// sibling modules are fetched in parallel; one module is one request after
// the generated glue.

// ---------------------------------------------------------------------------
// Values from JS (src/js/convert.rs)

export function deepFreeze(value) {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze(value[key]);
  }
  return value;
}
export function deepFreezeEach(array) {
  for (const item of array) deepFreeze(item);
  return array;
}
export function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
export function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'a ' + ((value.constructor && value.constructor.name) || 'object');
  return 'a ' + typeof value;
}

// ---------------------------------------------------------------------------
// Records handed to JS (src/js/collection.rs)

/**
 * Freezes a value fresh from JSON.parse and everything in it: `deepFreeze` for
 * the first read's hot path, skipping its checks (such a value has no frozen
 * parts and no cycles).
 */
function freeze(value) {
  Object.freeze(value);
  for (const item of Object.values(value)) {
    if (typeof item === "object" && item !== null) freeze(item);
  }
  return value;
}

/** The record of a stored doc: the same frozen { id, data, meta } as `record_to_js` builds. */
function recordOfDoc(text) {
  const entity = JSON.parse(text);
  return Object.freeze({
    id: entity.id,
    data: freeze(entity.data),
    meta: Object.freeze({
      remoteId: entity.remoteId ?? null,
      version: entity.version,
      updatedAt: entity.updatedAt,
      serverUpdatedAt: entity.serverUpdatedAt ?? null,
      syncStatus: entity.syncStatus,
      deleted: entity.deleted ?? false,
      lastError: entity.lastError ?? null,
    }),
  });
}

/**
 * One collection's records already built, and the docs of the entities as
 * loaded at open, for those not read since (a record is built from its doc on
 * first read, in JS, with no trip through Rust).
 */
export class RecordCache {
  constructor() {
    /** id -> record, or null once the entity changed: then only Rust knows it. */
    this.records = new Map();
    this.docs = new Map();
  }

  /**
   * Takes the store's own map of the docs it last saw stored (id -> JSON
   * text), filled at open, and the records built while loading. The docs are
   * not copied: an entity whose doc changes there later has changed in the
   * mirror first, and been evicted.
   */
  seed(docs, records) {
    this.docs = docs;
    this.records = records;
  }

  /** The record of `id`; undefined for a tombstone unless `includeDeleted`; null if not cached. */
  get(id, includeDeleted) {
    let record = this.records.get(id);
    if (record === undefined) {
      const doc = this.docs.get(id);
      if (doc === undefined) return null;
      record = recordOfDoc(doc);
      this.records.set(id, record);
    } else if (record === null) {
      return null;
    }
    return record.meta.deleted && !includeDeleted ? undefined : record;
  }

  set(id, record) {
    this.records.set(id, record);
  }

  /** Forgets `id`: its entity changed in the mirror. */
  evict(id) {
    this.records.set(id, null);
  }

  /** Forgets everything: the database was closed. */
  clear() {
    this.records = new Map();
    this.docs = new Map();
  }
}

// ---------------------------------------------------------------------------
// The IndexedDB store's transactions (src/store/indexeddb.rs)

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A stored record's doc as JSON text (records written by earlier versions hold UTF-8 bytes). */
function docText(record) {
  if (record === undefined) return undefined;
  return typeof record.doc === "string" ? record.doc : decoder.decode(record.doc);
}

/** Why `tx` aborted; a transaction aborted by closing its connection has no error of its own. */
function abortError(tx) {
  return tx.error ?? new DOMException("the transaction was aborted", "AbortError");
}

export function entityRecord(id, doc, ix) { return { id, doc, ix }; }

export function knownDoc(known, id) { return known.get(id); }

/**
 * `docs` as one JSON array in UTF-8, each encoded natively straight into
 * place: much faster than handing Rust one string of megabytes, and than
 * joining the docs first.
 */
function jsonArray(docs) {
  // One byte per UTF-16 code unit, as for ASCII; grown when a doc needs more.
  let bytes = new Uint8Array(docs.reduce((size, doc) => size + doc.length + 1, 2));
  let at = 0;
  for (let j = 0; j < docs.length; j++) {
    bytes[at++] = j === 0 ? 0x5b : 0x2c; // "[" then ","
    let { read, written } = encoder.encodeInto(docs[j], bytes.subarray(at));
    while (read < docs[j].length) {
      const grown = new Uint8Array(bytes.length * 2 + docs[j].length * 3);
      grown.set(bytes.subarray(0, at));
      bytes = grown;
      ({ read, written } = encoder.encodeInto(docs[j], bytes.subarray(at)));
    }
    at += written;
  }
  if (docs.length === 0) bytes[at++] = 0x5b;
  bytes[at++] = 0x5d; // "]"
  return bytes.subarray(0, at);
}

/** The most records `Loader` asks IndexedDB for at a time. */
const LOAD_CHUNK = 4000;
/** How much smaller each chunk of a store is than the one before. */
const LOAD_SHRINK = 0.75;
/** The fewest records a chunk asks for, but for a store's last. */
const LOAD_TAIL = 500;

/**
 * Reads every record of `stores` in one transaction, chunk by chunk, and hands
 * each chunk's docs over as one JSON array in UTF-8. The request for the next
 * chunk is made before a chunk is handed over, so IndexedDB reads it while Rust
 * parses this one and the records reads will give are built (`records` maps, id
 * -> record): most first reads after open then find their record built. Chunks
 * shrink towards a store's end (each store is counted first), so that little
 * is left to do once the last one arrives. Refills each `known` map (id -> doc
 * text) on the way.
 */
export class Loader {
  constructor(db, stores, known, records) {
    this.tx = db.transaction(stores, "readonly");
    this.stores = stores;
    this.known = known;
    this.records = records;
    /** The chunks asked for and not yet taken: one at a time is in flight. */
    this.chunks = [];
    this.request(0, null, 0, 0);
  }

  /** Resolves with the next chunk, `{ store, json }` (`store`: an index into `stores`), or null after the last. */
  next() {
    return this.chunks.shift() ?? Promise.resolve(null);
  }

  /**
   * Asks for the next chunk of `store`: the records after key `after` (from the
   * first, counting them, when null), `left` of them not read yet, the chunk
   * before holding `previous`.
   */
  request(store, after, left, previous) {
    if (store === this.stores.length) return;
    const objectStore = this.tx.objectStore(this.stores[store]);
    const chunk = new Promise((resolve, reject) => {
      const fail = (request) => () => reject(request.error ?? abortError(this.tx));
      const read = (left, size) => {
        const request = objectStore.getAll(after === null ? null : IDBKeyRange.lowerBound(after, true), size);
        request.onsuccess = () => {
          const records = request.result;
          left -= records.length;
          const more = records.length === size && left > 0;
          if (more) this.request(store, records[records.length - 1].id, left, size);
          else this.request(store + 1, null, 0, 0);
          resolve(this.take(store, records, more));
        };
        request.onerror = fail(request);
      };
      if (after !== null) return read(left, chunkSize(left, previous));
      this.known[store].clear();
      this.records[store].clear();
      const count = objectStore.count();
      count.onsuccess = () => {
        // `getAll` with a count of 0 reads everything: an empty store reads nothing.
        if (count.result > 0) return read(count.result, chunkSize(count.result, 0));
        this.request(store + 1, null, 0, 0);
        resolve({ store, json: jsonArray([]) });
      };
      count.onerror = fail(count);
    });
    chunk.catch(() => {}); // a failure is reported when the chunk is taken
    this.chunks.push(chunk);
  }

  /**
   * Keeps the docs of `records` and, if IndexedDB is reading more meanwhile
   * (`build`), builds their records; the chunk for Rust.
   */
  take(store, records, build) {
    const docs = new Array(records.length);
    const known = this.known[store];
    const built = this.records[store];
    for (let j = 0; j < records.length; j++) {
      docs[j] = docText(records[j]);
      known.set(records[j].id, docs[j]);
      if (build) built.set(records[j].id, recordOfDoc(docs[j]));
    }
    return { store, json: jsonArray(docs) };
  }
}

/** How many records to ask for next, `left` being unread and `previous` the last chunk's size (0: none yet). */
function chunkSize(left, previous) {
  const size = previous === 0 ? LOAD_CHUNK : Math.max(LOAD_TAIL, Math.floor(previous * LOAD_SHRINK));
  return left - size < LOAD_TAIL ? left : size;
}

export function beginWrite(db, stores) { return db.transaction(stores, "readwrite"); }

/**
 * Whether a write transaction may be committed before its requests have
 * settled: only where a request failing after `commit()` still aborts the
 * whole transaction, as the spec says. Firefox completes such a transaction
 * instead when `commit()` came after a first request had answered, keeping
 * the requests that succeeded, which would break a batch's atomicity. False
 * until `probeEarlyCommit` found out.
 */
let earlyCommit = false;
/** `probeEarlyCommit`'s answer, once asked. */
let probe = null;

/**
 * Finds out once per JS realm whether `earlyCommit` holds, in the background,
 * the way a checked batch commits: a transaction on `db` reads `key` (which
 * must already exist in `store`), adds it again, which fails, and commits once
 * the read has answered. It aborts where commit() keeps the transaction
 * atomic (Chromium, WebKit), and completes, having written nothing, where it
 * does not (Firefox).
 */
export function probeEarlyCommit(db, store, key) {
  if (probe !== null || typeof IDBTransaction.prototype.commit !== "function") return;
  let tx;
  try {
    tx = db.transaction(store, "readwrite");
  } catch {
    return; // the connection went away: the next open asks
  }
  probe = new Promise((resolve) => {
    const objectStore = tx.objectStore(store);
    const read = objectStore.get(key);
    let refused = false;
    objectStore.add(null, key).onerror = (event) => {
      refused = event.target.error?.name === "ConstraintError";
      event.stopPropagation();
    };
    read.onsuccess = () => tx.commit();
    tx.onabort = () => resolve((earlyCommit = refused));
    tx.oncomplete = () => resolve(false);
  });
}

/** Resolves with what `probeEarlyCommit` found (false if it was never asked), for tests. */
export function commitsEarly() {
  return probe ?? Promise.resolve(false);
}

/**
 * Reads `ids[i]` from `stores[i]` in `tx`, records what it found in `known[i]`
 * and resolves with the docs (undefined where absent) once all are read, while
 * `tx` is still active for the writes computed on them.
 */
export function readDocs(tx, stores, known, ids) {
  return new Promise((resolve, reject) => {
    const docs = new Array(ids.length);
    let left = ids.length;
    ids.forEach((id, i) => {
      const request = tx.objectStore(stores[i]).get(id);
      request.onsuccess = () => {
        docs[i] = docText(request.result);
        if (docs[i] === undefined) known[i].delete(id);
        else known[i].set(id, docs[i]);
        if (--left === 0) resolve(docs);
      };
      request.onerror = () => reject(request.error);
    });
  });
}

/** The records of one `apply`, sent in one go by `run`. */
export class WriteBatch {
  constructor() {
    this.entities = [];
    this.checks = [];
    this.mutations = [];
  }

  /**
   * Writes an entity. With `check`, the entity must still be stored as `known`
   * says: if `known` has no doc for it, it is added (which fails if it exists);
   * otherwise it is read just before the put and compared.
   */
  entity(store, known, id, doc, ix, check) {
    const expected = check ? known.get(id) : undefined;
    this.entities.push({ store, known, record: { id, doc, ix }, check, expected });
  }

  /** Checks, without writing, that `known` is right about one entity. */
  check(store, known, id) {
    this.checks.push({ store, id, expected: known.get(id) });
  }

  mutation(doc) {
    this.mutations.push({ doc });
  }

  /**
   * Resolves with the outbox keys once committed, or with null when a check
   * failed (the transaction is then aborted and nothing was written). Rejects
   * when the transaction fails for any other reason. `fault` makes it fail on
   * purpose, for tests: "constraint", "lost-before-commit", "lost-after-commit".
   *
   * Where the engine keeps a transaction atomic after `commit()` (see
   * `probeEarlyCommit`), the transaction is committed as soon as no check can
   * still abort it: at once when there are no reads to compare, else once the
   * last one matched. That spares the round trip in which the browser would
   * first report every request's success to the page.
   */
  run(tx, fault) {
    const early = earlyCommit && fault !== "lost-before-commit";
    let stale = false;
    let reads = 0;
    const expect = (store, id, expected) => {
      reads++;
      const read = store.get(id);
      read.onsuccess = () => {
        if (stale) return;
        if (docText(read.result) !== expected) {
          stale = true;
          tx.abort();
        } else if (--reads === 0 && early) {
          tx.commit();
        }
      };
    };
    // Every check reads before any write, so each sees the entity as stored before the batch.
    for (const { store, id, expected } of this.checks) expect(tx.objectStore(store), id, expected);
    for (const { store, record, check, expected } of this.entities) {
      if (check && expected !== undefined) expect(tx.objectStore(store), record.id, expected);
    }
    for (const { store, record, check, expected } of this.entities) {
      const objectStore = tx.objectStore(store);
      if (check && expected === undefined) {
        objectStore.add(record).onerror = (event) => {
          if (event.target.error && event.target.error.name === "ConstraintError") stale = true;
        };
      } else {
        objectStore.put(record);
      }
    }
    const outbox = tx.objectStore("outbox");
    const appends = this.mutations.map((mutation) => outbox.add(mutation));
    // `clientId` exists: this add fails with ConstraintError and aborts the transaction.
    if (fault === "constraint") tx.objectStore("meta").add("duplicate", "clientId");
    if (reads === 0 && early) tx.commit();
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => {
        if (fault === "lost-after-commit") return reject(loseConnection(tx));
        for (const { known, record } of this.entities) known.set(record.id, record.doc);
        resolve(appends.map((append) => append.result));
      };
      tx.onabort = () => {
        if (fault === "lost-before-commit") reject(loseConnection(tx));
        else if (stale) resolve(null);
        else reject(abortError(tx));
      };
      if (fault === "lost-before-commit") tx.abort();
    });
  }

  /**
   * Finds out, in `tx`, whether `run` stored this batch when the connection
   * was lost before it could tell: resolves with the outbox keys of its
   * mutations if every entity it wrote is stored as it wrote it, with null if
   * every one is stored as it was before (`known`), and rejects otherwise.
   */
  outcome(tx) {
    const written = new Map();
    for (const entity of this.entities) written.set(`${entity.store}\u0000${entity.record.id}`, entity);
    let stored = 0;
    let untouched = 0;
    for (const { store, known, record } of written.values()) {
      const read = tx.objectStore(store).get(record.id);
      read.onsuccess = () => {
        const doc = docText(read.result);
        if (doc === record.doc) stored++;
        else if (doc === known.get(record.id)) untouched++;
      };
    }
    const outbox = tx.objectStore("outbox");
    const keys = outbox.getAllKeys();
    const docs = outbox.getAll();
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => {
        if (untouched === written.size) return resolve(null);
        if (stored !== written.size) {
          return reject(new Error("the connection to IndexedDB was lost during a write, and another tab or worker " +
            "has changed the same entities since: whether the write was stored cannot be told"));
        }
        for (const { known, record } of this.entities) known.set(record.id, record.doc);
        // The batch's mutations are the newest outbox entries with their docs.
        const found = new Array(this.mutations.length).fill(0);
        let m = this.mutations.length - 1;
        for (let i = docs.result.length - 1; i >= 0 && m >= 0; i--) {
          if (docs.result[i].doc === this.mutations[m].doc) found[m--] = keys.result[i];
        }
        resolve(found);
      };
      tx.onabort = () => reject(abortError(tx));
    });
  }
}

const LOST = "Connection to Indexed Database server lost. Refresh the page to try again";

/** The error WebKit fails requests with when its IndexedDB process went away. */
function connectionLost() {
  return new DOMException(LOST, "UnknownError");
}

/**
 * Does to the connection of `tx` (finished, or aborted as the loss aborts it)
 * what the browser does when it loses it; returns the error it reports.
 */
function loseConnection(tx) {
  tx.db.close();
  return connectionLost();
}
