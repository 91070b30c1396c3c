//! Three-way merge of an entity's data, field by field, against the base both
//! sides started from. Only the data decides: device clocks never enter, so
//! every device merging the same three inputs gets the same result.

use serde_json::Value;

use crate::core::entity::Data;

/// One side of a merge: its data and whether it is a delete.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub data: &'a Data,
    pub deleted: bool,
}

/// The merged entity: `None` means it stays deleted.
pub type Merged = Option<Data>;

/// Merges `local` and `server` against `base` (`None`: the entity did not
/// exist on the server when the local side was written).
///
/// * A top-level field changed on one side only takes that side's value
///   (a removed field stays removed).
/// * A field changed on both sides to different values takes the server's:
///   the server's value is already what every other device sees.
/// * A delete wins only over a side that changed nothing; a delete against an
///   edit keeps the entity with the merged data, so no edit is lost.
pub fn three_way(base: Option<&Data>, local: Side, server: Side) -> Merged {
    let empty = Data::new();
    let base_data = base.unwrap_or(&empty);
    let local_changed = local.deleted || local.data != base_data;
    let server_changed = server.deleted || server.data != base_data;
    match (local.deleted, server.deleted) {
        (true, true) => return None,
        (true, false) if !server_changed => return None,
        (false, true) if !local_changed => return None,
        _ => {}
    }
    // A deleted side contributes no field values: its data is the base, so
    // the other side's edits all survive.
    let local_data = if local.deleted { base_data } else { local.data };
    let server_data = if server.deleted { base_data } else { server.data };

    let mut merged = Data::new();
    let keys = server_data.keys().chain(local_data.keys().filter(|key| !server_data.contains_key(*key)));
    for key in keys {
        let (l, s, b) = (local_data.get(key), server_data.get(key), base_data.get(key));
        let value: Option<&Value> = if l == s || l == b {
            s
        } else if s == b {
            l
        } else {
            s
        };
        if let Some(value) = value {
            merged.insert(key.clone(), value.clone());
        }
    }
    Some(merged)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn data(value: Value) -> Data {
        value.as_object().cloned().unwrap()
    }

    fn live(data: &Data) -> Side<'_> {
        Side { data, deleted: false }
    }

    #[test]
    fn edits_to_different_fields_combine() {
        let base = data(json!({"title": "a", "body": "b", "done": false}));
        let local = data(json!({"title": "A", "body": "b", "done": false}));
        let server = data(json!({"title": "a", "body": "B", "done": false, "tag": "x"}));
        let merged = three_way(Some(&base), live(&local), live(&server)).unwrap();
        assert_eq!(Value::Object(merged), json!({"title": "A", "body": "B", "done": false, "tag": "x"}));
    }

    #[test]
    fn same_field_edited_on_both_sides_takes_the_server_value() {
        let base = data(json!({"title": "a"}));
        let merged = three_way(Some(&base), live(&data(json!({"title": "L"}))), live(&data(json!({"title": "S"})))).unwrap();
        assert_eq!(Value::Object(merged), json!({"title": "S"}));
    }

    #[test]
    fn removals_on_one_side_stay_removed() {
        let base = data(json!({"a": 1, "b": 2}));
        let merged = three_way(Some(&base), live(&data(json!({"a": 1}))), live(&data(json!({"a": 5, "b": 2})))).unwrap();
        assert_eq!(Value::Object(merged), json!({"a": 5}));
    }

    #[test]
    fn a_delete_loses_to_an_edit_and_wins_over_no_edit() {
        let base = data(json!({"a": 1}));
        let edited = data(json!({"a": 2}));
        let gone = Side { data: &base, deleted: true };
        assert_eq!(three_way(Some(&base), gone, live(&edited)), Some(edited.clone()));
        assert_eq!(three_way(Some(&base), live(&edited), gone), Some(edited.clone()));
        assert_eq!(three_way(Some(&base), gone, live(&base)), None);
        assert_eq!(three_way(Some(&base), live(&base), gone), None);
    }

    fn small_data() -> impl Strategy<Value = Data> {
        prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c", "d", "e"]), 0..4i32, 0..5).prop_map(|map| {
            map.into_iter().map(|(key, value)| (key.to_string(), json!(value))).collect()
        })
    }

    proptest! {
        /// Same inputs, same output, whatever order the fields arrive in: the
        /// merge has no other input (no clock) that could make devices disagree.
        #[test]
        fn deterministic_and_order_independent(base in small_data(), local in small_data(), server in small_data()) {
            let first = three_way(Some(&base), live(&local), live(&server));
            let reversed = |d: &Data| d.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect::<Data>();
            let again = three_way(Some(&reversed(&base)), live(&reversed(&local)), live(&reversed(&server)));
            prop_assert_eq!(first, again);
        }

        /// Every field only one side changed comes through with that side's value
        /// (or stays removed); fields nobody changed keep the base value.
        #[test]
        fn keeps_every_non_overlapping_edit(base in small_data(), local in small_data(), server in small_data()) {
            let merged = three_way(Some(&base), live(&local), live(&server)).unwrap();
            let keys: std::collections::BTreeSet<&String> = base.keys().chain(local.keys()).chain(server.keys()).collect();
            for key in keys {
                let (b, l, s) = (base.get(key), local.get(key), server.get(key));
                let expected = match (l != b, s != b) {
                    (true, false) => l,
                    (false, true) => s,
                    (false, false) => b,
                    (true, true) => s,
                };
                prop_assert_eq!(merged.get(key), expected, "field {}", key);
            }
        }

        /// Merging with an unchanged side gives the other side exactly.
        #[test]
        fn one_sided_change_is_taken_whole(base in small_data(), other in small_data()) {
            prop_assert_eq!(three_way(Some(&base), live(&base), live(&other)), Some(other.clone()));
            let merged = three_way(Some(&base), live(&other), live(&base)).unwrap();
            prop_assert_eq!(Value::Object(merged), Value::Object(other.clone()));
        }
    }
}
