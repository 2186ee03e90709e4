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
- ``flavour``: ``"sync"`` or ``"async"``: every test that uses ``connect``,
  ``admin`` or ``agent`` runs once with each client, the
  :class:`ctxmesh.AsyncClient` behind the synchronous interface
  (``blocking.py``), unless it is marked ``sync_only``.
- ``connect``: makes clients of the test's flavour, as
  ``server.client(token=..., agent_id=...)`` makes sync ones.
- ``admin``: a client of the test's flavour with the admin token.
- ``ctx``: the id of a new context, unique to the test.
- ``agent``: a factory registering an agent and returning a client of the
  test's flavour that acts with that agent's token.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import ctxmesh
from blocking import BlockingClient, LoopThread
from ctxmesh_server import CtxmeshServer, unique

__all__ = ["CtxmeshServer", "unique"]

FLAVOURS = ["sync", "async"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sync_only: run only against the sync client")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "flavour" in metafunc.fixturenames:
        flavours = ["sync"] if metafunc.definition.get_closest_marker("sync_only") else FLAVOURS
        metafunc.parametrize("flavour", flavours, indirect=True)


@pytest.fixture(scope="session", autouse=True)
def credentials_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A per-user config directory of the session's own: the tests never read nor write the user's credentials."""
    home = tmp_path_factory.mktemp("config")
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(home)
    try:
        yield home
    finally:
        if before is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = before


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
def flavour(request: pytest.FixtureRequest) -> str:
    """The client the test runs against: ``"sync"`` or ``"async"``."""
    return str(request.param)


@pytest.fixture
def connect(server: CtxmeshServer, flavour: str) -> Iterator[Callable[..., ctxmesh.Client]]:
    """Makes clients of the test's flavour (the admin's unless ``token`` is given); all are closed after it."""
    if flavour == "sync":
        yield server.client
        return
    loop = LoopThread()
    made: List[BlockingClient] = []

    def make(token: Optional[str] = None, agent_id: Optional[str] = None, **kw: Any) -> ctxmesh.Client:
        c = BlockingClient(server.async_client(token, agent_id, **kw), loop)
        made.append(c)
        return c  # type: ignore[return-value]

    try:
        yield make
    finally:
        for c in made:
            c.close()
        loop.close()


@pytest.fixture
def admin(connect: Callable[..., ctxmesh.Client]) -> Iterator[ctxmesh.Client]:
    """A client of the test's flavour with the admin token."""
    with connect() as c:
        yield c


@pytest.fixture
def ctx(server: CtxmeshServer) -> str:
    """A new context, unique to the test."""
    with server.client() as c:
        return c.create_context(unique("ctx")).id


@pytest.fixture
def agent(server: CtxmeshServer, connect: Callable[..., ctxmesh.Client]) -> Iterator[Callable[..., ctxmesh.Client]]:
    """Registers agents: ``agent("writer", objective=...)`` returns a client of the test's flavour with its token."""
    made: List[ctxmesh.Client] = []

    def make(name: Optional[str] = None, **spec: Any) -> ctxmesh.Client:
        registered = server.register_agent(unique(name or "agent"), **spec)
        c = connect(token=registered.token, agent_id=registered.id)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
