"""A ctxmesh server process for the tests, and small helpers.

See ``conftest.py`` for the fixtures built on it.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import pytest

import ctxmesh

REPO = Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"listening on (https?://\S+)")


def server_binary() -> Path:
    """The ctxmesh binary the tests run (``$CTXMESH_BIN``)."""
    return Path(os.environ.get("CTXMESH_BIN") or REPO / "target" / "debug" / "ctxmesh")


class CtxmeshServer:
    """A ctxmesh server process on a data directory of its own.

    ``restart()`` stops the process and starts it again on the same data
    directory and, when it can be bound again, the same port (``url`` is
    updated otherwise).
    """

    def __init__(self, data_dir: Path, *, extra_args: Optional[List[str]] = None, env: Optional[dict] = None) -> None:
        self.binary = server_binary()
        self.data_dir = Path(data_dir)
        self.admin_token = "cmt_" + secrets.token_hex(32)
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(env or {})
        self.process: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self.port: Optional[int] = None
        self.log: List[str] = []
        self._log_lock = threading.Lock()

    # --- process -------------------------------------------------------------

    def start(self) -> "CtxmeshServer":
        """Starts the server (on the previous port when there was one)."""
        if not self.binary.is_file():
            pytest.fail(
                f"the ctxmesh server binary {self.binary} does not exist: build it with "
                f"`cargo build -p ctxmesh` in {REPO}, or point CTXMESH_BIN at one",
                pytrace=False,
            )
        if self.port is not None:
            try:
                self._spawn(f"127.0.0.1:{self.port}")
                return self
            except RuntimeError:
                pass  # the port is taken now: take any
        self._spawn("127.0.0.1:0")
        return self

    def _spawn(self, listen: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTXMESH_")}
        env.update({"CTXMESH_ADMIN_TOKEN": self.admin_token, "CTXMESH_LOG": "info"})
        env.update(self.extra_env)
        args = [str(self.binary), "serve", "--listen", listen, "--data-dir", str(self.data_dir), *self.extra_args]
        process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        found: List[str] = []
        announced = threading.Event()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                with self._log_lock:
                    self.log.append(line.rstrip("\n"))
                if not found:
                    match = LISTENING.search(line)
                    if match:
                        found.append(match.group(1))
                        announced.set()
            announced.set()

        threading.Thread(target=pump, daemon=True).start()
        if not announced.wait(60) or not found:
            process.kill()
            process.wait()
            tail = "\n".join(self.log[-20:])
            raise RuntimeError(f"ctxmesh did not start on {listen}:\n{tail}")
        self.process = process
        self.url = found[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        # Over https, the server's certificate is checked against the CA it was given.
        with ctxmesh.Client(self.url, timeout=2, ca_file=self.extra_env.get("CTXMESH_CA_FILE")) as c:
            while True:
                try:
                    c.readyz()
                    return
                except ctxmesh.CtxmeshError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def stop(self, timeout: float = 20) -> None:
        """Stops the server gracefully (SIGTERM), killing it if it takes too long."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, *, kill: bool = False) -> "CtxmeshServer":
        """Stops (or kills) the server and starts it again on the same data directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- clients -------------------------------------------------------------

    def client(self, token: Optional[str] = None, agent_id: Optional[str] = None, **kw: Any) -> ctxmesh.Client:
        """A sync client (the admin's unless ``token`` is given)."""
        return ctxmesh.Client(self.url, token=token or self.admin_token, agent_id=agent_id, **kw)

    def async_client(
        self, token: Optional[str] = None, agent_id: Optional[str] = None, **kw: Any
    ) -> ctxmesh.AsyncClient:
        """An async client (the admin's unless ``token`` is given)."""
        return ctxmesh.AsyncClient(self.url, token=token or self.admin_token, agent_id=agent_id, **kw)

    def register_agent(self, agent_id: Optional[str] = None, **spec: Any) -> ctxmesh.RegisteredAgent:
        """Registers an agent (a unique id unless given) and returns it with its token."""
        with self.client() as admin:
            return admin.register_agent(agent_id or unique("agent"), **spec)

    def agent_client(self, agent_id: Optional[str] = None, **spec: Any) -> ctxmesh.Client:
        """Registers an agent and returns a sync client acting with its token."""
        registered = self.register_agent(agent_id, **spec)
        return self.client(token=registered.token, agent_id=registered.id)


def unique(prefix: str) -> str:
    """A fresh id such as ``ctx-3f2a9c1b``."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def agents_sharing(
    server: CtxmeshServer, name: str, roles: Mapping[str, Tuple[Sequence[str], str]]
) -> AsyncIterator[Tuple[str, Dict[str, str], Dict[str, Union[ctxmesh.Client, ctxmesh.AsyncClient]]]]:
    """A new context (``unique(name)``) and one registered agent per role.

    ``roles`` maps a role to the permissions its agent is granted on the
    context (none: an outsider) and its client's kind, ``"sync"`` or
    ``"async"``. Yields the context's id, each role's agent id, and each
    role's client acting with its agent's own token; closes the clients.
    """
    ctx = unique(name)
    agents = {role: server.register_agent(unique(role)) for role in roles}
    with server.client() as admin:
        admin.create_context(ctx)
        for role, (permissions, _) in roles.items():
            if permissions:
                admin.grant(ctx, [agents[role].id], list(permissions))
    clients: Dict[str, Union[ctxmesh.Client, ctxmesh.AsyncClient]] = {
        role: (server.async_client if kind == "async" else server.client)(agents[role].token, agents[role].id)
        for role, (_, kind) in roles.items()
    }
    try:
        yield ctx, {role: a.id for role, a in agents.items()}, clients
    finally:
        for client in clients.values():
            if isinstance(client, ctxmesh.AsyncClient):
                await client.aclose()
            else:
                client.close()
