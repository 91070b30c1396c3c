//! The checked-write pipeline behind `apply`: each write computed on the
//! entity as this connection last saw it stored, sent to the JS half in runs,
//! and checked by the transaction itself; computed again on what is stored
//! when another context changed an entity; read back after a lost connection
//! so that it is stored exactly once.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::connection::Connection;
use super::error::js_error;
use super::pack::{parse_text, Outgoing, Packed};
use super::IdbStore;
use crate::browser::{self, WriteBatch};
#[cfg(feature = "fault-injection")]
use crate::browser::Fault;
use crate::core::{apply_write, Applied, Entity, Error, Result, Write};

/// How many writes a batch computes before it sends their requests: IndexedDB
/// stores the first ones while the next ones are computed.
const SEND_EVERY: usize = 500;

/// Each entity a batch touches, as stored (`None`: there is none), by
/// collection and id. Boxed: in a bulk write of new entities every slot is
/// empty, and an entity in place would make each slot its size.
pub(super) type Entities<'w> = HashMap<(&'w str, &'w str), Option<Box<Entity>>>;

/// How a write transaction failed.
struct Failed {
    error: Error,
    /// What was sent, when the transaction got that far; its outcome is
    /// then unknown if the connection was lost.
    sent: Option<Sent>,
}

/// The batch a transaction carried and the outcome computed for it.
struct Sent {
    batch: WriteBatch,
    results: Vec<Result<Applied>>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed { error, sent: None }
    }
}

/// The failure a test asked the next transaction to meet, if any; always none
/// without the `fault-injection` feature, where this is empty and its checks
/// compile to nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Injected {
    #[cfg(feature = "fault-injection")]
    fault: Option<Fault>,
}

impl Injected {
    /// Whether the transaction is to fail by a constraint violation in `meta`.
    pub(super) fn constraint(self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.fault == Some(Fault::Constraint);
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    /// Hands the failure to the batch that carries the transaction.
    fn apply_to(self, _batch: &WriteBatch) {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = self.fault {
            _batch.inject(fault.name());
        }
    }
}

impl IdbStore {
    /// The failure a test asked the next transaction to meet, taken.
    pub(super) fn take_injected(&self) -> Injected {
        Injected {
            #[cfg(feature = "fault-injection")]
            fault: self.fault.take(),
        }
    }

    /// Writes `writes` in one transaction on the connection. If the browser
    /// closed the connection meanwhile, a new one is opened, and:
    /// - if the transaction was never started, the writes go on the new one;
    /// - if it was cut off, the entities it wrote are read back: all of them
    ///   as it left them means it committed (its outcome stands); all as they
    ///   were before means it did not (the writes go on the new connection).
    ///   Either way each write is stored once. Anything else (another tab
    ///   wrote the same entities in between) fails the call.
    pub(super) async fn apply_writes(&self, writes: &[Write]) -> Result<Vec<Result<Applied>>> {
        self.check_open()?;
        let connection = self.connection();
        let failed = match self.write(&connection, writes).await {
            Ok(results) => return Ok(results),
            Err(failed) => failed,
        };
        let connection = self.recover(&connection, failed.error).await?;
        let Some(Sent { batch, results }) = failed.sent else {
            return self.write(&connection, writes).await.map_err(|failed| failed.error);
        };
        let tx = self.begin_write(&connection, writes)?;
        match JsFuture::from(batch.outcome(&tx)).await.map_err(js_error)? {
            outcome if outcome.is_null() => self.write(&connection, writes).await.map_err(|failed| failed.error),
            mutation_ids => Ok(with_mutation_ids(results, &mutation_ids)),
        }
    }

    /// Computes `writes` on `current` (each touched entity as believed or read
    /// stored) and adds the records to `batch`, which sends them as it goes.
    /// With `check`, the first write to each entity also checks that the
    /// entity is still stored as `known` says. Returns each write's outcome;
    /// on an error the batch is abandoned, having written nothing.
    fn prepare<'w>(
        &self,
        writes: &'w [Write],
        current: Entities<'w>,
        batch: &WriteBatch,
        check: bool,
    ) -> Result<Vec<Result<Applied>>> {
        let results = self.compute(writes, current, batch, check);
        if results.is_err() {
            batch.abandon();
        }
        results
    }

    /// `prepare`, but for abandoning the batch on an error.
    pub(super) fn compute<'w>(
        &self,
        writes: &'w [Write],
        mut current: Entities<'w>,
        batch: &WriteBatch,
        check: bool,
    ) -> Result<Vec<Result<Applied>>> {
        // `current` holds each touched entity once. When no entity is written
        // twice (a single write, a bulk put of new entities), every write is
        // the first and the last to its entity: nothing is kept between writes.
        let repeated = current.len() < writes.len();
        let mut checked: HashSet<(&'w str, &'w str)> = HashSet::with_capacity(if repeated { current.len() } else { 0 });
        let mut results = Vec::with_capacity(writes.len());
        let mut outgoing = Outgoing::default();
        for write in writes {
            let key = (write.collection.as_str(), write.id.as_str());
            let first = !repeated || checked.insert(key);
            let result = apply_write(current.get(&key).and_then(Option::as_deref), write);
            if let Ok(applied) = &result {
                outgoing.write(self.collection_info(&write.collection)?, applied, check && first)?;
                if repeated {
                    current.insert(key, Some(Box::new(applied.entity.clone())));
                }
            } else if check && first {
                // Refused on what was believed (say, a patch of a missing
                // entity): the belief must hold for the refusal to stand.
                outgoing.check(self.collection_info(&write.collection)?, &write.id);
            }
            results.push(result);
            if results.len() % SEND_EVERY == 0 {
                outgoing.send(batch)?;
            }
        }
        outgoing.send(batch)?;
        Ok(results)
    }

    /// Each entity `writes` touch, as this connection last saw it stored.
    pub(super) fn believed<'w>(&self, writes: &'w [Write]) -> Result<Entities<'w>> {
        let mut believed = HashMap::with_capacity(writes.len());
        let mut keys = Vec::with_capacity(writes.len());
        for write in writes {
            let key = (write.collection.as_str(), write.id.as_str());
            if let Entry::Vacant(slot) = believed.entry(key) {
                self.collection_info(&write.collection)?;
                slot.insert(None);
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Ok(believed);
        }
        // One call for all: a call per write would cost more than the lookups.
        let (positions, ids) = self.entities_at(keys.iter().copied());
        let packed = Packed::docs_of(&browser::known_docs(&self.knowns, &positions, &ids), "entities")?;
        for (key, doc) in keys.iter().zip(packed.docs(keys.len())?) {
            if let Some(doc) = doc {
                believed.insert(*key, Some(Box::new(parse_text(doc, key.0)?)));
            }
        }
        Ok(believed)
    }

    /// Begins a write transaction on `connection` over the entity stores
    /// `writes` touch, plus the outbox and `meta`.
    pub(super) fn begin_write(&self, connection: &Connection, writes: &[Write]) -> Result<JsValue> {
        // A few collections at most: a search of those met beats a sort.
        let mut positions: Vec<u32> = Vec::new();
        for write in writes {
            let position = self.collection_info(&write.collection)?.position;
            if !positions.contains(&position) {
                positions.push(position);
            }
        }
        browser::begin_write(connection.sys(), &self.stores, &positions).map_err(js_error)
    }

    /// One go at `apply` on `connection`: computes the writes on the entities
    /// as this connection last saw them stored, and lets the transaction check
    /// that they still are (one check of the last commit's mark while the
    /// `known` maps hold every entity, else one per entity); if another
    /// tab or worker changed one, computes them again on the entities read
    /// inside a second transaction.
    async fn write(&self, connection: &Connection, writes: &[Write]) -> std::result::Result<Vec<Result<Applied>>, Failed> {
        let injected = self.take_injected();
        let believed = self.believed(writes)?;
        let tx = self.begin_write(connection, writes)?;
        let batch = WriteBatch::new(&tx, &self.stores, &self.knowns, &self.commits);
        injected.apply_to(&batch);
        let results = self.prepare(writes, believed, &batch, true)?;
        match JsFuture::from(batch.run()).await {
            Ok(stale) if stale.is_null() => {}
            Ok(mutation_ids) => return Ok(with_mutation_ids(results, &mutation_ids)),
            Err(error) => return Err(Failed { error: js_error(error), sent: Some(Sent { batch, results }) }),
        }

        // Another tab or worker changed one of these entities: read them
        // inside the transaction, then compute on what is stored.
        let tx = self.begin_write(connection, writes)?;
        let mut keys: Vec<(&str, &str)> = writes.iter().map(|w| (w.collection.as_str(), w.id.as_str())).collect();
        keys.sort_unstable();
        keys.dedup();
        let (positions, ids) = self.entities_at(keys.iter().copied());
        let docs = JsFuture::from(browser::read_docs(&tx, &self.stores, &self.knowns, &positions, &ids)).await.map_err(js_error)?;
        let packed = Packed::docs_of(docs.unchecked_ref(), "entities")?;
        let mut stored = HashMap::with_capacity(keys.len());
        for (key, doc) in keys.iter().zip(packed.docs(keys.len())?) {
            stored.insert(*key, doc.map(|doc| parse_text(doc, key.0).map(Box::new)).transpose()?);
        }
        let batch = WriteBatch::new(&tx, &self.stores, &self.knowns, &self.commits);
        injected.apply_to(&batch);
        let results = self.prepare(writes, stored, &batch, false)?;
        match JsFuture::from(batch.run()).await {
            Ok(mutation_ids) => Ok(with_mutation_ids(results, &mutation_ids)),
            Err(error) => Err(Failed { error: js_error(error), sent: Some(Sent { batch, results }) }),
        }
    }
}

/// Fills in the outbox keys the store assigned, in order, to the writes that applied.
fn with_mutation_ids(mut results: Vec<Result<Applied>>, mutation_ids: &JsValue) -> Vec<Result<Applied>> {
    let mutation_ids = Array::from(mutation_ids);
    let mut mutation_ids = mutation_ids.iter();
    for applied in results.iter_mut().flatten() {
        applied.mutation.mutation_id = mutation_ids.next().and_then(|id| id.as_f64()).unwrap_or_default() as u64;
    }
    results
}
