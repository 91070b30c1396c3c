//! The store's connection to its database, and what it does when the browser
//! takes a connection away: a new one at the same version, unless the database
//! itself is gone (then `DatabaseClosed` for good, never an empty database
//! quietly created again under the app).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::IdbStore;
use crate::core::{Error, Result};
use crate::store::layout::META_STORE;

/// One connection to the database, and the handler that watches it.
pub(super) struct Connection {
    pub(super) db: Database,
    _on_version_change: Closure<dyn FnMut()>,
}

/// What to do when another context upgrades the database: the app's
/// handler (which commits what is queued, then closes the store), else close
/// at once.
pub(super) type UpgradeHandler = Rc<RefCell<Option<Rc<dyn Fn()>>>>;

impl Connection {
    /// Wraps `db`. Another tab upgrading the schema needs this connection
    /// gone: `upgrade` is told, or else the connection is closed at once; from
    /// then on `closed` says why to every later call.
    pub(super) fn new(db: Database, closed: &Rc<RefCell<Option<String>>>, upgrade: &UpgradeHandler) -> Rc<Connection> {
        let sys: web_sys::IdbDatabase = db.as_sys().clone().unchecked_into();
        let on_version_change = {
            let closed = closed.clone();
            let upgrade = upgrade.clone();
            let sys = sys.clone();
            Closure::<dyn FnMut()>::new(move || {
                let handler = upgrade.borrow_mut().take();
                match handler {
                    // The other context waits (its open is blocked) until this one closes.
                    Some(handler) => handler(),
                    None => {
                        sys.close();
                        *closed.borrow_mut() = Some(UPGRADED_ELSEWHERE.to_owned());
                    }
                }
            })
        };
        sys.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Rc::new(Connection { db, _on_version_change: on_version_change })
    }

    pub(super) fn sys(&self) -> &web_sys::IdbDatabase {
        self.db.as_sys()
    }

    /// Whether the browser has closed this connection: it then refuses to
    /// start a transaction.
    pub(super) fn is_broken(&self) -> bool {
        self.sys().transaction_with_str(META_STORE).is_err()
    }
}

pub(super) const UPGRADED_ELSEWHERE: &str = "another tab or worker upgraded the database; open it again";
const DELETED: &str = "the browser deleted the database (the site's storage was cleared or evicted); \
                       open it again: it starts empty, with a new client id";

impl IdbStore {
    pub(super) fn check_open(&self) -> Result<()> {
        match &*self.closed.borrow() {
            Some(reason) => Err(Error::DatabaseClosed(reason.clone())),
            None => Ok(()),
        }
    }

    pub(super) fn connection(&self) -> Rc<Connection> {
        self.connection.borrow().clone()
    }

    /// What to make of `error`, met on `connection`: a new connection when the
    /// browser had closed that one and a new one could be opened (the caller
    /// decides whether to run its call again), otherwise the error to give.
    pub(super) async fn recover(&self, connection: &Rc<Connection>, error: Error) -> Result<Rc<Connection>> {
        self.check_open()?;
        if !connection.is_broken() {
            return Err(error);
        }
        // A transaction cut off may have committed without this store seeing it.
        self.commits.forget();
        self.reconnect(connection).await
    }

    /// Opens a new connection in place of `lost`, at the same version, unless
    /// the database is gone. Opening must not create it again: an empty
    /// database under the old name would hide that every entity and queued
    /// mutation was lost, so the upgrade such an open starts is refused, and
    /// the store stays closed with `DatabaseClosed`.
    async fn reconnect(&self, lost: &Rc<Connection>) -> Result<Rc<Connection>> {
        let gone = Rc::new(Cell::new(false));
        let opened = Database::open(self.name.as_str())
            .with_version(lost.db.version())
            .with_on_upgrade_needed({
                let gone = gone.clone();
                move |_event, _db| {
                    gone.set(true);
                    Err(JsValue::from(js_sys::Error::new("the database no longer exists")).into())
                }
            })
            .await;
        let db = match opened {
            Ok(db) => db,
            Err(error) => {
                let reason = if gone.get() {
                    DELETED
                } else {
                    match Error::from(error) {
                        // A newer version: another tab upgraded the database meanwhile.
                        Error::Schema(_) => UPGRADED_ELSEWHERE,
                        other => return Err(other),
                    }
                };
                self.closed.borrow_mut().get_or_insert_with(|| reason.to_owned());
                return Err(Error::DatabaseClosed(reason.to_owned()));
            }
        };
        // Two calls may have found the connection lost at once: keep one new connection.
        let mut current = self.connection.borrow_mut();
        if Rc::ptr_eq(&current, lost) {
            *current = Connection::new(db, &self.closed, &self.upgrade);
        } else {
            db.close();
        }
        Ok(current.clone())
    }

    /// Runs `call` on the connection, and once more on a new one when the
    /// browser had closed the first. Only for calls that read, or write what
    /// is harmless to write twice.
    pub(super) async fn idempotent<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Rc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.check_open()?;
        let connection = self.connection();
        match call(connection.clone()).await {
            Err(error) => call(self.recover(&connection, error).await?).await,
            done => done,
        }
    }
}

/// Opens a database at its current version (creating an empty one if needed).
pub(super) async fn open_existing(name: &str) -> Result<Database> {
    Ok(Database::open(name).await?)
}
