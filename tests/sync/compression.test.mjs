// Push bodies travel gzipped once the server has said it takes them (its answers'
// `Accept-Encoding`, RFC 7694), and plain again where something refuses them. A proxy
// in front of the reference server sees each push as it is sent (docs/protocol.md,
// "Compression").

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startCountingProxy } from "./counting-proxy.mjs";
import { openDb, openDevice, serverAndBrowser } from "./helpers.mjs";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

/**
 * A page loaded through `proxy`, in a browser context of its own (made ready by
 * `prepare`, see `openDevice`), with `window.db` open as `user`; `workers` lists
 * the URL of each worker the page starts.
 */
async function openThrough(proxy, user, prepare) {
  const device = await openDevice(browser, proxy, prepare);
  const workers = [];
  device.page.on("worker", (worker) => workers.push(worker.url()));
  await openDb(device, `${user}-${crypto.randomUUID()}`, user, { auto: false });
  return { ...device, workers };
}

/**
 * Prepares a context (see `openDevice`) to count, in `window.compressions`, the
 * bodies its pages give their compressing worker, and to set `window.workerRuns`
 * once that worker says it runs; with `holdFirst`, its answer to the first body
 * comes 500 ms late; with `silent`, the bodies never reach it, so it never
 * answers one, as a worker that died without an error event would not.
 */
const watchWorkers =
  ({ holdFirst = false, silent = false } = {}) =>
  (context) =>
    context.addInitScript(
      ({ holdFirst, silent }) => {
        window.compressions = 0;
        window.workerRuns = false;
        globalThis.Worker = class extends Worker {
          postMessage(...args) {
            window.compressions++;
            if (!silent) super.postMessage(...args);
          }

          set onmessage(listener) {
            super.onmessage = (event) => {
              if (event.data === null) window.workerRuns = true;
              setTimeout(() => listener(event), holdFirst && event.data?.[0] === 0 ? 500 : 0);
            };
          }
        };
      },
      { holdFirst, silent },
    );

/** Writes `count` notes numbered from `first`, in one transaction, and syncs. */
const writeAndSync = (page, first, count) =>
  page.evaluate(
    async ({ first, count }) => {
      const words = "the tide goes out and the notes wait in the queue until the network comes back".split(" ");
      const entries = Array.from({ length: count }, (_, i) => ({
        id: `n${first + i}`,
        data: { title: `Note ${first + i}`, body: Array.from({ length: 40 }, (_, w) => words[(w * 7 + i) % words.length]).join(" ") },
      }));
      await db.collection("notes").bulkPut(entries);
      await db.sync();
      return db.status();
    },
    { first, count },
  );

const pushes = (proxy) => proxy.requests.filter((request) => request.path === "/v1/push");

/** The `count` requests `proxy` saw from the `from`-th on, as `METHOD PATH ENCODING`. */
const requestsFrom = (proxy, from, count) =>
  proxy.requests.slice(from, from + count).map(({ method, path, encoding }) => `${method} ${path} ${encoding}`);

/** The server holds `count` notes of `user`, the note `n${count - 1}` with the data the page has. */
async function assertArrivedWhole(page, user, count) {
  const held = await server.pullAll(user);
  assert.equal(held.length, count);
  const id = `n${count - 1}`;
  const local = await page.evaluate((id) => db.collection("notes").get(id).data, id);
  assert.deepEqual(held.find((entity) => entity.id === id).data, local);
}

/** Syncs one note, then two batches of 300 (the two large pushes), each leaving nothing queued and no error. */
async function syncOneThenTwoLarge(page) {
  await writeAndSync(page, 0, 1);
  for (const first of [1, 301]) {
    const status = await writeAndSync(page, first, 300);
    assert.equal(status.pending, 0);
    assert.equal(status.lastError, null);
  }
}

describe("compressed pushes", () => {
  test("a large push travels gzipped, at a fraction of its size, and arrives whole", async () => {
    const proxy = await startCountingProxy(server.url);
    const plainSizes = [];
    proxy.observe = ({ path, requestBody }) => path === "/v1/push" && plainSizes.push(Buffer.byteLength(requestBody));
    const { context, page, errors } = await openThrough(proxy, "gzip");
    try {
      await writeAndSync(page, 0, 1);
      const status = await writeAndSync(page, 1, 300);
      assert.equal(status.pending, 0);
      assert.equal(status.lastError, null);

      // The first push goes before the server has answered anything, so plain.
      assert.deepEqual(pushes(proxy).map((push) => push.encoding), [null, "gzip"]);
      const [, packed] = pushes(proxy);
      assert.ok(packed.bytes * 4 < plainSizes[1], `${packed.bytes} bytes sent for ${plainSizes[1]} of JSON`);
      await assertArrivedWhole(page, "gzip", 301);

      // A new database whose first push is large asks the server first, so that
      // push already goes gzipped.
      await openDb({ page }, `gzip-${crypto.randomUUID()}`, "gzip", { auto: false });
      const asked = proxy.requests.length;
      assert.equal((await writeAndSync(page, 1000, 300)).pending, 0);
      assert.deepEqual(requestsFrom(proxy, asked, 2), ["GET /v1/health null", "POST /v1/push gzip"]);
      assert.equal((await server.pullAll("gzip")).length, 601);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("a first large push to a server that takes no gzip asks first, and goes plain", async () => {
    const proxy = await startCountingProxy(server.url);
    // The health answer of a server that takes plain bodies only. The body is
    // gzipped while the client waits for it, and must then be thrown away.
    proxy.fault = ({ path }) =>
      path === "/v1/health" ? { kind: "answer", status: 200, headers: { "accept-encoding": "identity" }, body: "{}" } : null;
    const { context, page, errors } = await openThrough(proxy, "plainfirst");
    try {
      const asked = proxy.requests.length;
      assert.equal((await writeAndSync(page, 0, 300)).pending, 0);
      assert.deepEqual(requestsFrom(proxy, asked, 2), ["GET /v1/health null", "POST /v1/push null"]);
      await assertArrivedWhole(page, "plainfirst", 300);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("a database that synced before gzips its first large push without asking, on the same server only", async () => {
    const proxy = await startCountingProxy(server.url);
    const { context, page, errors } = await openDevice(browser, proxy);
    const name = `remembered-${crypto.randomUUID()}`;
    const reload = async () => {
      await page.reload();
      await page.waitForSelector('html[data-ready="true"]');
    };
    try {
      await openDb({ page }, name, "remembered", { auto: false });
      // A small push goes plain without asking; the server's answer says it takes gzip.
      await writeAndSync(page, 0, 1);

      // The next session starts from what that answer said.
      await reload();
      await openDb({ page }, name, "remembered", { auto: false });
      let asked = proxy.requests.length;
      assert.equal((await writeAndSync(page, 1, 300)).pending, 0);
      assert.deepEqual(requestsFrom(proxy, asked, 1), ["POST /v1/push gzip"]);

      // Syncing under another URL (a path here), the client asks again.
      await reload();
      await openDb({ page }, name, "remembered", { auto: false, url: "/" });
      asked = proxy.requests.length;
      assert.equal((await writeAndSync(page, 301, 300)).pending, 0);
      assert.deepEqual(requestsFrom(proxy, asked, 2), ["GET /v1/health null", "POST /v1/push gzip"]);

      assert.equal((await server.pullAll("remembered")).length, 601);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("a push gzipped ahead goes as it was gzipped, though the push before it was gzipped last", async () => {
    const proxy = await startCountingProxy(server.url);
    // The worker's answer to its first body comes late: the push after it is
    // then read and gzipped ahead before it goes.
    const { context, page, errors } = await openThrough(proxy, "ahead", watchWorkers({ holdFirst: true }));
    try {
      // The worker starts with the first large push, and takes the bodies after it.
      assert.equal((await writeAndSync(page, 0, 300)).pending, 0);
      await page.waitForFunction(() => window.workerRuns);
      const asked = proxy.requests.length;
      assert.equal((await writeAndSync(page, 300, 1500)).pending, 0);
      assert.deepEqual(requestsFrom(proxy, asked, 2), ["POST /v1/push gzip", "POST /v1/push gzip"]);
      assert.equal(await page.evaluate(() => window.compressions), 2, "each push's body was compressed once");
      await assertArrivedWhole(page, "ahead", 1800);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("bodies are compressed in a worker, and on the page's thread only while it starts", async () => {
    const proxy = await startCountingProxy(server.url);
    const { context, page, errors, workers } = await openThrough(proxy, "offthread", watchWorkers());
    try {
      await writeAndSync(page, 0, 1);
      assert.deepEqual(workers, [], "a push too small to compress starts no worker");
      // The first large push goes without waiting for the worker it starts.
      assert.equal((await writeAndSync(page, 1, 300)).pending, 0);
      assert.equal(workers.length, 1, `workers started: ${workers}`);
      assert.match(workers[0], /^blob:/);
      assert.equal(await page.evaluate(() => window.compressions), 0);
      await page.waitForFunction(() => window.workerRuns);
      assert.equal((await writeAndSync(page, 301, 300)).pending, 0);
      assert.equal(await page.evaluate(() => window.compressions), 1, "the next body went to the worker");
      assert.deepEqual(pushes(proxy).map((push) => push.encoding), [null, "gzip", "gzip"]);
      assert.equal(workers.length, 1, `workers started: ${workers}`);
      assert.equal((await server.pullAll("offthread")).length, 601);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("where the page's Content-Security-Policy refuses the worker, bodies are compressed on the page's thread", async () => {
    const proxy = await startCountingProxy(server.url);
    // No worker-src: script-src applies to workers, and it has no blob:.
    const policy = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval'";
    const withPolicy = (context) =>
      context.route(
        (url) => url.pathname === "/",
        async (route) => {
          const response = await route.fetch();
          await route.fulfill({ response, headers: { ...response.headers(), "content-security-policy": policy } });
        },
      );
    const { context, page, errors, workers } = await openThrough(proxy, "onthread", withPolicy);
    const refusals = [];
    page.on("console", (message) => /Content Security Policy/.test(message.text()) && refusals.push(message.text()));
    try {
      await syncOneThenTwoLarge(page);
      assert.deepEqual(pushes(proxy).map((push) => push.encoding), [null, "gzip", "gzip"]);
      assert.ok(refusals.length > 0, "the policy refused the worker");
      assert.deepEqual(workers, []);
      await assertArrivedWhole(page, "onthread", 601);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("a compressing worker that never answers is given up, and pushes still go compressed", async () => {
    const proxy = await startCountingProxy(server.url);
    const { context, page, errors, workers } = await openThrough(proxy, "silent", watchWorkers({ silent: true }));
    try {
      // The first compressed push goes while the worker starts; the next one waits
      // out the worker's limit, then compresses on the page's thread. The one
      // after it does so at once, starting no other worker.
      await writeAndSync(page, 0, 1);
      assert.equal((await writeAndSync(page, 1, 300)).pending, 0);
      await page.waitForFunction(() => window.workerRuns);
      for (const first of [301, 601]) {
        const status = await writeAndSync(page, first, 300);
        assert.equal(status.pending, 0);
        assert.equal(status.lastError, null);
      }
      assert.deepEqual(pushes(proxy).map((push) => push.encoding), [null, "gzip", "gzip", "gzip"]);
      assert.equal(workers.length, 1, `workers started: ${workers}`);
      assert.equal((await server.pullAll("silent")).length, 901);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  test("a gzipped push refused with 415 is sent again plain, and later pushes go plain", async () => {
    const proxy = await startCountingProxy(server.url);
    // Something before the server that takes no compressed bodies, though the server's
    // answers, which it passes on, say gzip.
    proxy.fault = ({ path, encoding }) =>
      path === "/v1/push" && encoding === "gzip"
        ? {
            kind: "answer",
            status: 415,
            headers: { "accept-encoding": "identity" },
            body: JSON.stringify({ error: { code: "unsupported_encoding", message: "the proxy takes plain bodies only" } }),
          }
        : null;
    const { context, page, errors } = await openThrough(proxy, "refused");
    try {
      await writeAndSync(page, 0, 1);
      const refused = await writeAndSync(page, 1, 100);
      const after = await writeAndSync(page, 101, 100);
      for (const status of [refused, after]) {
        assert.equal(status.pending, 0);
        assert.equal(status.lastError, null);
      }
      assert.deepEqual(pushes(proxy).map((push) => push.encoding), [null, "gzip", null, null]);
      const held = (await server.pullAll("refused")).map((entity) => entity.id);
      assert.equal(new Set(held).size, 201);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await proxy.close();
    }
  });
});
