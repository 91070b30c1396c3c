// The package's main entry (`import { Tideway } from "tideway"`): the generated
// bindings, with the wasm module loaded on first use. `Tideway.open` and
// `Tideway.deleteDatabase` wait for it, so an app never has to call `init`; an
// app that serves the module from elsewhere, or has its bytes, calls `init`
// with them first.

import loadBindings, { Tideway } from "./tideway.js";

export * from "./tideway.js";

let loading = null;

/**
 * Loads the wasm module, once: by default from `tideway_bg.wasm` beside this
 * file; `{ module_or_path }` takes a URL, a `Response`, bytes or a compiled
 * `WebAssembly.Module` instead. Later calls share the first call's load
 * (their argument is ignored); a failed load is tried again by the next call.
 */
export default function init(input) {
  loading ??= loadBindings(input).catch((error) => {
    loading = null;
    throw error;
  });
  return loading;
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

/**
 * Declares a collection whose entities hold `T`, for TypeScript: the returned
 * function takes the collection's options and gives them back unchanged.
 *
 *     collections: { notes: collection<Note>()({ indexes: ["title"] }) }
 */
export function collection() {
  return (options = {}) => options;
}
