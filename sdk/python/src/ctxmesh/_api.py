"""The wire layer shared by the sync and async clients.

Each API operation is described once, as a :class:`Call`: method, path,
query, body, headers, and how to read the answer. The clients only send
calls and raise the mapped exception on an error answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, TypeVar, Union
from urllib.parse import quote

import httpx

from . import models as m
from .errors import ConflictPending, error_from_response

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:7600"
"""Where a client connects when neither ``base_url`` nor ``CTXMESH_URL`` says."""

USER_AGENT = "ctxmesh-python/0.1.0"


class _Unset:
    """Marks an argument that was not given (distinct from ``None``)."""

    _instance: Optional["_Unset"] = None

    def __new__(cls) -> "_Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def no_content(response: httpx.Response) -> None:
    """For answers without a body (``204``)."""
    return None


@dataclass
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Dict[str, Any] = field(default_factory=dict)
    body: Any = UNSET
    content: Optional[bytes] = None
    content_type: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)

    def request_args(self) -> Dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request``."""
        headers = dict(self.headers)
        content = self.content
        if self.body is not UNSET:
            content = dumps(self.body)
            headers.setdefault("Content-Type", "application/json")
        elif content is not None and self.content_type:
            headers["Content-Type"] = self.content_type
        args: Dict[str, Any] = {"params": query(self.params), "headers": headers}
        if content is not None:
            args["content"] = content
        return args


# --- encoding ----------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, m.Model):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value`` (datetimes as RFC 3339, models as their JSON)."""
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


def query(params: Mapping[str, Any]) -> Dict[str, str]:
    """Query parameters: ``None`` dropped, booleans lower-case, lists comma-joined."""
    out: Dict[str, str] = {}
    for name, value in params.items():
        if value is None or value is UNSET:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def seg(value: str) -> str:
    """One path segment (a context, agent, lock or handoff id), percent-encoded."""
    return quote(str(value), safe="")


def key_path(key: str) -> str:
    """An entry key in a path: every ``/`` encoded, so a key ending in ``history`` is read as itself."""
    return quote(str(key), safe="")


def lock_path(name: str) -> str:
    """A lock name (which may hold ``/``) in a path."""
    return quote(str(name), safe="")


def if_match(value: Any) -> str:
    """The ``If-Match`` value for a revision, an entry (its ETag), or ``*``."""
    if isinstance(value, m.Entry):
        return value.etag
    if isinstance(value, bool):
        raise TypeError("if_match takes a revision, an entry or '*'")
    if isinstance(value, int):
        return f'"{value}"'
    text = str(value).strip()
    if text == "*" or text.startswith('"') or text.startswith("W/"):
        return text
    return f'"{text}"'


FenceLike = Union[str, "m.Lock", Any]


def fence(value: Any) -> str:
    """The ``X-Fencing-Token`` value (``<lock>=<token>``) for a lock, a held lock, a pair or a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}={int(value[1])}"
    text = getattr(value, "fence", None)
    if isinstance(text, str):
        return text
    raise TypeError("fencing takes a Lock, a held lock, a (name, token) pair or 'name=token'")


def write_headers(
    if_match_: Any = None, if_none_match: bool = False, fencing: Any = None
) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    if if_match_ is not None and if_none_match:
        raise ValueError("give either if_match or if_none_match, not both")
    if if_match_ is not None:
        headers["If-Match"] = if_match(if_match_)
    if if_none_match:
        headers["If-None-Match"] = "*"
    if fencing is not None:
        headers["X-Fencing-Token"] = fence(fencing)
    return headers


def compact(**fields: Any) -> Dict[str, Any]:
    """The fields that were given (not ``None``/unset)."""
    return {k: v for k, v in fields.items() if v is not None and v is not UNSET}


# --- reading answers ---------------------------------------------------------


def model(cls: type[T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        return cls.model_validate(response.json())  # type: ignore[attr-defined, no-any-return]

    return parse


def model_list(cls: type[T], field_name: str) -> Callable[[httpx.Response], List[T]]:
    def parse(response: httpx.Response) -> List[T]:
        return [cls.model_validate(x) for x in response.json().get(field_name, [])]  # type: ignore[attr-defined]

    return parse


def raw_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    return response.json()


def entry_answer(response: httpx.Response) -> m.Entry:
    """An entry write's answer: the entry, or :class:`ConflictPending` for a ``202``."""
    if response.status_code == 202:
        raise ConflictPending(m.ConflictReport.model_validate(response.json()), response.headers)
    entry = m.Entry.model_validate(response.json())
    header = response.headers.get("x-conflict")
    if header:
        outcome, _, rest = header.partition(";")
        conflict_id = rest.strip()
        if conflict_id.startswith("id="):
            conflict_id = conflict_id[3:]
        entry._conflict = (outcome.strip(), conflict_id)
    return entry


def deleted_answer(response: httpx.Response) -> m.Deleted:
    if response.status_code == 202:
        raise ConflictPending(m.ConflictReport.model_validate(response.json()), response.headers)
    return m.Deleted.model_validate(response.json())


def markdown_answer(response: httpx.Response) -> m.MarkdownPackage:
    def number(name: str) -> Optional[int]:
        raw = response.headers.get(name)
        return int(raw) if raw and raw.isdigit() else None

    return m.MarkdownPackage(
        text=response.text,
        tokens=number("x-package-tokens"),
        revision=number("x-package-revision"),
        cache=response.headers.get("x-package-cache"),
    )


def package_answer(response: httpx.Response) -> m.Package:
    package = m.Package.model_validate(response.json())
    cache = response.headers.get("x-package-cache")
    if cache is not None:
        setattr(package, "cache", cache)
    return package


def check(response: httpx.Response) -> None:
    """Raises the mapped exception for an error answer."""
    if response.status_code >= 400:
        raise error_from_response(response.status_code, response.content, response.headers)


# --- settings ----------------------------------------------------------------


def token_agent(identity: Optional[m.Identity]) -> Optional[str]:
    """The agent an agent token belongs to; None for the admin token or when not known."""
    return identity.agent if identity is not None and not identity.admin else None


def resolve_settings(
    base_url: Optional[str], token: Optional[str], agent_id: Optional[str]
) -> tuple[str, Optional[str], Optional[str]]:
    url = base_url or os.environ.get("CTXMESH_URL") or DEFAULT_URL
    return (
        url.rstrip("/"),
        token if token is not None else (os.environ.get("CTXMESH_TOKEN") or None),
        agent_id if agent_id is not None else (os.environ.get("CTXMESH_AGENT") or None),
    )


def auth_headers(token: Optional[str], agent_id: Optional[str]) -> Dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if agent_id:
        headers["X-Agent-Id"] = agent_id
    return headers


def entry_meta(
    kind: Optional[str] = None,
    tags: Optional[Iterable[str]] = None,
    confidence: Optional[float] = None,
    priority: Optional[str] = None,
    depends_on: Optional[Iterable[str]] = None,
    relevance: Optional[Mapping[str, float]] = None,
    expires_at: Optional[Union[datetime, str]] = None,
    ttl_ms: Optional[int] = None,
    confidential: Optional[bool] = None,
    vclock: Optional[Mapping[str, int]] = None,
) -> Dict[str, Any]:
    """The metadata fields of an entry write that were given."""
    return compact(
        kind=kind,
        tags=list(tags) if tags is not None else None,
        confidence=confidence,
        priority=priority,
        depends_on=list(depends_on) if depends_on is not None else None,
        relevance=dict(relevance) if relevance is not None else None,
        expires_at=expires_at,
        ttl_ms=ttl_ms,
        confidential=confidential,
        vclock=dict(vclock) if vclock is not None else None,
    )


def carried_meta(entry: Optional[m.Entry]) -> Dict[str, Any]:
    """The metadata of ``entry`` to write again with a new value (a PUT replaces it all)."""
    if entry is None:
        return {}
    return entry_meta(
        kind=entry.kind,
        tags=entry.tags or None,
        confidence=entry.confidence,
        priority=entry.priority if entry.priority != "normal" else None,
        depends_on=entry.depends_on or None,
        relevance=entry.relevance or None,
        expires_at=entry.expires_at,
        confidential=entry.confidential or None,
    )


__all__ = ["Call", "UNSET", "DEFAULT_URL", "check"]
