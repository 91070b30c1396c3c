// Bad arguments from JavaScript: each must come back as a TidewayError with a stable code,
// never a panic, a plain string or a hung promise.

import { test } from "node:test";
import assert from "node:assert/strict";
import { openApp, watchPage, withAppInBrowser } from "./helpers.mjs";

let page;
let errors;

withAppInBrowser({
  setUp: async ({ browser, server }) => {
    page = await browser.newPage();
    errors = watchPage(page);
    await openApp(page, server.url);
  },
});

/**
 * Runs each named call against a database of its own in the page and reports how it failed.
 * A call may throw or return a rejected promise; both count.
 */
async function outcomes(calls) {
  return page.evaluate(async (calls) => {
    const { Tideway } = await import(new URL("pkg/index.js", location.href).href);
    const name = `e2e-errors-${crypto.randomUUID()}`;
    const db = await Tideway.open({ name, collections: { notes: { indexes: ["updatedAt", "title"] } } });
    const notes = db.collection("notes");
    await notes.put({ title: "exists" }, { id: "known" });
    const results = {};
    for (const [label, source] of Object.entries(calls)) {
      try {
        const value = await new Function("db", "notes", "Tideway", `return (${source});`)(db, notes, Tideway);
        results[label] = { ok: true, value: value === undefined ? "undefined" : JSON.stringify(value) };
      } catch (error) {
        results[label] = {
          isError: error instanceof Error,
          name: error?.name,
          code: error?.code,
          message: error?.message,
        };
      }
    }
    await db.close().catch(() => {});
    await Tideway.deleteDatabase(name);
    return results;
  }, calls);
}

function assertTidewayError(outcome, code, label) {
  assert.ok(!outcome.ok, `${label}: expected a ${code} error, got ${JSON.stringify(outcome)}`);
  assert.equal(outcome.isError, true, `${label}: not an Error instance: ${JSON.stringify(outcome)}`);
  assert.equal(outcome.name, "TidewayError", `${label}: ${JSON.stringify(outcome)}`);
  assert.equal(outcome.code, code, `${label}: ${JSON.stringify(outcome)}`);
  assert.ok(outcome.message && outcome.message.length > 0, `${label}: empty message`);
}

test("invalid arguments are INVALID_ARGUMENT", async () => {
  const results = await outcomes({
    "put(string)": `notes.put("not an object")`,
    "put(array)": `notes.put([1, 2, 3])`,
    "put(null)": `notes.put(null)`,
    "put(data, {id: 5})": `notes.put({ title: "x" }, { id: 5 })`,
    "get(42)": `notes.get(42)`,
    "bulkPut(not an array)": `notes.bulkPut("nope")`,
    "bulkPut([string])": `notes.bulkPut([{ data: "nope" }])`,
    "patch(known, string)": `notes.patch("known", "nope")`,
  });
  for (const [label, outcome] of Object.entries(results)) assertTidewayError(outcome, "INVALID_ARGUMENT", label);
});

test("unknown names are NOT_FOUND", async () => {
  const results = await outcomes({
    'collection("nope")': `db.collection("nope")`,
    "patch(missing)": `notes.patch("missing", { title: "x" })`,
  });
  for (const [label, outcome] of Object.entries(results)) assertTidewayError(outcome, "NOT_FOUND", label);
});

test("a closed database is DATABASE_CLOSED", async () => {
  const results = await outcomes({
    "put after close": `db.close().then(() => notes.put({ title: "late" }))`,
    // Read once before: a record read is cached, and a closed database must not answer from it.
    "get after close": `(notes.get("known"), db.close().then(() => notes.get("known")))`,
  });
  assertTidewayError(results["put after close"], "DATABASE_CLOSED", "put after close");
  assertTidewayError(results["get after close"], "DATABASE_CLOSED", "get after close");
});

test("good calls next to the bad ones still work", async () => {
  const results = await outcomes({
    "get(known)": `notes.get("known").data`,
    "get(missing)": `notes.get("missing")`,
    "patch(known)": `notes.patch("known", { title: "renamed" }).then((r) => r.data.title)`,
    // Each read after a write shows it, the record read before the write notwithstanding.
    "get after patch": `notes.get("known").data.title`,
    "get after delete": `(notes.get("known"), notes.delete("known").then(() => notes.get("known")))`,
    "get of a tombstone": `notes.get("known", { includeDeleted: true }).meta.deleted`,
  });
  assert.deepEqual(results["get(known)"], { ok: true, value: JSON.stringify({ title: "exists" }) });
  assert.deepEqual(results["get(missing)"], { ok: true, value: "undefined" });
  assert.deepEqual(results["patch(known)"], { ok: true, value: JSON.stringify("renamed") });
  assert.deepEqual(results["get after patch"], { ok: true, value: JSON.stringify("renamed") });
  assert.deepEqual(results["get after delete"], { ok: true, value: "undefined" });
  assert.deepEqual(results["get of a tombstone"], { ok: true, value: "true" });
  assert.deepEqual(errors, []);
});

test("hostile data is INVALID_ARGUMENT, stores nothing, and the database goes on", async () => {
  const outcome = await page.evaluate(async () => {
    const { Tideway } = await import(new URL("pkg/tideway.js", location.href).href);
    const name = `e2e-hostile-${crypto.randomUUID()}`;
    const db = await Tideway.open({ name, collections: { notes: {} } });
    const notes = db.collection("notes");
    await notes.put({ title: "exists" }, { id: "known" });
    const cyclic = { title: "loop" };
    cyclic.self = cyclic;
    let deep = {};
    const deepRoot = deep;
    for (let i = 0; i < 10_000; i++) deep = deep.next = {};
    const calls = {
      cyclic: () => notes.put(cyclic, { id: "h1" }),
      deep: () => notes.put(deepRoot, { id: "h2" }),
      function: () => notes.put({ f() {} }, { id: "h3" }),
      Date: () => notes.put({ at: new Date() }, { id: "h4" }),
      BigInt: () => notes.put({ n: 10n }, { id: "h5" }),
      NaN: () => notes.put({ n: NaN }, { id: "h6" }),
      Infinity: () => notes.put({ n: -Infinity }, { id: "h7" }),
      symbol: () => notes.put({ s: Symbol("s") }, { id: "h8" }),
      Map: () => notes.put({ m: new Map() }, { id: "h9" }),
      "huge string": () => notes.put({ text: "x".repeat(3 << 20) }, { id: "h10" }),
      "huge id": () => notes.put({ title: "x" }, { id: "i".repeat(1 << 20) }),
      "id of the wrong type": () => notes.put({ title: "x" }, { id: { toString: () => "h11" } }),
      "patch with a function": () => notes.patch("known", { title: () => "x" }),
      "bulkPut with one bad entry": () => notes.bulkPut([{ id: "h12", data: { ok: true } }, { id: "h13", data: cyclic }]),
    };
    const results = {};
    for (const [label, call] of Object.entries(calls)) {
      try {
        await call();
        results[label] = { ok: true };
      } catch (error) {
        results[label] = { isError: error instanceof Error, name: error?.name, code: error?.code, message: error?.message };
      }
    }
    // A __proto__ key is data like any other: stored and read back as an own field,
    // never as the record's prototype.
    await notes.put(JSON.parse('{"__proto__": {"polluted": true}, "title": "proto"}'), { id: "proto" });
    const proto = notes.get("proto").data;
    const after = {
      ids: notes.all().map((r) => r.id),
      known: notes.get("known").data,
      pending: await db.pendingCount(),
      protoKeys: Object.keys(proto),
      protoIsPlain: Object.getPrototypeOf(proto) === Object.prototype && proto.polluted === undefined && ({}).polluted === undefined,
      longestMessage: Math.max(...Object.values(results).map((r) => r.message?.length ?? 0)),
    };
    await db.close();
    await Tideway.deleteDatabase(name);
    return { results, after };
  });
  for (const [label, result] of Object.entries(outcome.results)) assertTidewayError(result, "INVALID_ARGUMENT", label);
  assert.match(outcome.results.Infinity.message, /-Infinity/);
  assert.match(outcome.results.cyclic.message, /cycle/);
  assert.ok(outcome.after.longestMessage < 600, `messages stay short: ${outcome.after.longestMessage} characters`);
  assert.deepEqual(outcome.after.ids, ["known", "proto"], "nothing of a refused call was stored, not even half of a bulkPut");
  assert.deepEqual(outcome.after.known, { title: "exists" });
  assert.equal(outcome.after.pending, 2);
  assert.deepEqual(outcome.after.protoKeys, ["__proto__", "title"]);
  assert.equal(outcome.after.protoIsPlain, true);
  assert.deepEqual(errors, []);
});
