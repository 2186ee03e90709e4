"""Fixtures that run the tests against a real ctxmesh server.

The server binary comes from ``$CTXMESH_BIN`` (default:
``<repo>/target/debug/ctxmesh``; build it with ``cargo build -p ctxmesh``).
It is started with ``serve --listen 127.0.0.1:0 --data-dir <tmp>`` and a
random ``CTXMESH_ADMIN_TOKEN``; its address is read from its log line
``ctxmesh listening on http://ADDR`` (standard error).

Fixtures:

- ``server`` (session): a :class:`CtxmeshServer` with ``url``,
  ``admin_token``, ``data_dir``, ``restart()``, ``kill()``, ``start()``,
  ``client()`` / ``async_client()`` and ``register_agent()``.
- ``fresh_server`` (function): a server of its own, on its own data
  directory, for tests that restart or reconfigure it.
- ``admin``: a sync :class:`ctxmesh.Client` with the admin token.
- ``ctx``: the id of a new context, unique to the test.
- ``agent``: a factory registering an agent and returning a client that
  acts with that agent's token.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique

__all__ = ["CtxmeshServer", "unique"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtxmeshServer]:
    """One ctxmesh server for the session."""
    instance = CtxmeshServer(tmp_path_factory.mktemp("ctxmesh-data")).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[CtxmeshServer]:
    """A ctxmesh server of the test's own, on its own data directory."""
    instance = CtxmeshServer(tmp_path / "data").start()
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., CtxmeshServer]]:
    """Starts servers with extra ``serve`` arguments; all are stopped after the test."""
    started: List[CtxmeshServer] = []

    def make(*extra_args: str, env: Optional[dict] = None) -> CtxmeshServer:
        instance = CtxmeshServer(tmp_path / f"data-{len(started)}", extra_args=list(extra_args), env=env)
        started.append(instance)
        return instance.start()

    yield make
    for instance in started:
        instance.stop()


@pytest.fixture
def admin(server: CtxmeshServer) -> Iterator[ctxmesh.Client]:
    """A sync client with the admin token."""
    with server.client() as c:
        yield c


@pytest.fixture
def ctx(admin: ctxmesh.Client) -> str:
    """A new context, unique to the test."""
    return admin.create_context(unique("ctx")).id


@pytest.fixture
def agent(server: CtxmeshServer) -> Iterator[Callable[..., ctxmesh.Client]]:
    """Registers agents: ``agent("writer", objective=...)`` returns a client with its token."""
    made: List[ctxmesh.Client] = []

    def make(name: Optional[str] = None, **spec: Any) -> ctxmesh.Client:
        c = server.agent_client(unique(name or "agent"), **spec)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
