// The three ways of storing notes the benchmark compares, behind one small interface:
//
//   open(name)            create or open the database
//   bulkWrite(notes)      every note (and its outbox row) in ONE transaction
//   writeOne(note)        one note (and its outbox row), resolved once committed
//   loadAll()             after open: every note in memory (raw: getAll; Dexie: toArray);
//                         Tideway loads its mirror inside open (`loadedByOpen`), so its
//                         loadAll (all()) is timed apart, as the cost of handing 10k
//                         records to JS
//   get(id)               one note by id (Tideway: synchronous, `syncReads`)
//   range(lo, hi)         how many notes have lo <= editedAt < hi, through the index
//   close()
//   destroy(name)         delete the database
//
// raw and Dexie do what Tideway must do for a durable local write: the entity and an outbox
// row for it, in one readwrite transaction, using the browser's default durability.

import init, { Tideway } from "../pkg/index.js";
import Dexie from "../vendor/dexie.mjs";
import { committed, request } from "./idb.js";

/** The same secondary indexes everywhere: two the demo app uses, one the range query uses. */
export const INDEXES = ["updatedAt", "title", "editedAt"];

let clock = 0;
/** Strictly increasing device time, as a store would stamp updatedAt. */
function stamp() {
  clock = Math.max(clock + 1, Date.now());
  return clock;
}

let mutationSeq = 0;

// ---------------------------------------------------------------------------------------
// Raw IndexedDB, laid out the way Tideway stores entities: { id, doc: JSON, ix: {...} }.

/** The sync metadata of a note just written locally, as both baselines store it. */
function newMeta() {
  return {
    remoteId: null,
    version: 0,
    updatedAt: stamp(),
    serverUpdatedAt: null,
    syncStatus: "dirty",
    deleted: false,
    lastError: null,
  };
}

function rawEntity({ id, data }) {
  const meta = newMeta();
  return {
    id,
    doc: JSON.stringify({ id, data, meta, base: null }),
    ix: { updatedAt: meta.updatedAt, title: data.title, editedAt: data.editedAt },
  };
}

function rawMutation({ id, data }) {
  return {
    doc: JSON.stringify({
      clientMutationId: ++mutationSeq,
      collection: "notes",
      entityId: id,
      op: "put",
      data,
      at: Date.now(),
    }),
  };
}

export class RawIndexedDb {
  static label = "raw IndexedDB";

  async open(name) {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      const entities = db.createObjectStore("e:notes", { keyPath: "id" });
      for (const index of INDEXES) entities.createIndex(index, `ix.${index}`);
      db.createObjectStore("outbox", { keyPath: "mutationId", autoIncrement: true });
    };
    this.db = await request(req);
  }

  bulkWrite(notes) {
    const tx = this.db.transaction(["e:notes", "outbox"], "readwrite");
    const entities = tx.objectStore("e:notes");
    const outbox = tx.objectStore("outbox");
    for (const note of notes) {
      entities.put(rawEntity(note));
      outbox.add(rawMutation(note));
    }
    return committed(tx);
  }

  writeOne(note) {
    const tx = this.db.transaction(["e:notes", "outbox"], "readwrite");
    tx.objectStore("e:notes").put(rawEntity(note));
    tx.objectStore("outbox").add(rawMutation(note));
    return committed(tx);
  }

  async loadAll() {
    const tx = this.db.transaction("e:notes", "readonly");
    return (await request(tx.objectStore("e:notes").getAll())).length;
  }

  get(id) {
    return request(this.db.transaction("e:notes", "readonly").objectStore("e:notes").get(id));
  }

  async range(lo, hi) {
    const index = this.db.transaction("e:notes", "readonly").objectStore("e:notes").index("editedAt");
    return (await request(index.getAll(IDBKeyRange.bound(lo, hi, false, true)))).length;
  }

  async close() {
    this.db.close();
  }

  async destroy(name) {
    await request(indexedDB.deleteDatabase(name));
  }
}

// ---------------------------------------------------------------------------------------
// Dexie, used the way its docs suggest: objects stored as they are, a transaction over
// the notes table and the outbox table.

function dexieRecord({ id, data }) {
  return {
    id,
    data,
    meta: newMeta(),
  };
}

function dexieMutation({ id, data }) {
  return { clientMutationId: ++mutationSeq, collection: "notes", entityId: id, op: "put", data, at: Date.now() };
}

export class DexieStore {
  static label = "Dexie";

  async open(name) {
    const db = new Dexie(name);
    db.version(1).stores({ notes: "id, meta.updatedAt, data.title, data.editedAt", outbox: "++mutationId" });
    await db.open();
    this.db = db;
  }

  bulkWrite(notes) {
    const { db } = this;
    return db.transaction("rw", db.notes, db.outbox, async () => {
      await db.notes.bulkPut(notes.map(dexieRecord));
      await db.outbox.bulkAdd(notes.map(dexieMutation));
    });
  }

  writeOne(note) {
    const { db } = this;
    return db.transaction("rw", db.notes, db.outbox, async () => {
      await db.notes.put(dexieRecord(note));
      await db.outbox.add(dexieMutation(note));
    });
  }

  async loadAll() {
    return (await this.db.notes.toArray()).length;
  }

  get(id) {
    return this.db.notes.get(id);
  }

  async range(lo, hi) {
    return (await this.db.notes.where("data.editedAt").between(lo, hi, true, false).toArray()).length;
  }

  async close() {
    this.db.close();
  }

  async destroy(name) {
    await Dexie.delete(name);
  }
}

// ---------------------------------------------------------------------------------------
// Tideway.

let initialised;

export class TidewayStore {
  static label = "Tideway";
  static loadedByOpen = true;
  /** get and query answer from memory, synchronously. */
  static syncReads = true;

  async open(name) {
    await (initialised ??= init());
    this.db = await Tideway.open({ name, collections: { notes: { indexes: INDEXES } } });
    this.notes = this.db.collection("notes");
  }

  async bulkWrite(notes) {
    await this.notes.bulkPut(notes);
  }

  async writeOne({ id, data }) {
    await this.notes.put(data, { id });
  }

  async loadAll() {
    return this.notes.all().length;
  }

  get(id) {
    return this.notes.get(id);
  }

  range(lo, hi) {
    return this.notes.query({ index: "editedAt", gte: lo, lt: hi }).length;
  }

  async close() {
    await this.db.close();
  }

  async destroy(name) {
    await (initialised ??= init());
    await Tideway.deleteDatabase(name);
  }
}

export const ENGINES = { raw: RawIndexedDb, dexie: DexieStore, tideway: TidewayStore };
