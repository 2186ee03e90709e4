"""The LlamaIndex chat store and context block, driven by LlamaIndex's own ``Memory``.

The model is LlamaIndex's ``MockLLM`` (it answers with the prompt it got, no
network); the chats live in a real ctxmesh server.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List

import pytest
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.memory import Memory
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus

import ctxmesh
from ctxmesh.llamaindex import CtxmeshChatStore, CtxmeshContextBlock
from ctxmesh_server import CtxmeshServer, unique


def words(text: str) -> List[str]:
    """A tokenizer for the tests: one token per word."""
    return text.split()


@pytest.fixture
async def crew(server: CtxmeshServer) -> AsyncIterator[Dict[str, Any]]:
    """A context with a finding relevant to a planner; a planner (async client) and a pricer (sync client)."""
    ctx = unique("launch")
    planner = server.register_agent(unique("planner"), needs={"kinds": ["finding"]}, objective="price the launch")
    pricer = server.register_agent(unique("pricer"), needs={"kinds": ["finding"]})
    with server.client() as admin:
        admin.create_context(ctx)
        admin.grant(ctx, [planner.id, pricer.id], ["read", "write"])
        admin.put(ctx, "findings/competitors", {"text": "competitors charge 49 EUR a seat"}, kind="finding")
        admin.put(ctx, "notes/lunch", {"text": "pizza on friday"}, kind="note")
    clients = {
        "planner": server.async_client(planner.token, planner.id),
        "pricer": server.client(pricer.token, pricer.id),
    }
    try:
        yield {"ctx": ctx, "ids": {"planner": planner.id, "pricer": pricer.id}, **clients}
    finally:
        await clients["planner"].aclose()
        clients["pricer"].close()


def memory(client: Any, ctx: str, chat: str, **kw: Any) -> Memory:
    return Memory.from_defaults(
        session_id=chat,
        chat_store=CtxmeshChatStore(client, context=ctx),
        tokenizer_fn=words,
        **kw,
    )


async def test_memory_gets_the_agents_package_and_keeps_the_chat_in_ctxmesh(crew: Dict[str, Any]) -> None:
    ctx = crew["ctx"]
    block = CtxmeshContextBlock(crew["planner"], context=ctx, budget=400, priority=1)
    mem = memory(crew["planner"], ctx, "pricing", memory_blocks=[block], token_limit=120, token_flush_size=20)
    llm = MockLLM()
    prompts = []
    for i in range(6):
        await mem.aput(ChatMessage(role="user", content=f"question {i} " + "about seats " * 8))
        messages = await mem.aget()
        prompts.append(messages)
        answer = await llm.achat(messages)
        await mem.aput(ChatMessage(role="assistant", content=f"answer {i}: " + str(answer.message.content)[-40:]))

    # The package went into the system message: the relevant finding, not the note.
    system = prompts[-1][0]
    assert system.role == "system"
    assert "competitors charge 49 EUR a seat" in str(system.content)
    assert "pizza" not in str(system.content)
    assert "<ctxmesh_context>" in str(system.content)

    # The chat is in ctxmesh: the oldest turns archived by the memory, none lost, in order.
    store = CtxmeshChatStore(crew["pricer"], context=ctx)
    everything = await store.get_messages("pricing", status=None)
    assert [m.content.split(" ")[:2] for m in everything] == [
        [kind, f"{i}" if kind == "question" else f"{i}:"] for i in range(6) for kind in ("question", "answer")
    ]
    archived = await store.get_messages("pricing", status=MessageStatus.ARCHIVED)
    active = await store.get_messages("pricing")
    assert archived and active and archived + active == everything
    assert await store.count_messages("pricing") == len(active)
    assert await store.count_messages("pricing", status=MessageStatus.ARCHIVED) == len(archived)
    assert [m.content for m in (await mem.aget())[1:]] == [m.content for m in active]
    entries = await crew["planner"].list(ctx, prefix="llamaindex/messages/pricing/")
    assert len(entries) == 12 and {e.author for e in entries} == {crew["ids"]["planner"]}


async def test_two_writers_on_one_chat_lose_nothing(crew: Dict[str, Any]) -> None:
    """Two agents write the same chat at once, each through its own Memory (which archives as it goes)."""
    ctx = crew["ctx"]
    mems = {
        name: memory(crew[name], ctx, "shared", token_limit=60, token_flush_size=10) for name in ("planner", "pricer")
    }

    async def talk(name: str) -> None:
        for i in range(12):
            await mems[name].aput(ChatMessage(role="user", content=f"{name} {i} " + "x " * 5))

    await asyncio.gather(talk("planner"), talk("pricer"))
    store = CtxmeshChatStore(crew["planner"], context=ctx)
    everything = [m.content for m in await store.get_messages("shared", status=None)]
    assert len(everything) == 24
    for name in mems:  # each writer's messages, once each, in its order
        assert [c.split(" ")[1] for c in everything if c.startswith(name)] == [str(i) for i in range(12)]
    archived = await store.count_messages("shared", status=MessageStatus.ARCHIVED)
    active = await store.count_messages("shared", status=MessageStatus.ACTIVE)
    assert archived > 0 and active > 0 and archived + active == 24
    assert await store.count_messages("shared", status=None) == 24
    assert len(await store.get_messages("shared", status=MessageStatus.ARCHIVED)) == archived


async def test_concurrent_archiving_archives_each_message_once(crew: Dict[str, Any]) -> None:
    ctx = crew["ctx"]
    stores = [CtxmeshChatStore(crew[name], context=ctx) for name in ("planner", "pricer", "planner", "pricer")]
    await stores[0].add_messages("q", [ChatMessage(role="user", content=f"m{i}") for i in range(12)])
    batches = await asyncio.gather(*(s.archive_oldest_messages("q", 2) for s in stores))
    archived = sorted((m.content for batch in batches for m in batch), key=lambda c: int(c[1:]))
    assert archived == [f"m{i}" for i in range(8)]  # the 8 oldest, each by one caller
    assert [m.content for m in await stores[1].get_messages("q", status=MessageStatus.ARCHIVED)] == archived
    assert [m.content for m in await stores[1].get_messages("q")] == [f"m{i}" for i in range(8, 12)]


async def test_chat_store_operations(crew: Dict[str, Any]) -> None:
    store = CtxmeshChatStore(crew["planner"], context=crew["ctx"], prefix="chats")
    assert isinstance(store, AsyncDBChatStore)
    assert await store.get_messages("k") == [] and await store.count_messages("k") == 0
    await store.add_messages("k", [ChatMessage(role="user", content=f"m{i}") for i in range(6)])
    await store.add_message("k", ChatMessage(role="assistant", content="old"), status=MessageStatus.ARCHIVED)
    contents = lambda ms: [m.content for m in ms]  # noqa: E731
    assert contents(await store.get_messages("k", limit=2, offset=1)) == ["m1", "m2"]
    assert contents(await store.get_messages("k", status=None)) == ["m0", "m1", "m2", "m3", "m4", "m5", "old"]
    assert (await store.get_messages("k"))[0].role.value == "user"
    assert contents(await store.delete_oldest_messages("k", 2)) == ["m0", "m1"]
    assert contents(await store.archive_oldest_messages("k", 1)) == ["m2"]
    assert contents(await store.get_messages("k", status=MessageStatus.ARCHIVED)) == ["m2", "old"]
    assert (await store.delete_message("k", 1)).content == "m3"  # position 1 of m2, m3, m4, m5, old
    assert await store.delete_message("k", 99) is None
    assert contents(await store.get_messages("k", status=None)) == ["m2", "m4", "m5", "old"]
    assert await store.count_messages("k", status=None) == 4
    await store.delete_messages("k", status=MessageStatus.ARCHIVED)
    assert contents(await store.get_messages("k", status=None)) == ["m4", "m5"]
    await store.set_messages("k", [ChatMessage(role="user", content="fresh")])
    assert contents(await store.get_messages("k", status=None)) == ["fresh"]
    await store.add_message("other", ChatMessage(role="user", content="hi"))
    assert sorted(await store.get_keys()) == ["k", "other"]
    await store.delete_messages("k")
    assert await store.get_keys() == ["other"] and await store.count_messages("k") == 0


async def test_set_messages_replaces_a_long_chat_in_one_revision(crew: Dict[str, Any]) -> None:
    """More old messages than one transaction may hold: readers never see the chat half replaced."""
    client, ctx = crew["planner"], crew["ctx"]
    store = CtxmeshChatStore(client, context=ctx, prefix="long")
    await store.add_messages("k", [ChatMessage(role="user", content=f"m{i}") for i in range(300)])
    await store.add_message("k", ChatMessage(role="assistant", content="old"), status=MessageStatus.ARCHIVED)
    before = (await client.get_context(ctx)).revision
    await store.set_messages("k", [ChatMessage(role="user", content=f"new{i}") for i in range(3)])
    assert (await client.get_context(ctx)).revision == before + 1
    assert [m.content for m in await store.get_messages("k", status=None)] == ["new0", "new1", "new2"]
    assert await store.count_messages("k", status=None) == 3
    assert await store.count_messages("k", status=MessageStatus.ARCHIVED) == 0
    await store.set_messages("k", [])
    assert await store.get_messages("k", status=None) == [] and await store.count_messages("k", status=None) == 0


def test_synchronous_memory_with_a_sync_client(server: CtxmeshServer) -> None:
    """``Memory.put`` / ``Memory.get`` run a loop per call: a ``ctxmesh.Client`` serves them."""
    ctx = unique("sync-chat")
    with server.client() as admin:
        admin.create_context(ctx)
        admin.put(ctx, "brief", {"goal": "ship on tuesday"}, kind="objective")
        store = CtxmeshChatStore(admin, context=ctx)
        agent = server.register_agent(unique("helper"), needs={"kinds": ["objective"]})
        admin.grant(ctx, [agent.id], ["read"])
        block = CtxmeshContextBlock(admin, context=ctx, agent=agent.id)
        mem = Memory.from_defaults(session_id="s", chat_store=store, memory_blocks=[block], tokenizer_fn=words)
        mem.put(ChatMessage(role="user", content="when do we ship?"))
        messages = mem.get()
        assert "ship on tuesday" in str(messages[0].content)
        assert [m.content for m in mem.get_all()] == ["when do we ship?"]
        mem.reset()
        assert mem.get_all() == []


async def test_access_control_applies(crew: Dict[str, Any], server: CtxmeshServer) -> None:
    outsider = server.register_agent(unique("outsider"))
    async with server.async_client(outsider.token, outsider.id) as client:
        with pytest.raises(ctxmesh.Forbidden):
            await CtxmeshChatStore(client, context=crew["ctx"]).get_messages("pricing")
        with pytest.raises(ctxmesh.Forbidden):
            await CtxmeshContextBlock(client, context=crew["ctx"]).aget()
