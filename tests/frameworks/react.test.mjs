// The React hooks of `tideway/react` with the real React from npm (its development
// build, under StrictMode), in Chromium: they render from the mirror, render again
// only when what they return changed, leave one watch per hook through StrictMode's
// double effects, never tear under concurrent rendering, and let a component unmount
// while its write is pending.

import assert from "node:assert/strict";
import { test } from "node:test";
import { appPage, closeApp, servedApp, WAIT_LIMIT_MS, withBrowser } from "./helpers.mjs";

const running = withBrowser();
const served = servedApp("react-app.js");

let databases = 0;
/** A page with the app loaded and a database of its own open. */
async function openApp() {
  const page = await appPage(running.browser, served);
  const name = `react-${process.pid}-${++databases}`;
  await page.evaluate((name) => window.app.open(name), name);
  return { page, name };
}

const renders = (page) => page.evaluate(() => ({ ...window.app.renders }));

test("useQuery, useRecord and useSyncStatus render from the mirror, and again only when what they return changes", async () => {
  const opened = await openApp();
  const { page } = opened;
  await page.evaluate(async () => {
    await window.app.notes.bulkPut([{ id: "n1", data: { title: "banana" } }, { id: "n2", data: { title: "apple" } }]);
    window.app.mount("lists");
  });
  assert.deepEqual(await page.evaluate(() => window.app.items("list")), ["apple", "banana"], "rendered on the first render, no async gap");
  assert.equal(await page.evaluate(() => window.app.text("title")), "banana");
  assert.equal(await page.evaluate(() => window.app.text("pending")), "2");
  const mounted = await renders(page);

  // Another collection's write, and a write useRecord does not show: nothing that reads them renders.
  await page.evaluate(() => window.app.tags.put({ label: "x" }));
  await page.evaluate(() => window.app.notes.put({ title: "cherry" }, { id: "n3" }));
  await page.waitForFunction(() => window.app.items("list").length === 3, null, { timeout: WAIT_LIMIT_MS });
  assert.deepEqual(await page.evaluate(() => window.app.items("list")), ["apple", "banana", "cherry"]);
  let now = await renders(page);
  assert.equal(now.title, mounted.title, "useRecord(n1) did not render for n3");
  assert.ok(now.list > mounted.list, "useQuery rendered for n3");

  await page.evaluate(() => window.app.notes.patch("n1", { title: "blueberry" }));
  await page.waitForFunction(() => window.app.text("title") === "blueberry", null, { timeout: WAIT_LIMIT_MS });
  await page.waitForFunction(() => window.app.text("pending") === "5", null, { timeout: WAIT_LIMIT_MS });
  assert.deepEqual(await page.evaluate(() => window.app.items("list")), ["apple", "blueberry", "cherry"]);

  const before = await renders(page);
  await page.evaluate(() => window.app.notes.delete("n1"));
  await page.waitForFunction(() => window.app.text("title") === "(none)", null, { timeout: WAIT_LIMIT_MS });
  assert.deepEqual(await page.evaluate(() => window.app.items("list")), ["apple", "cherry"]);
  now = await renders(page);
  // StrictMode renders each component twice per update: one update each, not more.
  assert.equal(now.list - before.list, 2, "one update of the list for one delete");
  assert.equal(now.title - before.title, 2, "one update of the title for one delete");
  await page.evaluate(() => window.app.unmount());
  await closeApp(opened);
});

test("StrictMode's double effects leave one watch per hook, and unmounting stops them all", async () => {
  const opened = await openApp();
  const { page } = opened;
  await page.evaluate(() => window.app.mount("lists"));
  assert.equal(await page.evaluate(() => window.app.watching.count), 2, "useQuery and useRecord each watch once");
  await page.evaluate(() => window.app.unmount());
  assert.equal(await page.evaluate(() => window.app.watching.count), 0);
  await closeApp(opened);
});

test("a component unmounted while its write is pending: the write lands, nothing is called on the unmounted tree", async () => {
  const opened = await openApp();
  const { page } = opened;
  const outcome = await page.evaluate(async () => {
    window.app.mount("lists");
    const pending = window.app.notes.put({ title: "written while unmounting" }, { id: "n1" });
    window.app.unmount();
    const record = await pending;
    await window.app.notes.patch("n1", { title: "and after" });
    return { title: record.data.title, stored: window.app.notes.get("n1").data.title, watching: window.app.watching.count };
  });
  assert.deepEqual(outcome, { title: "written while unmounting", stored: "and after", watching: 0 });
  await closeApp(opened);
});

test("concurrent rendering: two components reading one query never disagree, whatever lands mid-render", async () => {
  const opened = await openApp();
  const { page } = opened;
  await page.evaluate(async () => {
    const entries = [];
    for (let i = 0; i < 30; i++) entries.push({ id: `a${i}`, data: { title: `a${String(i).padStart(2, "0")}` } });
    for (let i = 0; i < 30; i++) entries.push({ id: `b${i}`, data: { title: `b${String(i).padStart(2, "0")}` } });
    await window.app.notes.bulkPut(entries);
    window.app.mount("concurrent");
  });
  assert.equal((await page.evaluate(() => window.app.items("slow-a"))).length, 30);
  // The transition renders 2 × 30 slow items (about 180 ms), yielding between them;
  // writes to both prefixes land in the middle of it.
  const seen = await page.evaluate(async () => {
    window.app.filterTo("b");
    const writes = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      writes.push(window.app.notes.put({ title: `b-late-${i}` }, { id: `late${i}` }));
      writes.push(window.app.notes.delete(`b${i}`));
    }
    await Promise.all(writes);
    const done = () => window.app.items("slow-a").join() === window.app.notes.query({ index: "title", gte: "b", lt: "b\uffff" }).map((r) => r.data.title).join();
    const until = performance.now() + 5000;
    while (!done() && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    return { commits: window.app.commits, done: done() };
  });
  assert.ok(seen.done, "the lists caught up with the mirror");
  // Every commit, checked before the browser painted it (useLayoutEffect).
  for (const [a, b] of seen.commits) assert.equal(a, b, "both lists show the same result in every commit");
  assert.ok(seen.commits.length >= 2, "the transition committed");
  const last = seen.commits.at(-1)[0].split(",");
  assert.equal(last.length, 30, "25 b-notes left and 5 late ones");
  assert.ok(last.includes("b-late-4") && !last.includes("b00"));
  await page.evaluate(() => window.app.unmount());
  await closeApp(opened);
});

test("the Svelte store of tideway/svelte keeps Svelte's contract: the value at once, then each new result, until unsubscribed", async () => {
  const opened = await openApp();
  const { page } = opened;
  const seen = await page.evaluate(async () => {
    await window.app.notes.put({ title: "one" }, { id: "n1" });
    const store = window.app.svelteContract({ index: "title" });
    const atOnce = store.seen.length;
    await window.app.notes.put({ title: "two" }, { id: "n2" });
    await window.app.tags.put({ label: "not a note" });
    store.stop();
    await window.app.notes.put({ title: "three" }, { id: "n3" });
    return { atOnce, seen: store.seen };
  });
  assert.deepEqual(seen, { atOnce: 1, seen: [["one"], ["one", "two"]] });
  await closeApp(opened);
});
