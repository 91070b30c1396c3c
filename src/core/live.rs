//! Live queries: which batches of committed changes can alter what a watch shows.
//!
//! A watch remembers the ids its last result held. After a batch of changes it
//! is run again only when a change touched one of those entities or brings an
//! entity into its range; everything else passes it by without a query. The
//! JS layer then compares the new result with the last by record identity and
//! calls back only when they differ.

use std::collections::HashSet;

use super::collection::Collection;
use super::entity::Entity;
use super::error::Result;
use super::key::IndexKey;
use super::query::{KeyRange, Query};
use super::repository::Change;
use super::schema::IndexSpec;

/// A query being watched, with the ids its last result held.
#[derive(Debug, Clone)]
pub struct LiveQuery {
    query: Query,
    range: KeyRange,
    /// The walked index; `None` walks entity ids.
    index: Option<IndexSpec>,
    shown: HashSet<String>,
}

impl LiveQuery {
    /// Checks `query` against `collection` and runs it a first time.
    pub fn start(collection: &Collection, query: Query) -> Result<(LiveQuery, Vec<&Entity>)> {
        let result = collection.query(&query)?;
        let range = query.range()?;
        let index = query.index.as_deref().and_then(|name| collection.schema().index(name)).cloned();
        let shown = result.iter().map(|entity| entity.id.clone()).collect();
        Ok((LiveQuery { query, range, index, shown }, result))
    }

    pub fn query(&self) -> &Query {
        &self.query
    }

    /// Runs the query again and remembers what it holds now.
    pub fn rerun<'c>(&mut self, collection: &'c Collection) -> Result<Vec<&'c Entity>> {
        let result = collection.query(&self.query)?;
        self.shown.clear();
        self.shown.extend(result.iter().map(|entity| entity.id.clone()));
        Ok(result)
    }

    /// Whether `change` can alter the result: it touched an entity the result
    /// held, or the entity as it is now belongs in the range. With an `offset`
    /// an entity leaving the range before the page shifts the page, and the
    /// change does not say where the entity was: every change counts then.
    pub fn may_change(&self, change: &Change) -> bool {
        if self.query.offset > 0 || self.shown.contains(&change.id) {
            return true;
        }
        let Some(entity) = &change.entity else { return false };
        if entity.deleted && !self.query.include_deleted {
            return false;
        }
        match &self.index {
            None => self.range.contains(&IndexKey::String(change.id.clone())),
            Some(index) => index.key_of(entity).is_some_and(|key| self.range.contains(&key)),
        }
    }
}

/// What a watch follows.
#[derive(Debug, Clone)]
pub enum Target {
    Query(Box<LiveQuery>),
    /// One entity, by id (`collection.get`).
    Record(String),
}

impl Target {
    pub fn may_change(&self, change: &Change) -> bool {
        match self {
            Target::Query(live) => live.may_change(change),
            Target::Record(id) => *id == change.id,
        }
    }
}

/// The watches of one collection, each with what its owner keeps beside it
/// (the JS layer: the callback and the last result).
#[derive(Debug)]
pub struct Watches<W> {
    entries: Vec<(u64, Target, W)>,
    last_id: u64,
}

impl<W> Default for Watches<W> {
    fn default() -> Self {
        Watches { entries: Vec::new(), last_id: 0 }
    }
}

impl<W> Watches<W> {
    /// Adds a watch; returns its id.
    pub fn add(&mut self, target: Target, watcher: W) -> u64 {
        self.last_id += 1;
        self.entries.push((self.last_id, target, watcher));
        self.last_id
    }

    /// Removes a watch; `None` if it was removed already.
    pub fn remove(&mut self, id: u64) -> Option<(Target, W)> {
        let position = self.entries.iter().position(|(wid, _, _)| *wid == id)?;
        let (_, target, watcher) = self.entries.remove(position);
        Some((target, watcher))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get_mut(&mut self, id: u64) -> Option<(&mut Target, &mut W)> {
        self.entries.iter_mut().find(|(wid, _, _)| *wid == id).map(|(_, target, watcher)| (target, watcher))
    }

    /// The watches a batch of changes may alter, in the order they were added.
    pub fn affected(&self, changes: &[Change]) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, target, _)| changes.iter().any(|change| target.may_change(change)))
            .map(|(id, _, _)| *id)
            .collect()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::core::repository::Origin;
    use crate::core::schema::{CollectionSchema, Schema};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn schema() -> CollectionSchema {
        Schema::new([("notes", vec!["title", "rank"])]).unwrap().collections.remove("notes").unwrap()
    }

    fn entity(id: &str, data: Value) -> Entity {
        Entity::new(id.into(), data.as_object().cloned().unwrap(), 1.0)
    }

    fn change(id: &str, entity: Option<Entity>) -> Change {
        Change { collection: "notes".into(), id: id.into(), entity, origin: Origin::Local }
    }

    /// Notes "a" to "j" ranked 0 to 9, titled by their id.
    fn notes() -> Collection {
        let entities = (0..10u8)
            .map(|rank| {
                let id = ((b'a' + rank) as char).to_string();
                entity(&id, json!({ "title": id, "rank": rank }))
            })
            .collect();
        Collection::from_entities(schema(), entities)
    }

    fn by_rank(gte: f64, lt: f64) -> Query {
        Query { index: Some("rank".into()), gte: Some(IndexKey::Number(gte)), lt: Some(IndexKey::Number(lt)), ..Query::default() }
    }

    fn ids(entities: &[&Entity]) -> Vec<String> {
        entities.iter().map(|entity| entity.id.clone()).collect()
    }

    #[test]
    fn start_runs_the_query_and_checks_it() {
        let collection = notes();
        let (_, result) = LiveQuery::start(&collection, by_rank(2.0, 5.0)).unwrap();
        assert_eq!(ids(&result), ["c", "d", "e"]);
        let undeclared = Query { index: Some("body".into()), ..Query::default() };
        assert!(LiveQuery::start(&collection, undeclared).is_err());
        let inverted = by_rank(5.0, 2.0);
        assert!(LiveQuery::start(&collection, inverted).is_err());
    }

    #[test]
    fn a_change_outside_the_range_and_the_result_passes_by() {
        let collection = notes();
        let (live, _) = LiveQuery::start(&collection, by_rank(2.0, 5.0)).unwrap();
        // "h" stays outside; a new entity outside; a delete of one never shown.
        assert!(!live.may_change(&change("h", Some(entity("h", json!({ "title": "h", "rank": 8 }))))));
        assert!(!live.may_change(&change("z", Some(entity("z", json!({ "rank": 20 }))))));
        assert!(!live.may_change(&change("z", Some(entity("z", json!({ "title": "no rank" }))))));
        assert!(!live.may_change(&change("a", None)));
    }

    #[test]
    fn a_change_entering_leaving_or_inside_the_result_counts() {
        let collection = notes();
        let (live, _) = LiveQuery::start(&collection, by_rank(2.0, 5.0)).unwrap();
        // Enters the range; leaves it; changes inside it; disappears.
        assert!(live.may_change(&change("h", Some(entity("h", json!({ "rank": 3 }))))));
        assert!(live.may_change(&change("c", Some(entity("c", json!({ "rank": 9 }))))));
        assert!(live.may_change(&change("d", Some(entity("d", json!({ "title": "new", "rank": 3 }))))));
        assert!(live.may_change(&change("e", None)));
    }

    #[test]
    fn tombstones_count_only_for_queries_that_include_them() {
        let collection = notes();
        let mut tombstone = entity("z", json!({ "rank": 3 }));
        tombstone.deleted = true;
        let (live, _) = LiveQuery::start(&collection, by_rank(2.0, 5.0)).unwrap();
        assert!(!live.may_change(&change("z", Some(tombstone.clone()))));
        let (with_deleted, _) = LiveQuery::start(&collection, Query { include_deleted: true, ..by_rank(2.0, 5.0) }).unwrap();
        assert!(with_deleted.may_change(&change("z", Some(tombstone))));
    }

    #[test]
    fn a_query_over_ids_follows_the_id_range() {
        let collection = notes();
        let query = Query { gte: Some(IndexKey::String("b".into())), lt: Some(IndexKey::String("d".into())), ..Query::default() };
        let (live, result) = LiveQuery::start(&collection, query).unwrap();
        assert_eq!(ids(&result), ["b", "c"]);
        assert!(live.may_change(&change("bb", Some(entity("bb", json!({}))))));
        assert!(!live.may_change(&change("dd", Some(entity("dd", json!({}))))));
    }

    #[test]
    fn an_offset_makes_every_change_count() {
        let collection = notes();
        let (live, _) = LiveQuery::start(&collection, Query { offset: 1, ..by_rank(2.0, 5.0) }).unwrap();
        // "c" leaving the range shifts the page, though "c" is not on it.
        assert!(live.may_change(&change("c", Some(entity("c", json!({ "rank": 50 }))))));
    }

    #[test]
    fn rerun_follows_what_the_result_holds_now() {
        let mut collection = notes();
        let (mut live, _) = LiveQuery::start(&collection, Query { limit: Some(2), ..by_rank(2.0, 5.0) }).unwrap();
        collection.set("c", Some(entity("c", json!({ "rank": 9 }))));
        assert_eq!(ids(&live.rerun(&collection).unwrap()), ["d", "e"]);
        // "c" left the result: a later change to it outside the range passes by.
        assert!(!live.may_change(&change("c", Some(entity("c", json!({ "rank": 8 }))))));
        assert!(live.may_change(&change("e", Some(entity("e", json!({ "rank": 4, "title": "x" }))))));
    }

    #[test]
    fn watches_name_only_those_a_batch_may_alter() {
        let collection = notes();
        let mut watches = Watches::default();
        let low = watches.add(Target::Query(Box::new(LiveQuery::start(&collection, by_rank(0.0, 3.0)).unwrap().0)), "low");
        let high = watches.add(Target::Query(Box::new(LiveQuery::start(&collection, by_rank(7.0, 10.0)).unwrap().0)), "high");
        let record = watches.add(Target::Record("e".into()), "e");
        assert_eq!(watches.affected(&[change("e", None)]), [record]);
        assert_eq!(watches.affected(&[change("a", None), change("j", None)]), [low, high]);
        assert!(watches.affected(&[change("f", None)]).is_empty());
        assert_eq!(watches.remove(high).map(|(_, name)| name), Some("high"));
        assert!(watches.remove(high).is_none());
        assert_eq!(watches.affected(&[change("j", None), change("e", None)]), [record]);
        assert_eq!(watches.len(), 2);
    }

    /// A watch over the repository, run as the JS layer runs one: after each
    /// batch of committed changes, the watches the core names run again, and a
    /// result that differs from the last is "called back" (kept here).
    #[test]
    fn a_watch_follows_local_rolled_back_pulled_and_elsewhere_changes() {
        use crate::core::reconcile::{Outcome, Settled};
        use crate::core::Repository;
        use crate::store::MemoryStore;
        use futures::executor::block_on;
        use std::cell::{Cell, RefCell};
        use std::rc::Rc;

        /// The ids and titles a result shows.
        type Shown = Vec<(String, String)>;
        let schema = Schema::new([("notes", vec!["title", "rank"])]).unwrap();
        let clock = Cell::new(0.0);
        let clock = Box::new(move || {
            clock.set(clock.get() + 1.0);
            clock.get()
        });
        let repo = block_on(Repository::open(MemoryStore::new(schema.clone()), schema, clock)).unwrap();
        let shown = |entities: Vec<&Entity>| -> Shown {
            entities.iter().map(|e| (e.id.clone(), e.data()["title"].as_str().unwrap_or_default().to_owned())).collect()
        };
        let watches: Rc<RefCell<Watches<Vec<Shown>>>> = Rc::default();
        let (live, first) = repo.read("notes", |c| LiveQuery::start(c, by_rank(0.0, 5.0)).map(|(l, e)| (l, shown(e)))).unwrap().unwrap();
        let id = watches.borrow_mut().add(Target::Query(Box::new(live)), vec![first]);
        let reruns = Rc::new(Cell::new(0));
        let (feed, mirror, counted) = (watches.clone(), Rc::downgrade(&repo), reruns.clone());
        let subscriber = Rc::new(move |changes: &[Change]| {
            let Some(repo) = mirror.upgrade() else { return };
            let affected = feed.borrow().affected(changes);
            for id in affected {
                let mut watches = feed.borrow_mut();
                let Some((Target::Query(live), results)) = watches.get_mut(id) else { continue };
                counted.set(counted.get() + 1);
                let now = repo.read("notes", |c| shown(live.rerun(c).unwrap())).unwrap();
                if results.last() != Some(&now) {
                    results.push(now);
                }
            }
        });
        repo.subscribe(Some("notes"), subscriber).unwrap();
        let results = || watches.borrow_mut().get_mut(id).map(|(_, results)| results.clone()).unwrap();
        let note = |title: &str, rank: f64| json!({ "title": title, "rank": rank }).as_object().cloned().unwrap();
        let pair = |id: &str, title: &str| (id.to_owned(), title.to_owned());

        // Local: a write in the range, then one outside it, which runs nothing.
        block_on(repo.put("notes", Some("a".into()), note("v1", 1.0)).unwrap()).unwrap();
        block_on(repo.put("notes", Some("z".into()), note("far", 50.0)).unwrap()).unwrap();
        assert_eq!(results(), [vec![], vec![pair("a", "v1")]]);
        assert_eq!(reruns.get(), 1, "the write outside the range ran no query");

        // A patch of "a" that the store refuses, while another context's write lands:
        // the watch shows the optimistic patch, then the rollback.
        repo.store().fail_next_apply();
        let refused = repo.patch("notes", "a".into(), note("v2", 1.0)).unwrap();
        let from_elsewhere = Entity::new("c".into(), note("elsewhere", 3.0), 1.0);
        repo.absorb_elsewhere(&[("notes".into(), "c".into(), from_elsewhere)]);
        assert!(block_on(refused).is_err());
        let pulled = Entity::new("d".into(), note("pulled", 4.0), 1.0);
        repo.absorb(&[Settled { collection: "notes".into(), id: "d".into(), entity: Some(pulled), outcome: Outcome::Pulled }]);
        block_on(repo.delete("notes", "a".into()).unwrap()).unwrap();
        assert_eq!(
            results()[2..],
            [
                vec![pair("a", "v2"), pair("c", "elsewhere")],
                vec![pair("a", "v1"), pair("c", "elsewhere")],
                vec![pair("a", "v1"), pair("c", "elsewhere"), pair("d", "pulled")],
                vec![pair("c", "elsewhere"), pair("d", "pulled")],
            ]
        );
    }

    /// One write to the collection: an entity set to a rank, a title, or deleted.
    fn write() -> impl Strategy<Value = (u8, Option<(u8, bool)>)> {
        (0..14u8, proptest::option::of((0..14u8, any::<bool>())))
    }

    /// A range over the ids, the titles or the ranks, paged or not.
    fn query() -> impl Strategy<Value = Query> {
        let walk = prop_oneof![Just(None), Just(Some("title")), Just(Some("rank"))];
        (walk, 0..14u8, 0..14u8, proptest::option::of(0..5usize), 0..2usize, any::<bool>(), any::<bool>()).prop_map(
            |(index, low, high, limit, offset, reverse, include_deleted)| {
                let (low, high) = (low.min(high), low.max(high));
                let key = |n: u8| match index {
                    Some("rank") => IndexKey::Number(n as f64),
                    _ => IndexKey::String(((b'a' + n) as char).to_string()),
                };
                Query {
                    index: index.map(str::to_owned),
                    gte: Some(key(low)),
                    lte: Some(key(high)),
                    limit,
                    offset,
                    reverse,
                    include_deleted,
                    ..Query::default()
                }
            },
        )
    }

    proptest! {
        /// Whenever a batch alters a query's result (its ids or an entity in
        /// it), the watch says the batch may change it: skipping never misses.
        #[test]
        fn a_batch_that_alters_the_result_is_never_skipped(query in query(), batches in proptest::collection::vec(
            proptest::collection::vec(write(), 1..4), 1..6)) {
            let mut collection = notes();
            let (mut live, first) = LiveQuery::start(&collection, query).unwrap();
            let mut before: Vec<Entity> = first.into_iter().cloned().collect();
            for batch in batches {
                let mut changes = Vec::new();
                for (target, write) in batch {
                    let id = ((b'a' + target) as char).to_string();
                    let now = write.map(|(value, delete)| {
                        let mut entity = entity(&id, json!({ "title": ((b'a' + value) as char).to_string(), "rank": value }));
                        entity.deleted = delete;
                        entity
                    });
                    collection.set(&id, now.clone());
                    changes.push(change(&id, now));
                }
                let affected = changes.iter().any(|change| live.may_change(change));
                let after: Vec<Entity> = live.rerun(&collection).unwrap().into_iter().cloned().collect();
                if after != before {
                    prop_assert!(affected, "the result changed from {:?} to {:?} unnoticed", ids(&before.iter().collect::<Vec<_>>()),
                        ids(&after.iter().collect::<Vec<_>>()));
                }
                before = after;
            }
        }
    }
}
