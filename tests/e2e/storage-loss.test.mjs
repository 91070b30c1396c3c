// The browser taking the database away (its storage evicted, or the site's data cleared):
// an open database must then refuse calls with DATABASE_CLOSED, never hang or answer
// from a store that is gone, and opening it again must work, with a new client id that
// tells the app its local data (and outbox) were lost; the writes no server had
// acknowledged can still be read from the dead handle and rescued into the new one.
//
// Only Chromium can be told to clear a site's IndexedDB from outside the page (the
// DevTools Protocol's Storage.clearDataForOrigin); on other engines these tests are
// skipped, and reported as skipped.

import { test } from "node:test";
import assert from "node:assert/strict";
import { DEMO_TOKEN, ENGINE, openApp, withAppInBrowser } from "./helpers.mjs";

const app = withAppInBrowser({ when: ENGINE === "chromium" });

const skip = ENGINE === "chromium" ? false : "clearing a site's IndexedDB from outside needs Chromium's DevTools Protocol";

test("storage cleared by the browser: DATABASE_CLOSED, then a fresh database on reopen", { skip }, async () => {
  const page = await app.browser.newPage();
  try {
    await openApp(page, app.server.url);
    const name = `e2e-evicted-${Date.now()}`;
    const firstClientId = await page.evaluate(async (name) => {
      const { Tideway } = await import(new URL("pkg/index.js", location.href).href);
      window.evicted = await Tideway.open({ name, collections: { notes: {} } });
      await window.evicted.collection("notes").put({ title: "before" }, { id: "n1" });
      return window.evicted.clientId;
    }, name);

    const cdp = await page.createCDPSession();
    await cdp.send("Storage.clearDataForOrigin", { origin: new URL(app.server.url).origin, storageTypes: "indexeddb" });
    await cdp.detach();

    const outcome = await page.evaluate(async (name) => {
      const { Tideway } = await import(new URL("pkg/index.js", location.href).href);
      const code = (promise) => promise.then(() => "resolved", (error) => `${error.name} ${error.code}`);
      const notes = window.evicted.collection("notes");
      const put = await code(notes.put({ title: "after" }));
      const pending = await code(window.evicted.pendingCount());
      const again = await Tideway.open({ name, collections: { notes: {} } });
      const result = { put, pending, clientId: again.clientId, notes: again.collection("notes").all().length };
      await again.close();
      await Tideway.deleteDatabase(name);
      return result;
    }, name);

    assert.equal(outcome.put, "TidewayError DATABASE_CLOSED");
    assert.equal(outcome.pending, "TidewayError DATABASE_CLOSED");
    assert.equal(outcome.notes, 0, "the cleared database opens empty");
    assert.notEqual(outcome.clientId, firstClientId, "a new client id marks the loss");
  } finally {
    await page.close();
  }
});

test("storage cleared mid-session: db.unsynced() still lists the unpushed work, and rescue() pushes it from a fresh database", { skip }, async () => {
  const page = await app.browser.newPage();
  try {
    await openApp(page, app.server.url);
    const name = `e2e-rescue-${Date.now()}`;
    const prefix = `rescue-${Date.now()}`;
    await page.evaluate(
      async ({ name, token, prefix }) => {
        const { Tideway } = await import(new URL("pkg/tideway.js", location.href).href);
        // The same options each time: after the storage is cleared, a fresh database.
        const open = () => Tideway.open({ name, collections: { notes: {} }, sync: { url: location.origin, getToken: () => token, auto: false } });
        window.openAgain = open;
        window.dying = await open();
        const notes = window.dying.collection("notes");
        await notes.put({ title: "synced" }, { id: `${prefix}-a` });
        await window.dying.sync();
        await notes.patch(`${prefix}-a`, { body: "edited, not pushed" });
        await notes.put({ title: "never pushed" }, { id: `${prefix}-b` });
      },
      { name, token: DEMO_TOKEN, prefix },
    );

    const cdp = await page.createCDPSession();
    await cdp.send("Storage.clearDataForOrigin", { origin: new URL(app.server.url).origin, storageTypes: "indexeddb" });
    await cdp.detach();

    const outcome = await page.evaluate(async () => {
      const code = (promise) => promise.then(() => "resolved", (error) => `${error.name} ${error.code}`);
      const put = await code(window.dying.collection("notes").put({ title: "after" }));
      const unsynced = window.dying.unsynced().map(({ id, data, version, syncStatus }) => ({ id, data, version, syncStatus }));
      const fresh = await window.openAgain();
      const written = await fresh.rescue(window.dying);
      const pending = await fresh.pendingCount();
      await fresh.sync();
      const after = { pending: await fresh.pendingCount(), held: fresh.collection("notes").all().length };
      await window.dying.close().catch(() => {});
      await fresh.close();
      return { put, unsynced, written, pending, after };
    });

    assert.equal(outcome.put, "TidewayError DATABASE_CLOSED");
    assert.deepEqual(
      outcome.unsynced.sort((x, y) => (x.id < y.id ? -1 : 1)),
      [
        { id: `${prefix}-a`, data: { title: "synced", body: "edited, not pushed" }, version: 1, syncStatus: "dirty" },
        { id: `${prefix}-b`, data: { title: "never pushed" }, version: 0, syncStatus: "dirty" },
      ],
    );
    assert.equal(outcome.written, 2);
    assert.equal(outcome.pending, 2, "each rescued entity is queued");
    assert.equal(outcome.after.pending, 0);
    const onServer = Object.fromEntries(
      (await app.server.pullAll(DEMO_TOKEN)).filter((e) => e.id.startsWith(prefix)).map((e) => [e.id, [e.data, e.version]]),
    );
    assert.deepEqual(onServer, {
      [`${prefix}-a`]: [{ title: "synced", body: "edited, not pushed" }, 2],
      [`${prefix}-b`]: [{ title: "never pushed" }, 1],
    });
  } finally {
    await page.close();
  }
});
