"""The traffic: clients that read and write contexts, and watchers that
follow them over SSE and the WebSocket, disconnecting and resuming.

Every request is recorded as an `Op` with its outcome normalised for the
checkers. A 5xx other than `507 storage_full`, a broken connection or a
timeout leaves the outcome unknown.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect

from .checks import resume_position
from .history import Op, WatchConnection

REGULAR_KEYS = [f"k/{i}" for i in range(4)]
TTL_KEYS = [f"ttl/{i}" for i in range(2)]
LOCK = "L"
TIMEOUT = httpx.Timeout(5.0, connect=1.0)


def _time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _shown(entry: dict[str, Any] | None) -> list[Any] | None:
    if not entry:
        return None
    return [entry["value"]["w"], entry["revision"]]


class NotSent(Exception):
    """The request never reached a server (connection refused)."""


class Unexpected(Exception):
    """An answer no correct server gives to this request."""


@dataclass
class Stats:
    ops: int = 0
    unknown: int = 0
    not_sent: int = 0
    # Answers other than 507 storage_full with a 5xx while the disk was full.
    errors_while_full: Counter[str] = field(default_factory=Counter)
    storage_full: int = 0
    reads_ok_while_full: int = 0
    unexpected: list[str] = field(default_factory=list)


class Cluster:
    """Where the clients send requests: one node, or several over one
    database (each request to a node chosen at random)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.disk_full = False

    def pick(self, rng: random.Random) -> tuple[int, str]:
        i = rng.randrange(len(self.urls))
        return i, self.urls[i]


class Client:
    """One client: a loop of random operations on the current contexts."""

    def __init__(self, index: int, cluster: Cluster, contexts: "Contexts", rng: random.Random, record: list[Op], stats: Stats) -> None:
        self.index = index
        self.agent = f"c{index}"
        self.cluster = cluster
        self.contexts = contexts
        self.rng = rng
        self.record = record
        self.stats = stats
        self.http = httpx.AsyncClient(timeout=TIMEOUT, headers={"X-Agent-Id": self.agent})
        # What this client last saw of each entry: (ctx, key) -> (vid, rev).
        self.known: dict[tuple[str, str], tuple[str, int] | None] = {}
        self.seen_rev: dict[str, int] = {}
        self.tokens: dict[str, list[int]] = {}
        self.counter = 0

    def vid(self) -> str:
        self.counter += 1
        return f"c{self.index}-{self.counter}"

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, op: Op, method: str, path: str, **kw: Any) -> tuple[int, Any] | None:
        """Sends one request; None when the outcome is unknown."""
        node, base = self.cluster.pick(self.rng)
        op.node = node
        try:
            response = await self.http.request(method, base + path, **kw)
        except httpx.ConnectError:
            # Never sent: the node is down. Not an operation at all.
            raise NotSent()
        except (httpx.HTTPError, OSError):
            return None
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 500 and response.status_code != 507:
            if self.cluster.disk_full:
                code = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
                self.stats.errors_while_full[f"{response.status_code} {code}"] += 1
            return None
        if response.status_code == 507:
            code = (body or {}).get("error", {}).get("code")
            if code != "storage_full":
                raise Unexpected(f"507 with code {code!r}")
            self.stats.storage_full += 1
        return response.status_code, body

    async def run_op(self, op: Op, coro: Any) -> None:
        try:
            out = await coro
        except NotSent:
            self.stats.not_sent += 1
            await asyncio.sleep(0.05)
            return
        except Unexpected as e:
            self.stats.unexpected.append(f"{op}: {e}")
            out = None
        self.record.append(op)
        self.stats.ops += 1
        now, wall = time.monotonic(), time.time()
        if out is None:
            self.stats.unknown += 1
        op.done(out, now, wall)

    def new_op(self, ctx: str, kind: str, **inp: Any) -> Op:
        return Op(self.index, ctx, kind, inp, time.monotonic(), time.time())

    # Operations.

    def _entry_path(self, ctx: str, key: str) -> str:
        return f"/v1/contexts/{ctx}/entries/{key}"

    def _write_out(self, ctx: str, key: str, answer: tuple[int, Any] | None) -> dict[str, Any] | None:
        if answer is None:
            return None
        status, body = answer
        if status in (200, 201):
            entry = body
            self.known[(ctx, key)] = (entry["value"]["w"], entry["revision"]) if "value" in entry else None
            self._saw(ctx, entry["revision"])
            return {"status": "ok", "rev": entry["revision"], "created": status == 201, "exp": _time(entry.get("expires_at"))}
        return self._refusal(ctx, key, status, body)

    def _refusal(self, ctx: str, key: str, status: int, body: Any) -> dict[str, Any]:
        error = (body or {}).get("error", {})
        code = error.get("code")
        if status == 507:
            return {"status": "full"}
        if status == 412 and code == "precondition_failed":
            current = error.get("details", {}).get("current")
            self.known[(ctx, key)] = tuple(_shown(current)) if current else None  # type: ignore[assignment]
            return {"status": "precondition", "current": _shown(current)}
        if status == 404 and code == "not_found":
            self.known[(ctx, key)] = None
            return {"status": "missing"}
        if status == 400 and code == "invalid_patch":
            return {"status": "test_failed"}
        if status == 409 and code == "fenced":
            return {"status": "fenced", "current_token": error.get("details", {}).get("current_token")}
        raise Unexpected(f"answer {status} {code}: {error.get('message')}")

    def _saw(self, ctx: str, rev: int) -> None:
        self.seen_rev[ctx] = max(self.seen_rev.get(ctx, 0), rev)

    async def get(self, ctx: str, key: str, at: int | None = None) -> None:
        kind = "get" if at is None else "get_at"
        op = self.new_op(ctx, kind, key=key, **({"at": at} if at is not None else {}))

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "GET", self._entry_path(ctx, key), params={"at": at} if at is not None else None)
            if answer is None:
                return None
            status, body = answer
            if status == 200:
                if at is None:
                    self.known[(ctx, key)] = (body["value"]["w"], body["revision"])
                    if self.cluster.disk_full:
                        self.stats.reads_ok_while_full += 1
                return {"found": True, "vid": body["value"]["w"], "rev": body["revision"]}
            if status == 404:
                if at is None:
                    self.known[(ctx, key)] = None
                return {"found": False}
            raise Unexpected(f"GET answered {status}: {body}")

        await self.run_op(op, go())

    async def list(self, ctx: str) -> None:
        op = self.new_op(ctx, "list")

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "GET", f"/v1/contexts/{ctx}/entries", params={"limit": 1000})
            if answer is None:
                return None
            status, body = answer
            if status != 200:
                raise Unexpected(f"list answered {status}: {body}")
            if body.get("next_cursor"):
                raise Unexpected("list of a few keys came in pages")
            self._saw(ctx, body["revision"])
            if self.cluster.disk_full:
                self.stats.reads_ok_while_full += 1
            return {"revision": body["revision"], "entries": {e["key"]: _shown(e) for e in body["entries"]}}

        await self.run_op(op, go())

    async def put(self, ctx: str, key: str, cond: Any, ttl_ms: int | None = None) -> None:
        vid = self.vid()
        inp: dict[str, Any] = {"key": key, "vid": vid, "if": cond}
        body: dict[str, Any] = {"value": {"w": vid}}
        if ttl_ms:
            inp["ttl_ms"] = ttl_ms
            body["ttl_ms"] = ttl_ms
        headers = {}
        if cond == "absent":
            headers["If-None-Match"] = "*"
        elif cond is not None:
            headers["If-Match"] = f'"{cond}"'
        op = self.new_op(ctx, "put", **inp)

        async def go() -> dict[str, Any] | None:
            return self._write_out(ctx, key, await self.send(op, "PUT", self._entry_path(ctx, key), json=body, headers=headers))

        await self.run_op(op, go())

    async def patch_merge(self, ctx: str, key: str, rev: int) -> None:
        vid = self.vid()
        op = self.new_op(ctx, "patch_merge", key=key, vid=vid, **{"if": rev})
        headers = {"If-Match": f'"{rev}"', "Content-Type": "application/merge-patch+json"}

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "PATCH", self._entry_path(ctx, key), content=json.dumps({"w": vid}), headers=headers)
            return self._write_out(ctx, key, answer)

        await self.run_op(op, go())

    async def patch_json(self, ctx: str, key: str, test: str) -> None:
        vid = self.vid()
        op = self.new_op(ctx, "patch_json", key=key, vid=vid, test=test)
        patch = [{"op": "test", "path": "/w", "value": test}, {"op": "replace", "path": "/w", "value": vid}]
        headers = {"Content-Type": "application/json-patch+json"}

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "PATCH", self._entry_path(ctx, key), content=json.dumps(patch), headers=headers)
            return self._write_out(ctx, key, answer)

        await self.run_op(op, go())

    async def delete(self, ctx: str, key: str, rev: int) -> None:
        op = self.new_op(ctx, "delete", key=key, **{"if": rev})

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "DELETE", self._entry_path(ctx, key), headers={"If-Match": f'"{rev}"'})
            if answer is None:
                return None
            status, body = answer
            if status == 200:
                self.known[(ctx, key)] = None
                self._saw(ctx, body["revision"])
                return {"status": "ok", "rev": body["revision"]}
            return self._refusal(ctx, key, status, body)

        await self.run_op(op, go())

    async def txn(self, ctx: str, keys: list[str]) -> None:
        compare = []
        for key in keys:
            known = self.known.get((ctx, key))
            rev = known[1] if known else 0
            if self.rng.random() < 0.15:
                rev += self.rng.choice([-1, 1]) if rev > 1 else 1
            compare.append((key, rev))
        puts = [(key, self.vid()) for key in keys]
        op = self.new_op(ctx, "txn", compare=compare, puts=puts)
        body = {
            "compare": [{"key": k, "revision": r} for k, r in compare],
            "success": [{"op": "put", "key": k, "value": {"w": v}} for k, v in puts],
            "failure": [{"op": "get", "key": k} for k in keys],
        }

        async def go() -> dict[str, Any] | None:
            answer = await self.send(op, "POST", f"/v1/contexts/{ctx}/txn", json=body)
            if answer is None:
                return None
            status, result = answer
            if status == 507:
                return {"status": "full", "succeeded": False}
            if status != 200:
                raise Unexpected(f"txn answered {status}: {result}")
            self._saw(ctx, result["revision"])
            if result["succeeded"]:
                for k, v in puts:
                    self.known[(ctx, k)] = (v, result["revision"])
                return {"succeeded": True, "rev": result["revision"]}
            gets = {}
            for k, r in zip(keys, result["results"]):
                entries = r.get("entries") or []
                gets[k] = _shown(entries[0]) if entries else None
                self.known[(ctx, k)] = tuple(gets[k]) if gets[k] else None  # type: ignore[assignment]
            return {"succeeded": False, "rev": result["revision"], "gets": gets}

        await self.run_op(op, go())

    async def lock_and_write(self, ctx: str, key: str) -> None:
        """Takes the context's lock and writes under its fencing token; now
        and then writes with an older token of this client's, which a newer
        acquisition has fenced off."""
        op = self.new_op(ctx, "lock", name=LOCK)
        token: list[int] = []

        async def acquire() -> dict[str, Any] | None:
            answer = await self.send(op, "POST", f"/v1/contexts/{ctx}/locks/{LOCK}", json={"ttl_ms": 2000})
            if answer is None:
                return None
            status, body = answer
            if status == 507:
                return {"status": "full"}
            if status != 200:
                raise Unexpected(f"lock answered {status}: {body}")
            if body.get("acquired"):
                token.append(body["fencing_token"])
            return {"acquired": bool(body.get("acquired")), "token": body.get("fencing_token")}

        await self.run_op(op, acquire())
        held = self.tokens.setdefault(ctx, [])
        if token:
            held.append(token[0])
        if not held:
            return
        use = held[-1] if token and self.rng.random() < 0.8 else self.rng.choice(held)
        vid = self.vid()
        write = self.new_op(ctx, "fenced_put", key=key, vid=vid, lock=LOCK, token=use, **{"if": None})
        headers = {"X-Fencing-Token": f"{LOCK}={use}"}

        async def put() -> dict[str, Any] | None:
            answer = await self.send(write, "PUT", self._entry_path(ctx, key), json={"value": {"w": vid}}, headers=headers)
            return self._write_out(ctx, key, answer)

        await self.run_op(write, put())
        if token and self.rng.random() < 0.7:
            _, base = self.cluster.pick(self.rng)
            try:
                await self.http.delete(f"{base}/v1/contexts/{ctx}/locks/{LOCK}")
            except (httpx.HTTPError, OSError):
                pass

    async def one(self) -> None:
        ctx = self.contexts.pick(self.rng)
        rng = self.rng
        key = rng.choice(REGULAR_KEYS)
        known = self.known.get((ctx, key))
        rev = known[1] if known else 0
        if rng.random() < 0.2 and rev:
            rev = max(1, rev - rng.randint(1, 3))  # a stale precondition
        r = rng.random()
        if r < 0.20:
            await self.get(ctx, key)
        elif r < 0.28:
            seen = self.seen_rev.get(ctx, 0)
            if seen:
                await self.get(ctx, rng.choice(REGULAR_KEYS + TTL_KEYS), at=rng.randint(1, seen))
        elif r < 0.33:
            await self.list(ctx)
        elif r < 0.50:
            await self.put(ctx, key, rev if rev else "absent")
        elif r < 0.54:
            await self.put(ctx, key, None)
        elif r < 0.61:
            if rev:
                await self.patch_merge(ctx, key, rev)
        elif r < 0.66:
            if known:
                await self.patch_json(ctx, key, known[0])
        elif r < 0.71:
            if rev:
                await self.delete(ctx, key, rev)
        elif r < 0.82:
            await self.txn(ctx, rng.sample(REGULAR_KEYS, rng.choice([2, 3])))
        elif r < 0.89:
            tkey = rng.choice(TTL_KEYS)
            await self.put(ctx, tkey, rng.choice([None, "absent"]), ttl_ms=rng.randint(200, 3000))
        elif r < 0.95:
            await self.get(ctx, rng.choice(TTL_KEYS))
        else:
            await self.lock_and_write(ctx, key)


class Contexts:
    """The contexts traffic goes to: a few at a time, replaced by new ones
    every epoch so that each context's history stays small enough to
    check."""

    def __init__(self, prefix: str, width: int) -> None:
        self.prefix = prefix
        self.width = width
        self.epoch = 0
        self.all: list[str] = []
        self.current: list[str] = []

    def next_epoch(self) -> list[str]:
        self.epoch += 1
        self.current = [f"{self.prefix}-e{self.epoch}-{i}" for i in range(self.width)]
        self.all.extend(self.current)
        return self.current

    def pick(self, rng: random.Random) -> str:
        return rng.choice(self.current)


class Watcher:
    """Follows one of the current contexts over SSE or the WebSocket,
    breaking off now and then and resuming as docs/api.md says."""

    def __init__(self, name: str, transport: str, cluster: Cluster, contexts: Contexts, rng: random.Random, connections: list[WatchConnection]) -> None:
        self.name = name
        self.transport = transport
        self.cluster = cluster
        self.contexts = contexts
        self.rng = rng
        self.connections = connections
        self.stop = asyncio.Event()
        self.current: WatchConnection | None = None

    async def run(self) -> None:
        ctx = None
        previous: WatchConnection | None = None
        while not self.stop.is_set():
            if ctx not in self.contexts.current:
                ctx = self.rng.choice(self.contexts.current)
                previous = None
            # The events of a revision the previous connection delivered in
            # part come again; the checker takes each connection whole.
            after = resume_position(previous)[0] if previous else 0
            rng = self.rng
            types = rng.choice([None, None, ["context.updated"], ["context.updated", "lock.acquired"]])
            prefix = rng.choice([None, None, "k/", "ttl/"])
            conn = WatchConnection(self.name, self.transport, ctx, after, types, prefix)
            if previous is not None:
                # A resumed connection keeps its filters: they are part of
                # what "exactly the events after R" means.
                conn.types, conn.prefix = previous.types, previous.prefix
            self.connections.append(conn)
            self.current = conn
            lasting = rng.uniform(0.5, 4.0)
            try:
                if self.transport == "sse":
                    await asyncio.wait_for(self._sse(conn), lasting)
                else:
                    await asyncio.wait_for(self._ws(conn), lasting)
                conn.ended = "broken"
            except asyncio.TimeoutError:
                conn.ended = "client"
            except (httpx.HTTPError, OSError, websockets.exceptions.WebSocketException, _Broken):
                conn.ended = "broken"
                await asyncio.sleep(0.1)
            previous = conn

    async def follow_to_end(self, until: dict[str, int], deadline: float) -> None:
        """At the end of a run: one last connection, held until it has
        delivered the context's last revision."""
        self.stop.set()
        previous = self.current
        ctx = previous.ctx if previous else self.contexts.current[0]
        while time.monotonic() < deadline:
            after = resume_position(previous)[0] if previous else 0
            conn = WatchConnection(self.name, self.transport, ctx, after, previous.types if previous else None, previous.prefix if previous else None)
            self.connections.append(conn)
            conn.ended = "end"
            target = until.get(ctx, 0)
            try:
                coro = self._sse(conn, until=target) if self.transport == "sse" else self._ws(conn, until=target)
                await asyncio.wait_for(coro, max(0.1, deadline - time.monotonic()))
                return
            except asyncio.TimeoutError:
                return
            except (httpx.HTTPError, OSError, websockets.exceptions.WebSocketException, _Broken):
                conn.ended = "broken"
                previous = conn
                await asyncio.sleep(0.2)

    async def _sse(self, conn: WatchConnection, until: int | None = None) -> None:
        _, base = self.cluster.pick(self.rng)
        params: dict[str, Any] = {"after": conn.after}
        if conn.types:
            params["types"] = ",".join(conn.types)
        if conn.prefix:
            params["prefix"] = conn.prefix
        timeout = httpx.Timeout(None, connect=1.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            async with http.stream("GET", f"{base}/v1/contexts/{conn.ctx}/watch", params=params, headers={"X-Agent-Id": self.name}) as response:
                if response.status_code != 200:
                    raise _Broken(f"watch answered {response.status_code}")
                kind, data = None, []
                async for line in response.aiter_lines():
                    if line == "":
                        if data:
                            if self._frame(conn, kind, json.loads("\n".join(data)), until):
                                return
                        kind, data = None, []
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())

    def _frame(self, conn: WatchConnection, kind: str | None, data: dict[str, Any], until: int | None) -> bool:
        """Records one SSE frame; True when the stream is done."""
        if kind == "progress":
            conn.frames.append(("progress", data["revision"], []))
        elif kind in ("error", "compacted", "context.deleted"):
            raise _Broken(f"stream ended: {data}")
        else:
            conn.frames.append(("events", data["revision"], [data]))
        # An SSE frame holds one event: only a bookmark says a revision is
        # whole.
        return until is not None and kind == "progress" and data["revision"] >= until

    async def _ws(self, conn: WatchConnection, until: int | None = None) -> None:
        _, base = self.cluster.pick(self.rng)
        url = base.replace("http://", "ws://") + "/v1/ws"
        async with ws_connect(url, additional_headers={"X-Agent-Id": self.name}, open_timeout=1.0, close_timeout=0.2) as ws:
            sub: dict[str, Any] = {"op": "subscribe", "sub": "s", "context": conn.ctx, "after": conn.after}
            if conn.types:
                sub["types"] = conn.types
            if conn.prefix:
                sub["prefix"] = conn.prefix
            await ws.send(json.dumps(sub))
            async for message in ws:
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "events":
                    conn.frames.append(("events", frame["revision"], frame["events"]))
                elif kind == "progress":
                    conn.frames.append(("progress", frame["revision"], []))
                elif kind in ("error", "compacted", "closed"):
                    raise _Broken(f"subscription ended: {frame}")
                if until is not None and conn.frames and conn.frames[-1][1] >= until:
                    return
        raise _Broken("websocket closed")


class _Broken(Exception):
    pass
