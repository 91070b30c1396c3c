// The demo app in a real browser: notes created, edited and deleted through the UI are
// kept across reloads, new pages and a missing network.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { assertPackageBuilt, launchBrowser, openApp, serveApp, watchPage } from "./helpers.mjs";

let browser;
let server;

before(async () => {
  assertPackageBuilt();
  browser = await launchBrowser();
  server = await serveApp();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A fresh browser profile per test: its own IndexedDB, caches and service workers. */
async function freshPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchPage(page);
  return { context, page, errors };
}

/** Types a new note through the UI and waits until it is durable. */
async function writeNote(page, title, body) {
  await page.click("#new-note");
  await page.fill("#note-title", title);
  await page.fill("#note-body", body);
  await waitSaved(page);
}

async function waitSaved(page) {
  await page.locator('#save-state[data-state="saved"]').waitFor({ timeout: 10_000 });
}

function listTitles(page) {
  return page.locator("#note-list .note-title").allTextContents();
}

async function pendingCount(page) {
  await page.waitForFunction(() => document.querySelector('[data-field="pending"]').dataset.count !== "0");
  return Number(await page.locator('[data-field="pending"]').getAttribute("data-count"));
}

describe("notes app", () => {
  test("creates, edits and deletes notes, newest first, with their sync status", async () => {
    const { context, page, errors } = await freshPage();
    try {
      await openApp(page, server.url);
      assert.deepEqual(await listTitles(page), []);
      assert.equal(await page.locator("#empty-list").isVisible(), true);

      await writeNote(page, "Groceries", "Milk, eggs, bread");
      await writeNote(page, "Ideas", "An app that works on the train");
      assert.deepEqual(await listTitles(page), ["Ideas", "Groceries"]);

      // Nothing syncs in this demo yet: every note waits, and so does the outbox.
      const badges = await page.locator("#note-list .sync-badge").evaluateAll((els) =>
        els.map((el) => el.dataset.status),
      );
      assert.deepEqual(badges, ["dirty", "dirty"]);
      assert.ok((await pendingCount(page)) >= 2);

      // Editing moves a note to the top (the list follows the updatedAt index).
      await page.locator(".note-item", { hasText: "Groceries" }).click();
      assert.equal(await page.inputValue("#note-body"), "Milk, eggs, bread");
      await page.fill("#note-title", "Groceries for Sunday");
      await page.fill("#note-body", "Milk, eggs, bread, coffee");
      await waitSaved(page);
      assert.deepEqual(await listTitles(page), ["Groceries for Sunday", "Ideas"]);

      // What the list shows is what the store holds.
      const stored = await page.evaluate(() =>
        window.tidewayNotes.store.list().map(({ data, meta }) => ({ ...data, status: meta.syncStatus })),
      );
      assert.equal(stored.length, 2);
      assert.equal(stored[0].title, "Groceries for Sunday");
      assert.equal(stored[0].body, "Milk, eggs, bread, coffee");
      assert.equal(stored[0].status, "dirty");

      await page.locator(".note-item", { hasText: "Ideas" }).click();
      await page.click("#delete-note");
      await page.locator("#note-list .note-item").nth(1).waitFor({ state: "detached" });
      assert.deepEqual(await listTitles(page), ["Groceries for Sunday"]);
      assert.equal(await page.locator("#editor").isVisible(), false);

      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test("a reload keeps every note, edit and delete", async () => {
    const { context, page, errors } = await freshPage();
    try {
      await openApp(page, server.url);
      await writeNote(page, "Keep me", "Still here after a reload");
      await writeNote(page, "Delete me", "Gone after a reload");
      await page.click("#delete-note");
      await page.waitForFunction(() => window.tidewayNotes.store.list().length === 1);
      await page.waitForFunction(async () => (await window.tidewayNotes.db.pendingCount()) >= 3);
      // The delete's promise is what the toast waits for: it is durable once the toast shows.
      await page.locator("#toast", { hasText: "Note deleted" }).waitFor();

      await page.reload();
      await page.waitForSelector('html[data-app-ready="true"]');
      assert.deepEqual(await listTitles(page), ["Keep me"]);
      await page.locator(".note-item", { hasText: "Keep me" }).click();
      assert.equal(await page.inputValue("#note-body"), "Still here after a reload");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test("a note written in one page is there when the app is opened again", async () => {
    const { context, page } = await freshPage();
    try {
      await openApp(page, server.url);
      await writeNote(page, "From the first tab", "Written before this page closed");
      await page.close();

      const again = await context.newPage();
      const errors = watchPage(again);
      await openApp(again, server.url);
      assert.deepEqual(await listTitles(again), ["From the first tab"]);
      const record = await again.evaluate(() => {
        const [note] = window.tidewayNotes.store.list();
        return { data: note.data, meta: note.meta };
      });
      assert.equal(record.data.body, "Written before this page closed");
      assert.equal(record.meta.syncStatus, "dirty");
      assert.equal(record.meta.deleted, false);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test("offline after the first visit: the app still starts, and writes work and persist", async () => {
    // A server of its own, so that stopping it leaves the other tests alone.
    let appServer = await serveApp();
    const { context, page, errors } = await freshPage();
    try {
      await openApp(page, appServer.url);
      await page.waitForSelector('html[data-offline-ready="true"]', { timeout: 15_000 });
      await writeNote(page, "Written online", "Before the network went away");

      // No network at all: the browser is offline and the server is gone.
      await context.setOffline(true);
      await appServer.close();

      await page.reload();
      await page.waitForSelector('html[data-app-ready="true"]', { timeout: 15_000 });
      assert.equal(await page.locator('[data-field="network"]').getAttribute("data-online"), "false");
      assert.deepEqual(await listTitles(page), ["Written online"]);

      await writeNote(page, "Written offline", "On the train");
      await page.locator(".note-item", { hasText: "Written online" }).click();
      await page.fill("#note-body", "Before the network went away, edited offline");
      await waitSaved(page);

      await page.reload();
      await page.waitForSelector('html[data-app-ready="true"]', { timeout: 15_000 });
      assert.deepEqual(await listTitles(page), ["Written online", "Written offline"]);
      await page.locator(".note-item", { hasText: "Written online" }).click();
      assert.equal(await page.inputValue("#note-body"), "Before the network went away, edited offline");

      // The failed network fetches the service worker fell back from are expected noise.
      assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|net::/.test(e)), []);
    } finally {
      await context.close();
      await appServer.close();
    }
  });
});
