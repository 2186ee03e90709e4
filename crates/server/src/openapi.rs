//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes::{contexts, entries, history, ops, watch, ws};

#[derive(OpenApi)]
#[openapi(
    info(title = "ctxmesh", description = "Shared, versioned context for AI agents. Errors are `{\"error\": {\"code\", \"message\", \"details\"}}` with a stable code."),
    paths(
        contexts::create, contexts::list, contexts::read, contexts::update, contexts::remove,
        entries::list, entries::read, entries::put, entries::patch, entries::remove, entries::txn, entries::document,
        history::commits, history::diff, history::rollback, history::fork, history::compact, history::events,
        watch::sse, watch::message, ws::upgrade,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    tags(
        (name = "contexts", description = "Contexts and their settings"),
        (name = "entries", description = "Entries, transactions and the assembled document"),
        (name = "history", description = "History, diffs, rollback and fork"),
        (name = "events", description = "The event log, live watches (SSE, WebSocket) and priority messages"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
