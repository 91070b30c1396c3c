// Storage limits, in Chromium through its DevTools protocol (which can give the
// origin a small quota), against the real reference server serving the page.

import assert from "node:assert/strict";
import { test } from "node:test";
import { openDevice, serverAndBrowser } from "./helpers.mjs";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

test("a write past the quota rejects QUOTA_EXCEEDED, is rolled back whole, and what was stored stays", async () => {
  const { context, page, errors } = await openDevice(browser, server);
  // The quota is set before the database opens: IndexedDB takes it at open.
  const cdp = await context.newCDPSession(page);
  const origin = new URL(server.url).origin;
  await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 512 * 1024 });
  const name = `quota-${crypto.randomUUID()}`;
  const open = () =>
    page.evaluate(async (name) => {
      window.db = await window.Tideway.open({ name, collections: { notes: {} } });
      window.notes = window.db.collection("notes");
    }, name);
  await open();
  const storage = await page.evaluate(async () => {
    await window.notes.put({ title: "kept" }, { id: "kept" });
    return window.db.storage();
  });
  assert.equal(typeof storage.usage, "number");
  assert.equal(typeof storage.quota, "number");
  assert.ok(storage.persisted === null || typeof storage.persisted === "boolean");

  const outcome = await page.evaluate(async () => {
    const heard = [];
    window.db.on("change", (changes) => heard.push(...changes.map((c) => [c.id, c.origin, c.error?.code ?? null])));
    // Random text: IndexedDB compresses what it stores, and repeated text would fit.
    const random = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(60_000))));
    const entries = Array.from({ length: 20 }, (_, i) => ({ id: `big${i}`, data: { body: random() } }));
    let code = null;
    try {
      await window.notes.bulkPut(entries);
    } catch (error) {
      code = error.code;
    }
    return { code, heard, big: window.notes.get("big0") ?? null, kept: window.notes.get("kept")?.data.title };
  });
  assert.equal(outcome.code, "QUOTA_EXCEEDED");
  assert.equal(outcome.big, null, "the mirror rolled back");
  assert.equal(outcome.kept, "kept");
  const rolledBack = outcome.heard.filter(([, origin]) => origin === "rollback");
  assert.equal(rolledBack.length, 20, JSON.stringify(outcome.heard));
  assert.ok(rolledBack.every(([, , code]) => code === "QUOTA_EXCEEDED"));

  await cdp.send("Storage.overrideQuotaForOrigin", { origin });
  await page.evaluate(() => window.db.close());
  await open();
  const reopened = await page.evaluate(async () => ({
    ids: window.notes.all().map((record) => record.id),
    pending: await window.db.pendingCount(),
  }));
  assert.deepEqual(reopened, { ids: ["kept"], pending: 1 }, "nothing of the refused batch was stored");
  // Asked to, open requests persistent storage; storage() reports the browser's answer.
  const persisted = await page.evaluate(async (name) => {
    await window.db.close();
    const db = await window.Tideway.open({ name, collections: { notes: {} }, persist: true });
    const { persisted } = await db.storage();
    await db.close();
    return persisted;
  }, name);
  assert.equal(typeof persisted, "boolean");
  assert.deepEqual(errors, []);
  await context.close();
});

test("the database's image is kept only while it leaves half the quota free", async () => {
  const { context, page, errors } = await openDevice(browser, server);
  const name = `image-room-${crypto.randomUUID()}`;
  /**
   * In a fresh load of the page: opens the database, writes `count` notes of
   * random text (40,000 characters each) and closes it, the origin's storage
   * estimated to be `{ quota, usage }` where `estimate` gives either; then what
   * its `meta` store holds of the image.
   */
  const session = async (count, estimate = {}) => {
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    return page.evaluate(
      async ([name, count, given]) => {
        if (Object.keys(given).length > 0) {
          const estimate = StorageManager.prototype.estimate;
          StorageManager.prototype.estimate = async function () {
            return { ...(await estimate.call(this)), ...given };
          };
        }
        const db = await window.Tideway.open({ name, collections: { notes: {} } });
        const random = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(30_000))));
        const entries = Array.from({ length: count }, () => ({ id: crypto.randomUUID(), data: { body: random() } }));
        await db.collection("notes").bulkPut(entries);
        // The storage estimate the commit asks for comes back.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await db.close();
        const raw = await new Promise((resolve, reject) => {
          const open = indexedDB.open(name);
          open.onsuccess = () => resolve(open.result);
          open.onerror = () => reject(open.error);
        });
        const meta = raw.transaction("meta").objectStore("meta");
        const read = (key) => new Promise((resolve) => (meta.get(key).onsuccess = (event) => resolve(event.target.result)));
        const [commit, imageMark, image] = await Promise.all([read("commit"), read("imageMark"), read("image")]);
        raw.close();
        return { commit: commit ?? null, imageMark: imageMark ?? null, image: image !== undefined };
      },
      [name, count, estimate],
    );
  };

  // With room: the close saves the image.
  let state = await session(3);
  assert.ok(state.image && state.imageMark === state.commit, JSON.stringify(state));

  // Short of room (160 KB of notes and the 120 KB image, another 160 KB for a new
  // one, against a quota of 512 KB): the image, out of date after the write, is
  // deleted, and no new one saved.
  state = await session(1, { quota: 512 * 1024 });
  assert.deepEqual([state.image, state.imageMark], [false, null], JSON.stringify(state));

  // With room again, the next close saves one.
  state = await session(1);
  assert.ok(state.image && state.imageMark === state.commit, JSON.stringify(state));

  // The image there is counted in the usage, and goes: a new one of 240k
  // characters in place of one of 200k fits where 240k more would not (200k of
  // usage, and half of a quota of 500k).
  state = await session(1, { quota: 500_000, usage: 200_000 });
  assert.ok(state.image && state.imageMark === state.commit, JSON.stringify(state));
  assert.deepEqual(errors, []);
  await context.close();
});
