import type { CollectionOptions, CollectionSpec, Data, IndexName } from "./tideway.js";

export * from "./tideway.js";
export { default } from "./tideway.js";

/**
 * Declares a collection whose entities hold `T`: `db.collection(name)` is then a
 * `Collection<T>`, `put` and `patch` check their data against `T`, and `indexes`
 * takes only metadata names and paths into `T`. The returned function gives its
 * options back unchanged (it only carries the type).
 *
 * ```ts
 * const db = await Tideway.open({ name: "app", collections: { notes: collection<Note>()({ indexes: ["title"] }) } });
 * ```
 */
export function collection<T extends Data>(): <const I extends IndexName<T> = never>(
  options?: CollectionOptions<T, I>,
) => CollectionSpec<T, I>;
