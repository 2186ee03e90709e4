//! What a JSON body of the wrong shape is told: the path of the field that
//! is wrong and the shape accepted there, read from the OpenAPI document
//! (the same schemas `/openapi.json` serves).

use std::sync::OnceLock;

use serde_json::Value;
use serde_path_to_error::Segment;

/// Most levels of a shape spelled out in a message.
const DEPTH: usize = 2;

/// Most characters of a shape in a message: past it, fewer levels.
const BRIEF: usize = 360;

/// The component schemas of the OpenAPI document, built once.
fn components() -> &'static Value {
    static SCHEMAS: OnceLock<Value> = OnceLock::new();
    SCHEMAS.get_or_init(|| crate::openapi::spec()["components"]["schemas"].clone())
}

/// The schema of the body type `T`, when the document has one by its name.
fn schema_of<T>() -> Option<&'static Value> {
    let name = std::any::type_name::<T>();
    if name.contains('<') {
        return None;
    }
    components().get(name.rsplit("::").next()?)
}

/// The first JSON array in `body` where the document of `T` wants an
/// object, as its path (`.` for the body itself) and the object's schema:
/// serde reads a struct from an array of its fields too, which the API
/// does not accept.
pub(crate) fn array_for_object<T>(body: &[u8]) -> Option<(String, &'static Value)> {
    let schema = schema_of::<T>()?;
    if !body.contains(&b'[') {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    fn walk(value: &Value, schema: &'static Value, path: &str, depth: usize) -> Option<(String, &'static Value)> {
        let schema = resolve(schema);
        if depth > 16 {
            return None;
        }
        let objects: Vec<&'static Value> = alternatives(schema)
            .into_iter()
            .filter(|s| s["type"] == "object" || s.get("properties").is_some())
            .collect();
        match value {
            Value::Array(items) => {
                let wants_array = alternatives(schema).iter().any(|s| {
                    s["type"] == "array" || s["type"].as_array().is_some_and(|t| t.contains(&Value::from("array")))
                });
                if let (Some(object), false) = (objects.first(), wants_array) {
                    return Some((if path.is_empty() { ".".into() } else { path.to_owned() }, object));
                }
                let item = schema.get("items")?;
                items.iter().enumerate().find_map(|(i, v)| walk(v, item, &format!("{path}[{i}]"), depth + 1))
            }
            Value::Object(fields) => fields.iter().find_map(|(name, v)| {
                let inner = objects.iter().find_map(|s| s["properties"].get(name))?;
                let at = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                walk(v, inner, &at, depth + 1)
            }),
            _ => None,
        }
    }
    walk(&value, schema, "", 0)
}

/// `schema` with its `$ref` followed.
fn resolve(schema: &Value) -> &Value {
    let mut schema = schema;
    for _ in 0..8 {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => match components().get(name) {
                Some(target) => schema = target,
                None => break,
            },
            None => break,
        }
    }
    schema
}

/// The alternatives a schema offers (`oneOf`, `anyOf`, `allOf` members,
/// nested at most a few levels deep), or the schema itself.
fn alternatives(schema: &Value) -> Vec<&Value> {
    fn collect<'s>(schema: &'s Value, levels: usize, into: &mut Vec<&'s Value>) {
        let schema = resolve(schema);
        let members = ["oneOf", "anyOf", "allOf"].iter().find_map(|c| schema.get(*c).and_then(Value::as_array));
        match members {
            Some(members) if levels > 0 => members.iter().for_each(|m| collect(m, levels - 1, into)),
            _ => into.push(schema),
        }
    }
    let mut all = Vec::new();
    collect(schema, 4, &mut all);
    all
}

/// The JSON types a schema accepts, when it says.
fn types(schema: &Value) -> Option<Vec<&str>> {
    let mut all = Vec::new();
    for s in alternatives(schema) {
        match s.get("type") {
            Some(Value::String(t)) => all.push(t.as_str()),
            Some(Value::Array(ts)) => all.extend(ts.iter().filter_map(Value::as_str)),
            _ => return None, // this alternative takes anything
        }
    }
    (!all.is_empty()).then_some(all)
}

/// Whether `value` is of one of `types`.
fn fits(value: &Value, types: &[&str]) -> bool {
    types.iter().any(|t| match *t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    })
}

/// What a value is, for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The schema of field `key` of an object schema.
fn property<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    let alternatives = alternatives(schema);
    let named = alternatives.iter().find_map(|s| s.get("properties").and_then(|p| p.get(key)));
    named.or_else(|| alternatives.iter().find_map(|s| s.get("additionalProperties").filter(|v| v.is_object())))
}

/// The schema of the items of an array schema.
fn items(schema: &Value) -> Option<&Value> {
    alternatives(schema).into_iter().find_map(|s| s.get("items"))
}

/// A schema spelled out for a message: as many levels as fit in a line
/// or two.
pub(crate) fn brief(schema: &Value) -> String {
    let mut depth = DEPTH;
    loop {
        let shape = describe(schema, depth);
        if shape.len() <= BRIEF || depth == 0 {
            return shape;
        }
        depth -= 1;
    }
}

/// A schema spelled out compactly: `{"kinds": [string], "tags": [string]}`,
/// `[string]`, `"reject" | "merge"`, `integer or null`.
fn describe(schema: &Value, depth: usize) -> String {
    let mut shapes: Vec<String> = Vec::new();
    for s in alternatives(schema) {
        let shape = describe_one(s, depth);
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    }
    shapes.join(" or ")
}

fn describe_one(s: &Value, depth: usize) -> String {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values.iter().map(Value::to_string).collect::<Vec<_>>().join(" | ");
    }
    let named: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return "any JSON value".to_owned(),
    };
    let spelled: Vec<String> = named
        .iter()
        .map(|t| match *t {
            "object" => describe_object(s, depth),
            "array" => match (s.get("items"), depth) {
                (Some(items), d) if d > 0 => format!("[{}]", describe(items, d - 1)),
                _ => "array".to_owned(),
            },
            other => other.to_owned(),
        })
        .collect();
    spelled.join(" or ")
}

fn describe_object(s: &Value, depth: usize) -> String {
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match (s.get("properties").and_then(Value::as_object), s.get("additionalProperties")) {
        (Some(props), _) if depth > 0 && !props.is_empty() => {
            let fields: Vec<String> = props
                .iter()
                .map(|(name, p)| {
                    let mark = if required.contains(&name.as_str()) { " (required)" } else { "" };
                    format!("\"{name}\"{mark}: {}", describe(p, depth - 1))
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        (Some(props), _) if !props.is_empty() => {
            format!("object ({})", props.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
        }
        (_, Some(values)) if values.is_object() && depth > 0 => format!("{{string: {}}}", describe(values, depth - 1)),
        _ => "object".to_owned(),
    }
}

/// Where a body went wrong, as far as the schema of `T` tells.
pub(crate) struct Located {
    /// The field path (`needs`, `success[0].value`; `.` for the body).
    pub(crate) path: String,
    /// The schema of that field.
    pub(crate) schema: Option<&'static Value>,
    /// When the field is of another JSON type than the schema accepts:
    /// what it is.
    pub(crate) got: Option<&'static str>,
}

/// Follows the deserializer's `path` through the body and the schema of
/// `T`, stopping at the first field whose JSON type the schema refuses (a
/// list where an object belongs is wrong there, not at its first item).
pub(crate) fn locate<T>(body: &[u8], path: &serde_path_to_error::Path) -> Located {
    let Some(root) = schema_of::<T>() else {
        return Located { path: path.to_string(), schema: None, got: None };
    };
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut here = (&value, root);
    let mut shown = String::new();
    for segment in path.iter() {
        let (v, schema) = here;
        if let Some(located) = refused(v, schema, &shown) {
            return located;
        }
        let next = match segment {
            Segment::Map { key } => v.get(key).zip(property(schema, key)).map(|n| (n, format!(".{key}"))),
            Segment::Seq { index } => v.get(index).zip(items(schema)).map(|n| (n, format!("[{index}]"))),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        let Some(((v, s), step)) = next else {
            // The schema does not know the rest of the way (a flattened
            // field): the deserializer's path alone.
            return Located { path: path.to_string(), schema: None, got: None };
        };
        here = (v, s);
        shown.push_str(&step);
    }
    refused(here.0, here.1, &shown).unwrap_or(Located { path: or_body(&shown), schema: Some(here.1), got: None })
}

/// The field at `shown` when `value` is of a JSON type `schema` refuses.
fn refused(value: &Value, schema: &'static Value, shown: &str) -> Option<Located> {
    let accepted = types(schema)?;
    (!fits(value, &accepted)).then(|| Located { path: or_body(shown), schema: Some(schema), got: Some(kind(value)) })
}

fn or_body(shown: &str) -> String {
    match shown.strip_prefix('.') {
        Some(rest) => rest.to_owned(),
        None if shown.is_empty() => ".".to_owned(),
        None => shown.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every schema of the document can be spelled out, briefly: a
    /// recursive schema or a deep one does not run away.
    #[test]
    fn every_schema_of_the_document_is_spelled_out_briefly() {
        let schemas = components().as_object().expect("the document has component schemas");
        assert!(schemas.len() > 20, "{}", schemas.len());
        for (name, schema) in schemas {
            let shape = brief(schema);
            assert!(!shape.is_empty(), "{name}");
            assert!(shape.len() <= BRIEF || !shape.contains('{'), "{name}: {shape}");
        }
    }

    #[test]
    fn shapes_read_as_json_does() {
        let list = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(describe(&list, 2), "[string]");
        let nullable = json!({"oneOf": [{"type": "null"}, {"type": "integer"}]});
        assert_eq!(describe(&nullable, 2), "null or integer");
        let choice = json!({"type": "string", "enum": ["reject", "merge"]});
        assert_eq!(describe(&choice, 2), r#""reject" | "merge""#);
        let object = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
        assert_eq!(describe(&object, 2), r#"{"id" (required): string}"#);
        let map = json!({"type": "object", "additionalProperties": {"type": "number"}});
        assert_eq!(describe(&map, 2), "{string: number}");
    }
}
