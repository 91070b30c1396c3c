//! Reads: everything at open (the mirror's snapshot), and one entity, a query
//! or the outbox straight from storage. Each runs once more on a new
//! connection if the browser had taken the first away.

use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::KeyRange as IdbKeyRange;
use js_sys::{Array, Float64Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::error::js_error;
use super::pack::{append_entities, key_to_js, make_room, parse_text, unreadable, Packed};
use super::IdbStore;
use crate::browser::{self, LoadedChunk, Loader, StoredRecord};
use crate::core::{Entity, Error, IndexKey, Mutation, MutationId, Query, Result, Snapshot};
use crate::store::layout::{entity_store, entity_stores, ACKS_STORE, OUTBOX_STORE};

/// What a commit's message tells the other contexts of it, beside the keys
/// it stored (see [`IdbStore::take_commit_marks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CommitMarks {
    /// The commit mark it found, and the one it left.
    pub marks: (String, String),
    /// The doc it stored for each key (null where it wrote none), as JS
    /// strings, which need not enter the module on their way to the other
    /// contexts; `None` past the size a message carries, or when not asked for.
    pub docs: Option<Array>,
}

impl IdbStore {
    /// Every entity stored otherwise than this connection last saw it: what
    /// other contexts committed while this one heard nothing (frozen, in the
    /// back/forward cache, or opening). One read of the stores, not a reload;
    /// one read of the last commit mark alone while this connection's docs
    /// are trusted at it.
    pub async fn read_changed(&self) -> Result<Vec<(String, String, Entity)>> {
        let names: Vec<&String> = self.collections.keys().collect();
        let (stores, knowns, commits) = (&self.stores, &self.knowns, &self.commits);
        let changed = self
            .idempotent(|connection| async move {
                let changed = JsFuture::from(browser::changed_docs(connection.sys(), stores, knowns, commits)).await.map_err(js_error)?;
                Ok(Array::from(&changed))
            })
            .await?;
        let by_position: std::collections::HashMap<u32, &String> =
            names.iter().map(|name| (self.collections[*name].position, *name)).collect();
        let mut entities = Vec::with_capacity(changed.length() as usize);
        for entry in changed.iter() {
            let entry = Array::from(&entry);
            let (Some(position), Some(id), Some(doc)) = (entry.get(0).as_f64(), entry.get(1).as_string(), entry.get(2).as_string()) else {
                continue;
            };
            let Some(collection) = by_position.get(&(position as u32)) else { continue };
            entities.push(((*collection).clone(), id, parse_text(&doc, collection)?));
        }
        Ok(entities)
    }

    /// What the message telling the other contexts that the commit just made
    /// stored `keys` carries of it (see `Commits.take` in
    /// `src/browser/browser.js`): `None` unless exactly one commit of
    /// entities was made since the last call and `keys` name every entity
    /// it wrote. The docs it stored only `with_docs`: when another context
    /// is known to listen.
    pub fn take_commit_marks(&self, keys: &[(String, String)], with_docs: bool) -> Option<CommitMarks> {
        let (positions, ids) = self.entities_at(keys.iter().map(|(c, id)| (c.as_str(), id.as_str())));
        let taken = self.commits.take(&self.stores, &positions, &ids, with_docs);
        let taken = taken.dyn_ref::<Array>()?;
        let docs = taken.get(2).dyn_into::<Array>().ok();
        Some(CommitMarks { marks: (taken.get(0).as_string()?, taken.get(1).as_string()?), docs })
    }

    /// The entities `keys` name as stored now (those that exist), read in one
    /// transaction; later checked writes compare against what was read. This
    /// is how a context takes in what another one committed: with that
    /// commit's `marks` ([`IdbStore::take_commit_marks`] where it was made),
    /// this connection may then take every doc from what it knows again, as
    /// before the commit (see `Commits.advance` in `src/browser/browser.js`).
    /// With its `docs` too (one per key), when that commit is all this
    /// connection's maps miss, it takes them without reading them (see
    /// `toldDocs`): as that commit stored them, which the messages of later
    /// commits, if any, update in their turn.
    pub async fn read_stored(
        &self,
        keys: Vec<(String, String)>,
        marks: Option<&(String, String)>,
        docs: Option<&Array>,
    ) -> Result<Vec<(String, String, Entity)>> {
        let all = keys.len();
        let keys: Vec<(usize, (String, String))> =
            keys.into_iter().enumerate().filter(|(_, (collection, _))| self.collections.contains_key(collection)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // The message's docs, for the keys kept: only with its marks, which say whether they may be taken.
        let told: Option<Array> = match (marks, docs.filter(|docs| docs.length() as usize == all)) {
            (Some(_), Some(docs)) if keys.len() == all => Some(docs.clone()),
            (Some(_), Some(docs)) => Some(keys.iter().map(|&(i, _)| docs.get(i as u32)).collect()),
            _ => None,
        };
        let (positions, ids) = self.entities_at(keys.iter().map(|(_, (c, id))| (c.as_str(), id.as_str())));
        let marks: JsValue = match marks {
            Some((found, left)) => Array::of2(&found.into(), &left.into()).into(),
            None => JsValue::NULL,
        };
        let taken = told.and_then(|told| {
            browser::told_docs(&self.stores, &self.knowns, &positions, &ids, &self.commits, &marks, &told).dyn_into::<Array>().ok()
        });
        let docs = match taken {
            Some(docs) => docs,
            None => self.read_committed(keys.iter().map(|(_, (c, _))| c.as_str()), &positions, &ids, &marks).await?,
        };
        let mut stored = Vec::with_capacity(keys.len());
        let packed = Packed::docs_of(&docs, "entities")?;
        let docs = packed.docs(keys.len())?;
        for ((_, (collection, id)), doc) in keys.into_iter().zip(docs) {
            if let Some(doc) = doc {
                let entity = parse_text(doc, &collection)?;
                stored.push((collection, id, entity));
            }
        }
        Ok(stored)
    }

    /// [`IdbStore::read_stored`]'s read, in one transaction, of the entities
    /// at `positions`, of the collections `collections`.
    async fn read_committed(
        &self,
        collections: impl Iterator<Item = &str>,
        positions: &[u32],
        ids: &str,
        marks: &JsValue,
    ) -> Result<Array> {
        let mut scope = entity_stores(collections);
        scope.push(ACKS_STORE.to_owned());
        let scope = &scope;
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(scope.as_slice()).build()?;
            let read = browser::read_committed(tx.as_sys(), &self.stores, &self.knowns, positions, ids, &self.commits, marks);
            let docs = JsFuture::from(read).await.map_err(js_error)?;
            Ok(Array::from(&docs))
        })
        .await
    }

    /// Every entity of every declared collection, read chunk by chunk (see
    /// `Loader` in `src/browser/browser.js`); refills each `known` map and
    /// builds most records on the way.
    pub(super) async fn load_all(&self) -> Result<Snapshot> {
        let names: &Vec<&String> = &self.collections.keys().collect();
        let stores: &Array = &self.collections.values().map(|info| info.store.clone()).collect();
        let known: &Array = &self.collections.values().map(|info| info.known.clone()).collect();
        let records: &Array = &self.collections.values().map(|info| info.records.borrow().clone()).collect();
        let loaded = self
            .idempotent(|connection| async move {
                let loader = Loader::new(connection.sys(), stores, known, records, &self.commits).map_err(js_error)?;
                let mut loaded: Vec<Vec<Entity>> = names.iter().map(|_| Vec::new()).collect();
                loop {
                    let chunk = JsFuture::from(loader.next()).await.map_err(js_error)?;
                    if chunk.is_null() {
                        break Ok(loaded);
                    }
                    let chunk: LoadedChunk = chunk.unchecked_into();
                    let (index, json) = (chunk.store() as usize, chunk.json());
                    // Room for the rest of the store at once (a no-op after its first chunk).
                    loaded[index].reserve(chunk.left() as usize);
                    // The chunk's copy and the entities parsed out of it, somewhat
                    // smaller, fit in twice its length.
                    make_room(json.length() as usize * 2);
                    // One copy into wasm memory and one parse per chunk, while IndexedDB reads the next.
                    append_entities(&json.to_vec(), names[index], &mut loaded[index])?;
                }
            })
            .await?;
        let collections = names.iter().map(|name| (*name).clone()).zip(loaded).collect();
        Ok(Snapshot { client_id: self.client_id.clone(), collections })
    }

    pub(super) async fn read_entity(&self, collection: &str, id: &str) -> Result<Option<Entity>> {
        self.schema.collection(collection)?;
        let store_name = &entity_store(collection);
        let doc = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction([store_name.as_str(), ACKS_STORE]).build()?;
                browser::read_acks(tx.as_sys());
                let store = tx.object_store(store_name)?;
                let record: Option<JsValue> = store.get(id).primitive()?.await?;
                record.map(|record| settled_doc(tx.as_sys(), store_name, &record, collection)).transpose()
            })
            .await?;
        doc.map(|doc| parse_text(&doc, collection)).transpose()
    }

    pub(super) async fn read_query(&self, collection: &str, query: &Query) -> Result<Vec<Entity>> {
        let range = &query.range()?;
        let schema = self.schema.collection(collection)?;
        match &query.index {
            None => range.id_bounds().map(drop)?,
            Some(index) => {
                schema.index(index).ok_or_else(|| Error::InvalidArgument(format!("query: no index {index:?}")))?;
            }
        }
        let store_name = &entity_store(collection);
        let docs = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction([store_name.as_str(), ACKS_STORE]).build()?;
                browser::read_acks(tx.as_sys());
                let store = tx.object_store(store_name)?;
                let js_range = key_range(range);
                let records = match &query.index {
                    None => all(match js_range {
                        Some(r) => store.get_all().with_query::<JsValue, _>(r).primitive()?.await,
                        None => store.get_all().primitive()?.await,
                    }),
                    Some(index_name) => {
                        let index = store.index(index_name)?;
                        all(match js_range {
                            Some(r) => index.get_all().with_query::<JsValue, _>(r).primitive()?.await,
                            None => index.get_all().primitive()?.await,
                        })
                    }
                }?;
                records.iter().map(|record| settled_doc(tx.as_sys(), store_name, record, collection)).collect::<Result<Vec<_>>>()
            })
            .await?;
        let mut entities = docs.iter().map(|doc| parse_text(doc, collection)).collect::<Result<Vec<_>>>()?;
        if query.reverse {
            entities.reverse();
        }
        Ok(query.page(entities.into_iter()))
    }

    pub(super) async fn read_outbox(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let (keys, docs) = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(OUTBOX_STORE).build()?;
                let read = JsFuture::from(browser::read_outbox(tx.as_sys(), after as f64, limit)).await.map_err(js_error)?;
                let read = Array::from(&read);
                Ok((Float64Array::from(read.get(0)).to_vec(), Packed::of(read.get(1).unchecked_ref(), "outbox")?))
            })
            .await?;
        keys.iter()
            .zip(docs.docs(keys.len())?)
            .map(|(key, doc)| {
                let doc = doc.ok_or_else(|| unreadable("outbox", "it has no readable `doc`"))?;
                let mut mutation: Mutation = parse_text(doc, "outbox")?;
                mutation.mutation_id = *key as MutationId;
                Ok(mutation)
            })
            .collect()
    }

    /// [`crate::core::Store::pushable_after`]: the keys of the entries past
    /// `after`, then the entries themselves from those this connection
    /// appended, if it kept every one, or else from their records. Where it
    /// kept none past `after` (a backlog queued before it opened, or by
    /// another context), the records are read at once.
    pub(super) async fn read_pushable(&self, after: MutationId, limit: usize) -> Result<Vec<Mutation>> {
        if !self.appended.holds_after(after) {
            return self.read_outbox(after, limit).await;
        }
        let keys: Vec<MutationId> = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(OUTBOX_STORE).build()?;
                let outbox = tx.object_store(OUTBOX_STORE)?;
                let range = IdbKeyRange::LowerBound(after as f64, true);
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                let keys = outbox.get_all_keys::<f64>().with_query::<f64, _>(range).with_limit(limit).primitive()?.await?;
                Ok(keys.map(|key| key.map(|key| key as MutationId)).collect::<std::result::Result<_, _>>()?)
            })
            .await?;
        match self.appended.take(after, &keys, keys.len() < limit) {
            Some(entries) => Ok(entries),
            None => self.read_outbox(after, limit).await,
        }
    }

    pub(super) async fn count_outbox(&self) -> Result<usize> {
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(OUTBOX_STORE).build()?;
            let store = tx.object_store(OUTBOX_STORE)?;
            let count: u32 = store.count().primitive()?.await?;
            Ok(count as usize)
        })
        .await
    }
}

/// The doc of `record`, read from `store` in `tx`, as it stands: with the
/// acknowledgement log `tx` read first applied (see `settledDoc` in
/// `src/browser/browser.js`).
pub(super) fn settled_doc(tx: &web_sys::IdbTransaction, store: &str, record: &JsValue, place: &str) -> Result<String> {
    let id = record.unchecked_ref::<StoredRecord>().id();
    let id = id.as_string().ok_or_else(|| unreadable(place, "its key is not a string"))?;
    browser::settled_doc(tx, store, &id, record).ok_or_else(|| unreadable(place, "it has no readable `doc`"))
}

/// Collects the records of a `getAll` request.
pub(super) fn all<I>(records: std::result::Result<I, indexed_db_futures::error::Error>) -> Result<Vec<JsValue>>
where
    I: Iterator<Item = std::result::Result<JsValue, indexed_db_futures::error::Error>>,
{
    Ok(records?.collect::<std::result::Result<Vec<_>, _>>()?)
}

fn key_range(range: &crate::core::KeyRange) -> Option<IdbKeyRange<JsValue>> {
    use std::ops::Bound::*;
    let bound = |b: &std::ops::Bound<IndexKey>| match b {
        Included(key) => Some((key_to_js(key), false)),
        Excluded(key) => Some((key_to_js(key), true)),
        Unbounded => None,
    };
    match (bound(&range.lower), bound(&range.upper)) {
        (None, None) => None,
        (Some((low, open)), None) => Some(IdbKeyRange::LowerBound(low, open)),
        (None, Some((high, open))) => Some(IdbKeyRange::UpperBound(high, open)),
        (Some((low, low_open)), Some((high, high_open))) => Some(IdbKeyRange::Bound(low, low_open, high, high_open)),
    }
}
