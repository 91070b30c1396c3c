//! An entity: the app's JSON data plus the metadata that makes sync predictable.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An entity's JSON object.
pub type Data = Map<String, Value>;

/// Where an entity stands with respect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Changed locally; the change waits in the outbox.
    Dirty,
    /// A push carrying the change is in flight.
    Syncing,
    /// The server acknowledged the latest local change.
    Synced,
    /// The server rejected the change permanently; see `last_error`.
    Failed,
    /// The server holds a different version; the conflict policy decides.
    Conflict,
}

/// One stored entity with its sync metadata.
///
/// `base` keeps the data the server last acknowledged, so that a later
/// three-way merge can tell which side changed which field. How an entity is
/// written as JSON (a stored doc) is `DocOut`'s and `DocIn`'s business.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Generated on the device (UUID v4) or given by the caller; never changes.
    pub id: String,
    /// The server's id for this entity, once a server has acknowledged it.
    pub remote_id: Option<String>,
    /// Read through [`Entity::data`], changed through [`Entity::data_mut`]
    /// or [`Entity::set_data`]: the base may be this very data. Shared by
    /// the entity's copies (the mirror's, a plan's, a change event's) until
    /// one of them changes it.
    data: Rc<LazyData>,
    /// The server-acknowledged data: see [`Entity::base`].
    base: Base,
    /// The server's version; 0 means the server has never seen the entity.
    pub version: u64,
    /// Device time (ms since the epoch) of the last local change.
    pub updated_at: f64,
    /// Server time (ms since the epoch) of the last acknowledged change.
    pub server_updated_at: Option<f64>,
    pub sync_status: SyncStatus,
    /// A tombstone: deleted locally or on the server, kept so the delete syncs.
    pub deleted: bool,
    pub last_error: Option<String>,
    /// How many of this entity's mutations wait in the outbox. The entity is
    /// `synced` only when the server has answered every one of them.
    pub pending: u32,
    /// Set while the entity is in `conflict` under the manual policy; boxed,
    /// being rare, so that every entity held is the smaller.
    pub conflict: Option<Box<ConflictState>>,
}

/// The data the server last acknowledged.
#[derive(Debug, Clone)]
enum Base {
    /// Not acknowledged yet.
    None,
    /// The entity's own data, without a copy: the base of every entity the
    /// server holds as this device does, most of a database.
    Data,
    Own(Rc<LazyData>),
}

/// Data as the JSON text of a stored doc until something looks into it.
/// Opening a database reads every doc, and most entities are never looked
/// into by the mirror before they are written again, if ever: a doc's
/// metadata is parsed at once, its data (most of its length) only checked to
/// be a JSON object, which is several times faster and keeps the text, far
/// smaller than the parsed map, in memory instead. Written back unchanged,
/// the text is copied as it is.
#[derive(Debug, Clone)]
enum LazyData {
    /// The text, and the data parsed from it once looked into.
    Text(DataText, OnceCell<Data>),
    Parsed(Data),
}

impl LazyData {
    /// Checks that `text`, a doc's `field`, holds an object; its fields are
    /// parsed when first looked into, or at once where they might not parse.
    fn text<E: de::Error>(text: Box<RawValue>, field: &str) -> Result<Self, E> {
        let (text, parsed) = DataText::checked(text, field)?;
        Ok(LazyData::Text(text, parsed.map_or_else(OnceCell::new, OnceCell::from)))
    }

    fn get(&self) -> &Data {
        match self {
            LazyData::Text(text, parsed) => parsed.get_or_init(|| text.parse()),
            LazyData::Parsed(data) => data,
        }
    }

    /// The data, to change: the text no longer holds it.
    fn get_mut(&mut self) -> &mut Data {
        if let LazyData::Text(text, parsed) = self {
            *self = LazyData::Parsed(parsed.take().unwrap_or_else(|| text.parse()));
        }
        match self {
            LazyData::Parsed(data) => data,
            LazyData::Text(..) => unreachable!("made parsed just above"),
        }
    }

    fn into_inner(self) -> Data {
        match self {
            LazyData::Text(text, mut parsed) => parsed.take().unwrap_or_else(|| text.parse()),
            LazyData::Parsed(data) => data,
        }
    }

    /// The data of `shared`, without a copy where nothing else holds it.
    fn unshared(shared: Rc<LazyData>) -> Data {
        Rc::try_unwrap(shared).map_or_else(|shared| shared.get().clone(), LazyData::into_inner)
    }

    /// Equal data. The same text is the same data; otherwise they are
    /// compared parsed ([`equal_data`]).
    fn same(&self, other: &LazyData) -> bool {
        if std::ptr::eq(self, other) {
            return true;
        }
        if let (LazyData::Text(a, _), LazyData::Text(b, _)) = (self, other) {
            if a.as_str() == b.as_str() {
                return true;
            }
        }
        equal_data(self.get(), other.get())
    }

    /// Whether this is the data `text` holds. The texts are compared first,
    /// which in the usual case (the data of the write being acknowledged, as
    /// the doc holds it) settles it without parsing either; data parsed
    /// already is written out to be compared; texts that differ are compared
    /// parsed.
    fn holds(&self, text: &DataText) -> bool {
        let same_text = match self {
            LazyData::Text(own, _) => own.as_str() == text.as_str(),
            LazyData::Parsed(data) => serde_json::to_string(data).is_ok_and(|written| written == text.as_str()),
        };
        same_text || equal_data(self.get(), &text.parse())
    }
}

/// Data a write brings (a put's data, a patch's fields), shared without a
/// copy by the write and every entity a put makes of it: the mirror's, the
/// one stored, a change event's. Data that came as JSON text (as the JS API
/// hands it over) stays text until something looks into its fields, as a
/// doc's data read from the store does: a bulk put holds each entity's data
/// once, as its text, rather than parsed once per copy.
#[derive(Debug, Clone)]
pub struct SharedData(Rc<LazyData>);

impl SharedData {
    /// The data JSON text holds, or `None` if it is not a JSON object that
    /// parses into data. Parsed at once only where it might not parse.
    pub fn from_json(text: String) -> Option<SharedData> {
        RawValue::from_string(text).ok().and_then(SharedData::from_raw)
    }

    /// [`SharedData::from_json`] of text read already.
    pub fn from_raw(text: Box<RawValue>) -> Option<SharedData> {
        LazyData::text::<serde_json::Error>(text, "data").ok().map(|data| SharedData(Rc::new(data)))
    }

    /// The data, parsed on the first look (once for every holder).
    pub fn get(&self) -> &Data {
        self.0.get()
    }

    /// The data, taken out; copied only where something else still holds it.
    pub fn into_data(self) -> Data {
        LazyData::unshared(self.0)
    }

    /// The JSON text: its own, or the data written out.
    pub fn to_text(&self) -> DataText {
        match self.0.as_ref() {
            LazyData::Text(text, _) => text.clone(),
            LazyData::Parsed(data) => DataText::of(data),
        }
    }

    /// Checks the data against the protocol's limits, on its text where it
    /// is held as text.
    pub fn validate(&self) -> Result<(), (&'static str, tideway_protocol::Invalid)> {
        match self.0.as_ref() {
            LazyData::Text(text, _) => tideway_protocol::validate_data_text(text.as_str()),
            LazyData::Parsed(data) => tideway_protocol::validate_data(data),
        }
    }
}

impl Default for SharedData {
    fn default() -> SharedData {
        SharedData::from(Data::new())
    }
}

impl From<Data> for SharedData {
    fn from(data: Data) -> SharedData {
        SharedData(Rc::new(LazyData::Parsed(data)))
    }
}

/// The data a checked text holds, parsed when first looked into.
impl From<DataText> for SharedData {
    fn from(text: DataText) -> SharedData {
        SharedData(Rc::new(LazyData::Text(text, OnceCell::new())))
    }
}

/// The same data, however each is held.
impl PartialEq for SharedData {
    fn eq(&self, other: &SharedData) -> bool {
        self.0.same(&other.0)
    }
}

impl From<&DataText> for LazyData {
    fn from(text: &DataText) -> LazyData {
        LazyData::Text(text.clone(), OnceCell::new())
    }
}

/// A JSON object kept as its text: an outbox entry's data, which is stored,
/// read back and pushed as it was written, and an entity's data as a server
/// sends it, which is stored as it came; each parsed only where its fields
/// are looked into (a patch acknowledged, the outbox shown to the app, a
/// conflict). Always an object that parses into [`Data`]: made from data,
/// or read with the checks a doc's data gets. Shared by its copies: a put's
/// outbox entry holds the very text its entity does.
#[derive(Clone)]
pub struct DataText(Rc<RawValue>);

impl DataText {
    /// `data` written out.
    pub fn of(data: &Data) -> DataText {
        DataText(Rc::from(serde_json::value::to_raw_value(data).expect("a JSON object always serializes")))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The data, parsed: it was made from data, or checked to parse.
    pub fn parse(&self) -> Data {
        serde_json::from_str(self.as_str()).expect("JSON that `might_not_parse` lets through parses")
    }

    /// Checks that `text`, the `field` of a doc or of a server's answer,
    /// holds an object that parses into data; with the data where it had to
    /// be parsed to tell.
    fn checked<E: de::Error>(text: Box<RawValue>, field: &str) -> Result<(DataText, Option<Data>), E> {
        if !text.get().starts_with('{') {
            return Err(E::custom(format_args!("`{field}` is not a JSON object")));
        }
        let mut parsed = None;
        if might_not_parse(text.get()) {
            let data = serde_json::from_str(text.get()).map_err(|error| E::custom(format_args!("`{field}`: {error}")))?;
            parsed = Some(data);
        }
        Ok((DataText(Rc::from(text)), parsed))
    }
}

/// The same data: the same text, or the same fields parsed (in any order).
impl PartialEq for DataText {
    fn eq(&self, other: &DataText) -> bool {
        self.as_str() == other.as_str() || self.parse() == other.parse()
    }
}

impl fmt::Debug for DataText {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The text as it is, for JSON (an outbox entry and a push are written with
/// serde_json only).
impl Serialize for DataText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DataText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<RawValue>::deserialize(deserializer)?;
        DataText::checked(text, "data").map(|(text, _)| text)
    }
}

impl tideway_protocol::PushData for DataText {
    fn validate(&self) -> Result<(), (&'static str, tideway_protocol::Invalid)> {
        tideway_protocol::validate_data_text(self.as_str())
    }
}

/// Equal data: the fields compared in order first, which is cheaper in the
/// usual case (both sides computed from the same write, their fields in the
/// same order) than comparing maps, which looks each field up by hash.
fn equal_data(a: &Data, b: &Data) -> bool {
    a.iter().eq(b.iter()) || a == b
}

/// Whether `text`, valid JSON, might still not parse into data: JSON that
/// holds a number out of a double's range (an exponent, or a long run of
/// digits), nesting near the parser's limit, or a `\u` escape (which may be a
/// lone surrogate). The doc this library writes has none of these but for
/// a rare exponent or control character, so checking costs one pass over
/// the bytes, and parsing those few at once leaves none to fail later.
fn might_not_parse(text: &str) -> bool {
    const DEEPEST: usize = 100;
    const LONGEST_NUMBER: usize = 300;
    let (mut depth, mut digits) = (0usize, 0usize);
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'"' => {
                while let Some(byte) = bytes.next() {
                    match byte {
                        b'\\' if bytes.next() == Some(b'u') => return true,
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'e' | b'E' if digits > 0 => return true,
            _ => {}
        }
        digits = if byte.is_ascii_digit() || byte == b'.' { digits + 1 } else { 0 };
        if depth > DEEPEST || digits > LONGEST_NUMBER {
            return true;
        }
    }
    false
}

/// Reads the value at a path of object fields (`None` where there is none),
/// skipping everything else.
struct At<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Value>, D::Error> {
        match self.0.is_empty() {
            true => Value::deserialize(deserializer).map(Some),
            // Anything but an object fails, and so reads as no value.
            false => deserializer.deserialize_map(self),
        }
    }
}

impl<'de> de::Visitor<'de> for At<'_> {
    type Value = Option<Value>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let (first, rest) = self.0.split_first().expect("a path with a first field");
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(first))? {
            match matches {
                true => found = map.next_value_seed(At(rest))?,
                false => drop(map.next_value::<de::IgnoredAny>()?),
            }
        }
        Ok(found)
    }
}

/// Reads an object's key: whether it is `.0`.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

impl Serialize for LazyData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // The text as it is, for JSON (a stored doc is written with serde_json only).
            LazyData::Text(text, _) => text.serialize(serializer),
            LazyData::Parsed(data) => data.serialize(serializer),
        }
    }
}

/// What a manual conflict keeps for the app to decide with. The server's side
/// is in the entity itself: `base` holds the server's data and `version` its
/// version, so that settling the conflict is an ordinary write on top of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictState {
    /// The data both sides started from (the base before the conflict).
    pub base: Option<Data>,
    /// Whether the server's side is a delete.
    pub server_deleted: bool,
    /// Whether the local side is a delete.
    pub local_deleted: bool,
}

impl Entity {
    /// A brand-new, never-synced entity.
    pub fn new(id: String, data: impl Into<SharedData>, at: f64) -> Self {
        Entity {
            id,
            remote_id: None,
            data: data.into().0,
            base: Base::None,
            version: 0,
            updated_at: at,
            server_updated_at: None,
            sync_status: SyncStatus::Dirty,
            deleted: false,
            last_error: None,
            pending: 0,
            conflict: None,
        }
    }

    /// A copy of this entity holding `data` instead of its own, which is not
    /// copied (a `put` replaces it anyway) unless it is the base.
    pub fn with_data(&self, data: impl Into<SharedData>) -> Self {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data: _, base: _, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        Entity {
            id: id.clone(),
            remote_id: remote_id.clone(),
            data: data.into().0,
            base: match &self.base {
                Base::None => Base::None,
                Base::Data => Base::Own(self.data.clone()),
                Base::Own(base) => Base::Own(base.clone()),
            },
            version: *version,
            updated_at: *updated_at,
            server_updated_at: *server_updated_at,
            sync_status: *sync_status,
            deleted: *deleted,
            last_error: last_error.clone(),
            pending: *pending,
            conflict: conflict.clone(),
        }
    }

    /// The app's data.
    pub fn data(&self) -> &Data {
        self.data.get()
    }

    /// The data to write as JSON: the text it was read from, as it was,
    /// while it has not changed (without parsing it).
    pub fn data_json(&self) -> impl Serialize + '_ {
        self.data.as_ref()
    }

    /// The data, to change in place; a base that is this data keeps it as
    /// it was, and so do the entity's copies.
    pub fn data_mut(&mut self) -> &mut Data {
        if let Base::Data = self.base {
            self.base = Base::Own(self.data.clone());
        }
        if Rc::get_mut(&mut self.data).is_none() {
            self.data = Rc::new(LazyData::Parsed(self.data.get().clone()));
        }
        Rc::get_mut(&mut self.data).expect("the data is held by this entity alone").get_mut()
    }

    /// Replaces the data; a base that was this data keeps it.
    pub fn set_data(&mut self, data: Data) {
        let data = std::mem::replace(&mut self.data, Rc::new(LazyData::Parsed(data)));
        if let Base::Data = self.base {
            self.base = Base::Own(data);
        }
    }

    /// The data, taken out of the entity.
    pub fn into_data(self) -> Data {
        LazyData::unshared(self.data)
    }

    /// Whether `other` holds this very data, as told without parsing either:
    /// the same data shared, or the same text. Data that is the same but held
    /// otherwise (one side parsed, say) gives false.
    pub fn shares_data_with(&self, other: &Entity) -> bool {
        Rc::ptr_eq(&self.data, &other.data)
            || matches!((self.data.as_ref(), other.data.as_ref()), (LazyData::Text(a, _), LazyData::Text(b, _)) if a.as_str() == b.as_str())
    }

    /// The data the server last acknowledged, `None` until the first
    /// acknowledgement.
    pub fn base(&self) -> Option<&Data> {
        self.lazy_base().map(LazyData::get)
    }

    fn lazy_base(&self) -> Option<&LazyData> {
        match &self.base {
            Base::None => None,
            Base::Data => Some(&self.data),
            Base::Own(base) => Some(base.as_ref()),
        }
    }

    /// Takes the base out, leaving none; a base that is the data is copied.
    pub fn take_base(&mut self) -> Option<Data> {
        match std::mem::replace(&mut self.base, Base::None) {
            Base::None => None,
            Base::Data => Some(self.data().clone()),
            Base::Own(base) => Some(LazyData::unshared(base)),
        }
    }

    /// Gives the entity a base of its own (`None`: not acknowledged yet).
    pub fn set_base(&mut self, base: Option<impl Into<SharedData>>) {
        self.base = base.map_or(Base::None, |base| Base::Own(base.into().0));
    }

    /// Makes the data `base` holds the entity's base. Where it is the
    /// entity's data, as when the server acknowledges the last local write,
    /// the base is that data, without a copy; either stays unparsed where it
    /// is still held as text.
    pub fn set_base_to(&mut self, base: &DataText) {
        self.base = if self.data.holds(base) { Base::Data } else { Base::Own(Rc::new(LazyData::from(base))) };
    }

    /// Makes `data` the entity's data and its base, without a copy: what the
    /// server holds, as the device now does.
    pub fn take_server_data(&mut self, data: impl Into<SharedData>) {
        self.data = data.into().0;
        self.base = Base::Data;
    }

    /// Looks up a dotted path (`"author.name"`) inside `data`: in data still
    /// held as text, by reading only that value (what building an index
    /// needs of every entity, which would otherwise parse them all).
    pub fn data_at(&self, path: &[String]) -> Option<Cow<'_, Value>> {
        if let LazyData::Text(text, parsed) = self.data.as_ref() {
            if parsed.get().is_none() {
                let mut deserializer = serde_json::Deserializer::from_str(text.as_str());
                return At(path).deserialize(&mut deserializer).ok().flatten().map(Cow::Owned);
            }
        }
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.data().get(first)?, |value, key| value.get(key)).map(Cow::Borrowed)
    }
}

/// An entity as a stored doc is written: its fields in camelCase, those
/// without a value left out (less to store, load and parse), and a `base`
/// equal to `data` left out too, `baseIsData: true` standing for it. That is
/// the base of every entity the server holds as this device does, most of a
/// database, whose docs it makes about a third shorter. (Storage format 1,
/// before that, always wrote the base; `DocIn` reads both.)
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DocOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_id: Option<&'a str>,
    data: &'a LazyData,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a LazyData>,
    #[serde(skip_serializing_if = "is_false")]
    base_is_data: bool,
    version: u64,
    #[serde(serialize_with = "whole_ms")]
    updated_at: f64,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "some_whole_ms")]
    server_updated_at: Option<f64>,
    sync_status: SyncStatus,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    pending: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<&'a ConflictState>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Writes a time (ms since the epoch) as an integer where it is a whole one, as
/// the device's `Date.now()` and the server's times are. serde_json writes every
/// `f64` with a fraction (`1733380000000.0`), which reads back through the exact
/// float parser, the slowest path of a parse, once per doc at every load (and in
/// a cold page, one of the largest functions the engine then has to optimise);
/// an integer reads back as the same `f64` on the integer path. Times past 2^53,
/// fractional ones and -0 are written as before.
pub(super) fn whole_ms<S: Serializer>(at: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    match exact_integer(*at) {
        Some(whole) if !at.is_sign_negative() || whole != 0 => serializer.serialize_i64(whole),
        _ => serializer.serialize_f64(*at),
    }
}

/// `number` as an integer, where it is a whole number below 2^53 in size,
/// where every integer is a distinct f64: written as that integer, JSON
/// carries it exactly. (-0 gives 0.)
pub fn exact_integer(number: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (number.fract() == 0.0 && number.abs() < EXACT).then_some(number as i64)
}

fn some_whole_ms<S: Serializer>(at: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => whole_ms(at, serializer),
        None => serializer.serialize_none(),
    }
}

impl Serialize for Entity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data, base, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        let (base, base_is_data) = match base {
            Base::None => (None, false),
            Base::Data => (None, true),
            // Equal, for an entity that took the server's answer as its own data.
            Base::Own(base) if base.same(data) => (None, true),
            Base::Own(base) => (Some(base.as_ref()), false),
        };
        DocOut {
            id,
            remote_id: remote_id.as_deref(),
            data,
            base,
            base_is_data,
            version: *version,
            updated_at: *updated_at,
            server_updated_at: *server_updated_at,
            sync_status: *sync_status,
            deleted: *deleted,
            last_error: last_error.as_deref(),
            pending: *pending,
            conflict: conflict.as_deref(),
        }
        .serialize(serializer)
    }
}

/// A stored doc as read: what `DocOut` writes, and docs of storage format 1.
/// Absent fields read as their empty value, as `null` does. The data and the
/// base are kept as text (see `LazyData`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocIn {
    id: String,
    #[serde(default)]
    remote_id: Option<String>,
    data: Box<RawValue>,
    #[serde(default)]
    base: Option<Box<RawValue>>,
    #[serde(default)]
    base_is_data: bool,
    version: u64,
    updated_at: f64,
    #[serde(default)]
    server_updated_at: Option<f64>,
    sync_status: SyncStatus,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    pending: u32,
    #[serde(default)]
    conflict: Option<Box<ConflictState>>,
}

impl<'de> Deserialize<'de> for Entity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DocIn { id, remote_id, data, base, base_is_data, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            DocIn::deserialize(deserializer)?;
        let data = Rc::new(LazyData::text(data, "data")?);
        let base = match (base, base_is_data) {
            (None, false) => Base::None,
            (Some(base), false) => Base::Own(Rc::new(LazyData::text(base, "base")?)),
            (None, true) => Base::Data,
            (Some(_), true) => return Err(de::Error::custom("a doc has both `base` and `baseIsData`")),
        };
        Ok(Entity { id, remote_id, data, base, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict })
    }
}

/// Equal in every field, `base` compared by value.
impl PartialEq for Entity {
    fn eq(&self, other: &Entity) -> bool {
        // Every field is named, so that a field added to `Entity` must be added here.
        let Entity { id, remote_id, data, base: _, version, updated_at, server_updated_at, sync_status, deleted, last_error, pending, conflict } =
            self;
        *version == other.version
            && *updated_at == other.updated_at
            && *server_updated_at == other.server_updated_at
            && *sync_status == other.sync_status
            && *deleted == other.deleted
            && *pending == other.pending
            && *id == other.id
            && *remote_id == other.remote_id
            && *last_error == other.last_error
            && *conflict == other.conflict
            && data.same(&other.data)
            && match (&self.base, &other.base) {
                // Both the data, compared above.
                (Base::Data, Base::Data) => true,
                _ => match (self.lazy_base(), other.lazy_base()) {
                    (Some(a), Some(b)) => a.same(b),
                    (a, b) => a.is_none() && b.is_none(),
                },
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_docs_leave_out_empty_metadata_and_read_docs_that_have_it() {
        let entity = Entity::new("n1".into(), json!({"a": 1}).as_object().cloned().unwrap(), 5.0);
        let doc = serde_json::to_value(&entity).unwrap();
        for absent in ["remoteId", "base", "serverUpdatedAt", "lastError", "conflict"] {
            assert!(doc.get(absent).is_none(), "{absent} is left out: {doc}");
        }
        let spelled_out = json!({
            "id": "n1", "remoteId": null, "data": {"a": 1}, "base": null, "version": 0, "updatedAt": 5.0,
            "serverUpdatedAt": null, "syncStatus": "dirty", "deleted": false, "lastError": null, "pending": 0
        });
        assert_eq!(serde_json::from_value::<Entity>(spelled_out).unwrap(), entity);
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);
    }

    #[test]
    fn a_base_equal_to_the_data_is_left_out_and_read_back_whole() {
        let data = json!({"title": "t", "n": 1.5, "nested": {"a": [1, 2]}}).as_object().cloned().unwrap();
        let mut entity = Entity::new("n1".into(), data.clone(), 5.0);
        entity.set_base(Some(data.clone()));
        let doc = serde_json::to_value(&entity).unwrap();
        assert_eq!((doc.get("base"), &doc["baseIsData"]), (None, &json!(true)), "{doc}");
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);

        // A base that differs is stored whole.
        entity.set_base(json!({"title": "before"}).as_object().cloned());
        let doc = serde_json::to_value(&entity).unwrap();
        assert_eq!((&doc["base"], doc.get("baseIsData")), (&json!({"title": "before"}), None));
        assert_eq!(serde_json::from_value::<Entity>(doc).unwrap(), entity);
    }

    #[test]
    fn docs_of_storage_format_1_read_the_same() {
        // Format 1 wrote the base in full, equal to the data or not.
        let doc = json!({
            "id": "n1", "data": {"title": "t"}, "base": {"title": "t"}, "version": 2, "updatedAt": 5.0,
            "serverUpdatedAt": 7.0, "syncStatus": "synced", "deleted": false, "pending": 0
        });
        let entity: Entity = serde_json::from_value(doc).unwrap();
        assert_eq!(entity.base(), Some(entity.data()));
        assert_eq!(serde_json::to_value(&entity).unwrap()["baseIsData"], json!(true));
    }

    #[test]
    fn a_doc_with_both_a_base_and_base_is_data_is_unreadable() {
        let doc = json!({"id": "n1", "data": {}, "base": {}, "baseIsData": true, "version": 0, "updatedAt": 5.0, "syncStatus": "dirty"});
        let error = serde_json::from_value::<Entity>(doc).unwrap_err().to_string();
        assert!(error.contains("both `base` and `baseIsData`"), "{error}");
    }

    fn object(value: Value) -> Data {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn data_read_from_a_doc_is_written_back_as_it_was_until_it_changes() {
        // Spaces and an exponent, which the serializer would not write.
        let data = r#"{"b": 1e2, "a": [1, {"c": "é"}]}"#;
        let doc = format!(r#"{{"id":"n1","data":{data},"baseIsData":true,"version":2,"updatedAt":5,"syncStatus":"synced","pending":0}}"#);
        let entity: Entity = serde_json::from_str(&doc).unwrap();
        let written = serde_json::to_string(&entity).unwrap();
        assert!(written.contains(&format!(r#""data":{data}"#)), "unchanged data is written as it was read: {written}");
        assert_eq!(Value::Object(entity.data().clone()), json!({"b": 100.0, "a": [1, {"c": "é"}]}));

        let mut changed = entity.clone();
        changed.data_mut().insert("d".into(), json!(true));
        let written: Value = serde_json::from_str(&serde_json::to_string(&changed).unwrap()).unwrap();
        assert_eq!(written["data"], json!({"b": 100.0, "a": [1, {"c": "é"}], "d": true}));
        assert_eq!(written["base"], json!({"b": 100.0, "a": [1, {"c": "é"}]}), "the base is the data as read");
        assert_ne!(changed, entity);
    }

    #[test]
    fn data_read_from_a_doc_equals_the_same_data_written_otherwise() {
        let mut built = Entity::new("n1".into(), object(json!({"a": 1, "b": [2.5]})), 5.0);
        built.take_server_data(object(json!({"a": 1, "b": [2.5]})));
        let read: Entity = serde_json::from_str(r#"{"id":"n1","data":{"b":[2.5],"a":1},"baseIsData":true,"version":0,"updatedAt":5,"syncStatus":"dirty"}"#).unwrap();
        assert_eq!(read, built, "the same fields in another order");
        let other: Entity = serde_json::from_str(r#"{"id":"n1","data":{"a":2,"b":[2.5]},"baseIsData":true,"version":0,"updatedAt":5,"syncStatus":"dirty"}"#).unwrap();
        assert_ne!(read, other);
    }

    #[test]
    fn a_base_set_to_the_data_still_held_as_text_is_the_data_and_leaves_it_unparsed() {
        let unparsed = |entity: &Entity| matches!(entity.data.as_ref(), LazyData::Text(_, parsed) if parsed.get().is_none());
        let read: Entity = serde_json::from_str(r#"{"id":"n1","data":{"b":[2.5],"a":"é"},"version":0,"updatedAt":5,"syncStatus":"dirty"}"#).unwrap();

        let text = |value: Value| DataText::of(&object(value));
        let mut same = read.clone();
        same.set_base_to(&text(json!({"b": [2.5], "a": "é"})));
        assert!(matches!(same.base, Base::Data) && unparsed(&same), "the same text: {same:?}");

        let mut reordered = read.clone();
        reordered.set_base_to(&text(json!({"a": "é", "b": [2.5]})));
        assert!(matches!(reordered.base, Base::Data), "the same data in another order: {reordered:?}");

        let mut other = read.clone();
        other.set_base_to(&text(json!({"a": "é"})));
        assert!(matches!(other.base, Base::Own(ref base) if matches!(base.as_ref(), LazyData::Text(..))), "kept as text: {other:?}");
        assert_eq!(other.base(), Some(&object(json!({"a": "é"}))));
        assert_eq!(serde_json::to_value(&other).unwrap()["base"], json!({"a": "é"}));
    }

    /// Copies of an entity (the mirror's, a plan's, a change event's) share
    /// its data, parsed once for all, until one of them changes it: the
    /// change is that copy's alone, and a base that was the data keeps it.
    #[test]
    fn copies_share_the_data_until_one_changes_it() {
        let read: Entity = serde_json::from_str(r#"{"id":"n1","data":{"a":1},"version":2,"updatedAt":5,"syncStatus":"synced","baseIsData":true}"#).unwrap();
        let mut changed = read.clone();
        assert!(Rc::ptr_eq(&read.data, &changed.data), "a copy shares the data");
        assert_eq!(changed.data(), &object(json!({"a": 1})));
        assert!(matches!(read.data.as_ref(), LazyData::Text(_, parsed) if parsed.get().is_some()), "parsed once, for both");

        changed.data_mut().insert("a".into(), json!(2));
        assert_eq!(changed.data(), &object(json!({"a": 2})));
        assert_eq!(changed.base(), Some(&object(json!({"a": 1}))), "the base was the data");
        assert_eq!(read.data(), &object(json!({"a": 1})), "the other copy keeps its data");
        assert_eq!(read.base(), Some(&object(json!({"a": 1}))));
        assert_eq!(read.clone().into_data(), object(json!({"a": 1})));
        assert_eq!(changed.into_data(), object(json!({"a": 2})));
    }

    #[test]
    fn a_path_in_data_still_held_as_text_finds_what_the_parsed_data_holds() {
        let data = r#"{"a": {"b": [1], "c": {"d": "x\"y"}}, "n": 2.5, "s": "t", "z": null, "s": "last"}"#;
        let doc = format!(r#"{{"id":"n1","data":{data},"version":0,"updatedAt":5,"syncStatus":"dirty"}}"#);
        let text: Entity = serde_json::from_str(&doc).unwrap();
        let mut parsed = text.clone();
        parsed.data_mut();
        for path in ["a", "a.b", "a.c.d", "n", "s", "z", "missing", "a.missing", "n.x", "a.b.0", "a.c.d.e", ""] {
            let path: Vec<String> = path.split('.').map(str::to_owned).collect();
            assert_eq!(text.data_at(&path), parsed.data_at(&path), "{path:?}");
        }
        assert_eq!(text.data_at(&["a".into(), "c".into(), "d".into()]).as_deref(), Some(&json!("x\"y")));
    }

    #[test]
    fn data_that_might_not_parse_is_parsed_where_the_doc_is_read() {
        let doc = |data: &str| format!(r#"{{"id":"n1","data":{data},"version":0,"updatedAt":5,"syncStatus":"dirty"}}"#);
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(130), "]".repeat(130));
        for (data, error) in [
            (r#"{"a": 1e400}"#, "number out of range"),
            (&format!(r#"{{"a": {}}}"#, "9".repeat(400)), "number out of range"),
            (r#"{"a": "\ud800"}"#, "hex escape"),
            (&deep, "recursion limit exceeded"),
        ] {
            let read = serde_json::from_str::<Entity>(&doc(data)).unwrap_err().to_string();
            assert!(read.contains("`data`: ") && read.contains(error), "{read}");
        }
        // Those that parse are read as usual.
        for (data, value) in [
            (r#"{"a": 1e300, "t": true, "f": false}"#, json!({"a": 1e300, "t": true, "f": false})),
            (r#"{"a": "\u0001"}"#, json!({"a": "\u{1}"})),
        ] {
            let entity: Entity = serde_json::from_str(&doc(data)).unwrap();
            assert_eq!(Value::Object(entity.data().clone()), value);
            assert!(serde_json::to_string(&entity).unwrap().contains(data), "written back as it was");
        }
        assert!(!might_not_parse(r#"{"title": "true or false, 1.5", "n": [12.25, -3], "edited": 1700000000000.5}"#));
    }

    #[test]
    fn replacing_or_changing_data_that_is_its_base_keeps_the_base() {
        let read: Entity =
            serde_json::from_str(r#"{"id":"n1","data":{"a":1},"baseIsData":true,"version":2,"updatedAt":5,"syncStatus":"synced"}"#).unwrap();
        let mut replaced = read.clone();
        replaced.set_data(object(json!({"b": 2})));
        let mut changed = read.clone();
        changed.data_mut().insert("b".into(), json!(2));
        for entity in [&replaced, &changed] {
            assert_eq!(entity.base(), Some(&object(json!({"a": 1}))));
        }
        assert_eq!(Value::Object(replaced.into_data()), json!({"b": 2}));
        assert_eq!(Value::Object(changed.into_data()), json!({"a": 1, "b": 2}));
    }

    #[test]
    fn a_doc_whose_data_or_base_is_not_an_object_is_unreadable() {
        for (doc, field) in [
            (r#"{"id":"n1","data":[1],"version":0,"updatedAt":5,"syncStatus":"dirty"}"#, "data"),
            (r#"{"id":"n1","data":{},"base":"x","version":0,"updatedAt":5,"syncStatus":"dirty"}"#, "base"),
        ] {
            let error = serde_json::from_str::<Entity>(doc).unwrap_err().to_string();
            assert!(error.contains(&format!("`{field}` is not a JSON object")), "{error}");
        }
    }

    #[test]
    fn with_data_keeps_everything_but_the_data() {
        let mut entity = Entity::new("n1".into(), json!({"a": 1}).as_object().cloned().unwrap(), 5.0);
        entity.remote_id = Some("r1".into());
        entity.set_base(json!({"a": 0}).as_object().cloned());
        entity.version = 3;
        entity.server_updated_at = Some(4.0);
        entity.sync_status = SyncStatus::Conflict;
        entity.deleted = true;
        entity.last_error = Some("refused".into());
        entity.pending = 2;
        entity.conflict = Some(Box::new(ConflictState { base: None, server_deleted: true, local_deleted: false }));

        let data = json!({"b": 2}).as_object().cloned().unwrap();
        assert_eq!(entity.with_data(data.clone()), Entity { data: Rc::new(LazyData::Parsed(data)), ..entity.clone() });
    }

    #[test]
    fn times_are_written_as_integers_where_whole_and_read_back_to_the_bit() {
        let doc = |updated_at: f64, server_updated_at: Option<f64>| {
            let mut entity = Entity::new("n1".into(), Map::new(), updated_at);
            entity.server_updated_at = server_updated_at;
            let text = serde_json::to_string(&entity).unwrap();
            let back: Entity = serde_json::from_str(&text).unwrap();
            assert_eq!(back.updated_at.to_bits(), updated_at.to_bits(), "{text}");
            assert_eq!(back.server_updated_at.map(f64::to_bits), server_updated_at.map(f64::to_bits), "{text}");
            text
        };
        let text = doc(1_733_380_000_000.0, Some(1_733_380_000_123.0));
        assert!(text.contains(r#""updatedAt":1733380000000,"#) && text.contains(r#""serverUpdatedAt":1733380000123,"#), "{text}");
        for odd in [1_733_380_000_000.25, -0.0, 9_007_199_254_740_992.0, -9_007_199_254_740_994.0, 1e300, 5e-324] {
            doc(odd, Some(odd));
        }
        // Docs written with a fraction, as earlier versions wrote every time, read the same.
        let old: Entity = serde_json::from_str(r#"{"id":"n1","data":{},"version":0,"updatedAt":7.0,"syncStatus":"dirty","pending":1}"#).unwrap();
        assert_eq!(old.updated_at, 7.0);
    }

    /// Stores keep entities as JSON text: every number must come back with
    /// every bit, including those whose shortest form needs 17 digits.
    #[test]
    fn numbers_survive_json_exactly() {
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let numbers: Vec<f64> = std::iter::from_fn(|| {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            Some(f64::from_bits(bits))
        })
        .filter(|n| n.is_finite())
        .take(2000)
        .chain([0.1 + 0.2, 532422178817.57916, f64::MAX, f64::MIN_POSITIVE, 5e-324])
        .collect();
        let entity = Entity::new("n1".into(), json!({ "numbers": numbers }).as_object().cloned().unwrap(), 1.0);
        let back: Entity = serde_json::from_str(&serde_json::to_string(&entity).unwrap()).unwrap();
        let read: Vec<f64> = back.data()["numbers"].as_array().unwrap().iter().map(|n| n.as_f64().unwrap()).collect();
        for (written, read) in numbers.iter().zip(&read) {
            assert_eq!(written.to_bits(), read.to_bits(), "{written:e} came back as {read:e}");
        }
    }
}
