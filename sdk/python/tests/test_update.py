"""update(): read-modify-write that never loses a concurrent write."""

from __future__ import annotations

import threading
from typing import Any, List

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer


def test_update_creates_then_modifies_and_keeps_metadata(admin: ctxmesh.Client, ctx: str) -> None:
    seen: List[Any] = []

    def bump(value: Any) -> Any:
        seen.append(value)
        return {"n": (value or {"n": 0})["n"] + 1}

    created = admin.update(ctx, "counter", bump, kind="note", tags=["stats"])
    assert created.value == {"n": 1} and created.version == 1
    assert seen == [None], "a missing entry gives fn None"
    updated = admin.update(ctx, "counter", bump)
    assert updated.value == {"n": 2}
    assert updated.kind == "note" and updated.tags == ["stats"], "metadata is carried over"
    retagged = admin.update(ctx, "counter", bump, tags=["other"])
    assert retagged.tags == ["other"] and retagged.kind == "note"


def test_update_does_not_mutate_what_it_read(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "list", [1])
    captured: List[Any] = []

    def append(value: Any) -> Any:
        captured.append(value)
        value.append(2)
        return value

    assert admin.update(ctx, "list", append).value == [1, 2]


@pytest.mark.sync_only  # fn writes through a second client, blocking; test_async.py has the async form
def test_update_retries_on_412_with_the_newer_value(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "doc", {"edits": []})
    other = admin.as_agent("someone-else")
    calls: List[Any] = []

    def edit(value: Any) -> Any:
        calls.append(value)
        if len(calls) == 1:
            # Another writer slips in between the read and the write.
            other.put(ctx, "doc", {"edits": ["theirs"]})
        return {"edits": value["edits"] + ["ours"]}

    result = admin.update(ctx, "doc", edit)
    assert result.value == {"edits": ["theirs", "ours"]}
    assert calls == [{"edits": []}, {"edits": ["theirs"]}]


@pytest.mark.sync_only  # fn writes through a second client, blocking; test_async.py has the async form
def test_update_gives_up_after_retries(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "hot", 0)
    other = admin.as_agent("rival")
    attempts = []

    def always_beaten(value: Any) -> Any:
        attempts.append(value)
        other.put(ctx, "hot", len(attempts) * 100)
        return -1

    with pytest.raises(ctxmesh.UpdateConflict) as e:
        admin.update(ctx, "hot", always_beaten, retries=3)
    assert isinstance(e.value, ctxmesh.PreconditionFailed)
    assert len(attempts) == 4
    assert admin.get(ctx, "hot").value == 400


def test_update_converges_under_concurrency(server: CtxmeshServer, ctx: str) -> None:
    threads_n, increments = 8, 10
    errors: List[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def worker(i: int) -> None:
        with server.client(agent_id=f"worker-{i}") as c:
            barrier.wait()
            try:
                for _ in range(increments):
                    c.update(ctx, "counter", lambda v: (v or 0) + 1, retries=200)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with server.client() as c:
        final = c.get(ctx, "counter")
        assert final.value == threads_n * increments, "no increment was lost"
        assert final.version == threads_n * increments
        assert sum(final.vclock.values()) == threads_n * increments
