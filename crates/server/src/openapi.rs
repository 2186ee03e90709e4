//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Required, Schema};

use crate::routes::{agents, conflicts, contexts, coord, entries, grants, history, mesh, ops, watch, ws};

#[derive(OpenApi)]
#[openapi(
    info(title = "ctxmesh", description = "Shared, versioned context for AI agents. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` with a stable code."),
    paths(
        contexts::create, contexts::list, contexts::read, contexts::update, contexts::remove,
        entries::list, entries::read, entries::put, entries::patch, entries::remove, entries::txn, entries::document,
        conflicts::list, conflicts::read, conflicts::resolve, mesh::package, mesh::consensus, mesh::search, mesh::decision,
        history::commits, history::diff, history::rollback, history::fork, history::compact, history::events,
        watch::sse, watch::message, ws::upgrade,
        agents::whoami, agents::register, agents::list, agents::read, agents::update, agents::remove, agents::heartbeat, agents::rotate_token, agents::revoke_token,
        agents::inbox, agents::inbox_watch, agents::feed, agents::feed_watch,
        grants::grant, grants::list, grants::revoke, grants::shared, grants::audit,
        grants::add_policy, grants::policies, grants::delete_policy,
        coord::acquire, coord::read, coord::list, coord::release, coord::refresh,
        coord::request_handoff, coord::read_handoff, mesh::handoff_package, coord::list_handoffs, coord::step, coord::assign, coord::list_context_tasks, coord::list_tasks, coord::read_task,
        coord::complete_task,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
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
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    declare_path_parameters(&mut doc);
    doc
}

/// Declares every `{name}` of a path template as a required string path
/// parameter in each of its operations that does not declare it already
/// (the handlers take them through an extractor that the annotations do
/// not see), so that every operation's parameters are complete.
fn declare_path_parameters(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let names: Vec<&str> =
            path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
        if names.is_empty() {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            add_missing(operation, &names);
        }
    }
}

fn add_missing(operation: &mut Operation, names: &[&str]) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for (i, name) in names.iter().enumerate() {
        let declared = parameters.iter().any(|p| p.name == *name && p.parameter_in == ParameterIn::Path);
        if !declared {
            let schema = Schema::Object(ObjectBuilder::new().schema_type(Type::String).build());
            let parameter = ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema))
                .build();
            parameters.insert(i.min(parameters.len()), parameter);
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
        let doc = spec();
        let text = serde_json::to_string(&doc).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
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
}
