"""Google ADK adapters: a session service and a memory service kept in ctxmesh.

* :class:`CtxmeshSessionService` is an ADK ``BaseSessionService``: sessions,
  their events and their state (with ADK's ``app:``, ``user:`` and ``temp:``
  scopes) are entries of a ctxmesh context, so several runners, processes
  and agents share them, with history, watches and access control.
  Concurrent ``append_event`` calls on one session all land, in one order,
  and their state deltas merge key by key: a runner holding an older copy of
  the session is not refused as stale. An event appended again with the
  same id (a retry after a lost answer) is not stored twice.
* :class:`CtxmeshMemoryService` is an ADK ``BaseMemoryService``: the text of
  a session's events becomes entries that ``search_memory`` finds through
  ctxmesh's search.

Needs the ``adk`` extra: ``pip install 'ctxmesh[adk]'``.

Layout (keys in the context; ``<A>``, ``<U>``, ``<S>``, ``<K>`` and ``<E>``
are the app name, user id, session id, state key and event id, each escaped
into one key segment)::

    <prefix>/<A>/sessions/<U>/<S>            the session: id, app_name, user_id,
                                             create_time, last_update_time, next, count,
                                             recent_event_ids (the last 64 appended)
    <prefix>/<A>/events/<U>/<S>/<seq>        one event (ADK's JSON), newest first
    <prefix>/<A>/state/app/<K>               app state: shared by every user of the app
    <prefix>/<A>/state/user/<U>/<K>          user state: shared by the user's sessions
    <prefix>/<A>/state/session/<U>/<S>/<K>   session state
    <prefix>/<A>/memory/<U>/<E>              a memory (CtxmeshMemoryService)

``temp:`` state is never written. Each state key is an entry of its own, so
deltas to different keys never conflict; the same key written twice keeps
the last write, as in ADK.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Union

try:
    import google.adk  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("ctxmesh.adk needs Google ADK: pip install 'ctxmesh[adk]'") from e
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.memory.base_memory_service import BaseMemoryService, SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from google.genai import types

from . import _api
from . import _itemlog as log
from . import _plans
from . import models as m
from ._itemlog import Head, HeadCache, Log, Op
from .aio import AsyncClient
from .client import Client
from .errors import NotFound

__all__ = ["CtxmeshMemoryService", "CtxmeshSessionService"]

AnyClient = Union[Client, AsyncClient]

# How many of a session's last event ids its head keeps, so that an append
# retried after a lost answer is recognized (while fewer than this many
# other events came in between).
RECENT_EVENT_IDS = 64


class _Keys:
    """The keys of one app's sessions, state and memories."""

    def __init__(self, prefix: str, app_name: str) -> None:
        self.base = f"{prefix}/{log.escape(app_name)}/"

    def sessions(self, user_id: Optional[str] = None) -> str:
        return self.base + "sessions/" + ("" if user_id is None else log.escape(user_id) + "/")

    def session(self, user_id: str, session_id: str) -> str:
        return self.sessions(user_id) + log.escape(session_id)

    def events(self, user_id: str, session_id: str) -> str:
        return f"{self.base}events/{log.escape(user_id)}/{log.escape(session_id)}/"

    def app_state(self) -> str:
        return self.base + "state/app/"

    def user_state(self, user_id: Optional[str] = None) -> str:
        return self.base + "state/user/" + ("" if user_id is None else log.escape(user_id) + "/")

    def session_state(self, user_id: Optional[str] = None, session_id: Optional[str] = None) -> str:
        out = self.base + "state/session/"
        if user_id is not None:
            out += log.escape(user_id) + "/"
            if session_id is not None:
                out += log.escape(session_id) + "/"
        return out

    def memories(self, user_id: str) -> str:
        return f"{self.base}memory/{log.escape(user_id)}/"


def _state_of(entries: Sequence[Union[m.Entry, Mapping[str, Any]]], prefix: str) -> Dict[str, Any]:
    """State keys and values from the entries under ``prefix`` (one key segment each)."""
    out: Dict[str, Any] = {}
    for entry in entries:
        key, value = (entry.key, entry.value) if isinstance(entry, m.Entry) else (str(entry["key"]), entry.get("value"))
        rest = key[len(prefix) :]
        if "/" not in rest:
            out[log.unescape(rest)] = value
    return out


def _merged(app: Mapping[str, Any], user: Mapping[str, Any], session: Mapping[str, Any]) -> Dict[str, Any]:
    """Session state as ADK hands it out: session keys, ``app:`` and ``user:`` keys."""
    state = dict(session)
    state.update({State.APP_PREFIX + k: v for k, v in app.items()})
    state.update({State.USER_PREFIX + k: v for k, v in user.items()})
    return state


class CtxmeshSessionService(BaseSessionService):
    """An ADK ``BaseSessionService`` keeping sessions, events and state in a ctxmesh context.

    Args:
        client: a :class:`ctxmesh.Client` or :class:`ctxmesh.AsyncClient`
            acting as the agent (or admin) whose grants apply; its writes
            are recorded as its agent's. An ``AsyncClient`` is used on the
            event loop it was first used on.
        context: the context holding every app's sessions (default: a
            context per app, named after it, so the app name must then be a
            valid context id). Created on the first write if missing.
        prefix: the key prefix of the sessions in the context.
        kind: the entry kind of each event (agents' ``needs`` may name it).
        labels: labels of a context the service creates.

    Example::

        service = CtxmeshSessionService(ctxmesh.AsyncClient(token=token))
        runner = Runner(agent=root_agent, app_name="support", session_service=service)
    """

    def __init__(
        self,
        client: AnyClient,
        *,
        context: Optional[str] = None,
        prefix: str = "adk",
        kind: Optional[str] = "message",
        labels: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._runner = log.Runner(client)
        self.context = context
        self.prefix = log.check_prefix(prefix)
        self.kind = kind
        self.labels = dict(labels or {})
        self._heads = HeadCache()

    @property
    def client(self) -> AnyClient:
        """The ctxmesh client the service talks through."""
        return self._runner.client

    def context_of(self, app_name: str) -> str:
        """The context holding ``app_name``'s sessions."""
        return self.context if self.context is not None else app_name

    def _log(self, app_name: str, user_id: str, session_id: str) -> Log:
        keys = _Keys(self.prefix, app_name)
        return Log(
            self.context_of(app_name),
            keys.session(user_id, session_id),
            keys.events(user_id, session_id),
            self.labels,
        )

    # --- sessions ----------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: Optional[dict[str, Any]] = None,
        session_id: Optional[str] = None,
    ) -> Session:
        """Creates a session (``AlreadyExistsError`` when ``session_id`` is taken).

        ``app:`` and ``user:`` keys of ``state`` go to the app's and the
        user's state, ``temp:`` keys nowhere, the others to the session's.
        """
        session_id = session_id.strip() if session_id and session_id.strip() else str(uuid.uuid4())
        return await self._runner.run(self._create(app_name, user_id, session_id, state or {}))

    def _create(self, app_name: str, user_id: str, session_id: str, state: Dict[str, Any]) -> _plans.Plan[Session]:
        ctx = self.context_of(app_name)
        keys = _Keys(self.prefix, app_name)
        key = keys.session(user_id, session_id)
        deltas = _session_util.extract_json_safe_state_delta(state)
        now = time.time()
        record = {
            "id": session_id,
            "app_name": app_name,
            "user_id": user_id,
            "create_time": now,
            "last_update_time": now,
            "next": 0,
            "count": 0,
        }
        success: List[Op] = [log.put_op(key, record)]
        success += self._state_ops(keys, user_id, session_id, deltas)
        success += [
            {"op": "get", "prefix": keys.app_state()},
            {"op": "get", "prefix": keys.user_state(user_id)},
        ]
        for attempt in (1, 2):
            try:
                result: m.TxnResult = yield _api.txn(
                    ctx,
                    compare=[{"key": key, "exists": False}],
                    success=success,
                    failure=[{"op": "get", "key": key}],
                )
            except NotFound:
                if attempt == 2:
                    raise
                yield from log.create_context(ctx, self.labels)
                continue
            if not result.succeeded:
                raise AlreadyExistsError(f"Session with id {session_id} already exists.")
            written = next(r["entry"] for r in result.results if r.get("op") == "put" and r["entry"]["key"] == key)
            self._heads.put(ctx, key, Head(record, int(written["revision"])))
            app_entries, user_entries = log.get_results(result)
            merged = _merged(
                _state_of(app_entries, keys.app_state()),
                _state_of(user_entries, keys.user_state(user_id)),
                deltas["session"],
            )
            return Session(
                id=session_id, app_name=app_name, user_id=user_id, state=merged, events=[], last_update_time=now
            )
        raise AssertionError("unreachable")

    def _state_ops(
        self, keys: _Keys, user_id: str, session_id: str, deltas: Mapping[str, Mapping[str, Any]]
    ) -> List[Op]:
        ops: List[Op] = []
        meta = {"kind": "state"}
        for k, v in deltas["app"].items():
            ops.append(log.put_op(keys.app_state() + log.escape(k), v, meta))
        for k, v in deltas["user"].items():
            ops.append(log.put_op(keys.user_state(user_id) + log.escape(k), v, meta))
        for k, v in deltas["session"].items():
            ops.append(log.put_op(keys.session_state(user_id, session_id) + log.escape(k), v, meta))
        return ops

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: Optional[GetSessionConfig] = None,
    ) -> Optional[Session]:
        """The session with its merged state and its events, oldest first (``None`` if absent).

        ``config.num_recent_events`` keeps the latest events only;
        ``config.after_timestamp`` the events at or after that time. The
        session, its state and its events are read at one revision.
        """
        return await self._runner.run(self._get(app_name, user_id, session_id, config))

    def _get(
        self, app_name: str, user_id: str, session_id: str, config: Optional[GetSessionConfig]
    ) -> _plans.Plan[Optional[Session]]:
        ctx = self.context_of(app_name)
        keys = _Keys(self.prefix, app_name)
        key = keys.session(user_id, session_id)
        read = yield from log.read_prefixes(
            ctx,
            [key, keys.app_state(), keys.user_state(user_id), keys.session_state(user_id, session_id)],
            exact=[True],
        )
        if read is None:
            return None
        revision, (records, app_entries, user_entries, session_entries) = read
        if not records:
            return None
        record = records[0]
        self._heads.put(ctx, key, Head(dict(record.value or {}), record.revision))
        limit = config.num_recent_events if config is not None else None
        after = config.after_timestamp if config is not None else None
        events: List[Event] = []
        if limit != 0:
            entries = yield from log.read_newest(ctx, keys.events(user_id, session_id), limit, at=revision)
            for entry in entries:  # newest first
                event = Event.model_validate(entry.value)
                if after is not None and event.timestamp < after:
                    break
                events.append(event)
            events.reverse()
        value = record.value or {}
        return Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=_merged(
                _state_of(app_entries, keys.app_state()),
                _state_of(user_entries, keys.user_state(user_id)),
                _state_of(session_entries, keys.session_state(user_id, session_id)),
            ),
            events=events,
            last_update_time=float(value.get("last_update_time") or 0.0),
        )

    async def list_sessions(self, *, app_name: str, user_id: Optional[str] = None) -> ListSessionsResponse:
        """The app's sessions (of one user, or of all), without events, oldest update first."""
        return await self._runner.run(self._list(app_name, user_id))

    def _list(self, app_name: str, user_id: Optional[str]) -> _plans.Plan[ListSessionsResponse]:
        keys = _Keys(self.prefix, app_name)
        read = yield from log.read_prefixes(
            self.context_of(app_name),
            [keys.sessions(user_id), keys.app_state(), keys.user_state(user_id), keys.session_state(user_id)],
        )
        if read is None:
            return ListSessionsResponse()
        _, (records, app_entries, user_entries, session_entries) = read
        app_state = _state_of(app_entries, keys.app_state())
        sessions: List[Session] = []
        for entry in records:
            rest = entry.key[len(keys.sessions()) :].split("/")
            value = entry.value
            if len(rest) != 2 or not isinstance(value, dict):
                continue
            user, sid = log.unescape(rest[0]), log.unescape(rest[1])
            user_prefix = keys.user_state(user)
            session_prefix = keys.session_state(user, sid)
            sessions.append(
                Session(
                    id=sid,
                    app_name=app_name,
                    user_id=user,
                    state=_merged(
                        app_state,
                        _state_of([e for e in user_entries if e.key.startswith(user_prefix)], user_prefix),
                        _state_of([e for e in session_entries if e.key.startswith(session_prefix)], session_prefix),
                    ),
                    events=[],
                    last_update_time=float(value.get("last_update_time") or 0.0),
                )
            )
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes a session, its events and its session state (its history stays in the context's)."""
        keys = _Keys(self.prefix, app_name)
        ops: List[Op] = [
            {"op": "delete", "key": keys.session(user_id, session_id)},
            {"op": "delete_prefix", "prefix": keys.events(user_id, session_id)},
            {"op": "delete_prefix", "prefix": keys.session_state(user_id, session_id)},
        ]
        ctx = self.context_of(app_name)
        self._heads.put(ctx, keys.session(user_id, session_id), Head())
        try:
            await self._runner.run(_plans.single(_api.txn(ctx, success=ops)))
        except NotFound:
            pass

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state (keys without their ``user:`` prefix)."""
        prefix = _Keys(self.prefix, app_name).user_state(user_id)
        entries = await self._runner.run(log.read_newest(self.context_of(app_name), prefix))
        return _state_of(entries, prefix)

    # --- events -------------------------------------------------------------

    async def append_event(self, session: Session, event: Event) -> Event:
        """Appends ``event`` to the session and applies its state delta.

        The event and its state delta are one transaction, conditional on
        the session's revision and retried on the newer one when another
        runner appended first: every event lands, in one order, and deltas
        to different keys merge. An event whose id is among the session's
        last appended ones (a retry after a lost answer) is not stored or
        applied again. ``temp:`` keys reach the in-memory ``session`` only.
        A deleted session raises ``SessionNotFoundError``.
        """
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        deltas = _session_util.extract_json_safe_state_delta(event.actions.state_delta or {})
        keys = _Keys(self.prefix, session.app_name)
        data = event.model_dump(mode="json", exclude_none=True)

        def recent(head: Head) -> List[str]:
            ids = head.value.get("recent_event_ids")
            return [str(i) for i in ids] if isinstance(ids, list) else []

        def head_fields(head: Head) -> Dict[str, Any]:
            ids = (recent(head) + [event.id])[-RECENT_EVENT_IDS:]
            return {"last_update_time": event.timestamp, "recent_event_ids": ids}  # the time as ADK keeps it

        def extra_ops(head: Head, first: int) -> List[Op]:
            return self._state_ops(keys, session.user_id, session.id, deltas)

        def missing() -> SessionNotFoundError:
            return SessionNotFoundError(f"Session {session.id} not found.")

        await self._runner.run(
            log.append(
                self._log(session.app_name, session.user_id, session.id),
                self._heads,
                [data],
                meta={"kind": self.kind} if self.kind else None,
                head_fields=head_fields,
                extra_ops=extra_ops,
                missing=missing,
                already=lambda head: event.id in recent(head),
            )
        )
        if not any(e.id == event.id for e in session.events):
            self._commit_event_to_session(session, event)
            session.last_update_time = event.timestamp
        return event


class CtxmeshMemoryService(BaseMemoryService):
    """An ADK ``BaseMemoryService`` whose memories are ctxmesh entries, found by ctxmesh's search.

    Each event with text becomes the entry ``<prefix>/<A>/memory/<U>/<E>``
    (kind ``memory``, tagged for its app and user) holding ``text``,
    ``author``, ``timestamp``, ``session_id`` and the event's ``content``;
    adding a session again replaces its memories, never duplicates them.
    ``search_memory`` is a ctxmesh search scoped to the user's memories.

    Args:
        client: a :class:`ctxmesh.Client` or :class:`ctxmesh.AsyncClient`.
        context: the context holding the memories (default: one per app,
            named after it).
        prefix: the key prefix (the same as the session service's by default).
        search_mode: ``keyword``, ``semantic`` or ``hybrid`` (default: the server's).
        limit: the most memories a search returns.
        labels: labels of a context the service creates.
    """

    def __init__(
        self,
        client: AnyClient,
        *,
        context: Optional[str] = None,
        prefix: str = "adk",
        search_mode: Optional[str] = None,
        limit: int = 10,
        labels: Optional[Mapping[str, str]] = None,
    ) -> None:
        self._runner = log.Runner(client)
        self.context = context
        self.prefix = log.check_prefix(prefix)
        self.search_mode = search_mode
        self.limit = limit
        self.labels = dict(labels or {})

    @property
    def client(self) -> AnyClient:
        """The ctxmesh client the service talks through."""
        return self._runner.client

    def context_of(self, app_name: str) -> str:
        """The context holding ``app_name``'s memories."""
        return self.context if self.context is not None else app_name

    def user_tag(self, app_name: str, user_id: str) -> str:
        """The tag every memory of the user carries (a search is scoped by it)."""
        digest = hashlib.sha256("\x00".join((self.prefix, app_name, user_id)).encode("utf-8")).hexdigest()
        return "adkmem" + digest[:24]

    async def add_session_to_memory(self, session: Session) -> None:
        """Adds (or replaces) the memories of every event of ``session`` that has text."""
        await self.add_events_to_memory(
            app_name=session.app_name, user_id=session.user_id, events=session.events, session_id=session.id
        )

    async def add_events_to_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        events: Sequence[Event],
        session_id: Optional[str] = None,
        custom_metadata: Optional[Mapping[str, object]] = None,
    ) -> None:
        """Adds (or replaces) the memories of ``events`` that have text."""
        prefix = _Keys(self.prefix, app_name).memories(user_id)
        meta = {"kind": "memory", "tags": [self.user_tag(app_name, user_id)]}
        ops: List[Op] = []
        for event in events:
            text = _text_of(event.content)
            if not text or not event.id or event.content is None:
                continue
            value = {
                "text": text,
                "author": event.author,
                "timestamp": datetime.fromtimestamp(event.timestamp, timezone.utc).isoformat(),
                "session_id": session_id,
                "content": event.content.model_dump(mode="json", exclude_none=True),
            }
            if custom_metadata:
                value["custom_metadata"] = dict(custom_metadata)
            ops.append(log.put_op(prefix + log.escape(event.id), value, meta))
        for chunk in log.chunks(ops, log.MAX_TXN_OPS):
            if chunk:
                await self._runner.run(self._write(app_name, list(chunk)))

    def _write(self, app_name: str, ops: List[Op]) -> _plans.Plan[None]:
        ctx = self.context_of(app_name)
        try:
            yield _api.txn(ctx, success=ops)
        except NotFound:
            yield from log.create_context(ctx, self.labels)
            yield _api.txn(ctx, success=ops)

    async def search_memory(self, *, app_name: str, user_id: str, query: str) -> SearchMemoryResponse:
        """The user's memories that match ``query``, best first (ctxmesh's search)."""
        return await self._runner.run(self._search(app_name, user_id, query))

    def _search(self, app_name: str, user_id: str, query: str) -> _plans.Plan[SearchMemoryResponse]:
        prefix = _Keys(self.prefix, app_name).memories(user_id)
        if not query.strip():
            return SearchMemoryResponse()
        try:
            found: m.SearchResult = yield _api.search(
                self.context_of(app_name),
                query,
                mode=self.search_mode,
                limit=self.limit,
                kind="memory",
                tags=[self.user_tag(app_name, user_id)],
            )
        except NotFound:
            return SearchMemoryResponse()
        memories: List[MemoryEntry] = []
        for hit in found.hits:
            entry = hit.entry
            value = entry.value if entry is not None else None
            if entry is None or not entry.key.startswith(prefix) or not isinstance(value, dict):
                continue
            memories.append(
                MemoryEntry(
                    id=log.unescape(entry.key[len(prefix) :]),
                    content=types.Content.model_validate(value.get("content") or {}),
                    author=value.get("author"),
                    timestamp=value.get("timestamp"),
                    custom_metadata=dict(value.get("custom_metadata") or {}),
                )
            )
        return SearchMemoryResponse(memories=memories)

    async def delete_memory(self, *, app_name: str, user_id: str, memory_id: Optional[str] = None) -> None:
        """Deletes one memory (an event id, as ``MemoryEntry.id`` carries it)."""
        if not memory_id:
            return
        key = _Keys(self.prefix, app_name).memories(user_id) + log.escape(memory_id)
        try:
            await self._runner.run(_plans.single(_api.txn(self.context_of(app_name), success=[{"op": "delete", "key": key}])))
        except NotFound:
            pass


def _text_of(content: Optional[types.Content]) -> str:
    """The text parts of ``content``, joined by spaces."""
    if content is None or not content.parts:
        return ""
    return " ".join(part.text for part in content.parts if part.text)


