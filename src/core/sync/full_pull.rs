//! A pull from the start lists every entity the server still holds. A server that
//! purged old tombstones (and answered 410 to cursors behind the purge) no longer
//! lists the entities they deleted, so once such a pull is complete, an entity that
//! was synced when it began and that it did not list is gone on the server: it is
//! settled as a pulled delete. Entities changed locally since are left to their push
//! (docs/sync.md, "Pull").
//!
//! The list is taken before the sync pushes: what its push acknowledges is on the
//! server. A database that held no synced entity then (a new one) has nothing to
//! find deleted, so its pull from the start may leave out the client's own pushes.

use std::collections::HashMap;

use super::remote::ServerChange;
use crate::core::entity::{Data, DataText, Entity, SyncStatus};
use crate::core::reconcile::ServerAnswer;
use crate::core::repository::Repository;
use crate::core::store::Store;

/// The live, synced entities when a pull from the start began, by (collection, local
/// id), with the version they had; each leaves the list when a page lists it.
#[derive(Debug, Default)]
pub struct FullPull {
    unlisted: HashMap<(String, String), u64>,
}

fn synced(entity: &Entity) -> bool {
    entity.sync_status == SyncStatus::Synced && entity.pending == 0 && entity.version > 0 && !entity.deleted
}

impl FullPull {
    /// Takes note of the synced entities before the sync pushes, and so before the
    /// first page is asked for: an entity acknowledged later (by this sync's push, or
    /// by another context) may be listed after the last page.
    pub fn begin<S: Store + 'static>(repository: &Repository<S>) -> Self {
        let mut unlisted = HashMap::new();
        for name in repository.schema().collections.keys() {
            let _ = repository.read(name, |collection| {
                for entity in collection.iter().filter(|entity| synced(entity)) {
                    unlisted.insert((name.clone(), entity.id.clone()), entity.version);
                }
            });
        }
        FullPull { unlisted }
    }

    /// Whether no entity was synced: then there is nothing to find deleted.
    pub fn is_empty(&self) -> bool {
        self.unlisted.is_empty()
    }

    /// Notes an entity a page of the pull listed (by its local id), whether or
    /// not the page's change is settled (one this context holds already is not).
    pub fn listed(&mut self, collection: &str, id: &str) {
        self.unlisted.remove(&(collection.to_owned(), id.to_owned()));
    }

    /// Once the pull is complete: a pulled delete for each entity no page listed that is
    /// still synced at the version it had, one version above it (a server that purged a
    /// tombstone gives an entity created again a version above the tombstone's).
    pub fn deletes<S: Store + 'static>(&self, repository: &Repository<S>) -> Vec<ServerAnswer> {
        let mut deletes = Vec::new();
        for ((name, id), version) in &self.unlisted {
            let _ = repository.read(name, |collection| {
                let Some(entity) = collection.get(id).filter(|entity| synced(entity) && entity.version == *version) else {
                    return;
                };
                let change = ServerChange {
                    collection: name.clone(),
                    id: entity.remote_id.clone().unwrap_or_else(|| entity.id.clone()),
                    data: DataText::of(&Data::new()),
                    version: entity.version + 1,
                    server_updated_at: entity.server_updated_at.unwrap_or_default() as i64,
                    deleted: true,
                };
                deletes.push(ServerAnswer::Pulled { id: id.clone(), change });
            });
        }
        deletes
    }
}
