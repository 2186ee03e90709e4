"""The asynchronous client against the real server."""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique


async def test_async_roundtrip_and_preconditions(server: CtxmeshServer) -> None:
    async with server.async_client(agent_id="async-writer") as c:
        cid = (await c.create_context(unique("ctx"))).id
        first = await c.put(cid, "doc", {"v": 1}, kind="note")
        assert first.version == 1 and first.author == "async-writer"
        second = await c.put(cid, "doc", {"v": 2}, if_match=first, kind="note")
        with pytest.raises(ctxmesh.PreconditionFailed) as e:
            await c.put(cid, "doc", {"v": 3}, if_match=first.revision)
        assert e.value.current is not None and e.value.current.revision == second.revision
        patched = await c.merge_patch(cid, "doc", {"w": 1})
        assert patched.value == {"v": 2, "w": 1} and patched.kind == "note"
        assert (await c.get(cid, "doc", at=first.revision)).value == {"v": 1}
        for i in range(7):
            await c.put(cid, f"items/{i}", i)
        keys = [e.key async for e in c.iter_entries(cid, prefix="items/", page_size=3)]
        assert keys == [f"items/{i}" for i in range(7)]
        assert len(await c.list(cid, prefix="items/", page_size=2)) == 7
        deleted = await c.delete(cid, "doc")
        assert deleted.key == "doc"
        with pytest.raises(ctxmesh.NotFound):
            await c.get(cid, "doc")
        assert await c.get_or_none(cid, "doc") is None
        events = [e async for e in c.iter_events(cid, page_size=4)]
        assert [e.revision for e in events] == list(range(1, len(events) + 1))


async def test_async_update_converges(server: CtxmeshServer) -> None:
    workers, increments = 6, 8
    async with server.async_client() as admin:
        cid = (await admin.create_context(unique("ctx"))).id

        async def worker(i: int) -> None:
            c = admin.as_agent(f"async-worker-{i}")
            for _ in range(increments):
                await c.update(cid, "counter", lambda v: (v or 0) + 1, retries=200)

        await asyncio.gather(*(worker(i) for i in range(workers)))
        final = await admin.get(cid, "counter")
        assert final.value == workers * increments
        assert final.vclock == {f"async-worker-{i}": increments for i in range(workers)}


async def test_async_update_accepts_a_coroutine(server: CtxmeshServer) -> None:
    async with server.async_client() as c:
        cid = (await c.create_context(unique("ctx"))).id

        async def fetch_and_add(value: Any) -> Any:
            await asyncio.sleep(0)
            return (value or []) + ["x"]

        assert (await c.update(cid, "list", fetch_and_add)).value == ["x"]
        assert (await c.update(cid, "list", fetch_and_add)).value == ["x", "x"]


async def test_async_lock_and_fencing(server: CtxmeshServer) -> None:
    a_reg = server.register_agent(unique("a"))
    b_reg = server.register_agent(unique("b"))
    async with server.async_client(token=a_reg.token) as a, server.async_client(token=b_reg.token) as b:
        cid = (await a.create_context(unique("ctx"))).id
        await a.grant(cid, [b_reg.id], ["read", "write"])
        with pytest.raises(ctxmesh.LockLostError):  # on leaving the block of the lost lock
            async with a.lock(cid, "doc", ttl_ms=300) as old:
                await asyncio.sleep(0.5)
                async with b.lock(cid, "doc", ttl_ms=10_000, refresh=True) as new:
                    assert new.fencing_token > old.fencing_token
                    with pytest.raises(ctxmesh.Fenced):
                        await a.put(cid, "doc", "late", fencing=old)
                    assert old.lost, "the fenced write marked it lost"
                    with pytest.raises(ctxmesh.LockLostError):
                        await a.put(cid, "doc", "later", fencing=old)
                    await b.put(cid, "doc", "fresh", fencing=new)
        assert old.lost and old.lost_event.is_set() and not new.lost
        assert (await a.get(cid, "doc")).value == "fresh"
        async with a.lock(cid, "doc") as third:
            assert third.fencing_token > new.fencing_token
        with pytest.raises(ctxmesh.LockNotAcquired):
            async with a.lock(cid, "busy"):
                async with b.lock(cid, "busy", wait_ms=0):
                    pass


async def test_async_watch_resumes_across_restart(fresh_server: CtxmeshServer) -> None:
    async with fresh_server.async_client() as watcher:
        writer = fresh_server.client(agent_id="w")
        cid = writer.create_context(unique("ctx")).id
        start = writer.get_context(cid).revision
        got: List[ctxmesh.Event] = []

        async def consume() -> None:
            async with watcher.watch(cid, after=start) as events:
                async for event in events:
                    got.append(event)
                    if event.key == "done":
                        return

        task = asyncio.create_task(consume())
        for i in range(3):
            await asyncio.to_thread(writer.put, cid, f"a{i}", i)
        await asyncio.to_thread(
            writer.txn, cid, success=[{"op": "put", "key": f"m{i}", "value": i} for i in range(3)]
        )
        for _ in range(200):
            if len(got) >= 6:
                break
            await asyncio.sleep(0.02)
        assert len(got) == 6
        await asyncio.to_thread(fresh_server.restart)
        writer.close()
        writer = fresh_server.client(agent_id="w")
        for i in range(3):
            await asyncio.to_thread(writer.put, cid, f"b{i}", i)
        await asyncio.to_thread(writer.put, cid, "done", True)
        await asyncio.wait_for(task, 30)
        expected = [(e.revision, e.type, e.key) for e in writer.iter_events(cid, after=start)]
        assert [(e.revision, e.type, e.key) for e in got] == expected
        writer.close()


async def test_async_handoff_and_inbox_watch(server: CtxmeshServer) -> None:
    src = server.register_agent(unique("src"))
    dst = server.register_agent(unique("dst"))
    # dst holds only its token: its inbox is found by asking the server.
    async with server.async_client(token=src.token, agent_id=src.id) as s, server.async_client(
        token=dst.token
    ) as d:
        cid = (await s.create_context(unique("ctx"))).id
        inbox = d.watch_inbox(after=0)
        handoff = await s.request_handoff(dst.id, cid, user_intent="summarize", keys=["notes/*"])
        received = await inbox.__anext__()
        assert received.type == "handoff.requested"
        assert received.data["handoff"]["id"] == handoff.id
        assert (await d.accept_handoff(handoff.id)).state == "accepted"
        assert (await d.complete_handoff(handoff.id, {"summary": "done"})).state == "completed"
        rest = [await inbox.__anext__(), await inbox.__anext__()]
        await inbox.aclose()
        assert [e.type for e in rest] == ["handoff.accepted", "handoff.completed"]
        assert [e.seq for e in [received, *rest]] == [1, 2, 3]
        assert await d.whoami() == ctxmesh.Identity(agent=dst.id, admin=False)
        assert (await d.heartbeat()).id == dst.id
        assert [e.type async for e in s.iter_inbox()] == ["handoff.accepted", "handoff.completed"]
        with pytest.raises(StopAsyncIteration):
            await inbox.__anext__()


async def test_async_errors_and_mesh(server: CtxmeshServer) -> None:
    async with ctxmesh.AsyncClient(server.url) as anonymous:
        with pytest.raises(ctxmesh.Unauthenticated):
            await anonymous.list_contexts()
        assert (await anonymous.healthz())["status"] == "ok"
    async with server.async_client() as c:
        cid = (await c.create_context(unique("ctx"))).id
        with pytest.raises(ctxmesh.AlreadyExists):
            await c.create_context(cid)
        await c.put(cid, "findings/a", "the quick brown fox", kind="finding")
        hits = (await c.search(cid, "fox")).hits
        assert [h.key for h in hits] == ["findings/a"]
        txn = await c.txn(cid, compare=[{"key": "findings/a", "exists": True}], success=[{"op": "get", "key": "findings/a"}])
        assert txn.succeeded and txn.entries()[0].value == "the quick brown fox"


async def test_async_update_retries_on_412_with_the_newer_value(server: CtxmeshServer) -> None:
    async with server.async_client() as admin:
        cid = (await admin.create_context(unique("ctx"))).id
        await admin.put(cid, "doc", {"edits": []})
        other = admin.as_agent("someone-else")
        calls: List[Any] = []

        async def edit(value: Any) -> Any:
            calls.append(value)
            if len(calls) == 1:
                # Another writer slips in between the read and the write.
                await other.put(cid, "doc", {"edits": ["theirs"]})
            return {"edits": value["edits"] + ["ours"]}

        result = await admin.update(cid, "doc", edit)
        assert result.value == {"edits": ["theirs", "ours"]}
        assert calls == [{"edits": []}, {"edits": ["theirs"]}]


async def test_async_update_gives_up_after_retries(server: CtxmeshServer) -> None:
    async with server.async_client() as admin:
        cid = (await admin.create_context(unique("ctx"))).id
        await admin.put(cid, "hot", 0)
        other = admin.as_agent("rival")
        attempts: List[Any] = []

        async def always_beaten(value: Any) -> Any:
            attempts.append(value)
            await other.put(cid, "hot", len(attempts) * 100)
            return -1

        with pytest.raises(ctxmesh.UpdateConflict) as e:
            await admin.update(cid, "hot", always_beaten, retries=3)
        assert isinstance(e.value, ctxmesh.PreconditionFailed)
        assert len(attempts) == 4
        assert (await admin.get(cid, "hot")).value == 400


async def test_async_listings_stop_where_the_caller_stops(server: CtxmeshServer) -> None:
    async with server.async_client() as c:
        cid = (await c.create_context(unique("ctx"))).id
        for i in range(5):
            await c.put(cid, f"k{i}", i)
        entries = c.iter_entries(cid, page_size=2)
        assert [(await entries.__anext__()).key, (await entries.__anext__()).key] == ["k0", "k1"]
        await entries.aclose()
        with pytest.raises(StopAsyncIteration):
            await entries.__anext__()
        assert [e.key for e in await c.list(cid, page_size=2)] == [f"k{i}" for i in range(5)]
