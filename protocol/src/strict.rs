//! Reading entity data strictly: JSON that parsers would silently change is
//! refused instead of stored, so what the server keeps is exactly what every
//! client (JavaScript included) reads back. Refused: an object with the same key
//! twice (parsers keep one of them), an integer beyond 2^53 − 1 in magnitude
//! (JavaScript rounds it), and a non-zero number literal that underflows to 0.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::MAX_SAFE_INTEGER;

/// Every message of a refusal from this module starts with this, so a server can
/// tell them from other parse errors (and answer `invalid_data`).
pub const DATA_ERROR_PREFIX: &str = "invalid data: ";

/// A JSON value read strictly (see the module's rules).
pub fn strict_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    deserializer.deserialize_any(StrictVisitor)
}

/// `data` of a mutation, read strictly; `null` or absent is `None`.
pub fn optional_data<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<Map<String, Value>>,
{
    match strict_value(deserializer)? {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map.into())),
        other => Err(de::Error::invalid_type(unexpected(&other), &"a JSON object")),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::Null => de::Unexpected::Unit,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct StrictVisitor;

impl<'de> DeserializeSeed<'de> for StrictVisitor {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn safe_integer<E: de::Error>(n: i128) -> Result<(), E> {
    if n.unsigned_abs() > u128::from(MAX_SAFE_INTEGER) {
        return Err(E::custom(format!(
            "{DATA_ERROR_PREFIX}the integer {n} is beyond ±{MAX_SAFE_INTEGER}, which JavaScript cannot hold exactly"
        )));
    }
    Ok(())
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        safe_integer(i128::from(v))?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        safe_integer(i128::from(v))?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom(format!("{DATA_ERROR_PREFIX}{v} is not a JSON number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictVisitor)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictVisitor)?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "{DATA_ERROR_PREFIX}the key {} appears twice in one object",
                    crate::echo(&key)
                )));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Finds, in JSON text, a number literal that is not zero but reads as 0 (such
/// as `1e-400`): the value could only be stored changed. Strings are skipped.
/// Answers the literal, cut short.
pub fn find_underflowing_number(json: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_string = false;
    while i < json.len() {
        let b = json[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < json.len() && matches!(json[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let literal = std::str::from_utf8(&json[start..i]).unwrap_or("");
            let mantissa = literal.split(['e', 'E']).next().unwrap_or("");
            let has_exponent_or_fraction = literal.len() != mantissa.len() || mantissa.contains('.');
            if has_exponent_or_fraction
                && mantissa.bytes().any(|d| matches!(d, b'1'..=b'9'))
                && literal.parse::<f64>().is_ok_and(|v| v == 0.0)
            {
                return Some(crate::echo(literal));
            }
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Value, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        strict_value(&mut deserializer).map_err(|e| e.to_string())
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(read(r#"{"a": 1, "a": 2}"#).unwrap_err().starts_with(DATA_ERROR_PREFIX));
        assert!(read(r#"{"x": [{"b": 1, "b": 1}]}"#).is_err());
        assert_eq!(read(r#"{"a": {"a": 1}}"#), Ok(serde_json::json!({"a": {"a": 1}})));
    }

    #[test]
    fn integers_javascript_cannot_hold_are_refused() {
        assert!(read("9007199254740991").is_ok());
        assert!(read("-9007199254740991").is_ok());
        assert!(read("9007199254740992").unwrap_err().starts_with(DATA_ERROR_PREFIX));
        assert!(read("-9007199254740993").is_err());
        assert!(read("[18446744073709551615]").is_err());
        // Floats are what JavaScript reads too.
        assert!(read("1e300").is_ok());
        assert!(read("0.5").is_ok());
    }

    #[test]
    fn non_zero_literals_that_read_as_zero_are_found() {
        assert_eq!(find_underflowing_number(br#"{"a": 1e-400}"#), Some("\"1e-400\"".into()));
        assert!(find_underflowing_number(br#"{"a": -2.5E-999}"#).is_some());
        assert!(find_underflowing_number(br#"{"a": 0.0, "b": 0e10, "c": -0, "d": 1e-300, "e": 5}"#).is_none());
        assert!(find_underflowing_number(br#"{"s": "1e-400 \" 1e-400"}"#).is_none(), "strings are skipped");
    }
}
