// The sync workloads, run in a page served by the reference server (same origin, so no
// CORS preflight for either side). Each is timed in a fresh browser context, so every
// run starts from an empty IndexedDB:
//
//   pushTideway(token, count, elsewhere)
//                                `count` notes written with one bulkPut (not timed), then
//                                the time of the `db.sync()` that pushes them, and how
//                                long after it the log of its acknowledgements was folded
//                                into the records in the background (`foldMs`); with
//                                `elsewhere`, another handle on the database (as another
//                                tab) first writes one note of its own, which is pushed too
//   watchTideway(token)          another tab: opens the database pushTideway writes and keeps
//                                it open; watchedCount() then says how many notes its
//                                mirror holds, and how many of them synced
//   writeTideway(token, count), syncTideway()
//                                pushTideway in two steps, so another tab can be waited for
//                                between the writes and the timed `db.sync()`
//   pushRaw(token, count)        the same notes sent by plain fetch, in pushes of the
//                                protocol's maximum (1000), one after the other
//   pullTideway(token, expected) `Tideway.open` of a new database and the `db.sync()`
//                                that pulls everything the user has (and the wasm
//                                memory the page then holds)
//   pullRaw(token, expected)     the same pages (the protocol's maximum) fetched one after
//                                the other, each written to raw IndexedDB in one
//                                transaction, laid out as Tideway stores entities
//   reopenTideway(token)         the database pullTideway filled, opened again in a cold
//                                page: `Tideway.open`, which loads every note
//   reopenRaw(token)             the same database read by raw IndexedDB: open, getAll of
//                                the notes, JSON.parse of each doc
//   fill(count), memory(count)   `count` notes written in one page, then the JS heap and
//                                wasm memory that opening them takes in another
//   bulkMemory(count, perCall)   the wasm memory a fresh page's writes of `count` notes
//                                take, `perCall` notes per `bulkPut`

import init, { Tideway } from "/pkg/index.js";
import { raw as rawOpenAndLoad } from "./cold.js";
import { makeNotes, putBatches } from "./dataset.js";
import { committed, request } from "./idb.js";

const MAX_PULL = 1000;

let ready;
function loaded() {
  return (ready ??= init());
}

function sync(token) {
  // The defaults of batchSize and pullLimit: what an app gets.
  return { url: location.origin, getToken: () => token, auto: false };
}

const headers = (token) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });

export async function pushTideway(token, count, elsewhere = false) {
  await loaded();
  const options = { name: `push-${token}`, collections: { notes: {} } };
  const db = await Tideway.open({ ...options, sync: sync(token) });
  const notes = makeNotes(count);
  await db.collection("notes").bulkPut(notes.map(({ id, data }) => ({ id, data })));
  if (elsewhere) {
    // A second handle talks to the first over the same channel as another tab would.
    const other = await Tideway.open(options);
    await other.collection("notes").put({ title: "written elsewhere" }, { id: "elsewhere" });
    await other.close();
    for (const end = performance.now() + 5000; !db.collection("notes").get("elsewhere"); ) {
      if (performance.now() > end) throw new Error("the other handle's write never reached this one");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  const started = performance.now();
  const report = await db.sync();
  const ms = performance.now() - started;
  const foldMs = await untilFolded(options.name);
  await db.close();
  return { ms, rows: report.pushed, foldMs };
}

/** How long until the acknowledgement log of the database `name` is empty, polled by a connection of its own. */
async function untilFolded(name) {
  const started = performance.now();
  const db = await request(indexedDB.open(name));
  try {
    for (;;) {
      const left = await request(db.transaction("acks").objectStore("acks").count());
      if (left === 0) return performance.now() - started;
      if (performance.now() - started > 60_000) throw new Error("the acknowledgement log was not folded within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    db.close();
  }
}

let watcher;
export async function watchTideway(token) {
  await loaded();
  watcher = await Tideway.open({ name: `push-${token}`, collections: { notes: {} } });
}

export function watchedCount() {
  const notes = watcher.collection("notes").all();
  return { notes: notes.length, synced: notes.filter((note) => note.meta.syncStatus === "synced").length };
}

let writer;
export async function writeTideway(token, count) {
  await loaded();
  writer = await Tideway.open({ name: `push-${token}`, collections: { notes: {} }, sync: sync(token) });
  const notes = makeNotes(count);
  await writer.collection("notes").bulkPut(notes.map(({ id, data }) => ({ id, data })));
}

export async function syncTideway() {
  const started = performance.now();
  const report = await writer.sync();
  const ms = performance.now() - started;
  await writer.close();
  return { ms, rows: report.pushed };
}

export async function pushRaw(token, count) {
  const notes = makeNotes(count);
  const clientId = `raw-${token}`;
  const started = performance.now();
  let rows = 0;
  for (const mutations of putBatches(notes)) {
    const response = await fetch("/v1/push", { method: "POST", headers: headers(token), body: JSON.stringify({ clientId, mutations }) });
    if (!response.ok) throw new Error(`push answered ${response.status}`);
    const { results } = await response.json();
    rows += results.filter((r) => r.status === "applied").length;
  }
  return { ms: performance.now() - started, rows };
}

export async function pullTideway(token) {
  const wasm = await loaded();
  performance.setResourceTimingBufferSize(100_000);
  const wasmBefore = wasm.memory.buffer.byteLength;
  const started = performance.now();
  const db = await Tideway.open({ name: `pull-${token}`, collections: { notes: {} }, sync: sync(token) });
  const report = await db.sync();
  const ms = performance.now() - started;
  const rows = db.collection("notes").all().length;
  const wasmBytes = wasm.memory.buffer.byteLength - wasmBefore;
  await db.close();
  return { ms, rows, pulled: report.pulled, wire: pulledBytes(started), wasmBytes };
}

/** The bodies of the pull answers since `since`: as they travelled, and as JSON. */
function pulledBytes(since) {
  const pages = performance
    .getEntriesByType("resource")
    .filter((entry) => entry.startTime >= since && new URL(entry.name).pathname === "/v1/pull");
  const sum = (key) => pages.reduce((total, page) => total + page[key], 0);
  return { pages: pages.length, encoded: sum("encodedBodySize"), decoded: sum("decodedBodySize") };
}

export async function reopenTideway(token) {
  await loaded();
  const started = performance.now();
  const db = await Tideway.open({ name: `pull-${token}`, collections: { notes: {} } });
  const ms = performance.now() - started;
  const rows = db.collection("notes").all().length;
  await db.close();
  return { ms, rows };
}

export async function reopenRaw(token) {
  // The cold bench's raw open + getAll + JSON.parse, on the database the pull filled.
  const { openLoadMs, loaded } = await rawOpenAndLoad(`pull-${token}`);
  return { ms: openLoadMs, rows: loaded };
}

export async function pullRaw(token) {
  const started = performance.now();
  const open = indexedDB.open(`raw-pull-${token}`, 1);
  open.onupgradeneeded = () => {
    const store = open.result.createObjectStore("e:notes", { keyPath: "id" });
    store.createIndex("updatedAt", "ix.updatedAt");
    open.result.createObjectStore("meta");
  };
  const db = await request(open);
  let cursor = "";
  let rows = 0;
  for (;;) {
    const response = await fetch(`/v1/pull?limit=${MAX_PULL}&cursor=${encodeURIComponent(cursor)}`, { headers: headers(token) });
    if (!response.ok) throw new Error(`pull answered ${response.status}`);
    const page = await response.json();
    const tx = db.transaction(["e:notes", "meta"], "readwrite");
    const store = tx.objectStore("e:notes");
    for (const change of page.changes) {
      const meta = { remoteId: change.id, version: change.version, serverUpdatedAt: change.serverUpdatedAt, syncStatus: "synced" };
      // A synced entity's base equals its data, which Tideway stores as `baseIsData: true`.
      const doc = JSON.stringify({ id: change.id, data: change.data, meta, baseIsData: true });
      store.put({ id: change.id, doc, ix: { updatedAt: change.serverUpdatedAt } });
    }
    tx.objectStore("meta").put(page.cursor, "cursor");
    await committed(tx);
    rows += page.changes.length;
    cursor = page.cursor;
    if (!page.hasMore) break;
  }
  db.close();
  return { ms: performance.now() - started, rows };
}

const MEMORY_COLLECTIONS = { notes: { indexes: ["updatedAt"] } };

/** Writes `count` notes into the database `memory` measures (not timed). */
export async function fill(count) {
  await loaded();
  const db = await Tideway.open({ name: `memory-${count}`, collections: MEMORY_COLLECTIONS });
  const notes = makeNotes(count);
  for (let first = 0; first < count; first += 10_000) {
    await db.collection("notes").bulkPut(notes.slice(first, first + 10_000).map(({ id, data }) => ({ id, data })));
  }
  await db.close();
}

/**
 * The wasm memory that writing `count` notes takes in a page that has just opened an
 * empty database, `perCall` notes per `bulkPut`: the most the writes held at once,
 * since wasm memory grows and never shrinks.
 */
export async function bulkMemory(count, perCall) {
  const wasm = await loaded();
  const db = await Tideway.open({ name: `bulk-${count}-${perCall}`, collections: MEMORY_COLLECTIONS });
  const notes = makeNotes(count);
  const before = wasm.memory.buffer.byteLength;
  for (let first = 0; first < count; first += perCall) {
    await db.collection("notes").bulkPut(notes.slice(first, first + perCall));
  }
  const wasmBytes = wasm.memory.buffer.byteLength - before;
  const rows = db.collection("notes").all().length;
  await db.close();
  return { rows, wasmBytes, wasmTotal: wasm.memory.buffer.byteLength };
}

/**
 * In a page that has not touched the database yet: the JS heap and wasm memory that
 * opening the `count` notes `fill` wrote takes, then a query to show it answers.
 */
export async function memory(count) {
  const wasm = await loaded();
  globalThis.gc?.();
  const heapBefore = performance.memory?.usedJSHeapSize ?? 0;
  const wasmBefore = wasm.memory.buffer.byteLength;
  const db = await Tideway.open({ name: `memory-${count}`, collections: MEMORY_COLLECTIONS });
  const found = db.collection("notes").query({ index: "updatedAt", limit: 10 }).length;
  globalThis.gc?.();
  const heapBytes = (performance.memory?.usedJSHeapSize ?? 0) - heapBefore;
  const wasmBytes = wasm.memory.buffer.byteLength - wasmBefore;
  const rows = db.collection("notes").all().length;
  await db.close();
  return { rows, found, heapBytes, wasmBytes, wasmTotal: wasm.memory.buffer.byteLength };
}
