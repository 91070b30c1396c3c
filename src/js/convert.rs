//! Conversions between JS values and the core's types, with errors that say
//! exactly which argument or field is wrong.

use js_sys::{Array, Function, Object, Reflect};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::{error_to_js, invalid, JsResult};
use crate::browser::{append_records, data_json, deep_freeze, entries_json, is_plain_object, type_name};
use crate::core::{exact_integer, Change, Data, Entity, IndexKey, Origin, Query, SharedData, SyncStatus};


/// How deep a JS value is walked before it is refused (cycles end here too).
const MAX_DEPTH: usize = tideway_protocol::MAX_DATA_DEPTH;

/// An entity's data: a plain object of JSON values. Handed over as JSON text
/// when JS finds that exact (see [`entries_as_json`]), and kept as that text;
/// else walked.
pub fn data_from_js(value: &JsValue, what: &str) -> JsResult<SharedData> {
    match data_json(value, MAX_DEPTH).and_then(SharedData::from_json) {
        Some(data) => Ok(data),
        None => data_walked(value, what).map(SharedData::from),
    }
}

/// [`data_from_js`], walking the value from Rust: this names what is wrong.
#[doc(hidden)]
pub fn data_walked(value: &JsValue, what: &str) -> JsResult<Data> {
    if !is_plain_object(value) {
        return Err(invalid(format!("{what} must be a plain object, got {}", type_name(value))));
    }
    match json_from_js(value, what, 1)? {
        Value::Object(map) => Ok(map),
        _ => unreachable!("a plain object converts to a JSON object"),
    }
}

/// An entry of `bulkPut`: the id if one was given, and the data.
pub type Entry = (Option<String>, SharedData);

/// `bulkPut`'s entries, `[{ id?, data }]`.
pub fn entries_from_js(entries: &JsValue) -> JsResult<Vec<Entry>> {
    if !Array::is_array(entries) {
        return Err(invalid_type(entries, "bulkPut takes an array of { id?, data }"));
    }
    entries_as_json(entries).map_or_else(|| entries_walked(entries), Ok)
}

/// How many of `bulkPut`'s entries one JSON text carries from JS: all of a
/// bulk write of 100k notes in one text would take some 20 MB of wasm memory
/// beside the data read from it.
const ENTRIES_PER_TEXT: u32 = 1000;

/// The entries handed over as JSON text, a thousand at a time, when JS finds
/// that they are what [`entries_walked`] accepts and JSON holds them exactly:
/// far fewer calls across the boundary than walking each one from Rust.
#[doc(hidden)]
pub fn entries_as_json(entries: &JsValue) -> Option<Vec<Entry>> {
    let count = entries.unchecked_ref::<Array>().length();
    let mut read = Vec::with_capacity(count as usize);
    for start in (0..count).step_by(ENTRIES_PER_TEXT as usize) {
        let json = entries_json(entries, MAX_DEPTH, start, count.min(start + ENTRIES_PER_TEXT))?;
        let chunk: Vec<(Option<String>, Box<RawValue>)> = serde_json::from_str(&json).ok()?;
        for (id, data) in chunk {
            read.push((id, SharedData::from_raw(data)?));
        }
    }
    Some(read)
}

/// The entries walked one by one, which names what is wrong.
#[doc(hidden)]
pub fn entries_walked(entries: &JsValue) -> JsResult<Vec<Entry>> {
    Array::from(entries)
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let what = format!("entries[{i}]");
            let options = Options::new(&entry, &what, &["id", "data"])?;
            let data = options.get("data").unwrap_or(JsValue::UNDEFINED);
            Ok((options.string("id")?, data_walked(&data, &format!("{what}.data"))?.into()))
        })
        .collect()
}

fn json_from_js(value: &JsValue, path: &str, depth: usize) -> JsResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("{path} nests deeper than {MAX_DEPTH} levels (or contains a cycle)")));
    }
    if let Some(text) = value.as_string() {
        return Ok(Value::String(text));
    }
    if let Some(number) = value.as_f64() {
        return json_number(number).ok_or_else(|| {
            // As JavaScript writes them, not as Rust does (`inf`).
            let written = if number.is_nan() { "NaN" } else if number > 0.0 { "Infinity" } else { "-Infinity" };
            invalid(format!("{path} is {written}, which JSON cannot hold"))
        });
    }
    if let Some(flag) = value.as_bool() {
        return Ok(Value::Bool(flag));
    }
    if value.is_null() {
        return Ok(Value::Null);
    }
    if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        return array
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                if item.is_undefined() {
                    return Err(invalid(format!("{item_path} is undefined; use null")));
                }
                json_from_js(&item, &item_path, depth + 1)
            })
            .collect::<JsResult<Vec<_>>>()
            .map(Value::Array);
    }
    if is_plain_object(value) {
        let object: &Object = value.unchecked_ref();
        let mut map = Map::new();
        for key in Object::keys(object).iter() {
            let field = key.as_string().unwrap_or_default();
            let item = Reflect::get(object, &key).map_err(|_| invalid(format!("{path}.{field} cannot be read")))?;
            // Like JSON.stringify: a field holding `undefined` is absent.
            if !item.is_undefined() {
                map.insert(field.clone(), json_from_js(&item, &format!("{path}.{field}"), depth + 1)?);
            }
        }
        return Ok(Value::Object(map));
    }
    Err(invalid(format!(
        "{path} is {}; data must be plain JSON (objects, arrays, strings, finite numbers, booleans, null)",
        type_name(value)
    )))
}

fn json_number(number: f64) -> Option<Value> {
    match exact_integer(number) {
        Some(whole) => Some(Value::Number(Number::from(whole))),
        None => Number::from_f64(number).map(Value::Number),
    }
}

/// A string argument.
pub fn string_from_js(value: &JsValue, what: &str) -> JsResult<String> {
    value.as_string().ok_or_else(|| invalid(format!("{what} must be a string, got {}", type_name(value))))
}

/// A value usable as an index key: a number, a string, or an array of keys.
pub fn key_from_js(value: &JsValue, what: &str) -> JsResult<IndexKey> {
    let json = json_from_js(value, what, 1).ok();
    json.as_ref()
        .and_then(IndexKey::from_json)
        .ok_or_else(|| invalid(format!("{what} must be a number, a string or an array of them, got {}", type_name(value))))
}

/// Reads an options object, refusing unknown fields so that a typo is an error, not a silent no-op.
pub struct Options<'a> {
    object: Option<&'a Object>,
    /// The object's fields, each with its name as the JS string it has.
    fields: Vec<(String, JsValue)>,
    what: &'a str,
}

impl<'a> Options<'a> {
    pub fn new(value: &'a JsValue, what: &'a str, known: &[&str]) -> JsResult<Self> {
        if value.is_undefined() || value.is_null() {
            return Ok(Options { object: None, fields: Vec::new(), what });
        }
        if !is_plain_object(value) {
            return Err(invalid(format!("{what} must be an object, got {}", type_name(value))));
        }
        let object: &Object = value.unchecked_ref();
        let mut fields = Vec::new();
        for key in Object::keys(object).iter() {
            let name = key.as_string().unwrap_or_default();
            if !known.contains(&name.as_str()) {
                return Err(invalid(format!("{what} has an unknown field {name:?}; known fields: {}", known.join(", "))));
            }
            fields.push((name, key));
        }
        Ok(Options { object: Some(object), fields, what })
    }

    /// The field's value, unless absent or undefined.
    pub fn get(&self, field: &str) -> Option<JsValue> {
        let (_, key) = self.fields.iter().find(|(name, _)| name == field)?;
        let value = Reflect::get(self.object?, key).ok()?;
        (!value.is_undefined()).then_some(value)
    }

    pub fn string(&self, field: &str) -> JsResult<Option<String>> {
        self.get(field).map(|v| string_from_js(&v, &format!("{}.{field}", self.what))).transpose()
    }

    pub fn bool(&self, field: &str) -> JsResult<bool> {
        match self.get(field) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| invalid(format!("{}.{field} must be a boolean", self.what))),
        }
    }

    pub fn count(&self, field: &str) -> JsResult<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(Some(n as usize)),
                _ => Err(invalid(format!("{}.{field} must be a non-negative integer", self.what))),
            },
        }
    }

    pub fn key(&self, field: &str) -> JsResult<Option<IndexKey>> {
        self.get(field).map(|v| key_from_js(&v, &format!("{}.{field}", self.what))).transpose()
    }
}

pub fn query_from_js(value: &JsValue) -> JsResult<Query> {
    let options = Options::new(
        value,
        "query options",
        &["index", "gte", "gt", "lte", "lt", "equals", "reverse", "limit", "offset", "includeDeleted"],
    )?;
    Ok(Query {
        index: options.string("index")?,
        gte: options.key("gte")?,
        gt: options.key("gt")?,
        lte: options.key("lte")?,
        lt: options.key("lt")?,
        equals: options.key("equals")?,
        reverse: options.bool("reverse")?,
        limit: options.count("limit")?,
        offset: options.count("offset")?.unwrap_or(0),
        include_deleted: options.bool("includeDeleted")?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaView<'a> {
    remote_id: &'a Option<String>,
    version: u64,
    updated_at: f64,
    server_updated_at: Option<f64>,
    sync_status: SyncStatus,
    deleted: bool,
    last_error: &'a Option<String>,
}

#[derive(Serialize)]
struct RecordView<'a, D> {
    id: &'a str,
    data: D,
    meta: MetaView<'a>,
}

/// The record of `entity`, to write as JSON.
fn record_view(entity: &Entity) -> RecordView<'_, impl Serialize + '_> {
    RecordView {
        id: &entity.id,
        data: entity.data_json(),
        meta: MetaView {
            remote_id: &entity.remote_id,
            version: entity.version,
            updated_at: entity.updated_at,
            server_updated_at: entity.server_updated_at,
            sync_status: entity.sync_status,
            deleted: entity.deleted,
            last_error: &entity.last_error,
        },
    }
}

/// The frozen `{ id, data, meta }` object reads return.
pub fn record_to_js(entity: &Entity) -> JsValue {
    // JSON.parse is the fastest way to build a JS object graph from Rust, and
    // our own serialization of JSON values cannot fail.
    let json = serde_json::to_string(&record_view(entity)).unwrap_or_default();
    deep_freeze(js_sys::JSON::parse(&json).unwrap_or(JsValue::UNDEFINED))
}

/// How many records one JSON text carries to JS: the records of a bulk write
/// of 100k notes written as one text would take some 25 MB of wasm memory,
/// which the module keeps once it has grown.
const RECORDS_PER_TEXT: usize = 1000;

/// The records of `entities` in a new (unfrozen) array, as [`record_to_js`]
/// builds each, with one JSON text and one parse per thousand.
pub fn records_to_js(entities: &[Entity]) -> Array {
    let records = Array::new();
    for chunk in entities.chunks(RECORDS_PER_TEXT) {
        let views: Vec<_> = chunk.iter().map(record_view).collect();
        append_records(&records, &serde_json::to_string(&views).unwrap_or_default());
    }
    records
}

/// A change as subscribers and `change` listeners receive it:
/// `{ collection, id, record, origin, error? }`.
pub fn change_to_js(change: &Change) -> JsValue {
    let object = Object::new();
    let set = |field: &str, value: JsValue| {
        let _ = Reflect::set(&object, &field.into(), &value);
    };
    set("collection", change.collection.as_str().into());
    set("id", change.id.as_str().into());
    set("record", change.entity.as_ref().map(record_to_js).unwrap_or(JsValue::UNDEFINED));
    match &change.origin {
        Origin::Local => set("origin", "local".into()),
        Origin::Sync => set("origin", "sync".into()),
        Origin::Elsewhere => set("origin", "elsewhere".into()),
        Origin::Rollback(error) => {
            set("origin", "rollback".into());
            set("error", error_to_js(error));
        }
    }
    object.into()
}

/// `action` as a JS function, such as the unsubscribe functions the API
/// returns. The JS garbage collector frees what it captures once the app lets
/// go of the function, called or not (`Closure::once_into_js` would keep it
/// forever unless called).
pub fn function_from(action: impl Fn() + 'static) -> Function {
    Closure::<dyn Fn()>::new(action).into_js_value().unchecked_into()
}

/// An INVALID_ARGUMENT error that names what was passed instead.
pub fn invalid_type(value: &JsValue, message: &str) -> JsValue {
    invalid(format!("{message}, got {}", type_name(value)))
}
