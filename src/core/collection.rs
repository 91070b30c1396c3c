//! An in-memory collection: entities by id plus one ordered set per index.
//! It is both the repository's instant-read mirror and the memory store.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::entity::{Entity, SyncStatus};
use super::error::{Error, Result};
use super::key::{Id, IndexKey, PrimaryKey};
use super::query::Query;
use super::schema::{CollectionSchema, IndexSpec};

/// The entries of one index, in its order: each entity's key, then its id.
type IndexSet = BTreeSet<(IndexKey, PrimaryKey)>;

/// What a collection holds, entity by entity: what `db.collections()` lists and
/// `db.status()` adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Entities that are not tombstones.
    pub live: u64,
    pub deleted: u64,
    /// Local mutations not yet acknowledged.
    pub pending: u64,
    /// Entities whose last change the server refused.
    pub failed: u64,
    /// Entities waiting in `conflict`.
    pub conflicts: u64,
}

impl Tally {
    /// Counts `entity` in (`sign` 1) or out (`sign` -1).
    fn count(&mut self, entity: &Entity, sign: i64) {
        let add = |field: &mut u64, by: u64| *field = field.wrapping_add_signed(sign * by as i64);
        add(&mut self.live, u64::from(!entity.deleted));
        add(&mut self.deleted, u64::from(entity.deleted));
        add(&mut self.pending, u64::from(entity.pending));
        add(&mut self.failed, u64::from(entity.sync_status == SyncStatus::Failed));
        add(&mut self.conflicts, u64::from(entity.sync_status == SyncStatus::Conflict));
    }
}

#[derive(Debug, Clone, Default)]
pub struct Collection {
    schema: CollectionSchema,
    entities: BTreeMap<PrimaryKey, Entity>,
    /// One ordered set per declared index, in the schema's order, built when
    /// a query first needs it (a mirror loaded at open sorts no index before
    /// then) and from then on kept in step by every `set`.
    indexes: Vec<OnceCell<IndexSet>>,
    /// What the entities add up to, kept in step by every `set`, so that
    /// `db.status()` after each commit costs nothing per entity.
    tally: Tally,
}

impl Collection {
    pub fn new(schema: CollectionSchema) -> Self {
        let indexes = schema.indexes.iter().map(|_| OnceCell::from(IndexSet::new())).collect();
        Collection { schema, entities: BTreeMap::new(), indexes, tally: Tally::default() }
    }

    /// A collection holding `entities`, built in bulk: the map is sorted once
    /// and built from its sorted entries (that is what collecting into a
    /// B-tree does) instead of searched once per entity, and each index is
    /// built the same way when first queried. Entities in id order, as a
    /// store loads them, cost a single pass to sort. Of entities sharing an
    /// id, the last one stays.
    pub fn from_entities(schema: CollectionSchema, entities: Vec<Entity>) -> Self {
        let entities: BTreeMap<PrimaryKey, Entity> =
            entities.into_iter().map(|entity| (PrimaryKey(entity.id.clone()), entity)).collect();
        let indexes = schema.indexes.iter().map(|_| OnceCell::new()).collect();
        let mut tally = Tally::default();
        for entity in entities.values() {
            tally.count(entity, 1);
        }
        Collection { schema, entities, indexes, tally }
    }

    pub fn schema(&self) -> &CollectionSchema {
        &self.schema
    }

    /// The entity with this id, tombstones included.
    pub fn get(&self, id: &str) -> Option<&Entity> {
        self.entities.get(Id::new(id))
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Every entity, tombstones included, in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entity> {
        self.entities.values()
    }

    /// What the collection holds, counted.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Inserts or replaces an entity (or removes it with `None`), keeping the
    /// indexes in step. Returns the entity it replaced, if any.
    pub fn set(&mut self, id: &str, entity: Option<Entity>) -> Option<Entity> {
        let Collection { schema, entities, indexes, tally } = self;
        if let Some(entity) = &entity {
            tally.count(entity, 1);
        }
        let old = match entity {
            Some(entity) => match entities.get_mut(Id::new(id)) {
                Some(slot) => Some(std::mem::replace(slot, entity)),
                None => entities.insert(PrimaryKey(id.to_owned()), entity),
            },
            None => entities.remove(Id::new(id)),
        };
        if let Some(old) = &old {
            tally.count(old, -1);
        }
        let new = entities.get(Id::new(id));
        // As when sync acknowledges a write, or another context's commit
        // changes only the metadata: no key of an index over data moves, and
        // the data need not be read to tell.
        let same_data = matches!((&old, new), (Some(old), Some(new)) if old.shares_data_with(new));
        for (index, set) in schema.indexes.iter().zip(indexes) {
            // An index not built yet is built from the entities as they are when first queried.
            let Some(set) = set.get_mut() else { continue };
            if same_data && index.reads_data() {
                continue;
            }
            let old_key = old.as_ref().and_then(|entity| index.key_of(entity));
            let new_key = new.and_then(|entity| index.key_of(entity));
            // A write that leaves an index key as it was leaves that index alone.
            if old_key == new_key {
                continue;
            }
            if let Some(key) = old_key {
                set.remove(&(key, PrimaryKey(id.to_owned())));
            }
            if let Some(key) = new_key {
                set.insert((key, PrimaryKey(id.to_owned())));
            }
        }
        old
    }

    /// Moves the entity `id` from sync status `from` to `to` in place, if it
    /// has `from`, and returns it. For statuses that no index nor the tally
    /// tells apart (`Dirty` and `Syncing`): nothing else changes.
    pub fn restatus(&mut self, id: &str, from: SyncStatus, to: SyncStatus) -> Option<&Entity> {
        debug_assert!([from, to].iter().all(|status| matches!(status, SyncStatus::Dirty | SyncStatus::Syncing)));
        let entity = self.entities.get_mut(Id::new(id)).filter(|entity| entity.sync_status == from)?;
        entity.sync_status = to;
        Some(entity)
    }

    /// Answers a query in IndexedDB's order: by index key, then by id;
    /// `reverse` flips both.
    pub fn query(&self, query: &Query) -> Result<Vec<&Entity>> {
        let range = query.range()?;
        let Some(index_name) = &query.index else {
            let ids = self.entities.range(range.id_bounds()?).map(|(_, entity)| entity);
            return Ok(if query.reverse { query.page(ids.rev()) } else { query.page(ids) });
        };
        let position = self.index(index_name)?;
        let set = self.indexes[position].get_or_init(|| index_set(&self.schema.indexes[position], &self.entities));
        let entries = set.range((lower_bound(range.lower), upper_bound(range.upper)));
        let entities = entries.map(|(_, id)| &self.entities[id]);
        Ok(if query.reverse { query.page(entities.rev()) } else { query.page(entities) })
    }

    /// The position of an index among the declared ones (and in `indexes`).
    fn index(&self, name: &str) -> Result<usize> {
        self.schema.indexes.iter().position(|index| index.name == name).ok_or_else(|| {
            let declared: Vec<&str> = self.schema.indexes.iter().map(|i| i.name.as_str()).collect();
            Error::InvalidArgument(format!("query: no index {name:?}; declared indexes: [{}]", declared.join(", ")))
        })
    }
}

/// The entries of `index` for `entities`, sorted once in bulk.
fn index_set(index: &IndexSpec, entities: &BTreeMap<PrimaryKey, Entity>) -> IndexSet {
    entities.iter().filter_map(|(id, entity)| Some((index.key_of(entity)?, id.clone()))).collect()
}

/// The smallest key greater than `key`: every `(key, id)` pair sorts below `(successor(key), "")`.
fn successor(key: IndexKey) -> IndexKey {
    match key {
        IndexKey::Number(n) if n == f64::INFINITY => IndexKey::String(String::new()),
        IndexKey::Number(n) => IndexKey::Number(n.next_up()),
        IndexKey::String(mut s) => {
            s.push('\0');
            IndexKey::String(s)
        }
        IndexKey::Array(mut items) => {
            items.push(IndexKey::Number(f64::NEG_INFINITY));
            IndexKey::Array(items)
        }
    }
}

fn smallest_id() -> PrimaryKey {
    PrimaryKey(String::new())
}

fn lower_bound(bound: Bound<IndexKey>) -> Bound<(IndexKey, PrimaryKey)> {
    match bound {
        Bound::Included(key) => Bound::Included((key, smallest_id())),
        Bound::Excluded(key) => Bound::Included((successor(key), smallest_id())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn upper_bound(bound: Bound<IndexKey>) -> Bound<(IndexKey, PrimaryKey)> {
    match bound {
        Bound::Included(key) => Bound::Excluded((successor(key), smallest_id())),
        Bound::Excluded(key) => Bound::Excluded((key, smallest_id())),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schema::Schema;
    use serde_json::{json, Value};

    fn schema() -> CollectionSchema {
        Schema::new([("notes", vec!["title", "updatedAt", "tags"])]).unwrap().collections.remove("notes").unwrap()
    }

    fn entity(id: &str, data: Value, at: f64) -> Entity {
        Entity::new(id.into(), data.as_object().cloned().unwrap(), at)
    }

    /// The ids in the order of every index and of the primary key, tombstones included.
    fn orders(collection: &Collection) -> Vec<Vec<String>> {
        let mut walks = vec![None, Some("title"), Some("updatedAt"), Some("tags")];
        walks
            .drain(..)
            .map(|index| {
                let query = Query { index: index.map(str::to_owned), include_deleted: true, ..Query::default() };
                collection.query(&query).unwrap().iter().map(|entity| entity.id.clone()).collect()
            })
            .collect()
    }

    fn sample() -> Vec<Entity> {
        vec![
            entity("b", json!({"title": "pear", "tags": ["x", 1]}), 3.0),
            entity("\u{FF61}", json!({"title": "\u{1F600}"}), 1.0),
            entity("a", json!({"title": "apple"}), 2.0),
            entity("c", json!({"title": true}), 2.0),
            entity("\u{1F600}", json!({"title": "\u{FF61}", "tags": "x"}), 5.0),
            entity("a2", json!({"title": "apple"}), 4.0),
        ]
    }

    #[test]
    fn bulk_build_matches_inserting_one_by_one() {
        let mut one_by_one = Collection::new(schema());
        for entity in sample() {
            one_by_one.set(&entity.id.clone(), Some(entity));
        }
        let bulk = Collection::from_entities(schema(), sample());
        assert_eq!(orders(&bulk), orders(&one_by_one));
        assert_eq!(bulk.iter().collect::<Vec<_>>(), one_by_one.iter().collect::<Vec<_>>());
        // By title in UTF-16 order: "\u{FF61}" is titled "\u{1F600}", which sorts first.
        assert_eq!(orders(&bulk)[1], ["a", "a2", "b", "\u{FF61}", "\u{1F600}"]);
    }

    #[test]
    fn bulk_build_keeps_the_last_of_entities_sharing_an_id() {
        let mut entities = sample();
        entities.push(entity("a", json!({"title": "zebra"}), 9.0));
        let bulk = Collection::from_entities(schema(), entities);
        assert_eq!(bulk.len(), 6);
        assert_eq!(bulk.get("a").unwrap().data()["title"], "zebra");
        assert_eq!(orders(&bulk)[1], ["a2", "b", "a", "\u{FF61}", "\u{1F600}"]);
    }

    #[test]
    fn an_index_built_on_first_query_stays_in_step_with_later_writes() {
        let mut loaded = Collection::from_entities(schema(), sample());
        let mut inserted = Collection::new(schema());
        for entity in sample() {
            inserted.set(&entity.id.clone(), Some(entity));
        }
        // The loaded collection builds its title index here, the others after the writes.
        let by_title = Query { index: Some("title".into()), include_deleted: true, ..Query::default() };
        assert_eq!(loaded.query(&by_title).unwrap(), inserted.query(&by_title).unwrap());
        for collection in [&mut loaded, &mut inserted] {
            collection.set("a", Some(entity("a", json!({"title": "zebra", "tags": 1}), 9.0)));
            collection.set("b", None);
            collection.set("d", Some(entity("d", json!({"title": "date"}), 0.5)));
        }
        assert_eq!(orders(&loaded), orders(&inserted));
        assert_eq!(orders(&loaded)[1], ["a2", "d", "a", "\u{FF61}", "\u{1F600}"]);
    }

    #[test]
    fn replacing_and_removing_keep_every_index_in_step() {
        let mut collection = Collection::from_entities(schema(), sample());
        // The same title and time: the index entries stay as they are.
        collection.set("a", Some(entity("a", json!({"title": "apple", "body": "new"}), 2.0)));
        // A new title and time; a title that is no longer a key; a removal.
        collection.set("b", Some(entity("b", json!({"title": "aardvark"}), 0.5)));
        collection.set("\u{1F600}", Some(entity("\u{1F600}", json!({"title": null}), 5.0)));
        assert_eq!(collection.set("a2", None).map(|entity| entity.data()["title"].clone()), Some(json!("apple")));
        assert_eq!(collection.set("a2", None), None);

        let mut expected = Collection::new(schema());
        for entity in collection.iter().cloned().collect::<Vec<_>>() {
            expected.set(&entity.id.clone(), Some(entity));
        }
        assert_eq!(orders(&collection), orders(&expected));
        assert_eq!(orders(&collection)[1], ["b", "a", "\u{FF61}"]);
        assert_eq!(orders(&collection)[2], ["b", "\u{FF61}", "a", "c", "\u{1F600}"]);
        assert_eq!(collection.get("a").unwrap().data()["body"], "new");
        assert!(collection.get("a2").is_none());
    }

    #[test]
    fn an_entity_whose_data_stays_the_same_text_moves_only_in_indexes_over_metadata() {
        // Loaded from docs, as a mirror is: the data held as text.
        let doc = |id: &str, title: &str, at: f64| -> Entity {
            let doc = json!({"id": id, "data": {"title": title}, "version": 1, "updatedAt": at, "syncStatus": "synced", "pending": 0});
            serde_json::from_value(doc).unwrap()
        };
        let mut collection = Collection::from_entities(schema(), vec![doc("a", "pear", 1.0), doc("b", "apple", 2.0)]);
        assert_eq!(orders(&collection)[1..3], [vec!["b", "a"], vec!["a", "b"]]);
        // Acknowledged, or changed in another context: a new entity read from the same data text.
        let mut moved = doc("a", "pear", 1.0);
        moved.updated_at = 3.0;
        moved.version = 2;
        assert!(moved.shares_data_with(collection.get("a").unwrap()));
        collection.set("a", Some(moved));
        assert_eq!(orders(&collection)[1..3], [vec!["b", "a"], vec!["b", "a"]]);
        // Data that changed moves in the data's indexes.
        collection.set("b", Some(doc("b", "quince", 2.0)));
        assert_eq!(orders(&collection)[1..3], [vec!["a", "b"], vec!["b", "a"]]);
    }

    #[test]
    fn a_tally_counts_each_entity_once_by_what_it_is() {
        let mut entities = sample();
        entities[0].deleted = true;
        entities[1].pending = 2;
        entities[2].pending = 1;
        entities[2].sync_status = SyncStatus::Failed;
        entities[3].sync_status = SyncStatus::Conflict;
        let mut collection = Collection::from_entities(schema(), entities);
        assert_eq!(collection.tally(), Tally { live: 5, deleted: 1, pending: 3, failed: 1, conflicts: 1 });
        assert_eq!(Collection::new(schema()).tally(), Tally::default());

        // Kept in step by every set: a replacement, a new entity, a removal, a removal of nothing.
        let mut settled = collection.get("b").unwrap().clone();
        settled.pending = 0;
        settled.sync_status = SyncStatus::Synced;
        collection.set("b", Some(settled));
        collection.set("new", Some(entity("new", json!({"title": "new"}), 9.0)));
        let removed = collection.iter().next().unwrap().id.clone();
        collection.set(&removed, None);
        collection.set("never", None);
        let mut recounted = Tally::default();
        for entity in collection.iter() {
            recounted.live += u64::from(!entity.deleted);
            recounted.deleted += u64::from(entity.deleted);
            recounted.pending += u64::from(entity.pending);
            recounted.failed += u64::from(entity.sync_status == SyncStatus::Failed);
            recounted.conflicts += u64::from(entity.sync_status == SyncStatus::Conflict);
        }
        assert_eq!(collection.tally(), recounted);
        assert_eq!(collection.tally(), Tally { live: 5, deleted: 1, pending: 2, failed: 0, conflicts: 1 });
    }
}
