// The package's main entry (`import { Tideway } from "tideway"`): the generated
// bindings, with the wasm module loaded on first use. `Tideway.open` and
// `Tideway.deleteDatabase` wait for it, so an app never has to call `init`; an
// app that serves the module from elsewhere, or has its bytes, calls `init`
// with them first. Every method of `Tideway` and of a collection is guarded
// against a panic in the module (see `stop`).

import loadBindings, { Collection, Tideway, moduleStack, onPanic, trackLocks } from "./tideway.js";

export * from "./tideway.js";

let loading = null;

/**
 * Loads the wasm module, once: by default from `tideway_bg.wasm` beside this
 * file; `{ module_or_path }` takes a URL, a `Response`, bytes or a compiled
 * `WebAssembly.Module` instead. Later calls share the first call's load
 * (their argument is ignored); a failed load is tried again by the next call.
 */
export default function init(input) {
  loading ??= loadBindings(input).then(
    (exports) => {
      onPanic(stop);
      trackLocks(lockReleases);
      moduleFrame = moduleFrameOf(String(moduleStack()));
      return exports;
    },
    (error) => {
      loading = null;
      throw error;
    },
  );
  return loading;
}

// A panic is a bug in Tideway: the module stops the call where it happened,
// and its memory can no longer be trusted. From then on every call throws, and
// every call still waiting rejects, with INTERNAL_ERROR; what was committed is
// in IndexedDB, and the next page load opens it again. The Web Locks the
// module holds or waits for are let go, so that another tab or worker syncs.
let stopped = null;
const lockReleases = new Set();
/** How each call still waiting would reject, were Tideway to stop (see `settledOrStopped`). */
const waitingCalls = new Set();

function stop(message) {
  if (!stopped) {
    stopped = new Error(`Tideway stopped after an internal error; reload the page to open the database again. ${message}`);
    stopped.name = "TidewayError";
    stopped.code = "INTERNAL_ERROR";
    for (const reject of waitingCalls) reject(stopped);
    waitingCalls.clear();
    for (const release of [...lockReleases]) release();
    lockReleases.clear();
  }
  return stopped;
}

/** `stop` after the module trapped with `trap` (a `WebAssembly.RuntimeError`). */
function stopAfterTrap(trap) {
  return stop(`${trap.name}: ${trap.message}`);
}

// A trap that is not a panic (a failed allocation, when the page runs out of
// memory) calls no hook. In a call from the app, `guarded` meets it; in a
// callback of the module's (an IndexedDB event, a timer, a settled Promise) it
// reaches the page only as an uncaught `WebAssembly.RuntimeError`, and the
// calls waiting on that callback would wait forever. One whose stack trace
// shows this module's frames stops Tideway as a panic does. How a browser
// names a module's frames (the URL it was streamed from, or a name for its
// bytes) is learnt once loaded, from an Error made in the module; a browser
// whose traces name no module leaves such a trap to the console.
// The listeners are added as this file is evaluated, as a service worker's
// must be.
let moduleFrame = null;
if (typeof addEventListener === "function") {
  const check = (error) => {
    if (error instanceof WebAssembly.RuntimeError && moduleFrame !== null && String(error.stack).includes(moduleFrame)) {
      stopAfterTrap(error);
    }
  };
  addEventListener("error", (event) => check(event.error));
  addEventListener("unhandledrejection", (event) => check(event.reason));
}

/**
 * Where the first wasm frame of `stack` says it is, up to the function index:
 * `at <name> (<module>:wasm-function[7]:0x1f)` or `at <module>:wasm-function[7]:0x1f`
 * in Chromium, `<name>@<module>:wasm-function[7]:0x1f` in Firefox. `<module>` is
 * the URL the module was streamed from; for one made from bytes, Chromium gives a
 * digest of them (`wasm://wasm/6b5a6d3e`), Firefox the place of the call that
 * compiled them (`<url> line 9 > WebAssembly.instantiate`).
 */
function moduleFrameOf(stack) {
  for (const line of stack.split("\n")) {
    const end = line.indexOf(":wasm-function[");
    if (end < 0) continue;
    const start = Math.max(line.lastIndexOf("(", end), line.lastIndexOf("@", end), line.indexOf("at ") + 2);
    return line.slice(start + 1, end + ":wasm-function[".length);
  }
  return null;
}

/** The methods that return a Promise: once stopped, they reject rather than throw. */
const ASYNC = new Set(["open", "deleteDatabase", "pendingCount", "storage", "sync", "close", "outbox", "rescue", "put", "bulkPut", "patch", "delete", "resolve"]);

/** `call` (a method or getter of the bindings), failing with INTERNAL_ERROR once Tideway stopped. */
function guarded(call, name) {
  return function (...args) {
    if (stopped) {
      if (ASYNC.has(name)) return Promise.reject(stopped);
      throw stopped;
    }
    let result;
    try {
      result = call.apply(this, args);
    } catch (error) {
      throw error instanceof WebAssembly.RuntimeError ? stopAfterTrap(error) : error;
    }
    return result instanceof Promise ? settledOrStopped(result) : result;
  };
}

/**
 * `call`'s promise, rejected with INTERNAL_ERROR if Tideway stops first. Each
 * waiting call is remembered until it settles, and no longer: racing every
 * call against one promise that settles only on a stop would keep a reaction
 * per call on that promise for the life of the page.
 */
function settledOrStopped(call) {
  return new Promise((resolve, reject) => {
    waitingCalls.add(reject);
    call.then(resolve, reject).finally(() => waitingCalls.delete(reject));
  });
}

/** Guards every method and getter of `target` (a prototype, or a class for its statics). */
function guard(target) {
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(target))) {
    if (["constructor", "prototype", "free"].includes(name) || name.startsWith("__") || !descriptor.configurable) continue;
    if (typeof descriptor.value === "function") descriptor.value = guarded(descriptor.value, name);
    else if (descriptor.get) descriptor.get = guarded(descriptor.get, name);
    else continue;
    Object.defineProperty(target, name, descriptor);
  }
}

const { open, deleteDatabase } = Tideway;
Tideway.open = async function (options) {
  await init();
  return open.call(Tideway, options);
};
Tideway.deleteDatabase = async function (name) {
  await init();
  return deleteDatabase.call(Tideway, name);
};
for (const target of [Tideway, Tideway.prototype, Collection.prototype]) guard(target);

// `get(id)` answers from the collection's cache of JS records (the same cache
// the module's `get` reads first), so that a read enters the module only on a
// miss: an entity changed since it was last read, an unknown id, options, or a
// closed database. A cold page's first reads then run almost no wasm code
// that is not compiled yet, and a hit does not pay the crossing into the module.
const moduleGet = Collection.prototype.get;
const recordCaches = new WeakMap();
Collection.prototype.get = function get(id, options) {
  if (typeof id === "string" && options === undefined && !stopped) {
    let cache = recordCaches.get(this);
    if (cache === undefined) recordCaches.set(this, (cache = this.__recordCache));
    const record = cache.get(id, false);
    if (record !== null) return record;
  }
  return moduleGet.call(this, id, options);
};

/**
 * Declares a collection whose entities hold `T`, for TypeScript: the returned
 * function takes the collection's options and gives them back unchanged.
 *
 *     collections: { notes: collection<Note>()({ indexes: ["title"] }) }
 */
export function collection() {
  return (options = {}) => options;
}
