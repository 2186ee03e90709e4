//! Property tests of core's pure logic against small reference implementations.
//!
//! They cover merge patches, JSON patches, the three-way merge, keys and
//! patterns, and transaction planning. Each reference is written from the
//! specification (RFC 7386, RFC 6902, docs/api.md, docs/conflicts.md), not from
//! the code under test, so that a property fails when core drifts from what
//! a user was promised.

use std::collections::{BTreeMap, BTreeSet};

use ctxmesh_core::context::ContextSettings;
use ctxmesh_core::entry::{Entry, EntryMeta, EntryWrite};
use ctxmesh_core::ids::{self, ContextId, EntryKey, KeyPattern};
use ctxmesh_core::merge::{ArrayMerge, Side, merge3};
use ctxmesh_core::schema::CompiledSchemas;
use ctxmesh_core::txn::{
    ChangeKind, Compare, CompareOp, Op, OpResult, PatchBody, Plan, PlanInput, Snapshot, TxnResponse, plan_txn,
};
use ctxmesh_core::{ContextInfo, Error, Limits, TxnRequest};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

// Generated JSON.

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..20).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value of depth at most 3, with object keys drawn from `keys`.
fn json(keys: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(3, 32, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A JSON object whose members are any JSON values.
fn object(keys: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop::collection::btree_map(keys.clone(), json(keys), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// Few distinct keys, so that patches and documents share members.
fn few_keys() -> BoxedStrategy<String> {
    "[a-d]".boxed()
}

/// Keys that need escaping in a JSON pointer (`~`, `/`, and the empty key).
fn awkward_keys() -> BoxedStrategy<String> {
    "[a-b~/]{0,2}".boxed()
}

/// Keys for paths into nested objects: few, and some need escaping
/// (`~1` is a key of its own, not a `/`).
fn path_keys() -> BoxedStrategy<String> {
    prop::sample::select(vec!["a", "b", "~", "a/b", "~1"]).prop_map(str::to_owned).boxed()
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer of a path of object members.
fn pointer(path: &[String]) -> String {
    path.iter().map(|t| format!("/{}", escape(t))).collect()
}

/// Every location in `doc` as a JSON pointer, the root ("") first.
fn locations(doc: &Value) -> Vec<String> {
    fn walk(at: &Value, here: String, out: &mut Vec<String>) {
        out.push(here.clone());
        match at {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, format!("{here}/{}", escape(k)), out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(v, format!("{here}/{i}"), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    out
}

/// The locations in `doc` that hold objects.
fn object_locations(doc: &Value) -> Vec<String> {
    locations(doc).into_iter().filter(|p| doc.pointer(p).is_some_and(Value::is_object)).collect()
}

/// A member name that the object at `parent` does not have yet.
fn absent_member(doc: &Value, parent: &str, mut key: String) -> String {
    while doc.pointer(parent).and_then(|o| o.get(&key)).is_some() {
        key.push('x');
    }
    key
}

// 1. JSON Merge Patch (RFC 7386).

/// RFC 7386 section 2, the `MergePatch(Target, Patch)` pseudo-code; an
/// absent target is `None`.
fn rfc7386(target: Option<&Value>, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            target.remove(name);
        } else {
            let merged = rfc7386(target.get(name), value);
            target.insert(name.clone(), merged);
        }
    }
    Value::Object(target)
}

/// A merge patch: mostly an object (with nulls that delete), sometimes any
/// value (which replaces the target).
fn merge_patch() -> BoxedStrategy<Value> {
    prop_oneof![4 => object(few_keys()), 1 => json(few_keys())].boxed()
}

fn merge_patched(target: &Value, patch: &Value) -> Value {
    let mut value = target.clone();
    PatchBody::MergePatch(patch.clone()).apply("doc", &mut value).expect("a merge patch always applies");
    value
}

proptest! {
    /// A client sending `merge_patch` gets exactly the value RFC 7386
    /// defines, whatever the target and the patch (nulls delete, objects
    /// merge member by member, anything else replaces).
    #[test]
    fn merge_patch_follows_rfc_7386(target in json(few_keys()), patch in merge_patch()) {
        prop_assert_eq!(merge_patched(&target, &patch), rfc7386(Some(&target), &patch));
    }

    /// A merge patch sent twice (a retry) leaves the value as sending it
    /// once did.
    #[test]
    fn merge_patch_is_idempotent(target in json(few_keys()), patch in merge_patch()) {
        let once = merge_patched(&target, &patch);
        prop_assert_eq!(merge_patched(&once, &patch), once);
    }
}

// 2. JSON Patch (RFC 6902).

/// Applies `ops` as core does; returns the value afterwards and the result.
fn json_patched(doc: &Value, ops: Value) -> (Value, Result<(), Error>) {
    let mut value = doc.clone();
    let result = PatchBody::JsonPatch(ops).apply("doc", &mut value);
    (value, result)
}

/// One operation of a generated patch, with locations chosen among those
/// of the document it is applied to (it may or may not apply).
#[derive(Clone, Debug)]
enum Step {
    Add(Index, String, Value),
    Remove(Index),
    Replace(Index, Value),
    Move(Index, Index, Option<String>),
    Copy(Index, Index, Option<String>),
    Test(Index),
}

fn step() -> impl Strategy<Value = Step> {
    let member = prop::option::of(awkward_keys());
    prop_oneof![
        (any::<Index>(), awkward_keys(), json(awkward_keys())).prop_map(|(a, k, v)| Step::Add(a, k, v)),
        any::<Index>().prop_map(Step::Remove),
        (any::<Index>(), json(awkward_keys())).prop_map(|(a, v)| Step::Replace(a, v)),
        (any::<Index>(), any::<Index>(), member.clone()).prop_map(|(a, b, m)| Step::Move(a, b, m)),
        (any::<Index>(), any::<Index>(), member).prop_map(|(a, b, m)| Step::Copy(a, b, m)),
        any::<Index>().prop_map(Step::Test),
    ]
}

impl Step {
    /// The operation as JSON, its locations taken from `doc`.
    fn resolve(&self, doc: &Value) -> Value {
        let all = locations(doc);
        let at = |i: &Index| all[i.index(all.len())].clone();
        // A new member of an object, or a position in an array (maybe past
        // its end, or `-`).
        let inside = |parent: String, key: &str| match doc.pointer(&parent) {
            Some(Value::Array(_)) if key.is_empty() => format!("{parent}/-"),
            Some(Value::Array(a)) => format!("{parent}/{}", key.len() % (a.len() + 2)),
            _ => format!("{parent}/{}", escape(key)),
        };
        let to = |i: &Index, member: &Option<String>| match member {
            Some(key) => inside(at(i), key),
            None => at(i),
        };
        match self {
            Step::Add(a, key, value) => json!({"op": "add", "path": inside(at(a), key), "value": value}),
            Step::Remove(a) => json!({"op": "remove", "path": at(a)}),
            Step::Replace(a, value) => json!({"op": "replace", "path": at(a), "value": value}),
            Step::Move(a, b, m) => json!({"op": "move", "from": at(a), "path": to(b, m)}),
            Step::Copy(a, b, m) => json!({"op": "copy", "from": at(a), "path": to(b, m)}),
            Step::Test(a) => json!({"op": "test", "path": at(a), "value": doc.pointer(&at(a))}),
        }
    }
}

fn context(revision: u64, entry_count: u64) -> ContextInfo {
    ContextInfo {
        revision,
        entry_count,
        ..ContextInfo::new("c", "a", ContextSettings::default(), chrono::DateTime::UNIX_EPOCH)
    }
}

/// Plans `txn` by agent `agent-a` with the default policy (`reject`),
/// no schemas and the default limits.
fn plan(ctx: &ContextInfo, snapshot: &Snapshot, txn: &TxnRequest) -> Result<(Plan, TxnResponse), Error> {
    let schemas = CompiledSchemas::default();
    let limits = Limits::default();
    let input = PlanInput {
        context: ctx,
        schemas: &schemas,
        limits: &limits,
        author: "agent-a",
        now: chrono::DateTime::UNIX_EPOCH,
    };
    plan_txn(&input, snapshot, txn)
}

fn entry(key: &str, value: Value, revision: u64, version: u64) -> Entry {
    Entry {
        key: key.to_owned(),
        value,
        revision,
        version,
        created_revision: 1,
        updated_at: chrono::DateTime::UNIX_EPOCH,
        author: "agent-b".into(),
        meta: EntryMeta::default(),
        vclock: Default::default(),
    }
}

fn key(k: &str) -> EntryKey {
    EntryKey::parse(k).expect("a valid key")
}

proptest! {
    /// Adding a new object member and removing it again, in one patch or in
    /// two, gives back the document; in between, the member reads back.
    #[test]
    fn json_patch_add_then_remove_restores(
        doc in object(awkward_keys()),
        at in any::<Index>(),
        name in awkward_keys(),
        value in json(awkward_keys()),
    ) {
        let objects = object_locations(&doc);
        let parent = &objects[at.index(objects.len())];
        let member = format!("{parent}/{}", escape(&absent_member(&doc, parent, name)));
        let add = json!({"op": "add", "path": member, "value": value});
        let remove = json!({"op": "remove", "path": member});

        let (after, result) = json_patched(&doc, json!([add, remove]));
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(&after, &doc);

        let (added, result) = json_patched(&doc, json!([add]));
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(added.pointer(&member), Some(&value));
        let (removed, result) = json_patched(&added, json!([remove]));
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(&removed, &doc);
    }

    /// `replace` at any existing location (the root, an object member, an
    /// array element) puts the new value there and changes nothing else.
    #[test]
    fn json_patch_replace_then_read(doc in json(awkward_keys()), at in any::<Index>(), value in json(awkward_keys())) {
        let all = locations(&doc);
        let path = &all[at.index(all.len())];
        let (after, result) = json_patched(&doc, json!([{"op": "replace", "path": path, "value": value}]));
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(after.pointer(path), Some(&value));
        let mut expected = doc.clone();
        *expected.pointer_mut(path).unwrap() = value;
        prop_assert_eq!(after, expected);
    }

    /// A patch is all or nothing: when its last `test` fails, whatever the
    /// operations before it did (adds, removes, moves, copies...), the
    /// patch fails with `invalid_patch` and the value is as it was; in a
    /// transaction, the whole transaction fails.
    #[test]
    fn json_patch_failing_test_changes_nothing(
        doc in object(awkward_keys()),
        steps in prop::collection::vec(step(), 0..5),
        at in any::<Index>(),
    ) {
        let mut ops: Vec<Value> = steps.iter().map(|s| s.resolve(&doc)).collect();
        let all = locations(&doc);
        // Generated strings have at most two letters: this test never holds.
        ops.push(json!({"op": "test", "path": all[at.index(all.len())], "value": "never generated"}));
        let (after, result) = json_patched(&doc, Value::Array(ops.clone()));
        prop_assert_eq!(result.map_err(|e| e.code().as_str()), Err("invalid_patch"));
        prop_assert_eq!(&after, &doc);

        let snapshot = Snapshot {
            entries: BTreeMap::from([("doc".to_owned(), entry("doc", doc, 3, 1))]),
            ..Default::default()
        };
        let txn = TxnRequest {
            success: vec![
                Op::Put { key: key("other"), write: EntryWrite { value: json!(1), ..Default::default() } },
                Op::Patch { key: key("doc"), patch: PatchBody::JsonPatch(Value::Array(ops)) },
            ],
            ..Default::default()
        };
        prop_assert_eq!(plan(&context(3, 1), &snapshot, &txn).map(|_| ()).map_err(|e| e.code().as_str()), Err("invalid_patch"));
    }

    /// An operation on a location that does not exist (a missing member, a
    /// member under one, an array index past the end) fails with the stable
    /// code `invalid_patch` and changes nothing.
    #[test]
    fn json_patch_on_a_missing_path_fails(
        doc in object(awkward_keys()),
        at in any::<Index>(),
        name in awkward_keys(),
        kind in 0usize..8,
        value in json(awkward_keys()),
    ) {
        let objects = object_locations(&doc);
        let parent = &objects[at.index(objects.len())];
        let missing = format!("{parent}/{}", escape(&absent_member(&doc, parent, name)));
        let arrays: Vec<(String, usize)> = locations(&doc)
            .into_iter()
            .filter_map(|p| doc.pointer(&p).and_then(Value::as_array).map(|a| (p.clone(), a.len())))
            .collect();
        let op = match (kind, arrays.first()) {
            (0, _) => json!({"op": "remove", "path": missing}),
            (1, _) => json!({"op": "replace", "path": missing, "value": value}),
            (2, _) => json!({"op": "test", "path": missing, "value": value}),
            (3, _) => json!({"op": "add", "path": format!("{missing}/child"), "value": value}),
            (4, _) => json!({"op": "move", "from": missing, "path": "/elsewhere"}),
            (5, _) => json!({"op": "copy", "from": missing, "path": "/elsewhere"}),
            (6, Some((array, len))) => json!({"op": "remove", "path": format!("{array}/{len}")}),
            (7, Some((array, len))) => json!({"op": "add", "path": format!("{array}/{}", len + 1), "value": value}),
            _ => json!({"op": "replace", "path": format!("{missing}/child"), "value": value}),
        };
        let (after, result) = json_patched(&doc, json!([op]));
        prop_assert_eq!(result.map_err(|e| e.code().as_str()), Err("invalid_patch"));
        prop_assert_eq!(after, doc);
    }
}

// 3. The three-way merge.

/// Who makes an edit in a three-way merge.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Ours,
    Theirs,
    Both,
}

/// An edit of an object member: its path and its new value (`None`: the
/// member is deleted).
type Edit = (Vec<String>, Option<Value>);

/// Follows `raw` into `base` through objects; stops at the first member
/// that is missing or not an object. The result names an object member.
fn resolve(base: &Value, raw: &[String]) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = base;
    for key in raw {
        path.push(key.clone());
        match at.get(key) {
            Some(next @ Value::Object(_)) => at = next,
            _ => break,
        }
    }
    path
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Applies an edit whose parents are objects.
fn apply_edit(value: &mut Value, (path, new): &Edit) {
    let (last, parents) = path.split_last().expect("an edit names a member");
    let mut at = value;
    for key in parents {
        at = at.get_mut(key).expect("the parents of an edit exist");
    }
    let object = at.as_object_mut().expect("the parent of an edit is an object");
    match new {
        Some(v) => object.insert(last.clone(), v.clone()),
        None => object.remove(last),
    };
}

fn with_edits<'a>(base: &Value, edits: impl IntoIterator<Item = &'a Edit>) -> Value {
    let mut value = base.clone();
    edits.into_iter().for_each(|e| apply_edit(&mut value, e));
    value
}

/// A base object and edits of it at pairwise disjoint member paths (none
/// is a prefix of another), at any depth, each made by ours, theirs or both.
fn disjoint_edits() -> impl Strategy<Value = (Value, Vec<(Who, Edit)>)> {
    let who = prop_oneof![Just(Who::Ours), Just(Who::Theirs), Just(Who::Both)];
    let raw = (prop::collection::vec(path_keys(), 1..4), who, prop::option::of(json(path_keys())));
    (object(path_keys()), prop::collection::vec(raw, 1..6)).prop_map(|(base, raw)| {
        let mut edits: Vec<(Who, Edit)> = Vec::new();
        for (path, who, new) in raw {
            let path = resolve(&base, &path);
            if !edits.iter().any(|(_, (p, _))| overlaps(p, &path)) {
                edits.push((who, (path, new)));
            }
        }
        (base, edits)
    })
}

fn sides(base: &Value, edits: &[(Who, Edit)]) -> (Value, Value) {
    let of = |side: Who| with_edits(base, edits.iter().filter(|(w, _)| *w == side || *w == Who::Both).map(|(_, e)| e));
    (of(Who::Ours), of(Who::Theirs))
}

/// A value that is not an object (objects changed both ways merge
/// member by member instead of conflicting).
fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![scalar(), prop::collection::vec(scalar(), 0..3).prop_map(Value::Array)].boxed()
}

proptest! {
    // Two properties assume sides that differ; more cases reject more.
    #![proptest_config(ProptestConfig { max_global_rejects: 1 << 16, ..ProptestConfig::default() })]

    /// Changes at disjoint places, at any depth, merge without conflict
    /// into a value holding every change; a change made identically on
    /// both sides is kept once, without a conflict. This holds with either
    /// array mode and whatever side is preferred (nothing is to settle).
    #[test]
    fn merge3_keeps_every_disjoint_change((base, edits) in disjoint_edits()) {
        let (ours, theirs) = sides(&base, &edits);
        let expected = with_edits(&base, edits.iter().map(|(_, e)| e));
        for arrays in [ArrayMerge::Atomic, ArrayMerge::Set] {
            for prefer in [None, Some(Side::Ours), Some(Side::Theirs)] {
                let merged = merge3(Some(&base), Some(&ours), Some(&theirs), arrays, prefer);
                prop_assert!(merged.conflicts.is_empty(), "{:?}", merged.conflicts);
                prop_assert_eq!(merged.value.as_ref(), Some(&expected));
            }
        }
    }

    /// Both sides making the same change, whatever it is (a deletion of the
    /// whole value included), agree: that change, and no conflict.
    #[test]
    fn merge3_same_change_on_both_sides_agrees(
        base in prop::option::of(json(few_keys())),
        change in prop::option::of(json(few_keys())),
    ) {
        for arrays in [ArrayMerge::Atomic, ArrayMerge::Set] {
            for prefer in [None, Some(Side::Ours), Some(Side::Theirs)] {
                let merged = merge3(base.as_ref(), change.as_ref(), change.as_ref(), arrays, prefer);
                prop_assert!(merged.conflicts.is_empty());
                prop_assert_eq!(&merged.value, &change);
            }
        }
    }

    /// One member changed differently on both sides, at any depth, is
    /// reported at exactly its JSON pointer (escaped per RFC 6901); the
    /// preferred side (ours without a preference) fills it, and every
    /// disjoint change elsewhere still applies.
    #[test]
    fn merge3_reports_a_field_conflict_at_its_pointer(
        (base, edits) in disjoint_edits(),
        raw in prop::collection::vec(path_keys(), 1..4),
        ours_new in prop::option::weighted(0.85, leaf()),
        theirs_new in prop::option::weighted(0.85, leaf()),
    ) {
        let path = resolve(&base, &raw);
        let at_base = base.pointer(&pointer(&path)).cloned();
        prop_assume!(ours_new != theirs_new && ours_new != at_base && theirs_new != at_base);
        let edits: Vec<(Who, Edit)> = edits.into_iter().filter(|(_, (p, _))| !overlaps(p, &path)).collect();
        let (ours, theirs) = sides(&base, &edits);
        let ours = with_edits(&ours, [&(path.clone(), ours_new.clone())]);
        let theirs = with_edits(&theirs, [&(path.clone(), theirs_new.clone())]);
        let both_arrays = matches!((&ours_new, &theirs_new), (Some(Value::Array(_)), Some(Value::Array(_))));
        for arrays in [ArrayMerge::Atomic, ArrayMerge::Set] {
            if arrays == ArrayMerge::Set && both_arrays {
                continue;
            }
            for prefer in [None, Some(Side::Ours), Some(Side::Theirs)] {
                let merged = merge3(Some(&base), Some(&ours), Some(&theirs), arrays, prefer);
                prop_assert_eq!(&merged.conflicts, &vec![pointer(&path)]);
                let winner = if prefer == Some(Side::Theirs) { &theirs_new } else { &ours_new };
                let mut all: Vec<Edit> = edits.iter().map(|(_, e)| e.clone()).collect();
                all.push((path.clone(), winner.clone()));
                prop_assert_eq!(merged.value, Some(with_edits(&base, &all)));
            }
        }
    }

    /// With set semantics, arrays changed both ways keep the base's elements
    /// that neither side removed, then ours' additions, then theirs', once
    /// each: a removal wins over keeping, and no addition is lost.
    #[test]
    fn merge3_merges_arrays_as_sets(
        b in prop::collection::vec(0i64..6, 0..6),
        o in prop::collection::vec(0i64..6, 0..6),
        t in prop::collection::vec(0i64..6, 0..6),
    ) {
        prop_assume!(o != t && o != b && t != b);
        let mut expected: Vec<i64> = Vec::new();
        let kept = b.iter().filter(|v| o.contains(v) && t.contains(v));
        let added = o.iter().filter(|v| !b.contains(v)).chain(t.iter().filter(|v| !b.contains(v)));
        for v in kept.chain(added) {
            if !expected.contains(v) {
                expected.push(*v);
            }
        }
        let wrap = |l: &Vec<i64>| json!({"list": l, "other": 1});
        let merged = merge3(Some(&wrap(&b)), Some(&wrap(&o)), Some(&wrap(&t)), ArrayMerge::Set, None);
        prop_assert!(merged.conflicts.is_empty());
        prop_assert_eq!(merged.value, Some(wrap(&expected)));
    }
}

// 4. Keys, context ids, patterns, prefixes, percent-encoding.

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | ':' | '@' | '-')
}

/// docs/api.md ("Entries"): segments of `[A-Za-z0-9._~:@-]+` separated by `/`,
/// at most 512 bytes; read as a state machine over characters. With
/// `star`, `*` is one more segment character (a pattern).
fn reference_is_key(s: &str, star: bool) -> bool {
    if s.len() > ids::MAX_KEY_BYTES {
        return false;
    }
    let mut segment = 0;
    for c in s.chars() {
        if c == '/' {
            if segment == 0 {
                return false;
            }
            segment = 0;
        } else if key_char(c) || (star && c == '*') {
            segment += 1;
        } else {
            return false;
        }
    }
    segment > 0
}

/// `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`, read character by character.
fn reference_is_context_id(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else { return false };
    let mut count = 0;
    for c in chars {
        count += 1;
        if count > 127 || !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
            return false;
        }
    }
    first.is_ascii_alphanumeric()
}

/// `*` matches any run of characters in one segment: a table of which
/// prefixes of the pattern match which prefixes of the text.
fn reference_glob(pattern: &str, text: &str) -> bool {
    let text = text.as_bytes();
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &c in pattern.as_bytes() {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] =
                if c == b'*' { row[j] || (j > 0 && next[j - 1]) } else { j > 0 && row[j - 1] && text[j - 1] == c };
        }
        row = next;
    }
    row[text.len()]
}

/// A `**` segment matches any number of key segments, none included;
/// any other pattern segment matches exactly one key segment.
fn reference_segments(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"**", rest)) => (0..=key.len()).any(|skip| reference_segments(rest, &key[skip..])),
        Some((segment, rest)) => {
            key.first().is_some_and(|k| reference_glob(segment, k)) && reference_segments(rest, &key[1..])
        }
    }
}

fn reference_matches(pattern: &str, key: &str) -> bool {
    reference_segments(&pattern.split('/').collect::<Vec<_>>(), &key.split('/').collect::<Vec<_>>())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A key and a pattern: either unrelated, or the pattern made from the
/// key's segments (kept, made `*`, `**` or a glob, dropped) with maybe a
/// `*` or `**` segment at the end, so that matches are frequent.
fn pattern_and_key() -> impl Strategy<Value = (String, String)> {
    let key = prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "ba", "aab"]), 1..5);
    let unrelated = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "*", "**", "**", "a*", "*b", "*a*", "***", "b**"]),
        1..5,
    );
    prop_oneof![
        (unrelated, key.clone()).prop_map(|(p, k)| (p.join("/"), k.join("/"))),
        (key, prop::collection::vec(0u8..7, 5), 0u8..3).prop_map(|(k, how, tail)| {
            let mut p: Vec<String> = Vec::new();
            for (segment, how) in k.iter().zip(how) {
                match how {
                    0 | 1 => p.push((*segment).to_owned()),
                    2 => p.push("*".into()),
                    3 => p.push("**".into()),
                    4 => p.push(format!("{}*", &segment[..1])),
                    5 => p.push(format!("*{}", &segment[1..])),
                    _ => {}
                }
            }
            match tail {
                1 => p.push("**".into()),
                2 => p.push("*".into()),
                _ => {}
            }
            if p.is_empty() {
                p.push("**".into());
            }
            (p.join("/"), k.join("/"))
        }),
    ]
}

/// Valid keys: short ones of many segments, and long ones around 512 bytes.
fn valid_key_segments() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        prop::collection::vec("[A-Za-z0-9._~:@-]{1,12}", 1..8),
        prop::collection::vec("[A-Za-z0-9._~:@-]{1,70}", 6..10),
    ]
}

/// Strings near the key alphabet: key characters, `/`, `*`, a space, `%`
/// and a non-ASCII letter.
fn near_keys() -> impl Strategy<Value = String> {
    prop_oneof![
        "([a-c~*]{0,3}/){0,3}[a-c~*]{0,3}",
        "[a-c.~@/*% é-]{0,12}",
        "[a-z]{505,520}",
        "[a-z/]{500,520}",
        any::<String>(),
    ]
}

proptest! {
    /// Every key made of valid segments parses exactly when it fits in 512
    /// bytes, and reads back as written (as a string, as JSON); a longer
    /// one is refused with `invalid_key`.
    #[test]
    fn valid_keys_parse_and_round_trip(segments in valid_key_segments()) {
        let s = segments.join("/");
        match EntryKey::parse(&s) {
            Ok(k) => {
                prop_assert!(s.len() <= ids::MAX_KEY_BYTES);
                prop_assert_eq!(k.as_str(), s.as_str());
                prop_assert_eq!(k.to_string(), s.clone());
                prop_assert_eq!(serde_json::from_value::<EntryKey>(json!(s)).unwrap(), k.clone());
                prop_assert_eq!(k.into_string(), s);
            }
            Err(e) => {
                prop_assert!(s.len() > ids::MAX_KEY_BYTES, "{} refused: {}", s, e);
                prop_assert_eq!(e.code(), "invalid_key");
            }
        }
    }

    /// A key with an empty segment (leading, trailing or double `/`) or a
    /// character outside the alphabet is refused with `invalid_key`.
    #[test]
    fn malformed_keys_are_refused(
        segments in prop::collection::vec("[A-Za-z0-9._~:@-]{1,12}", 1..6),
        at in any::<Index>(),
        how in 0usize..4,
        bad in any::<char>().prop_filter("outside the key alphabet", |c| !key_char(*c) && *c != '/'),
    ) {
        let s = segments.join("/");
        let cut = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect::<Vec<_>>();
        let i = cut[at.index(cut.len())];
        let broken = match how {
            0 => format!("/{s}"),
            1 => format!("{s}/"),
            2 => s.replacen('/', "//", 1) + if s.contains('/') { "" } else { "//x" },
            _ => format!("{}{bad}{}", &s[..i], &s[i..]),
        };
        prop_assert_eq!(EntryKey::parse(&broken).map_err(|e| e.code().as_str()), Err("invalid_key"));
        prop_assert!(serde_json::from_value::<EntryKey>(json!(broken)).is_err());
    }

    /// On arbitrary strings, a key parses exactly when docs/api.md says it is
    /// one, and a pattern exactly when it is one with `*` allowed.
    #[test]
    fn keys_and_patterns_parse_as_specified(s in near_keys()) {
        let key = EntryKey::parse(&s);
        prop_assert_eq!(key.is_ok(), reference_is_key(&s, false), "key {:?}", s);
        if let Err(e) = key {
            prop_assert_eq!(e.code(), "invalid_key");
        }
        let pattern = KeyPattern::parse(&s);
        prop_assert_eq!(pattern.is_ok(), reference_is_key(&s, true), "pattern {:?}", s);
        if let Ok(p) = pattern {
            prop_assert_eq!(p.as_str(), s.as_str());
        }
    }

    /// A context id parses exactly when it matches
    /// `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`, and reads back as written;
    /// anything else is refused with `invalid_id`.
    #[test]
    fn context_ids_parse_as_specified(
        s in prop_oneof![
            "[A-Za-z0-9][A-Za-z0-9._:-]{0,8}",
            "[a-c0.:_/ é-]{0,4}",
            "[a.][a-z0-9._:-]{125,130}",
            any::<String>(),
        ],
    ) {
        match ContextId::parse(&s) {
            Ok(id) => {
                prop_assert!(reference_is_context_id(&s), "{:?} accepted", s);
                prop_assert_eq!(id.as_str(), s.as_str());
            }
            Err(e) => {
                prop_assert!(!reference_is_context_id(&s), "{:?} refused", s);
                prop_assert_eq!(e.code(), "invalid_id");
            }
        }
    }

    /// A key pattern matches a key exactly when the reference matcher
    /// does: `*` within one segment, a `**` segment over any number of
    /// segments (none included).
    #[test]
    fn patterns_match_like_the_reference((pattern, key) in pattern_and_key()) {
        let parsed = KeyPattern::parse(&pattern).unwrap();
        prop_assert_eq!(parsed.matches(&key), reference_matches(&pattern, &key), "{} against {}", pattern, key);
    }

    /// A key's own segments, one of them replaced by `*`, match it; one
    /// more `*` segment does not. A run of its segments (maybe empty, maybe
    /// at either end) replaced by `**` matches it.
    #[test]
    fn star_is_one_segment_and_double_star_any(
        segments in prop::collection::vec("[a-c~]{1,3}", 1..6),
        i in any::<Index>(),
        j in any::<Index>(),
        k in any::<Index>(),
    ) {
        let key = segments.join("/");
        let i = i.index(segments.len());
        let mut one = segments.clone();
        one[i] = "*".into();
        prop_assert!(KeyPattern::parse(&one.join("/")).unwrap().matches(&key));
        let mut extra = segments.clone();
        extra.insert(i, "*".into());
        prop_assert!(!KeyPattern::parse(&extra.join("/")).unwrap().matches(&key));
        let i = i.min(k.index(segments.len() + 1));
        let j = i + j.index(segments.len() - i + 1);
        let any: Vec<&str> = segments[..i].iter().map(String::as_str).chain(["**"]).chain(segments[j..].iter().map(String::as_str)).collect();
        prop_assert!(KeyPattern::parse(&any.join("/")).unwrap().matches(&key), "{:?}", any);
    }

    /// `prefix_end(p)` bounds the range scan of a prefix: among strings from
    /// `p` on, exactly those starting with `p` sort before it. `None` only
    /// when no string from `p` on escapes the prefix.
    #[test]
    fn prefix_end_bounds_exactly_the_prefix(
        prefix in "[ab~/\\x7f]{0,4}",
        others in prop::collection::vec("[ab~/\\x7f]{0,6}", 0..16),
        suffixes in prop::collection::vec("[ab~/\\x7f]{0,3}", 0..8),
    ) {
        let end = ids::prefix_end(&prefix);
        if let Some(end) = &end {
            prop_assert!(end.as_str() > prefix.as_str() && !end.starts_with(&prefix));
        } else {
            prop_assert!(prefix.bytes().all(|b| b == 0x7f), "no end for {:?}", prefix);
        }
        let candidates = others.into_iter().chain(suffixes.iter().map(|s| format!("{prefix}{s}")));
        for s in candidates.filter(|s| s.as_str() >= prefix.as_str()) {
            let below_end = end.as_ref().is_none_or(|e| s < *e);
            prop_assert_eq!(s.starts_with(&prefix), below_end, "{:?} against prefix {:?}", s, prefix);
        }
    }

    /// A percent-encoded string decodes back to itself and holds only
    /// URL-unreserved characters and `%XX` escapes: never a `/`, so that a
    /// key is one path segment of a URL.
    #[test]
    fn percent_encoding_round_trips(s in prop_oneof!["[a-z/~:@. %-]{0,12}", any::<String>()]) {
        let encoded = ids::percent_encode(&s);
        let decoded = percent_decode(&encoded);
        prop_assert_eq!(decoded.as_deref(), Some(s.as_str()));
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = &bytes[i + 1..i + 3];
                prop_assert!(hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)), "{}", encoded);
                i += 3;
            } else {
                prop_assert!(bytes[i].is_ascii_alphanumeric() || b"-._~".contains(&bytes[i]), "{}", encoded);
                i += 1;
            }
        }
    }
}

// 5. plan_txn against a reference model of a context.

/// Keys of the modelled context: some are prefixes of others.
const KEYS: [&str; 6] = ["a", "a/b", "a/c", "ab", "b", "b/a"];
/// Prefixes that deletions and reads use.
const PREFIXES: [&str; 6] = ["", "a", "a/", "ab", "b/", "c"];
/// The agent that plans the transactions.
const WRITER: &str = "agent-a";

/// An entry as the model sees it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    key: String,
    value: Value,
    revision: u64,
    version: u64,
    created_revision: u64,
    author: String,
    tags: Vec<String>,
    vclock: BTreeMap<String, u64>,
}

impl Row {
    fn of(e: &Entry) -> Row {
        Row {
            key: e.key.clone(),
            value: e.value.clone(),
            revision: e.revision,
            version: e.version,
            created_revision: e.created_revision,
            author: e.author.clone(),
            tags: e.meta.tags.clone(),
            vclock: e.vclock.clone(),
        }
    }

    /// What writing `value` with `tags` to `key` at `revision` makes of
    /// `before`: versions count up from 1, the creating revision stays, and
    /// the writer's count in the version vector grows by one.
    fn written(key: &str, before: Option<&Row>, value: Value, tags: Vec<String>, revision: u64) -> Row {
        let mut vclock = before.map(|b| b.vclock.clone()).unwrap_or_default();
        *vclock.entry(WRITER.to_owned()).or_default() += 1;
        Row {
            key: key.to_owned(),
            value,
            revision,
            version: before.map_or(1, |b| b.version + 1),
            created_revision: before.map_or(revision, |b| b.created_revision),
            author: WRITER.to_owned(),
            tags,
            vclock,
        }
    }
}

/// The result of one operation, as the model sees it.
#[derive(Debug, PartialEq)]
enum Done {
    Put(Row),
    Patch(Row),
    Delete(String, bool),
    DeletePrefix(String, u64),
    Get(Vec<Row>),
}

impl Done {
    fn of(r: &OpResult) -> Done {
        match r {
            OpResult::Put { entry } => Done::Put(Row::of(entry)),
            OpResult::Patch { entry } => Done::Patch(Row::of(entry)),
            OpResult::Delete { key, deleted } => Done::Delete(key.clone(), *deleted),
            OpResult::DeletePrefix { prefix, deleted } => Done::DeletePrefix(prefix.clone(), *deleted),
            OpResult::Get { entries } => Done::Get(entries.iter().map(Row::of).collect()),
        }
    }
}

/// What a transaction did, as the model sees it.
#[derive(Debug, PartialEq)]
struct Outcome {
    succeeded: bool,
    revision: u64,
    changes: Vec<(String, ChangeKind, Option<Row>)>,
    results: Vec<Done>,
    entry_count_delta: i64,
    /// Keys whose stale write the policy refused.
    refused: Vec<String>,
}

impl Outcome {
    fn of(plan: &Plan, response: &TxnResponse) -> Outcome {
        Outcome {
            succeeded: response.succeeded,
            revision: response.revision,
            changes: plan.changes.iter().map(|c| (c.key.clone(), c.kind, c.after.as_ref().map(Row::of))).collect(),
            results: response.results.iter().map(Done::of).collect(),
            entry_count_delta: plan.entry_count_delta,
            refused: response.conflicts.iter().map(|c| format!("{}:{:?}", c.key, c.outcome)).collect(),
        }
    }
}

/// docs/api.md ("Transactions"): an absent entry has revision 0 and version 0 and
/// equals no value.
fn model_holds(c: &Compare, row: Option<&Row>) -> bool {
    let ordered = |actual: u64, expected: u64| match c.op {
        CompareOp::Eq => actual == expected,
        CompareOp::Ne => actual != expected,
        CompareOp::Lt => actual < expected,
        CompareOp::Gt => actual > expected,
    };
    let equal = |yes: bool| if c.op == CompareOp::Ne { !yes } else { yes };
    match (c.revision, c.version, c.exists, &c.value) {
        (Some(r), ..) => ordered(row.map_or(0, |e| e.revision), r),
        (_, Some(v), ..) => ordered(row.map_or(0, |e| e.version), v),
        (_, _, Some(x), _) => equal(row.is_some() == x),
        (_, _, _, Some(v)) => equal(row.is_some_and(|e| e.value == *v)),
        _ => unreachable!("generated comparisons have one target"),
    }
}

/// The model of a transaction on a context at `revision` holding
/// `entries`, under the default policy (`reject`): the comparisons pick a
/// branch; its operations apply in order, each seeing the ones before;
/// one key is written at most once (a deleted prefix counts for every key
/// under it); patching an absent entry fails; an error fails the whole
/// transaction. A revision is used only when an entry changes.
fn model_txn(revision: u64, entries: &BTreeMap<String, Row>, txn: &TxnRequest) -> Result<Outcome, &'static str> {
    let next = revision + 1;
    let holds = |c: &&Compare| model_holds(c, entries.get(c.key.as_str()));
    let nothing = |succeeded, refused| Outcome {
        succeeded,
        revision,
        changes: vec![],
        results: vec![],
        entry_count_delta: 0,
        refused,
    };
    let (succeeded, ops) = if txn.compare.iter().all(|c| holds(&c)) {
        (true, &txn.success)
    } else {
        if txn.failure.is_empty() {
            // docs/conflicts.md: a stale precondition (an equality on the
            // revision or version of a key the success branch writes) goes
            // to the policy, and `reject` refuses it: nothing runs, and the
            // answer reports each such key once.
            let written: BTreeSet<&str> = txn
                .success
                .iter()
                .filter_map(|op| match op {
                    Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } => Some(key.as_str()),
                    _ => None,
                })
                .collect();
            let failed: Vec<&Compare> = txn.compare.iter().filter(|c| !holds(c)).collect();
            let stale = |c: &&Compare| {
                c.op == CompareOp::Eq
                    && (c.revision.is_some() || c.version.is_some())
                    && written.contains(c.key.as_str())
            };
            if failed.iter().all(stale) {
                let mut refused: Vec<String> = Vec::new();
                for c in failed {
                    let report = format!("{}:Rejected", c.key.as_str());
                    if !refused.contains(&report) {
                        refused.push(report);
                    }
                }
                return Ok(nothing(false, refused));
            }
        }
        (false, &txn.failure)
    };

    let mut state = entries.clone();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut gone: Vec<&str> = Vec::new();
    // Keys a delete_prefix deleted: written by it.
    let mut swept: BTreeSet<String> = BTreeSet::new();
    let mut out = nothing(succeeded, vec![]);
    for op in ops {
        let mut claim = |key: &str, swept: &BTreeSet<String>| {
            if !written.insert(key.to_owned()) || swept.contains(key) {
                return Err("invalid_txn");
            }
            Ok(())
        };
        match op {
            Op::Put { key, write } => {
                let key = key.as_str();
                claim(key, &swept)?;
                let before = state.get(key);
                let kind = if before.is_some() { ChangeKind::Updated } else { ChangeKind::Created };
                out.entry_count_delta += i64::from(before.is_none());
                let row = Row::written(key, before, write.value.clone(), write.tags.clone(), next);
                state.insert(key.to_owned(), row.clone());
                out.changes.push((key.to_owned(), kind, Some(row.clone())));
                out.results.push(Done::Put(row));
            }
            Op::Patch { key, patch: PatchBody::MergePatch(patch) } => {
                let key = key.as_str();
                claim(key, &swept)?;
                let Some(before) = state.get(key) else { return Err("not_found") };
                let value = rfc7386(Some(&before.value), patch);
                let row = Row::written(key, Some(before), value, before.tags.clone(), next);
                state.insert(key.to_owned(), row.clone());
                out.changes.push((key.to_owned(), ChangeKind::Updated, Some(row.clone())));
                out.results.push(Done::Patch(row));
            }
            Op::Delete { key } => {
                let key = key.as_str();
                claim(key, &swept)?;
                let existed = state.remove(key).is_some();
                if existed {
                    out.entry_count_delta -= 1;
                    out.changes.push((key.to_owned(), ChangeKind::Deleted, None));
                }
                out.results.push(Done::Delete(key.to_owned(), existed));
            }
            Op::DeletePrefix { prefix } => {
                let p = prefix.as_str();
                if written.iter().any(|k| k.starts_with(p)) || gone.iter().any(|g| g.starts_with(p) || p.starts_with(g))
                {
                    return Err("invalid_txn");
                }
                let doomed: Vec<String> = state.keys().filter(|k| k.starts_with(p)).cloned().collect();
                for k in &doomed {
                    swept.insert(k.clone());
                    state.remove(k);
                    out.entry_count_delta -= 1;
                    out.changes.push((k.clone(), ChangeKind::Deleted, None));
                }
                gone.push(p);
                out.results.push(Done::DeletePrefix(prefix.clone(), doomed.len() as u64));
            }
            Op::Get { key: Some(key), .. } => {
                out.results.push(Done::Get(state.get(key.as_str()).cloned().into_iter().collect()))
            }
            Op::Get { prefix: Some(p), .. } => {
                out.results.push(Done::Get(state.values().filter(|r| r.key.starts_with(p.as_str())).cloned().collect()))
            }
            other => unreachable!("not generated: {other:?}"),
        }
    }
    if !out.changes.is_empty() {
        out.revision = next;
    }
    Ok(out)
}

/// Values that comparisons and entries share, so that value equality holds
/// sometimes.
fn pooled_value() -> BoxedStrategy<Value> {
    prop::sample::select(vec![json!(0), json!(1), json!("x"), json!({"a": 1}), Value::Null]).boxed()
}

fn entry_value() -> BoxedStrategy<Value> {
    prop_oneof![pooled_value(), json(few_keys())].boxed()
}

fn any_key() -> impl Strategy<Value = EntryKey> {
    prop::sample::select(KEYS.to_vec()).prop_map(key)
}

fn any_prefix() -> impl Strategy<Value = String> {
    prop::sample::select(PREFIXES.to_vec()).prop_map(str::to_owned)
}

/// A context revision and the entries of a snapshot at it, with varied
/// revisions, versions, tags and version vectors.
fn model_snapshot() -> impl Strategy<Value = (u64, BTreeMap<String, Entry>)> {
    let slot = prop::option::of((entry_value(), 1u64..6, 1u64..5, 0u64..5, any::<bool>(), 0u64..3));
    (6u64..12, prop::collection::vec(slot, KEYS.len())).prop_map(|(revision, slots)| {
        let mut entries = BTreeMap::new();
        for (k, slot) in KEYS.iter().zip(slots) {
            let Some((value, rev, version, back, tagged, writes)) = slot else { continue };
            let mut e = entry(k, value, rev, version);
            e.created_revision = rev.saturating_sub(back).max(1);
            e.meta.tags = if tagged { vec!["t".into()] } else { vec![] };
            if writes > 0 {
                e.vclock.insert("agent-b".into(), writes);
            }
            entries.insert((*k).to_owned(), e);
        }
        (revision, entries)
    })
}

fn any_compare() -> impl Strategy<Value = Compare> {
    let op = prop_oneof![3 => Just(CompareOp::Eq), 1 => Just(CompareOp::Ne), 1 => Just(CompareOp::Lt), 1 => Just(CompareOp::Gt)];
    (any_key(), op, 0usize..4, 0u64..7, any::<bool>(), pooled_value()).prop_map(|(key, op, target, n, yes, value)| {
        let mut c = Compare::on(key);
        c.op = op;
        match target {
            0 => c.revision = Some(n),
            1 => c.version = Some(n),
            _ => {
                // `lt` and `gt` compare only revisions and versions.
                c.op = if op == CompareOp::Ne { CompareOp::Ne } else { CompareOp::Eq };
                if target == 2 { c.exists = Some(yes) } else { c.value = Some(value) }
            }
        }
        c
    })
}

fn any_op() -> impl Strategy<Value = Op> {
    let tags = prop::collection::vec(prop::sample::select(vec!["x".to_owned(), "y".to_owned()]), 0..2);
    prop_oneof![
        3 => (any_key(), entry_value(), tags)
            .prop_map(|(key, value, tags)| Op::Put { key, write: EntryWrite { value, tags, ..Default::default() } }),
        2 => (any_key(), merge_patch()).prop_map(|(key, p)| Op::Patch { key, patch: PatchBody::MergePatch(p) }),
        2 => any_key().prop_map(|key| Op::Delete { key }),
        1 => any_prefix().prop_map(|prefix| Op::DeletePrefix { prefix }),
        1 => any_key().prop_map(|key| Op::Get { key: Some(key), prefix: None }),
        1 => any_prefix().prop_map(|prefix| Op::Get { key: None, prefix: Some(prefix) }),
    ]
}

/// A transaction; often it also guards one of its own writes with an
/// equality on the revision or version (a precondition, maybe stale).
fn any_txn() -> impl Strategy<Value = TxnRequest> {
    (
        prop::collection::vec(any_compare(), 0..3),
        prop::collection::vec(any_op(), 0..4),
        prop_oneof![2 => Just(vec![]), 1 => prop::collection::vec(any_op(), 1..3)],
        prop::option::of((any::<Index>(), any::<bool>(), 0u64..6)),
    )
        .prop_map(|(mut compare, success, failure, guard)| {
            let writes: Vec<&EntryKey> = success
                .iter()
                .filter_map(|op| match op {
                    Op::Put { key, .. } | Op::Patch { key, .. } | Op::Delete { key } => Some(key),
                    _ => None,
                })
                .collect();
            if let (Some((i, by_revision, n)), false) = (guard, writes.is_empty()) {
                let mut c = Compare::on(writes[i.index(writes.len())].clone());
                if by_revision {
                    c.revision = Some(n)
                } else {
                    c.version = Some(n)
                }
                compare.push(c);
            }
            TxnRequest { compare, success, failure, ..Default::default() }
        })
}

fn rows(entries: &BTreeMap<String, Entry>) -> BTreeMap<String, Row> {
    entries.iter().map(|(k, e)| (k.clone(), Row::of(e))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `plan_txn` does what the reference model of a context does: the
    /// same branch runs, the same entries change to the same values and
    /// versions, reads see the writes before them, the same errors fail
    /// the whole transaction, and the revision moves by exactly one when,
    /// and only when, an entry changes.
    #[test]
    fn plan_txn_agrees_with_the_model((revision, entries) in model_snapshot(), txn in any_txn()) {
        let ctx = context(revision, entries.len() as u64);
        let snapshot = Snapshot { entries: entries.clone(), ..Default::default() };
        let planned = plan(&ctx, &snapshot, &txn);
        let actual = planned.as_ref().map(|(p, r)| Outcome::of(p, r)).map_err(|e| e.code().as_str());
        prop_assert_eq!(actual, model_txn(revision, &rows(&entries), &txn));
        if let Ok((plan, response)) = planned {
            // One event per entry change, all in the new revision; an
            // empty plan uses no revision.
            prop_assert_eq!(plan.is_empty(), plan.changes.is_empty());
            prop_assert_eq!(plan.events.len(), plan.changes.len());
            prop_assert!(plan.events.iter().all(|e| e.revision == revision + 1));
            prop_assert_eq!(response.revision, if plan.is_empty() { revision } else { revision + 1 });
        }
    }

    /// A transaction whose comparison fails and that has no failure branch
    /// changes nothing and uses no revision, whether the comparison is a
    /// stale precondition of its own write or anything else.
    #[test]
    fn failed_comparison_without_failure_branch_changes_nothing(
        (revision, entries) in model_snapshot(),
        success in prop::collection::vec(any_op(), 0..4),
        compared in any_key(),
        how in 0usize..4,
    ) {
        let current = entries.get(compared.as_str());
        let mut c = Compare::on(compared.clone());
        match how {
            0 => c.value = Some(json!("never generated")),
            1 => c.exists = Some(current.is_none()),
            2 => c.revision = Some(current.map_or(1, |e| e.revision + 1)),
            _ => c.version = Some(current.map_or(1, |e| e.version + 1)),
        }
        let txn = TxnRequest { compare: vec![c], success, ..Default::default() };
        let snapshot = Snapshot { entries, ..Default::default() };
        let (plan, response) = plan(&context(revision, snapshot.entries.len() as u64), &snapshot, &txn).unwrap();
        prop_assert!(!response.succeeded);
        prop_assert!(plan.is_empty());
        prop_assert!(response.results.is_empty());
        prop_assert_eq!(response.revision, revision);
    }
}
