//! The app's declaration of its collections and their secondary indexes.

use std::collections::BTreeMap;

use super::entity::Entity;
use super::error::{Error, Result};
use super::key::IndexKey;

/// Metadata fields an index can be declared on by their bare name.
const META_FIELDS: [&str; 3] = ["updatedAt", "serverUpdatedAt", "version"];

/// What an index orders entities by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexPath {
    /// `updatedAt`, `serverUpdatedAt` or `version` of the entity's metadata.
    Meta(&'static str),
    /// A dotted path into `data` (`"title"`, `"author.name"`; `"data.updatedAt"` for a
    /// data field whose name is also a metadata field).
    Data(Vec<String>),
}

/// One declared secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The name as declared, used in queries.
    pub name: String,
    pub path: IndexPath,
}

impl IndexSpec {
    /// Parses an index name. Bare `updatedAt`, `serverUpdatedAt` and `version`
    /// index metadata; any other name is a dotted path into `data`.
    pub fn parse(name: &str) -> Result<IndexSpec> {
        let invalid = || {
            Error::Schema(format!(
                "index {name:?} is invalid: use a dotted path of identifiers such as \"title\" or \"author.name\""
            ))
        };
        if name.is_empty() || name.len() > 128 {
            return Err(invalid());
        }
        let segments: Vec<String> = name.split('.').map(str::to_owned).collect();
        let identifier = |s: &String| {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if !segments.iter().all(identifier) {
            return Err(invalid());
        }
        let path = match META_FIELDS.iter().find(|field| **field == name) {
            Some(field) => IndexPath::Meta(field),
            None if segments[0] == "data" && segments.len() > 1 => IndexPath::Data(segments[1..].to_vec()),
            None => IndexPath::Data(segments),
        };
        Ok(IndexSpec { name: name.to_owned(), path })
    }

    /// Whether this index's keys come from an entity's data.
    pub fn reads_data(&self) -> bool {
        matches!(self.path, IndexPath::Data(_))
    }

    /// The entity's key in this index, or `None` when it is not indexed
    /// (the field is missing or holds a value IndexedDB cannot use as a key).
    pub fn key_of(&self, entity: &Entity) -> Option<IndexKey> {
        match &self.path {
            IndexPath::Meta("updatedAt") => Some(IndexKey::Number(entity.updated_at)),
            IndexPath::Meta("serverUpdatedAt") => entity.server_updated_at.map(IndexKey::Number),
            IndexPath::Meta(_) => Some(IndexKey::Number(entity.version as f64)),
            IndexPath::Data(path) => entity.data_at(path).and_then(|value| IndexKey::from_json(&value)),
        }
    }
}

/// One collection's declaration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CollectionSchema {
    pub indexes: Vec<IndexSpec>,
}

impl CollectionSchema {
    pub fn index(&self, name: &str) -> Option<&IndexSpec> {
        self.indexes.iter().find(|index| index.name == name)
    }
}

/// All collections of a database, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub collections: BTreeMap<String, CollectionSchema>,
}

impl Schema {
    /// Builds and checks a schema from `(collection, [index names])` pairs.
    pub fn new<'a>(collections: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Result<Schema> {
        let mut schema = Schema::default();
        for (name, index_names) in collections {
            tideway_protocol::validate_collection_name(name).map_err(|e| Error::Schema(e.0))?;
            let mut collection = CollectionSchema::default();
            for index_name in index_names {
                if collection.index(index_name).is_some() {
                    return Err(Error::Schema(format!("index {index_name:?} is declared twice on {name:?}")));
                }
                collection.indexes.push(IndexSpec::parse(index_name)?);
            }
            if schema.collections.insert(name.to_owned(), collection).is_some() {
                return Err(Error::Schema(format!("collection {name:?} is declared twice")));
            }
        }
        if schema.collections.is_empty() {
            return Err(Error::Schema("declare at least one collection".into()));
        }
        Ok(schema)
    }

    pub fn collection(&self, name: &str) -> Result<&CollectionSchema> {
        self.collections.get(name).ok_or_else(|| {
            let declared: Vec<&str> = self.collections.keys().map(String::as_str).collect();
            Error::NotFound(format!("no collection {name:?}; declared collections: {}", declared.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_and_data_paths() {
        assert_eq!(IndexSpec::parse("updatedAt").unwrap().path, IndexPath::Meta("updatedAt"));
        assert_eq!(IndexSpec::parse("title").unwrap().path, IndexPath::Data(vec!["title".into()]));
        assert_eq!(
            IndexSpec::parse("data.updatedAt").unwrap().path,
            IndexPath::Data(vec!["updatedAt".into()])
        );
        assert_eq!(
            IndexSpec::parse("author.name").unwrap().path,
            IndexPath::Data(vec!["author".into(), "name".into()])
        );
        for bad in ["", "a..b", "1x", "a b", ".a", "a."] {
            assert!(IndexSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_declarations() {
        assert!(Schema::new([]).is_err());
        assert!(Schema::new([("no tes", vec![])]).is_err());
        assert!(Schema::new([("notes", vec!["title", "title"])]).is_err());
        assert!(Schema::new([("notes", vec!["title"]), ("notes", vec![])]).is_err());
        let schema = Schema::new([("notes", vec!["title", "updatedAt"])]).unwrap();
        assert!(schema.collection("notes").unwrap().index("title").is_some());
        assert!(matches!(schema.collection("tags"), Err(Error::NotFound(_))));
    }
}
