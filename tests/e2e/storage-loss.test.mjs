// The browser taking the database away (its storage evicted, or the site's data cleared):
// an open database must then refuse calls with DATABASE_CLOSED, never hang or answer
// from a store that is gone, and opening it again must work, with a new client id that
// tells the app its local data (and outbox) were lost.
//
// Only Chromium can be told to clear a site's IndexedDB from outside the page (the
// DevTools Protocol's Storage.clearDataForOrigin); on other engines this test is skipped,
// and reported as skipped.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ENGINE, openApp, withAppInBrowser } from "./helpers.mjs";

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
