//! Three-way JSON merge: `base` (what the writer read), `ours` (the
//! write) and `theirs` (the current value), each possibly absent (a
//! deletion, or no entry).
//!
//! Objects merge field by field, recursively. A side that left a field as
//! it was in the base takes the other side's change; two sides that made the
//! same change agree. Arrays and scalars are atomic values: changed both
//! ways differently, they are a field conflict. With set semantics, arrays
//! changed both ways merge as sets instead: the base's elements that
//! neither side removed, then what `ours` added, then what `theirs` added
//! (a removal wins over keeping; duplicates are dropped). A field deleted on one side and changed on the other is a
//! field conflict, and so is the whole value deleted on one side and
//! changed on the other.
//!
//! Each field conflict is settled by `prefer` (a side), or, without one,
//! reported (the value then holds `ours` there, and the caller refuses).

use serde_json::{Map, Value};

/// How arrays changed on both sides merge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArrayMerge {
    /// An array is one value (the default).
    #[default]
    Atomic,
    /// Arrays are sets: additions of both sides are kept, a removal wins.
    Set,
}

/// Which side wins a field conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The write being merged.
    Ours,
    /// The current value.
    Theirs,
}

/// The result of a merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The merged value (`None`: deleted).
    pub value: Option<Value>,
    /// JSON pointers of the fields changed both ways ("" is the whole
    /// value), whether or not `prefer` settled them.
    pub conflicts: Vec<String>,
}

/// Merges `ours` and `theirs`, both derived from `base`.
pub fn merge3(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    arrays: ArrayMerge,
    prefer: Option<Side>,
) -> Merged {
    let mut conflicts = Vec::new();
    let value = merge_at(base, ours, theirs, arrays, prefer, "", &mut conflicts);
    Merged { value, conflicts }
}

fn merge_at(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    arrays: ArrayMerge,
    prefer: Option<Side>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    if ours == theirs || theirs == base {
        return ours.cloned();
    }
    if ours == base {
        return theirs.cloned();
    }
    match (ours, theirs) {
        (Some(Value::Object(o)), Some(Value::Object(t))) => {
            let empty = Map::new();
            let b = match base {
                Some(Value::Object(b)) => b,
                _ => &empty,
            };
            let mut out = Map::new();
            // Field order: ours, then fields only theirs has.
            let keys = o.keys().chain(t.keys().filter(|k| !o.contains_key(*k)));
            let keys: Vec<&String> =
                keys.chain(b.keys().filter(|k| !o.contains_key(*k) && !t.contains_key(*k))).collect();
            for k in keys {
                let child = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                if let Some(v) = merge_at(b.get(k), o.get(k), t.get(k), arrays, prefer, &child, conflicts) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Some(Value::Array(o)), Some(Value::Array(t))) if arrays == ArrayMerge::Set => {
            let empty = Vec::new();
            let b = match base {
                Some(Value::Array(b)) => b,
                _ => &empty,
            };
            let removed = |v: &Value| b.contains(v) && (!o.contains(v) || !t.contains(v));
            let mut out: Vec<Value> = Vec::new();
            for v in b.iter().chain(o).chain(t) {
                if !removed(v) && !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Some(Value::Array(out))
        }
        _ => {
            conflicts.push(path.to_owned());
            match prefer {
                Some(Side::Theirs) => theirs.cloned(),
                _ => ours.cloned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn merge(b: Value, o: Value, t: Value) -> Merged {
        merge3(Some(&b), Some(&o), Some(&t), ArrayMerge::Atomic, None)
    }

    #[test]
    fn disjoint_fields_merge_and_same_fields_conflict() {
        let m = merge(json!({"a": 1, "b": 1}), json!({"a": 2, "b": 1}), json!({"a": 1, "b": 3}));
        assert_eq!((m.value, m.conflicts.len()), (Some(json!({"a": 2, "b": 3})), 0));
        let m = merge(json!({"a": {"x": 1}}), json!({"a": {"x": 2}}), json!({"a": {"x": 3}}));
        assert_eq!(m.conflicts, ["/a/x"]);
        let settled = merge3(
            Some(&json!({"a": 1})),
            Some(&json!({"a": 2})),
            Some(&json!({"a": 3})),
            ArrayMerge::Atomic,
            Some(Side::Theirs),
        );
        assert_eq!(settled.value, Some(json!({"a": 3})));
        assert_eq!(settled.conflicts, ["/a"], "a settled conflict is still reported");
    }

    #[test]
    fn deletions_against_modifications_conflict() {
        let m = merge(json!({"a": 1, "b": 1}), json!({"b": 1}), json!({"a": 2, "b": 1}));
        assert_eq!(m.conflicts, ["/a"]);
        let m = merge(json!({"a": 1, "b": 1}), json!({"b": 1}), json!({"a": 1, "b": 2}));
        assert_eq!(m.value, Some(json!({"b": 2})), "a deletion merges with an unrelated change");
        let whole = merge3(Some(&json!(1)), None, Some(&json!(2)), ArrayMerge::Atomic, None);
        assert_eq!(whole.conflicts, [""]);
        let gone = merge3(Some(&json!(1)), None, Some(&json!(1)), ArrayMerge::Atomic, None);
        assert_eq!((gone.value, gone.conflicts.len()), (None, 0));
    }

    #[test]
    fn arrays_are_atomic_unless_sets() {
        let (b, o, t) = (json!({"l": [1, 2]}), json!({"l": [1, 2, 3]}), json!({"l": [2, 4]}));
        assert_eq!(merge(b.clone(), o.clone(), t.clone()).conflicts, ["/l"]);
        let m = merge3(Some(&b), Some(&o), Some(&t), ArrayMerge::Set, None);
        assert_eq!(m.value, Some(json!({"l": [2, 3, 4]})), "1 removed by theirs; 3 and 4 added");
        assert!(m.conflicts.is_empty());
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-100i64..100).prop_map(|n| json!(n)),
            "[a-c]{0,3}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-e]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A base object and two edits of it touching disjoint field sets.
    fn disjoint_edits() -> impl Strategy<Value = (Map<String, Value>, Map<String, Value>, Map<String, Value>)> {
        (
            prop::collection::btree_map("[a-h]", value(), 0..6),
            prop::collection::btree_map("[a-h]", prop::option::of(value()), 0..6),
            prop::collection::btree_map("[a-h]", prop::option::of(value()), 0..6),
        )
            .prop_map(|(base, ours_edit, theirs_edit)| {
                let base: Map<String, Value> = base.into_iter().collect();
                let apply = |edit: &std::collections::BTreeMap<String, Option<Value>>, skip: &dyn Fn(&str) -> bool| {
                    let mut out = base.clone();
                    for (k, v) in edit.iter().filter(|(k, _)| !skip(k)) {
                        match v {
                            Some(v) => out.insert(k.clone(), v.clone()),
                            None => out.remove(k),
                        };
                    }
                    out
                };
                let ours = apply(&ours_edit, &|_| false);
                let theirs = apply(&theirs_edit, &|k| ours_edit.contains_key(k));
                (base, ours, theirs)
            })
    }

    proptest! {
        #[test]
        fn an_unchanged_side_yields_the_other(base in value(), other in prop::option::of(value())) {
            for arrays in [ArrayMerge::Atomic, ArrayMerge::Set] {
                let m = merge3(Some(&base), Some(&base), other.as_ref(), arrays, None);
                prop_assert_eq!(&m.value, &other);
                prop_assert!(m.conflicts.is_empty());
                let m = merge3(Some(&base), other.as_ref(), Some(&base), arrays, None);
                prop_assert_eq!(&m.value, &other);
                prop_assert!(m.conflicts.is_empty());
            }
        }

        #[test]
        fn disjoint_changes_commute_and_both_apply((base, ours, theirs) in disjoint_edits()) {
            let (b, o, t) = (Value::Object(base.clone()), Value::Object(ours.clone()), Value::Object(theirs.clone()));
            let one = merge3(Some(&b), Some(&o), Some(&t), ArrayMerge::Atomic, None);
            let other = merge3(Some(&b), Some(&t), Some(&o), ArrayMerge::Atomic, None);
            prop_assert!(one.conflicts.is_empty() && other.conflicts.is_empty());
            prop_assert_eq!(&one.value, &other.value);
            // Every field as the side that changed it left it.
            let merged = one.value.unwrap();
            for k in base.keys().chain(ours.keys()).chain(theirs.keys()) {
                let expected = if ours.get(k) != base.get(k) { ours.get(k) } else { theirs.get(k) };
                prop_assert_eq!(merged.get(k), expected, "field {}", k);
            }
        }

        #[test]
        fn merging_is_symmetric_in_conflicts(b in value(), o in value(), t in value()) {
            let one = merge3(Some(&b), Some(&o), Some(&t), ArrayMerge::Atomic, None);
            let other = merge3(Some(&b), Some(&t), Some(&o), ArrayMerge::Atomic, None);
            let mut a = one.conflicts.clone();
            let mut c = other.conflicts.clone();
            a.sort();
            c.sort();
            prop_assert_eq!(a, c);
            if one.conflicts.is_empty() {
                // Without conflicts the order of the sides does not matter,
                // up to the order of object fields.
                prop_assert_eq!(one.value, other.value);
            }
        }
    }
}
