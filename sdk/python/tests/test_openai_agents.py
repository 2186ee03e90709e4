"""The OpenAI Agents SDK ``Session`` adapter, driven by the SDK's own ``Runner``.

The models are the SDK's ``ScriptedModel`` (canned responses, no network);
the conversation lives in a real ctxmesh server.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List

import pytest
from agents import Agent, RunConfig, Runner, handoff, set_tracing_disabled
from agents.memory import Session
from agents.testing import ScriptedModel, assistant_message, function_call

import ctxmesh
from ctxmesh.openai_agents import CtxmeshSession
from ctxmesh_server import CtxmeshServer, agents_sharing, unique

NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    """The SDK would export traces to OpenAI; the tests reach nothing but the ctxmesh server."""
    set_tracing_disabled(True)


@pytest.fixture
async def team(server: CtxmeshServer) -> AsyncIterator[Dict[str, Any]]:
    """A context shared by two runner agents (one on each client), an observer, and an outsider."""
    roles = {
        "front-desk": (["read", "write"], "async"),
        "billing": (["read", "write"], "sync"),
        "observer": (["read"], "async"),
        "outsider": ([], "async"),
    }
    async with agents_sharing(server, "support", roles) as (ctx, ids, clients):
        yield {
            "ctx": ctx,
            "ids": {"front": ids["front-desk"], "billing": ids["billing"]},
            "front": clients["front-desk"],
            "billing": clients["billing"],
            "observer": clients["observer"],
            "outsider": clients["outsider"],
        }


def text_of(item: Dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


async def test_is_a_session(team: Dict[str, Any]) -> None:
    session = CtxmeshSession("s-1", team["front"], context=team["ctx"])
    assert isinstance(session, Session)
    assert session.session_id == "s-1"
    assert session.session_settings is not None and session.session_settings.limit is None


async def test_handoff_run_then_another_runner_continues_the_conversation(team: Dict[str, Any]) -> None:
    ctx = team["ctx"]
    conversation = "order-4711"

    # Runner 1 (the front desk's process): triage hands off to billing, billing answers.
    billing_model = ScriptedModel([[assistant_message("Refund of 42 EUR issued.", item_id="msg-billing-1")]])
    billing_agent = Agent(name="Billing agent", instructions="Handle refunds.", model=billing_model)
    triage_model = ScriptedModel(
        [[function_call(handoff(billing_agent).tool_name, {}, call_id="call-handoff-1")]]
    )
    triage = Agent(name="Triage", instructions="Route the user.", model=triage_model, handoffs=[billing_agent])
    session = CtxmeshSession(conversation, team["front"], context=ctx)
    result = await Runner.run(triage, "I was charged twice for order 4711.", session=session, run_config=NO_TRACING)
    assert result.final_output == "Refund of 42 EUR issued."
    assert result.last_agent is billing_agent
    triage_model.assert_complete()
    billing_model.assert_complete()
    # The billing agent's model saw the user's message and the handoff.
    seen = billing_model.calls[0].input
    assert any(text_of(i) == "I was charged twice for order 4711." for i in seen if i.get("role") == "user")

    # Runner 2 (another process, another agent, a synchronous client) picks the conversation up.
    followup_model = ScriptedModel([[assistant_message("It reaches your card in 3 days.", item_id="msg-billing-2")]])
    followup_agent = Agent(name="Billing agent", instructions="Handle refunds.", model=followup_model)
    other = CtxmeshSession(conversation, team["billing"], context=ctx)
    result = await Runner.run(followup_agent, "When will I get it?", session=other, run_config=NO_TRACING)
    assert result.final_output == "It reaches your card in 3 days."
    history_seen = followup_model.calls[0].input
    assert [text_of(i) for i in history_seen if i.get("role") in ("user", "assistant")] == [
        "I was charged twice for order 4711.",
        "Refund of 42 EUR issued.",
        "When will I get it?",
    ]

    # The conversation as ctxmesh holds it: complete and in order, each item an entry
    # written by the agent whose runner produced it.
    items = await CtxmeshSession(conversation, team["observer"], context=ctx).get_items()
    shape = [(i.get("type", "message"), i.get("role"), text_of(i) if "content" in i else i.get("name")) for i in items]
    assert shape == [
        ("message", "user", "I was charged twice for order 4711."),
        ("function_call", None, "transfer_to_billing_agent"),
        ("function_call_output", None, None),
        ("message", "assistant", "Refund of 42 EUR issued."),
        ("message", "user", "When will I get it?"),
        ("message", "assistant", "It reaches your card in 3 days."),
    ]
    assert items[2]["call_id"] == items[1]["call_id"] == "call-handoff-1"
    entries = await team["observer"].list(ctx, prefix=session.items_prefix)
    authors = [e.author for e in sorted(entries, key=lambda e: e.revision)]
    assert authors == [team["ids"]["front"]] * 4 + [team["ids"]["billing"]] * 2
    assert {e.kind for e in entries} == {"message"}

    # Every item is in the context's event log (what a watch delivers), in order.
    events = (await team["observer"].events(ctx, after=0, prefix=session.items_prefix)).events
    logged = [e.data["value"] for e in events if e.type == "context.updated" and e.data.get("change") == "created"]
    assert logged == items

    # Read-only and ungranted agents: the observer may read but not write; the outsider nothing.
    with pytest.raises(ctxmesh.Forbidden):
        await CtxmeshSession(conversation, team["observer"], context=ctx).add_items([{"role": "user", "content": "x"}])
    with pytest.raises(ctxmesh.Forbidden):
        await CtxmeshSession(conversation, team["outsider"], context=ctx).get_items()


async def test_limits_pop_and_clear(team: Dict[str, Any]) -> None:
    session = CtxmeshSession("limits", team["front"], context=team["ctx"], session_settings={"limit": 2})
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items([{"role": "user", "content": f"m{i}"} for i in range(5)])
    assert [i["content"] for i in await session.get_items()] == ["m3", "m4"]
    assert [i["content"] for i in await session.get_items(limit=4)] == ["m1", "m2", "m3", "m4"]
    assert await session.get_items(limit=0) == []
    assert (await session.pop_item()) == {"role": "user", "content": "m4"}
    await session.add_items([{"role": "user", "content": "m5"}])
    assert [i["content"] for i in await session.get_items(limit=10)] == ["m0", "m1", "m2", "m3", "m5"]
    await session.clear_session()
    assert await session.get_items(limit=10) == []
    assert await session.pop_item() is None
    await session.add_items([{"role": "user", "content": "again"}])
    assert await session.get_items() == [{"role": "user", "content": "again"}]


async def test_a_new_context_is_created_on_first_write(server: CtxmeshServer) -> None:
    async with server.async_client() as admin:
        session = CtxmeshSession(unique("fresh"), admin)  # the context is the session id
        assert await session.get_items() == []
        await session.add_items([{"role": "user", "content": "hello"}])
        assert (await admin.get_context(session.context)).id == session.session_id
        assert await session.get_items() == [{"role": "user", "content": "hello"}]


async def test_concurrent_add_items_lose_nothing(team: Dict[str, Any]) -> None:
    """Four runners (two agents, both client kinds) append at once: every batch lands whole and in order."""
    ctx = team["ctx"]
    writers = [CtxmeshSession("busy", team[name], context=ctx) for name in ("front", "billing", "front", "billing")]

    async def write(w: int) -> None:
        for b in range(8):
            await writers[w].add_items([{"role": "user", "content": f"w{w}-b{b}-{i}"} for i in range(3)])

    await asyncio.gather(*(write(w) for w in range(len(writers))))
    items = [i["content"] for i in await CtxmeshSession("busy", team["observer"], context=ctx).get_items()]
    assert len(items) == 4 * 8 * 3
    assert sorted(items) == sorted(f"w{w}-b{b}-{i}" for w in range(4) for b in range(8) for i in range(3))
    for start in range(0, len(items), 3):  # each call's items are contiguous, in order
        w, b, _ = items[start].split("-")
        assert items[start : start + 3] == [f"{w}-{b}-{i}" for i in range(3)]
    for w in range(4):  # each writer's calls keep their order
        mine = [c for c in items if c.startswith(f"w{w}-")]
        assert mine == [f"w{w}-b{b}-{i}" for b in range(8) for i in range(3)]


async def test_concurrent_pops_each_take_a_different_item(team: Dict[str, Any]) -> None:
    ctx = team["ctx"]
    await CtxmeshSession("stack", team["front"], context=ctx).add_items(
        [{"role": "user", "content": f"m{i}"} for i in range(20)]
    )
    names = ("front", "billing", "front", "billing", "front", "billing")
    poppers = [CtxmeshSession("stack", team[name], context=ctx) for name in names]

    async def pop_all(session: CtxmeshSession) -> List[Any]:
        return [await session.pop_item() for _ in range(4)]

    popped = [item for batch in await asyncio.gather(*(pop_all(s) for s in poppers)) for item in batch]
    taken = [p["content"] for p in popped if p is not None]
    assert sorted(taken, key=lambda c: int(c[1:])) == [f"m{i}" for i in range(20)]  # each exactly once
    assert popped.count(None) == 4
    reader = CtxmeshSession("stack", team["observer"], context=ctx)
    assert await reader.get_items() == []
    # The session is consistent afterwards: what is added next is what is popped next.
    await poppers[1].add_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert await poppers[2].pop_item() == {"role": "user", "content": "b"}
    assert await reader.get_items() == [{"role": "user", "content": "a"}]
