//! Keeping the user's work when a database's storage dies under it (the browser
//! evicted it, or the user cleared the site's data): the mirror still holds every
//! entity with unpushed changes. They can be read, and written into a fresh database
//! as they stood: first the version the server last acknowledged (and its data, the
//! base of a merge), then the local data on top, queued as one `put` or `delete`, so
//! the push that follows is based on the right version and a conflict merges.

use std::rc::Rc;

use crate::core::entity::{Data, DataText, Entity, SyncStatus};
use crate::core::error::Result;
use crate::core::reconcile::{Policies, ServerAnswer};
use crate::core::repository::Repository;
use crate::core::store::Store;
use crate::core::sync::ServerChange;

/// The entities of `repository` whose changes no server has acknowledged (dirty,
/// syncing, in conflict or refused), tombstones included, as (collection, entity).
/// Reads the in-memory mirror only, so it answers after the store died.
pub fn unsynced<S: Store + 'static>(repository: &Repository<S>) -> Result<Vec<(String, Entity)>> {
    let mut found = Vec::new();
    for name in repository.schema().collections.keys() {
        repository.read(name, |collection| {
            let unsynced = collection.iter().filter(|e| e.sync_status != SyncStatus::Synced || e.pending > 0);
            found.extend(unsynced.map(|entity| (name.clone(), entity.clone())));
        })?;
    }
    Ok(found)
}

/// Writes `entities` (from [`unsynced`] of a database whose store died) into `into`,
/// each with its outbox entry; answers how many were written. Refuses, writing
/// nothing, if `into` does not declare one of their collections.
pub async fn rescue_into<S: Store + 'static>(into: &Rc<Repository<S>>, entities: Vec<(String, Entity)>) -> Result<usize> {
    for (collection, _) in &entities {
        into.schema().collection(collection)?;
    }
    // What the server last acknowledged, as a pull would have brought it; a database
    // that already holds the entity at that version or later keeps what it has.
    let acknowledged: Vec<ServerAnswer> = entities
        .iter()
        .filter(|(_, entity)| entity.version > 0)
        .map(|(collection, entity)| ServerAnswer::Pulled {
            id: entity.id.clone(),
            change: ServerChange {
                collection: collection.clone(),
                id: entity.remote_id.clone().unwrap_or_else(|| entity.id.clone()),
                data: DataText::of(entity.base().unwrap_or(&Data::new())),
                version: entity.version,
                server_updated_at: entity.server_updated_at.unwrap_or_default() as i64,
                deleted: entity.base().is_none(),
            },
        })
        .collect();
    if !acknowledged.is_empty() {
        let settled = into.store().settle(&acknowledged, &Policies::default(), into.now(), None, Box::new(|| ())).await?;
        into.absorb(&settled);
    }
    let mut written = 0;
    for (collection, entity) in entities {
        let exists = into.read(&collection, |c| c.get(&entity.id).is_some_and(|e| !e.deleted))?;
        let write = if entity.deleted {
            // A local delete of something the server never had leaves nothing to push.
            if !exists {
                continue;
            }
            into.delete(&collection, entity.id)?.await.map(drop)
        } else {
            into.put(&collection, Some(entity.id.clone()), entity.into_data())?.await.map(drop)
        };
        write?;
        written += 1;
    }
    Ok(written)
}
