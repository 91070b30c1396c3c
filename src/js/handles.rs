//! The shared handles of one open database: its repository and, when it
//! syncs, its engine. The database, its collections, its events and its
//! syncer all name them from here, so that none imports another for them.

use std::rc::Rc;

use crate::core::sync::SyncEngine;
use crate::core::Repository;
use crate::remote::JsRemote;
use crate::store::browser::BrowserStore;

pub type Repo = Rc<Repository<BrowserStore>>;

pub type Engine = Rc<SyncEngine<BrowserStore, JsRemote>>;
