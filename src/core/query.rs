//! Range queries over a collection's primary key or one of its indexes.

use std::borrow::Borrow;
use std::ops::Bound;

use super::entity::Entity;
use super::error::{Error, Result};
use super::key::{IndexKey, PrimaryKey};

/// A query, as `collection.query({...})` takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The index to walk; `None` walks the primary key (the entity id).
    pub index: Option<String>,
    pub gte: Option<IndexKey>,
    pub gt: Option<IndexKey>,
    pub lte: Option<IndexKey>,
    pub lt: Option<IndexKey>,
    pub equals: Option<IndexKey>,
    pub reverse: bool,
    pub limit: Option<usize>,
    pub offset: usize,
    pub include_deleted: bool,
}

/// The key range a query selects, as bounds on the keys of the walked index.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    pub lower: Bound<IndexKey>,
    pub upper: Bound<IndexKey>,
}

impl Query {
    /// Checks the bounds and turns them into a range.
    pub fn range(&self) -> Result<KeyRange> {
        if self.gte.is_some() && self.gt.is_some() {
            return Err(Error::InvalidArgument("query: give at most one of `gte` and `gt`".into()));
        }
        if self.lte.is_some() && self.lt.is_some() {
            return Err(Error::InvalidArgument("query: give at most one of `lte` and `lt`".into()));
        }
        if let Some(key) = &self.equals {
            if self.gte.is_some() || self.gt.is_some() || self.lte.is_some() || self.lt.is_some() {
                return Err(Error::InvalidArgument("query: `equals` cannot be combined with a range bound".into()));
            }
            return Ok(KeyRange { lower: Bound::Included(key.clone()), upper: Bound::Included(key.clone()) });
        }
        let lower = match (&self.gte, &self.gt) {
            (Some(key), _) => Bound::Included(key.clone()),
            (_, Some(key)) => Bound::Excluded(key.clone()),
            _ => Bound::Unbounded,
        };
        let upper = match (&self.lte, &self.lt) {
            (Some(key), _) => Bound::Included(key.clone()),
            (_, Some(key)) => Bound::Excluded(key.clone()),
            _ => Bound::Unbounded,
        };
        if let (Some(low), Some(high)) = (bound_key(&lower), bound_key(&upper)) {
            let empty_point = low == high && !(matches!(lower, Bound::Included(_)) && matches!(upper, Bound::Included(_)));
            if low > high || empty_point {
                return Err(Error::InvalidArgument("query: the lower bound is above the upper bound".into()));
            }
        }
        Ok(KeyRange { lower, upper })
    }
}

impl Query {
    /// Takes entities in the walked order and keeps one page: tombstones
    /// dropped unless asked for, then `offset` and `limit` applied.
    pub fn page<E: Borrow<Entity>>(&self, entities: impl Iterator<Item = E>) -> Vec<E> {
        entities
            .filter(|entity| self.include_deleted || !entity.borrow().deleted)
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
}

fn bound_key(bound: &Bound<IndexKey>) -> Option<&IndexKey> {
    match bound {
        Bound::Included(key) | Bound::Excluded(key) => Some(key),
        Bound::Unbounded => None,
    }
}

impl KeyRange {
    /// The range as bounds on entity ids, for a query without an index: ids
    /// are strings, so every bound must be one.
    pub fn id_bounds(&self) -> Result<(Bound<PrimaryKey>, Bound<PrimaryKey>)> {
        let as_id = |bound: &Bound<IndexKey>| -> Result<Bound<PrimaryKey>> {
            Ok(match bound {
                Bound::Included(IndexKey::String(s)) => Bound::Included(PrimaryKey(s.clone())),
                Bound::Excluded(IndexKey::String(s)) => Bound::Excluded(PrimaryKey(s.clone())),
                Bound::Unbounded => Bound::Unbounded,
                _ => return Err(Error::InvalidArgument("query: bounds on the id must be strings".into())),
            })
        };
        Ok((as_id(&self.lower)?, as_id(&self.upper)?))
    }

    pub fn contains(&self, key: &IndexKey) -> bool {
        let above = match &self.lower {
            Bound::Included(low) => key >= low,
            Bound::Excluded(low) => key > low,
            Bound::Unbounded => true,
        };
        let below = match &self.upper {
            Bound::Included(high) => key <= high,
            Bound::Excluded(high) => key < high,
            Bound::Unbounded => true,
        };
        above && below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: f64) -> Option<IndexKey> {
        Some(IndexKey::Number(x))
    }

    #[test]
    fn rejects_contradictory_bounds() {
        assert!(Query { gte: n(1.0), gt: n(1.0), ..Query::default() }.range().is_err());
        assert!(Query { equals: n(1.0), lt: n(3.0), ..Query::default() }.range().is_err());
        assert!(Query { gte: n(3.0), lte: n(1.0), ..Query::default() }.range().is_err());
        assert!(Query { gt: n(1.0), lte: n(1.0), ..Query::default() }.range().is_err());
        assert!(Query { gte: n(1.0), lte: n(1.0), ..Query::default() }.range().is_ok());
    }

    #[test]
    fn range_contains() {
        let range = Query { gt: n(1.0), lte: n(3.0), ..Query::default() }.range().unwrap();
        assert!(!range.contains(&IndexKey::Number(1.0)));
        assert!(range.contains(&IndexKey::Number(3.0)));
        assert!(!range.contains(&IndexKey::String("a".into())));
    }
}
