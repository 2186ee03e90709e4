//! Authorization of context access: the admin may do everything; an agent
//! may use a context it created, one it holds a current grant on, or one a
//! policy opens to it, within its capabilities (`can_read`, `can_write`,
//! `can_share`).
//!
//! Every route under `/v1/contexts/{ctx}/` is checked by [`guard`] before
//! its handler runs, so no context route can forget; routes that name a
//! context elsewhere (messages, handoffs, WebSocket subscriptions, the
//! global lists) call [`authorize`] themselves. A transaction needs `read`
//! or `write` by its operations, which the guard cannot see: it checks
//! that the caller may do one of them, and the handler decides and
//! records ([`authorize_txn`]).
//!
//! A decision also says which entries the caller may read and write
//! ([`Scopes`]): the guard hands them to the handler, which filters what
//! it reads and passes them to the store with what it writes.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ctxmesh_core::access::{Access, AuditRecord, EntryScope, Permission};
use ctxmesh_core::ids::ContextId;
use ctxmesh_store::coord as req;

use std::sync::Arc;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::Caller;
use crate::watch::AccessCheck;

/// The entries of one context a caller may read and write.
#[derive(Clone, Debug)]
pub(crate) struct Scopes {
    pub(crate) read: EntryScope,
    pub(crate) write: EntryScope,
}

impl Scopes {
    /// Every entry.
    pub(crate) fn all() -> Self {
        Scopes { read: EntryScope::all(), write: EntryScope::all() }
    }

    /// What a transaction carries to the store: nothing when everything
    /// is permitted.
    pub(crate) fn txn(&self) -> Option<ctxmesh_core::txn::TxnScope> {
        if self.read.is_all() && self.write.is_all() {
            return None;
        }
        Some(ctxmesh_core::txn::TxnScope { read: self.read.clone(), write: self.write.clone() })
    }

    /// Refuses a whole-context operation (rollback needs `write`, fork
    /// `read`) to a caller that may not use every entry.
    pub(crate) fn require_all(&self, needed: Permission, what: &str) -> ApiResult<()> {
        let scope = if needed == Permission::Read { &self.read } else { &self.write };
        if scope.is_all() {
            return Ok(());
        }
        let message = format!("{what} needs {} of every entry, confidential ones included", needed.as_str());
        Err(ApiError::new(ErrorCode::Forbidden, message))
    }
}

/// The [`Scopes`] the guard decided for this request (none outside the
/// guarded routes: fail closed).
impl<S: Send + Sync> FromRequestParts<S> for Scopes {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let none = || Scopes { read: EntryScope::none(), write: EntryScope::none() };
        Ok(parts.extensions.get::<Scopes>().cloned().unwrap_or_else(none))
    }
}

/// Checks that `caller` may do `needed` on `ctx` (for the request
/// `resource`), records the decision in the audit log, and says which
/// entries it may read and write.
pub(crate) async fn authorize(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    needed: Permission,
    resource: &str,
) -> ApiResult<Scopes> {
    let (decision, reason) = decide(state, caller, ctx, needed).await;
    if audited(state, caller) {
        record(state, caller, ctx, needed, resource, decision.is_ok(), &reason);
    }
    decision
}

/// Whether `caller`'s decisions go to the audit log (with `--auth off`
/// there are no identities to record).
fn audited(state: &AppState, caller: &Caller) -> bool {
    !(caller.admin && matches!(state.config().auth, crate::auth::Auth::Off))
}

/// The decision of [`authorize`], and its reason, without recording it.
async fn decide(state: &AppState, caller: &Caller, ctx: &ContextId, needed: Permission) -> (ApiResult<Scopes>, String) {
    match load(state, caller, ctx).await {
        Ok(access) => decide_on(access.as_ref(), caller, ctx, needed),
        Err(e) => (Err(e), "no such context".into()),
    }
}

/// What `caller`'s access to `ctx` is decided on: nothing for the admin
/// (`None`: everything is allowed), else what the store holds, with a
/// JWT's identity applied.
async fn load(state: &AppState, caller: &Caller, ctx: &ContextId) -> ApiResult<Option<Access>> {
    if caller.admin {
        return Ok(None);
    }
    let read = req::GetAccess { ctx: ctx.clone(), agent: caller.agent.clone() };
    let mut access = state.store().coord(read).await?;
    if let Some(jwt) = &caller.jwt {
        jwt.apply(&mut access, &caller.agent);
    }
    Ok(Some(access))
}

/// The decision on `access` (as [`load`] gives it), and its reason.
fn decide_on(
    access: Option<&Access>,
    caller: &Caller,
    ctx: &ContextId,
    needed: Permission,
) -> (ApiResult<Scopes>, String) {
    let Some(access) = access else { return (Ok(Scopes::all()), "admin".into()) };
    let now = chrono::Utc::now();
    let (allowed, reason) = access.decide(needed, now);
    if allowed {
        let scopes = Scopes { read: access.scope(Permission::Read, now), write: access.scope(Permission::Write, now) };
        return (Ok(scopes), reason);
    }
    let mut message =
        format!("agent {:?} may not {} context {:?}: {reason}", caller.agent, needed.as_str(), ctx.as_str());
    if let Some(fix) = grant_hint(access, &reason, &caller.agent, ctx, needed, now) {
        message.push_str(". ");
        message.push_str(&fix);
    }
    (Err(ApiError::new(ErrorCode::Forbidden, message)), reason)
}

/// How a refusal for want of a grant is fixed: the grant that would allow
/// `needed` (what the agent's grant has, if it is still in force, plus
/// `needed`), the call that adds it and who may make it. `None` when a
/// grant would not help (a policy denied it, or the agent's capabilities).
fn grant_hint(
    access: &ctxmesh_core::access::Access,
    reason: &str,
    agent: &str,
    ctx: &ContextId,
    needed: Permission,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    if !ctxmesh_core::access::Access::wants_grant(reason) {
        return None;
    }
    let mut permissions: Vec<&str> = access
        .grant
        .as_ref()
        .filter(|g| g.in_force(now))
        .map(|g| g.permissions.iter().map(|p| p.as_str()).collect())
        .unwrap_or_default();
    if !permissions.contains(&needed.as_str()) {
        permissions.push(needed.as_str());
    }
    let ctx = ctx.as_str();
    Some(format!(
        "An agent with share on the context (its creator has it) or an admin grants it: \
         POST /v1/contexts/{ctx}/grants {{\"agents\": [{agent:?}], \"permissions\": {permissions:?}}}, \
         or `ctxmesh ctx grant {ctx} {agent} {}`",
        permissions.join(" ")
    ))
}

/// What `agent` may read of `ctx`, decided for work done on its behalf
/// (its package): a refusal is `403` and audited like its own request.
pub(crate) async fn read_scope_of(
    state: &AppState,
    agent: &str,
    ctx: &ContextId,
    resource: &str,
) -> ApiResult<EntryScope> {
    let caller = Caller { agent: agent.to_owned(), admin: false, token: None, jwt: None };
    read_scope(state, &caller, ctx, resource).await
}

/// What `caller` may read of `ctx` for `resource`, decided with its own
/// identity (a JWT's trust claim included): a refusal is `403` and
/// audited. Everything when authentication is off.
pub(crate) async fn read_scope(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    resource: &str,
) -> ApiResult<EntryScope> {
    if matches!(state.config().auth, crate::auth::Auth::Off) {
        return Ok(EntryScope::all());
    }
    authorize(state, caller, ctx, Permission::Read, resource).await.map(|s| s.read)
}

/// What a stream of `caller` (a watch of `ctx`, or of an inbox or feed
/// when `None`) runs to decide its access again: the token must still be
/// valid, and the caller must still read the context (a refusal is
/// audited; the stream then ends).
pub(crate) fn stream_access(state: &AppState, caller: &Caller, ctx: Option<ContextId>) -> Option<AccessCheck> {
    if caller.admin {
        return None;
    }
    let (state, caller) = (state.clone(), caller.clone());
    Some(Arc::new(move || {
        let (state, caller, ctx) = (state.clone(), caller.clone(), ctx.clone());
        Box::pin(async move {
            if caller.jwt.as_ref().is_some_and(|jwt| jwt.expired(chrono::Utc::now())) {
                return Err(ApiError::new(ErrorCode::Unauthenticated, "the JWT has expired"));
            }
            if let Some(hash) = caller.token.clone() {
                match state.store().coord(req::TokenOwner { hash }).await {
                    Ok(agent) if agent.id == caller.agent => {}
                    Ok(_) | Err(ctxmesh_store::StoreError::Core(ctxmesh_core::Error::NotFound { .. })) => {
                        let message = "the token is no longer valid (rotated or revoked)";
                        return Err(ApiError::new(ErrorCode::Unauthenticated, message));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let Some(ctx) = ctx else { return Ok(None) };
            let (decision, reason) = decide(&state, &caller, &ctx, Permission::Read).await;
            match decision {
                Ok(scopes) => Ok(Some(scopes.read)),
                Err(e) => {
                    record(&state, &caller, &ctx, Permission::Read, "watch (access decided again)", false, &reason);
                    Err(e)
                }
            }
        })
    }))
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
        Ok(_) => Ok(true),
        Err(e) if matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a transaction's access is decided on, loaded by the guard before
/// the body was read (so that the handler decides without reading it
/// again).
#[derive(Clone)]
pub(crate) struct TxnAccess(Option<Arc<Access>>);

/// The guard's [`TxnAccess`] (none outside the guarded route: refused).
impl<S: Send + Sync> FromRequestParts<S> for TxnAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<TxnAccess>()
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "the transaction's access was not decided"))
    }
}

/// Decides and records a transaction's access on what the guard loaded:
/// `write` when any of its operations writes, else `read`, so that an
/// agent that may only read can batch its reads in one transaction.
pub(crate) fn authorize_txn(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    access: &TxnAccess,
    txn: &ctxmesh_core::txn::TxnRequest,
    resource: &str,
) -> ApiResult<(Scopes, Permission)> {
    let needed = if txn.writes() { Permission::Write } else { Permission::Read };
    let (decision, reason) = decide_on(access.0.as_deref(), caller, ctx, needed);
    if audited(state, caller) {
        record(state, caller, ctx, needed, resource, decision.is_ok(), &reason);
    }
    Ok((decision?, needed))
}

/// Records a refusal entry by entry (a `403` from the store) of a request
/// whose handler decided its access ([`authorize_txn`]); other errors
/// pass as they are.
pub(crate) fn record_refusal(
    state: &AppState,
    caller: &Caller,
    ctx: &ContextId,
    needed: Permission,
    resource: &str,
    error: ApiError,
) -> ApiError {
    if error.code == ErrorCode::Forbidden && audited(state, caller) {
        record(state, caller, ctx, needed, resource, false, &error.message);
    }
    error
}

/// Whether the handler of this request decides and records its access
/// (a transaction: its operations say whether it writes); the guard then
/// checks only that the caller may read or write.
fn decided_by_handler(method: &Method, tail: &str) -> bool {
    method == Method::POST && tail == "txn"
}

/// What a request under `/v1/contexts/{ctx}` needs.
fn needed(method: &Method, tail: &str) -> Permission {
    let sub = tail.split('/').next().unwrap_or("");
    match (method, sub) {
        (_, "grants") => Permission::Share,
        (&Method::GET | &Method::HEAD, _) => Permission::Read,
        (&Method::POST, "fork") => Permission::Read,
        (&Method::PATCH | &Method::DELETE, "") | (&Method::POST, "compact") => Permission::Admin,
        // Or write; the handler decides (`decided_by_handler`).
        (&Method::POST, "txn") => Permission::Read,
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
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
    let needed = needed(req.method(), tail);
    if decided_by_handler(req.method(), tail) {
        // The caller must be able to read or to write; only a refusal is
        // recorded here (as of `read`), the handler decides on what is
        // loaded here and records its decision, and refusals entry by
        // entry, itself.
        let (refusal, reason) = match load(&state, &caller, &ctx).await {
            Ok(access) => match decide_on(access.as_ref(), &caller, &ctx, needed) {
                (Err(e), reason) if decide_on(access.as_ref(), &caller, &ctx, Permission::Write).0.is_err() => {
                    (e, reason)
                }
                _ => {
                    req.extensions_mut().insert(TxnAccess(access.map(Arc::new)));
                    return next.run(req).await;
                }
            },
            Err(e) => (e, "no such context".into()),
        };
        if audited(&state, &caller) {
            record(&state, &caller, &ctx, needed, &resource, false, &reason);
        }
        return refusal.into_response();
    }
    match authorize(&state, &caller, &ctx, needed, &resource).await {
        Ok(scopes) => {
            req.extensions_mut().insert(scopes);
            let response = next.run(req).await;
            // A refusal entry by entry is a decision too.
            if let Some(crate::error::Refusal(reason)) = response.extensions().get()
                && !matches!(state.config().auth, crate::auth::Auth::Off)
            {
                record(&state, &caller, &ctx, needed, &resource, false, reason);
            }
            response
        }
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
        assert_eq!(needed(&Method::POST, "txn"), Permission::Read, "or write: the handler decides");
        assert!(decided_by_handler(&Method::POST, "txn"));
        assert!(!decided_by_handler(&Method::PUT, "entries/a"));
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
