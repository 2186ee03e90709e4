//! The OpenAPI document, generated from the handlers' annotations.

use std::sync::OnceLock;

use ctxmesh_core::agent::MAX_MAP_NAME_CHARS;
use ctxmesh_core::context::MAX_RETENTION_AGE_MS;
use ctxmesh_core::ids::MAX_KEY_BYTES;

use crate::DEFAULT_MAX_PAGE_SIZE;
use crate::mesh::package::MAX_BUDGET;
use crate::routes::MAX_REVISION;
use crate::routes::context_map::MAX_MAP_AGENTS;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::routes::{
    agents, backup, conflicts, context_map, contexts, coord, entries, grants, history, mesh, ops, watch, ws,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "ctxmesh", description = "Shared, versioned context for AI agents. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` with a stable code."),
    paths(
        contexts::create, contexts::list, contexts::read, contexts::update, contexts::remove,
        entries::list, entries::read, entries::put, entries::patch, entries::remove, entries::txn, entries::document,
        conflicts::list, conflicts::read, conflicts::resolve, mesh::package, mesh::consensus, mesh::search, mesh::decision, context_map::read, context_map::put,
        history::commits, history::diff, history::rollback, history::fork, history::compact, history::events,
        watch::sse, watch::message, ws::upgrade,
        agents::whoami, agents::register, agents::list, agents::read, agents::update, agents::remove, agents::heartbeat, agents::rotate_token, agents::revoke_token,
        agents::inbox, agents::inbox_watch, agents::feed, agents::feed_watch,
        grants::grant, grants::list, grants::revoke, grants::shared, grants::audit,
        grants::add_policy, grants::policies, grants::delete_policy,
        coord::acquire, coord::read, coord::list, coord::release, coord::refresh,
        coord::request_handoff, coord::read_handoff, mesh::handoff_package, coord::list_handoffs, coord::step, coord::assign, coord::list_context_tasks, coord::list_tasks, coord::read_task,
        coord::complete_task,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi, backup::backup,
    ),
    // Enums that query and path parameters refer to.
    components(schemas(mesh::Format, crate::mesh::Encoding, crate::watch::Order, coord::StepAction)),
    tags(
        (name = "contexts", description = "Contexts and their settings"),
        (name = "entries", description = "Entries, transactions and the assembled document"),
        (name = "history", description = "History, diffs, rollback and fork"),
        (name = "conflicts", description = "Conflict records of stale writes, and their resolution"),
        (name = "mesh", description = "Packages of relevant context within a token budget"),
        (name = "events", description = "The event log, live watches (SSE, WebSocket) and priority messages"),
        (name = "agents", description = "The agent registry, leases, inboxes and the agents feed"),
        (name = "security", description = "Sharing contexts with agents"),
        (name = "locks", description = "Locks of a context with fencing tokens"),
        (name = "handoffs", description = "Handing work from one agent to another"),
        (name = "tasks", description = "Tasks assigned to agents"),
        (name = "operations", description = "Health, readiness, metrics, backups"),
    )
)]
struct ApiDoc;

/// The OpenAPI document, as served at `/openapi.json`: the handlers'
/// annotations, completed by [`complete`] with what every operation shares
/// (path parameter shapes, authentication, the errors of the layers in
/// front of the handlers). Built once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
        complete(&mut doc);
        doc
    })
}

/// `^...$` of a context id (and of an agent id, which uses the same alphabet).
const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";
/// `^...$` of an entry key: `/`-separated non-empty segments.
const KEY_PATTERN: &str = "^[A-Za-z0-9._~:@-]+(/[A-Za-z0-9._~:@-]+)*$";
/// `^...$` of a key prefix: any beginning of a key.
const PREFIX_PATTERN: &str = "^([A-Za-z0-9._~:@-]+/)*[A-Za-z0-9._~:@-]*$";
/// `^...$` of a key pattern: a key whose segments may hold `*`.
const GLOB_PATTERN: &str = "^[A-Za-z0-9._~:@*-]+(/[A-Za-z0-9._~:@*-]+)*$";
/// `^...$` of a lock name.
const LOCK_PATTERN: &str = "^[A-Za-z0-9._~:@/-]{1,128}$";

/// `^...$` of a revision or sequence number sent as text.
const DECIMAL_PATTERN: &str = "^[0-9]{1,19}$";
/// `^...$` of `If-Match`: an entity tag holding a revision, or `*`.
const IF_MATCH_PATTERN: &str = "^(\\*|(W/)?\"[0-9]{1,19}\")$";
/// `^...$` of `X-Fencing-Token`: a lock name, `=`, a token.
const FENCE_PATTERN: &str = "^[A-Za-z0-9._~:@/-]{1,128}=[0-9]{1,19}$";

/// The schema of path parameter `name` in `path`.
fn path_parameter(path: &str, name: &str) -> (Value, &'static str) {
    match name {
        "ctx" => (
            json!({"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}),
            "The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit.",
        ),
        "key" => (
            json!({"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES}),
            "The entry key: `/`-separated segments of A-Z a-z 0-9 . _ ~ : @ -, at most 512 bytes \
             (a `/` inside the key may be sent as is or as `%2F`).",
        ),
        "name" => (
            json!({"type": "string", "pattern": LOCK_PATTERN, "minLength": 1, "maxLength": 128}),
            "The lock name: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -.",
        ),
        "id" if path.starts_with("/v1/agents/") => (
            json!({"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}),
            "The agent id: the alphabet of context ids.",
        ),
        "id" => (json!({"type": "string", "minLength": 1}), "The id the server gave it."),
        _ => (json!({"type": "string"}), ""),
    }
}

/// The conventions shared by query parameters of the same name: page
/// sizes, revisions and times.
fn tighten_query(parameter: &mut Value) {
    if parameter["in"] != "query" {
        return;
    }
    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
    let schema = &mut parameter["schema"];
    match name.as_str() {
        "limit" if schema.get("maximum").is_none() => {
            schema["minimum"] = json!(1);
            schema["maximum"] = json!(DEFAULT_MAX_PAGE_SIZE);
        }
        "at" | "to" => {
            schema["minimum"] = json!(1);
            schema["maximum"] = json!(MAX_REVISION);
        }
        "after" | "from" => schema["maximum"] = json!(MAX_REVISION),
        "budget" => {
            schema["minimum"] = json!(1);
            schema["maximum"] = json!(MAX_BUDGET);
        }
        "as_of" | "since" | "until" => schema["format"] = json!("date-time"),
        "prefix" => {
            schema["pattern"] = json!(PREFIX_PATTERN);
            schema["maxLength"] = json!(MAX_KEY_BYTES);
        }
        _ => {}
    }
}

/// The request headers an operation reads, besides `Authorization` and
/// `X-Agent-Id`.
fn headers_of(operation_id: &str) -> Vec<Value> {
    let if_match = json!({
        "name": "If-Match", "in": "header", "required": false,
        "description": "Write only if the entry's revision is this one (its ETag, `\"12\"`), or with `*` only if it exists.",
        "schema": {"type": "string", "pattern": IF_MATCH_PATTERN}});
    let if_none_match = json!({
        "name": "If-None-Match", "in": "header", "required": false,
        "description": "`*`: write only if the entry does not exist. Not together with `If-Match`.",
        "schema": {"type": "string", "enum": ["*"]}});
    let fencing = json!({
        "name": "X-Fencing-Token", "in": "header", "required": false,
        "description": "`<lock>=<token>`: refuse the write (`409 fenced`) if a newer token of that lock of the context was issued.",
        "schema": {"type": "string", "pattern": FENCE_PATTERN}});
    let last_event = json!({
        "name": "Last-Event-ID", "in": "header", "required": false,
        "description": "Resume after this event id (the SSE `id` of the last event received); wins over `after`.",
        "schema": {"type": "string", "pattern": DECIMAL_PATTERN}});
    match operation_id {
        "putEntry" | "patchEntry" | "deleteEntry" => vec![if_match, if_none_match, fencing],
        "runTransaction" => vec![fencing],
        "watchContext" | "watchInbox" | "watchAgents" => vec![last_event],
        _ => Vec::new(),
    }
}

/// Unsigned integers are documented as the derive writes them, `int32` or
/// `int64` with `minimum: 0`, which tools read as signed, bounding them
/// at half their range: they become `uint32`/`uint64` with their real
/// maximum, unless a tighter one is stated.
fn unsigned(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let zero = map.get("minimum").and_then(Value::as_u64).is_some();
            let max = match map.get("format").and_then(Value::as_str) {
                Some("int32") if zero => Some(("uint32", u64::from(u32::MAX))),
                Some("int64") if zero => Some(("uint64", u64::MAX)),
                _ => None,
            };
            if let Some((format, max)) = max {
                map.insert("format".into(), json!(format));
                map.entry("maximum").or_insert(json!(max));
            }
            map.values_mut().for_each(unsigned);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned),
        _ => {}
    }
}

/// Merges the members of `name`'s `allOf` into one closed object schema.
fn flatten(schemas: &mut Value, name: &str) {
    let mut schema = schemas[name].clone();
    flatten_members(schemas, &mut schema);
    schemas[name] = schema;
}

/// Points a property that refers to `ContextMap` at `ContextMapInput`.
fn accept_names(property: &mut Value) {
    if property["$ref"] == "#/components/schemas/ContextMap" {
        property["$ref"] = json!("#/components/schemas/ContextMapInput");
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(members) = property.get_mut(combinator).and_then(Value::as_array_mut) {
            members.iter_mut().for_each(accept_names);
        }
    }
}

/// Merges the members of `schema`'s `allOf` (looked up in `schemas`) into
/// one closed object schema.
fn flatten_members(schemas: &Value, schema: &mut Value) {
    let Some(members) = schema["allOf"].as_array().cloned() else { return };
    let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
    for member in &members {
        let member = match member["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(target) => schemas[target].clone(),
            None => member.clone(),
        };
        if let Some(own) = member["properties"].as_object() {
            properties.extend(own.clone());
        }
        required.extend(member["required"].as_array().cloned().unwrap_or_default());
    }
    let description = schema["description"].clone();
    *schema = json!({"type": "object", "properties": properties, "required": required,
        "additionalProperties": false});
    if !description.is_null() {
        schema["description"] = description;
    }
}

/// The limits the validation of bodies enforces, by schema and property
/// (`items` for the items of a list), where the derives do not state them.
fn limits() -> Vec<(&'static str, &'static str, Value)> {
    let label = json!({"minLength": 1, "maxLength": 128});
    let labels = json!({"maxProperties": 64, "propertyNames": {"minLength": 1, "maxLength": 128},
        "additionalProperties": {"type": "string", "maxLength": 256}});
    let pattern = json!({"pattern": "^[A-Za-z0-9._:*-]{1,128}$"});
    let id = json!({"pattern": ID_PATTERN});
    let key = json!({"pattern": KEY_PATTERN, "maxLength": MAX_KEY_BYTES});
    let field_conflict = json!({"pattern": "^(reject|last-write-wins|authority)$"});
    vec![
        ("AgentSpec", "id", id.clone()),
        ("HandoffRequest", "target", id.clone()),
        ("HandoffRequest", "context", id.clone()),
        ("TaskRequest", "assignee", id.clone()),
        ("PolicyRule", "id", id.clone()),
        ("ConsensusRequest", "key", key.clone()),
        ("DecisionRequest", "key", key),
        ("PolicyOverride", "pattern", json!({"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES})),
        ("Policy", "on_field_conflict", field_conflict.clone()),
        ("PolicyOverride", "on_field_conflict", field_conflict),
        ("EntryWrite", "kind", label.clone()),
        ("EntryWrite", "tags/items", label.clone()),
        ("EntryWrite", "depends_on/items", json!({"pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES})),
        ("EntryWrite", "confidence", json!({"minimum": 0, "maximum": 1})),
        ("AgentSpec", "name", json!({"minLength": 1, "maxLength": 256})),
        ("AgentPatch", "name", json!({"minLength": 1, "maxLength": 256})),
        ("AgentSpec", "token_budget", json!({"minimum": 1})),
        ("AgentPatch", "token_budget", json!({"minimum": 1})),
        ("AgentSpec", "labels", labels.clone()),
        ("AgentPatch", "labels", labels.clone()),
        ("NewContext", "labels", labels.clone()),
        ("ContextPatch", "labels", labels),
        ("Capabilities", "max_concurrent_contexts", json!({"minimum": 1})),
        ("Capabilities", "supported_kinds", json!({"minItems": 1})),
        ("Capabilities", "supported_kinds/items", label.clone()),
        ("Capabilities", "custom/items", label.clone()),
        ("Retention", "max_revisions", json!({"minimum": 1})),
        ("Retention", "max_age_ms", json!({"minimum": 1})),
        ("ForkRequest", "at", json!({"minimum": 1})),
        ("HandoffRequest", "deadline_ms", json!({"minimum": 1000, "maximum": 2_592_000_000_u64})),
        ("PolicyRule", "keys", json!({"pattern": GLOB_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES})),
        ("Proposal", "agent", id.clone()),
        ("Retention", "max_age_ms", json!({"maximum": MAX_RETENTION_AGE_MS})),
        (
            "AgentPatch",
            "status",
            json!({"oneOf": [{"type": "null"}, {"type": "string", "enum": ["active", "inactive"]}]}),
        ),
        ("MeshSettings", "recency_half_life_ms", json!({"minimum": 1})),
        ("NewContext", "parent", id),
        ("Proposal", "confidence", json!({"minimum": 0, "maximum": 1})),
        ("Compare", "key", json!({"pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES})),
        ("NewContext", "inherit/items", json!({"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES})),
        ("NewContext", "isolate/items", json!({"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES})),
        ("HandoffRequest", "keys/items", json!({"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES})),
        ("NewContext", "override", json!({"propertyNames": {"pattern": KEY_PATTERN, "maxLength": MAX_KEY_BYTES}})),
        ("MeshSettings", "threshold", json!({"minimum": 0, "maximum": 1})),
        ("MeshSettings", "thresholds", json!({"additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}})),
        (
            "Compare",
            "vclock",
            json!({"type": ["object", "null"],
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": u64::MAX, "format": "uint64"}}),
        ),
        ("EntryWrite", "relevance", json!({"additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}})),
        (
            "EntryWrite",
            "vclock",
            json!({"type": ["object", "null"],
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": u64::MAX, "format": "uint64"}}),
        ),
        ("NewContext", "schemas", json!({"propertyNames": {"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES}})),
        ("ContextPatch", "schemas", json!({"propertyNames": {"pattern": GLOB_PATTERN, "maxLength": MAX_KEY_BYTES}})),
        ("ContextMap", "keys/items", json!({"pattern": GLOB_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES})),
        ("ContextMap", "names/items", json!({"minLength": 1, "maxLength": MAX_MAP_NAME_CHARS})),
        (
            "ContextMapRequest",
            "agents",
            json!({"minProperties": 1, "maxProperties": MAX_MAP_AGENTS,
                "propertyNames": {"pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}}),
        ),
        (
            "ContextMapRequest",
            "workflow",
            json!({"maxItems": MAX_MAP_AGENTS, "uniqueItems": true,
                "items": {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}}),
        ),
        ("ConsensusRequest", "proposals", json!({"minItems": 1})),
        ("PolicyRule", "permissions", json!({"minItems": 1})),
        ("TaskRequest", "title", json!({"minLength": 1, "maxLength": 1024})),
        ("PolicyRule", "contexts", pattern.clone()),
        ("PolicyRule", "agents", pattern),
        ("PolicyRule", "tags/items", label.clone()),
        ("MessageRequest", "topic", label),
        ("ConsensusRequest", "min_agreement", json!({"exclusiveMinimum": 0, "maximum": 1})),
    ]
}

/// What the schemas' derives cannot say: the items of agent lists, and
/// which fields a message needs.
fn constrain_schemas(schemas: &mut Value) {
    let agent_id = json!({"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128});
    for schema in ["GrantRequest", "MessageRequest"] {
        schemas[schema]["properties"]["agents"]["items"] = agent_id.clone();
    }
    // A handoff request is one object: its structured context's fields
    // and its own, nothing else (serde's `flatten` is an `allOf` to the
    // derive, which JSON Schema cannot close).
    flatten(schemas, "HandoffRequest");
    for (schema, pointer, limits) in limits() {
        if let Some(target) = schemas.pointer_mut(&format!("/{schema}/properties/{pointer}")) {
            for (name, value) in limits.as_object().expect("limits are objects") {
                // `null` removes what the derive said.
                match value {
                    Value::Null => {
                        target.as_object_mut().map(|t| t.remove(name));
                    }
                    _ => target[name] = value.clone(),
                }
            }
        } else {
            debug_assert!(false, "no {schema}.{pointer} in the document");
        }
    }
    // The same for each operation of a transaction, whose key is a key.
    let key = json!({"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES});
    let prefix = json!({"type": "string", "pattern": PREFIX_PATTERN, "maxLength": MAX_KEY_BYTES});
    let operations = schemas["Op"]["oneOf"].as_array().cloned().unwrap_or_default();
    let flattened: Vec<Value> = operations
        .into_iter()
        .map(|mut operation| {
            flatten_members(schemas, &mut operation);
            for (name, shape) in [("key", &key), ("prefix", &prefix)] {
                if operation["properties"].get(name).is_some() {
                    let description = operation["properties"][name]["description"].clone();
                    operation["properties"][name] = shape.clone();
                    operation["properties"][name]["description"] = description;
                }
            }
            operation["additionalProperties"] = json!(false);
            // A patch carries one patch; a read names one key or one prefix.
            if operation["properties"]["op"]["enum"][0] == "patch" {
                operation["properties"]["merge_patch"] = json!({"description": "A JSON Merge Patch (RFC 7386)."});
                operation["properties"]["json_patch"] = json_patch();
                operation["oneOf"] = json!([{"required": ["merge_patch"]}, {"required": ["json_patch"]}]);
            }
            if operation["properties"]["op"]["enum"][0] == "get" {
                operation["oneOf"] = json!([{"required": ["key"]}, {"required": ["prefix"]}]);
            }
            operation
        })
        .collect();
    schemas["Op"]["oneOf"] = Value::Array(flattened);
    // A map's object form is closed (its own deserializer denies unknown
    // fields, which the derive cannot see).
    schemas["ContextMap"]["additionalProperties"] = json!(false);
    // What an agent's map excludes is a map without an exclusion of its own.
    let mut exclude = schemas["ContextMap"].clone();
    exclude["properties"].as_object_mut().map(|p| p.remove("exclude"));
    exclude.as_object_mut().map(|e| e.remove("description"));
    // A request may give a map as a plain list of names (seed 001's
    // context maps); answers always give the object.
    let names = json!({"type": "array", "description": "Plain names: each matches an entry by its kind, a tag, its key, \
        or a prefix of its key up to a `/`.",
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_MAP_NAME_CHARS}});
    schemas["ContextMap"]["properties"]["exclude"] = json!({"description": "What not to include even when the above match.",
        "oneOf": [{"type": "null"}, exclude, names.clone()]});
    schemas["ContextMapInput"] = json!({
        "description": "What an agent needs or produces: kinds, tags, key patterns and names, or a plain list of names.",
        "oneOf": [{"$ref": "#/components/schemas/ContextMap"}, names]});
    for schema in ["AgentSpec", "AgentPatch", "MapAgent"] {
        for field in ["needs", "produces"] {
            accept_names(&mut schemas[schema]["properties"][field]);
        }
    }
    // A comparison gives exactly one thing to compare.
    let compared = ["revision", "version", "exists", "value", "vclock"];
    for name in compared {
        let property = &mut schemas["Compare"]["properties"][name];
        match property["type"].as_array().and_then(|t| t.first()).cloned() {
            Some(first) => property["type"] = first,
            None => property["not"] = json!({"type": "null"}),
        }
    }
    // `lt` and `gt` order revisions and versions only.
    let ordered = |name: &str| matches!(name, "revision" | "version");
    schemas["Compare"]["oneOf"] = Value::Array(
        compared
            .iter()
            .map(|n| match ordered(n) {
                true => json!({"required": [n]}),
                false => json!({"required": [n], "properties": {"op": {"enum": ["eq", "ne"]}}}),
            })
            .collect(),
    );
    // Signals weigh zero or more.
    if let Some(weights) = schemas["Weights"]["properties"].as_object_mut() {
        weights.values_mut().for_each(|w| w["minimum"] = json!(0));
    }
    // Settings whose fields all have defaults: a body may give any of them.
    for schema in ["MeshSettings", "Weights"] {
        schemas[schema].as_object_mut().map(|s| s.remove("required"));
    }
    // A conflict is resolved by choosing a sibling or by a merged value
    // (any JSON but null).
    schemas["ResolveRequest"]["oneOf"] = json!([{"required": ["choose"]}, {"required": ["value"]}]);
    schemas["ResolveRequest"]["properties"]["choose"] = json!({"type": "string", "enum": ["current", "proposed"], "description": schemas["ResolveRequest"]["properties"]["choose"]["description"]});
    schemas["ResolveRequest"]["properties"]["value"] = json!({"not": {"type": "null"}, "description": schemas["ResolveRequest"]["properties"]["value"]["description"]});
    // A message goes to a context, to agents (at least one), or both.
    schemas["MessageRequest"]["anyOf"] = json!([
        {"required": ["context"], "properties": {"context": {"type": "string"}}},
        {"required": ["agents"], "properties": {"agents": {"minItems": 1}}},
    ]);
}

/// The two bodies of `PATCH` on an entry: a JSON Merge Patch (any JSON)
/// and a JSON Patch (a list of operations).
fn patch_bodies() -> Value {
    json!({
        "application/merge-patch+json": {"schema": {"description": "A JSON Merge Patch (RFC 7386) of the value."}},
        "application/json-patch+json": {"schema": json_patch()},
    })
}

/// A JSON Patch (RFC 6902): a list of operations, each of its shape.
fn json_patch() -> Value {
    let pointer = json!({"type": "string", "pattern": "^(/([^~/]|~[01])*)*$"});
    json!({
        "description": "A JSON Patch (RFC 6902) of the value: it applies whole or not at all.",
        "type": "array",
        "items": {"type": "object", "oneOf": [
            {"required": ["op", "path", "value"], "properties": {
                "op": {"enum": ["add", "replace", "test"]}, "path": pointer, "value": {}}},
            {"required": ["op", "path"], "properties": {"op": {"enum": ["remove"]}, "path": pointer}},
            {"required": ["op", "from", "path"], "properties": {
                "op": {"enum": ["move", "copy"]}, "from": pointer, "path": pointer}},
        ]},
    })
}

/// A stream's answer: Server-Sent Events, each described as the object
/// of its fields (`event`, `id`, `data`), whose `data` is JSON: an `Event`,
/// or a `progress` bookmark, the `compacted` end of a watch that started
/// too far back, or an `error` that ends it.
fn describe_streams(answers: &mut serde_json::Map<String, Value>) {
    let position = json!({"type": "integer", "minimum": 0});
    let data = json!({"anyOf": [
        {"$ref": "#/components/schemas/Event"},
        {"type": "object", "required": ["type"], "properties": {
            "type": {"const": "progress"}, "context": {"type": "string"}, "stream": {"type": "string"},
            "revision": position, "seq": position}},
        {"type": "object", "required": ["type", "requested", "compacted_revision"], "properties": {
            "type": {"const": "compacted"}, "context": {"type": "string"},
            "requested": position, "compacted_revision": position}},
        {"type": "object", "required": ["type", "error"], "properties": {
            "type": {"const": "error"}, "error": {"type": "object", "required": ["code", "message"]}}},
    ]});
    for answer in answers.values_mut() {
        if let Some(stream) = answer.pointer_mut("/content/text~1event-stream") {
            stream["schema"] = json!({
                "type": "object",
                "description": "One Server-Sent Event: `event` is its type, `id` the position to resume from \
                                (`Last-Event-ID`), `data` its JSON.",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string"},
                    "id": {"type": "string", "pattern": DECIMAL_PATTERN},
                    "retry": {"type": "integer"},
                    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
                },
            });
        }
    }
}

/// The errors every operation of a kind can answer, by status: the name of
/// their response in `components.responses` and its description.
const SHARED_ERRORS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "Invalid input: a parameter, header or body of the wrong shape (`details.field` names it)."),
    ("401", "Unauthenticated", "No bearer token, or one the server does not know."),
    ("403", "Forbidden", "The caller may not do this (or `X-Agent-Id` names another agent than its token's)."),
    ("404", "NotFound", "The context, entry or other resource named does not exist."),
    ("409", "Fenced", "`fenced`: the write's `X-Fencing-Token` is older than the lock's newest token."),
    ("413", "TooLarge", "The body (or a value in it) is over the server's limits."),
    ("415", "UnsupportedMediaType", "The body's `Content-Type` is not one this operation takes."),
    (
        "429",
        "RateLimited",
        "The agent is over its request rate, or has too many streams open: retry after `Retry-After` seconds.",
    ),
    ("500", "Internal", "An internal error; the server log has the details."),
    ("503", "Unavailable", "The store (or a dependency such as the embeddings endpoint) is unavailable: retry later."),
    ("507", "StorageFull", "The server's disk is full; the write changed nothing: retry once space is freed."),
];

/// Fills in what the annotations leave out: every path parameter with its
/// shape, the `X-Agent-Id` header and bearer authentication of `/v1`, and
/// the error answers of the layers every request passes (authentication,
/// rate limits, body limits, the store), each as a shared response that
/// refers to `ErrorBody`.
fn complete(doc: &mut Value) {
    let components = doc["components"].as_object_mut().expect("components");
    components.insert(
        "securitySchemes".into(),
        json!({"bearer": {"type": "http", "scheme": "bearer",
            "description": "The admin token or an agent's token (`cmt_...`)."}}),
    );
    let mut responses = serde_json::Map::new();
    for (status, name, description) in SHARED_ERRORS {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        });
        if matches!(*status, "429" | "503" | "507") {
            response["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0}}});
        }
        responses.insert((*name).into(), response);
    }
    components.insert("responses".into(), Value::Object(responses));
    components.insert(
        "parameters".into(),
        json!({"AgentId": {
            "name": "X-Agent-Id", "in": "header", "required": false,
            "description": "With the admin token: the agent to act as. With an agent token: \
                            that agent's own id, or absent.",
            "schema": {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}}}),
    );
    constrain_schemas(&mut doc["components"]["schemas"]);
    unsigned(doc);
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let names: Vec<&str> =
            path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
        let v1 = path.starts_with("/v1/");
        for (method, operation) in item.as_object_mut().expect("path item").iter_mut() {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let mut completed: Vec<Value> = Vec::new();
            for name in &names {
                let declared = parameters.iter().find(|p| p["in"] == "path" && p["name"] == *name);
                let (schema, description) = path_parameter(path, name);
                let mut parameter = declared.cloned().unwrap_or_else(|| json!({"name": name, "in": "path"}));
                parameter["required"] = json!(true);
                if declared.is_none_or(|p| p["schema"]["type"] == "string") {
                    parameter["schema"] = schema;
                }
                if parameter.get("description").is_none() && !description.is_empty() {
                    parameter["description"] = json!(description);
                }
                completed.push(parameter);
            }
            let operation_id = operation["operationId"].as_str().unwrap_or_default().to_owned();
            for mut parameter in parameters.into_iter().filter(|p| p["in"] != "path") {
                tighten_query(&mut parameter);
                completed.push(parameter);
            }
            completed.extend(headers_of(&operation_id));
            if v1 {
                completed.push(json!({"$ref": "#/components/parameters/AgentId"}));
                operation["security"] = json!([{"bearer": []}]);
            }
            if completed.is_empty() {
                operation.as_object_mut().expect("operation").remove("parameters");
            } else {
                operation["parameters"] = Value::Array(completed);
            }
            if operation_id == "patchEntry" {
                operation["requestBody"]["content"] = patch_bodies();
            }
            if let Some(answers) = operation["responses"].as_object_mut() {
                describe_streams(answers);
            }
            let body = operation.get("requestBody").is_some();
            let fenced =
                operation["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == "X-Fencing-Token"));
            let answers = operation["responses"].as_object_mut().expect("responses");
            for (status, name, _) in SHARED_ERRORS {
                let shared = match *status {
                    "400" | "401" | "403" | "429" | "500" | "503" => v1,
                    "404" => v1 && !names.is_empty(),
                    "409" => fenced,
                    "413" | "415" => v1 && body,
                    "507" => v1 && method != "get",
                    _ => false,
                };
                if shared {
                    answers.entry(*status).or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path parameter is declared where its template names it, and
    /// only there; every schema that is referred to exists.
    #[test]
    fn parameters_and_references_are_complete() {
        let json = spec();
        let text = serde_json::to_string(json).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "#/components/schemas/{name} is referred to but not defined");
        }
        for (path, item) in json["paths"].as_object().unwrap() {
            let mut names: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            names.sort_unstable();
            for (method, operation) in item.as_object().unwrap() {
                let mut declared: Vec<&str> = operation["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                declared.sort_unstable();
                assert_eq!(declared, names, "path parameters of {method} {path}");
            }
        }
    }

    /// Operation ids are unique and readable (code generators name methods
    /// after them); every `/v1` operation is authenticated and documents
    /// the answers of the layers in front of it; every reference to a
    /// shared response or parameter resolves.
    #[test]
    fn operations_are_named_and_answer_completely() {
        let json = spec();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(id.len() > 4 && id.chars().all(char::is_alphanumeric), "operationId {id:?} of {method} {path}");
                assert!(ids.insert(id.to_owned()), "operationId {id} is given twice");
                if path.starts_with("/v1/") {
                    assert_eq!(operation["security"], json!([{"bearer": []}]), "{method} {path}");
                    for status in ["400", "401", "403", "429", "500", "503"] {
                        assert!(operation["responses"].get(status).is_some(), "{method} {path} lacks {status}");
                    }
                }
            }
        }
        let text = serde_json::to_string(json).unwrap();
        for kind in ["responses", "parameters"] {
            for reference in text.split(&format!("\"#/components/{kind}/")).skip(1) {
                let name = reference.split('"').next().unwrap();
                assert!(json["components"][kind].get(name).is_some(), "#/components/{kind}/{name} is not defined");
            }
        }
        let patch = &json["paths"]["/v1/contexts/{ctx}/entries/{key}"]["patch"]["requestBody"]["content"];
        assert!(
            patch.get("application/merge-patch+json").is_some() && patch.get("application/json-patch+json").is_some()
        );
    }

    /// Unsigned integers carry their real range, not the signed one their
    /// derived format suggests.
    #[test]
    fn unsigned_integers_have_their_range() {
        let schemas = &spec()["components"]["schemas"];
        assert_eq!(schemas["AgentSpec"]["properties"]["token_budget"]["format"], "uint64");
        assert_eq!(schemas["AgentSpec"]["properties"]["token_budget"]["maximum"], json!(u64::MAX));
        assert_eq!(schemas["AgentSpec"]["properties"]["lease_ms"]["maximum"], 86_400_000);
    }
}
