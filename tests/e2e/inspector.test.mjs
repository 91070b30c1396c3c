// The demo's debug screen: Tideway's <tideway-inspector> element, shown by the "Debug"
// toggle, driven as a person would in a real browser against the reference server that
// serves the app. What it shows is checked against the server and the database itself.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  DEMO_TOKEN,
  ENGINE,
  fill,
  openApp,
  openNote,
  press,
  serveApp,
  waitAllSynced,
  waitFor,
  waitSaved,
  watchPage,
  withAppInBrowser,
  writeNote,
} from "./helpers.mjs";

const app = withAppInBrowser({ serve: false });

/** A device: a browser profile of its own (IndexedDB, caches, service worker) on the app at `url`. */
async function device(url) {
  const context = await app.browser.createBrowserContext();
  const page = await context.newPage();
  const errors = watchPage(page);
  await openApp(page, url);
  return { context, page, errors };
}

/** Shows the debug screen and waits until the inspector has drawn the database. */
async function showDebug(page) {
  await press(page, "#debug-toggle");
  await waitFor(page, "the inspector to draw the database", () =>
    document.querySelector("tideway-inspector")?.shadowRoot.querySelector('[data-section="status"]')?.checkVisibility(),
  );
}

/** The inspector's outbox rows: `{ mutationId, collection, id, op, attempts }`. */
function outboxRows(page) {
  return page.evaluate(() =>
    [...document.querySelector("tideway-inspector").shadowRoot.querySelectorAll('[data-section="outbox"] tr[data-mutation-id]')].map(
      (row) => {
        const field = (name) => row.querySelector(`[data-field="${name}"]`).textContent;
        return { mutationId: Number(row.dataset.mutationId), collection: row.dataset.collection, id: row.dataset.id, op: field("op"), attempts: field("attempts") };
      },
    ),
  );
}

/** Waits until the inspector's log shows an entry of `step` (whose text matches `pattern`, if given). */
async function waitForLogEntry(page, step, pattern = "") {
  await waitFor(
    page,
    `a "${step}" entry${pattern ? ` matching /${pattern}/` : ""} in the inspector's log`,
    (step, pattern) =>
      [...document.querySelector("tideway-inspector").shadowRoot.querySelectorAll(`[data-section="log"] li[data-step="${step}"]`)].some(
        (item) => new RegExp(pattern).test(item.textContent),
      ),
    { args: [step, pattern] },
  );
}

/** Clicks a button inside the inspector. */
async function pressInInspector(page, selector) {
  await waitFor(page, `${selector} in the inspector`, (selector) =>
    document.querySelector("tideway-inspector").shadowRoot.querySelector(selector)?.checkVisibility(), { args: [selector] },
  );
  await page.evaluate((selector) => document.querySelector("tideway-inspector").shadowRoot.querySelector(selector).click(), selector);
}

function inspectorText(page, selector) {
  return page.evaluate((selector) => document.querySelector("tideway-inspector").shadowRoot.querySelector(selector)?.textContent, selector);
}

/** The notes the server holds, by id. */
async function notesOnServer(server) {
  return new Map((await server.pullAll(DEMO_TOKEN)).map((entity) => [entity.id, entity]));
}

/**
 * One note, synced, then edited on a second device (which syncs) and on this one (which
 * has not pulled that edit): this device's push conflicts, and the demo's `manual`
 * policy leaves the note in conflict for the user.
 */
async function conflictWithSecondDevice(server, a) {
  const id = await writeNote(a.page, "Shared", "first draft");
  await waitAllSynced(a.page);

  const b = await device(server.url);
  await openNote(b.page, "Shared");
  await fill(b.page, "#note-body", "edited on the second device");
  await waitSaved(b.page);
  await waitAllSynced(b.page);
  assert.equal((await notesOnServer(server)).get(id).data.body, "edited on the second device");

  await openNote(a.page, "Shared");
  await fill(a.page, "#note-body", "edited on this device");
  await waitSaved(a.page);
  await waitFor(a.page, "the note to be in conflict", (id) => window.tidewayNotes.store.get(id)?.meta.syncStatus === "conflict", {
    args: [id],
  });
  return { id, b };
}

describe(`inspector in the demo (${ENGINE})`, () => {
  test("the debug toggle shows the inspector: status, syncing context, collections and the sync log", async () => {
    const server = await serveApp();
    const a = await device(server.url);
    try {
      assert.equal(await a.page.$eval("#debug", (debug) => debug.hidden), true, "hidden until asked for");
      await showDebug(a.page);
      assert.equal(await a.page.$eval("#debug-toggle", (toggle) => toggle.getAttribute("aria-pressed")), "true");

      await writeNote(a.page, "One", "first");
      await writeNote(a.page, "Two", "second");
      await waitAllSynced(a.page);
      await waitFor(a.page, "the inspector to count two notes", () =>
        document.querySelector("tideway-inspector").shadowRoot.querySelector('tr[data-collection="notes"] [data-field="count"]')?.textContent === "2",
      );
      // This tab is the one that syncs, and says so.
      assert.equal(await inspectorText(a.page, '[data-field="syncer"]'), "window (this one)");
      // Each step of a sync, with each pushed mutation's answer and the counters at its end.
      await waitForLogEntry(a.page, "push", "mutations=\\d");
      await waitForLogEntry(a.page, "answer", "status=applied");
      await waitForLogEntry(a.page, "pushed", "applied=[1-9]");
      await waitForLogEntry(a.page, "pull");
      await waitForLogEntry(a.page, "pulled");
      await waitForLogEntry(a.page, "done", '"queued":0');
      assert.match(await inspectorText(a.page, '[data-field="counters"]'), /pushed [1-9]/);

      // The toggle hides it again, and the choice survives a reload.
      await press(a.page, "#debug-toggle");
      assert.equal(await a.page.$eval("tideway-inspector", (inspector) => inspector.checkVisibility()), false);
      await a.page.reload();
      await waitFor(a.page, "the app to load its notes", () => document.documentElement.dataset.appReady === "true");
      assert.equal(await a.page.$eval("#debug", (debug) => debug.hidden), true);
      assert.deepEqual(a.errors, []);
    } finally {
      await a.context.close();
      await server.close();
    }
  });

  test("a write made while the server is away waits in the outbox, and leaves it after sync", async () => {
    const server = await serveApp();
    const a = await device(server.url);
    try {
      await showDebug(a.page);
      await waitFor(a.page, "the first sync", () => window.tidewayNotes.db.status().lastSyncAt !== null);

      await server.stop();
      const id = await writeNote(a.page, "Written while away", "waits in the outbox");
      await waitFor(a.page, "the write in the inspector's outbox", (id) =>
        document.querySelector("tideway-inspector").shadowRoot.querySelector(`[data-section="outbox"] tr[data-id="${id}"]`), { args: [id] },
      );
      // The failed push, when it is tried again, and the attempt counted on the entry with its error.
      await waitForLogEntry(a.page, "failed");
      await waitForLogEntry(a.page, "retryScheduled", "attempt=1 ");
      await waitFor(a.page, "the failed push counted in the outbox", () =>
        [...document.querySelector("tideway-inspector").shadowRoot.querySelectorAll('[data-section="outbox"] [data-field="attempts"]')].some(
          (cell) => Number(cell.textContent) >= 1,
        ),
      );
      // The editor saves the title as the put that creates the note, and may save the body
      // as a patch a moment later: compare once the inspector shows as many entries as the outbox.
      await waitFor(a.page, "the inspector to list every outbox entry", async () => {
        const shown = document.querySelector("tideway-inspector").shadowRoot.querySelectorAll('[data-section="outbox"] tr[data-mutation-id]');
        return shown.length === (await window.tidewayNotes.db.outbox()).length;
      });
      const rows = await outboxRows(a.page);
      const outbox = await a.page.evaluate(() => window.tidewayNotes.db.outbox());
      assert.deepEqual(rows[0], { mutationId: rows[0].mutationId, collection: "notes", id, op: "put", attempts: rows[0].attempts });
      assert.ok(rows.every((row) => row.id === id && row.collection === "notes"), JSON.stringify(rows));
      assert.ok(outbox[0].attempts >= 1 && outbox[0].lastError, JSON.stringify(outbox[0]));
      assert.deepEqual(rows.map((row) => [row.mutationId, row.op]), outbox.map((entry) => [entry.mutationId, entry.op]), "it shows db.outbox()");
      assert.ok((await inspectorText(a.page, '[data-section="outbox"] [data-field="last-error"]')).length > 0);
      assert.equal(await inspectorText(a.page, '[data-field="pending"]'), String(rows.length));

      await server.restart();
      await pressInInspector(a.page, '[data-action="sync"]');
      await waitFor(a.page, "the inspector's outbox to be empty", () =>
        document.querySelector("tideway-inspector").shadowRoot.querySelector('[data-section="outbox"]')?.textContent.includes("nothing waits"),
      );
      assert.equal((await notesOnServer(server)).get(id).data.title, "Written while away");
      await waitForLogEntry(a.page, "done", '"queued":0');
      // Fetches that failed while the server was away are expected noise.
      assert.deepEqual(a.errors.filter((error) => !/Failed to fetch|NetworkError|net::|ERR_CONNECTION_REFUSED/.test(error)), []);
    } finally {
      await a.context.close();
      await server.close();
    }
  });

  test("a conflict made by a second device shows both sides, and the inspector resolves it", async () => {
    const server = await serveApp();
    const a = await device(server.url);
    let b;
    try {
      await showDebug(a.page);
      let id;
      ({ id, b } = await conflictWithSecondDevice(server, a));

      const conflict = `[data-section="conflicts"] article[data-id="${id}"]`;
      await waitFor(a.page, "the conflict in the inspector", (selector) =>
        document.querySelector("tideway-inspector").shadowRoot.querySelector(selector), { args: [conflict] },
      );
      assert.match(await inspectorText(a.page, `${conflict} [data-side="local"] pre`), /edited on this device/);
      assert.match(await inspectorText(a.page, `${conflict} [data-side="server"] pre`), /edited on the second device/);
      assert.match(await inspectorText(a.page, `${conflict} [data-side="base"] pre`), /first draft/);
      await waitForLogEntry(a.page, "answer", "status=conflict");
      await waitForLogEntry(a.page, "conflict", `id=${id} policy=manual outcome=manual`);
      // The demo shows it too: the list's badge and the editor's two sides.
      assert.equal(await a.page.$eval("#conflict", (banner) => banner.hidden), false);
      assert.equal(await a.page.$eval('.side-body[data-side="server"]', (side) => side.textContent), "edited on the second device");

      await pressInInspector(a.page, `${conflict} [data-action="keep-local"]`);
      await waitFor(a.page, "the inspector to show no conflict", () =>
        document.querySelector("tideway-inspector").shadowRoot.querySelector('[data-section="conflicts"]')?.textContent === "None.",
      );
      await waitAllSynced(a.page);
      assert.equal((await notesOnServer(server)).get(id).data.body, "edited on this device");
      assert.equal(await a.page.$eval("#conflict", (banner) => banner.hidden), true);
      // The second device gets the choice.
      await b.page.evaluate(() => window.tidewayNotes.db.sync());
      assert.equal(await b.page.evaluate((id) => window.tidewayNotes.store.get(id).data.body, id), "edited on this device");
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await b?.context.close();
      await a.context.close();
      await server.close();
    }
  });

  test("the editor shows a conflict's two sides, and taking the other device's version resolves it", async () => {
    const server = await serveApp();
    const a = await device(server.url);
    let b;
    try {
      let id;
      ({ id, b } = await conflictWithSecondDevice(server, a));
      await waitFor(a.page, "the conflict banner", () => !document.querySelector("#conflict").hidden);
      assert.equal(await a.page.$eval('.side-body[data-side="local"]', (side) => side.textContent), "edited on this device");
      const badge = await a.page.$eval(`#note-list .note-item[data-id="${id}"] .sync-badge`, (badge) => badge.dataset.status);
      assert.equal(badge, "conflict");

      await press(a.page, "#take-theirs");
      await waitFor(a.page, "the banner to go", () => document.querySelector("#conflict").hidden);
      assert.equal(await a.page.$eval("#note-body", (body) => body.value), "edited on the second device");
      await waitAllSynced(a.page);
      assert.equal((await notesOnServer(server)).get(id).data.body, "edited on the second device");
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await b?.context.close();
      await a.context.close();
      await server.close();
    }
  });
});
