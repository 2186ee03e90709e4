"""Typed models of what the ctxmesh API answers.

Every model accepts fields it does not know (``extra="allow"``), so a
newer server never breaks an older client: unknown fields are kept and
readable as attributes and in ``model_dump()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Literal, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

__all__ = [
    "Model",
    "Priority",
    "Entry",
    "EntryPage",
    "Deleted",
    "Document",
    "EntryVersion",
    "EntryHistory",
    "Commit",
    "CommitPage",
    "DiffChange",
    "Diff",
    "RollbackResult",
    "Context",
    "ContextPage",
    "Policy",
    "PolicyOverride",
    "Retention",
    "TxnResult",
    "Event",
    "EventPage",
    "StreamPage",
    "Capabilities",
    "ContextMap",
    "Agent",
    "RegisteredAgent",
    "AgentPage",
    "NewToken",
    "Lock",
    "Handoff",
    "HandoffPage",
    "Task",
    "TaskPage",
    "Grant",
    "PolicyRule",
    "AuditRecord",
    "AuditPage",
    "Conflict",
    "ConflictRecord",
    "ConflictPage",
    "ConflictReport",
    "PackageItem",
    "DroppedItem",
    "Package",
    "MarkdownPackage",
    "SearchHit",
    "SearchResult",
    "Candidate",
    "ConsensusOutcome",
    "DecisionRecord",
]

Priority = Literal["low", "normal", "high", "critical"]
"""An entry's or event's priority."""


class Model(BaseModel):
    """Base of every model: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- entries -----------------------------------------------------------------


class Entry(Model):
    """One entry of a context.

    ``revision`` is the context revision of the entry's last change (its
    ETag, what ``if_match`` takes); ``version`` counts its writes since it
    was created; ``vclock`` counts each writer's writes.
    """

    key: str
    value: Any = None
    revision: int = 0
    version: int = 0
    created_revision: int = 0
    updated_at: Optional[datetime] = None
    author: str = ""
    kind: Optional[str] = None
    tags: List[str] = Field(default_factory=list)
    confidence: Optional[float] = None
    priority: str = "normal"
    depends_on: List[str] = Field(default_factory=list)
    relevance: Dict[str, float] = Field(default_factory=dict)
    expires_at: Optional[datetime] = None
    confidential: bool = False
    vclock: Dict[str, int] = Field(default_factory=dict)

    _conflict: Optional[Tuple[str, str]] = PrivateAttr(default=None)

    @property
    def etag(self) -> str:
        """The entry's ETag as sent in ``If-Match``: the revision in quotes."""
        return f'"{self.revision}"'

    @property
    def conflict(self) -> Optional[Tuple[str, str]]:
        """How a stale write that returned this entry was settled.

        ``(outcome, conflict_id)`` from the ``X-Conflict`` header when the
        context's conflict policy applied a stale write (``overwritten``,
        ``merged``, ``won``); ``None`` for an ordinary write or a read.
        """
        return self._conflict


class EntryPage(Model):
    """One page of an entry listing, read at ``revision``."""

    entries: List[Entry] = Field(default_factory=list)
    revision: int = 0
    next_cursor: Optional[str] = None


class Deleted(Model):
    """The answer to a deletion: the key and the revision that deleted it."""

    key: str
    revision: int


class Document(Model):
    """The entries assembled into one nested JSON document."""

    revision: int
    document: Dict[str, Any] = Field(default_factory=dict)


class EntryVersion(Model):
    """One version of an entry: the change and the entry after it (none for deletions)."""

    revision: int
    change: str = ""
    entry: Optional[Entry] = None


class EntryHistory(Model):
    """Versions of one entry, newest first."""

    key: str
    versions: List[EntryVersion] = Field(default_factory=list)
    next_before: Optional[int] = None


class Commit(Model):
    """One committed revision of a context."""

    revision: int
    author: Optional[str] = None
    at: Optional[datetime] = None
    kind: Optional[str] = None
    keys: List[str] = Field(default_factory=list)


class CommitPage(Model):
    """Commits of a context, newest first."""

    commits: List[Commit] = Field(default_factory=list)
    next_before: Optional[int] = None


class DiffChange(Model):
    """One key's change between two revisions."""

    key: str
    change: str
    before: Optional[Entry] = None
    after: Optional[Entry] = None


class Diff(Model):
    """Changes between revisions ``from`` (``from_``) and ``to``."""

    from_: int = Field(alias="from")
    to: int
    changes: List[DiffChange] = Field(default_factory=list)


class RollbackResult(Model):
    """The revision written by a rollback and the revision it restored."""

    revision: int
    restored_from: int


# --- contexts ----------------------------------------------------------------


class PolicyOverride(Model):
    """A conflict policy for the keys matching ``pattern``."""

    pattern: str
    strategy: str
    on_field_conflict: Optional[str] = None
    arrays: Optional[str] = None


class Policy(Model):
    """A context's conflict policy."""

    strategy: str = "reject"
    on_field_conflict: str = "reject"
    require_precondition: bool = False
    arrays: Optional[str] = None
    overrides: List[PolicyOverride] = Field(default_factory=list)


class Retention(Model):
    """How much history a context keeps."""

    max_revisions: Optional[int] = None
    max_age_ms: Optional[int] = None


class Context(Model):
    """A context's settings and counters."""

    id: str
    revision: int = 0
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    created_by: Optional[str] = None
    policy: Policy = Field(default_factory=Policy)
    schemas: Dict[str, Any] = Field(default_factory=dict)
    retention: Retention = Field(default_factory=Retention)
    labels: Dict[str, str] = Field(default_factory=dict)
    mesh: Dict[str, Any] = Field(default_factory=dict)
    parent: Optional[str] = None
    forked_from: Optional[Dict[str, Any]] = None
    entry_count: int = 0
    compacted_revision: int = 0


class ContextPage(Model):
    """A page of contexts."""

    contexts: List[Context] = Field(default_factory=list)
    next_cursor: Optional[str] = None


class TxnResult(Model):
    """The answer to a transaction.

    ``results`` holds one item per operation of the branch that ran; a
    ``get`` result has ``entries``, a ``put``/``patch`` result ``entry``.
    """

    succeeded: bool
    revision: int = 0
    results: List[Dict[str, Any]] = Field(default_factory=list)
    conflicts: List[Dict[str, Any]] = Field(default_factory=list)

    def entries(self) -> List[Entry]:
        """Every entry the results carry (reads and writes), in order."""
        out: List[Entry] = []
        for r in self.results:
            if isinstance(r.get("entry"), dict):
                out.append(Entry.model_validate(r["entry"]))
            for e in r.get("entries") or []:
                out.append(Entry.model_validate(e))
        return out


# --- events ------------------------------------------------------------------


class Event(Model):
    """One event of a context's log, an inbox or the agents feed.

    ``revision`` is its position in the context's log; inbox and feed
    items also carry ``seq``, their position in that stream.
    """

    type: str
    context: str = ""
    revision: int = 0
    key: Optional[str] = None
    at: Optional[datetime] = None
    agent: Optional[str] = None
    priority: Optional[str] = None
    data: Any = None
    seq: Optional[int] = None


class EventPage(Model):
    """Events of a context, oldest first; continue with ``after=last_revision``."""

    events: List[Event] = Field(default_factory=list)
    last_revision: int = 0
    more: bool = False


class StreamPage(Model):
    """Items of an inbox (or of the agents feed); continue with ``after=next_after``."""

    events: List[Event] = Field(default_factory=list)
    next_after: int = 0


# --- agents ------------------------------------------------------------------


class Capabilities(Model):
    """What an agent may do."""

    can_read: bool = True
    can_write: bool = True
    can_share: bool = False
    max_concurrent_contexts: int = 8
    supported_kinds: List[str] = Field(default_factory=lambda: ["*"])
    custom: List[str] = Field(default_factory=list)


class ContextMap(Model):
    """Kinds, tags, key patterns and plain names an agent needs or produces.

    A name matches an entry by its kind, one of its tags, its key, or a
    prefix of its key up to a ``/``. Requests may give a map as a plain list
    of names (``["key_findings", "brand/guidelines"]``); answers give this.
    """

    kinds: List[str] = Field(default_factory=list)
    tags: List[str] = Field(default_factory=list)
    keys: List[str] = Field(default_factory=list)
    names: List[str] = Field(default_factory=list)
    exclude: Optional["ContextMap"] = None


class MapAgent(Model):
    """What one agent of a context's map needs and produces."""

    needs: ContextMap = Field(default_factory=ContextMap)
    produces: ContextMap = Field(default_factory=ContextMap)


class ContextMapView(Model):
    """A context's map: its workflow, each workflow agent's needs and
    produces, and the tokens of the agents the request registered (shown
    once)."""

    context: str
    workflow: List[str] = Field(default_factory=list)
    agents: Dict[str, MapAgent] = Field(default_factory=dict)
    tokens: Dict[str, str] = Field(default_factory=dict)


class Agent(Model):
    """A registered agent."""

    id: str
    name: str = ""
    capabilities: Capabilities = Field(default_factory=Capabilities)
    needs: ContextMap = Field(default_factory=ContextMap)
    produces: ContextMap = Field(default_factory=ContextMap)
    objective: str = ""
    token_budget: int = 0
    trust: str = "low"
    status: str = "active"
    lease_ms: int = 0
    lease_expires_at: Optional[datetime] = None
    last_heartbeat_at: Optional[datetime] = None
    registered_at: Optional[datetime] = None
    labels: Dict[str, str] = Field(default_factory=dict)


class RegisteredAgent(Agent):
    """A registration's answer: the agent and its token, shown this once (never in ``repr``)."""

    token: str = Field(repr=False)


class AgentPage(Model):
    """A page of agents."""

    agents: List[Agent] = Field(default_factory=list)
    next_cursor: Optional[str] = None


class Identity(Model):
    """Who a client is to the server (``GET /v1/whoami``)."""

    agent: str
    """The agent the client acts as: its token's agent, or the agent it names with the admin token."""
    admin: bool
    """Whether it holds the admin token (always, on a server without tokens)."""


class NewToken(Model):
    """A rotated agent token (never in ``repr``)."""

    agent: str
    token: str = Field(repr=False)


# --- coordination ------------------------------------------------------------


class Lock(Model):
    """A lock of a context.

    ``acquired`` is set on the answer to an acquisition: ``False`` means
    another agent holds it (``holder``, ``expires_at``).
    """

    context: str = ""
    name: str = ""
    holder: Optional[str] = None
    lock_id: Optional[str] = None
    fencing_token: int = 0
    acquired_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    acquired: Optional[bool] = None

    @property
    def fence(self) -> str:
        """The ``X-Fencing-Token`` value for writes under this lock: ``<name>=<token>``."""
        return f"{self.name}={self.fencing_token}"


class _Status(Model):
    """A lifecycle's ``status``, with ``state``, its former name, kept as a deprecated duplicate."""

    @model_validator(mode="after")
    def _both_names(self) -> "_Status":
        status, state = getattr(self, "status", ""), getattr(self, "state", "")
        if status and not state:
            self.state = status
        elif state and not status:
            self.status = state
        return self


class Handoff(_Status):
    """A handoff of work, with its context, from ``source`` to ``target``.

    ``status`` is ``requested``, ``accepted``, ``rejected``, ``expired`` or
    ``completed``; ``state`` is the same, under its former name (deprecated).
    """

    id: str
    status: str = ""
    state: str = ""
    source: str
    target: str
    context: str
    revision: int = 0
    keys: List[str] = Field(default_factory=list)
    package: Any = None
    session: Optional[str] = None
    user_intent: Optional[str] = None
    conversation_history: List[Any] = Field(default_factory=list)
    extracted_entities: Dict[str, Any] = Field(default_factory=dict)
    note: Optional[str] = None
    deadline: Optional[datetime] = None
    outcome: Any = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None


class HandoffPage(Model):
    """A page of handoffs."""

    handoffs: List[Handoff] = Field(default_factory=list)
    next_cursor: Optional[str] = None


class Task(_Status):
    """A task assigned to an agent in a context.

    ``status`` is ``assigned`` or ``completed``; ``state`` is the same,
    under its former name (deprecated).
    """

    id: str
    context: str
    assignee: str
    assigned_by: str = ""
    title: str = ""
    input: Any = None
    priority: str = "normal"
    status: str = ""
    state: str = ""
    output: Any = None
    created_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None


class TaskPage(Model):
    """A page of tasks."""

    tasks: List[Task] = Field(default_factory=list)
    next_cursor: Optional[str] = None


# --- security ----------------------------------------------------------------


class Grant(Model):
    """Permissions of one agent on one context."""

    context: str
    agent: str
    permissions: List[str] = Field(default_factory=list)
    expires_at: Optional[datetime] = None
    granted_by: Optional[str] = None
    granted_at: Optional[datetime] = None


class PolicyRule(Model):
    """An allow or deny rule over contexts, agents, trust levels and entries."""

    id: str
    effect: str
    contexts: str = "*"
    agents: str = "*"
    min_trust: Optional[str] = None
    max_trust: Optional[str] = None
    permissions: List[str] = Field(default_factory=list)
    keys: Optional[str] = None
    tags: List[str] = Field(default_factory=list)
    description: Optional[str] = None


class AuditRecord(Model):
    """One access decision."""

    seq: int = 0
    at: Optional[datetime] = None
    agent: str = ""
    action: str = ""
    resource: str = ""
    context: str = ""
    allowed: bool = False
    reason: str = ""


class AuditPage(Model):
    """A page of the audit log; continue with ``after=next_after``."""

    records: List[AuditRecord] = Field(default_factory=list)
    next_after: int = 0


# --- conflicts ---------------------------------------------------------------


class Conflict(Model):
    """A conflict record: a stale write a policy settled or kept aside.

    ``current`` is set when the record was read alone (the entry it met).
    """

    id: str
    context: str = ""
    key: str = ""
    strategy: str = ""
    severity: str = ""
    status: str = ""
    outcome: str = ""
    detected_revision: int = 0
    detected_at: Optional[datetime] = None
    author: str = ""
    base_revision: Optional[int] = None
    current_revision: int = 0
    current_author: Optional[str] = None
    fields: List[str] = Field(default_factory=list)
    proposed: Optional[Dict[str, Any]] = None
    tags: List[str] = Field(default_factory=list)
    confidential: bool = False
    resolution: Optional[Dict[str, Any]] = None
    current: Optional[Entry] = None


ConflictRecord = Conflict
"""Alias of :class:`Conflict` (the model), distinct from the ``Conflict`` exception."""


class ConflictPage(Model):
    """A page of conflict records."""

    conflicts: List[Conflict] = Field(default_factory=list)
    next_cursor: Optional[str] = None


class ConflictReport(Model):
    """How a stale write was settled (a transaction's ``conflicts``, a ``202``)."""

    key: str = ""
    strategy: str = ""
    outcome: str = ""
    conflict: Optional[str] = None
    reason: Optional[str] = None
    fields: List[str] = Field(default_factory=list)
    current: Optional[Entry] = None


# --- the context mesh --------------------------------------------------------


class PackageItem(Model):
    """One entry of a package: ``status`` is included, compressed or referenced."""

    key: str
    revision: int = 0
    status: str = ""
    score: float = 0.0
    tokens: int = 0
    text: str = ""
    reference: str = ""
    kind: Optional[str] = None
    value: Any = None
    explain: Optional[Dict[str, Any]] = None


class DroppedItem(Model):
    """An entry left out of a package, with the reason."""

    key: str
    revision: int = 0
    score: float = 0.0
    reason: str = ""
    explain: Optional[Dict[str, Any]] = None


class Package(Model):
    """An agent's context package: relevant entries within a token budget."""

    context: str = ""
    agent: str = ""
    revision: int = 0
    budget: int = 0
    tokens: int = 0
    encoding: str = ""
    items: List[PackageItem] = Field(default_factory=list)
    dropped: List[DroppedItem] = Field(default_factory=list)
    dropped_total: int = 0
    text: str = ""


class MarkdownPackage(Model):
    """A package as prompt-ready Markdown (``format=markdown``)."""

    text: str
    tokens: Optional[int] = None
    revision: Optional[int] = None
    cache: Optional[str] = None


class SearchHit(Model):
    """One search result."""

    key: str
    score: float = 0.0
    entry: Optional[Entry] = None


class SearchResult(Model):
    """Search results, best first, read at ``revision``."""

    mode: str = ""
    revision: int = 0
    hits: List[SearchHit] = Field(default_factory=list)


class Candidate(Model):
    """A value proposed in a consensus round, with its support."""

    value: Any = None
    agreement: float = 0.0
    agents: List[str] = Field(default_factory=list)


class ConsensusOutcome(Model):
    """The outcome of a consensus round: written (``agreed``) or escalated."""

    agreed: bool
    agreement: float = 0.0
    entry: Optional[Entry] = None
    conflict: Optional[Conflict] = None
    candidates: List[Candidate] = Field(default_factory=list)


class DecisionRecord(Model):
    """A recorded decision and the path that replays the package seen."""

    entry: Entry
    replay: str


ContextMap.model_rebuild()
