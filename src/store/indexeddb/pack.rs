//! What crosses to the JS half, packed: a batch's writes as a few long texts
//! per run (handing JS a few long strings costs far less than a few short ones
//! per write), the `ix` of a record, and docs read back from storage.

use js_sys::{Array, JsString, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{CollectionInfo, IndexField};
use crate::browser::{self, StoredRecord, WriteBatch, ACK, CHECK, CHECKED_WRITE, SEPARATOR, WRITE};
use crate::core::{Applied, Entity, Error, IndexKey, Mutation, Result};

/// A batch's writes computed since it last sent, packed for one call to
/// `WriteBatch.send`: handing JS a few long strings costs far less than a few
/// short ones per write.
#[derive(Default)]
pub(super) struct Outgoing {
    /// Per op, its id then, for a write, the entity's doc; separated by NUL.
    entities: Vec<u8>,
    /// The mutation docs, separated by NUL.
    mutations: Vec<u8>,
    /// The `ix` of each entity written but acknowledged, as a JSON array.
    ix: Vec<u8>,
    /// Per op, its code: [`browser::op`] of its collection's `position` and
    /// its kind ([`WRITE`], [`CHECKED_WRITE`], [`CHECK`] or [`ACK`]).
    ops: Vec<u32>,
}

impl Outgoing {
    pub(super) fn write(&mut self, info: &CollectionInfo, applied: &Applied, check: bool) -> Result<()> {
        self.entity(info, &applied.entity, if check { CHECKED_WRITE } else { WRITE })?;
        self.append(&applied.mutation)
    }

    /// Stores `entity` as it is (no check): what sync settled, on entities
    /// read in the same transaction.
    pub(super) fn store(&mut self, info: &CollectionInfo, entity: &Entity) -> Result<()> {
        self.entity(info, entity, WRITE)
    }

    /// Logs `entity`, as sync settled it on the doc the batch's `known` map
    /// holds, which it differs from only in sync metadata: the record stays
    /// as it is, its index keys too.
    pub(super) fn acknowledge(&mut self, info: &CollectionInfo, entity: &Entity) -> Result<()> {
        self.doc(info, ACK, entity)
    }

    /// Adds `mutation` to the outbox, after every entry already there.
    pub(super) fn append(&mut self, mutation: &Mutation) -> Result<()> {
        if !self.mutations.is_empty() {
            self.mutations.extend_from_slice(SEPARATOR.as_bytes());
        }
        json_into(&mut self.mutations, mutation, "a mutation")
    }

    /// An op of `kind` carrying `entity`'s doc.
    fn doc(&mut self, info: &CollectionInfo, kind: u32, entity: &Entity) -> Result<()> {
        self.op(info, kind, &entity.id);
        self.entities.extend_from_slice(SEPARATOR.as_bytes());
        json_into(&mut self.entities, entity, "an entity")
    }

    fn entity(&mut self, info: &CollectionInfo, entity: &Entity, kind: u32) -> Result<()> {
        self.doc(info, kind, entity)?;
        self.ix.push(if self.ix.is_empty() { b'[' } else { b',' });
        self.ix.push(b'{');
        let mut first = true;
        for field in &info.index_fields {
            if let Some(key) = field.index.key_of(entity) {
                if !std::mem::take(&mut first) {
                    self.ix.push(b',');
                }
                json_into(&mut self.ix, &field.name, "an index name")?;
                self.ix.push(b':');
                json_into(&mut self.ix, &key, "an index key")?;
            }
        }
        self.ix.push(b'}');
        Ok(())
    }

    pub(super) fn check(&mut self, info: &CollectionInfo, id: &str) {
        self.op(info, CHECK, id);
    }

    fn op(&mut self, info: &CollectionInfo, kind: u32, id: &str) {
        if !self.ops.is_empty() {
            self.entities.extend_from_slice(SEPARATOR.as_bytes());
        }
        self.entities.extend_from_slice(id.as_bytes());
        self.ops.push(browser::op(info.position, kind));
    }

    /// Hands what was computed to `batch`, which sends it, and starts afresh.
    pub(super) fn send(&mut self, batch: &WriteBatch) -> Result<()> {
        if self.ops.is_empty() && self.mutations.is_empty() {
            return Ok(());
        }
        if !self.mutations.is_empty() {
            self.mutations.extend_from_slice(SEPARATOR.as_bytes());
        }
        if self.ix.is_empty() {
            self.ix.push(b'['); // only checks in this run
        }
        self.mutations.append(&mut self.ix);
        self.mutations.push(b']');
        let text = |bytes| std::str::from_utf8(bytes).map_err(|e| Error::Storage(format!("cannot encode a write: {e}")));
        batch.send(text(&self.entities)?, text(&self.mutations)?, &self.ops);
        self.entities.clear();
        self.mutations.clear();
        self.ops.clear();
        Ok(())
    }
}

/// Appends `value` as JSON text to `buffer`.
fn json_into<T: serde::Serialize + ?Sized>(buffer: &mut Vec<u8>, value: &T, what: &str) -> Result<()> {
    serde_json::to_writer(buffer, value).map_err(|e| Error::Storage(format!("cannot encode {what}: {e}")))
}

pub(super) fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Storage(format!("cannot encode {what}: {e}")))
}

/// The `ix` object of an entity's record: the key of each declared index it has one for.
pub(super) fn index_keys(entity: &Entity, index_fields: &[IndexField]) -> Object {
    let ix = Object::new();
    for field in index_fields {
        if let Some(key) = field.index.key_of(entity) {
            // Setting a property on a plain object we just created cannot fail.
            let _ = Reflect::set(&ix, &field.js, &key_to_js(&key));
        }
    }
    ix
}

pub(super) fn key_to_js(key: &IndexKey) -> JsValue {
    match key {
        IndexKey::Number(n) => JsValue::from_f64(*n),
        IndexKey::String(s) => JsValue::from_str(s),
        IndexKey::Array(items) => items.iter().map(key_to_js).collect::<Array>().into(),
    }
}

pub(super) fn parse_text<T: serde::de::DeserializeOwned>(text: &str, place: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| unreadable(place, e))
}

/// Parses UTF-8 JSON bytes. Read as text, as all JSON is here, so the module
/// holds one copy of each type's JSON parser rather than one per kind of input.
pub(super) fn parse_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8], place: &str) -> Result<T> {
    parse_text(std::str::from_utf8(bytes).map_err(|e| unreadable(place, e))?, place)
}

/// Parses a JSON array of entity docs in UTF-8, pushing each entity onto
/// `into`. A load reserves room for a whole store once, where parsing each
/// chunk into a vector of its own would grow that vector step by step, then
/// copy it.
pub(super) fn append_entities(bytes: &[u8], place: &str, into: &mut Vec<Entity>) -> Result<()> {
    use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
    struct Append<'a>(&'a mut Vec<Entity>);
    impl<'de> DeserializeSeed<'de> for Append<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Append<'_> {
        type Value = ();
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an array of entity docs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut docs: A) -> std::result::Result<(), A::Error> {
            while let Some(entity) = docs.next_element()? {
                self.0.push(entity);
            }
            Ok(())
        }
    }
    let text = std::str::from_utf8(bytes).map_err(|e| unreadable(place, e))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Append(into).deserialize(&mut deserializer).and_then(|()| deserializer.end()).map_err(|e| unreadable(place, e))
}

/// Makes sure the allocator has `bytes` free before a large amount of work
/// allocates them piece by piece. Growing wasm memory costs the browser about
/// as much for 64 KB as for megabytes, and an allocator left to itself grows it
/// by what each allocation lacks: 47 times in the load of 10k entities, up to
/// 27 ms of a traced cold open. A block taken and freed at once stays with the
/// allocator, which hands it out again.
pub(super) fn make_room(bytes: usize) {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(bytes)));
}

pub(super) fn unreadable(place: &str, error: impl std::fmt::Display) -> Error {
    Error::Storage(format!("a record in {place:?} is unreadable: {error}"))
}

/// [`SEPARATOR`] as a `char`, which a split finds with `memchr` (a `&str` it
/// searches for with a general algorithm).
const SEPARATOR_CHAR: char = '\0';

/// Docs handed over from JS as one text (`browser::join_docs`), encoded
/// natively into the module's memory and each taken as a slice of it: passing
/// one string per doc copies each a character at a time in JS.
pub(super) struct Packed {
    text: String,
    /// Where the docs were read, for errors.
    place: &'static str,
}

impl Packed {
    pub(super) fn of(joined: &JsString, place: &'static str) -> Result<Packed> {
        let units = joined.length() as usize;
        // Room for ASCII first, then for the most that UTF-16 can take in UTF-8.
        let mut bytes = vec![0; units];
        let mut written = browser::encode_into(joined, &mut bytes);
        if written < 0 {
            bytes = vec![0; units * 3];
            written = browser::encode_into(joined, &mut bytes);
        }
        bytes.truncate(written.max(0) as usize);
        let text = String::from_utf8(bytes).map_err(|e| unreadable(place, e))?;
        Ok(Packed { text, place })
    }

    /// [`Packed::of`] the docs of `docs` (texts, or undefined where absent).
    pub(super) fn docs_of(docs: &Array, place: &'static str) -> Result<Packed> {
        Packed::of(&browser::join_docs(docs), place)
    }

    /// The docs of `count` entities or records, `None` for each that has none.
    pub(super) fn docs(&self, count: usize) -> Result<Vec<Option<&str>>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut docs = Vec::with_capacity(count);
        docs.extend(self.text.split(SEPARATOR_CHAR).map(|doc| (!doc.is_empty()).then_some(doc)));
        if docs.len() != count {
            // A doc that holds the separator: JSON never does, so the record is damaged.
            return Err(unreadable(self.place, format_args!("{count} docs were read, {} came", docs.len())));
        }
        Ok(docs)
    }
}

/// Decodes a record's `doc`: JSON text, or UTF-8 JSON bytes in records an
/// earlier version wrote.
pub(super) fn parse_doc<T: serde::de::DeserializeOwned>(record: &JsValue, place: &str) -> Result<T> {
    let doc = record.unchecked_ref::<StoredRecord>().doc();
    if let Some(text) = doc.as_string() {
        parse_text(&text, place)
    } else if let Some(bytes) = doc.dyn_ref::<Uint8Array>() {
        parse_bytes(&bytes.to_vec(), place)
    } else {
        Err(Error::Storage(format!("a record in {place:?} has no readable `doc`")))
    }
}
