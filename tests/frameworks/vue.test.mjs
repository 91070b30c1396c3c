// The Vue composables of `tideway/vue` with the real Vue from npm, in Chromium: they
// hold a value from setup on, follow writes, render again only when what they return
// changed, watch anew when a reactive argument changes, and stop with the component.

import assert from "node:assert/strict";
import { test } from "node:test";
import { appPage, closeApp, servedApp, WAIT_LIMIT_MS, withBrowser } from "./helpers.mjs";

const running = withBrowser();
const served = servedApp("vue-app.js");

test("useQuery, useRecord and useSyncStatus follow writes, render only for a new result, and re-watch on a new query", async () => {
  const page = await appPage(running.browser, served);
  const name = `vue-${process.pid}`;
  await page.evaluate(async (name) => {
    await window.app.open(name);
    await window.app.notes.bulkPut([{ id: "n1", data: { title: "apple" } }, { id: "n2", data: { title: "avocado" } }, { id: "n3", data: { title: "banana" } }]);
    window.app.mount();
  }, name);
  const now = () => page.evaluate(() => ({ list: window.app.items("list"), title: window.app.text("title"), pending: window.app.text("pending"), renders: { ...window.app.renders } }));
  const first = await now();
  assert.deepEqual([first.list, first.title, first.pending], [["apple", "avocado"], "apple", "3"], "values from the first render");
  const watching = () => page.evaluate(() => window.app.watching.count);
  assert.equal(await watching(), 2, "useQuery and useRecord watch once each");

  // A write outside the query and the record: the list and the title do not render.
  await page.evaluate(() => window.app.notes.put({ title: "cherry" }, { id: "n4" }));
  await page.waitForFunction(() => window.app.text("pending") === "4", null, { timeout: WAIT_LIMIT_MS });
  assert.deepEqual((await now()).renders, first.renders, "nothing they show changed");

  await page.evaluate(() => window.app.notes.patch("n1", { title: "apricot" }));
  await page.waitForFunction(() => window.app.text("title") === "apricot", null, { timeout: WAIT_LIMIT_MS });
  assert.deepEqual((await now()).list, ["apricot", "avocado"]);

  await page.evaluate(() => window.app.setPrefix("b"));
  await page.waitForFunction(() => window.app.items("list").join() === "banana", null, { timeout: WAIT_LIMIT_MS });
  await page.evaluate(() => window.app.notes.put({ title: "blueberry" }, { id: "n5" }));
  await page.waitForFunction(() => window.app.items("list").join() === "banana,blueberry", null, { timeout: WAIT_LIMIT_MS });
  assert.equal(await watching(), 2, "the watch of the old query stopped");

  // Unmounted: the watches stopped; a write renders nothing.
  const rendered = await page.evaluate(async () => {
    window.app.unmount();
    const before = { ...window.app.renders };
    await window.app.notes.patch("n5", { title: "boysenberry" });
    await window.app.notes.patch("n1", { title: "almond" });
    return { before, after: { ...window.app.renders } };
  });
  assert.deepEqual(rendered.after, rendered.before);
  assert.equal(await watching(), 0, "unmounting stopped every watch");
  await closeApp({ page, name });
});
