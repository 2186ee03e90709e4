"""A ``put`` after a ``get`` carries the revision read: naive read-modify-write loses nothing.

The client remembers, per thread (sync) or per asyncio task (async), the
revision at which it last saw each entry; a write without a precondition
of its own sends it as ``If-Match``, so a write based on a stale read is
refused instead of overwriting the write it did not see. ``force=True``
writes blind.
"""

from __future__ import annotations

import asyncio
import threading
from typing import List

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer

WORKERS = 2
INCREMENTS = 20


def naive_increments(c: ctxmesh.Client, ctx: str, key: str, done: List[int], errors: List[BaseException]) -> None:
    """The code people write: read, add one, write; a refusal means read again."""
    try:
        succeeded = 0
        while succeeded < INCREMENTS:
            entry = c.get(ctx, key)
            try:
                c.put(ctx, key, entry.value + 1)
            except ctxmesh.PreconditionFailed:
                continue
            succeeded += 1
        done.append(succeeded)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_two_threads_incrementing_naively_lose_no_update(server: CtxmeshServer, ctx: str) -> None:
    with server.client() as c:
        c.put(ctx, "counter", 0)
        done: List[int] = []
        errors: List[BaseException] = []
        threads = [
            threading.Thread(target=naive_increments, args=(c, ctx, "counter", done, errors)) for _ in range(WORKERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert sum(done) == WORKERS * INCREMENTS
        assert c.get(ctx, "counter").value == WORKERS * INCREMENTS, "every successful put counted"


def test_force_writes_blind(server: CtxmeshServer, ctx: str) -> None:
    with server.client() as c:
        c.put(ctx, "counter", 0)

        def blind() -> None:
            for _ in range(INCREMENTS):
                entry = c.get(ctx, "counter")
                c.put(ctx, "counter", entry.value + 1, force=True)

        threads = [threading.Thread(target=blind) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # Never refused; concurrent increments may overwrite each other.
        assert 1 <= c.get(ctx, "counter").value <= WORKERS * INCREMENTS


def test_a_write_after_another_clients_write_is_refused(server: CtxmeshServer, ctx: str) -> None:
    # ``theirs`` writes blind (force=True): another agent's writes, whatever it read.
    with server.client() as mine, server.client() as theirs:
        first = mine.put(ctx, "plan", {"steps": 1})
        seen = mine.get(ctx, "plan")
        assert seen.revision == first.revision
        theirs.put(ctx, "plan", {"steps": 2, "by": "them"}, force=True)

        with pytest.raises(ctxmesh.PreconditionFailed) as refused:
            mine.put(ctx, "plan", {**seen.value, "steps": 3})
        assert refused.value.current is not None and refused.value.current.value["by"] == "them"
        assert "update()" in str(refused.value) and "force=True" in str(refused.value)
        with pytest.raises(ctxmesh.PreconditionFailed):
            mine.put(ctx, "plan", {"steps": 3})  # again without reading: refused again
        for write in (
            lambda: mine.merge_patch(ctx, "plan", {"steps": 3}),
            lambda: mine.json_patch(ctx, "plan", [{"op": "replace", "path": "/steps", "value": 3}]),
            lambda: mine.delete(ctx, "plan"),
        ):
            with pytest.raises(ctxmesh.PreconditionFailed):
                write()
        assert mine.get(ctx, "plan").value == {"steps": 2, "by": "them"}

        # Read again: the write goes through, and is remembered as read.
        latest = mine.get(ctx, "plan")
        written = mine.put(ctx, "plan", {**latest.value, "steps": 3})
        patched = mine.merge_patch(ctx, "plan", {"steps": 4})
        assert patched.revision > written.revision and patched.value["steps"] == 4

        # An explicit precondition wins over the remembered one; force writes blind.
        theirs.put(ctx, "plan", {"steps": 5}, force=True)
        with pytest.raises(ctxmesh.PreconditionFailed):
            mine.put(ctx, "plan", {"steps": 6}, if_match=patched.revision)
        current = theirs.get(ctx, "plan").revision
        assert mine.put(ctx, "plan", {"steps": 6}, if_match=current).value == {"steps": 6}
        theirs.put(ctx, "plan", {"steps": 7}, force=True)
        assert mine.put(ctx, "plan", {"steps": 8}, force=True).value == {"steps": 8}

        # update() reads and retries by itself.
        theirs.put(ctx, "plan", {"steps": 9}, force=True)
        assert mine.update(ctx, "plan", lambda p: {**p, "steps": p["steps"] + 1}).value == {"steps": 10}


def test_an_entry_read_as_missing_is_created_only_if_still_missing(server: CtxmeshServer, ctx: str) -> None:
    with server.client() as mine, server.client() as theirs:
        assert mine.get_or_none(ctx, "claim") is None
        theirs.put(ctx, "claim", "theirs", force=True)
        with pytest.raises(ctxmesh.PreconditionFailed):
            mine.put(ctx, "claim", "mine")
        assert mine.get(ctx, "claim").value == "theirs"


def test_a_key_never_read_is_written_blind_and_reads_are_per_thread(server: CtxmeshServer, ctx: str) -> None:
    with server.client() as mine, server.client() as theirs:
        theirs.put(ctx, "notes", "v1", force=True)
        assert mine.put(ctx, "notes", "v2").value == "v2", "never read by this client: written as today"
        mine.get(ctx, "notes")
        theirs.put(ctx, "notes", "v3", force=True)
        other_thread: List[object] = []
        t = threading.Thread(target=lambda: other_thread.append(mine.put(ctx, "notes", "v4")))
        t.start()
        t.join(30)
        assert isinstance(other_thread[0], ctxmesh.Entry), "another thread did not read it"
        with pytest.raises(ctxmesh.PreconditionFailed):
            mine.put(ctx, "notes", "v5")  # this thread read v2's revision
        # A read of the past is not a read of the entry as it is.
        old = mine.get(ctx, "notes", at=theirs.get(ctx, "notes").revision - 1)
        assert old.value != "v4"
        assert mine.get(ctx, "notes").value == "v4"
        assert mine.put(ctx, "notes", "v5").value == "v5"


def test_the_memory_is_bounded() -> None:
    reads = ctxmesh._plans.ThreadReads()
    for i in range(ctxmesh._plans.ReadMemory.LIMIT + 5):
        reads.saw("c", f"k{i}", i)
    assert reads.seen("c", "k0") is None and reads.seen("c", "k4") is None
    assert reads.seen("c", "k5") == 5 and reads.seen("c", f"k{ctxmesh._plans.ReadMemory.LIMIT + 4}") is not None
    tasks = ctxmesh._plans.TaskReads()
    tasks.saw("c", "a", 1)
    tasks.saw("c", "b", None)
    assert (tasks.seen("c", "a"), tasks.seen("c", "b")) == (1, ctxmesh._plans.ABSENT)


# --- the async client ----------------------------------------------------------------


async def test_async_two_tasks_incrementing_naively_lose_no_update(server: CtxmeshServer, ctx: str) -> None:
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token) as c:
        await c.put(ctx, "counter", 0)

        async def naive() -> int:
            succeeded = 0
            while succeeded < INCREMENTS:
                entry = await c.get(ctx, "counter")
                try:
                    await c.put(ctx, "counter", entry.value + 1)
                except ctxmesh.PreconditionFailed:
                    continue
                succeeded += 1
            return succeeded

        counts = await asyncio.gather(*(naive() for _ in range(WORKERS)))
        assert sum(counts) == WORKERS * INCREMENTS
        assert (await c.get(ctx, "counter")).value == WORKERS * INCREMENTS


async def test_async_reads_are_per_task(server: CtxmeshServer, ctx: str) -> None:
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token) as mine:
        async with ctxmesh.AsyncClient(server.url, token=server.admin_token) as theirs:
            await theirs.put(ctx, "doc", 1, force=True)
            read = asyncio.Event()
            written = asyncio.Event()

            async def reader() -> None:
                seen = await mine.get(ctx, "doc")
                read.set()
                await written.wait()
                with pytest.raises(ctxmesh.PreconditionFailed):
                    await mine.put(ctx, "doc", seen.value + 1)
                assert (await mine.put(ctx, "doc", 4, force=True)).value == 4

            async def writer() -> None:
                await read.wait()
                await theirs.put(ctx, "doc", 2, force=True)
                # This task never read the entry: its write is blind, as before.
                assert (await mine.put(ctx, "doc", 3)).value == 3
                written.set()

            await asyncio.gather(reader(), writer())
            assert (await mine.get(ctx, "doc")).value == 4
