"""An agent's lease is kept alive while its client is open; a lock that is lost says so.

The server disconnects an agent whose lease lapsed and releases its locks
(``lock.expired``, reason ``holder disconnected``). These tests register
agents with a short lease (2 s) and hold a lock
through a step three leases long without calling ``heartbeat``: the
client's keepalive holds it; with ``keepalive=False`` the lock is lost,
and the lock says so. A process killed while holding a lock loses it
within a lease and a sweep of the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Callable, List

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique

# A short lease (the server accepts 1 s and more; 2 s leaves a busy
# machine room for a late heartbeat), and how often the server sweeps
# lapsed leases (``serve --expiry-interval-ms``, 1000 by default).
LEASE_MS = 2000
SWEEP_MS = 1000
# A step of the agent's own (an LLM call, say) three leases long.
STEP = 3 * LEASE_MS / 1000
# Long enough for the server to notice a lapsed lease, however slow the
# machine: never a speed target, only the bound of a wait.
NOTICE = 10 * (LEASE_MS + SWEEP_MS) / 1000


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def expiry_reasons(admin: ctxmesh.Client, ctx: str) -> List[str]:
    return [e.data.get("reason") for e in admin.iter_events(ctx, types="lock.expired")]


def setting(server: CtxmeshServer) -> tuple[ctxmesh.RegisteredAgent, ctxmesh.RegisteredAgent, str]:
    """A holder with a short lease, a rival, and a context both may write."""
    holder = server.register_agent(unique("thinker"), lease_ms=LEASE_MS)
    rival = server.register_agent(unique("rival"))
    with server.client() as admin:
        ctx = admin.create_context(unique("ctx")).id
        admin.grant(ctx, [holder.id, rival.id], ["read", "write"])
    return holder, rival, ctx


@pytest.mark.parametrize("refresh", [False, True])
def test_a_lock_is_held_through_a_step_three_leases_long(server: CtxmeshServer, refresh: bool) -> None:
    holder, rival_agent, ctx = setting(server)
    # The agent's token alone: the client finds its agent by asking the server.
    with server.client(token=holder.token) as c, server.client(token=rival_agent.token) as rival:
        with c.lock(ctx, "plan", ttl_ms=60_000 if not refresh else 3000, refresh=refresh) as lock:
            time.sleep(STEP)  # no heartbeat of the caller's own
            assert rival.acquire_lock(ctx, "plan", ttl_ms=10_000).acquired is False, "still held"
            written = c.put(ctx, "plan", {"steps": 3}, fencing=lock)
            assert written.value == {"steps": 3}
        assert not lock.lost and not lock.lost_event.is_set()
        assert c.get_agent(holder.id).status == "active"
    with server.client() as admin:
        assert expiry_reasons(admin, ctx) == []


@pytest.mark.parametrize("refresh", [False, True])
def test_without_keepalive_the_lock_is_lost_and_says_so(server: CtxmeshServer, refresh: bool) -> None:
    holder, rival_agent, ctx = setting(server)
    with server.client(token=holder.token, keepalive=False) as c, server.client(token=rival_agent.token) as rival:
        with pytest.raises(ctxmesh.LockLostError) as left:
            with c.lock(ctx, "plan", ttl_ms=60_000 if not refresh else 3000, refresh=refresh) as lock:
                time.sleep(STEP)
                if refresh:
                    # The background refresh is refused once the server released the lock.
                    assert lock.lost_event.wait(NOTICE), "the refresh found the lock lost"
                    with pytest.raises(ctxmesh.LockLostError):
                        c.put(ctx, "plan", {"steps": 3}, fencing=lock)
                else:
                    wait_until(
                        lambda: rival.acquire_lock(ctx, "plan", ttl_ms=10_000).acquired,
                        NOTICE,
                        "the server released the lock of the disconnected holder",
                    )
                    with pytest.raises(ctxmesh.Fenced):
                        c.put(ctx, "plan", {"steps": 3}, fencing=lock)
                    assert lock.lost, "a fenced write marks the lock lost"
                    with pytest.raises(ctxmesh.LockLostError):
                        c.put(ctx, "plan", {"steps": 4}, fencing=lock)
        assert left.value.lock is lock and lock.lost and lock.lost_reason
        assert "plan" in str(left.value)
        assert c.get_agent(holder.id).status == "disconnected"
    with server.client() as admin:
        assert expiry_reasons(admin, ctx)[:1] == ["holder disconnected"]
        assert admin.get_or_none(ctx, "plan") is None, "no write of the lost holder landed"


def test_a_heartbeat_after_a_lapse_marks_the_locks_lost(server: CtxmeshServer) -> None:
    holder, _, ctx = setting(server)
    with server.client(token=holder.token, keepalive=False) as c:
        with pytest.raises(ctxmesh.LockLostError):
            with c.lock(ctx, "plan", ttl_ms=60_000) as lock:
                # The client's keepalive is off: start one by hand after the lapse.
                keepalive = ctxmesh._plans.Keepalive(c)
                c._keepalive = keepalive
                keepalive.hold(lock)
                c._drive(keepalive.round())
                with server.client() as admin:
                    wait_until(lambda: admin.get_agent(holder.id).status == "disconnected", NOTICE, "disconnected")
                c._drive(keepalive.round())
                assert lock.lost and "lease" in (lock.lost_reason or "")
                with pytest.raises(ctxmesh.LockLostError):
                    lock.refresh()


HOLDER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import ctxmesh

    client = ctxmesh.Client(os.environ["HOLDER_URL"], token=os.environ["HOLDER_TOKEN"])
    lock = client.lock(os.environ["HOLDER_CONTEXT"], "job", ttl_ms=600_000)
    lock.acquire()
    print("held", lock.fencing_token, flush=True)
    time.sleep(600)
    """
)


def test_a_killed_process_loses_its_lock_within_a_lease(server: CtxmeshServer) -> None:
    holder, rival_agent, ctx = setting(server)
    env = dict(os.environ, HOLDER_URL=server.url, HOLDER_TOKEN=holder.token, HOLDER_CONTEXT=ctx)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("held"), process.stderr.read() if process.stderr else line
        with server.client(token=rival_agent.token) as rival:
            time.sleep(STEP)  # the live process, busy with anything, keeps its lock
            assert rival.acquire_lock(ctx, "job", ttl_ms=10_000).acquired is False
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            killed = time.monotonic()
            wait_until(
                lambda: rival.acquire_lock(ctx, "job", ttl_ms=10_000).acquired,
                NOTICE,
                "the lock of the killed process was released",
            )
            took = time.monotonic() - killed
        with server.client() as admin:
            assert expiry_reasons(admin, ctx) == ["holder disconnected"], f"released after {took:.1f} s"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the async client ----------------------------------------------------------------


async def test_async_a_lock_is_held_through_a_step_three_leases_long(server: CtxmeshServer) -> None:
    holder, rival_agent, ctx = setting(server)
    async with ctxmesh.AsyncClient(server.url, token=holder.token) as c:
        async with ctxmesh.AsyncClient(server.url, token=rival_agent.token) as rival:
            async with c.lock(ctx, "plan", ttl_ms=60_000) as lock:
                await asyncio.sleep(STEP)
                assert (await rival.acquire_lock(ctx, "plan", ttl_ms=10_000)).acquired is False
                assert (await c.put(ctx, "plan", {"steps": 3}, fencing=lock)).value == {"steps": 3}
            assert not lock.lost and not lock.lost_event.is_set()
            assert (await c.get_agent(holder.id)).status == "active"


async def test_async_without_keepalive_the_lock_is_lost_and_says_so(server: CtxmeshServer) -> None:
    holder, rival_agent, ctx = setting(server)
    async with ctxmesh.AsyncClient(server.url, token=holder.token, keepalive=False) as c:
        async with ctxmesh.AsyncClient(server.url, token=rival_agent.token) as rival:
            with pytest.raises(ctxmesh.LockLostError):
                async with c.lock(ctx, "plan", ttl_ms=3000, refresh=True) as lock:
                    await asyncio.sleep(STEP)
                    await asyncio.wait_for(lock.lost_event.wait(), NOTICE)
                    with pytest.raises(ctxmesh.LockLostError):
                        await c.put(ctx, "plan", {"steps": 3}, fencing=lock)
            assert lock.lost
            assert (await rival.acquire_lock(ctx, "plan", ttl_ms=10_000)).acquired is True
