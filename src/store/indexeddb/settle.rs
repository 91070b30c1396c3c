//! Recording what sync brings back: the core's settlement plan carried out in
//! one transaction with the reads it was made on, and the sync bookkeeping
//! (pull cursor, retry schedule) kept in `meta`.

use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use indexed_db_futures::KeyRange as IdbKeyRange;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::connection::Connection;
use super::error::js_error;
use super::pack::{encode, parse_doc, parse_text, Outgoing, Packed};
use super::read::all;
use super::IdbStore;
use crate::browser::{self, StoredRecord, WriteBatch};
use crate::core::reconcile::{plan, Policies, Reads, ServerAnswer, Settled, Stored};
use crate::core::{Error, Meanwhile, Mutation, MutationId, Result, SyncMeta};
use crate::store::layout::{entity_stores, ACKS_STORE, CURSOR_KEY, META_STORE, OUTBOX_STORE, SYNC_KEY};

/// The fewest acknowledgements a batch logs rather than writes into each
/// entity's record (see `crate::store::layout`): one record in place of many
/// `put`s pays for the fold that follows only when there are many. Pushes of
/// a few writes, as an app makes them while its user works, write the
/// records as before.
const LOG_ACKS_FROM: usize = 100;

impl IdbStore {
    /// Records the answers in one transaction. If the connection was lost
    /// meanwhile, the call fails and a new connection is opened for the next
    /// one. Whether the transaction committed is left to the next sync to find
    /// out: it meets the same answers again, and they are idempotent (an
    /// answer to a push counts only while its mutation is queued; a pull
    /// starts again from the cursor stored with the changes it covers).
    /// `meanwhile` is taken and called once the writes are sent.
    pub(super) async fn record_answers(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: &mut Option<Meanwhile<'_>>,
    ) -> Result<Vec<Settled>> {
        self.check_open()?;
        let connection = self.connection();
        match self.record(&connection, answers, policies, now, cursor, meanwhile).await {
            Err(error) => {
                self.recover(&connection, error.clone()).await?;
                Err(error)
            }
            settled => settled,
        }
    }

    /// `record_answers` on `connection`, by the rule of [`crate::core::Store::settle`].
    async fn record(
        &self,
        connection: &Connection,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
        meanwhile: &mut Option<Meanwhile<'_>>,
    ) -> Result<Vec<Settled>> {
        let reads = Reads::of(answers, |name| self.collections.contains_key(name));
        let mut names = entity_stores(reads.entities.iter().map(|(collection, _)| collection.as_str()));
        names.extend([OUTBOX_STORE.to_owned(), META_STORE.to_owned(), ACKS_STORE.to_owned()]);
        let tx = connection.db.transaction(names.as_slice()).with_mode(TransactionMode::Readwrite).build()?;
        let outbox = tx.object_store(OUTBOX_STORE)?;
        let meta = tx.object_store(META_STORE)?;

        // Every read is sent before the first is awaited: which of the answered
        // mutations are still queued (one range read over them), then the
        // entities, in one call that reads them all (see `readDocs`).
        let queued_keys = match (reads.mutations.first(), reads.mutations.last()) {
            (Some(first), Some(last)) => {
                let range = IdbKeyRange::Bound(*first as f64, false, *last as f64, false);
                Some(outbox.get_all_keys::<f64>().with_query::<f64, _>(range).primitive()?)
            }
            _ => None,
        };
        let docs = if reads.entities.is_empty() {
            Array::new()
        } else {
            let (positions, ids) = self.entities_at(reads.entities.iter().map(|(c, id)| (c.as_str(), id.as_str())));
            let read = browser::current_docs(tx.as_sys(), &self.stores, &self.knowns, &positions, &ids, &self.commits);
            JsFuture::from(read).await.map_err(js_error)?.unchecked_into()
        };
        let packed = Packed::docs_of(&docs, "entities")?;
        let docs = packed.docs(reads.entities.len())?;
        let mut stored = Stored::default();
        stored.entities.reserve(reads.entities.len());
        for ((collection, id), doc) in reads.entities.into_iter().zip(docs) {
            let entity = doc.map(|doc| parse_text(doc, &collection)).transpose()?;
            stored.entities.insert((collection, id), entity);
        }
        // Outbox keys in order, the queued among the answered mutations.
        let queued: Vec<MutationId> = match queued_keys {
            Some(request) => request.await?.map(|key| key.map(|key| key as MutationId)).collect::<std::result::Result<_, _>>()?,
            None => Vec::new(),
        };
        // By insertion: collecting would sort first, a sort more in the module (see bench/README.md).
        stored.queued.extend(queued.iter().copied().filter(|id| reads.mutations.binary_search(id).is_ok()));

        let plan = plan(answers, stored, policies, now, cursor);
        // Answered entries leave in runs of neighbours: one request per run.
        for (first, last) in runs_of(&queued, &plan.remove) {
            outbox.delete::<f64, _>(IdbKeyRange::Bound(first as f64, false, last as f64, false)).primitive()?;
        }
        if !plan.superseded.is_empty() {
            // Conflicts are rare, so finding an entity's entries by reading the
            // outbox beats keeping an index on every outbox row. The plan's
            // appends come after this read, so they are not among them.
            for record in all(outbox.get_all().primitive()?.await)? {
                let mutation: Mutation = parse_doc(&record, "outbox")?;
                let Some(mutation_id) = record.unchecked_ref::<StoredRecord>().mutation_id() else { continue };
                if plan.supersedes(&mutation.collection, &mutation.id) {
                    outbox.delete(mutation_id).primitive()?;
                }
            }
        }
        if let Some(cursor) = &plan.cursor {
            meta.put(cursor.as_str()).with_key(CURSOR_KEY).primitive()?;
        }
        if self.take_injected().constraint() {
            let _ = meta.add("duplicate").with_key("clientId").primitive();
        }
        // The appends and the entities go to the JS half packed, as a local
        // write's do: a request per record made from Rust costs several times
        // what IndexedDB takes to store it. The batch commits the transaction
        // once everything is sent, and brings the `known` maps up to date
        // once it is committed (later checked writes compare against them).
        let mut outgoing = Outgoing::default();
        for mutation in &plan.append {
            outgoing.append(mutation)?;
        }
        // Acknowledgements are made on the docs the `known` maps hold: read
        // in this transaction, or checked by its mark.
        let log_acks = plan.acknowledged.iter().filter(|only| **only).count() >= LOG_ACKS_FROM;
        for ((collection, entity), acknowledged) in plan.entities.iter().zip(&plan.acknowledged) {
            let info = self.collection_info(collection)?;
            if log_acks && *acknowledged {
                outgoing.acknowledge(info, entity)?;
            } else {
                outgoing.store(info, entity)?;
            }
        }
        let batch = WriteBatch::new(tx.as_sys(), &self.stores, &self.knowns, &self.commits);
        if let Err(error) = outgoing.send(&batch) {
            batch.abandon();
            return Err(error);
        }
        let committed = JsFuture::from(batch.run());
        // The commit takes place in the browser: this thread is free meanwhile.
        if let Some(meanwhile) = meanwhile.take() {
            meanwhile();
        }
        committed.await.map_err(js_error)?;
        self.appended.forget(|entry| plan.remove.binary_search(&entry.mutation_id).is_ok() || plan.supersedes(&entry.collection, &entry.id));
        Ok(plan.settled)
    }

    /// Folds the whole acknowledgement log into the entities' records now, one
    /// record of the log per transaction, as happens in the background a
    /// moment after the last batch was logged. No entity changes as it stands.
    pub async fn fold_acks(&self) -> Result<()> {
        self.check_open()?;
        while JsFuture::from(browser::fold_acks(self.connection().sys())).await.map_err(js_error)?.as_bool() == Some(true) {}
        Ok(())
    }

    /// [`crate::core::Store::note_failed_push`]: each entry still queued is read,
    /// counted and written back in one transaction.
    pub(super) async fn count_failed_push(&self, mutation_ids: &[MutationId], error: &str) -> Result<()> {
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(OUTBOX_STORE).with_mode(TransactionMode::Readwrite).build()?;
            let outbox = tx.object_store(OUTBOX_STORE)?;
            let mut reads = Vec::with_capacity(mutation_ids.len());
            for mutation_id in mutation_ids {
                reads.push(outbox.get::<JsValue, _, _>(*mutation_id as f64).primitive()?);
            }
            for read in reads {
                let Some(record) = read.await? else { continue };
                let mut mutation: Mutation = parse_doc(&record, "outbox")?;
                mutation.attempts += 1;
                mutation.last_error = Some(error.to_owned());
                // The record keeps its key (`mutationId`); only its doc changes.
                js_sys::Reflect::set(&record, &"doc".into(), &encode(&mutation, "a mutation")?.into())
                    .map_err(|_| Error::Storage("cannot update an outbox record".into()))?;
                outbox.put(record).primitive()?;
            }
            Ok(tx.commit().await?)
        })
        .await
    }

    pub(super) async fn read_sync_meta(&self) -> Result<SyncMeta> {
        let (cursor, saved) = self
            .idempotent(|connection| async move {
                let tx = connection.db.transaction(META_STORE).build()?;
                let meta = tx.object_store(META_STORE)?;
                let cursor: Option<String> = meta.get(CURSOR_KEY).primitive()?.await?;
                let saved: Option<String> = meta.get(SYNC_KEY).primitive()?.await?;
                Ok((cursor, saved))
            })
            .await?;
        let saved: SyncMeta = match saved {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Storage(format!("unreadable sync state: {e}")))?,
            None => SyncMeta::default(),
        };
        Ok(SyncMeta { cursor, ..saved })
    }

    pub(super) async fn write_sync_meta(&self, saved: &SyncMeta) -> Result<()> {
        let text = &serde_json::to_string(&SyncMeta { cursor: None, ..saved.clone() })
            .map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))?;
        self.idempotent(|connection| async move {
            let tx = connection.db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build()?;
            let meta = tx.object_store(META_STORE)?;
            meta.put(text.as_str()).with_key(SYNC_KEY).primitive()?;
            Ok(tx.commit().await?)
        })
        .await
    }
}

/// The runs of `keys` (outbox keys, ascending) whose every key is in `remove`
/// (ascending too): deleting each run as a key range deletes exactly the
/// entries in `remove`, since no other entry lies between two neighbouring keys.
fn runs_of(keys: &[MutationId], remove: &[MutationId]) -> Vec<(MutationId, MutationId)> {
    let mut runs: Vec<(MutationId, MutationId)> = Vec::new();
    let mut extending = false;
    for key in keys {
        if remove.binary_search(key).is_err() {
            extending = false;
        } else if extending {
            runs.last_mut().expect("a run is open").1 = *key;
        } else {
            runs.push((*key, *key));
            extending = true;
        }
    }
    runs
}
