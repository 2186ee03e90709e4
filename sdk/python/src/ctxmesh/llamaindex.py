"""LlamaIndex adapters: a chat store and a memory block backed by ctxmesh.

* :class:`CtxmeshChatStore` is the chat store LlamaIndex's ``Memory`` uses
  (``AsyncDBChatStore``: active and archived messages per chat key), kept
  in a ctxmesh context: several agents and processes share a chat, every
  message is an entry with its history, and concurrent writers lose
  nothing.
* :class:`CtxmeshContextBlock` is a ``Memory`` block (``BaseMemoryBlock``)
  that puts an agent's ctxmesh package (its relevant context, ranked,
  within a token budget) into the prompt.

Needs the ``llamaindex`` extra: ``pip install 'ctxmesh[llamaindex]'``.

Layout of the chat store (keys in the context; ``<K>`` is the chat key
escaped into one key segment)::

    <prefix>/chats/<K>                 the chat's head: {"next", "count", "active", "archived"}
    <prefix>/messages/<K>/a/<seq>      an active message (LlamaIndex's ChatMessage JSON)
    <prefix>/messages/<K>/r/<seq>      an archived message

``<seq>`` orders a chat's messages (newest first in key order); archiving
moves a message from ``a/`` to ``r/`` under the same number. Every change
is one transaction conditional on the head's revision, retried on the newer
head when another writer came first.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

try:
    import llama_index.core  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("ctxmesh.llamaindex needs llama-index-core: pip install 'ctxmesh[llamaindex]'") from e
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus

from . import _api
from . import _itemlog as log
from . import _plans
from . import models as m
from ._itemlog import Head, HeadCache, Log, Op
from .aio import AsyncClient
from .client import Client
from .errors import NotFound, UpdateConflict

__all__ = ["CtxmeshChatStore", "CtxmeshContextBlock"]

AnyClient = Union[Client, AsyncClient]

ACTIVE = "a/"
ARCHIVED = "r/"


def _segment(status: MessageStatus) -> str:
    return ACTIVE if status == MessageStatus.ACTIVE else ARCHIVED


def _count_field(status: MessageStatus) -> str:
    return "active" if status == MessageStatus.ACTIVE else "archived"


def _message(value: Any) -> ChatMessage:
    return ChatMessage.model_validate(value)


class CtxmeshChatStore(AsyncDBChatStore):
    """A LlamaIndex chat store (``AsyncDBChatStore``) whose messages are ctxmesh entries.

    Give it to ``Memory.from_defaults(chat_store=...)``; the memory's
    ``session_id`` is the chat key.

    Args:
        client: a :class:`ctxmesh.Client` or :class:`ctxmesh.AsyncClient`
            acting as the agent (or admin) whose grants apply. With an
            ``AsyncClient``, use ``Memory``'s asynchronous methods on the
            loop the client was first used on; a ``Client`` also serves the
            synchronous ones (``memory.put``, ``memory.get``), which run a
            loop of their own per call.
        context: the context holding the chats (created on the first write
            if missing).
        prefix: the key prefix of the chats in the context.
        kind: the entry kind of each message.
        labels: labels of the context when the store creates it.
    """

    context: str = Field(default="llamaindex", description="The ctxmesh context holding the chats.")
    prefix: str = Field(default="llamaindex", description="The key prefix of the chats in the context.")
    kind: Optional[str] = Field(default="message", description="The entry kind of each message.")
    labels: Dict[str, str] = Field(default_factory=dict, description="Labels of a context the store creates.")

    _runner: log.Runner = PrivateAttr()
    _heads: HeadCache = PrivateAttr(default_factory=HeadCache)

    def __init__(self, client: AnyClient, **data: Any) -> None:
        super().__init__(**data)
        self.prefix = log.check_prefix(self.prefix)
        self._runner = log.Runner(client)

    @classmethod
    def class_name(cls) -> str:
        return "CtxmeshChatStore"

    @property
    def client(self) -> AnyClient:
        """The ctxmesh client the store talks through."""
        return self._runner.client

    # --- keys ----------------------------------------------------------------

    def head_key(self, key: str) -> str:
        """The key of a chat's head."""
        return f"{self.prefix}/chats/{log.escape(key)}"

    def messages_prefix(self, key: str, status: Optional[MessageStatus] = None) -> str:
        """The key prefix of a chat's messages (of one status, or all)."""
        base = f"{self.prefix}/messages/{log.escape(key)}/"
        return base if status is None else base + _segment(status)

    def _log(self, key: str, status: MessageStatus) -> Log:
        return Log(self.context, self.head_key(key), self.messages_prefix(key, status), self.labels)

    def _meta(self) -> Optional[Dict[str, Any]]:
        return {"kind": self.kind} if self.kind else None

    # --- reads ---------------------------------------------------------------

    async def get_messages(
        self,
        key: str,
        status: Optional[MessageStatus] = MessageStatus.ACTIVE,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> List[ChatMessage]:
        """A chat's messages of ``status`` (``None``: all), oldest first, from ``offset``, at most ``limit``."""
        entries = await self._runner.run(log.read_newest(self.context, self.messages_prefix(key, status)))
        ordered = sorted(entries, key=lambda e: log.seq_of(e.key))
        start = offset or 0
        chosen = ordered[start:] if limit is None else ordered[start : start + limit]
        return [_message(e.value) for e in chosen]

    async def count_messages(self, key: str, status: Optional[MessageStatus] = MessageStatus.ACTIVE) -> int:
        """How many messages of ``status`` (``None``: all) the chat holds."""
        read = await self._runner.run(log.read_prefixes(self.context, [self.head_key(key)], exact=[True]))
        if read is None or not read[1][0]:
            return 0
        entry = read[1][0][0]
        head = Head(dict(entry.value or {}), entry.revision)
        if status is None:
            return head.count
        return int(head.value.get(_count_field(status), 0))

    async def get_keys(self) -> List[str]:
        """Every chat key of the store."""
        prefix = f"{self.prefix}/chats/"
        entries = await self._runner.run(log.read_newest(self.context, prefix))
        return [log.unescape(e.key[len(prefix) :]) for e in entries if "/" not in e.key[len(prefix) :]]

    # --- writes --------------------------------------------------------------

    async def add_message(self, key: str, message: ChatMessage, status: MessageStatus = MessageStatus.ACTIVE) -> None:
        """Appends one message (see :meth:`add_messages`)."""
        await self.add_messages(key, [message], status)

    async def add_messages(
        self, key: str, messages: List[ChatMessage], status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        """Appends ``messages`` after the chat's last message, in order.

        Concurrent writers all keep their messages: the append is
        conditional on the chat's head and retried on the newer one.
        """
        if not messages:
            return
        field = _count_field(status)
        values = [message.model_dump(mode="json") for message in messages]
        await self._runner.run(
            log.append(
                self._log(key, status),
                self._heads,
                values,
                meta=self._meta(),
                head_fields=lambda head: {field: int(head.value.get(field, 0)) + len(values)},
            )
        )

    async def set_messages(
        self, key: str, messages: List[ChatMessage], status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        """Replaces every message of the chat (of any status) with ``messages``.

        One transaction, however many messages the chat held, unless the new
        ones are more than a transaction may hold: then the old ones are
        deleted first and the new ones appended after.
        """
        values = [message.model_dump(mode="json") for message in messages]
        chat = self._log(key, status)
        field = _count_field(status)

        def build(head: Head) -> Tuple[Optional[List[Op]], bool]:
            fits = len(values) + 2 <= log.MAX_TXN_OPS
            kept = values if fits else []
            first = head.next
            new_head = {
                **head.value,
                "next": first + len(kept),
                "count": len(kept),
                "active": 0,
                "archived": 0,
                field: len(kept),
            }
            # The new messages' keys come after every old one's: never
            # written before, they may follow the prefix's deletion.
            ops: List[Op] = [{"op": "delete_prefix", "prefix": self.messages_prefix(key)}]
            ops += [log.put_op(chat.item_key(first + i), v, self._meta()) for i, v in enumerate(kept)]
            ops.append(log.put_op(chat.head_key, new_head))
            return ops, fits

        (fits, _) = await self._runner.run(log.change(chat, self._heads, build))
        if not fits and values:
            await self.add_messages(key, messages, status)

    async def delete_messages(self, key: str, status: Optional[MessageStatus] = None) -> None:
        """Deletes the chat's messages of ``status`` (``None``: all of them, and the chat)."""
        chat = self._log(key, MessageStatus.ACTIVE)

        def build(head: Head) -> Tuple[Optional[List[Op]], None]:
            if not head.exists:
                return None, None
            ops: List[Op] = [{"op": "delete_prefix", "prefix": self.messages_prefix(key, status)}]
            if status is None:
                ops.append({"op": "delete", "key": chat.head_key})
            else:
                gone = int(head.value.get(_count_field(status), 0))
                new_head = {**head.value, _count_field(status): 0, "count": max(0, head.count - gone)}
                ops.append(log.put_op(chat.head_key, new_head))
            return ops, None

        await self._runner.run(log.change(chat, self._heads, build))

    async def delete_message(self, key: str, idx: int) -> Optional[ChatMessage]:
        """Deletes the chat's message at position ``idx`` and returns it (``None`` if there is none).

        ``idx`` counts from 0 over all the chat's messages, oldest first, as
        ``get_messages(key, status=None)`` lists them.
        """

        def build(head: Head, entries: List[m.Entry]) -> Tuple[Optional[List[Op]], Optional[ChatMessage]]:
            ordered = sorted(entries, key=lambda e: log.seq_of(e.key))
            if not 0 <= idx < len(ordered):
                return None, None
            doomed = ordered[idx]
            field = "active" if doomed.key.startswith(self.messages_prefix(key, MessageStatus.ACTIVE)) else "archived"
            new_head = {**head.value, field: max(0, int(head.value.get(field, 0)) - 1), "count": max(0, head.count - 1)}
            ops: List[Op] = [{"op": "delete", "key": doomed.key}, log.put_op(self.head_key(key), new_head)]
            return ops, _message(doomed.value)

        return await self._runner.run(self._read_change(key, None, build))

    async def delete_oldest_messages(self, key: str, n: int) -> List[ChatMessage]:
        """Deletes the chat's ``n`` oldest active messages and returns them, oldest first."""
        return await self._runner.run(self._read_change(key, MessageStatus.ACTIVE, self._oldest(key, n, archive=False)))

    async def archive_oldest_messages(self, key: str, n: int) -> List[ChatMessage]:
        """Archives the chat's ``n`` oldest active messages and returns them, oldest first.

        Concurrent calls archive different messages: each message is
        archived once.
        """
        return await self._runner.run(self._read_change(key, MessageStatus.ACTIVE, self._oldest(key, n, archive=True)))

    def _oldest(
        self, key: str, n: int, *, archive: bool
    ) -> Callable[[Head, List[m.Entry]], Tuple[Optional[List[Op]], List[ChatMessage]]]:
        def build(head: Head, entries: List[m.Entry]) -> Tuple[Optional[List[Op]], List[ChatMessage]]:
            oldest = sorted(entries, key=lambda e: log.seq_of(e.key))[: max(0, n)]
            if not oldest:
                return None, []
            ops: List[Op] = []
            archived = self.messages_prefix(key, MessageStatus.ARCHIVED)
            for entry in oldest:
                ops.append({"op": "delete", "key": entry.key})
                if archive:
                    ops.append(log.put_op(archived + entry.key.rsplit("/", 1)[-1], entry.value, self._meta()))
            new_head = {**head.value, "active": max(0, int(head.value.get("active", 0)) - len(oldest))}
            if archive:
                new_head["archived"] = int(head.value.get("archived", 0)) + len(oldest)
            else:
                new_head["count"] = max(0, head.count - len(oldest))
            ops.append(log.put_op(self.head_key(key), new_head))
            return ops, [_message(e.value) for e in oldest]

        return build

    def _read_change(
        self,
        key: str,
        status: Optional[MessageStatus],
        build: Callable[[Head, List[m.Entry]], Tuple[Optional[List[Op]], Any]],
        *,
        create: bool = False,
    ) -> _plans.Plan[Any]:
        """Reads the head and the messages of ``status`` at one revision, then writes ``build``'s
        operations conditionally on that head; again on a newer head when another writer came first.
        With ``create``, a missing context is created first."""
        head_key = self.head_key(key)
        for attempt in range(1, log.ATTEMPTS + 1):
            read = yield from log.txn_read(
                self.context,
                [{"op": "get", "key": head_key}, {"op": "get", "prefix": self.messages_prefix(key, status)}],
            )
            if read is None:
                if create and attempt == 1:
                    yield from log.create_context(self.context, self.labels)
                    continue
                return build(Head(), [])[1]
            _, (heads, raw) = read
            head = log.head_of(heads)
            ops, outcome = build(head, [m.Entry.model_validate(e) for e in raw])
            if not ops:
                return outcome
            result: m.TxnResult = yield _api.txn(
                self.context,
                compare=[{"key": head_key, "revision": head.revision}],
                success=ops,
                failure=[{"op": "get", "key": head_key}],
            )
            if result.succeeded:
                self._heads.put(self.context, head_key, log.head_after(head_key, result, head))
                return outcome
            yield log.backoff(attempt)
        raise UpdateConflict("precondition_failed", f"{head_key!r} kept changing: gave up after {log.ATTEMPTS} attempts")


class CtxmeshContextBlock(BaseMemoryBlock[str]):
    """A LlamaIndex ``Memory`` block holding an agent's ctxmesh package.

    Each time the memory is read, the block asks ctxmesh for the agent's
    package of ``context`` (its relevant entries, ranked, packed within
    ``budget`` tokens, as Markdown) and the memory puts it in the prompt
    (the system message by default). When the memory must shrink the
    blocks, this one asks again with a smaller budget (unless its
    ``priority`` is 0, LlamaIndex's "never truncate").

    Args:
        client: a :class:`ctxmesh.Client` or :class:`ctxmesh.AsyncClient`.
            With an agent's token, the package is that agent's; with the
            admin token, name the agent with ``agent``.
        context: the context the package is built from.
        agent: the agent whose package it is (default: the client's).
        budget: the package's token budget (default: the agent's own).
        encoding: the tokenizer the budget is counted with (``cl100k_base``, ``o200k_base``).
        name, description, priority: as for every memory block.
    """

    name: str = Field(default="ctxmesh_context", description="The name of the memory block.")
    context: str = Field(description="The ctxmesh context the package is built from.")
    agent: Optional[str] = Field(default=None, description="The agent whose package it is.")
    budget: Optional[int] = Field(default=None, description="The package's token budget.")
    encoding: Optional[str] = Field(default=None, description="The tokenizer the budget is counted with.")
    accept_short_term_memory: bool = Field(
        default=False, description="Messages flushed from the chat are not kept by this block."
    )

    _runner: log.Runner = PrivateAttr()
    _last: Tuple[str, int] = PrivateAttr(default=("", 0))

    def __init__(self, client: AnyClient, **data: Any) -> None:
        super().__init__(**data)
        self._runner = log.Runner(client)

    @property
    def client(self) -> AnyClient:
        """The ctxmesh client the block talks through."""
        return self._runner.client

    async def package(self, budget: Optional[int] = None) -> m.MarkdownPackage:
        """The agent's package now, as Markdown (``budget`` overrides the block's)."""
        call = _api.package_markdown(
            self.context, self.agent, budget=budget if budget is not None else self.budget, encoding=self.encoding
        )
        package: m.MarkdownPackage = await self._runner.run(_plans.single(call))
        return package

    async def _aget(self, messages: Optional[List[ChatMessage]] = None, **block_kwargs: Any) -> str:
        try:
            package = await self.package()
        except NotFound:
            return ""
        self._last = (package.text, package.tokens or 0)
        return package.text

    async def _aput(self, messages: List[ChatMessage]) -> None:
        """Nothing to keep: the block reads ctxmesh, where agents write through their own calls."""

    async def atruncate(self, content: str, tokens_to_truncate: int) -> Optional[str]:
        """The package again, within the budget it used less ``tokens_to_truncate`` (``None`` if nothing is left)."""
        text, tokens = self._last
        used = tokens if text == content and tokens else max(1, len(content) // 4)
        budget = used - tokens_to_truncate
        if budget <= 0:
            return None
        try:
            package = await self.package(budget)
        except NotFound:
            return None
        return package.text or None

