//! Index keys, ordered exactly as IndexedDB orders them, so that a query
//! answered from memory returns what the same query on IndexedDB returns.
//!
//! IndexedDB orders numbers before strings before arrays; strings compare by
//! UTF-16 code units (not by UTF-8 bytes, which differ above U+FFFF); arrays
//! compare element by element. Booleans, null and objects are not keys: an
//! entity whose indexed field holds one is left out of that index.

use std::borrow::Borrow;
use std::cmp::Ordering;

use serde::Serialize;
use serde_json::Value;

/// Serializes as the JSON value it was made from (a number, a string, an array).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum IndexKey {
    Number(f64),
    String(String),
    Array(Vec<IndexKey>),
}

impl IndexKey {
    /// The key for a JSON value, or `None` when IndexedDB would not index it.
    pub fn from_json(value: &Value) -> Option<IndexKey> {
        match value {
            // IndexedDB treats -0 and 0 as the same key.
            Value::Number(n) => n.as_f64().filter(|n| !n.is_nan()).map(|n| IndexKey::Number(n + 0.0)),
            Value::String(s) => Some(IndexKey::String(s.clone())),
            Value::Array(items) => items.iter().map(IndexKey::from_json).collect::<Option<Vec<_>>>().map(IndexKey::Array),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            IndexKey::Number(_) => 0,
            IndexKey::String(_) => 1,
            IndexKey::Array(_) => 2,
        }
    }
}

/// Compares two strings by UTF-16 code units, as JavaScript and IndexedDB do.
///
/// UTF-8 byte order is code point order, which differs from UTF-16 order
/// only when a character above U+FFFF (lead byte 0xF0..0xF4) meets one in
/// U+E000..U+FFFF (lead byte 0xEE or 0xEF). So the bytes decide whenever one
/// of the first two bytes that differ is below 0xEE: either it starts a
/// character below U+E000, or both are continuation bytes of characters with
/// the same lead byte. Only otherwise are the strings compared as UTF-16.
#[inline]
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match first_difference(x, y) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xEE || y[i] < 0xEE => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// The first position where `x` and `y` differ, if one does before the
/// shorter ends. Eight bytes at a time: index keys and ids often share
/// long prefixes, and this runs at every comparison of a sort or a search.
#[inline]
fn first_difference(x: &[u8], y: &[u8]) -> Option<usize> {
    let common = x.len().min(y.len());
    let chunks = x[..common].chunks_exact(8).zip(y[..common].chunks_exact(8));
    for (i, (p, q)) in chunks.enumerate() {
        let p = u64::from_le_bytes(p.try_into().expect("a chunk of eight bytes"));
        let q = u64::from_le_bytes(q.try_into().expect("a chunk of eight bytes"));
        if p != q {
            // In little-endian order the lowest differing bit is in the first differing byte.
            return Some(i * 8 + (p ^ q).trailing_zeros() as usize / 8);
        }
    }
    (common / 8 * 8..common).find(|&i| x[i] != y[i])
}

impl Ord for IndexKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (IndexKey::Number(a), IndexKey::Number(b)) => a.total_cmp(b),
            (IndexKey::String(a), IndexKey::String(b)) => cmp_utf16(a, b),
            (IndexKey::Array(a), IndexKey::Array(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IndexKey {}

/// An entity id as a primary key: ordered by UTF-16 code units like IndexedDB keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrimaryKey(pub String);

impl Ord for PrimaryKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_utf16(&self.0, &other.0)
    }
}

impl PartialOrd for PrimaryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A borrowed id with [`PrimaryKey`]'s order, so that maps keyed by
/// `PrimaryKey` can be searched with a `&str` without copying it first.
#[derive(Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Id(str);

impl Id {
    pub fn new(id: &str) -> &Id {
        // SAFETY: `Id` is a `repr(transparent)` wrapper of `str`, so both
        // references have the same layout and the same lifetime.
        unsafe { &*(id as *const str as *const Id) }
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_utf16(&self.0, &other.0)
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<Id> for PrimaryKey {
    fn borrow(&self) -> &Id {
        Id::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(value: Value) -> IndexKey {
        IndexKey::from_json(&value).unwrap()
    }

    #[test]
    fn types_order_numbers_strings_arrays() {
        assert!(key(json!(1e300)) < key(json!("")));
        assert!(key(json!("zzz")) < key(json!([])));
        assert!(key(json!([1, "a"])) < key(json!([1, "b"])));
        assert!(key(json!([1])) < key(json!([1, 0])));
        assert!(key(json!(-0.5)) < key(json!(2)));
    }

    #[test]
    fn non_keys_are_not_indexed() {
        for value in [json!(true), json!(null), json!({"a": 1}), json!([1, {"a": 1}])] {
            assert!(IndexKey::from_json(&value).is_none(), "{value}");
        }
    }

    #[test]
    fn strings_compare_by_utf16_code_units() {
        // U+FF61 is one UTF-16 unit above the surrogates that encode U+1F600:
        // UTF-8 byte order says the emoji is larger, UTF-16 order says it is smaller.
        assert_eq!(cmp_utf16("\u{1F600}", "\u{FF61}"), Ordering::Less);
        assert!(PrimaryKey("\u{1F600}".into()) < PrimaryKey("\u{FF61}".into()));
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn utf16_order_matches_js_for_any_strings(a in "[a\u{e000}\u{ffff}\u{10000}\u{1f600}é]{0,6}|.*", b in "[a\u{e000}\u{ffff}\u{10000}\u{1f600}é]{0,6}|.*") {
            let expected = a.encode_utf16().collect::<Vec<_>>().cmp(&b.encode_utf16().collect::<Vec<_>>());
            proptest::prop_assert_eq!(cmp_utf16(&a, &b), expected);
        }

        #[test]
        fn utf16_order_holds_past_a_long_shared_prefix(prefix in ".{0,40}", a in "[a\u{e000}\u{ffff}\u{10000}\u{1f600}é]{0,12}", b in "[a\u{e000}\u{ffff}\u{10000}\u{1f600}é]{0,12}") {
            let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
            let expected = a.encode_utf16().collect::<Vec<_>>().cmp(&b.encode_utf16().collect::<Vec<_>>());
            proptest::prop_assert_eq!(cmp_utf16(&a, &b), expected);
        }
    }
}
