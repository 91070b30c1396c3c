// The demo app in a real browser, served by the reference server as scripts/demo.sh
// serves it: notes created, edited and deleted through the UI sync to the server, and
// are kept across reloads, new pages and a missing network.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { DEMO_TOKEN, ENGINE, WAIT_LIMIT_MS, WWW, openApp, reloadApp, serveApp, waitFor, watchPage, withAppInBrowser } from "./helpers.mjs";

const app = withAppInBrowser({ serve: false });

/**
 * A fresh browser profile (its own IndexedDB, caches and service workers) on a server of
 * its own (its own database: the demo syncs, and one test's notes must not reach another).
 */
async function freshApp() {
  const server = await serveApp();
  const context = await app.browser.createBrowserContext();
  const page = await context.newPage();
  const errors = watchPage(page);
  const close = async () => {
    await context.close();
    await server.close();
  };
  return { server, context, page, errors, close };
}

/** The titles of the notes the server holds (not deleted). */
async function titlesOnServer(server) {
  const entities = await server.pullAll(DEMO_TOKEN);
  return entities.filter((entity) => !entity.deleted).map((entity) => entity.data.title).sort();
}

/** Replaces a field's text by typing, as a person would. */
async function fill(page, selector, text) {
  try {
    await page.locator(selector).setTimeout(WAIT_LIMIT_MS).fill(text);
  } catch (error) {
    throw new Error(`waited ${WAIT_LIMIT_MS} ms to type into ${selector}: ${error.message.split("\n")[0]}`);
  }
}

/**
 * Clicks a button once it is shown. The click is the element's own, not one at screen
 * coordinates: the status pills appear and change width as the app syncs, which can
 * rewrap the top bar and move the button between finding it and clicking there.
 */
async function press(page, selector) {
  await waitFor(page, `${selector} to be shown`, (selector) => document.querySelector(selector)?.checkVisibility(), {
    args: [selector],
  });
  await page.$eval(selector, (button) => button.click());
}

/** Types a new note through the UI and waits until it is durable. */
async function writeNote(page, title, body) {
  await press(page, "#new-note");
  await fill(page, "#note-title", title);
  await fill(page, "#note-body", body);
  await waitSaved(page);
}

async function waitSaved(page) {
  await waitFor(page, "the note to be saved", () => document.querySelector("#save-state")?.dataset.state === "saved");
}

function listTitles(page) {
  return page.$$eval("#note-list .note-title", (titles) => titles.map((title) => title.textContent));
}

/**
 * Opens the note whose list entry shows `title`: found and clicked in one step in the
 * page, as the list re-renders whenever the status changes (a handle taken between the
 * two could point at a node no longer in the list).
 */
async function openNote(page, title) {
  const click = (title) => {
    const item = [...document.querySelectorAll(".note-item")].find((item) => item.textContent.includes(title));
    item?.click();
    return item !== undefined;
  };
  await (await waitFor(page, `a note titled "${title}" in the list`, click, { args: [title] })).dispose();
}

function inputValue(page, selector) {
  return page.$eval(selector, (field) => field.value);
}

async function isVisible(page, selector) {
  return (await page.$(selector))?.isVisible() ?? false;
}

function attribute(page, selector, name) {
  return page.$eval(selector, (element, name) => element.getAttribute(name), name);
}

/** Waits until every note in the list shows `status` and the status bar agrees. */
async function waitAllSynced(page) {
  await waitFor(
    page,
    "every note to show synced and nothing to wait in the outbox",
    () =>
      [...document.querySelectorAll("#note-list .sync-badge")].every((badge) => badge.dataset.status === "synced") &&
      document.querySelector('[data-field="pending"]').dataset.count === "0",
  );
}

describe(`notes app (${ENGINE})`, () => {
  test("creates, edits and deletes notes, newest first, and syncs them with the server", async () => {
    const { server, page, errors, close } = await freshApp();
    try {
      const moduleAnswers = [];
      page.on("response", (response) => {
        if (new URL(response.url()).pathname.endsWith("/tideway_bg.wasm")) moduleAnswers.push(response.headers());
      });
      await openApp(page, server.url);
      // The wasm module travels as the sibling scripts/build.sh compressed it into.
      const siblings = { br: statSync(`${WWW}pkg/tideway_bg.wasm.br`).size, gzip: statSync(`${WWW}pkg/tideway_bg.wasm.gz`).size };
      assert.ok(moduleAnswers.length > 0, "the page fetched the module");
      for (const headers of moduleAnswers) {
        assert.equal(Number(headers["content-length"]), siblings[headers["content-encoding"]], JSON.stringify(headers));
      }
      assert.deepEqual(await listTitles(page), []);
      assert.equal(await isVisible(page, "#empty-list"), true);

      await writeNote(page, "Groceries", "Milk, eggs, bread");
      await writeNote(page, "Ideas", "An app that works on the train");
      assert.deepEqual(await listTitles(page), ["Ideas", "Groceries"]);

      // Served by the reference server, the app syncs with it shortly after each write.
      await waitAllSynced(page);
      assert.deepEqual(await titlesOnServer(server), ["Groceries", "Ideas"]);

      // Editing moves a note to the top (the list follows the updatedAt index).
      await openNote(page, "Groceries");
      assert.equal(await inputValue(page, "#note-body"), "Milk, eggs, bread");
      await fill(page, "#note-title", "Groceries for Sunday");
      await fill(page, "#note-body", "Milk, eggs, bread, coffee");
      await waitSaved(page);
      assert.deepEqual(await listTitles(page), ["Groceries for Sunday", "Ideas"]);

      // What the list shows is what the store holds.
      await waitAllSynced(page);
      const stored = await page.evaluate(() =>
        window.tidewayNotes.store.list().map(({ data, meta }) => ({ ...data, status: meta.syncStatus })),
      );
      assert.equal(stored.length, 2);
      assert.equal(stored[0].title, "Groceries for Sunday");
      assert.equal(stored[0].body, "Milk, eggs, bread, coffee");
      assert.equal(stored[0].status, "synced");
      // The status bar says which tab or worker syncs the database: this tab, here.
      const syncPill = await page.$eval('[data-field="sync"]', (pill) => [pill.dataset.syncer, pill.textContent]);
      assert.equal(syncPill[0], "here");
      assert.match(syncPill[1], /by this tab/);

      await openNote(page, "Ideas");
      await press(page, "#delete-note");
      await waitFor(page, "the deleted note to leave the list", () => document.querySelectorAll("#note-list .note-item").length === 1);
      assert.deepEqual(await listTitles(page), ["Groceries for Sunday"]);
      assert.equal(await isVisible(page, "#editor"), false);
      await waitAllSynced(page);
      assert.deepEqual(await titlesOnServer(server), ["Groceries for Sunday"]);

      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("a reload keeps every note, edit and delete", async () => {
    const { server, page, errors, close } = await freshApp();
    try {
      await openApp(page, server.url);
      await writeNote(page, "Keep me", "Still here after a reload");
      await writeNote(page, "Delete me", "Gone after a reload");
      await press(page, "#delete-note");
      await waitFor(page, "the deleted note to leave the store", () => window.tidewayNotes.store.list().length === 1);
      // The delete's promise is what the toast waits for: it is durable once the toast shows.
      await waitFor(page, "the toast saying the note was deleted", () =>
        document.querySelector("#toast")?.textContent.includes("Note deleted"),
      );

      await reloadApp(page);
      assert.deepEqual(await listTitles(page), ["Keep me"]);
      await openNote(page, "Keep me");
      assert.equal(await inputValue(page, "#note-body"), "Still here after a reload");
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("a note written in one page is there when the app is opened again", async () => {
    const { server, context, page, close } = await freshApp();
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
      assert.equal(record.meta.deleted, false);
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test("offline after the first visit: the app still starts, and writes work and persist", async () => {
    const { server, page, errors, close } = await freshApp();
    try {
      await openApp(page, server.url);
      await waitFor(page, "the app to say it works offline", () => document.documentElement.dataset.offlineReady === "true");
      await writeNote(page, "Written online", "Before the network went away");

      // No network at all: the browser is offline and the server is gone.
      await page.setOfflineMode(true);
      await server.stop();

      await reloadApp(page);
      assert.equal(await attribute(page, '[data-field="network"]', "data-online"), "false");
      assert.deepEqual(await listTitles(page), ["Written online"]);

      await writeNote(page, "Written offline", "On the train");
      await openNote(page, "Written online");
      await fill(page, "#note-body", "Before the network went away, edited offline");
      await waitSaved(page);

      await reloadApp(page);
      assert.deepEqual(await listTitles(page), ["Written online", "Written offline"]);
      await openNote(page, "Written online");
      assert.equal(await inputValue(page, "#note-body"), "Before the network went away, edited offline");

      // The failed network fetches the service worker fell back from are expected noise
      // (Chromium says ERR_INTERNET_DISCONNECTED or net::, Firefox NetworkError).
      const expectedNoise = /ERR_INTERNET_DISCONNECTED|Failed to fetch|net::|NetworkError/;
      assert.deepEqual(errors.filter((e) => !expectedNoise.test(e)), []);
    } finally {
      await close();
    }
  });
});
