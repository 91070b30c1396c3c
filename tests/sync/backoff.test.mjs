// A backoff outlives the page: after a failed sync the retry time is saved with the
// database, so a reload during the backoff does not send the struggling server a new
// burst of syncs (docs/sync.md, "Errors, retries and backoff"). Requests are counted
// by a proxy in front of the reference server; the page's clock is Playwright's, so
// the minute of backoff passes in an instant.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startCountingProxy } from "./counting-proxy.mjs";
import { READY_LIMIT_MS, eventually, serverAndBrowser } from "./helpers.mjs";

const RETRY_AFTER_SECONDS = 60;

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

/** A page on `proxy`, in a browser context of its own whose clock the test drives. */
async function openPage(proxy) {
  const context = await browser.newContext();
  await context.clock.install();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(proxy.url, { timeout: READY_LIMIT_MS });
  await page.waitForSelector('html[data-ready="true"]', { timeout: READY_LIMIT_MS });
  return { context, page, errors };
}

/**
 * Writes a note and syncs while the proxy answers 503 with `Retry-After`, closes the
 * database and reloads the page; the proxy passes requests on again. Resolves with the
 * retry time the failed sync saved, and the moment the page came back.
 */
async function failSyncThenReload(page, proxy, { name, token }) {
  proxy.unavailable = { retryAfterSeconds: RETRY_AFTER_SECONDS };
  const failed = await page.evaluate(
    async ({ name, token }) => {
      const db = await Tideway.open({ name, collections: { notes: {} }, sync: { url: location.origin, getToken: () => token, auto: false } });
      await db.collection("notes").put({ title: "written during the outage" }, { id: "n1" });
      const error = await db.sync().then(() => null, (e) => ({ code: e.code, kind: e.kind, retryAt: e.retryAt }));
      const nextRetryAt = db.status().nextRetryAt;
      await db.close();
      return { error, nextRetryAt, now: Date.now() };
    },
    { name, token },
  );
  assert.deepEqual(failed.error, { code: "SYNC_FAILED", kind: "transient", retryAt: failed.nextRetryAt });
  assert.ok(
    failed.nextRetryAt - failed.now > (RETRY_AFTER_SECONDS - 5) * 1000,
    `Retry-After: ${RETRY_AFTER_SECONDS} is honoured (retry at ${failed.nextRetryAt}, now ${failed.now})`,
  );
  proxy.unavailable = null;
  await page.reload({ timeout: READY_LIMIT_MS });
  await page.waitForSelector('html[data-ready="true"]', { timeout: READY_LIMIT_MS });
  return { savedRetryAt: failed.nextRetryAt, reloadedAt: Date.now() };
}

describe("backoff across a reload", () => {
  test("after a reload, no automatic sync reaches the server before the saved retry time", async () => {
    const proxy = await startCountingProxy(server.url);
    const { context, page, errors } = await openPage(proxy);
    try {
      const name = `backoff-${crypto.randomUUID()}`;
      const { savedRetryAt, reloadedAt } = await failSyncThenReload(page, proxy, { name, token: "backoff-token" });

      // Every automatic trigger, during the backoff: open, a write (and its debounce),
      // the page becoming visible, and a minute of interval ticks.
      const reopened = await page.evaluate(
        async ({ name }) => {
          window.steps = [];
          window.db = await Tideway.open({
            name,
            collections: { notes: {} },
            sync: {
              url: location.origin,
              getToken: () => "backoff-token",
              interval: 1000,
              debounce: 10,
              log: (entry) => window.steps.push(entry),
            },
          });
          await db.collection("notes").put({ title: "written after the reload" }, { id: "n2" });
          document.dispatchEvent(new Event("visibilitychange"));
          return { visibility: document.visibilityState, nextRetryAt: db.status().nextRetryAt, now: Date.now() };
        },
        { name },
      );
      assert.equal(reopened.visibility, "visible");
      assert.equal(reopened.nextRetryAt, savedRetryAt, "the reopened database loaded the saved retry time");
      await context.clock.runFor(savedRetryAt - reopened.now - 2000);
      assert.deepEqual(proxy.apiRequestsSince(reloadedAt), [], "requests reached the server during the backoff");

      // The saved time passes: the retry goes out on its own and pushes both notes.
      const retriedAt = Date.now();
      await context.clock.runFor(4000);
      await eventually("the retry at the saved time to push the outbox", () =>
        page.evaluate(() => db.status().pending === 0 && db.status().lastSyncAt !== null),
      );
      const steps = await page.evaluate(() => window.steps);
      const firstPush = steps.find((entry) => entry.step === "push");
      assert.ok(firstPush.at >= savedRetryAt, `the first push after the reload (${firstPush.at}) came before the saved retry time (${savedRetryAt})`);
      assert.ok(proxy.apiRequestsSince(reloadedAt).every((request) => request.at >= retriedAt));
      const held = (await server.pullAll("backoff")).map((entity) => entity.id).sort();
      assert.deepEqual(held, ["n1", "n2"]);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("db.sync() by hand goes through during a backoff loaded after a reload", async () => {
    const proxy = await startCountingProxy(server.url);
    const { context, page, errors } = await openPage(proxy);
    try {
      const name = `handsync-${crypto.randomUUID()}`;
      const { savedRetryAt, reloadedAt } = await failSyncThenReload(page, proxy, { name, token: "handsync-token" });
      const outcome = await page.evaluate(
        async ({ name }) => {
          const db = await Tideway.open({ name, collections: { notes: {} }, sync: { url: location.origin, getToken: () => "handsync-token", auto: false } });
          const before = { nextRetryAt: db.status().nextRetryAt, now: Date.now() };
          const report = await db.sync();
          const after = db.status();
          await db.close();
          return { before, pushed: report.pushed, nextRetryAt: after.nextRetryAt, lastError: after.lastError };
        },
        { name },
      );
      assert.equal(outcome.before.nextRetryAt, savedRetryAt);
      assert.ok(outcome.before.now < savedRetryAt, "the sync by hand was made during the backoff");
      assert.equal(outcome.pushed, 1);
      assert.equal(outcome.nextRetryAt, null, "a sync that succeeds ends the backoff");
      assert.equal(outcome.lastError, null);
      assert.ok(proxy.apiRequestsSince(reloadedAt).some((request) => request.path === "/v1/push"));
      assert.deepEqual((await server.pullAll("handsync")).map((entity) => entity.id), ["n1"]);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });
});
