//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

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
        coord::request_handoff, coord::read_handoff, coord::list_handoffs, coord::step, coord::assign, coord::list_context_tasks, coord::list_tasks, coord::read_task,
        coord::complete_task,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
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
    ApiDoc::openapi()
}
