//! How Tideway lays its data out in IndexedDB, and how an existing database is
//! brought to the layout a schema asks for. Pure, so it is tested natively.
//!
//! * `meta` (out-of-line keys): `clientId`, `formatVersion`, `backfill`, the
//!   pull `cursor`, the `sync` state (JSON: the retry schedule, and what
//!   the remote learned about the server), the `commit` mark the last
//!   transaction that wrote entities left, and the database's `image` with
//!   the mark it was saved at (`imageMark`): `{ mark, stores, parts }`,
//!   `parts` the names of the parts that hold every entity's doc as it stood
//!   at that mark, in order, each `{ store, ids, docs }` under the key
//!   `["image", name]` (`store` one of `stores`; each store's in id order),
//!   which an open reads instead of the records while the mark is still the
//!   last one (see `saveImage` in `src/browser/browser.js`). A part never
//!   changes once stored, and a save stores only the parts whose docs
//!   changed; the transaction that names them deletes every other part. A
//!   Tideway that does not know the image leaves it alone, and its writes,
//!   which leave marks of their own (format 3), make it out of date. Images
//!   as versions before saved them (one record; parts under `["image", 0]`,
//!   `["image", 1]`…, named by their count) are not read: the next save
//!   replaces them, and deletes those parts.
//! * `outbox` (keyPath `mutationId`, autoIncrement): `{ mutationId, doc }`, `doc` being the mutation as JSON text.
//! * `e:<collection>` (keyPath `id`): `{ id, doc, ix }` where `doc` is the
//!   entity as JSON text, a `base` equal to its `data` left out for
//!   `baseIsData: true` (see `Entity`'s `DocOut`; a load joins them into one JSON array for one parse,
//!   and a first read parses one in JS; equality of two docs is string
//!   equality, which is how writes check what is stored) and `ix` holds the
//!   keys of the declared indexes, each IndexedDB index reading `ix.<field>`.
//!   A `doc` may also be UTF-8 JSON bytes in a `Uint8Array`, as an earlier
//!   version wrote them; both forms are read.
//! * `acks` (out-of-line keys, autoIncrement): acknowledgements of pushes
//!   kept as a log rather than written into each entity's record, a batch's
//!   in records of up to 250: `{ entries }`, a flat array of `store, id, before, after`
//!   (object store name, entity id, the doc the acknowledgement was made on,
//!   the doc it leaves). An entity's doc as it stands is its record's doc
//!   with each entry of the log, in order, whose `before` is the doc so far
//!   replacing it with its `after`: an entry made on a doc that was since
//!   written over matches nothing. Only acknowledgements go there (they change
//!   no data, so no index key), and only in batches large enough that one
//!   record beats rewriting each entity's; the log is folded into the
//!   records in the background (see `foldAcks` in `src/browser/browser.js`).

use std::collections::{BTreeMap, BTreeSet};

use crate::core::{Error, Result, Schema};

pub const META_STORE: &str = "meta";
pub const OUTBOX_STORE: &str = "outbox";
/// The log of acknowledgements not yet folded into the entities' records.
pub const ACKS_STORE: &str = "acks";
/// The key path of the outbox, filled in by its key generator.
pub const OUTBOX_KEY_PATH: &str = "mutationId";
/// The key path of every entity store.
pub const ENTITY_KEY_PATH: &str = "id";
/// The storage format this code reads and writes. A database written in a
/// newer format is refused rather than misread; one in an older format is
/// raised to this one at open, in an upgrade, which closes the connections of
/// contexts running an older Tideway.
///
/// * 1: an entity's doc holds its `base` in full.
/// * 2: a `base` equal to the entity's `data` is left out, `baseIsData: true`
///   standing for it. Format 1's docs read the same, so raising a database
///   rewrites nothing.
/// * 3: every transaction that writes entities replaces the meta key `commit`
///   with a mark of its own, by which a context tells whether another one
///   wrote since (see `Commits` in `src/browser/browser.js`). Nothing is
///   rewritten; raising the format closes the connections of contexts that
///   would write without leaving a mark.
/// * 4: acknowledgements may wait in `acks` before they reach the entities'
///   records; every reader of an entity applies them. Raising the format
///   closes the connections of contexts that would read records without them.
pub const FORMAT_VERSION: u32 = 4;
/// Meta key listing collections whose `ix` fields must be recomputed because
/// an index was added to them.
pub const BACKFILL_KEY: &str = "backfill";
/// Meta key of the last pull cursor whose page is applied.
pub const CURSOR_KEY: &str = "cursor";
/// Meta key of the sync retry schedule and last sync time (JSON text).
pub const SYNC_KEY: &str = "sync";

/// The object store holding a collection.
pub fn entity_store(collection: &str) -> String {
    format!("e:{collection}")
}

/// The object stores of the collections named in `collections`, each once,
/// as a transaction's scope: a batch names a few collections, each many
/// times, so those met are searched before a name is made.
pub fn entity_stores<'a>(collections: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut met: Vec<&str> = Vec::new();
    for collection in collections {
        if !met.contains(&collection) {
            met.push(collection);
        }
    }
    met.into_iter().map(entity_store).collect()
}

/// The field of `ix` that holds an index's key. Index names may contain dots,
/// which a key path would read as nesting, so the name is hex-encoded.
pub fn index_field(index_name: &str) -> String {
    let hex: String = index_name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("i_{hex}")
}

/// The object stores of an existing database and the indexes of each.
pub type Layout = BTreeMap<String, BTreeSet<String>>;

/// What an upgrade must do to a collection's object store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreChange {
    pub store: String,
    pub create: bool,
    /// `(index name, key path)` pairs to create.
    pub add_indexes: Vec<(String, String)>,
    pub remove_indexes: Vec<String>,
}

/// Everything an upgrade must do; empty when the database already fits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpgradePlan {
    pub create_meta: bool,
    pub create_outbox: bool,
    pub create_acks: bool,
    pub stores: Vec<StoreChange>,
    /// Existing collections that gained an index and need their `ix` recomputed.
    pub backfill: Vec<String>,
    /// Record [`FORMAT_VERSION`] in `meta`, the database being in an older one.
    pub raise_format: bool,
}

impl UpgradePlan {
    /// Compares an existing layout with the schema. Collections that are no
    /// longer declared are kept untouched: dropping data is never implicit.
    pub fn new(layout: &Layout, schema: &Schema) -> UpgradePlan {
        let mut plan = UpgradePlan {
            create_meta: !layout.contains_key(META_STORE),
            create_outbox: !layout.contains_key(OUTBOX_STORE),
            create_acks: !layout.contains_key(ACKS_STORE),
            ..UpgradePlan::default()
        };
        for (name, collection) in &schema.collections {
            let store = entity_store(name);
            let existing = layout.get(&store);
            let change = StoreChange {
                store: store.clone(),
                create: existing.is_none(),
                add_indexes: collection
                    .indexes
                    .iter()
                    .filter(|index| existing.is_none_or(|have| !have.contains(&index.name)))
                    .map(|index| (index.name.clone(), format!("ix.{}", index_field(&index.name))))
                    .collect(),
                remove_indexes: existing
                    .map(|have| have.iter().filter(|name| collection.index(name).is_none()).cloned().collect())
                    .unwrap_or_default(),
            };
            if existing.is_some() && !change.add_indexes.is_empty() {
                plan.backfill.push(name.clone());
            }
            if change.create || !change.add_indexes.is_empty() || !change.remove_indexes.is_empty() {
                plan.stores.push(change);
            }
        }
        plan
    }

    /// The upgrade that raises a database in an older format to this one.
    pub fn raise_format() -> UpgradePlan {
        UpgradePlan { raise_format: true, ..UpgradePlan::default() }
    }

    pub fn is_empty(&self) -> bool {
        !self.create_meta && !self.create_outbox && !self.create_acks && self.stores.is_empty() && !self.raise_format
    }
}

/// Whether a database whose `meta` holds format `stored` (`None`: none, as
/// databases written before formats were recorded) is to be raised to this
/// one. Call it on a format [`check_format`] accepted.
pub fn needs_raising(stored: Option<u32>) -> bool {
    stored.is_none_or(|version| version < FORMAT_VERSION)
}

/// Refuses a database written by a newer Tideway.
pub fn check_format(stored: Option<u32>) -> Result<()> {
    match stored {
        Some(version) if version > FORMAT_VERSION => Err(Error::Schema(format!(
            "this database was written in storage format {version} by a newer Tideway; this version reads format {FORMAT_VERSION}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(stores: &[(&str, &[&str])]) -> Layout {
        stores.iter().map(|(s, ix)| (s.to_string(), ix.iter().map(|i| i.to_string()).collect())).collect()
    }

    #[test]
    fn new_database_gets_everything() {
        let schema = Schema::new([("notes", vec!["title"])]).unwrap();
        let plan = UpgradePlan::new(&Layout::new(), &schema);
        assert!(plan.create_meta && plan.create_outbox && plan.create_acks);
        assert_eq!(plan.stores[0].store, "e:notes");
        assert!(plan.stores[0].create);
        assert_eq!(plan.stores[0].add_indexes, vec![("title".into(), format!("ix.{}", index_field("title")))]);
        assert!(plan.backfill.is_empty());
    }

    #[test]
    fn fitting_database_needs_nothing() {
        let schema = Schema::new([("notes", vec!["title"])]).unwrap();
        let plan = UpgradePlan::new(&layout(&[("meta", &[]), ("outbox", &[]), ("acks", &[]), ("e:notes", &["title"])]), &schema);
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn added_and_removed_indexes_and_collections() {
        let schema = Schema::new([("notes", vec!["title", "updatedAt"]), ("tags", vec![])]).unwrap();
        let old = layout(&[("meta", &[]), ("outbox", &[]), ("e:notes", &["title", "old"]), ("e:gone", &[])]);
        let plan = UpgradePlan::new(&old, &schema);
        let notes = plan.stores.iter().find(|s| s.store == "e:notes").unwrap();
        assert!(!notes.create);
        assert_eq!(notes.add_indexes.len(), 1);
        assert_eq!(notes.remove_indexes, vec!["old".to_string()]);
        assert!(plan.stores.iter().any(|s| s.store == "e:tags" && s.create));
        assert!(!plan.stores.iter().any(|s| s.store == "e:gone"), "undeclared collections are kept");
        assert_eq!(plan.backfill, vec!["notes".to_string()]);
        assert!(plan.create_acks, "a database of format 3 gains the log");
    }

    #[test]
    fn index_fields_are_identifiers_and_distinct() {
        assert_eq!(index_field("a.b"), "i_612e62");
        assert_ne!(index_field("a.b"), index_field("a_b"));
    }

    #[test]
    fn older_formats_are_raised_in_an_upgrade_of_their_own() {
        assert!(needs_raising(None));
        assert!(needs_raising(Some(1)));
        assert!(!needs_raising(Some(FORMAT_VERSION)));
        assert!(!UpgradePlan::raise_format().is_empty());
        let schema = Schema::new([("notes", vec![])]).unwrap();
        let fitting = layout(&[("meta", &[]), ("outbox", &[]), ("acks", &[]), ("e:notes", &[])]);
        assert!(!UpgradePlan::new(&fitting, &schema).raise_format, "a schema's plan leaves the format alone");
    }

    #[test]
    fn newer_formats_are_refused() {
        assert!(check_format(None).is_ok());
        assert!(check_format(Some(FORMAT_VERSION)).is_ok());
        assert!(matches!(check_format(Some(FORMAT_VERSION + 1)), Err(Error::Schema(_))));
    }
}
