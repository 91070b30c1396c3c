// A panic is a bug in Tideway; these tests make one on purpose, through the test
// hook of the package built with the fault-injection feature (`bash scripts/build.sh
// faults`), and check what an app sees: a typed INTERNAL_ERROR from the call that
// panicked, from every call still waiting and from every later one; and, after a
// reload, the database with every write committed before, syncing again.

import assert from "node:assert/strict";
import { test } from "node:test";
import { FAULTS_PKG, openDb, openDevice, serverAndBrowser, waitInPage } from "./helpers.mjs";

let server;
let browser;
serverAndBrowser((started) => ({ server, browser } = started), { pkg: FAULTS_PKG });

/** What `call` (run in the page) threw or rejected with: `{ name, code, message }`, or `{ returned }`. */
const failure = (page, call) =>
  page.evaluate(async (call) => {
    try {
      return { returned: await (0, eval)(call) };
    } catch (error) {
      return { name: error.name, code: error.code, message: error.message };
    }
  }, call);

test("a panic in a pending call: it, and every call after it, fail with INTERNAL_ERROR; a reload opens the database with every committed write", async () => {
  const { context, page, errors } = await openDevice(browser, server);
  const name = `panic-${crypto.randomUUID()}`;
  await openDb({ page }, name, "panic");
  await page.evaluate(async () => {
    for (let i = 0; i < 3; i++) await window.notes.put({ title: `synced ${i}` }, { id: `s${i}` });
    await window.db.sync();
  });
  await context.setOffline(true);
  await page.evaluate(async () => {
    for (let i = 0; i < 2; i++) await window.notes.put({ title: `queued ${i}` }, { id: `q${i}` });
  });

  const panicked = await failure(page, 'Tideway.panicForTest("later")');
  assert.equal(panicked.code, "INTERNAL_ERROR", JSON.stringify(panicked));
  assert.equal(panicked.name, "TidewayError");
  assert.match(panicked.message, /reload the page.*a panic on purpose/s);
  for (const call of ['notes.get("s0")', 'notes.put({ title: "after" }, { id: "after" })', "db.status()", "db.sync()", "db.close()"]) {
    assert.equal((await failure(page, call)).code, "INTERNAL_ERROR", call);
  }
  // The write after the panic rejects rather than throws, as a Promise-returning call should.
  assert.equal(await page.evaluate(() => window.notes.put({}).catch((error) => error.code)), "INTERNAL_ERROR");
  assert.ok(errors.some((message) => /unreachable/.test(message)), `the trap reached the page: ${JSON.stringify(errors)}`);

  await context.setOffline(false);
  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await openDb({ page }, name, "panic");
  const kept = await page.evaluate(async () => {
    const ids = window.notes.all().map((record) => record.id).sort();
    await window.db.sync();
    return { ids, pending: await window.db.pendingCount() };
  });
  assert.deepEqual(kept, { ids: ["q0", "q1", "s0", "s1", "s2"], pending: 0 });
  const onServer = (await server.pullAll("panic")).filter((change) => !change.deleted).map((change) => change.id);
  assert.deepEqual(onServer.sort(), ["q0", "q1", "s0", "s1", "s2"]);
  await context.close();
});

test("a trap that is not a panic, in a callback of the module's: the call waiting on it, and every call after it, fail with INTERNAL_ERROR", async () => {
  const { context, page, errors } = await openDevice(browser, server);
  const name = `trap-${crypto.randomUUID()}`;
  await openDb({ page }, name);
  await page.evaluate(() => window.notes.put({ title: "kept" }, { id: "kept" }));

  // A failed allocation traps with no panic hook, in a timer's callback here;
  // a call left waiting for ever would fail this test after 5 s.
  const trapped = await failure(
    page,
    'Promise.race([Tideway.trapForTest("later"), new Promise((_, reject) => setTimeout(() => reject(new Error("still waiting")), 5000))])',
  );
  assert.equal(trapped.code, "INTERNAL_ERROR", JSON.stringify(trapped));
  assert.match(trapped.message, /reload the page.*RuntimeError: unreachable/s);
  for (const call of ['notes.get("kept")', 'notes.put({ title: "after" }, { id: "after" })', "db.status()"]) {
    assert.equal((await failure(page, call)).code, "INTERNAL_ERROR", call);
  }
  assert.ok(errors.some((message) => /unreachable/.test(message)), `the trap reached the page: ${JSON.stringify(errors)}`);

  await page.reload();
  await page.waitForSelector('html[data-ready="true"]');
  await openDb({ page }, name);
  assert.deepEqual(await page.evaluate(() => window.notes.all().map((record) => record.id)), ["kept"]);
  await context.close();
});

test("a panic in a call that returns at once: it throws INTERNAL_ERROR, and opening a database rejects with it", async () => {
  const { context, page } = await openDevice(browser, server);
  await openDb({ page }, `panic-now-${crypto.randomUUID()}`, "panic");
  const thrown = await page.evaluate(() => {
    try {
      window.Tideway.panicForTest("now");
      return null;
    } catch (error) {
      return { name: error.name, code: error.code, isError: error instanceof Error };
    }
  });
  assert.deepEqual(thrown, { name: "TidewayError", code: "INTERNAL_ERROR", isError: true });
  assert.equal((await failure(page, 'Tideway.open({ name: "another", collections: {} })')).code, "INTERNAL_ERROR");
  await context.close();
});

test("a panic in the tab that syncs lets its sync lock go: another tab takes over and pushes", async () => {
  const { context, page: a } = await openDevice(browser, server);
  const b = await context.newPage();
  const bErrors = [];
  b.on("pageerror", (error) => bErrors.push(error.message));
  await b.goto(server.url);
  await b.waitForSelector('html[data-ready="true"]');
  const name = `panic-lock-${crypto.randomUUID()}`;
  await openDb({ page: a }, name, "panicsync");
  await waitInPage(a, "tab A to hold the sync lock", () => window.db.status().syncer?.here === true);
  await openDb({ page: b }, name, "panicsync");
  await waitInPage(b, "tab B to hear that A syncs", () => window.db.status().syncer?.here === false);

  assert.equal((await failure(a, 'Tideway.panicForTest("later")')).code, "INTERNAL_ERROR");
  await waitInPage(b, "tab B to take the lock the stopped tab let go", () => window.db.status().syncer?.here === true, undefined, 5_000);
  // B's automatic sync may push the write before db.sync() runs; either way,
  // once db.sync() resolves the write is on the server.
  const pending = await b.evaluate(async () => {
    await window.notes.put({ title: "after the panic" }, { id: "after" });
    await window.db.sync();
    return window.db.pendingCount();
  });
  assert.equal(pending, 0);
  assert.deepEqual((await server.pullAll("panicsync")).map((change) => change.id), ["after"]);
  assert.deepEqual(bErrors, []);
  await context.close();
});
