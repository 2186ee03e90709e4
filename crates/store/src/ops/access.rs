//! Access control in storage: grants, policy rules, the audit log, and
//! loading what [`ctxmesh_core::access::Access`] decides on. The decision
//! itself is core's.

use ctxmesh_core::access::{Access, Grant};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use serde_json::json;

use super::env::Env;
use super::streams::{deliver, log_event};
use crate::clock::Clock;
use crate::coord::*;
use crate::error::Result;
use crate::objects::*;
use crate::tx::{Object, ObjectFilter, Tx};

pub(crate) async fn grant_access(
    tx: &mut impl Tx,
    env: Env<'_>,
    GrantAccess { ctx, agents, permissions, expires_at, by, unregistered }: GrantAccess,
) -> Result<CoordOutput> {
    if agents.is_empty() || permissions.is_empty() {
        return Err(Error::invalid("agents", "name at least one agent and one permission").into());
    }
    let at = env.now();
    if expires_at.is_some_and(|t| t <= at) {
        return Err(Error::invalid("expires_at", "must be in the future").into());
    }
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let mut targets: Vec<&str> = agents.iter().map(String::as_str).collect();
    targets.sort_unstable();
    targets.dedup();
    let mut grants = Vec::new();
    for who in &targets {
        if !unregistered {
            registered(tx, who, "an agent given a grant must be").await?;
        }
        let grant = Grant {
            context: ctx.as_str().to_owned(),
            agent: (*who).to_owned(),
            permissions: permissions.clone(),
            expires_at,
            granted_by: by.clone(),
            granted_at: at,
        };
        tx.put_object(&grant_object(&grant)?).await?;
        grants.push(grant);
    }
    let data = json!({ "agents": targets, "permissions": permissions, "expires_at": expires_at });
    let event = log_event(tx, env, &mut info, types::CONTEXT_SHARED, &by, None, data).await?;
    deliver(tx, &targets, &event).await?;
    Ok(CoordOutput::Grants(grants))
}

pub(crate) async fn revoke_access(
    tx: &mut impl Tx,
    env: Env<'_>,
    RevokeAccess { ctx, agent: who, by }: RevokeAccess,
) -> Result<CoordOutput> {
    let mut info = tx.lock_context(ctx.as_str()).await?;
    let id = format!("{}/{who}", ctx.as_str());
    if tx.object(GRANT, &id, true).await?.is_none() {
        return Err(Error::not_found(format!("a grant of {who:?} on context {:?}", ctx.as_str())).into());
    }
    tx.delete_object(GRANT, &id).await?;
    let event = log_event(tx, env, &mut info, types::CONTEXT_REVOKED, &by, None, json!({ "agent": who })).await?;
    deliver(tx, &[&who], &event).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn put_policy(tx: &mut impl Tx, _env: Env<'_>, PutPolicy(rule): PutPolicy) -> Result<CoordOutput> {
    rule.validate()?;
    if tx.object(POLICY, &rule.id, true).await?.is_some() {
        return Err(Error::AlreadyExists { what: format!("policy {:?}", rule.id) }.into());
    }
    let body = serde_json::to_string(&rule)?;
    let object =
        Object { kind: POLICY.into(), id: rule.id.clone(), ctx: None, owner: None, state: None, due_at: None, body };
    tx.put_object(&object).await?;
    Ok(CoordOutput::Policy(Box::new(rule)))
}

pub(crate) async fn delete_policy(
    tx: &mut impl Tx,
    _env: Env<'_>,
    DeletePolicy { id }: DeletePolicy,
) -> Result<CoordOutput> {
    if tx.object(POLICY, &id, true).await?.is_none() {
        return Err(Error::not_found(format!("policy {id:?}")).into());
    }
    tx.delete_object(POLICY, &id).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn append_audit(
    tx: &mut impl Tx,
    _env: Env<'_>,
    AppendAudit(records): AppendAudit,
) -> Result<CoordOutput> {
    tx.append_audit(&records).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn trim_audit(
    tx: &mut impl Tx,
    _env: Env<'_>,
    TrimAudit { before }: TrimAudit,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Count(tx.trim_audit(before).await?))
}

pub(crate) async fn read_audit(tx: &mut impl Tx, _clock: &dyn Clock, ReadAudit(q): ReadAudit) -> Result<CoordOutput> {
    Ok(CoordOutput::Audit(tx.audit(&q).await?))
}

pub(crate) async fn list_policies(tx: &mut impl Tx, _clock: &dyn Clock, _: ListPolicies) -> Result<CoordOutput> {
    Ok(CoordOutput::Policies(policies(tx).await?))
}

pub(crate) async fn list_grants(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ListGrants { ctx }: ListGrants,
) -> Result<CoordOutput> {
    tx.context(ctx.as_str()).await?;
    let filter = ObjectFilter { ctx: Some(ctx.as_str().to_owned()), ..Default::default() };
    let objects = tx.objects(GRANT, &filter, "", usize::MAX >> 1).await?;
    Ok(CoordOutput::Grants(objects.iter().map(decode).collect::<Result<_>>()?))
}

pub(crate) async fn shared_with(
    tx: &mut impl Tx,
    clock: &dyn Clock,
    SharedWith { agent: who }: SharedWith,
) -> Result<CoordOutput> {
    agent(tx, &who, false).await?;
    let filter = ObjectFilter { owner: Some(who), ..Default::default() };
    let at = clock.now();
    let grants: Vec<Grant> =
        tx.objects(GRANT, &filter, "", usize::MAX >> 1).await?.iter().map(decode).collect::<Result<_>>()?;
    Ok(CoordOutput::Grants(grants.into_iter().filter(|g| g.expires_at.is_none_or(|t| t > at)).collect()))
}

pub(crate) async fn get_access(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    GetAccess { ctx, agent: who }: GetAccess,
) -> Result<CoordOutput> {
    let info = tx.context(ctx.as_str()).await?;
    let grant = match tx.object(GRANT, &format!("{}/{who}", ctx.as_str()), false).await? {
        Some(o) => Some(decode(&o)?),
        None => None,
    };
    let registered = match tx.object(AGENT, &who, false).await? {
        Some(o) => Some(decode(&o)?),
        None => None,
    };
    Ok(CoordOutput::Access(Box::new(Access {
        context: info.id.clone(),
        creator: info.created_by == who,
        grant,
        agent: registered,
        policies: policies(tx).await?,
    })))
}
