//! An in-memory collection: entities by id plus one ordered set per index.
//! It is both the repository's instant-read mirror and the memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::entity::Entity;
use super::error::{Error, Result};
use super::key::{IndexKey, PrimaryKey};
use super::query::Query;
use super::schema::{CollectionSchema, IndexSpec};

#[derive(Debug, Clone, Default)]
pub struct Collection {
    schema: CollectionSchema,
    entities: BTreeMap<PrimaryKey, Entity>,
    indexes: BTreeMap<String, BTreeSet<(IndexKey, PrimaryKey)>>,
}

impl Collection {
    pub fn new(schema: CollectionSchema) -> Self {
        let indexes = schema.indexes.iter().map(|index| (index.name.clone(), BTreeSet::new())).collect();
        Collection { schema, entities: BTreeMap::new(), indexes }
    }

    /// The entity with this id, tombstones included.
    pub fn get(&self, id: &str) -> Option<&Entity> {
        self.entities.get(&PrimaryKey(id.to_owned()))
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

    /// Inserts or replaces an entity (or removes it with `None`), keeping the indexes in step.
    pub fn set(&mut self, id: &str, entity: Option<Entity>) {
        let key = PrimaryKey(id.to_owned());
        if let Some(old) = self.entities.remove(&key) {
            for index in &self.schema.indexes {
                if let Some(index_key) = index.key_of(&old) {
                    self.indexes.get_mut(&index.name).map(|set| set.remove(&(index_key, key.clone())));
                }
            }
        }
        if let Some(entity) = entity {
            for index in &self.schema.indexes {
                if let Some(index_key) = index.key_of(&entity) {
                    self.indexes.get_mut(&index.name).map(|set| set.insert((index_key, key.clone())));
                }
            }
            self.entities.insert(key, entity);
        }
    }

    /// Answers a query in IndexedDB's order: by index key, then by id;
    /// `reverse` flips both.
    pub fn query(&self, query: &Query) -> Result<Vec<&Entity>> {
        let range = query.range()?;
        let Some(index_name) = &query.index else {
            let ids = self.entities.range(range.id_bounds()?).map(|(_, entity)| entity);
            return Ok(if query.reverse { query.page(ids.rev()) } else { query.page(ids) });
        };
        let index = self.index(index_name)?;
        let set = &self.indexes[&index.name];
        let entries = set.range((lower_bound(range.lower), upper_bound(range.upper)));
        let entities = entries.map(|(_, id)| &self.entities[id]);
        Ok(if query.reverse { query.page(entities.rev()) } else { query.page(entities) })
    }

    fn index(&self, name: &str) -> Result<&IndexSpec> {
        self.schema.index(name).ok_or_else(|| {
            let declared: Vec<&str> = self.schema.indexes.iter().map(|i| i.name.as_str()).collect();
            Error::InvalidArgument(format!("query: no index {name:?}; declared indexes: [{}]", declared.join(", ")))
        })
    }
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
