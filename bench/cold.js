// Cold start: what a user's page pays on its first load, in a page whose HTTP cache is
// off and that has run no store code yet. Each workload loads its store's code itself
// (Tideway: fetch, compile and instantiate the wasm module, streamed), opens the
// database filled beforehand (`fill`, in another page) and reads every note into memory;
// Tideway then answers 1000 `get`s, the first reads after open.
//
//   fill(engine, name)        writes the 10k notes (not timed)
//   raw(name)                 indexedDB.open + getAll + JSON.parse of every doc
//   dexie(name)               import Dexie, open, toArray()
//   tideway(name, ids)        import + init the module, Tideway.open (loads the mirror),
//                             then a `get` of each of `ids` (1000), the first reads

import { request } from "./idb.js";

/** The indexes every engine declares (as in engines.js, which this page must not load). */
const INDEXES = ["updatedAt", "title", "editedAt"];

export async function fill(engine, name) {
  const { ENGINES } = await import("./engines.js");
  const { NOTE_COUNT, makeNotes } = await import("./dataset.js");
  const store = new ENGINES[engine]();
  await store.destroy(name);
  await store.open(name);
  await store.bulkWrite(makeNotes(NOTE_COUNT));
  await store.close();
}

export async function raw(name) {
  const started = performance.now();
  const db = await request(indexedDB.open(name));
  const records = await request(db.transaction("e:notes").objectStore("e:notes").getAll());
  const notes = records.map((record) => JSON.parse(record.doc));
  const openLoadMs = performance.now() - started;
  db.close();
  return { moduleMs: 0, openLoadMs, loaded: notes.length };
}

export async function dexie(name) {
  const started = performance.now();
  const { default: Dexie } = await import("../vendor/dexie.mjs");
  const loaded = performance.now();
  const db = new Dexie(name);
  db.version(1).stores({ notes: "id, meta.updatedAt, data.title, data.editedAt", outbox: "++mutationId" });
  await db.open();
  const notes = await db.notes.toArray();
  const openLoadMs = performance.now() - loaded;
  db.close();
  return { moduleMs: loaded - started, openLoadMs, loaded: notes.length };
}

export async function tideway(name, ids) {
  const started = performance.now();
  const { default: init, Tideway } = await import("../pkg/index.js");
  await init();
  const loaded = performance.now();
  const db = await Tideway.open({ name, collections: { notes: { indexes: INDEXES } } });
  const opened = performance.now();
  const notes = db.collection("notes");
  let found = 0;
  for (const id of ids) if (notes.get(id)) found++;
  const firstGetUs = ((performance.now() - opened) * 1000) / ids.length;
  const count = notes.all().length;
  await db.close();
  return { moduleMs: loaded - started, openLoadMs: opened - loaded, firstGetUs, loaded: count, found };
}
