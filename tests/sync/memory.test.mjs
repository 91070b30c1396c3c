// What a page that runs for days lets go of: a call once it has settled, a
// database once it is closed, the syncs a burst of writes asks for; and what
// a bulk write holds at once, which the module keeps once it has grown. Measured
// through the DevTools protocol, after garbage collections it asks for, and
// from the size of the module's memory, which only grows.

import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually, openDb, openDevice, serverAndBrowser } from "./helpers.mjs";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

/**
 * A device whose page can also ask for a garbage collection (`collect`), and
 * tell the size of the module's memory (`window.wasmMemory()`).
 */
async function openMeasuredDevice() {
  const device = await openDevice(browser, server);
  await device.page.evaluate(async () => {
    const { default: init } = await import("/pkg/index.js");
    const exports = await init();
    window.wasmMemory = () => exports.memory.buffer.byteLength;
  });
  const cdp = await device.context.newCDPSession(device.page);
  const collect = () => cdp.send("HeapProfiler.collectGarbage");
  const heapAfterGc = async () => {
    await collect();
    return (await cdp.send("Runtime.getHeapUsage")).usedSize;
  };
  return { ...device, collect, heapAfterGc };
}

test("a call that has settled leaves nothing behind for a stop to reject: 20,000 calls keep no memory", async () => {
  const { context, page, errors, heapAfterGc } = await openMeasuredDevice();
  await openDb({ page }, `settled-${crypto.randomUUID()}`, null);
  const calls = (count) =>
    page.evaluate(async (count) => {
      for (let i = 0; i < count; i++) await window.db.pendingCount();
    }, count);
  // The calls' code is compiled and optimised before the measurement.
  await calls(2_000);
  const before = await heapAfterGc();
  await calls(20_000);
  const perCall = ((await heapAfterGc()) - before) / 20_000;
  // Each call raced against a promise that settles only on a stop kept about 125 bytes.
  assert.ok(perCall < 25, `the JS heap grew by ${perCall.toFixed(1)} bytes a call`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a closed database lets go of what it held: its getToken is collected, and 100 opens and closes grow no wasm memory", async () => {
  const { context, page, errors, collect } = await openMeasuredDevice();
  const name = `closing-${crypto.randomUUID()}`;
  // Each one syncs on its own as it opens and after its write, then closes.
  const cycles = async (count) => {
    for (let done = 0; done < count; done += 10) {
      await page.evaluate(async (name) => {
        for (let i = 0; i < 10; i++) {
          const sync = { url: location.origin, getToken: () => "closing-token", debounce: 0 };
          const db = await window.Tideway.open({ name, collections: { notes: { indexes: ["title"] } }, sync });
          await db.collection("notes").put({ title: `note ${i}` }, { id: `n${i}` });
          await db.close();
        }
      }, name);
      await collect();
    }
  };
  await cycles(20);
  const before = await page.evaluate(() => window.wasmMemory());
  await cycles(100);
  const grown = (await page.evaluate(() => window.wasmMemory())) - before;
  // A closed database kept by its own handlers grew it by 2-4 KB an open.
  assert.ok(grown <= 64 * 1024, `wasm memory grew by ${grown} bytes over 100 opens and closes`);

  await page.evaluate(async (name) => {
    const getToken = () => "closing-token";
    window.heldToken = new WeakRef(getToken);
    const db = await window.Tideway.open({ name, collections: { notes: { indexes: ["title"] } }, sync: { url: location.origin, getToken, auto: false } });
    await db.sync();
    await db.close();
  }, name);
  await eventually("the closed database's getToken to be collected", async () => {
    await collect();
    // Let go of by the module once the handle's wrapper was collected and finalised.
    return page.evaluate(() => new Promise((resolve) => setTimeout(() => resolve(window.heldToken.deref() === undefined), 50)));
  });
  assert.deepEqual(errors, []);
  await context.close();
});

test("a burst of writes, each asking for a sync, keeps one sync waiting: 3000 writes grow wasm memory by under 8 MB", async () => {
  const { context, page, errors } = await openMeasuredDevice();
  const grown = await page.evaluate(async (name) => {
    const sync = { url: location.origin, getToken: () => "burst-token", debounce: 0 };
    const db = await window.Tideway.open({ name, collections: { notes: { indexes: ["title"] } }, sync });
    const notes = db.collection("notes");
    await notes.put({ title: "first" }, { id: "n0" });
    await db.sync();
    const before = window.wasmMemory();
    // Each write schedules a sync at once; most come while one runs.
    for (let i = 0; i < 3000; i++) await notes.put({ title: `edit ${i}`, body: "x".repeat(100) }, { id: `n${i % 50}` });
    await db.sync();
    const left = await db.pendingCount();
    await db.close();
    return { bytes: window.wasmMemory() - before, left };
  }, `burst-${crypto.randomUUID()}`);
  assert.equal(grown.left, 0);
  // A waiting sync per write took it from 1.3 to 25 MB.
  assert.ok(grown.bytes < 8 * 1024 * 1024, `wasm memory grew by ${grown.bytes} bytes`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a bulkPut holds each note's data once, as its text: 20,000 notes in one call grow wasm memory by under 2 KB a note", async () => {
  const { context, page, errors } = await openMeasuredDevice();
  const grown = await page.evaluate(async (name) => {
    const db = await window.Tideway.open({ name, collections: { notes: { indexes: ["title"] } } });
    const entries = Array.from({ length: 20_000 }, (_, i) => ({
      id: `n${i}`,
      data: { title: `note ${i}`, body: "x".repeat(100), done: i % 2 === 0, n: i },
    }));
    const before = window.wasmMemory();
    const records = await db.collection("notes").bulkPut(entries);
    const grown = window.wasmMemory() - before;
    const count = (await db.collection("notes").all()).length;
    await db.close();
    return { perNote: grown / entries.length, records: records.length, count };
  }, `bulk-${crypto.randomUUID()}`);
  assert.deepEqual([grown.records, grown.count], [20_000, 20_000]);
  // Parsed once for each copy (the write, the mirror's entity, the stored one)
  // and handed back in one text, they took 3.7 KB a note.
  assert.ok(grown.perNote < 2048, `wasm memory grew by ${grown.perNote.toFixed(0)} bytes a note`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a pull keeps each note's data as the text the server sent: a page that pulled 20,000 notes grows wasm memory by under 900 bytes a note", async () => {
  const writer = await openDevice(browser, server);
  await writer.page.evaluate(async () => {
    const sync = { url: location.origin, getToken: () => "pulled-token", auto: false };
    const db = await window.Tideway.open({ name: "writer", collections: { notes: { indexes: ["title"] } }, sync });
    for (let first = 0; first < 20_000; first += 2000) {
      const entries = Array.from({ length: 2000 }, (_, i) => ({
        id: `n${first + i}`,
        data: { title: `note ${first + i}`, body: "x".repeat(100), done: i % 2 === 0, n: first + i },
      }));
      await db.collection("notes").bulkPut(entries);
    }
    await db.sync();
    await db.close();
  });
  await writer.context.close();

  const { context, page, errors } = await openMeasuredDevice();
  const grown = await page.evaluate(async () => {
    const before = window.wasmMemory();
    const sync = { url: location.origin, getToken: () => "pulled-token", auto: false };
    const db = await window.Tideway.open({ name: "reader", collections: { notes: { indexes: ["title"] } }, sync });
    const report = await db.sync();
    const grown = window.wasmMemory() - before;
    const count = db.collection("notes").all().length;
    await db.close();
    return { perNote: grown / count, pulled: report.pulled, count };
  });
  assert.deepEqual([grown.pulled, grown.count], [20_000, 20_000]);
  // Parsed into each pulled entity, the data took 1.25 KB a note.
  assert.ok(grown.perNote < 900, `wasm memory grew by ${grown.perNote.toFixed(0)} bytes a note`);
  assert.deepEqual(errors, []);
  await context.close();
});
