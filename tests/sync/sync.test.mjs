// Sync end to end: Tideway in headless Chromium against the real reference
// server (SQLite), each device in its own browser context.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startCountingProxy } from "./counting-proxy.mjs";
import { openDb as openNamedDb, openDevice, serverAndBrowser, waitInPage } from "./helpers.mjs";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

/** Opens `window.db` on a device: one collection, syncing with the server as `user`. */
async function openDb(device, { user, collection = "notes", policy = "merge", auto = false, batchSize, timeout }) {
  await device.page.evaluate(
    async ({ user, collection, policy, auto, batchSize, timeout }) => {
      const policies = {
        concat: (local, server) => ({ ...server, title: `${server?.title}+${local?.title}` }),
        notData: () => 42,
      };
      window.events = { conflict: [], error: [], log: [] };
      window.db = await window.Tideway.open({
        name: `${user}-${collection}-${crypto.randomUUID()}`,
        collections: { [collection]: { indexes: ["title"], conflict: policies[policy] ?? policy } },
        sync: {
          url: location.origin,
          getToken: () => `${user}-token`,
          auto,
          interval: 0,
          debounce: 20,
          ...(batchSize ? { batchSize } : {}),
          ...(timeout ? { timeout } : {}),
        },
      });
      for (const event of ["conflict", "error", "log"]) db.on(event, (detail) => window.events[event].push(detail));
      window.notes = db.collection(collection);
    },
    { user, collection, policy, auto, batchSize, timeout },
  );
}

const data = (device, id) => device.page.evaluate((id) => notes.get(id)?.data, id);
const meta = (device, id) => device.page.evaluate((id) => notes.get(id)?.meta, id);
const sync = (device) => device.page.evaluate(() => db.sync());
const byId = (entities) => Object.fromEntries(entities.map((e) => [`${e.collection}/${e.id}`, e]));
/** The API requests `proxy` saw from the `from`-th on, as `METHOD PATH`. */
const requestsFrom = (proxy, from) => proxy.requests.slice(from).map(({ method, path }) => `${method} ${path}`);

describe("sync with the reference server", () => {
  test("writes made offline are pushed when the network comes back", async () => {
    const device = await openDevice(browser, server);
    await openDb(device, { user: "offline", auto: true });
    await waitInPage(device.page, "the sync on open", () => db.status().lastSyncAt !== null);

    await device.context.setOffline(true);
    await waitInPage(device.page, "the database to see the network go", () => db.status().online === false);
    await device.page.evaluate(async () => {
      await notes.put({ title: "one" }, { id: "n1" });
      await notes.put({ title: "two" }, { id: "n2" });
      await notes.put({ title: "three" }, { id: "n3" });
      await notes.patch("n1", { done: true });
      await notes.delete("n3");
    });
    const failure = await device.page.evaluate(() => db.sync().then(() => null, (e) => ({ code: e.code, kind: e.kind })));
    assert.deepEqual(failure, { code: "SYNC_FAILED", kind: "transient" });
    assert.equal(await device.page.evaluate(() => db.pendingCount()), 5);
    assert.equal(await device.page.evaluate(() => db.status().pending), 5);

    await device.context.setOffline(false);
    await waitInPage(device.page, "the outbox to be pushed once back online", () => db.status().pending === 0 && !db.status().syncing);
    const held = byId(await server.pullAll("offline"));
    assert.deepEqual(held["notes/n1"].data, { title: "one", done: true });
    assert.equal(held["notes/n1"].version, 2);
    assert.deepEqual(held["notes/n2"].data, { title: "two" });
    assert.equal(held["notes/n3"].deleted, true);
    assert.equal((await meta(device, "n1")).syncStatus, "synced");
    assert.equal(await device.page.evaluate(() => db.status().reachable), true);
    assert.deepEqual(device.errors, []);
    await device.context.close();
  });

  test("text of any script, in keys and values, survives the push, the pull and an open", async () => {
    // Two- to four-byte UTF-8, a joined emoji, right to left, a combining mark, the
    // last code point, JSON's escapes, and runs of 1 to 12 of several widths. (The
    // exact fill of a load's array is checked in the browser suites.)
    const texts = ["plain", "é", "éé", "中", "中文笔记", "😀", "👩‍👩‍👧", "مرحبا", "e\u0301", "\u{10FFFF}", "tab\tquote\"back\\"];
    for (let n = 1; n <= 12; n++) texts.push("中".repeat(n), "é".repeat(n), "😀".repeat(n));
    const expected = texts.map((text, i) => ({ id: `n${i}`, data: { title: text, list: [text, { [text]: i }] } }));
    const writer = await openDevice(browser, server);
    await openNamedDb(writer, `scripts-a-${crypto.randomUUID()}`, "scripts", { auto: false });
    await writer.page.evaluate(async (expected) => {
      await Promise.all(expected.map(({ id, data }) => notes.put(data, { id })));
      await db.sync();
    }, expected);

    const reader = await openDevice(browser, server);
    const name = `scripts-b-${crypto.randomUUID()}`;
    const read = () => reader.page.evaluate((ids) => ids.map((id) => ({ id, data: notes.get(id)?.data })), expected.map((e) => e.id));
    await openNamedDb(reader, name, "scripts", { auto: false });
    await sync(reader);
    assert.deepEqual(await read(), expected, "as pulled");
    await reader.page.evaluate(() => db.close());
    await openNamedDb(reader, name, "scripts", { auto: false });
    assert.deepEqual(await read(), expected, "as opened again");
    const held = byId(await server.pullAll("scripts"));
    for (const { id, data } of expected) assert.deepEqual(held[`notes/${id}`].data, data, id);
    assert.deepEqual([...writer.errors, ...reader.errors], []);
    await writer.context.close();
    await reader.context.close();
  });

  test("a sync that pushes takes one round trip: the push that empties the outbox carries the pull", async () => {
    const proxy = await startCountingProxy(server.url);
    const [a, b] = [await openDevice(browser, proxy), await openDevice(browser, server)];
    try {
      await openDb(a, { user: "onetrip" });
      await openDb(b, { user: "onetrip" });
      await b.page.evaluate(() => notes.put({ title: "from b" }, { id: "b1" }));
      await sync(b);

      await a.page.evaluate(() => notes.put({ title: "from a" }, { id: "a1" }));
      let from = proxy.requests.length;
      const report = await sync(a);
      assert.deepEqual(requestsFrom(proxy, from), ["POST /v1/push"]);
      assert.deepEqual([report.pushed, report.pulled], [1, 1]);
      assert.deepEqual(await data(a, "b1"), { title: "from b" });
      assert.equal((await meta(a, "a1")).syncStatus, "synced");

      // From the cursor that page brought: only what changed since.
      await b.page.evaluate(() => notes.patch("b1", { done: true }));
      await sync(b);
      from = proxy.requests.length;
      assert.deepEqual([(await sync(a)).pulled, requestsFrom(proxy, from)], [1, ["GET /v1/pull"]], "nothing to push: a pull alone");
      assert.deepEqual(await data(a, "b1"), { title: "from b", done: true });
      await sync(b);
      assert.deepEqual(await data(b, "a1"), { title: "from a" });
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await a.context.close();
      await b.context.close();
      await proxy.close();
    }
  });

  test("edits of one note made offline go in one push once the server has said it chains them", async () => {
    const proxy = await startCountingProxy(server.url);
    const device = await openDevice(browser, proxy);
    try {
      await openDb(device, { user: "chained" });
      await device.page.evaluate(() => notes.put({ title: "draft 0" }, { id: "n1" }));
      await sync(device);
      await device.page.evaluate(async () => {
        for (let i = 1; i <= 50; i++) await notes.put({ title: `draft ${i}` }, { id: "n1" });
        await notes.patch("n1", { done: true });
        await notes.put({ title: "another" }, { id: "n2" });
        await notes.delete("n2");
      });
      const from = proxy.requests.length;
      const report = await sync(device);
      assert.deepEqual(requestsFrom(proxy, from), ["POST /v1/push"]);
      assert.equal(report.pushed, 53);
      const n1 = await meta(device, "n1");
      assert.deepEqual([n1.syncStatus, n1.version], ["synced", 52]);
      const onServer = byId(await server.pullAll("chained"));
      assert.deepEqual([onServer["notes/n1"].data, onServer["notes/n1"].version], [{ title: "draft 50", done: true }, 52]);
      assert.equal(onServer["notes/n2"].deleted, true);
      assert.deepEqual(device.errors, []);
    } finally {
      await device.context.close();
      await proxy.close();
    }
  });

  test("a server that refuses the pull a push carries gets the push again without it, and no pull with later pushes", async () => {
    const proxy = await startCountingProxy(server.url);
    // A server that refuses the fields it does not know.
    const refusal = { error: { code: "invalid_request", message: "unknown field `pull`" } };
    proxy.fault = ({ path, body }) =>
      path === "/v1/push" && JSON.parse(body).pull !== undefined ? { kind: "answer", status: 400, body: JSON.stringify(refusal) } : null;
    const device = await openDevice(browser, proxy);
    try {
      await openDb(device, { user: "strict" });
      await device.page.evaluate(() => notes.put({ title: "one" }, { id: "s1" }));
      let from = proxy.requests.length;
      assert.equal((await sync(device)).pushed, 1);
      assert.deepEqual(requestsFrom(proxy, from), ["POST /v1/push", "POST /v1/push", "GET /v1/pull"]);
      assert.equal((await meta(device, "s1")).syncStatus, "synced");

      await device.page.evaluate(() => notes.put({ title: "two" }, { id: "s2" }));
      from = proxy.requests.length;
      assert.equal((await sync(device)).pushed, 1);
      assert.deepEqual(requestsFrom(proxy, from), ["POST /v1/push", "GET /v1/pull"]);
      const held = byId(await server.pullAll("strict"));
      assert.deepEqual([held["notes/s1"]?.version, held["notes/s2"]?.version], [1, 1]);
      assert.deepEqual(await device.page.evaluate(() => events.error), []);
      assert.deepEqual(device.errors, []);
    } finally {
      await device.context.close();
      await proxy.close();
    }
  });

  test("a push that carried its pull and timed out goes alone from then on, the pull on its own", async () => {
    const proxy = await startCountingProxy(server.url);
    // A push and its page together slower than the timeout, though each alone is quick.
    proxy.fault = ({ path, body }) => (path === "/v1/push" && JSON.parse(body).pull !== undefined ? { kind: "delay", ms: 1500 } : null);
    const device = await openDevice(browser, proxy);
    try {
      await openDb(device, { user: "slowpage", timeout: 1000 });
      await device.page.evaluate(() => notes.put({ title: "one" }, { id: "t1" }));
      const failure = await device.page.evaluate(() => db.sync().then(() => null, (e) => ({ code: e.code, kind: e.kind, message: e.message })));
      assert.deepEqual([failure?.code, failure?.kind], ["SYNC_FAILED", "transient"], JSON.stringify(failure));
      assert.match(failure.message, /timed out/);

      const from = proxy.requests.length;
      await sync(device);
      assert.deepEqual(requestsFrom(proxy, from), ["POST /v1/push", "GET /v1/pull"]);
      assert.equal((await meta(device, "t1")).syncStatus, "synced");
      assert.equal(await device.page.evaluate(() => db.pendingCount()), 0);
      // The push the proxy passed on late was answered from the server's record: applied once.
      assert.equal(byId(await server.pullAll("slowpage"))["notes/t1"].version, 1);
      assert.deepEqual(device.errors, []);
    } finally {
      await device.context.close();
      await proxy.close();
    }
  });

  // Two devices edit the same note: different fields, then the same field.
  const policies = {
    merge: { different: { title: "A", body: "B" }, same: "A2" },
    serverWins: { different: { title: "A", body: "b" }, same: "A2" },
    clientWins: { different: { title: "t", body: "B" }, same: "B2" },
    concat: { different: { title: "A+t" , body: "b" }, same: "A2+B2" },
  };
  for (const [policy, expected] of Object.entries(policies)) {
    test(`two devices converge under ${policy}`, async () => {
      const collection = `notes_${policy}`;
      const a = await openDevice(browser, server);
      const b = await openDevice(browser, server);
      await openDb(a, { user: "converge", collection, policy });
      await openDb(b, { user: "converge", collection, policy });
      await a.page.evaluate(() => notes.put({ title: "t", body: "b" }, { id: "n1" }));
      await sync(a);
      await sync(b);
      assert.deepEqual(await data(b, "n1"), { title: "t", body: "b" });

      // Both devices patch the note offline from each other, then sync A, B, A;
      // resolves with the note as the server then holds it.
      const editBoth = async (patchA, patchB) => {
        await a.page.evaluate((patch) => notes.patch("n1", patch), patchA);
        await b.page.evaluate((patch) => notes.patch("n1", patch), patchB);
        await sync(a);
        await sync(b);
        await sync(a);
        return byId(await server.pullAll("converge"))[`${collection}/n1`];
      };

      const server1 = await editBoth({ title: "A" }, { body: "B" });
      assert.deepEqual(server1.data, expected.different, "the server");
      assert.deepEqual(await data(a, "n1"), server1.data, "device A");
      assert.deepEqual(await data(b, "n1"), server1.data, "device B");

      const server2 = await editBoth({ title: "A2" }, { title: "B2" });
      assert.equal(server2.data.title, expected.same);
      assert.deepEqual(await data(a, "n1"), server2.data);
      assert.deepEqual(await data(b, "n1"), server2.data);
      for (const device of [a, b]) {
        assert.equal((await meta(device, "n1")).syncStatus, "synced");
        assert.equal(await device.page.evaluate(() => db.pendingCount()), 0);
        assert.deepEqual(device.errors, []);
        await device.context.close();
      }
    });
  }

  test("a resolver that answers no data leaves the conflict to the app, saying why", async () => {
    const a = await openDevice(browser, server);
    const b = await openDevice(browser, server);
    await openDb(a, { user: "notdata", policy: "notData" });
    await openDb(b, { user: "notdata", policy: "notData" });
    await a.page.evaluate(() => notes.put({ title: "t" }, { id: "n1" }));
    await sync(a);
    await sync(b);
    await a.page.evaluate(() => notes.patch("n1", { title: "A" }));
    await b.page.evaluate(() => notes.patch("n1", { title: "B" }));
    await sync(a);
    assert.equal((await sync(b)).conflicted, 1);
    const { syncStatus, lastError } = await meta(b, "n1");
    assert.equal(syncStatus, "conflict");
    assert.equal(lastError, "the conflict resolver's answer must be a plain object, got a number");
    assert.deepEqual(await data(b, "n1"), { title: "B" });
    assert.deepEqual(byId(await server.pullAll("notdata"))["notes/n1"].data, { title: "A" });
    for (const device of [a, b]) await device.context.close();
  });

  test("a manual conflict waits for the app, then its resolution syncs", async () => {
    const a = await openDevice(browser, server);
    const b = await openDevice(browser, server);
    await openDb(a, { user: "manual", policy: "manual" });
    await openDb(b, { user: "manual", policy: "manual" });
    await a.page.evaluate(() => notes.put({ title: "t", body: "b" }, { id: "n1" }));
    await sync(a);
    await sync(b);
    await a.page.evaluate(() => notes.patch("n1", { title: "A" }));
    await b.page.evaluate(() => notes.patch("n1", { title: "B" }));
    await sync(a);
    const report = await sync(b);
    assert.equal(report.conflicted, 1);

    const conflicts = await b.page.evaluate(() => notes.conflicts());
    assert.deepEqual(conflicts, [
      { id: "n1", local: { title: "B", body: "b" }, server: { title: "A", body: "b" }, base: { title: "t", body: "b" }, serverVersion: 2 },
    ]);
    assert.equal((await meta(b, "n1")).syncStatus, "conflict");
    assert.deepEqual(await b.page.evaluate(() => events.conflict), [{ collection: "notes", id: "n1" }]);
    assert.equal(await b.page.evaluate(() => db.status().conflicts), 1);
    // Syncing again changes nothing while the app has not decided.
    await sync(b);
    assert.equal((await meta(b, "n1")).syncStatus, "conflict");

    await b.page.evaluate(() => notes.resolve("n1", { title: "A and B", body: "b" }));
    assert.deepEqual(await b.page.evaluate(() => notes.conflicts()), []);
    await sync(b);
    await sync(a);
    const held = byId(await server.pullAll("manual"))["notes/n1"];
    assert.deepEqual(held.data, { title: "A and B", body: "b" });
    assert.equal(held.version, 3);
    assert.deepEqual(await data(a, "n1"), held.data);
    assert.equal((await meta(b, "n1")).syncStatus, "synced");
    const notInConflict = await b.page.evaluate(() => notes.resolve("n1", {}).then(() => null, (e) => e.code));
    assert.equal(notInConflict, "NOT_FOUND");
    await a.context.close();
    await b.context.close();
  });

  test("a permanent rejection is surfaced and does not block later mutations", async () => {
    const device = await openDevice(browser, server);
    await openDb(device, { user: "rejected" });
    await device.page.evaluate(() => notes.put({ blob: "x".repeat(600_000) }, { id: "big" }));
    await sync(device);
    // Each patch is within the limits, but the patched entity would exceed 1 MiB on the server.
    const report = await device.page.evaluate(async () => {
      await notes.patch("big", { more: "y".repeat(600_000) });
      await notes.put({ title: "after" }, { id: "later" });
      return db.sync();
    });
    assert.equal(report.failed, 1);
    assert.equal(report.pushed, 1);
    const big = await meta(device, "big");
    assert.equal(big.syncStatus, "failed");
    assert.match(big.lastError, /data_too_large/);
    assert.equal((await meta(device, "later")).syncStatus, "synced");
    const errors = await device.page.evaluate(() => events.error);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].id, "big");
    assert.equal(await device.page.evaluate(() => db.status().failed), 1);
    assert.equal(await device.page.evaluate(() => db.pendingCount()), 0);
    const held = byId(await server.pullAll("rejected"));
    assert.equal(held["notes/later"].data.title, "after");
    assert.equal(held["notes/big"].data.more, undefined);
    await device.context.close();
  });

  test("a 401 refreshes the token once, then the sync goes on", async () => {
    const device = await openDevice(browser, server);
    const calls = await device.page.evaluate(async () => {
      const calls = [];
      window.db = await window.Tideway.open({
        name: `auth-${crypto.randomUUID()}`,
        collections: { notes: {} },
        sync: {
          url: location.origin,
          auto: false,
          getToken: async ({ refresh }) => {
            calls.push(refresh);
            return refresh ? "auth-token" : "expired-token";
          },
        },
      });
      await db.collection("notes").put({ title: "one" }, { id: "n1" });
      await db.sync();
      await db.collection("notes").put({ title: "two" }, { id: "n2" });
      await db.sync();
      return calls;
    });
    assert.deepEqual(calls, [false, true], "one refresh, and the fresh token is kept");
    assert.equal(Object.keys(byId(await server.pullAll("auth"))).length, 2);
    await device.context.close();
  });

  test("the server dying mid-sync loses and duplicates nothing", async () => {
    const device = await openDevice(browser, server);
    await openDb(device, { user: "restart", batchSize: 5 });
    await device.page.evaluate(async () => {
      for (let i = 0; i < 60; i++) await notes.put({ title: `note ${i}`, n: i }, { id: `n${i}` });
      for (let i = 0; i < 60; i++) await notes.patch(`n${i}`, { edited: true });
      window.pushedBatches = 0;
      db.on("log", (entry) => entry.step === "pushed" && window.pushedBatches++);
      window.firstSync = db.sync().then(() => "completed", (e) => e.kind);
    });
    await waitInPage(device.page, "three batches to be pushed", () => window.pushedBatches >= 3);
    await server.stop();
    const outcome = await device.page.evaluate(() => window.firstSync);
    assert.equal(outcome, "transient", "the sync in flight fails as a transient error");
    await server.restart();
    // Back up, the outbox drains within a few syncs (a sync right after the restart may
    // still meet a refused connection).
    const left = await device.page.evaluate(async () => {
      for (let attempt = 0; attempt < 20 && (await db.pendingCount()) > 0; attempt++) {
        await db.sync().catch(() => new Promise((r) => setTimeout(r, 200)));
      }
      return db.pendingCount();
    });
    assert.equal(left, 0, "the outbox was still not empty after 20 syncs against the restarted server");

    const held = Object.values(byId(await server.pullAll("restart")));
    assert.equal(held.length, 60);
    for (const entity of held) {
      assert.equal(entity.version, 2, `${entity.id}: one put and one patch, each applied once`);
      assert.deepEqual(entity.data, { title: `note ${entity.data.n}`, n: entity.data.n, edited: true });
    }
    const statuses = await device.page.evaluate(() => notes.all().map((r) => r.meta.syncStatus));
    assert.deepEqual([...new Set(statuses)], ["synced"]);
    await device.context.close();
  });

  test("a backend of the app's own, with server-assigned ids", async () => {
    const device = await openDevice(browser, server);
    const result = await device.page.evaluate(async () => {
      // A REST-like backend in the page: it names entities itself and answers 409 on stale writes.
      const backend = { rows: new Map(), seq: 0, nextId: 0, failNext: null, pullClients: [] };
      const write = (collection, id, data, deleted) => {
        const row = backend.rows.get(id);
        const next = { collection, id, data: deleted ? {} : data, version: (row?.version ?? 0) + 1, serverUpdatedAt: Date.now(), deleted, seq: ++backend.seq };
        backend.rows.set(id, next);
        return next;
      };
      window.backend = backend;
      window.db = await window.Tideway.open({
        name: `custom-${crypto.randomUUID()}`,
        collections: { notes: {} },
        sync: {
          auto: false,
          push: async ({ mutations }) => {
            backend.statusDuringPush ??= db.collection("notes").get("local-1").meta.syncStatus;
            if (backend.failNext) {
              const error = backend.failNext;
              backend.failNext = null;
              throw error;
            }
            return {
              results: mutations.map((m) => {
                let id = m.id;
                if (m.op === "put" && !backend.rows.has(id)) id = `srv-${++backend.nextId}`;
                const row = backend.rows.get(id);
                if ((row?.version ?? 0) !== m.baseVersion) {
                  return { mutationId: m.mutationId, status: "conflict", version: row?.version ?? 0, current: row };
                }
                const data = m.op === "patch" ? { ...row.data, ...m.data } : m.data ?? {};
                const stored = write(m.collection, id, data, m.op === "delete");
                return { mutationId: m.mutationId, status: "applied", version: stored.version, serverUpdatedAt: stored.serverUpdatedAt, remoteId: id };
              }),
            };
          },
          pull: async ({ cursor, limit, clientId }) => {
            backend.pullClients.push(clientId ?? null);
            const after = Number(cursor ?? 0);
            const newer = [...backend.rows.values()].filter((r) => r.seq > after).sort((x, y) => x.seq - y.seq);
            const page = newer.slice(0, limit);
            return { changes: page, cursor: String(page.at(-1)?.seq ?? after), hasMore: newer.length > limit };
          },
        },
      });
      const notes = db.collection("notes");
      await notes.put({ title: "one" }, { id: "local-1" });
      await db.sync();
      const remoteId = notes.get("local-1").meta.remoteId;
      await notes.patch("local-1", { title: "edited" });
      await db.sync();
      const afterPatch = structuredClone(backend.rows.get("srv-1").data);
      write("notes", "srv-1", { title: "from the backend" }, false);
      await db.sync();

      backend.failNext = { status: 503, message: "maintenance", retryAfter: 5000 };
      await notes.put({ title: "two" }, { id: "local-2" });
      const transient = await db.sync().then(() => null, (e) => ({ code: e.code, kind: e.kind, retryIn: e.retryAt - Date.now() }));
      // Refused for good without naming a mutation: alone in its batch, local-2 is the one that fails.
      backend.failNext = { status: 422, code: "invalid", message: "refused" };
      const permanent = await db.sync();
      return {
        remoteId,
        afterPatch,
        local: notes.get("local-1").data,
        ids: notes.all().map((r) => r.id),
        localIdOnBackend: backend.rows.has("local-1"),
        transient,
        permanent,
        failedStatus: notes.get("local-2").meta.syncStatus,
        statusDuringPush: backend.statusDuringPush,
        pullClients: backend.pullClients.map((id) => id === db.clientId),
      };
    });
    // Each pull named the client, so that a backend may leave out what it pushed
    // (a new database's pull from the start included: it has nothing to find deleted).
    assert.ok(result.pullClients.length >= 4 && result.pullClients.every(Boolean), JSON.stringify(result.pullClients));
    assert.equal(result.statusDuringPush, "syncing", "an entity shows syncing while its push is in flight");
    assert.equal(result.remoteId, "srv-1");
    assert.deepEqual(result.afterPatch, { title: "edited" });
    assert.deepEqual(result.local, { title: "from the backend" });
    assert.deepEqual(result.ids, ["local-1", "local-2"]);
    assert.equal(result.localIdOnBackend, false);
    assert.equal(result.transient.code, "SYNC_FAILED");
    assert.equal(result.transient.kind, "transient");
    assert.ok(result.transient.retryIn > 4000, `Retry-After is honoured: ${result.transient.retryIn}`);
    assert.equal(result.permanent.failed, 1);
    assert.equal(result.failedStatus, "failed");
    await device.context.close();
  });
});
