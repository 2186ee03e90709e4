"""Python client for ctxmesh: a shared, versioned context for many AI agents.

Sync and async clients over the HTTP API, typed models, exceptions keyed on
the API's error codes, watches that resume by themselves, an ``update``
helper that retries on ``412``, and locks with fencing tokens as context
managers::

    import ctxmesh

    with ctxmesh.Client("http://127.0.0.1:7600", token="cmt_...") as c:
        c.create_context("launch")
        entry = c.put("launch", "brief", {"goal": "ship"}, kind="objective")
        c.update("launch", "counter", lambda n: (n or 0) + 1)
"""

from .aio import AsyncClient, AsyncHeldLock
from .client import Client, HeldLock
from . import errors as _errors
from .errors import *  # noqa: F403 (the exceptions: errors.__all__)
from .models import (
    Agent,
    AgentPage,
    AuditPage,
    AuditRecord,
    Capabilities,
    Commit,
    CommitPage,
    ConflictPage,
    ConflictRecord,
    ConflictReport,
    ConsensusOutcome,
    Context,
    ContextPage,
    DecisionRecord,
    Deleted,
    Diff,
    DiffChange,
    Document,
    Entry,
    EntryHistory,
    EntryPage,
    EntryVersion,
    Event,
    EventPage,
    Grant,
    Handoff,
    HandoffPage,
    Identity,
    Lock,
    MarkdownPackage,
    Package,
    PackageItem,
    PolicyRule,
    RegisteredAgent,
    RollbackResult,
    SearchHit,
    SearchResult,
    StreamPage,
    Task,
    TaskPage,
    TxnResult,
)
from .watch import AsyncWatch, Watch

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "HeldLock",
    "AsyncHeldLock",
    "Watch",
    "AsyncWatch",
    # models
    "Agent",
    "AgentPage",
    "AuditPage",
    "AuditRecord",
    "Capabilities",
    "Commit",
    "CommitPage",
    "ConflictPage",
    "ConflictRecord",
    "ConflictReport",
    "ConsensusOutcome",
    "Context",
    "ContextPage",
    "DecisionRecord",
    "Deleted",
    "Diff",
    "DiffChange",
    "Document",
    "Entry",
    "EntryHistory",
    "EntryPage",
    "EntryVersion",
    "Event",
    "EventPage",
    "Grant",
    "Handoff",
    "HandoffPage",
    "Identity",
    "Lock",
    "MarkdownPackage",
    "Package",
    "PackageItem",
    "PolicyRule",
    "RegisteredAgent",
    "RollbackResult",
    "SearchHit",
    "SearchResult",
    "StreamPage",
    "Task",
    "TaskPage",
    "TxnResult",
]
__all__ += _errors.__all__
