"""OpenAI Agents SDK adapter: a conversation ``Session`` kept in a ctxmesh context.

:class:`CtxmeshSession` implements the Agents SDK's ``Session`` protocol
(``agents.memory.Session``), so several agents and runners, in one process
or many, share one conversation: each item the SDK stores is an entry of the
context, with the context's history, watches and access control.

Needs the ``openai-agents`` extra: ``pip install 'ctxmesh[openai-agents]'``.

Layout (keys in the context; ``<S>`` is the session id escaped into one key
segment)::

    <prefix>/<S>                 the session's head: {"next", "count"}
    <prefix>/<S>/<seq>           one conversation item (the SDK's JSON), kind "message"

``<seq>`` counts down, so the newest item lists first. Every change is one
transaction conditional on the head's revision, retried on the newer head
when another writer came first: concurrent ``add_items`` all keep their
items (each call's items stay together and in order), and concurrent
``pop_item`` calls each remove a different item.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings
    from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("ctxmesh.openai_agents needs the OpenAI Agents SDK: pip install 'ctxmesh[openai-agents]'") from e

from . import _itemlog as log
from ._itemlog import Head, HeadCache, Log, Op
from .aio import AsyncClient
from .client import Client

__all__ = ["CtxmeshSession"]


class CtxmeshSession:
    """An OpenAI Agents SDK ``Session`` whose items are entries of a ctxmesh context.

    Args:
        session_id: the conversation's id (any string).
        client: a :class:`ctxmesh.Client` or :class:`ctxmesh.AsyncClient`,
            acting as the agent that runs (its writes are recorded as that
            agent's; its grants decide what it may read and write). An
            ``AsyncClient`` is used on the event loop it was first used on;
            a ``Client`` works from any loop (its requests run on a worker
            thread).
        context: the context holding the conversation (default: the
            session id, which must then be a valid context id). It is
            created on the first write if it does not exist.
        prefix: the key prefix of the conversations in the context.
        session_settings: the SDK's session settings (``limit``: how many
            of the latest items ``get_items`` returns by default).
        kind: the entry kind of each item (agents' ``needs`` may name it).
        labels: labels of the context when the session creates it.

    Example::

        session = CtxmeshSession("ticket-4711", ctxmesh.AsyncClient(token=agent_token))
        result = await Runner.run(triage_agent, "my order is late", session=session)
    """

    session_id: str
    session_settings: Optional[SessionSettings]

    def __init__(
        self,
        session_id: str,
        client: Union[Client, AsyncClient],
        *,
        context: Optional[str] = None,
        prefix: str = "openai-agents",
        session_settings: Optional[Union[SessionSettings, Dict[str, Any]]] = None,
        kind: Optional[str] = "message",
        labels: Optional[Mapping[str, str]] = None,
    ) -> None:
        if not isinstance(session_id, str):
            raise TypeError(f"session_id must be a string, not {type(session_id).__name__}")
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self.context = context if context is not None else session_id
        self.prefix = log.check_prefix(prefix)
        self.kind = kind
        base = f"{self.prefix}/{log.escape(session_id)}"
        self._log = Log(self.context, base, base + "/", dict(labels or {}))
        self._runner = log.Runner(client)
        self._heads = HeadCache(16)

    @property
    def client(self) -> Union[Client, AsyncClient]:
        """The ctxmesh client the session talks through."""
        return self._runner.client

    @property
    def items_prefix(self) -> str:
        """The key prefix of this conversation's items (to watch it, for instance)."""
        return self._log.items_prefix

    def __repr__(self) -> str:
        return f"CtxmeshSession(session_id={self.session_id!r}, context={self.context!r})"

    # --- the Session protocol ----------------------------------------------

    async def get_items(self, limit: Optional[int] = None) -> List[TResponseInputItem]:
        """The conversation, oldest first; with ``limit``, its latest ``limit`` items.

        Without ``limit``, ``session_settings.limit`` applies; ``0`` gives
        none and a negative limit all of them. All pages read one snapshot.
        """
        resolved = resolve_session_limit(limit, self.session_settings)
        if resolved is not None and resolved < 0:
            resolved = None
        if resolved == 0:
            return []
        entries = await self._runner.run(log.read_newest(self.context, self._log.items_prefix, resolved))
        return [entry.value for entry in reversed(entries)]

    async def add_items(self, items: List[TResponseInputItem]) -> None:
        """Appends ``items`` after the conversation's last item, in order.

        Several runners may add at once: each call's items land together,
        after the items of the calls that committed before it, and none is
        lost (the write is conditional on the session's head and retried on
        the newer head).
        """
        if not items:
            return
        values = [dict(item) for item in items]
        meta = {"kind": self.kind} if self.kind else None
        await self._runner.run(log.append(self._log, self._heads, values, meta=meta))

    async def pop_item(self) -> Optional[TResponseInputItem]:
        """Removes the conversation's latest item and returns it (``None`` when it is empty).

        Concurrent calls each remove, and return, a different item.
        """

        def build(head: Head) -> Tuple[Optional[List[Op]], Optional[int]]:
            if head.count <= 0:
                return None, None
            last = head.next - 1
            new_head = {**head.value, "next": last, "count": head.count - 1}
            key = self._log.item_key(last)
            ops: List[Op] = [
                {"op": "get", "key": key},
                {"op": "delete", "key": key},
                log.put_op(self._log.head_key, new_head),
            ]
            return ops, last

        for _ in range(log.ATTEMPTS):
            _, result = await self._runner.run(log.change(self._log, self._heads, build))
            if result is None:
                return None
            entries = log.get_results(result)[0]
            if entries:
                item: TResponseInputItem = entries[0]["value"]
                return item
            # The head counted an item whose entry someone deleted directly:
            # the head has moved past it; take the next one.
        return None

    async def clear_session(self) -> None:
        """Removes every item of the conversation (its history stays in the context's history)."""

        def build(head: Head) -> Tuple[Optional[List[Op]], None]:
            if not head.exists:
                return None, None
            ops: List[Op] = [
                {"op": "delete_prefix", "prefix": self._log.items_prefix},
                log.put_op(self._log.head_key, {**head.value, "count": 0}),
            ]
            return ops, None

        await self._runner.run(log.change(self._log, self._heads, build))
