//! Authorization of context access: the admin may do everything; an agent
//! may use a context it created, or one it holds a current grant on, within
//! its capabilities (`can_read`, `can_write`, `can_share`).
//!
//! Every route under `/v1/contexts/{ctx}/` is checked by [`guard`] before
//! its handler runs, so no context route can forget; routes that name a
//! context elsewhere (messages, handoffs, WebSocket subscriptions, the
//! global lists) call [`authorize`] themselves.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ctxmesh_core::coord::{AuditRecord, Permission};
use ctxmesh_core::ids::ContextId;
use ctxmesh_store::coord::{CoordOutput, CoordRead};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;

/// Checks that `caller` may do `needed` on `ctx` (for the request
/// `resource`), and records the decision in the audit log.
pub(crate) async fn authorize(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    needed: Permission,
    resource: &str,
) -> ApiResult<()> {
    if caller.admin {
        if !matches!(state.config().auth, crate::auth::Auth::Off) {
            record(state, caller, ctx, needed, resource, true, "admin");
        }
        return Ok(());
    }
    let read = CoordRead::Access { ctx: ctx.clone(), agent: caller.agent.clone() };
    let access = match state.store().coord_read(read).await {
        Ok(CoordOutput::Access(access)) => access,
        Ok(other) => return Err(ApiError::internal(format!("unexpected output {other:?}"))),
        Err(e) => {
            record(state, caller, ctx, needed, resource, false, "no such context");
            return Err(e.into());
        }
    };
    let (allowed, reason) = access.decide(needed, chrono::Utc::now());
    if allowed {
        record(state, caller, ctx, needed, resource, true, &reason);
        return Ok(());
    }
    record(state, caller, ctx, needed, resource, false, &reason);
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("agent {:?} may not {} context {:?}: {reason}", caller.agent, needed.as_str(), ctx.as_str()),
    ))
}

fn record(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    needed: Permission,
    resource: &str,
    allowed: bool,
    reason: &str,
) {
    state.audit(AuditRecord {
        seq: 0,
        at: chrono::Utc::now(),
        agent: caller.agent.clone(),
        action: needed.as_str().to_owned(),
        resource: resource.to_owned(),
        context: ctx.as_str().to_owned(),
        allowed,
        reason: reason.to_owned(),
    });
}

/// Whether `caller` may read `ctx` (for filtering lists).
pub(crate) async fn can_read(state: &AppState, caller: &Caller, ctx: &str) -> ApiResult<bool> {
    let Ok(ctx) = ContextId::parse(ctx) else { return Ok(false) };
    match authorize(state, caller, &ctx, Permission::Read, "GET /v1/contexts").await {
        Ok(()) => Ok(true),
        Err(e) if e.code == "forbidden" || e.code == "not_found" => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a request under `/v1/contexts/{ctx}` needs.
fn needed(method: &Method, tail: &str) -> Permission {
    let sub = tail.split('/').next().unwrap_or("");
    match (method, sub) {
        (_, "grants") => Permission::Share,
        (&Method::GET | &Method::HEAD, _) => Permission::Read,
        (&Method::POST, "fork") => Permission::Read,
        (&Method::PATCH | &Method::DELETE, "") | (&Method::POST, "compact") => Permission::Admin,
        _ => Permission::Write,
    }
}

/// Decodes `%XX` escapes, as the path extractor will.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Middleware: authorizes every request under `/v1/contexts/{ctx}/`.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(rest) = req.uri().path().strip_prefix("/v1/contexts/") else {
        return next.run(req).await;
    };
    let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    // A malformed id is the handler's to refuse (400); nothing to authorize.
    let Some(ctx) = percent_decode(segment).and_then(|s| ContextId::parse(&s).ok()) else {
        return next.run(req).await;
    };
    let resource = format!("{} {}", req.method(), req.uri().path());
    match authorize(&state, &caller, &ctx, needed(req.method(), tail), &resource).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_by_route() {
        assert_eq!(needed(&Method::GET, "entries/a"), Permission::Read);
        assert_eq!(needed(&Method::GET, "watch"), Permission::Read);
        assert_eq!(needed(&Method::PUT, "entries/a"), Permission::Write);
        assert_eq!(needed(&Method::POST, "txn"), Permission::Write);
        assert_eq!(needed(&Method::POST, "locks/x"), Permission::Write);
        assert_eq!(needed(&Method::POST, "fork"), Permission::Read);
        assert_eq!(needed(&Method::DELETE, ""), Permission::Admin);
        assert_eq!(needed(&Method::PATCH, ""), Permission::Admin);
        assert_eq!(needed(&Method::GET, "grants"), Permission::Share);
        assert_eq!(needed(&Method::DELETE, "grants"), Permission::Share);
        assert_eq!(percent_decode("%61bc").as_deref(), Some("abc"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
