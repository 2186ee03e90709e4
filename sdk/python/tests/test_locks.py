"""Locks as context managers, fencing tokens, and fenced writes."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

import ctxmesh


def test_lock_context_manager_tokens_increase(agent: Callable[..., ctxmesh.Client], admin: ctxmesh.Client) -> None:
    a = agent("planner")
    cid = a.create_context(ctxmesh_id()).id
    with a.lock(cid, "plan", ttl_ms=10_000) as first:
        assert first.lock is not None and first.lock.holder == a.agent_id
        assert first.fence == f"plan={first.fencing_token}"
        assert first.lock_id == f"plan:{first.fencing_token}"
        held = a.get_lock(cid, "plan")
        assert held.holder == a.agent_id and held.fencing_token == first.fencing_token
        written = a.put(cid, "plan", {"v": 1}, fencing=first)
        assert written.value == {"v": 1}
    assert a.get_lock(cid, "plan").holder is None, "released on exit"
    with a.lock(cid, "plan") as second:
        assert second.fencing_token > first.fencing_token
    types = [e.type for e in a.iter_events(cid, types="lock.acquired,lock.released")]
    assert types == ["lock.acquired", "lock.released", "lock.acquired", "lock.released"]


def test_stale_fencing_token_is_refused(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("slow")
    b = agent("fast")
    cid = a.create_context(ctxmesh_id()).id
    a.grant(cid, [b.agent_id], ["read", "write"])
    with pytest.raises(ctxmesh.LockLostError) as left:
        with a.lock(cid, "doc", ttl_ms=300) as old:
            time.sleep(0.5)  # a pause longer than the TTL: the lock lapses
            with b.lock(cid, "doc", ttl_ms=10_000) as new:
                assert new.fencing_token > old.fencing_token
                with pytest.raises(ctxmesh.Fenced) as e:
                    a.put(cid, "doc", "late write of the paused holder", fencing=old)
                assert e.value.status == 409
                assert e.value.token == old.fencing_token
                assert e.value.current_token == new.fencing_token
                b.put(cid, "doc", "the new holder's write", fencing=new)
                with pytest.raises(ctxmesh.Fenced):
                    a.txn(cid, success=[{"op": "delete", "key": "doc"}], fencing=(old.name, old.fencing_token))
    assert old.lost and left.value.lock.name == "doc", "leaving the block of a lost lock says so"
    assert a.get(cid, "doc").value == "the new holder's write"


def test_a_lock_lost_to_its_ttl_raises_on_release(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("sleeper")
    b = agent("taker")
    cid = a.create_context(ctxmesh_id()).id
    a.grant(cid, [b.agent_id], ["read", "write"])
    lock = a.lock(cid, "job", ttl_ms=300)
    lock.acquire()
    time.sleep(0.5)
    assert b.acquire_lock(cid, "job", ttl_ms=10_000).acquired
    with pytest.raises(ctxmesh.LockLostError):
        lock.refresh()
    assert lock.lost and lock.lost_reason and "refresh" in lock.lost_reason
    with pytest.raises(ctxmesh.LockLostError):
        lock.release()
    with pytest.raises(ctxmesh.LockLostError):
        a.put(cid, "job", 1, fencing=lock)


def test_an_exception_in_the_block_is_not_replaced(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("failing")
    cid = a.create_context(ctxmesh_id()).id
    with pytest.raises(KeyError):
        with a.lock(cid, "job", ttl_ms=300) as lock:
            time.sleep(0.5)
            a.acquire_lock(cid, "job", ttl_ms=1000)  # itself again: a new token, the old one is lost
            raise KeyError("the caller's own failure")
    assert lock.lost


def test_lock_busy_and_waiting(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("holder")
    b = agent("waiter")
    cid = a.create_context(ctxmesh_id()).id
    a.grant(cid, [b.agent_id], ["read", "write"])
    answer = a.acquire_lock(cid, "job", ttl_ms=10_000)
    assert answer.acquired is True
    busy = b.acquire_lock(cid, "job", ttl_ms=10_000)
    assert busy.acquired is False and busy.holder == a.agent_id
    with pytest.raises(ctxmesh.LockNotAcquired) as e:
        with b.lock(cid, "job", wait_ms=0):
            pass
    assert e.value.lock.holder == a.agent_id
    with pytest.raises(ctxmesh.NotHolder):
        b.release_lock(cid, "job")

    timer = threading.Timer(0.3, lambda: a.release_lock(cid, "job"))
    timer.start()
    started = time.monotonic()
    with b.lock(cid, "job", wait_ms=5_000) as got:
        assert got.lock is not None and got.lock.holder == b.agent_id
        assert got.fencing_token > answer.fencing_token
    assert time.monotonic() - started < 4, "the server wakes the waiter on release"
    timer.join()


def test_background_refresh_keeps_the_lock(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("keeper")
    b = agent("taker")
    cid = a.create_context(ctxmesh_id()).id
    a.grant(cid, [b.agent_id], ["read", "write"])
    with a.lock(cid, "lease", ttl_ms=400, refresh=True) as held:
        time.sleep(1.2)
        assert b.acquire_lock(cid, "lease", ttl_ms=1000).acquired is False
        assert a.put(cid, "x", 1, fencing=held).value == 1
    assert not held.lost
    refreshed = a.acquire_lock(cid, "lease", ttl_ms=1000)
    assert refreshed.acquired and refreshed.fencing_token > held.fencing_token


def test_refresh_extends_and_keeps_token(agent: Callable[..., ctxmesh.Client]) -> None:
    a = agent("refresher")
    cid = a.create_context(ctxmesh_id()).id
    lock = a.acquire_lock(cid, "jobs/r", ttl_ms=1000)
    assert lock.name == "jobs/r" and lock.lock_id == f"jobs/r:{lock.fencing_token}"
    later = a.refresh_lock(cid, "jobs/r", ttl_ms=60_000)
    assert later.fencing_token == lock.fencing_token
    assert later.expires_at is not None and lock.expires_at is not None and later.expires_at > lock.expires_at
    assert [lk.name for lk in a.list_locks(cid)] == ["jobs/r"]
    assert a.put(cid, "guarded", 1, fencing=later).value == 1
    released = a.release_lock(cid, "jobs/r")
    assert released.holder is None


def ctxmesh_id() -> str:
    from ctxmesh_server import unique

    return unique("ctx")
