//! Agents: registration, updates, leases and heartbeats, tokens, their
//! inboxes and the agents feed.

use ctxmesh_core::agent::{Agent, AgentStatus, parse_agent_id};
use ctxmesh_core::error::Error;
use ctxmesh_core::event::types;
use serde_json::json;

use super::env::Env;
use super::streams::{append, feed_event};
use crate::clock::Clock;
use crate::coord::*;
use crate::error::Result;
use crate::objects::*;
use crate::tx::{Object, ObjectFilter, Tx};

pub(crate) async fn register(tx: &mut impl Tx, env: Env<'_>, Register(spec): Register) -> Result<CoordOutput> {
    let agent = spec.into_agent(env.now())?;
    if tx.object(AGENT, &agent.id, true).await?.is_some() {
        return Err(Error::AlreadyExists { what: format!("agent {:?}", agent.id) }.into());
    }
    tx.put_object(&agent_object(&agent)?).await?;
    append(tx, AGENTS_FEED, feed_event(types::AGENT_REGISTERED, &agent, env.now())).await?;
    Ok(CoordOutput::Agent(agent))
}

pub(crate) async fn update_agent(
    tx: &mut impl Tx,
    _env: Env<'_>,
    UpdateAgent { id, patch }: UpdateAgent,
) -> Result<CoordOutput> {
    let mut a = agent(tx, &id, true).await?;
    a.apply(patch)?;
    tx.put_object(&agent_object(&a)?).await?;
    Ok(CoordOutput::Agent(a))
}

pub(crate) async fn heartbeat(tx: &mut impl Tx, env: Env<'_>, Heartbeat { id }: Heartbeat) -> Result<CoordOutput> {
    let mut a = agent(tx, &id, true).await?;
    a.heartbeat(env.now());
    tx.put_object(&agent_object(&a)?).await?;
    Ok(CoordOutput::Agent(a))
}

pub(crate) async fn set_token(
    tx: &mut impl Tx,
    env: Env<'_>,
    SetToken { agent: id, hash }: SetToken,
) -> Result<CoordOutput> {
    agent(tx, &id, true).await?;
    drop_tokens(tx, &id).await?;
    let body = json!({ "agent": id, "created_at": env.now() }).to_string();
    let token = Object { kind: TOKEN.into(), id: hash, ctx: None, owner: Some(id), state: None, due_at: None, body };
    tx.put_object(&token).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn revoke_tokens(
    tx: &mut impl Tx,
    _env: Env<'_>,
    RevokeTokens { agent: id }: RevokeTokens,
) -> Result<CoordOutput> {
    agent(tx, &id, true).await?;
    drop_tokens(tx, &id).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn unregister(tx: &mut impl Tx, env: Env<'_>, Unregister { id }: Unregister) -> Result<CoordOutput> {
    let a = agent(tx, &id, true).await?;
    drop_tokens(tx, &id).await?;
    // A later agent of the same id starts with no access.
    delete_owned(tx, GRANT, &id).await?;
    tx.delete_object(AGENT, &id).await?;
    append(tx, AGENTS_FEED, feed_event(types::AGENT_UNREGISTERED, &a, env.now())).await?;
    Ok(CoordOutput::Unit)
}

pub(crate) async fn expire_agent(
    tx: &mut impl Tx,
    env: Env<'_>,
    ExpireAgent { id, now }: ExpireAgent,
) -> Result<CoordOutput> {
    let Some(object) = tx.object(AGENT, &id, true).await? else { return Ok(CoordOutput::Unit) };
    let mut a: Agent = decode(&object)?;
    if a.status == AgentStatus::Disconnected || a.lease_expires_at > now {
        return Ok(CoordOutput::Unit); // renewed or handled meanwhile
    }
    a.status = AgentStatus::Disconnected;
    tx.put_object(&agent_object(&a)?).await?;
    append(tx, AGENTS_FEED, feed_event(types::AGENT_DISCONNECTED, &a, env.now())).await?;
    Ok(CoordOutput::Agent(a))
}

pub(crate) async fn get_agent(tx: &mut impl Tx, _clock: &dyn Clock, GetAgent { id }: GetAgent) -> Result<CoordOutput> {
    Ok(CoordOutput::Agent(agent(tx, &id, false).await?))
}

pub(crate) async fn list_agents(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ListAgents(q): ListAgents,
) -> Result<CoordOutput> {
    let filter = ObjectFilter { state: q.status.map(|s| s.as_str().to_owned()), ..Default::default() };
    let mut out = Vec::new();
    let mut after = q.after.unwrap_or_default();
    // Capabilities are inside the body: filter page by page.
    loop {
        let batch = tx.objects(AGENT, &filter, &after, 500).await?;
        let Some(last) = batch.last() else { break };
        after = last.id.clone();
        for object in &batch {
            let a: Agent = decode(object)?;
            if q.capability.as_deref().is_none_or(|c| a.capabilities.has(c)) {
                out.push(a);
            }
        }
        if out.len() > q.limit || batch.len() < 500 {
            break;
        }
    }
    let more = out.len() > q.limit;
    out.truncate(q.limit);
    Ok(CoordOutput::Agents(out, more))
}

pub(crate) async fn read_inbox(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ReadInbox { agent: id, after, limit }: ReadInbox,
) -> Result<CoordOutput> {
    parse_agent_id(&id)?;
    agent(tx, &id, false).await?;
    Ok(CoordOutput::Events(tx.stream(&inbox_stream(&id), after, limit).await?))
}

pub(crate) async fn inbox_head(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    InboxHead { agent: id }: InboxHead,
) -> Result<CoordOutput> {
    agent(tx, &id, false).await?;
    Ok(CoordOutput::Head(tx.stream_head(&inbox_stream(&id)).await?))
}

pub(crate) async fn token_owner(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    TokenOwner { hash }: TokenOwner,
) -> Result<CoordOutput> {
    let Some(token) = tx.object(TOKEN, &hash, false).await? else {
        return Err(Error::not_found("token").into());
    };
    let owner = token.owner.unwrap_or_default();
    Ok(CoordOutput::Agent(agent(tx, &owner, false).await?))
}

pub(crate) async fn read_agents_feed(
    tx: &mut impl Tx,
    _clock: &dyn Clock,
    ReadAgentsFeed { after, limit }: ReadAgentsFeed,
) -> Result<CoordOutput> {
    Ok(CoordOutput::Events(tx.stream(AGENTS_FEED, after, limit).await?))
}

async fn drop_tokens(tx: &mut impl Tx, agent: &str) -> Result<()> {
    delete_owned(tx, TOKEN, agent).await
}

/// Deletes the objects of `kind` owned by `agent`.
async fn delete_owned(tx: &mut impl Tx, kind: &str, agent: &str) -> Result<()> {
    let filter = ObjectFilter { owner: Some(agent.to_owned()), ..Default::default() };
    for object in tx.objects(kind, &filter, "", ALL).await? {
        tx.delete_object(kind, &object.id).await?;
    }
    Ok(())
}
