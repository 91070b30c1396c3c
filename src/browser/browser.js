// The JS half of Tideway's browser code: the few places where a plain JS
// function beats a chain of calls across the wasm boundary.
//
// It is one module on purpose. Each JS module of a wasm-bindgen crate is a
// file that the page or worker fetches while it loads the library, and
// sibling modules are fetched in parallel; one module is one request after
// the generated glue.

// ---------------------------------------------------------------------------
// The contract with Rust (src/browser/mod.rs spells out the same; a browser
// test compares the two sides through `contract()`)

/**
 * What separates the strings Rust packs into one text (see `Outgoing` in
 * src/store/indexeddb/pack.rs): NUL, which neither an entity id nor JSON text holds.
 */
const SEPARATOR = "\0";

/** A write's op code is its collection's position `<< OP_SHIFT`, ORed with its kind. */
const OP_SHIFT = 2;
/** What a write of `WriteBatch.send` does: `op & KIND`. */
const KIND = (1 << OP_SHIFT) - 1;
/** Writes an entity. */
const WRITE = 0;
/**
 * Writes an entity that must still be stored as `known` says: if `known` has
 * no doc for it, it is added (which fails if it exists); otherwise it is read
 * just before the put and compared.
 */
const CHECKED_WRITE = 1;
/** Checks, without writing, that `known` is right about one entity. */
const CHECK = 2;
/**
 * Acknowledges an entity: its new doc, which changes nothing but sync
 * metadata, goes to the log in `ACKS` (made on the doc `known` holds) instead
 * of into its record. It carries no `ix`: its index keys are as stored.
 */
const ACK = 3;
/** The object store of the acknowledgement log (see `src/store/layout.rs`). */
const ACKS = "acks";

/** The failures a test can make a write meet (`WriteBatch.inject`). */
const FAULTS = ["constraint", "lost-before-commit", "lost-after-commit"];

/** An entity store's record. */
export function entityRecord(id, doc, ix) { return { id, doc, ix }; }

/** An outbox record as written; IndexedDB adds its key, `mutationId`. */
export function outboxRecord(doc) { return { doc }; }

/** This side of the contract, for the test that compares it with Rust's. */
export function contract() {
  return {
    separator: SEPARATOR,
    opShift: OP_SHIFT,
    kinds: { write: WRITE, checkedWrite: CHECKED_WRITE, check: CHECK, ack: ACK },
    acksStore: ACKS,
    faults: FAULTS,
    entityRecord: Object.keys(entityRecord("", "", {})),
    outboxRecord: Object.keys(outboxRecord("")),
    // The chunks `Loader` reads a store of `count` records in.
    loadChunks(count) {
      const sizes = [];
      for (let left = count; left > 0; left -= sizes[sizes.length - 1]) sizes.push(chunkSize(left));
      return sizes;
    },
    loadLimits: { chunk: LOAD_CHUNK, tail: LOAD_TAIL },
    // The one UTF-8 JSON array a chunk's docs reach Rust as.
    jsonArray,
  };
}

// ---------------------------------------------------------------------------
// Values from JS (src/js/convert.rs)

export function deepFreeze(value) {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze(value[key]);
  }
  return value;
}
export function appendRecords(records, json) {
  for (const record of JSON.parse(json)) records.push(deepFreeze(record));
}
export function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * `bulkPut`'s entries from `start` to `end` as one JSON text, `[[id or null,
 * data], ...]`, when every one is `{ id?, data }` with a string id (if any)
 * and data that JSON holds exactly: what `data_from_js` in Rust accepts, as
 * it would read it. Otherwise null: the entries are then read one by one,
 * which says what is wrong.
 */
export function entriesJson(entries, maxDepth, start, end) {
  const pairs = new Array(end - start);
  for (let i = start; i < end; i++) {
    const entry = entries[i];
    if (!isPlainObject(entry) || typeof entry.toJSON === "function") return null;
    for (const key of Object.keys(entry)) if (key !== "id" && key !== "data") return null;
    const { id, data } = entry;
    if ((id !== undefined && typeof id !== "string") || !isExactData(data, maxDepth)) return null;
    pairs[i - start] = [id ?? null, data];
  }
  return JSON.stringify(pairs);
}

/** An entity's data as JSON text, when `data_from_js` in Rust would accept it as JSON holds it; else null. */
export function dataJson(data, maxDepth) {
  return isExactData(data, maxDepth) ? JSON.stringify(data) : null;
}

function isExactData(data, maxDepth) {
  return isPlainObject(data) && isExactJson(data, 1, maxDepth);
}

/**
 * Whether JSON text holds `value` as `json_from_js` reads it: plain objects
 * (fields holding undefined left out), arrays without undefined, strings,
 * booleans, null, and finite numbers other than integers too large to be
 * exact, nested at most `maxDepth` deep. Nothing may have a toJSON of its own.
 */
function isExactJson(value, depth, maxDepth) {
  if (depth > maxDepth) return false;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && (Number.isSafeInteger(value) || !Number.isInteger(value));
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (typeof value.toJSON === "function") return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (value[i] === undefined || !isExactJson(value[i], depth + 1, maxDepth)) return false;
    }
    return true;
  }
  if (!isPlainObject(value)) return false;
  for (const key of Object.keys(value)) {
    const item = value[key];
    if (item !== undefined && !isExactJson(item, depth + 1, maxDepth)) return false;
  }
  return true;
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

  /** Forgets the entities of `ids` (joined by NUL): they changed in the mirror. */
  evict(ids) {
    for (const id of ids.split(SEPARATOR)) this.records.set(id, null);
  }

  /** Forgets everything: the database was closed. */
  clear() {
    this.records = new Map();
    this.docs = new Map();
  }
}

// ---------------------------------------------------------------------------
// The IndexedDB store's transactions (src/store/indexeddb/)

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

// The acknowledgement log: each record `{ entries }`, `entries` a flat array of
// `store, id, before, after` (see `src/store/layout.rs`).

/** Each transaction's read of the log (`readAcks`), and what it holds by entity (`ackChains`). */
const ackReads = new WeakMap();
const ackIndexes = new WeakMap();

/**
 * What a connection has read of the log (see `readAcks`): `entries` of each
 * record by key, in key order; `last`, the highest key read; and `chains`
 * (see `chainEntries`) of all those entries, null while there are none.
 */
class SeenLog {
  constructor() {
    this.entries = new Map();
    this.last = null;
    this.chains = null;
  }

  /**
   * Brings the log up to what a transaction read: `keys`, every key of the
   * log, and `added`, the records after `after` (this log's `last` when the
   * transaction asked), in key order. Records up to those it read that the
   * log no longer holds (folded) leave, and their entries with them.
   */
  update(keys, added, after) {
    const newest = Math.max(after ?? -Infinity, keys.length > 0 ? keys[keys.length - 1] : -Infinity);
    const held = new Set(keys);
    let folded = false;
    for (const key of this.entries.keys()) {
      if (key <= newest && !held.has(key)) {
        this.entries.delete(key);
        folded = true;
      }
    }
    const start = keys.length - added.length;
    for (let i = 0; i < added.length; i++) {
      // Another transaction of this connection may have read it already.
      if (this.entries.has(keys[start + i])) continue;
      this.entries.set(keys[start + i], added[i].entries);
      if (!folded) this.chains = chainEntries(this.chains ?? new Map(), added[i].entries);
    }
    if (newest > (this.last ?? -Infinity)) this.last = newest;
    if (folded) this.chains = [...this.entries.values()].reduce(chainEntries, new Map());
    if (this.entries.size === 0) this.chains = null;
    return this.chains;
  }
}

/** Each connection's `SeenLog`. */
const seenLogs = new WeakMap();

/**
 * Asks, in `tx` (with `ACKS` in its scope), for the log, once: its keys, and
 * the records its connection has not read yet. Records of the log never
 * change (a batch adds them, a fold deletes the oldest) and their keys only
 * grow, so a connection reads each record once, however many transactions
 * apply the log. A transaction that could miss a record another one read
 * has finished before that record was added: one that adds to the log, or
 * folds it, waits for every earlier transaction on it to finish.
 *
 * Every reader of entities asks before its first read of one: requests answer
 * in the order they were made, so the log is there when a record arrives.
 * Resolves (`onsuccess`) once both requests have.
 */
export function readAcks(tx) {
  let read = ackReads.get(tx);
  if (read === undefined) {
    const acks = tx.objectStore(ACKS);
    const last = seenLogs.get(tx.db)?.last ?? null;
    read = { keys: acks.getAllKeys(), added: acks.getAll(last === null ? undefined : IDBKeyRange.lowerBound(last, true)), after: last };
    ackReads.set(tx, read);
  }
  return read.added;
}

/**
 * Adds the `entries` of one record of the log to `chains`: `entityKey` ->
 * `{ store, id, steps }`, `steps` that entity's `[before, after, ...]` in log
 * order.
 */
function chainEntries(chains, entries) {
  for (let j = 0; j < entries.length; j += 4) {
    const key = entityKey(entries[j], entries[j + 1]);
    const chain = chains.get(key);
    if (chain === undefined) chains.set(key, { store: entries[j], id: entries[j + 1], steps: [entries[j + 2], entries[j + 3]] });
    else chain.steps.push(entries[j + 2], entries[j + 3]);
  }
  return chains;
}

/** `doc` with each step of a chain made on the doc so far applied, in order. */
function applySteps(doc, steps) {
  for (let j = 0; j < steps.length; j += 2) if (steps[j] === doc) doc = steps[j + 1];
  return doc;
}

/** The chains (`chainEntries`) of the whole log as `tx` read it; null when it is empty. */
function ackChains(tx) {
  let chains = ackIndexes.get(tx);
  if (chains === undefined) {
    const { keys, added, after } = ackReads.get(tx);
    let seen = seenLogs.get(tx.db);
    if (seen === undefined) seenLogs.set(tx.db, (seen = new SeenLog()));
    chains = seen.update(keys.result, added.result, after);
    ackIndexes.set(tx, chains);
  }
  return chains;
}

/**
 * The doc of entity `id` of `store` as it stands, `record` being what `tx`
 * read of it (undefined where absent): the record's doc, then each logged
 * acknowledgement made on the doc so far, in log order. One made on a doc
 * that was written over since matches nothing.
 */
export function settledDoc(tx, store, id, record) {
  return settledText(tx, store, id, docText(record));
}

/** `settledDoc` of a record whose doc is `doc` (undefined: absent). */
function settledText(tx, store, id, doc) {
  const chain = doc === undefined ? undefined : ackChains(tx)?.get(entityKey(store, id));
  return chain === undefined ? doc : applySteps(doc, chain.steps);
}

/**
 * The most acknowledgements one record of the log holds: a batch's are split
 * into records of this many, each folded in a transaction of its own, so that
 * a write made meanwhile waits for a short one at most.
 */
const ACKS_PER_RECORD = 250;

/** How long after the last batch of acknowledgements the log is folded. */
const FOLD_DELAY_MS = 1000;
/** Each connection's timer for `foldAcksSoon`. */
const folds = new WeakMap();

/**
 * Folds the log into the entities' records once no batch was added to it for
 * `FOLD_DELAY_MS`: after a sync, not during one, whose recording it would
 * slow down. One record of the log per transaction (`ACKS_PER_RECORD`), so
 * that a write waits for a short one at most. A failure (the connection
 * closed) leaves the log as it is, for the next fold.
 */
export function foldAcksSoon(db) {
  clearTimeout(folds.get(db));
  folds.set(db, setTimeout(async () => {
    folds.delete(db);
    try {
      while (await foldAcks(db));
    } catch {
      // Folded by the next sync, or the next open.
    }
  }, FOLD_DELAY_MS));
}

/**
 * Folds the log's oldest record into the entities' records in one
 * transaction on `db`: each entity it names whose doc it changes is written
 * back as it stands. Doing so changes no entity's doc as it stands, so it
 * leaves no commit mark. Resolves with whether more of the log is left.
 */
export function foldAcks(db) {
  const stores = Array.from(db.objectStoreNames).filter((name) => name.startsWith("e:"));
  const tx = db.transaction([...stores, ACKS], "readwrite");
  const acks = tx.objectStore(ACKS);
  return new Promise((resolve, reject) => {
    let left = 0;
    const oldest = acks.openCursor();
    oldest.onsuccess = () => {
      const batch = oldest.result;
      if (batch === null) return;
      for (const { store, id, steps } of chainEntries(new Map(), batch.value.entries).values()) {
        const objectStore = tx.objectStore(store);
        const read = objectStore.get(id);
        read.onsuccess = () => {
          const stored = docText(read.result);
          const doc = applySteps(stored, steps);
          if (doc !== stored) objectStore.put(entityRecord(id, doc, read.result.ix));
        };
      }
      acks.delete(batch.primaryKey);
      const count = acks.count();
      count.onsuccess = () => {
        left = count.result;
      };
    };
    tx.oncomplete = () => resolve(left > 0);
    tx.onabort = () => reject(abortError(tx));
  });
}

/**
 * `docs` (texts, or undefined where there is none) as one text, joined by
 * `SEPARATOR`, an absent doc empty. Rust takes it with `encodeInto`: one
 * native encoding, where handing it one string per doc copies each a
 * character at a time in JS.
 */
export function joinDocs(docs) {
  return docs.join(SEPARATOR);
}

/**
 * Encodes `text` as UTF-8 into `into` (a view of wasm memory): the bytes
 * written, or -1 if they did not fit.
 */
export function encodeInto(text, into) {
  const { read, written } = encoder.encodeInto(text, into);
  return read === text.length ? written : -1;
}

/** Decodes the docs earlier versions stored as UTF-8 bytes; fails on bytes that are not UTF-8. */
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads up to `limit` entries of the outbox after key `after` in `tx`:
 * resolves with their keys (a `Float64Array`) and their docs (`joinDocs`,
 * absent where unreadable).
 */
export function readOutbox(tx, after, limit) {
  return new Promise((resolve, reject) => {
    const request = tx.objectStore("outbox").getAll(IDBKeyRange.lowerBound(after, true), limit);
    request.onsuccess = () => {
      const records = request.result;
      resolve([Float64Array.from(records, (record) => record.mutationId), joinDocs(records.map(outboxDoc))]);
    };
    request.onerror = () => reject(request.error);
  });
}

/** An outbox record's doc as text, or undefined where it holds none. */
function outboxDoc({ doc }) {
  if (typeof doc === "string") return doc;
  try {
    return strictDecoder.decode(doc);
  } catch {
    return undefined;
  }
}

/** For each of the entities at `positions` (see `Entities`), the doc its store's `known` map holds. */
export function knownDocs(knowns, positions, ids) {
  return new Entities([], knowns, positions, ids).knownDocs();
}

/**
 * `docs` as one JSON array in UTF-8, each encoded natively straight into
 * place: much faster than handing Rust one string of megabytes, and than
 * joining the docs first.
 */
function jsonArray(docs) {
  // One byte per UTF-16 code unit, as for ASCII, and one for each "[", "," and
  // "]"; grown when a doc needs more.
  let bytes = new Uint8Array(docs.reduce((size, doc) => size + doc.length + 1, 2));
  let at = 0;
  for (let j = 0; j < docs.length; j++) {
    bytes[at++] = j === 0 ? 0x5b : 0x2c; // "[" then ","
    let { read, written } = encoder.encodeInto(docs[j], bytes.subarray(at));
    // Until the doc fits with a byte to spare for the "," or "]" after it: a
    // typed array drops a write past its end without a word.
    while (read < docs[j].length || at + written === bytes.length) {
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
/**
 * The share of what is left (past the last chunk) that a chunk holds, up to
 * `LOAD_CHUNK`: chunks hold `LOAD_CHUNK` records until a store's end nears,
 * then each is smaller than the one before.
 */
const LOAD_SHARE = 0.5;
/** The fewest records a chunk before the last asks for (fewer only when fewer are left). */
const LOAD_LEAST = 1000;
/**
 * How many records a store's last chunk holds (fewer in a smaller store): the
 * records of the others are built while IndexedDB reads the next chunk, the
 * last chunk's on first read, so that open need not wait for them.
 */
const LOAD_TAIL = 250;

/**
 * Reads every record of `stores` in one transaction, chunk by chunk, and hands
 * each chunk's docs over as one JSON array in UTF-8. When the database's
 * image (see `saveImage`) was left at the last commit mark, the docs come from
 * it, in one read; otherwise from the stores: the request for the next chunk
 * is made before a chunk is handed over, so IndexedDB reads it while Rust
 * parses this one and the records reads will give are built (`records` maps,
 * id -> record): most first reads after open then find their record built.
 * Chunks shrink towards a store's end (each store is counted first), so that
 * little is left to do once the last one arrives. Refills each `known` map
 * (id -> doc text) on the way.
 */
export class Loader {
  constructor(db, stores, known, records, commits) {
    this.tx = db.transaction([...Array.from(stores), "meta", ACKS], "readonly");
    this.stores = stores;
    this.known = known;
    this.records = records;
    /** To call once every store is read: the maps then hold everything at the mark read before them. */
    this.read = commits.fullRead(this.tx);
    /** The chunks asked for and not yet taken: one at a time is in flight. */
    this.chunks = [];
    /** The image being handed over (see `imageOf`), or null when the stores are read. */
    this.image = null;
    // Applied to the docs as they are read; then folded in the background.
    readAcks(this.tx).onsuccess = () => {
      if (ackChains(this.tx) !== null) foldAcksSoon(db);
    };
    // Requests answer in the order they were made: the mark is read when the image's is.
    const last = commits.last(this.tx);
    const meta = this.tx.objectStore("meta");
    /** Settles once it is known where the docs come from. */
    this.started = new Promise((resolve, reject) => {
      const fail = (request) => () => reject(request.error ?? abortError(this.tx));
      const fromStores = () => {
        // Once every doc is read, the next open can be given an image.
        const read = this.read;
        this.read = () => {
          read();
          saveImageSoon(db, stores, known, commits);
        };
        this.request(0, null, 0);
        resolve();
      };
      const imageMark = meta.get(IMAGE_MARK_KEY);
      imageMark.onerror = fail(imageMark);
      imageMark.onsuccess = () => {
        const mark = markOf(last);
        if (mark === "" || imageMark.result !== mark) return fromStores();
        const image = meta.get(IMAGE_KEY);
        const keys = meta.getAllKeys(IMAGE_PARTS);
        const parts = meta.getAll(IMAGE_PARTS);
        for (const request of [image, keys, parts]) request.onerror = fail(request);
        parts.onsuccess = () => {
          this.image = imageOf(image.result, keys.result, parts.result, mark, stores);
          if (this.image === null) return fromStores();
          commits.imaged = mark;
          // The next save keeps the parts whose docs it finds the same.
          savedImages.set(db, this.image.parts);
          resolve();
        };
      };
    });
    this.started.catch(() => {}); // reported by `next`
  }

  /**
   * Resolves with the next chunk, or null after the last: `{ store, json, left }`,
   * `store` an index into `stores`, `left` how many records of that store this
   * chunk and the ones after it hold, as counted when its read began.
   */
  async next() {
    await this.started;
    if (this.image !== null) return this.fromImage();
    return this.chunks.shift() ?? null;
  }

  /**
   * Asks for the next chunk of `store`: the records after key `after` (from the
   * first, counting them, when null), `left` of them not read yet.
   */
  request(store, after, left) {
    if (store === this.stores.length) return this.read();
    const objectStore = this.tx.objectStore(this.stores[store]);
    const chunk = new Promise((resolve, reject) => {
      const fail = (request) => () => reject(request.error ?? abortError(this.tx));
      const read = (left, size) => {
        const request = objectStore.getAll(after === null ? null : IDBKeyRange.lowerBound(after, true), size);
        request.onsuccess = () => {
          const records = request.result;
          const unread = left;
          left -= records.length;
          const more = records.length === size && left > 0;
          if (more) this.request(store, records[records.length - 1].id, left);
          else this.request(store + 1, null, 0);
          resolve(this.take(store, records.map((record) => record.id), records.map(docText), more, unread));
        };
        request.onerror = fail(request);
      };
      if (after !== null) return read(left, chunkSize(left));
      this.known[store].clear();
      this.records[store].clear();
      const count = objectStore.count();
      count.onsuccess = () => {
        // `getAll` with a count of 0 reads everything: an empty store reads nothing.
        if (count.result > 0) return read(count.result, chunkSize(count.result));
        this.request(store + 1, null, 0);
        resolve({ store, json: jsonArray([]), left: 0 });
      };
      count.onerror = fail(count);
    });
    chunk.catch(() => {}); // a failure is reported when the chunk is taken
    this.chunks.push(chunk);
  }

  /** The image's next chunk, cut as `request` would read the stores; null after the last. */
  fromImage() {
    const image = this.image;
    const store = image.store;
    if (store === this.stores.length) return null;
    const { ids, docs } = image.entries[store];
    const at = image.at;
    if (at === 0) {
      this.known[store].clear();
      this.records[store].clear();
    }
    const left = ids.length - at;
    const end = at + chunkSize(left);
    const more = end < ids.length;
    if (more) image.at = end;
    else {
      image.store++;
      image.at = 0;
      if (image.store === this.stores.length) this.read();
    }
    return this.take(store, ids.slice(at, end), docs.slice(at, end), more, left);
  }

  /**
   * Keeps the docs (`texts`, each record's as stored, undefined where absent)
   * of the entities `ids` and, if more of the store is on its way (`build`),
   * builds their records; the chunk for Rust (`left`: see `next`).
   */
  take(store, ids, texts, build, left) {
    const known = this.known[store];
    const built = this.records[store];
    const name = this.stores[store];
    for (let j = 0; j < ids.length; j++) {
      const doc = (texts[j] = settledText(this.tx, name, ids[j], texts[j]));
      known.set(ids[j], doc);
      if (build) built.set(ids[j], recordOfDoc(doc));
    }
    return { store, json: jsonArray(texts), left };
  }
}

/**
 * The meta key of the database's image: every entity's doc as stored at one
 * commit mark (see `saveImage`). It holds `{ mark, stores, parts }`, `parts`
 * the names of the records that hold the docs, in order: each `{ store, ids,
 * docs }` under the key `[IMAGE_KEY, name]`. A part is never changed once
 * stored, and its name (the mark it was stored at, and a number) is never
 * given to another, so an image whose parts are all there is the one named.
 */
const IMAGE_KEY = "image";
/** The keys of every part, those of an image and any left by a save that did not end. */
const IMAGE_PARTS = IDBKeyRange.bound([IMAGE_KEY], [IMAGE_KEY, []]);
/** The meta key of the mark the image was left at, read before the image itself. */
const IMAGE_MARK_KEY = "imageMark";
/**
 * How a context saves the image: by itself `delayMs` after the last commit,
 * taking the docs of `slice` entities per task (about 2 ms of the thread for
 * 10k notes here, once its code is optimised), in parts of about `partLength`
 * UTF-16 code units of docs (a few ms of the thread to store each).
 */
const imageTiming = { delayMs: 2000, slice: 10_000, partLength: 1_000_000 };
/**
 * The share of the origin's quota past which no image is kept: the image is
 * a second copy of the docs, and must not take room the app's writes need.
 */
const IMAGE_ROOM = 0.5;
/** Each connection's pending image, `{ timer, save }` (see `saveImageSoon`). */
const pendingImages = new Map();
/**
 * The parts of the image each connection last saved or read (see
 * `imageParts`), each `{ key, store, ids, docs, length }`: the next save keeps
 * those whose docs it finds the same.
 */
const savedImages = new WeakMap();
/** How many parts this realm has named (see `IMAGE_KEY`). */
let partNames = 0;
/**
 * The origin's storage as last estimated, `{ usage, quota, at }` (see
 * `estimateStorage`); null until known, or where the engine does not say.
 */
let storageEstimate = null;

/**
 * The image `value` for `stores`, in their order, if it was left at `mark`,
 * every part it names is among `parts` (under `keys`, as `getAll` and
 * `getAllKeys` read them) and they hold every one of `stores`: `{ entries,
 * store, at, parts }`, `entries` each store's `{ ids, docs }`, `store` and
 * `at` where `Loader` hands it over from, `parts` as `savedImages` keeps
 * them. Null otherwise: the stores are read instead.
 */
function imageOf(value, keys, parts, mark, stores) {
  if (value?.mark !== mark || !Array.isArray(value.stores) || !Array.isArray(value.parts)) return null;
  const stored = new Map(keys.map((key, i) => [key[1], parts[i]]));
  const held = new Map(value.stores.map((store) => [store, { ids: [], docs: [] }]));
  const named = [];
  for (const name of value.parts) {
    const part = stored.get(name);
    const into = held.get(part?.store);
    if (into === undefined) return null;
    const { ids, docs } = part;
    if (!Array.isArray(ids) || !Array.isArray(docs) || ids.length === 0 || ids.length !== docs.length) return null;
    // Each store's parts follow one another, in the order of their ids.
    const previous = named[named.length - 1];
    if (part.store === previous?.store ? !(previous.ids[previous.ids.length - 1] < ids[0]) : into.ids.length > 0) return null;
    let length = 0;
    for (let j = 0; j < ids.length; j++) {
      // As saved, every one is a string; anything else is not read as a doc.
      if (typeof ids[j] !== "string" || typeof docs[j] !== "string") return null;
      into.ids.push(ids[j]);
      into.docs.push(docs[j]);
      length += docs[j].length;
    }
    named.push({ key: [IMAGE_KEY, name], store: part.store, ids, docs, length });
  }
  const entries = [];
  for (const store of stores) {
    const entry = held.get(store);
    if (entry === undefined) return null;
    entries.push(entry);
  }
  return { entries, store: 0, at: 0, parts: named };
}

/**
 * Saves the database's image (`saveImage`) once `imageTiming.delayMs` went
 * by without another call for `db` (after a burst of commits, not during
 * one); until then it is pending, for `saveImageNow`.
 */
export function saveImageSoon(db, stores, knowns, commits) {
  estimateStorage();
  clearTimeout(pendingImages.get(db)?.timer);
  const pending = { timer: undefined, save: undefined, superseded: false };
  // Saved part by part, the image stays pending until it is saved: a
  // `saveImageNow` (a close, say) then saves it again in one transaction, which
  // a closing connection still finishes, and the save part by part stops.
  pending.save = (partByPart) => {
    if (!partByPart) {
      pending.superseded = true;
      pendingImages.delete(db);
    }
    const stopped = partByPart ? () => pending.superseded : null;
    // The connection closed, or the quota is reached: the next open reads the stores.
    const saving = saveImage(db, stores, knowns, commits, stopped).catch(() => false);
    if (partByPart) saving.then(() => pendingImages.get(db) === pending && pendingImages.delete(db));
    return saving;
  };
  pending.timer = setTimeout(() => pending.save(true), imageTiming.delayMs);
  pendingImages.set(db, pending);
}

/**
 * Estimates the origin's storage, for `saveImage`, unless it was less than a
 * second ago: after a commit, so that the estimate counts what it stored.
 */
function estimateStorage() {
  const now = Date.now();
  if (now - (storageEstimate?.at ?? -Infinity) < 1000) return;
  storageEstimate = { usage: storageEstimate?.usage, quota: storageEstimate?.quota, at: now };
  globalThis.navigator?.storage?.estimate?.().then(
    ({ usage, quota }) => (storageEstimate = { usage, quota, at: now }),
    () => {},
  );
}

/**
 * Whether an image of `length` UTF-16 code units, in place of one of
 * `replaced` (counted in the usage), leaves the origin within `IMAGE_ROOM` of
 * its quota, as last estimated (yes while not known).
 */
function roomForImage(length, replaced) {
  const { usage, quota } = storageEstimate ?? {};
  return !(quota > 0 && usage >= 0) || usage - replaced + length <= quota * IMAGE_ROOM;
}

/** Sets `imageTiming` (tests); returns what it was, as `[delayMs, slice, partLength]`. */
export function setImageTiming(delayMs, slice, partLength) {
  const before = [imageTiming.delayMs, imageTiming.slice, imageTiming.partLength];
  Object.assign(imageTiming, { delayMs, slice, partLength });
  return before;
}

/**
 * Saves `db`'s pending image now, if there is one: before its connection
 * closes, whose transactions still complete. Resolves with whether it saved one.
 */
export function saveImageNow(db) {
  const pending = pendingImages.get(db);
  if (pending === undefined) return Promise.resolve(false);
  clearTimeout(pending.timer);
  return pending.save(false);
}

/** Saves every pending image now (tests). */
export function saveImagesNow() {
  return Promise.all(Array.from(pendingImages.keys(), saveImageNow));
}

/**
 * Saves the image of the database: every entity's doc as the `knowns` maps
 * hold it now, each store's in the order of its keys, with the commit mark at
 * which they do (`Commits.seen`). An open whose transaction finds the same
 * mark last (`Loader`) reads it in three requests instead of every record: no
 * commit of entities was made since, as each one leaves a new mark
 * (`Commits.stamp`).
 *
 * The parts of the image this connection saved or read last that hold the
 * same docs are kept (`imageParts`); the others are stored, each once the one
 * before it is, in a task of its own: the thread is free in between. Given
 * `stopped`, the docs are taken `imageTiming.slice` entities per task, each
 * part goes in a readwrite transaction on `meta` of its own, so that a write
 * (which holds `meta` too, see `beginWrite`) waits for one part at most, and
 * the save stops once `stopped()` or a commit was taken in; otherwise the docs
 * are taken at once (a close clears the maps) and all parts go in one
 * transaction, which a connection about to close can still finish. Either
 * way, the parts only count once the image's record
 * names them, which is written, with `IMAGE_MARK_KEY`, in a transaction that
 * finds the mark the docs were taken at still the last one (no writer ran
 * between its read of that mark and its writes) and every part it names
 * stored; it deletes every other part. Where the origin's storage, as last
 * estimated, would be past `IMAGE_ROOM` of its quota, the image is deleted
 * instead. Resolves with whether it was saved.
 */
function saveImage(db, stores, knowns, commits, stopped = null) {
  const mark = commits.seen;
  if (mark === null || mark === "" || mark === commits.imaged) return Promise.resolve(false);
  const before = savedImages.get(db) ?? [];
  const taking = imageParts(stores, knowns, before);
  // The image there, as this connection saved or read it, which this one replaces.
  const replaced = before.reduce((sum, part) => sum + part.length, 0);
  if (stopped === null) return storeImage(db, stores, commits, mark, takeAll(taking), replaced, null);
  const taken = takeInSlices(taking, () => commits.seen === mark && !stopped());
  return taken.then((image) => image !== null && storeImage(db, stores, commits, mark, image, replaced, stopped));
}

/**
 * Stores `image` (`{ parts, length }`, see `imageParts`), taken at `mark`, in
 * place of an image of `replaced` UTF-16 code units, as `saveImage` tells.
 */
function storeImage(db, stores, commits, mark, image, replaced, stopped) {
  const partByPart = stopped !== null;
  let { parts } = image;
  // Where the image would take room the app's writes may need, the one there
  // is deleted instead, giving its room back.
  const roomy = roomForImage(image.length, replaced);
  return new Promise((resolve, reject) => {
    let saved = false;
    const finish = () => {
      if (saved) {
        commits.imaged = mark;
        savedImages.set(db, parts);
      }
      resolve(saved);
    };
    let shared = null;
    /**
     * The `meta` store in a readwrite transaction: the one shared, or part by
     * part one of its own. Throws if the connection closed.
     */
    const meta = () => {
      const tx = shared ?? db.transaction("meta", "readwrite", { durability: "relaxed" });
      if (tx !== shared) tx.onabort = () => reject(abortError(tx));
      if (!partByPart) shared = tx;
      return tx.objectStore("meta");
    };
    /** Ends without saving, once what was asked for is done. */
    const end = () => (partByPart ? finish() : (shared.oncomplete = finish));
    /** Calls `next` once `request` succeeded (part by part, once its transaction committed). */
    const then = (request, next) => {
      if (partByPart) request.transaction.oncomplete = next;
      else request.onsuccess = next;
    };
    /** The names of the parts stored, as a read of their keys found them. */
    const storedNames = (read) => new Set(read.result.map((key) => key[1]));
    /** Ends with the image's record, if the mark is still the last one and every part it names is stored. */
    const name = (store) => {
      const last = store.get(COMMIT_KEY);
      const stored = store.getAllKeys(IMAGE_PARTS);
      stored.onsuccess = () => {
        const present = storedNames(stored);
        const names = parts.map((part) => part.key[1]);
        if (markOf(last) !== mark || !names.every((name) => present.has(name))) return;
        const named = new Set(names);
        for (const key of stored.result) if (!named.has(key[1])) store.delete(key);
        store.put({ mark, stores: Array.from(stores), parts: names }, IMAGE_KEY);
        store.put(mark, IMAGE_MARK_KEY);
        saved = true;
      };
      store.transaction.oncomplete = finish;
    };
    /** The parts to store, once named. */
    const writes = [];
    const put = (next) => {
      try {
        // A handle that took in a commit since stops (the image would not be
        // read), as does a save another took over.
        if (partByPart && (commits.seen !== mark || stopped())) return finish();
        if (next === writes.length) return name(meta());
        const { key, store, ids, docs } = writes[next];
        then(meta().put({ store, ids, docs }, key), () => put(next + 1));
      } catch (error) {
        reject(error); // the connection closed
      }
    };
    try {
      const store = meta();
      if (!roomy) {
        savedImages.delete(db);
        store.delete(IMAGE_KEY);
        store.delete(IMAGE_MARK_KEY);
        store.delete(IMAGE_PARTS);
        store.transaction.oncomplete = finish;
        return;
      }
      // Nothing is stored where the mark moved on before the first part.
      const last = store.get(COMMIT_KEY);
      const stored = store.getAllKeys(IMAGE_PARTS);
      then(stored, () => {
        if (markOf(last) !== mark) return end();
        // Where another context's image replaced this one's since, parts to
        // keep may be gone with it: they are stored anew (the docs they hold
        // are those of the maps at the mark).
        const present = storedNames(stored);
        parts = parts.map((part) => (part.key === null || present.has(part.key[1]) ? part : { ...part, key: null }));
        for (const part of parts) {
          if (part.key !== null) continue;
          part.key = [IMAGE_KEY, `${mark}/${++partNames}`];
          writes.push(part);
        }
        put(0);
      });
    } catch (error) {
      reject(error); // the connection closed
    }
  });
}

/**
 * The image of the `knowns` maps, each that of the store at the same place in
 * `stores`: `{ parts, length }`, `length` how many UTF-16 code units its docs
 * come to, and `parts` each `{ key, store, ids, docs, length }`, each store's
 * docs in the order of their ids. The entities from one of the parts `before`
 * (see `savedImages`) up to the next one make a run: where a run holds the
 * same ids and docs as its part, the part is kept, key and all; otherwise the
 * run is cut anew into parts of about `imageTiming.partLength`, whose key is
 * null until `saveImage` names them. No entity leaves its store, so a save
 * after a few writes stores the few parts they fell in. A generator: it
 * stops after every `imageTiming.slice` entities or so (`takeInSlices`), and
 * returns the image once done.
 */
function* imageParts(stores, knowns, before) {
  const parts = [];
  let length = 0;
  for (let position = 0; position < knowns.length; position++) {
    const store = stores[position];
    const kept = before.filter((part) => part.store === store);
    const entries = yield* inIdOrder(knowns[position]);
    let at = 0;
    for (let i = 0; i < Math.max(kept.length, 1); i++) {
      const part = kept[i];
      const next = kept[i + 1]?.ids[0];
      let end = at;
      let same = part !== undefined;
      let held = 0;
      for (; end < entries.length && !(next !== undefined && entries[end][0] >= next); end++) {
        const [id, doc] = entries[end];
        if (same && (part.ids[end - at] !== id || part.docs[end - at] !== doc)) same = false;
        held += doc.length;
        if ((end + 1) % imageTiming.slice === 0) yield;
      }
      if (same && end - at === part.ids.length) parts.push(part);
      else yield* cutParts(parts, store, entries, at, end, held);
      length += held;
      at = end;
    }
  }
  return { parts, length };
}

/** What the generator `steps` returns, run at once. */
function takeAll(steps) {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * Resolves with what the generator `steps` returns, run a step per task while
 * `carryOn()`; with null once not.
 */
function takeInSlices(steps, carryOn) {
  return new Promise((resolve, reject) => {
    const next = () => {
      try {
        if (!carryOn()) return resolve(null);
        const step = steps.next();
        if (step.done) resolve(step.value);
        else setTimeout(next);
      } catch (error) {
        reject(error);
      }
    };
    next();
  });
}

/**
 * Cuts the `entries` from `at` to `end`, whose docs come to `held` code
 * units, into parts of about `imageTiming.partLength` of `store`, onto
 * `parts`; a step (see `imageParts`) after every `imageTiming.slice`.
 */
function* cutParts(parts, store, entries, at, end, held) {
  const share = held / Math.max(1, Math.round(held / imageTiming.partLength));
  let part = null;
  for (let k = at; k < end; k++) {
    const [id, doc] = entries[k];
    if (part === null || part.length >= share) {
      part = { key: null, store, ids: [], docs: [], length: 0 };
      parts.push(part);
    }
    part.ids.push(id);
    part.docs.push(doc);
    part.length += doc.length;
    if ((k + 1) % imageTiming.slice === 0) yield;
  }
}

/**
 * The `[id, doc]` entries of the map `known` that hold a doc, in the order of
 * their ids; a step (see `imageParts`) after every `imageTiming.slice`.
 */
function* inIdOrder(known) {
  const entries = [];
  let sorted = true;
  for (const entry of known) {
    if (typeof entry[1] !== "string") continue;
    if (sorted && entries.length > 0 && entry[0] < entries[entries.length - 1][0]) sorted = false;
    entries.push(entry);
    if (entries.length % imageTiming.slice === 0) yield;
  }
  // IndexedDB orders string keys by UTF-16 code units, as `<` does. A map a
  // load filled is in that order, with the ids written since at its end.
  if (!sorted) entries.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return entries;
}

/**
 * How many records to ask for next, `left` being unread: `LOAD_SHARE` of what
 * the chunks before the last must still read, between `LOAD_LEAST` and
 * `LOAD_CHUNK`; the last chunk, `LOAD_TAIL` or fewer, reads what is left. So a
 * store of any size is read in chunks of `LOAD_CHUNK` until its end nears.
 */
function chunkSize(left) {
  if (left <= LOAD_TAIL) return left;
  return Math.min(LOAD_CHUNK, left - LOAD_TAIL, Math.max(LOAD_LEAST, Math.floor((left - LOAD_TAIL) * LOAD_SHARE)));
}

/**
 * Begins a write on the entity stores at `positions` in `stores`, the outbox,
 * the meta store (which holds the last commit's mark, see `Commits`) and the
 * acknowledgement log.
 */
export function beginWrite(db, stores, positions) {
  const scope = Array.from(positions, (position) => stores[position]);
  scope.push("outbox", "meta", ACKS);
  return db.transaction(scope, "readwrite");
}

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
 * The entities of `stores` whose doc differs from what `knowns` (at the same
 * places) hold, read in one transaction on `db`: `[position, id, doc]` each,
 * the `known` maps brought up to date on the way. How a context catches up
 * with commits it missed: while it was frozen, or between its load and joining
 * the channel. While the maps hold every entity at the last mark (see
 * `Commits`), that mark is all it reads.
 */
export function changedDocs(db, stores, knowns, commits) {
  const tx = db.transaction([...Array.from(stores), "meta", ACKS], "readonly");
  const trusted = commits.seen;
  const read = commits.fullRead(tx);
  readAcks(tx);
  return new Promise((resolve, reject) => {
    const changed = [];
    const compare = (store, position) => {
      const request = tx.objectStore(store).getAll();
      request.onsuccess = () => {
        const known = knowns[position];
        for (const record of request.result) {
          const doc = settledDoc(tx, store, record.id, record);
          if (known.get(record.id) !== doc) {
            known.set(record.id, doc);
            changed.push([position, record.id, doc]);
          }
        }
      };
    };
    // While the maps hold every entity at the last mark, no commit went unheard: no store is read.
    const last = commits.last(tx);
    last.onsuccess = () => {
      if (trusted === null || markOf(last) !== trusted) Array.from(stores).forEach(compare);
    };
    tx.oncomplete = () => {
      read();
      resolve(changed);
    };
    tx.onabort = () => reject(abortError(tx));
  });
}

/**
 * The most characters of docs a commit's message carries (see `Commits.take`):
 * past it, the contexts that hear of the commit read its entities back instead.
 * Room for a push's answers (1000 entities of a note's size), while each
 * message, which every other context parses, and the docs that a context takes
 * from it into its wasm memory, which never shrinks, stay a few MB.
 */
const TOLD_DOCS_MAX = 1024 * 1024;

/** The meta key holding the mark the last transaction that wrote entities left. */
const COMMIT_KEY = "commit";
/** What makes this realm's marks differ from every other realm's. */
const REALM = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
let marks = 0;

/**
 * Whether a store's `known` maps hold every entity as stored, so that a
 * transaction may take an entity's doc from them instead of reading it.
 *
 * Every transaction that writes entities reads the mark the one before it
 * left in `meta` and leaves a new one (`stamp`). `seen` is the mark at which
 * the maps held everything: set by a full read (`Loader`, `changedDocs`), and
 * moved on by each of this store's own commits that found it still there,
 * and by each commit of another tab or worker that found it there too, once
 * this store has heard of that commit and read back what it wrote
 * (`readCommitted`) or taken it from the message (`toldDocs`). `seen` may
 * then lag behind the last mark, while the messages of later commits are on
 * their way: until they are taken in, no mark found is `seen`. A commit this
 * store did not hear of leaves a mark it cannot place: from then on no mark
 * it finds is `seen`, and every doc is read, until the next full read. Most
 * often such a commit is one another context made just before one of this
 * store's own, which found its mark: this store then keeps that `gap`, and
 * fills it when that commit's message arrives with its docs (`toldDocs`).
 * Entities are never removed from their stores (a delete leaves a tombstone),
 * so a map that saw every entity once stays complete with each commit it sees.
 */
export class Commits {
  constructor() {
    /** The mark at which the maps held every entity ("" before the first mark); null when unknown. */
    this.seen = null;
    /**
     * While `seen` is null, when the maps would hold every entity at `mark`
     * but for one commit of another context, from mark `from` to mark `to`,
     * that this store's own commits after it followed on from: `{ from, to,
     * mark, written }`, `written` the keys (`entityKey`) those own commits
     * wrote. Null otherwise.
     */
    this.gap = null;
    /** Each transaction's read of the last mark, made once (`last`). */
    this.reads = new WeakMap();
    /** This store's commits of entities since `take` last told one: how many, the last one's marks and what it wrote. */
    this.untold = { count: 0, marks: null, written: null };
    /**
     * Whether a commit later than the one that would complete the maps may
     * have been taken in already: read back as it is now, it came before
     * that one's message, which must then be read too rather than taken from
     * the message (see `toldDocs`), lest it bring back older docs for good.
     * Set by each read-back of a commit that does not follow on from the
     * maps; cleared once nothing can be later than what the maps hold (the
     * start of a full read, or the last mark found to be `seen`).
     */
    this.ahead = false;
    /** The mark the database's image is known to have been saved at (see `saveImage`), if any. */
    this.imaged = null;
  }

  /** The request reading, in `tx`, the mark the last commit before it left; `markOf` gives its result. */
  last(tx) {
    let read = this.reads.get(tx);
    if (read === undefined) {
      read = tx.objectStore("meta").get(COMMIT_KEY);
      this.reads.set(tx, read);
    }
    return read;
  }

  /**
   * Begins a full read of the stores in `tx`, which reads the last mark before
   * them: until it has succeeded, the maps are not trusted. Returns what to
   * call once it has.
   */
  fullRead(tx) {
    this.seen = null;
    this.gap = null;
    this.ahead = false;
    const last = this.last(tx);
    return () => {
      this.seen = markOf(last);
    };
  }

  /**
   * In `tx`, a readwrite transaction with `meta` in its scope, reads the last
   * mark. The stamp's `leave()` leaves a new one, once the transaction is
   * known to write entities (one that writes none leaves the mark as it is);
   * its `done(written)` is to be called once `tx` committed, with the
   * entities it wrote (`{ store, record }` each).
   */
  stamp(tx) {
    const last = this.last(tx);
    let mark = null;
    return {
      last,
      leave: () => {
        mark = `${REALM}.${++marks}`;
        tx.objectStore("meta").put(mark, COMMIT_KEY);
      },
      done: (written) => this.committed(markOf(last), mark, written),
    };
  }

  /**
   * One of this store's transactions committed, having found `before` and
   * left `mark` (null: none) with the entities `written`.
   */
  committed(before, mark, written) {
    // The last mark once this transaction committed.
    const last = mark ?? before;
    // What this commit wrote, into a gap's `written`: only a gap needs it.
    const note = (keys) => {
      for (const { store, record } of written ?? []) keys.add(entityKey(store, record.id));
      return keys;
    };
    if (before === this.seen) {
      this.seen = last;
    } else if (this.seen !== null) {
      // One commit unheard of, or more: only one can be filled in (see `gap`).
      this.gap = { from: this.seen, to: before, mark: last, written: note(new Set()) };
      this.seen = null;
    } else if (this.gap !== null && before === this.gap.mark) {
      this.gap.mark = last;
      note(this.gap.written);
    } else {
      this.gap = null;
    }
    if (mark !== null) this.untold = { count: this.untold.count + 1, marks: [before, mark], written };
  }

  /**
   * The mark at which the maps hold every entity once another context's
   * commit, which found the mark `marks[0]` and left `marks[1]`, is taken in
   * with its docs, if that commit is all they miss: `marks[1]` if they held
   * every entity at `marks[0]`, the gap's mark if it is the gap's commit;
   * null otherwise.
   */
  completedBy([before, after]) {
    if (this.seen !== null) return this.seen === before ? after : null;
    return this.gap !== null && this.gap.from === before && this.gap.to === after ? this.gap.mark : null;
  }

  /** The maps hold every entity at `mark`, having taken in the docs of the commit that `completedBy` answered it for. */
  complete(mark) {
    this.seen = mark;
    this.gap = null;
  }

  /**
   * Leaves a new mark in `tx` that no other context hears of (a schema
   * upgrade rewriting every entity): they all read every doc afterwards.
   */
  leave(tx) {
    tx.objectStore("meta").put(`${REALM}.${++marks}`, COMMIT_KEY);
  }

  /**
   * The marks of the commit just made, `[the one it found, the one it left,
   * docs]`, for the message that tells the other contexts of it, which names
   * the entities of `ids` (one text, see `SEPARATOR`), each of the store at
   * the same place in `positions` (`stores[p]`; none past its end). Null
   * unless exactly one commit of entities was made since the last call and
   * the message names every entity it wrote: the contexts that read those
   * back may then trust their maps again, so marks must never travel with
   * another commit's entities. `docs[i]` is the doc the commit stored for the
   * i-th entity named (null where it wrote none): a context whose maps held
   * every entity at the first mark takes them as stored without reading them
   * (see `toldDocs`). `docs` is null past `TOLD_DOCS_MAX` characters, and
   * unless `withDocs` (no other context is known to listen).
   */
  take(stores, positions, ids, withDocs) {
    const { count, marks, written } = this.untold;
    this.untold = { count: 0, marks: null, written: null };
    if (count !== 1) return null;
    // Only the entities' stores are looked up here, not their `known` maps.
    const named = new Entities(stores, [], positions, ids);
    // The ids named, by store: no key of store and id is built for each.
    const byStore = new Map();
    named.ids.forEach((id, i) => {
      const store = named.store(i);
      if (store === undefined) return;
      byStore.set(store, (byStore.get(store) ?? new Set()).add(id));
    });
    if (!written.every(({ store, record }) => byStore.get(store)?.has(record.id))) return null;
    if (!withDocs) return [...marks, null];
    const docs = new Map();
    for (const { store, record } of written) {
      const stored = docs.get(store) ?? new Map();
      docs.set(store, stored.set(record.id, record.doc));
    }
    const told = named.ids.map((id, i) => docs.get(named.store(i))?.get(id) ?? null);
    const size = told.reduce((sum, doc) => sum + (doc?.length ?? 0), 0);
    return [...marks, size <= TOLD_DOCS_MAX ? told : null];
  }

  /**
   * Another context's commit left `after` in place of `before`, and the
   * entities it wrote have just been read back: if the maps held every entity
   * at `before`, they hold every entity at `after`. That commit was the only
   * one between the two marks, and each of its entities was read after it.
   * Should a later commit have changed some of them since, the last mark is
   * no longer `after`, so nothing takes docs from the maps on its word; the
   * read-back of that commit, which follows on from `after`, moves `seen` on.
   */
  advance([before, after]) {
    if (this.seen === before) this.seen = after;
  }

  /** Forgets `seen`: the maps may have missed a commit (the connection was lost during one). */
  forget() {
    this.seen = null;
    this.gap = null;
  }
}

/** One key for the entity `id` of the object store `store`. */
function entityKey(store, id) {
  return `${store}\u0000${id}`;
}

/** The mark a read of it found: "" before the first commit left one. */
function markOf(read) {
  return read.result ?? "";
}

/**
 * The entities Rust names in one call: the ids of `ids` (one text, see
 * `SEPARATOR`), each of the object store at the same place in `positions`
 * (`stores[p]`, whose `known` map is `knowns[p]`).
 */
class Entities {
  constructor(stores, knowns, positions, ids) {
    this.ids = positions.length === 0 ? [] : ids.split(SEPARATOR);
    // A copy: `positions` is a view of wasm memory, valid during that call only.
    this.positions = positions.slice();
    this.stores = stores;
    this.knowns = knowns;
  }

  /** The object store of the `i`-th entity. */
  store(i) {
    return this.stores[this.positions[i]];
  }

  /** The `known` map of the `i`-th entity's store. */
  known(i) {
    return this.knowns[this.positions[i]];
  }

  /** For each entity, the doc its store's `known` map holds, or undefined. */
  knownDocs() {
    return this.ids.map((id, i) => this.known(i).get(id));
  }
}

/**
 * `readEntities` of the entities at `positions` (see `Entities`), answered
 * from the `known` maps when they hold every entity as stored (see
 * `Commits`): then one read of the last mark, not one per id.
 */
export function currentDocs(tx, stores, knowns, positions, ids, commits) {
  const entities = new Entities(stores, knowns, positions, ids);
  if (commits.seen === null) return readEntities(tx, entities);
  const last = commits.last(tx);
  return new Promise((resolve, reject) => {
    last.onsuccess = () => {
      if (markOf(last) === commits.seen) {
        commits.ahead = false;
        resolve(entities.knownDocs());
      } else readEntities(tx, entities).then(resolve, reject);
    };
    last.onerror = () => reject(last.error);
  });
}

/**
 * Reads the entities at `positions` (see `Entities`) in `tx` (with the log
 * in its scope), as they stand (`settledDoc`), records what it found in their
 * `known` maps and resolves with the docs (undefined where absent) once all
 * are read, while `tx` is still active for the writes computed on them.
 */
export function readDocs(tx, stores, knowns, positions, ids) {
  return readEntities(tx, new Entities(stores, knowns, positions, ids));
}

/** `readDocs` of `entities` (see `Entities`). */
function readEntities(tx, entities) {
  return new Promise((resolve, reject) => {
    const docs = new Array(entities.ids.length);
    let left = docs.length;
    if (left > 0) readAcks(tx);
    entities.ids.forEach((id, i) => {
      const store = entities.store(i);
      const request = tx.objectStore(store).get(id);
      request.onsuccess = () => {
        docs[i] = settledDoc(tx, store, id, request.result);
        if (docs[i] === undefined) entities.known(i).delete(id);
        else entities.known(i).set(id, docs[i]);
        if (--left === 0) resolve(docs);
      };
      request.onerror = () => reject(request.error);
    });
  });
}

/**
 * `readDocs` of the entities another context's commit wrote, with that
 * commit's `marks` (see `Commits.take`; null if it sent none): the maps may
 * then hold every entity again (see `Commits.advance`). What is read is as
 * stored now, later commits included: when the commit does not follow on from
 * what the maps hold, one of those may be the commit whose message comes
 * next, taken in before its turn (see `Commits.ahead`).
 */
export function readCommitted(tx, stores, knowns, positions, ids, commits, marks) {
  const entities = new Entities(stores, knowns, positions, ids);
  if (marks === null || commits.completedBy(marks) === null) commits.ahead = true;
  return readEntities(tx, entities).then((read) => {
    if (marks !== null) commits.advance(marks);
    return read;
  });
}

/**
 * The docs another context's commit stored for the entities at `positions`
 * (see `Entities`), taken from its message (`docs[i]` for the i-th entity,
 * null where it wrote none, with its `marks`, see `Commits.take`) instead of
 * read: null unless that commit is all the maps miss (`Commits.completedBy`)
 * and no later commit was taken in before it (`Commits.ahead`). The maps then
 * hold every entity at the mark it left: each entity as that commit stored
 * it, or as the maps hold it where it wrote none or this store's own commits
 * wrote it since (see `Commits.gap`). Commits made after it may have changed
 * some of them already; their messages, which come after this one, bring
 * those changes in their turn.
 */
export function toldDocs(stores, knowns, positions, ids, commits, marks, docs) {
  const completed = commits.completedBy(marks);
  if (completed === null || commits.ahead) return null;
  const own = commits.gap?.written;
  const entities = new Entities(stores, knowns, positions, ids);
  const stored = entities.ids.map((id, i) => {
    const known = entities.known(i);
    if (docs[i] === null || own?.has(entityKey(entities.store(i), id))) return known.get(id);
    known.set(id, docs[i]);
    return docs[i];
  });
  commits.complete(completed);
  return stored;
}

/**
 * The records of one `apply`, in one transaction. Rust computes them a few
 * hundred writes at a time and hands each run over to `send`, so that
 * IndexedDB works on the first requests while the next ones are computed;
 * `run` then waits for the outcome.
 */
export class WriteBatch {
  /**
   * `stores` and `knowns`: each collection's object store name and map of the
   * docs last seen stored (id -> JSON text); `commits`: the store's `Commits`.
   */
  constructor(tx, stores, knowns, commits) {
    this.tx = tx;
    this.commits = commits;
    /** The read of the mark this batch finds, the new mark it leaves if it writes entities, and what to call once committed (see `Commits.stamp`). */
    this.stamp = commits.stamp(tx);
    /** The mark at which the maps held every entity as this batch is computed on them, if any. */
    this.seen = commits.seen;
    /** Whether the batch checks the mark (`gate`). */
    this.gated = false;
    /** A failure to meet on purpose (see `inject`); tests only. */
    this.fault = undefined;
    this.stores = stores;
    this.knowns = knowns;
    /** The entity records written, each `{ store, known, record }`, acknowledgements (`ACK`) included. */
    this.entities = [];
    /** The acknowledgements, as the log's `entries` (see `ACK`). */
    this.acks = [];
    this.mutations = [];
    /** The outbox requests, whose results are the mutations' keys. */
    this.appends = [];
    /** Check reads sent and not yet answered. */
    this.reads = 0;
    /** Whether a check failed: the transaction is then aborted. */
    this.stale = false;
    /** Whether `run` (or `abandon`) was called: nothing more will be sent. */
    this.sealed = false;
    /**
     * Where the engine keeps a transaction atomic after `commit()` (see
     * `probeEarlyCommit`), it is committed as soon as no check can still
     * abort it: once sealed, at once when there are no reads to compare, else
     * once the last one matched. That spares the round trip in which the
     * browser would first report every request's success to the page.
     */
    this.early = earlyCommit;
    // Rust makes the batch, sends it and calls `run` in one go. Should it stop
    // half way (a trap in wasm: out of memory, say), the runs already sent
    // must not commit on their own once this task ends.
    queueMicrotask(() => {
      if (!this.sealed) tx.abort();
    });
    /** The first failed request's error: engines differ in what the aborted transaction reports. */
    this.failure = null;
    // A failed request's error event reaches the transaction: one listener for all.
    tx.addEventListener("error", (event) => {
      const { error, source } = event.target;
      this.failure ??= error;
      // Only the add of an entity believed missing fails so: it exists after all.
      if (error?.name === "ConstraintError" && stores.includes(source?.name)) this.stale = true;
    });
  }

  /**
   * Sends a run of writes. Per write, `ops[i] >> 2` is its collection (an
   * index into `stores` and `knowns`) and `ops[i] & KIND` what it does.
   * `entities` holds, separated by NUL, each write's id and, unless it is a
   * CHECK, the entity's doc; `mutations` each entity write's mutation doc,
   * then the `ix` of every entity write but an ACK as one JSON array.
   *
   * The docs are slices of `entities`, which the `known` maps keep once the
   * batch is stored; it holds little else (the ids are the maps' keys).
   *
   * Check reads go first, so each sees its entity as stored before the batch:
   * a check is only ever made for an entity's first write in the batch, so no
   * write sent earlier touched that entity.
   */
  send(entities, mutations, ops) {
    const { tx } = this;
    const texts = entities.split(SEPARATOR);
    const docs = mutations.split(SEPARATOR);
    const ixs = JSON.parse(docs.pop());
    // While the maps hold every entity (see `Commits`), one check of the last
    // mark stands for every entity's: no other context has written since.
    const expect = (store, id, expected) => {
      if (this.seen !== null) return this.gate();
      readAcks(tx);
      this.expect(tx.objectStore(store).get(id), (record) => settledDoc(tx, store, id, record), expected);
    };
    const writes = [];
    let t = 0;
    for (const op of ops) {
      const store = this.stores[op >> OP_SHIFT];
      const known = this.knowns[op >> OP_SHIFT];
      const id = texts[t++];
      if ((op & KIND) === CHECK) {
        expect(store, id, known.get(id));
        continue;
      }
      if ((op & KIND) === ACK) {
        const record = { id, doc: texts[t++] };
        this.acks.push(store, id, known.get(id), record.doc);
        this.entities.push({ store, known, record });
        continue;
      }
      const entity = { store, known, record: { id, doc: texts[t++], ix: ixs[writes.length] } };
      const check = (op & KIND) === CHECKED_WRITE;
      if (check && known.has(id)) expect(store, id, known.get(id));
      writes.push({ entity, add: check && !known.has(id) });
      this.entities.push(entity);
    }
    for (const { entity: { store, record }, add } of writes) {
      if (add) tx.objectStore(store).add(record);
      else tx.objectStore(store).put(record);
    }
    const outbox = tx.objectStore("outbox");
    for (const doc of docs) {
      const mutation = outboxRecord(doc);
      this.mutations.push(mutation);
      this.appends.push(outbox.add(mutation));
    }
  }

  /**
   * Checks, once for the batch, that no other context has written since the
   * `known` maps held every entity (see `Commits`), which the batch was
   * computed on. A batch that only adds entities believed absent needs no
   * check: an add fails if the entity exists after all.
   */
  gate() {
    if (this.gated) return;
    this.gated = true;
    this.expect(this.stamp.last, () => markOf(this.stamp.last), this.seen);
  }

  /** A check: the transaction aborts, stale, unless `read`'s result (through `value`) is `expected`. */
  expect(read, value, expected) {
    this.reads++;
    read.onsuccess = () => {
      if (this.stale) return;
      if (value(read.result) !== expected) {
        this.stale = true;
        this.tx.abort();
      } else if (--this.reads === 0 && this.early && this.sealed) {
        this.tx.commit();
      }
    };
  }

  /**
   * Makes this batch's transaction fail on purpose, as a browser makes it
   * fail, for tests: "constraint" (a request fails after the writes were
   * issued), "lost-before-commit",
   * "lost-after-commit" (the connection is lost before, or after, the commit).
   */
  inject(fault) {
    if (!FAULTS.includes(fault)) throw new Error(`no fault named ${fault}`);
    this.fault = fault;
    if (fault === "lost-before-commit") this.early = false;
  }

  /** Gives up before `run`: aborts the transaction, which then writes nothing. */
  abandon() {
    this.sealed = true;
    this.tx.abort();
  }

  /**
   * Once everything is sent: resolves with the outbox keys once committed, or
   * with null when a check failed (the transaction is then aborted and nothing
   * was written). Rejects when the transaction fails for any other reason.
   */
  run() {
    const { tx, fault } = this;
    this.sealed = true;
    for (let at = 0; at < this.acks.length; at += 4 * ACKS_PER_RECORD) {
      tx.objectStore(ACKS).add({ entries: this.acks.slice(at, at + 4 * ACKS_PER_RECORD) });
    }
    if (this.entities.length > 0) this.stamp.leave();
    // `clientId` exists: this add fails with ConstraintError and aborts the transaction.
    if (fault === "constraint") tx.objectStore("meta").add("duplicate", "clientId");
    if (this.reads === 0 && this.early) tx.commit();
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => {
        if (fault === "lost-after-commit") return reject(loseConnection(tx));
        for (const { known, record } of this.entities) known.set(record.id, record.doc);
        this.stamp.done(this.entities);
        if (this.acks.length > 0) foldAcksSoon(tx.db);
        if (this.entities.length > 0) saveImageSoon(tx.db, this.stores, this.knowns, this.commits);
        resolve(this.appends.map((append) => append.result));
      };
      tx.onabort = () => {
        if (fault === "lost-before-commit") reject(loseConnection(tx));
        else if (this.stale) resolve(null);
        else reject(this.failure ?? abortError(tx));
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
    readAcks(tx);
    for (const { store, known, record } of written.values()) {
      const read = tx.objectStore(store).get(record.id);
      read.onsuccess = () => {
        const doc = settledDoc(tx, store, record.id, read.result);
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

// ---------------------------------------------------------------------------
// Several contexts on one database (src/contexts/)

/**
 * The releases of every Web Lock the module holds or waits for, for the
 * package's entry to call when the module stops: a stopped context cannot sync,
 * and must not keep the others from it. Null until `trackLocks` is called.
 */
let lockReleases = null;

/** Keeps the releases of the Web Locks taken from now on in `releases` (a Set of functions). */
export function trackLocks(releases) {
  lockReleases = releases;
}

/** What `untilStopped` settles with when the module stops first. */
const STOPPED = Symbol("stopped");

/** `work` (a Promise), or `STOPPED` as soon as the module stops, so that the lock it runs under is let go. */
function untilStopped(work) {
  const stops = lockReleases;
  if (!stops) return work;
  let stop;
  const stopped = new Promise((resolve) => (stop = () => resolve(STOPPED)));
  stops.add(stop);
  return Promise.race([work, stopped]).finally(() => stops.delete(stop));
}

/**
 * Takes the Web Lock `name` if it is free, else queues for it, and calls
 * `acquired` once this context holds it; the lock is held until `release()` is
 * called or the context goes away (a closed tab, a terminated worker), when
 * the browser hands it to the next context in the queue, or the module stops.
 * `decided` resolves with whether the lock was taken at once (false: another
 * context holds it). Null where Web Locks are missing.
 */
export function holdLock(name, acquired) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return null;
  const stops = lockReleases;
  const queue = new AbortController();
  let granted = false;
  let left = false;
  let release;
  const held = new Promise((resolve) => (release = resolve));
  // Released before the lock came (a context closed right after opening):
  // a lock granted now is let go at once.
  const hold = () => {
    if (left) return undefined;
    granted = true;
    acquired();
    return held;
  };
  let decide;
  const decided = new Promise((resolve) => (decide = resolve));
  locks.request(name, { ifAvailable: true }, (lock) => {
    if (lock !== null) {
      const kept = hold();
      decide(kept !== undefined);
      return kept;
    }
    decide(false);
    if (!left) locks.request(name, { signal: queue.signal }, hold).catch(() => {}); // left the queue
    return undefined;
  }).catch(() => decide(false));
  const leave = () => {
    left = true;
    stops?.delete(leave);
    if (granted) release();
    else queue.abort();
  };
  stops?.add(leave);
  return { release: leave, decided };
}

/**
 * Runs `task` (a function returning a Promise) while holding the Web Lock
 * `name`, if no other context holds it: resolves with `{ ran: true, value }`,
 * or `{ ran: false }` at once when it is held elsewhere. Without Web Locks the
 * task runs unguarded. If the module stops meanwhile, the lock is let go and the
 * Promise never settles.
 */
export async function withLockIfFree(name, task) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return { ran: true, value: await task() };
  const outcome = await locks.request(name, { ifAvailable: true }, async (lock) => {
    if (lock === null) return { ran: false };
    const value = await untilStopped(task());
    return value === STOPPED ? STOPPED : { ran: true, value };
  });
  // A stopped module is not called back.
  return outcome === STOPPED ? new Promise(() => {}) : outcome;
}

/**
 * Posts the message `text` (JSON of an object) on `channel`, `docs` (an array
 * of strings and nulls, or null) written into it as its field `docs`: the
 * docs a commit's message carries (see `Commits.take`) go from the commit
 * that wrote them to the channel without being copied into the module.
 */
export function postWithDocs(channel, text, docs) {
  channel.postMessage(docs === null ? text : `${text.slice(0, -1)},"docs":${JSON.stringify(docs)}}`);
}

/**
 * A message as heard on the channel, its field `docs` taken out: `[its text
 * without them, the docs]` (see `postWithDocs`). Docs that are not an array
 * of strings and nulls are left where they are and `null` given, and so is
 * anything that is not JSON text of an object: the module ignores what it
 * cannot read.
 */
export function takeDocs(data) {
  if (typeof data !== "string" || !data.includes('"docs":')) return [data, null];
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return [data, null];
  }
  const docs = message?.docs;
  if (!Array.isArray(docs) || !docs.every((doc) => doc === null || typeof doc === "string")) return [data, null];
  delete message.docs;
  return [JSON.stringify(message), docs];
}

/**
 * Runs `task` (a function returning a Promise) once this context holds the
 * Web Lock `name`, after the contexts queued before it: `done` resolves with
 * what `task` resolved with. `cancel()` leaves the queue; `done` then never
 * settles, nor when the module stops (which leaves the queue or lets the lock
 * go), nor where Web Locks are missing.
 */
export function withLockOnceFree(name, task) {
  const locks = globalThis.navigator?.locks;
  const never = new Promise(() => {});
  if (!locks) return { done: never, cancel() {} };
  const queue = new AbortController();
  const cancel = () => queue.abort();
  // A stop leaves the queue, or lets the lock go (and the module is not called back).
  const stops = lockReleases;
  stops?.add(cancel);
  const done = locks
    .request(name, { signal: queue.signal }, () => untilStopped(task()))
    .then((value) => (value === STOPPED ? never : value))
    .catch((error) => (queue.signal.aborted ? never : Promise.reject(error)))
    .finally(() => stops?.delete(cancel));
  return { done, cancel };
}

/**
 * Asks the browser to wake the service worker with a `sync` event tagged
 * `tag` once the network is back (Chromium's Background Sync), and, where the
 * site may, with `periodicsync` events. Resolves with what was registered;
 * never rejects: both are optional.
 */
export async function requestBackgroundSync(tag) {
  const registered = { sync: false, periodic: false };
  const serviceWorker = globalThis.navigator?.serviceWorker;
  if (!serviceWorker?.controller) return registered;
  try {
    const registration = await serviceWorker.ready;
    if (registration.sync) {
      await registration.sync.register(tag);
      registered.sync = true;
    }
    if (registration.periodicSync) {
      const permission = await navigator.permissions?.query({ name: "periodic-background-sync" });
      if (permission?.state === "granted") {
        await registration.periodicSync.register(tag, { minInterval: 12 * 60 * 60 * 1000 });
        registered.periodic = true;
      }
    }
  } catch {
    // Refused (no permission, no engagement): the other triggers remain.
  }
  return registered;
}

/**
 * Where the origin's storage stands: `{ usage, quota, persisted }` (bytes; null where
 * the engine does not say). With `persist`, first asks the browser to keep the site's
 * storage from eviction; `persisted` is then its answer.
 */
export async function storageState(persist) {
  const storage = globalThis.navigator?.storage;
  if (!storage) return { usage: null, quota: null, persisted: null };
  let persisted = null;
  try {
    persisted = persist && storage.persist ? await storage.persist() : ((await storage.persisted?.()) ?? null);
  } catch {
    // Workers have no persist(); the page's answer holds for the origin.
  }
  const { usage = null, quota = null } = (await storage.estimate?.()) ?? {};
  return { usage, quota, persisted };
}

/**
 * `bytes` (JSON text in UTF-8, a view of wasm memory) gzipped, as a `Blob` to send
 * as a request body; `undefined` where the engine has no `CompressionStream`. The
 * browser's own zlib does the work, which takes a thread about 10 ms per 400 KB:
 * in a worker of its own where one can be started, so that the page's thread
 * records answers and sends pushes meanwhile, and on this thread where not (a
 * service worker cannot start workers; a Content-Security-Policy may refuse
 * workers from `blob:` URLs). A worker takes about as long to start as a body
 * to compress, so until the one this starts is ready, bodies are compressed
 * here: a sync's first push, whose body nothing was compressed ahead of, goes
 * without waiting for it.
 */
export async function gzip(bytes) {
  if (typeof CompressionStream !== "function") return undefined;
  // Copied at once: wasm memory may grow, which detaches the view, before it is read.
  const copy = bytes.slice();
  if (!compressor.ready()) return compress(copy);
  return (await compressor.gzip(copy)) ?? compress(copy);
}

/**
 * `bytes` gzipped, in a `Blob`. (`COMPRESSOR` does the same in its worker.) A
 * `Blob` crosses from the worker as a handle, and `fetch` sends it from where
 * it lies, where it copies an `ArrayBuffer`'s bytes on the calling thread.
 */
function compress(bytes) {
  return new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"))).blob();
}

/**
 * The script of the compressing worker: `null` out once it runs, then `[id, bytes]`
 * in, `[id, gzipped]` out (a `Blob`; `[id, null]` where it failed), one job at a
 * time in the order they came: compressions run in turns, so a job sent later
 * would otherwise hold up the answer to one sent first (the push waiting to go
 * out, behind the next one compressed ahead). Text rather than a function's
 * source, which a minifier may rename.
 */
const COMPRESSOR = `postMessage(null);
let done = Promise.resolve();
onmessage = ({ data: [id, bytes] }) => {
  done = done.then(async () => {
    try {
      const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
      postMessage([id, await new Response(stream).blob()]);
    } catch {
      postMessage([id, null]);
    }
  });
};`;

/** How long the compressing worker is kept after its last job. */
const COMPRESSOR_IDLE_MS = 30_000;
/**
 * How long a job may wait for the worker, and the worker may take to start:
 * past it, the worker is given up (one that died without an error event would
 * otherwise hold the push forever) and bodies are compressed on this thread.
 * A body of the protocol's largest size takes well under a second.
 */
const COMPRESSOR_JOB_LIMIT_MS = 10_000;

/**
 * The worker that gzips request bodies: started on first use, stopped once idle.
 * Its script comes from a `blob:` URL, so that the package needs no file of its
 * own for it (which bundlers would have to be told of).
 */
const compressor = {
  worker: null,
  /** Whether the worker said it runs: jobs are sent to it from then on. */
  started: false,
  /** The limit on the worker's start, while it starts. */
  starting: undefined,
  /** Set once a worker could not be started here: bodies are then compressed on this thread. */
  unavailable: typeof Worker !== "function",
  jobs: new Map(),
  next: 0,
  idle: undefined,

  /** Whether the worker can take a job now; starts it if it is not running. */
  ready() {
    return this.start() !== null && this.started;
  },

  /** Resolves with `bytes` gzipped, or with `undefined` where the worker cannot do it. */
  gzip(bytes) {
    const worker = this.start();
    if (!worker) return Promise.resolve(undefined);
    clearTimeout(this.idle);
    const id = this.next++;
    return new Promise((resolve) => {
      const limit = setTimeout(() => {
        this.unavailable = true;
        this.stop();
      }, COMPRESSOR_JOB_LIMIT_MS);
      this.jobs.set(id, (packed) => {
        clearTimeout(limit);
        resolve(packed);
      });
      worker.postMessage([id, bytes]);
    });
  },

  /** Hands job `id` its result. */
  settle(id, packed) {
    const resolve = this.jobs.get(id);
    this.jobs.delete(id);
    resolve?.(packed);
    clearTimeout(this.idle);
    if (this.jobs.size === 0) this.idle = setTimeout(() => this.stop(), COMPRESSOR_IDLE_MS);
  },

  start() {
    if (this.worker || this.unavailable) return this.worker;
    const url = URL.createObjectURL(new Blob([COMPRESSOR], { type: "text/javascript" }));
    try {
      this.worker = new Worker(url);
    } catch {
      // Refused at once (some engines do so under a Content-Security-Policy).
      URL.revokeObjectURL(url);
      this.unavailable = true;
      return null;
    }
    this.starting = setTimeout(() => {
      this.unavailable = true;
      this.stop();
    }, COMPRESSOR_JOB_LIMIT_MS);
    this.worker.onmessage = ({ data }) => {
      if (data === null) {
        // It runs: jobs go to it from now on, and it stops if none comes.
        URL.revokeObjectURL(url);
        clearTimeout(this.starting);
        this.started = true;
        this.idle = setTimeout(() => this.stop(), COMPRESSOR_IDLE_MS);
        return;
      }
      this.settle(data[0], data[1] ?? undefined);
    };
    // The script could not be loaded or run (refused by a Content-Security-Policy
    // after all): the jobs waiting are done on this thread, and all later ones.
    this.worker.onerror = (event) => {
      event.preventDefault();
      URL.revokeObjectURL(url);
      this.unavailable = true;
      this.stop();
    };
    return this.worker;
  },

  stop() {
    clearTimeout(this.idle);
    clearTimeout(this.starting);
    this.worker?.terminate();
    this.worker = null;
    this.started = false;
    for (const resolve of this.jobs.values()) resolve(undefined);
    this.jobs.clear();
  },
};

/** What kind of context this is: "window", "service-worker", "worker" (dedicated or shared). */
export function contextKind() {
  if (typeof ServiceWorkerGlobalScope === "function" && globalThis instanceof ServiceWorkerGlobalScope) return "service-worker";
  if (typeof WorkerGlobalScope === "function" && globalThis instanceof WorkerGlobalScope) return "worker";
  return "window";
}


/**
 * Whether IndexedDB can be used here: false where it is missing, or where it
 * refuses to open a database (the private modes of some engines). Asked only
 * after opening a database failed; the probe database is deleted again.
 */
export async function indexedDbUsable() {
  const PROBE = "tideway-probe";
  try {
    if (!globalThis.indexedDB) return false;
    const opened = await new Promise((resolve) => {
      const request = indexedDB.open(PROBE);
      request.onsuccess = () => {
        request.result.close();
        resolve(true);
      };
      request.onerror = () => resolve(false);
    });
    if (opened) indexedDB.deleteDatabase(PROBE);
    return opened;
  } catch {
    return false;
  }
}
