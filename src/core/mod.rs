//! The pure core: everything that can be tested without a browser.

mod collection;
mod entity;
mod error;
mod key;
mod live;
mod mutation;
mod query;
pub mod reconcile;
mod repository;
pub mod rescue;
mod schema;
mod store;
pub mod sync;

pub use collection::{Collection, Tally};
pub use entity::{exact_integer, ConflictState, Data, DataText, Entity, SharedData, SyncStatus};
pub use error::{Error, Result};
pub use key::{cmp_utf16, IndexKey, PrimaryKey};
pub use live::{LiveQuery, Target, Watches};
pub use mutation::{apply_write, written_entity, Applied, Mutation, MutationId, Op, Write};
pub use query::{KeyRange, Query};
pub use repository::{Change, CommitObserver, Committed, MirrorObserver, Origin, Repository, Subscriber};
pub use schema::{CollectionSchema, IndexPath, IndexSpec, Schema};
pub use store::{collections_of, Meanwhile, Snapshot, Store, SyncMeta};
