//! Recording what sync brings back: the core's settlement plan carried out in
//! one transaction with the reads it was made on, and the sync bookkeeping
//! (pull cursor, retry schedule) kept in `meta`.

use std::collections::BTreeSet;

use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::connection::Connection;
use super::pack::{encode, index_keys, parse_doc};
use super::read::all;
use super::IdbStore;
use crate::browser::{self, StoredRecord};
use crate::core::reconcile::{plan, Policies, Reads, ServerAnswer, Settled, Stored};
use crate::core::{Error, Mutation, MutationId, Result, SyncMeta};
use crate::store::layout::{entity_store, CURSOR_KEY, META_STORE, OUTBOX_STORE, SYNC_KEY};

impl IdbStore {
    /// Records the answers in one transaction. If the connection was lost
    /// meanwhile, the call fails and a new connection is opened for the next
    /// one. Whether the transaction committed is left to the next sync to find
    /// out: it meets the same answers again, and they are idempotent (an
    /// answer to a push counts only while its mutation is queued; a pull
    /// starts again from the cursor stored with the changes it covers).
    pub(super) async fn record_answers(
        &self,
        answers: &[ServerAnswer],
        policies: &Policies,
        now: f64,
        cursor: Option<&str>,
    ) -> Result<Vec<Settled>> {
        self.check_open()?;
        let connection = self.connection();
        match self.record(&connection, answers, policies, now, cursor).await {
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
    ) -> Result<Vec<Settled>> {
        let reads = Reads::of(answers, |name| self.collections.contains_key(name));
        let mut names: BTreeSet<String> = reads.entities.iter().map(|(collection, _)| entity_store(collection)).collect();
        names.insert(OUTBOX_STORE.to_owned());
        names.insert(META_STORE.to_owned());
        let names: Vec<String> = names.into_iter().collect();
        let tx = connection.db.transaction(names.as_slice()).with_mode(TransactionMode::Readwrite).build()?;
        let outbox = tx.object_store(OUTBOX_STORE)?;
        let meta = tx.object_store(META_STORE)?;

        // Every read is sent before the first is awaited.
        let mut entity_reads = Vec::with_capacity(reads.entities.len());
        for (collection, id) in &reads.entities {
            let store = tx.object_store(&entity_store(collection))?;
            entity_reads.push(store.get::<JsValue, _, _>(id.as_str()).primitive()?);
        }
        let mut queued_reads = Vec::with_capacity(reads.mutations.len());
        for mutation_id in &reads.mutations {
            queued_reads.push(outbox.count().with_query(*mutation_id as f64).primitive()?);
        }
        let mut stored = Stored::default();
        for ((collection, id), read) in reads.entities.into_iter().zip(entity_reads) {
            let record: Option<JsValue> = read.await?;
            let entity = record.map(|record| parse_doc(&record, &collection)).transpose()?;
            stored.entities.insert((collection, id), entity);
        }
        for (mutation_id, read) in reads.mutations.into_iter().zip(queued_reads) {
            if read.await? > 0 {
                stored.queued.insert(mutation_id);
            }
        }

        let plan = plan(answers, stored, policies, now, cursor);
        for mutation_id in &plan.remove {
            outbox.delete(*mutation_id as f64).primitive()?;
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
        for mutation in &plan.append {
            outbox.add(browser::outbox_record(&encode(mutation, "a mutation")?)).primitive()?;
        }
        let mut written = Vec::with_capacity(plan.entities.len());
        for (collection, entity) in &plan.entities {
            let info = self.collection_info(collection)?;
            let doc = encode(entity, "an entity")?;
            let record = browser::entity_record(&entity.id, &doc, &index_keys(entity, &info.index_fields));
            tx.object_store(&entity_store(collection))?.put(record).primitive()?;
            written.push((info, &entity.id, doc));
        }
        if let Some(cursor) = &plan.cursor {
            meta.put(cursor.as_str()).with_key(CURSOR_KEY).primitive()?;
        }
        if self.take_injected().constraint() {
            let _ = meta.add("duplicate").with_key("clientId").primitive();
        }
        // Commit only once every request has settled (see `apply`): requests
        // settle in order and a failure aborts the rest, so a last read that
        // succeeds means every write before it did.
        let _: u32 = meta.count().primitive()?.await?;
        tx.commit().await?;
        // Later checked writes compare against what is stored now.
        for (info, id, doc) in written {
            info.known.set(&JsValue::from_str(id), &doc.into());
        }
        Ok(plan.settled)
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
