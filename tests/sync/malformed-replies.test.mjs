// Replies no server of the protocol sends, from a proxy in front of the real reference
// server: invalid JSON, JSON of the wrong shape, an HTML error page, a body cut in half,
// a huge body, a pulled id holding U+0000, in a pull's answer or in the page a push's
// answer carries. Each must reach the app as a typed, transient `SYNC_FAILED` with a
// message that says what was wrong, keep the write, schedule a retry, panic nothing; and
// once the replies are sound again, the write reaches the server once.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCountingProxy } from "./counting-proxy.mjs";
import { READY_LIMIT_MS, serverAndBrowser } from "./helpers.mjs";

const USER = "offline";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

const json = (status, body) => ({ kind: "answer", status, body: typeof body === "string" ? body : JSON.stringify(body) });
const HUGE = 24 << 20;
/** The server's answer to a push, with `page` as the page of the pull it carried. */
const carrying = (page) => ({ kind: "rewrite", rewrite: (answer) => ({ ...answer, pull: page }) });
const NUL_PAGE = { changes: [{ collection: "notes", id: "a\u0000b", data: { title: "x" }, version: 1, serverUpdatedAt: 1 }], cursor: "c", hasMore: false };

/** Each case: the path whose reply is broken, the reply, and what the error message must say. */
const CASES = [
  { name: "push: invalid JSON", path: "/v1/push", fault: json(200, '{"results": [{"mutationId": 1,'), says: /malformed server reply/ },
  { name: "push: results of the wrong type", path: "/v1/push", fault: json(200, { results: "none" }), says: /malformed server reply/ },
  { name: "push: no result for the mutation", path: "/v1/push", fault: json(200, { results: [] }), says: /malformed server reply/ },
  { name: "push: applied, then the answer cut in half", path: "/v1/push", fault: { kind: "truncate" }, says: /malformed server reply/ },
  {
    name: "push: applied, then an HTML error page",
    path: "/v1/push",
    fault: { kind: "answer", afterServer: true, status: 502, contentType: "text/html", body: "<!doctype html><h1>502 Bad Gateway</h1>" },
    says: /HTTP 502/,
  },
  {
    name: "push: a huge body",
    path: "/v1/push",
    fault: json(200, `{"results": [], "padding": "${"x".repeat(HUGE)}"}`),
    says: /malformed server reply/,
  },
  { name: "push: the page it carried, of the wrong shape", path: "/v1/push", fault: carrying({ changes: "none" }), says: /malformed server reply/ },
  {
    // The push's answers are recorded: the write is on the server, the page refused.
    name: "push: the page it carried, an id holding U+0000",
    path: "/v1/push",
    fault: carrying(NUL_PAGE),
    says: /malformed server reply: pull answered an id holding U\+0000/,
    recorded: true,
  },
  // A database with nothing to push pulls on its own.
  { name: "pull: invalid JSON", path: "/v1/pull", fault: json(200, "{changes"), says: /malformed server reply/ },
  { name: "pull: changes of the wrong shape", path: "/v1/pull", fault: json(200, { changes: [{ id: 5 }], cursor: "", hasMore: false }), says: /malformed server reply/ },
  {
    // The IndexedDB store joins ids with U+0000 where one call carries many.
    name: "pull: an id holding U+0000",
    path: "/v1/pull",
    fault: json(200, NUL_PAGE),
    says: /malformed server reply: pull answered an id holding U\+0000/,
  },
  { name: "pull: an HTML error page", path: "/v1/pull", fault: { kind: "answer", status: 500, contentType: "text/html", body: "<html>oops</html>" }, says: /HTTP 500/ },
];

describe("malformed server replies", () => {
  let proxy;
  let page;
  let errors;

  before(async () => {
    proxy = await startCountingProxy(server.url);
    const context = await browser.newContext();
    page = await context.newPage();
    errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(proxy.url, { timeout: READY_LIMIT_MS });
    await page.waitForSelector('html[data-ready="true"]', { timeout: READY_LIMIT_MS });
  });

  for (const [index, { name, path, fault, says, recorded = false }] of CASES.entries()) {
    test(`${name}: a transient SYNC_FAILED, the write kept and then pushed once`, async () => {
      const id = `m${index}`;
      let broken = false;
      proxy.fault = (request) => (request.path === path && !broken ? ((broken = true), fault) : null);
      // A pull's case writes after the sync that fails: a write queued before would carry the pull.
      const failed = await page.evaluate(
        async ({ id, name, token, writeFirst }) => {
          window.db = await Tideway.open({ name, collections: { notes: {} }, sync: { url: location.origin, getToken: () => token, auto: false } });
          const write = () => db.collection("notes").put({ title: id }, { id });
          if (writeFirst) await write();
          const error = await db.sync().then(() => null, (e) => ({ name: e.name, code: e.code, kind: e.kind, message: e.message }));
          if (!writeFirst) await write();
          return { error, pending: await db.pendingCount(), nextRetryAt: db.status().nextRetryAt, held: db.collection("notes").get(id)?.data };
        },
        { id, name: `malformed-${index}-${Date.now()}`, token: `${USER}-token`, writeFirst: path === "/v1/push" },
      );
      assert.ok(broken, "the broken reply was sent");
      assert.equal(failed.error?.code, "SYNC_FAILED", JSON.stringify(failed.error));
      assert.equal(failed.error.kind, "transient");
      assert.match(failed.error.message, says);
      assert.ok(failed.nextRetryAt > 0, "a retry is scheduled");
      assert.deepEqual(failed.held, { title: id }, "the local write stands");
      // A push the server applied before its answer broke stays queued until an answer is read.
      assert.equal(failed.pending, recorded ? 0 : 1, recorded ? "the push's answers were recorded" : "the write is still queued");

      proxy.fault = null;
      const healed = await page.evaluate(async () => {
        await db.sync();
        const state = { pending: await db.pendingCount(), status: db.status() };
        await db.close();
        return state;
      });
      assert.equal(healed.pending, 0);
      assert.equal(healed.status.failed, 0);
      const onServer = (await server.pullAll(USER)).filter((e) => e.id === id);
      assert.deepEqual(onServer.map((e) => [e.data, e.version]), [[{ title: id }, 1]], "applied once, at version 1");
      assert.deepEqual(errors, [], "no error reached the page");
    });
  }

  after(async () => {
    await page.context().close();
    await proxy.close();
  });
});
