// The browser client against the real reference server when the server can no
// longer serve its cursor: after an operator rotates the database's epoch (as
// after restoring a backup) and after a purge removed tombstones the client had
// not pulled yet. The server answers 410; the client must pull from the start,
// keep its queued writes, and end up holding exactly what the server holds.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { REPO_ROOT, openDevice, serverAndBrowser } from "./helpers.mjs";

const SERVER_BIN =
  process.env.TIDEWAY_SERVER_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, "target"), "debug/tideway-server");

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started));

/** Runs a maintenance command of tideway-server on the test server's database (the server keeps running). */
function maintain(...args) {
  const db = `sqlite://${join(server.dir, "server.db")}`;
  return new Promise((resolve, reject) => {
    execFile(SERVER_BIN, [...args, "--db", db], (error, stdout, stderr) =>
      error ? reject(new Error(`${args[0]} failed: ${stderr}`)) : resolve(stdout),
    );
  });
}

/** A write by another client of `user` through the REST API: PUT creates, DELETE deletes. */
async function restWrite(user, method, id, data) {
  const response = await fetch(`${server.url}/v1/collections/notes/${id}`, {
    method,
    headers: { authorization: `Bearer ${user}-token`, "content-type": "application/json" },
    body: data === undefined ? undefined : JSON.stringify(data),
  });
  assert.ok(response.ok, `${method} ${id}: ${response.status} ${await response.text()}`);
}

async function openDb(device, user) {
  await device.page.evaluate(async (user) => {
    window.events = { log: [] };
    window.db = await window.Tideway.open({
      name: `${user}-${crypto.randomUUID()}`,
      collections: { notes: {} },
      sync: { url: location.origin, getToken: () => `${user}-token`, auto: false, interval: 0 },
    });
    db.on("log", (entry) => window.events.log.push(entry));
    window.notes = db.collection("notes");
  }, user);
}

/** The live entities a device holds, as `{ id: data }`. */
const held = (device) =>
  device.page.evaluate(() => Object.fromEntries(notes.all().map((record) => [record.id, record.data])));
/** The live entities the server holds for `user`, as `{ id: data }`. */
const onServer = async (user) =>
  Object.fromEntries((await server.pullAll(user)).filter((e) => !e.deleted).map((e) => [e.id, e.data]));
const steps = (device) => device.page.evaluate(() => events.log.map((entry) => entry.step));

describe("recovery when the server cannot serve the client's cursor", () => {
  test("after the epoch is rotated (a restored backup), the client pulls from the start and pushes its queue", async () => {
    const user = "converge";
    const device = await openDevice(browser, server);
    await openDb(device, user);
    await device.page.evaluate(async () => {
      await notes.put({ title: "mine" }, { id: "n1" });
      await db.sync();
    });
    await restWrite(user, "PUT", "n2", { title: "another device's" });
    await device.page.evaluate(() => db.sync());
    assert.deepEqual(await held(device), { n1: { title: "mine" }, n2: { title: "another device's" } });

    await maintain("rotate-epoch");
    await restWrite(user, "PUT", "n3", { title: "written after the restore" });
    await device.page.evaluate(() => notes.put({ title: "queued" }, { id: "n4" }));
    await device.page.evaluate(() => (events.log.length = 0));
    const report = await device.page.evaluate(() => db.sync());
    assert.equal(report.pushed, 1);
    assert.ok((await steps(device)).includes("cursorReset"), `${await steps(device)}`);
    assert.deepEqual(await held(device), await onServer(user));
    assert.deepEqual(Object.keys(await held(device)).sort(), ["n1", "n2", "n3", "n4"]);
    assert.equal(await device.page.evaluate(() => db.pendingCount()), 0);
    // The new cursor is served: the next sync pulls without starting over.
    await device.page.evaluate(() => (events.log.length = 0));
    await device.page.evaluate(() => db.sync());
    assert.ok(!(await steps(device)).includes("cursorReset"));
    assert.deepEqual(device.errors, []);
    await device.context.close();
  });

  test(
    "after a purge of tombstones it had not pulled, the client pulls from the start and drops what was deleted",
    async () => {
      const user = "policy";
      const device = await openDevice(browser, server);
      await openDb(device, user);
      await device.page.evaluate(async () => {
        await notes.put({ title: "kept" }, { id: "keep" });
        await notes.put({ title: "deleted elsewhere" }, { id: "gone" });
        await db.sync();
      });
      // Another device deletes one; the purge removes its tombstone before this client pulls it.
      await restWrite(user, "DELETE", "gone");
      await maintain("purge", "--retention", "0s");
      await restWrite(user, "PUT", "new", { title: "written after the purge" });
      await device.page.evaluate(() => (events.log.length = 0));
      await device.page.evaluate(() => db.sync());
      assert.ok((await steps(device)).includes("cursorReset"), `${await steps(device)}`);
      assert.equal((await held(device)).new?.title, "written after the purge", "the pull from the start arrived");
      // The server no longer lists the deletion, so only a client that reconciles a
      // pull from the start with what it holds as synced can drop the entity.
      assert.deepEqual(await held(device), await onServer(user));
      assert.deepEqual(device.errors, []);
      await device.context.close();
    },
  );
});
