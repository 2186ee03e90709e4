"""Agents, inboxes, handoffs, tasks, messages, grants, policies and the audit log."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable, List

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique


def test_agent_registry(admin: ctxmesh.Client, server: CtxmeshServer) -> None:
    aid = unique("researcher")
    registered = admin.register_agent(
        aid,
        name="Researcher",
        capabilities={"can_share": True, "custom": ["search"]},
        needs={"kinds": ["objective"], "keys": ["brief/*"]},
        objective="find market data",
        token_budget=6000,
        trust="medium",
        labels={"team": "growth"},
    )
    assert registered.token.startswith("cmt_")
    assert registered.capabilities.can_share and registered.capabilities.custom == ["search"]
    assert registered.trust == "medium" and registered.status == "active"

    fetched = admin.get_agent(aid)
    assert "token" not in fetched.model_dump(), "the token is shown only once"
    assert fetched.needs.keys == ["brief/*"]

    me = server.client(token=registered.token, agent_id=aid)
    assert me.update_agent(aid, objective="find pricing data").objective == "find pricing data"
    with pytest.raises(ctxmesh.Forbidden):
        me.update_agent(aid, trust="full")
    beat = me.heartbeat()
    assert beat.lease_expires_at is not None and beat.lease_expires_at > datetime.now(timezone.utc)

    assert aid in {a.id for a in admin.iter_agents(capability="search", page_size=3)}
    with pytest.raises(ctxmesh.InvalidArgument) as e:
        admin.register_agent(unique("bad"), token_budget=0)
    assert e.value.field == "token_budget"

    # A token alone is enough: the client asks the server whose it is.
    assert me.whoami() == ctxmesh.Identity(agent=aid, admin=False)
    with server.client(token=registered.token) as token_only:
        assert token_only.agent_id is None
        assert token_only.heartbeat().id == aid
        assert token_only.inbox().events == []
        assert token_only.shared() == []
    assert admin.whoami().admin
    with pytest.raises(ValueError, match="name the agent"):
        admin.heartbeat()  # the admin token belongs to no agent

    rotated = me.rotate_token()
    with pytest.raises(ctxmesh.Unauthenticated):
        me.heartbeat()
    with pytest.raises(ctxmesh.Unauthenticated):
        server.client(token=registered.token).whoami()
    renewed = server.client(token=rotated.token, agent_id=aid)
    assert renewed.heartbeat().id == aid

    feed = admin.agent_events(after=0, limit=1000).events
    assert any(e.type == "agent.registered" and aid in e.model_dump_json() for e in feed)

    admin.delete_agent(aid)
    with pytest.raises(ctxmesh.NotFound):
        admin.get_agent(aid)
    with pytest.raises(ctxmesh.Unauthenticated):
        renewed.heartbeat()
    me.close()
    renewed.close()


def test_handoff_lifecycle_with_inbox_delivery(agent: Callable[..., ctxmesh.Client]) -> None:
    researcher = agent("researcher")
    writer = agent("writer")
    cid = researcher.create_context(unique("launch")).id
    researcher.put(cid, "findings/market", {"size": "large"}, kind="finding")
    researcher.grant(cid, [writer.agent_id], ["read", "write"])
    assert writer.agent_id is not None and researcher.agent_id is not None

    writer_inbox = writer.watch_inbox(after=0)
    before = researcher.get_context(cid).revision
    handoff = researcher.request_handoff(
        writer.agent_id,
        cid,
        keys=["findings/*"],
        session="s-42",
        user_intent="a launch post for developers",
        conversation_history=[{"role": "user", "content": "write it"}],
        extracted_entities={"product": "ctxmesh"},
        note="sources are in findings/",
        package={"summary": "market is large"},
    )
    assert handoff.status == handoff.state == "requested"
    assert handoff.source == researcher.agent_id and handoff.target == writer.agent_id
    assert handoff.revision == before, "the handoff refers to the context as it was"
    assert handoff.keys == ["findings/*"] and handoff.note == "sources are in findings/"

    shared = next(writer_inbox)
    assert (shared.type, shared.seq) == ("context.shared", 1)
    requested = next(writer_inbox)
    assert (requested.type, requested.seq) == ("handoff.requested", 2)
    assert requested.data["handoff"]["id"] == handoff.id
    assert requested.data["handoff"]["user_intent"] == "a launch post for developers"
    assert requested.context == cid

    with pytest.raises(ctxmesh.Forbidden):
        researcher.accept_handoff(handoff.id)
    with pytest.raises(ctxmesh.InvalidTransition):
        writer.complete_handoff(handoff.id, {"post": "too early"})
    accepted = writer.accept_handoff(handoff.id)
    assert accepted.state == "accepted"
    with pytest.raises(ctxmesh.InvalidTransition):
        writer.accept_handoff(handoff.id)
    completed = writer.complete_handoff(handoff.id, {"post": "ctxmesh is out"})
    assert completed.state == "completed" and completed.outcome == {"post": "ctxmesh is out"}
    assert researcher.get_handoff(handoff.id).status == "completed"

    source_items = [e.type for e in researcher.iter_inbox()]
    assert source_items == ["handoff.accepted", "handoff.completed"]
    rest: List[str] = []
    for event in writer_inbox:
        rest.append(event.type)
        if event.type == "handoff.completed":
            break
    writer_inbox.close()
    assert rest == ["handoff.accepted", "handoff.completed"]
    assert [h.id for h in writer.list_handoffs(agent=writer.agent_id).handoffs] == [handoff.id]
    assert [h.state for h in researcher.list_handoffs(context=cid, state="completed").handoffs] == ["completed"]
    assert [h.status for h in researcher.list_handoffs(context=cid, status="completed").handoffs] == ["completed"]
    assert researcher.list_handoffs(context=cid, status="requested").handoffs == []
    log = [e.type for e in researcher.iter_events(cid, types="handoff.requested,handoff.accepted,handoff.completed")]
    assert log == ["handoff.requested", "handoff.accepted", "handoff.completed"]


def test_handoff_rejection(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("a")
    b = agent("b")
    cid = a.create_context(unique("ctx")).id
    assert b.agent_id is not None
    h = a.request_handoff(b.agent_id, cid, deadline_ms=60_000)
    rejected = b.reject_handoff(h.id, {"reason": "busy"})
    assert rejected.state == "rejected" and rejected.outcome == {"reason": "busy"}
    with pytest.raises(ctxmesh.InvalidTransition):
        b.accept_handoff(h.id)
    with pytest.raises(ctxmesh.NotFound):
        a.request_handoff(unique("nobody"), cid)


def test_tasks(agent: Callable[..., ctxmesh.Client]) -> None:
    lead = agent("lead")
    worker = agent("worker")
    cid = lead.create_context(unique("ctx")).id
    assert worker.agent_id is not None
    task = lead.assign_task(cid, worker.agent_id, "draft", input={"words": 300}, priority="high")
    assert task.state == "assigned" and task.assigned_by == lead.agent_id
    assert [e.type for e in worker.iter_inbox()] == ["task.assigned"]
    assert [t.id for t in worker.list_tasks(agent=worker.agent_id).tasks] == [task.id]
    assert [t.id for t in lead.list_context_tasks(cid).tasks] == [task.id]
    assert lead.list_context_tasks(cid, state="completed").tasks == []
    assert lead.list_context_tasks(cid, status="completed").tasks == []
    assert [t.status for t in lead.list_context_tasks(cid, status="assigned").tasks] == ["assigned"]
    with pytest.raises(ctxmesh.Forbidden):
        lead.complete_task(task.id, {"text": "not mine"})
    done = worker.complete_task(task.id, {"text": "hello"})
    assert done.status == done.state == "completed" and done.output == {"text": "hello"}
    assert done.completed_at is not None
    with pytest.raises(ctxmesh.InvalidTransition):
        worker.complete_task(task.id)
    assert lead.get_task(task.id).state == "completed"
    assert [e.type for e in lead.iter_inbox()] == ["task.completed"]


def test_messages_to_agents_and_contexts(agent: Callable[..., ctxmesh.Client], admin: ctxmesh.Client) -> None:
    a = agent("a")
    b = agent("b")
    cid = admin.create_context(unique("ctx")).id
    assert a.agent_id and b.agent_id
    sent = admin.send_message({"stop": True}, agents=[a.agent_id, b.agent_id], priority="critical", topic="halt")
    assert sent.type == "message" and sent.priority == "critical"
    for c in (a, b):
        items = c.inbox().events
        assert [(e.type, e.data["topic"], e.data["body"]) for e in items] == [("message", "halt", {"stop": True})]
    logged = admin.send_message("review please", context=cid, priority="high")
    assert logged.context == cid and logged.revision == admin.get_context(cid).revision
    with pytest.raises(ctxmesh.NotFound):
        admin.send_message("x", agents=[unique("nobody")])
    with pytest.raises(ctxmesh.InvalidArgument):
        admin.send_message("nowhere")


def test_grants_and_shared(agent: Callable[..., ctxmesh.Client]) -> None:
    owner = agent("owner")
    reader = agent("reader")
    cid = owner.create_context(unique("ctx")).id
    owner.put(cid, "doc", 1)
    assert reader.agent_id is not None
    with pytest.raises(ctxmesh.Forbidden):
        reader.get(cid, "doc")
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    grants = owner.grant(cid, reader.agent_id, ["read"], expires_at=expires)
    assert [(g.agent, g.permissions) for g in grants] == [(reader.agent_id, ["read"])]
    assert reader.get(cid, "doc").value == 1
    with pytest.raises(ctxmesh.Forbidden):
        reader.put(cid, "doc", 2)
    assert [g.context for g in reader.shared()] == [cid]
    assert {g.agent for g in owner.list_grants(cid)} == {reader.agent_id}
    owner.revoke(cid, reader.agent_id)
    with pytest.raises(ctxmesh.Forbidden):
        reader.get(cid, "doc")
    assert [e.type for e in reader.iter_inbox()] == ["context.shared", "context.revoked"]


def test_policies_and_audit(admin: ctxmesh.Client, agent: Callable[..., ctxmesh.Client]) -> None:
    intern = agent("intern")
    cid = admin.create_context(unique("open")).id
    admin.put(cid, "hr/salaries", {"ceo": 1})
    admin.put(cid, "public/news", "launch")
    allow_id, deny_id = unique("allow"), unique("deny")
    assert intern.agent_id is not None
    rules = admin.add_policy(allow_id, "allow", contexts=cid, agents=intern.agent_id, permissions=["read"])
    assert allow_id in {r.id for r in rules}
    admin.add_policy(deny_id, "deny", contexts=cid, agents=intern.agent_id, keys="hr/**", permissions=["read"])
    assert {r.id for r in admin.list_policies()} >= {allow_id, deny_id}
    assert [e.key for e in intern.list(cid)] == ["public/news"]
    with pytest.raises(ctxmesh.NotFound):
        intern.get(cid, "hr/salaries")
    with pytest.raises(ctxmesh.Forbidden):
        intern.add_policy(unique("x"), "allow")
    admin.delete_policy(allow_id)
    admin.delete_policy(deny_id)
    with pytest.raises(ctxmesh.Forbidden):
        intern.list(cid)

    deadline = time.monotonic() + 5
    while True:
        records = admin.audit(agent=intern.agent_id, context=cid, allowed=False).records
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert records and all(not r.allowed and r.agent == intern.agent_id for r in records)
    with pytest.raises(ctxmesh.Forbidden):
        intern.audit()


def test_handoff_package_holds_the_handoffs_keys_at_its_revision(agent: Callable[..., ctxmesh.Client]) -> None:
    researcher = agent("researcher")
    writer = agent("writer", needs={"kinds": ["finding"]})
    cid = researcher.create_context(unique("launch")).id
    researcher.put(cid, "findings/market", {"size": "large"}, kind="finding")
    researcher.put(cid, "notes/private", {"mood": "tired"}, kind="finding")
    researcher.grant(cid, [writer.agent_id], ["read"])
    assert writer.agent_id is not None
    handoff = researcher.request_handoff(writer.agent_id, cid, keys=["findings/*"])
    researcher.put(cid, "findings/market", {"size": "huge"}, kind="finding")  # after the handoff

    package = writer.handoff_package(handoff.id, budget=2000)
    assert isinstance(package, ctxmesh.Package)
    assert package.context == cid and package.revision == handoff.revision
    assert package.tokens <= 2000
    keys = [item.key for item in package.items]
    assert "findings/market" in keys and "notes/private" not in keys
    market = next(item for item in package.items if item.key == "findings/market")
    shown = market.text + repr(market.value)
    assert "large" in shown and "huge" not in shown, "the key as it was at the handoff"
