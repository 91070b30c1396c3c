//! How a collection settles an entity changed both locally and on the server:
//! the policies an app chooses from, and what an app-supplied resolver sees.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::core::entity::Data;

/// An app-supplied conflict resolver: `(local, server, base) -> merged data`,
/// each side `None` when it is a delete. An `Err` leaves the conflict to the
/// app, as the manual policy does.
pub type Resolver = Rc<dyn Fn(&ConflictSides) -> Result<Data, String>>;

/// How a collection settles an entity changed both locally and on the server.
#[derive(Clone, Default)]
pub enum ConflictPolicy {
    /// The server's version replaces the local changes.
    ServerWins,
    /// The local version is pushed again on top of the server's.
    ClientWins,
    /// Three-way merge, field by field (see [`three_way`]): the default.
    #[default]
    Merge,
    /// The entity is marked `conflict` until the app writes the settled data.
    Manual,
    /// The app's own function decides.
    Custom(Resolver),
}

impl fmt::Debug for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictPolicy::ServerWins => "ServerWins",
            ConflictPolicy::ClientWins => "ClientWins",
            ConflictPolicy::Merge => "Merge",
            ConflictPolicy::Manual => "Manual",
            ConflictPolicy::Custom(_) => "Custom",
        })
    }
}

/// The three inputs of a conflict, as a resolver sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictSides<'a> {
    pub collection: &'a str,
    pub id: &'a str,
    /// `None`: deleted locally.
    pub local: Option<&'a Data>,
    /// `None`: deleted (or absent) on the server.
    pub server: Option<&'a Data>,
    /// `None`: the server had never acknowledged the entity.
    pub base: Option<&'a Data>,
}

/// The conflict policy of each collection; collections not named use the default.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub default: ConflictPolicy,
    pub collections: HashMap<String, ConflictPolicy>,
}

impl Policies {
    pub fn of(&self, collection: &str) -> &ConflictPolicy {
        self.collections.get(collection).unwrap_or(&self.default)
    }
}
