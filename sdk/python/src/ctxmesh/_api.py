"""The wire layer shared by the sync and async clients.

Each API operation is described once, as a :class:`Call`: method, path,
query, body, headers, and how to read the answer. The clients only send
calls and raise the mapped exception on an error answer.
"""

from __future__ import annotations

import json
import logging
import math
import os
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import quote, urlsplit

import httpx

from . import models as m
from .errors import ConflictPending, error_from_response

T = TypeVar("T")

log = logging.getLogger("ctxmesh")

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
            content = dumps(self.body, "body")
            headers.setdefault("Content-Type", "application/json")
        elif content is not None and self.content_type:
            headers["Content-Type"] = self.content_type
        args: Dict[str, Any] = {"params": query(self.params), "headers": headers}
        if content is not None:
            args["content"] = content
        return args


# --- encoding ----------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # Only the SDK's own argument types (a datetime given as ``expires_at``,
    # a model passed back); a value is checked by ``check_json`` first.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, m.Model):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    raise TypeError(f"a {type(value).__name__} is not JSON")


def dumps(value: Any, name: str = "value") -> bytes:
    """JSON bytes of ``value`` (datetimes as RFC 3339, models as their JSON); nothing else is converted."""
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None


# --- checking arguments at the edge -------------------------------------------
#
# What the server would store differently from what the caller gave (a
# string split into letters, a set turned into a list, an integer key turned
# into a string) is refused here, before any request, naming the parameter.

_NOT_JSON_HINTS = {
    "set": "pass a list, e.g. sorted(...)",
    "frozenset": "pass a list, e.g. sorted(...)",
    "bytes": "decode it to a str (or base64-encode it)",
    "bytearray": "decode it to a str (or base64-encode it)",
    "datetime": "pass its .isoformat()",
    "date": "pass its .isoformat()",
    "Decimal": "pass a float or a str",
}


def check_json(value: Any, name: str) -> Any:
    """``value`` when it is JSON as given (dict with str keys, list, tuple, str, finite number, bool, None)."""
    _check_json(value, name, 0)
    return value


def _check_json(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}, which JSON cannot hold: pass a finite number or None")
        return
    if depth > 512:
        raise ValueError(f"{where} is nested more than 512 levels deep")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{where} has the {type(k).__name__} key {k!r}: JSON object keys are strings, "
                    f"convert it first (str({k!r}))"
                )
            _check_json(item, f"{where}[{k!r}]", depth + 1)
        return
    kind = type(value).__name__
    hint = _NOT_JSON_HINTS.get(kind, "pass dicts, lists, strings, numbers, booleans or None")
    raise TypeError(f"{where} holds a {kind}, which is not JSON: {hint}")


def str_list(value: Any, name: str) -> Optional[List[str]]:
    """A list of strings from a list or tuple of them (``None`` passes); a bare string is refused, not split."""
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{name} takes a list of strings, not a str: pass [{value!r}]")
    if not isinstance(value, (list, tuple)):
        hint = " (e.g. sorted(...))" if isinstance(value, (set, frozenset)) else ""
        raise TypeError(f"{name} takes a list of strings, not a {type(value).__name__}: pass a list{hint}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] is a {type(item).__name__}, not a str")
    return list(value)


def str_map(value: Any, name: str) -> Optional[Dict[str, str]]:
    """A mapping of strings to strings (``None`` passes)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} takes a mapping of strings to strings, not a {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{name} takes strings to strings: {k!r} -> a {type(v).__name__}")
    return dict(value)


def json_map(value: Any, name: str) -> Optional[Dict[str, Any]]:
    """A JSON object given as a mapping (``None`` passes)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} takes a mapping (a JSON object), not a {type(value).__name__}")
    return check_json(dict(value), name)  # type: ignore[no-any-return]


def number(value: Any, name: str) -> Any:
    """An int or float (``None`` passes; a bool is refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} takes a number, not a {type(value).__name__}")
    return check_json(value, name)


def integer(value: Any, name: str) -> Any:
    """An int (``None`` passes; a bool is refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int, not a {type(value).__name__}")
    return value


def _of_type(value: Any, name: str, kind: type) -> Any:
    """``value`` when it is a ``kind`` (``None`` passes), else a TypeError naming ``name``."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} takes a {kind.__name__}, not a {type(value).__name__}")
    return value


def string(value: Any, name: str) -> Any:
    """A str (``None`` passes)."""
    return _of_type(value, name, str)


def boolean(value: Any, name: str) -> Any:
    """A bool (``None`` passes)."""
    return _of_type(value, name, bool)


def timestamp(value: Any, name: str) -> Any:
    """A datetime or an RFC 3339 string (``None`` passes), as the string sent."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        raise TypeError(f"{name} takes a datetime or an RFC 3339 str, not a {type(value).__name__}")
    return value


def context_map(value: Any, name: str) -> Optional[Dict[str, Any]]:
    """An agent's ``needs`` / ``produces``: lists of strings under ``kinds``, ``tags``, ``keys``."""
    if value is None:
        return None
    if isinstance(value, m.Model):
        return value.model_dump(mode="json", exclude_none=True)
    out = json_map(value, name)
    assert out is not None
    for field_name in ("kinds", "tags", "keys"):
        if field_name in out:
            str_list(out[field_name], f"{name}[{field_name!r}]")
    if isinstance(out.get("exclude"), dict):
        context_map(out["exclude"], f"{name}['exclude']")
    return out


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


def given(**fields: Any) -> Dict[str, Any]:
    """The fields that were given (not ``None``/unset)."""
    return {k: v for k, v in fields.items() if v is not None and v is not UNSET}


def str_ops(value: Any, name: str) -> List[Any]:
    """A list of JSON objects (operations, comparisons, proposals) from a list or tuple."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} takes a list of objects, not a {type(value).__name__}")
    return [dict(item) if isinstance(item, Mapping) else item for item in value]


def capabilities_map(value: Any) -> Optional[Dict[str, Any]]:
    """An agent's ``capabilities``: ``supported_kinds`` and ``custom`` are lists of strings."""
    if isinstance(value, m.Model):
        return value.model_dump(mode="json", exclude_none=True)
    out = json_map(value, "capabilities")
    for field_name in ("supported_kinds", "custom"):
        if out is not None and field_name in out:
            str_list(out[field_name], f"capabilities[{field_name!r}]")
    return out


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
    url = (base_url or os.environ.get("CTXMESH_URL") or DEFAULT_URL).strip()
    if token is None:
        token = os.environ.get("CTXMESH_TOKEN") or None
        token = clean_token(token) if token and token.strip() else saved_token(url)
    else:
        token = clean_token(token)
    if agent_id is None:
        agent_id = (os.environ.get("CTXMESH_AGENT") or "").strip() or None
    return url.rstrip("/"), token, clean_agent_id(agent_id)


def credentials_path() -> Optional[Path]:
    """The per-user credentials file that ``ctxmesh login`` and ``ctxmesh serve`` write.

    ``$XDG_CONFIG_HOME/ctxmesh/credentials.json``, else
    ``~/.config/ctxmesh/credentials.json``; ``None`` when neither is known.
    """
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "ctxmesh" / "credentials.json"
    home = os.environ.get("HOME") or ""
    if not home:
        try:
            home = str(Path.home())
        except RuntimeError:
            return None
    return Path(home) / ".config" / "ctxmesh" / "credentials.json"


def server_key(url: str) -> Optional[tuple[str, str, int]]:
    """``(scheme, host, port)`` of a server's URL, the loopback names alike; ``None`` when it is no URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not parts.scheme or not host or port is None:
        return None
    if host in ("localhost", "127.0.0.1", "::1"):
        host = "loopback"
    return parts.scheme, host, port


def saved_token(url: str) -> Optional[str]:
    """The token saved for the server at ``url`` in the credentials file, if any.

    The file is ``{"servers": {"http://127.0.0.1:7600": {"token": "..."}}}``,
    keyed by ``scheme://host:port``; ``localhost``, ``127.0.0.1`` and
    ``[::1]`` name the same server. A file that cannot be read is skipped.
    """
    path = credentials_path()
    want = server_key(url)
    if path is None or want is None:
        return None
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.debug("ctxmesh: credentials file %s skipped: %s", path, type(e).__name__)
        return None
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return None
    for name, saved in servers.items():
        if isinstance(name, str) and server_key(name) == want and isinstance(saved, dict):
            value = saved.get("token")
            if isinstance(value, str) and value.strip():
                try:
                    return clean_token(value)
                except ValueError:
                    log.debug("ctxmesh: the token saved for %s in %s is malformed", name, path)
                    return None
    return None


def clean_token(token: Any) -> str:
    """A bearer token without the whitespace around it (a file's trailing newline, say).

    A token holding whitespace or a control character inside is refused;
    the message never quotes the token.
    """
    if not isinstance(token, str):
        raise TypeError(f"token takes a str, not a {type(token).__name__}")
    text: str = token.strip()
    if not text:
        raise ValueError("token is empty: pass the admin's or an agent's token, or leave it out")
    if any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in text):
        raise ValueError(
            "token holds whitespace, a control character or a non-ASCII character inside it "
            "(the token is not shown): pass the token alone, as the server printed it"
        )
    return text


def clean_agent_id(agent_id: Any) -> Optional[str]:
    if agent_id is None:
        return None
    if not isinstance(agent_id, str):
        raise TypeError(f"agent_id takes a str, not a {type(agent_id).__name__}")
    text: str = agent_id.strip()
    if not text or any(not ch.isprintable() or not ch.isascii() for ch in text):
        raise ValueError(f"agent_id {text!r} is not an agent id: letters, digits, '-', '_', '.'")
    return text


def redact(text: str, secret: Optional[str]) -> str:
    """``text`` with ``secret`` (and its ``Bearer`` header form) replaced."""
    if secret:
        text = text.replace(secret, "[token]")
    return text


def transport_failure(method: str, path: str, error: BaseException, token: Optional[str]) -> str:
    """The message of a :class:`~ctxmesh.TransportError` for ``error``, never quoting the token."""
    detail = redact(str(error), token)
    name = type(error).__name__
    message = f"{method} {path}: {name}: {detail}" if detail else f"{method} {path}: {name}"
    hint = certificate_refused(error)
    return f"{message}: {hint}" if hint else message


# OpenSSL's verification codes (X509_V_ERR_*) that say what to do.
_EXPIRED = {9, 10}  # not yet valid, expired
_WRONG_HOST = {62}  # hostname mismatch


def certificate_refused(error: BaseException) -> Optional[str]:
    """What to do when ``error`` (or one of its causes) is the server's certificate refused, else ``None``."""
    seen: List[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and current not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            code = current.verify_code
            if code in _WRONG_HOST:
                return "the server's certificate does not name this host: connect by a name the certificate lists"
            if code in _EXPIRED:
                return "the server's certificate is outside its validity period"
            return (
                "the server's certificate is not signed by a CA this client trusts: "
                "pass the CA's certificate as ca_file= (or set CTXMESH_CA_FILE)"
            )
        seen.append(current)
        current = current.__cause__ or current.__context__
    return None


def auth_headers(token: Optional[str], agent_id: Optional[str]) -> Dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if agent_id:
        headers["X-Agent-Id"] = agent_id
    return headers


def entry_meta(
    kind: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    confidence: Optional[float] = None,
    priority: Optional[str] = None,
    depends_on: Optional[Sequence[str]] = None,
    relevance: Optional[Mapping[str, float]] = None,
    expires_at: Optional[Union[datetime, str]] = None,
    ttl_ms: Optional[int] = None,
    confidential: Optional[bool] = None,
    vclock: Optional[Mapping[str, int]] = None,
) -> Dict[str, Any]:
    """The metadata fields of an entry write that were given, each checked for its type."""
    if relevance is not None:
        relevance = json_map(relevance, "relevance")
        for name, score in (relevance or {}).items():
            number(score, f"relevance[{name!r}]")
    if vclock is not None:
        vclock = json_map(vclock, "vclock")
        for name, count in (vclock or {}).items():
            integer(count, f"vclock[{name!r}]")
    return given(
        kind=string(kind, "kind"),
        tags=str_list(tags, "tags"),
        confidence=number(confidence, "confidence"),
        priority=string(priority, "priority"),
        depends_on=str_list(depends_on, "depends_on"),
        relevance=relevance,
        expires_at=timestamp(expires_at, "expires_at"),
        ttl_ms=integer(ttl_ms, "ttl_ms"),
        confidential=boolean(confidential, "confidential"),
        vclock=vclock,
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


# --- the requests ------------------------------------------------------------
#
# One builder per API operation, named as the clients' method and taking its
# arguments; the clients send what it returns. An operation whose agent
# defaults to the client's takes the agent resolved (see ``_plans``).


def request(
    method: str,
    path: str,
    *,
    params: Optional[Mapping[str, Any]] = None,
    json: Any = UNSET,
    headers: Optional[Mapping[str, str]] = None,
) -> Call[Any]:
    if json is not UNSET:
        check_json(json, "json")
    return Call(method, path, raw_json, params=dict(params or {}), body=json, headers=dict(headers or {}))


# --- watches (Server-Sent Events) ----------------------------------------------


def stream(path: str, params: Mapping[str, Any], after: Optional[int]) -> Call[None]:
    """The request of a watch's connection, resuming after position ``after`` (``None``: from now)."""
    params = dict(params)
    headers = {"Accept": "text/event-stream"}
    if after is not None:
        params["after"] = after
        headers["Last-Event-ID"] = str(after)
    return Call("GET", path, no_content, params=params, headers=headers)


def watch(
    ctx: str,
    after: Optional[int],
    *,
    types: Optional[Union[str, Sequence[str]]] = None,
    prefix: Optional[str] = None,
    min_priority: Optional[str] = None,
    order: Optional[str] = None,
) -> Call[None]:
    params = given(types=types, prefix=prefix, min_priority=min_priority, order=order)
    return stream(f"/v1/contexts/{seg(ctx)}/watch", params, after)


def watch_inbox(
    agent: str,
    after: Optional[int],
    *,
    types: Optional[Union[str, Sequence[str]]] = None,
    prefix: Optional[str] = None,
    min_priority: Optional[str] = None,
) -> Call[None]:
    params = given(types=types, prefix=prefix, min_priority=min_priority)
    return stream(f"/v1/agents/{seg(agent)}/inbox/watch", params, after)


def watch_agents(after: Optional[int]) -> Call[None]:
    return stream("/v1/agents/watch", {}, after)


# --- operations --------------------------------------------------------------


def healthz() -> Call[Dict[str, Any]]:
    return Call("GET", "/healthz", raw_json)


def readyz() -> Call[Dict[str, Any]]:
    return Call("GET", "/readyz", raw_json)


def openapi() -> Call[Dict[str, Any]]:
    return Call("GET", "/openapi.json", raw_json)


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda r: r.text)


# --- contexts ----------------------------------------------------------------


def create_context(
    id: str,
    *,
    policy: Optional[Mapping[str, Any]] = None,
    schemas: Optional[Mapping[str, Any]] = None,
    retention: Optional[Mapping[str, Any]] = None,
    labels: Optional[Mapping[str, str]] = None,
    mesh: Optional[Mapping[str, Any]] = None,
    parent: Optional[str] = None,
    inherit: Optional[Sequence[str]] = None,
    override: Optional[Mapping[str, Any]] = None,
    isolate: Optional[Sequence[str]] = None,
) -> Call[m.Context]:
    body = given(
        id=string(id, "id"),
        policy=json_map(policy, "policy"),
        schemas=json_map(schemas, "schemas"),
        retention=json_map(retention, "retention"),
        labels=str_map(labels, "labels"),
        mesh=json_map(mesh, "mesh"),
        parent=string(parent, "parent"),
        inherit=str_list(inherit, "inherit"),
        override=json_map(override, "override"),
        isolate=str_list(isolate, "isolate"),
    )
    return Call("POST", "/v1/contexts", model(m.Context), body=body)


def list_contexts(*, limit: Optional[int] = None, cursor: Optional[str] = None) -> Call[m.ContextPage]:
    params = {"limit": limit, "cursor": cursor}
    return Call("GET", "/v1/contexts", model(m.ContextPage), params=params)


def get_context(ctx: str) -> Call[m.Context]:
    return Call("GET", f"/v1/contexts/{seg(ctx)}", model(m.Context))


def update_context(
    ctx: str,
    *,
    policy: Optional[Mapping[str, Any]] = None,
    schemas: Optional[Mapping[str, Any]] = None,
    retention: Optional[Mapping[str, Any]] = None,
    labels: Optional[Mapping[str, str]] = None,
    mesh: Optional[Mapping[str, Any]] = None,
) -> Call[m.Context]:
    body = given(
        policy=json_map(policy, "policy"),
        schemas=json_map(schemas, "schemas"),
        retention=json_map(retention, "retention"),
        labels=str_map(labels, "labels"),
        mesh=json_map(mesh, "mesh"),
    )
    return Call("PATCH", f"/v1/contexts/{seg(ctx)}", model(m.Context), body=body)


def delete_context(ctx: str) -> Call[None]:
    return Call("DELETE", f"/v1/contexts/{seg(ctx)}", no_content)


def compact(ctx: str) -> Call[Any]:
    return Call("POST", f"/v1/contexts/{seg(ctx)}/compact", raw_json)


def put_context_map(
    ctx: str, agents: Mapping[str, Mapping[str, Any]], *, workflow: Optional[Sequence[str]] = None
) -> Call[m.ContextMapView]:
    body: Dict[str, Any] = {"agents": {agent: dict(spec) for agent, spec in agents.items()}}
    if workflow is not None:
        body["workflow"] = list(workflow)
    return Call("PUT", f"/v1/contexts/{seg(ctx)}/context-map", model(m.ContextMapView), body=body)


def get_context_map(ctx: str) -> Call[m.ContextMapView]:
    return Call("GET", f"/v1/contexts/{seg(ctx)}/context-map", model(m.ContextMapView))


# --- entries -----------------------------------------------------------------


def get(ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None) -> Call[m.Entry]:
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}"
    return Call("GET", path, model(m.Entry), params={"at": at, "as_of": as_of})


def put(
    ctx: str,
    key: str,
    value: Any,
    *,
    if_match: Optional[Union[int, str, m.Entry]] = None,
    if_none_match: bool = False,
    fencing: Optional[FenceLike] = None,
    kind: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    confidence: Optional[float] = None,
    priority: Optional[str] = None,
    depends_on: Optional[Sequence[str]] = None,
    relevance: Optional[Mapping[str, float]] = None,
    expires_at: Optional[Union[datetime, str]] = None,
    ttl_ms: Optional[int] = None,
    confidential: Optional[bool] = None,
    vclock: Optional[Mapping[str, int]] = None,
) -> Call[m.Entry]:
    body: Dict[str, Any] = {"value": check_json(value, "value")}
    body.update(
        entry_meta(
            kind=kind,
            tags=tags,
            confidence=confidence,
            priority=priority,
            depends_on=depends_on,
            relevance=relevance,
            expires_at=expires_at,
            ttl_ms=ttl_ms,
            confidential=confidential,
            vclock=vclock,
        )
    )
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}"
    headers = write_headers(if_match, if_none_match, fencing)
    return Call("PUT", path, entry_answer, body=body, headers=headers)


def create(ctx: str, key: str, value: Any, **meta: Any) -> Call[m.Entry]:
    return put(ctx, key, value, if_none_match=True, **meta)


def merge_patch(
    ctx: str,
    key: str,
    patch: Mapping[str, Any],
    *,
    if_match: Optional[Union[int, str, m.Entry]] = None,
    if_none_match: bool = False,
    fencing: Optional[FenceLike] = None,
) -> Call[m.Entry]:
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}"
    headers = write_headers(if_match, if_none_match, fencing)
    return Call(
        "PATCH",
        path,
        entry_answer,
        content=dumps(json_map(patch, "patch"), "patch"),
        content_type="application/merge-patch+json",
        headers=headers,
    )


def json_patch(
    ctx: str,
    key: str,
    operations: Sequence[Mapping[str, Any]],
    *,
    if_match: Optional[Union[int, str, m.Entry]] = None,
    if_none_match: bool = False,
    fencing: Optional[FenceLike] = None,
) -> Call[m.Entry]:
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}"
    headers = write_headers(if_match, if_none_match, fencing)
    return Call(
        "PATCH",
        path,
        entry_answer,
        content=dumps(check_json(str_ops(operations, "operations"), "operations"), "operations"),
        content_type="application/json-patch+json",
        headers=headers,
    )


def delete(
    ctx: str,
    key: str,
    *,
    if_match: Optional[Union[int, str, m.Entry]] = None,
    if_none_match: bool = False,
    fencing: Optional[FenceLike] = None,
) -> Call[m.Deleted]:
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}"
    headers = write_headers(if_match, if_none_match, fencing)
    return Call("DELETE", path, deleted_answer, headers=headers)


def list_page(
    ctx: str,
    *,
    prefix: Optional[str] = None,
    at: Optional[int] = None,
    as_of: Optional[Union[datetime, str]] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[m.EntryPage]:
    params = {"prefix": prefix, "at": at, "as_of": as_of, "limit": limit, "cursor": cursor}
    path = f"/v1/contexts/{seg(ctx)}/entries"
    return Call("GET", path, model(m.EntryPage), params=params)


def txn(
    ctx: str,
    *,
    compare: Optional[Sequence[Mapping[str, Any]]] = None,
    success: Optional[Sequence[Mapping[str, Any]]] = None,
    failure: Optional[Sequence[Mapping[str, Any]]] = None,
    fencing: Optional[FenceLike] = None,
) -> Call[m.TxnResult]:
    body = {
        "compare": check_json(str_ops(compare or [], "compare"), "compare"),
        "success": check_json(str_ops(success or [], "success"), "success"),
        "failure": check_json(str_ops(failure or [], "failure"), "failure"),
    }
    headers = write_headers(None, False, fencing)
    path = f"/v1/contexts/{seg(ctx)}/txn"
    return Call("POST", path, model(m.TxnResult), body=body, headers=headers)


def document(
    ctx: str, *, prefix: Optional[str] = None, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
) -> Call[m.Document]:
    params = {"prefix": prefix, "at": at, "as_of": as_of}
    return Call("GET", f"/v1/contexts/{seg(ctx)}/document", model(m.Document), params=params)


# --- history and events ------------------------------------------------------


def entry_history(
    ctx: str, key: str, *, before: Optional[int] = None, limit: Optional[int] = None
) -> Call[m.EntryHistory]:
    path = f"/v1/contexts/{seg(ctx)}/entries/{key_path(key)}/history"
    params = {"before": before, "limit": limit}
    return Call("GET", path, model(m.EntryHistory), params=params)


def history(ctx: str, *, before: Optional[int] = None, limit: Optional[int] = None) -> Call[m.CommitPage]:
    params = {"before": before, "limit": limit}
    return Call("GET", f"/v1/contexts/{seg(ctx)}/history", model(m.CommitPage), params=params)


def diff(ctx: str, from_revision: int, to: Optional[int] = None) -> Call[m.Diff]:
    params = {"from": from_revision, "to": to}
    return Call("GET", f"/v1/contexts/{seg(ctx)}/diff", model(m.Diff), params=params)


def rollback(ctx: str, to: int) -> Call[m.RollbackResult]:
    path = f"/v1/contexts/{seg(ctx)}/rollback"
    return Call("POST", path, model(m.RollbackResult), body={"to": to})


def fork(ctx: str, new_id: str, *, at: Optional[int] = None) -> Call[m.Context]:
    body = given(id=new_id, at=at)
    return Call("POST", f"/v1/contexts/{seg(ctx)}/fork", model(m.Context), body=body)


def events(
    ctx: str,
    *,
    after: int = 0,
    types: Optional[Union[str, Sequence[str]]] = None,
    prefix: Optional[str] = None,
    min_priority: Optional[str] = None,
    limit: Optional[int] = None,
) -> Call[m.EventPage]:
    params = {"after": after, "types": types, "prefix": prefix, "min_priority": min_priority, "limit": limit}
    return Call("GET", f"/v1/contexts/{seg(ctx)}/events", model(m.EventPage), params=params)


def send_message(
    body: Any,
    *,
    context: Optional[str] = None,
    agents: Optional[Sequence[str]] = None,
    priority: Optional[str] = None,
    topic: Optional[str] = None,
) -> Call[m.Event]:
    payload = given(
        context=string(context, "context"),
        agents=str_list(agents, "agents") or None,
        priority=string(priority, "priority"),
        topic=string(topic, "topic"),
    )
    payload["body"] = check_json(body, "body")
    return Call("POST", "/v1/messages", model(m.Event), body=payload)


# --- agents ------------------------------------------------------------------


def register_agent(
    id: str,
    *,
    name: Optional[str] = None,
    capabilities: Optional[Mapping[str, Any]] = None,
    needs: Optional[Mapping[str, Any]] = None,
    produces: Optional[Mapping[str, Any]] = None,
    objective: Optional[str] = None,
    token_budget: Optional[int] = None,
    trust: Optional[str] = None,
    lease_ms: Optional[int] = None,
    labels: Optional[Mapping[str, str]] = None,
) -> Call[m.RegisteredAgent]:
    body = given(
        id=string(id, "id"),
        name=string(name, "name"),
        capabilities=capabilities_map(capabilities),
        needs=context_map(needs, "needs"),
        produces=context_map(produces, "produces"),
        objective=string(objective, "objective"),
        token_budget=integer(token_budget, "token_budget"),
        trust=string(trust, "trust"),
        lease_ms=integer(lease_ms, "lease_ms"),
        labels=str_map(labels, "labels"),
    )
    return Call("POST", "/v1/agents", model(m.RegisteredAgent), body=body)


def list_agents(
    *,
    status: Optional[str] = None,
    capability: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[m.AgentPage]:
    params = {"status": status, "capability": capability, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/agents", model(m.AgentPage), params=params)


def get_agent(agent: str) -> Call[m.Agent]:
    return Call("GET", f"/v1/agents/{seg(agent)}", model(m.Agent))


def update_agent(
    agent: str,
    *,
    name: Optional[str] = None,
    capabilities: Optional[Mapping[str, Any]] = None,
    needs: Optional[Mapping[str, Any]] = None,
    produces: Optional[Mapping[str, Any]] = None,
    objective: Optional[str] = None,
    token_budget: Optional[int] = None,
    trust: Optional[str] = None,
    status: Optional[str] = None,
    lease_ms: Optional[int] = None,
    labels: Optional[Mapping[str, str]] = None,
) -> Call[m.Agent]:
    body = given(
        name=string(name, "name"),
        capabilities=capabilities_map(capabilities),
        needs=context_map(needs, "needs"),
        produces=context_map(produces, "produces"),
        objective=string(objective, "objective"),
        token_budget=integer(token_budget, "token_budget"),
        trust=string(trust, "trust"),
        status=string(status, "status"),
        lease_ms=integer(lease_ms, "lease_ms"),
        labels=str_map(labels, "labels"),
    )
    return Call("PATCH", f"/v1/agents/{seg(agent)}", model(m.Agent), body=body)


def delete_agent(agent: str) -> Call[None]:
    return Call("DELETE", f"/v1/agents/{seg(agent)}", no_content)


def whoami() -> Call[m.Identity]:
    return Call("GET", "/v1/whoami", model(m.Identity))


def heartbeat(agent: str) -> Call[m.Agent]:
    return Call("POST", f"/v1/agents/{seg(agent)}/heartbeat", model(m.Agent))


def rotate_token(agent: str) -> Call[m.NewToken]:
    return Call("POST", f"/v1/agents/{seg(agent)}/token", model(m.NewToken))


def revoke_token(agent: str) -> Call[None]:
    return Call("DELETE", f"/v1/agents/{seg(agent)}/token", no_content)


def inbox(agent: str, *, after: int = 0, limit: Optional[int] = None) -> Call[m.StreamPage]:
    path = f"/v1/agents/{seg(agent)}/inbox"
    return Call("GET", path, model(m.StreamPage), params={"after": after, "limit": limit})


def agent_events(*, after: int = 0, limit: Optional[int] = None) -> Call[m.StreamPage]:
    params = {"after": after, "limit": limit}
    return Call("GET", "/v1/agents/events", model(m.StreamPage), params=params)


# --- locks -------------------------------------------------------------------


def acquire_lock(ctx: str, name: str, *, ttl_ms: int = 30_000, wait_ms: int = 0) -> Call[m.Lock]:
    path = f"/v1/contexts/{seg(ctx)}/locks/{lock_path(name)}"
    body = {"ttl_ms": integer(ttl_ms, "ttl_ms"), "wait_ms": integer(wait_ms, "wait_ms")}
    return Call("POST", path, model(m.Lock), body=body)


def release_lock(ctx: str, name: str, *, lock_id: Optional[str] = None) -> Call[m.Lock]:
    path = f"/v1/contexts/{seg(ctx)}/locks/{lock_path(name)}"
    return Call("DELETE", path, model(m.Lock), params={"lock_id": lock_id})


def refresh_lock(ctx: str, name: str, *, ttl_ms: int = 30_000, lock_id: Optional[str] = None) -> Call[m.Lock]:
    path = f"/v1/contexts/{seg(ctx)}/locks/{lock_path(name)}/refresh"
    body = given(ttl_ms=integer(ttl_ms, "ttl_ms"), lock_id=lock_id)
    return Call("POST", path, model(m.Lock), body=body)


def get_lock(ctx: str, name: str) -> Call[m.Lock]:
    path = f"/v1/contexts/{seg(ctx)}/locks/{lock_path(name)}"
    return Call("GET", path, model(m.Lock))


def list_locks(ctx: str) -> Call[List[m.Lock]]:
    path = f"/v1/contexts/{seg(ctx)}/locks"
    return Call("GET", path, model_list(m.Lock, "locks"))


# --- handoffs ----------------------------------------------------------------


def request_handoff(
    target: str,
    context: str,
    *,
    revision: Optional[int] = None,
    keys: Optional[Sequence[str]] = None,
    package: Any = None,
    session: Optional[str] = None,
    user_intent: Optional[str] = None,
    conversation_history: Optional[Sequence[Any]] = None,
    extracted_entities: Optional[Mapping[str, Any]] = None,
    deadline_ms: Optional[int] = None,
    note: Optional[str] = None,
) -> Call[m.Handoff]:
    if conversation_history is not None and not isinstance(conversation_history, (list, tuple)):
        raise TypeError(f"conversation_history takes a list, not a {type(conversation_history).__name__}")
    body = given(
        target=string(target, "target"),
        context=string(context, "context"),
        revision=integer(revision, "revision"),
        keys=str_list(keys, "keys"),
        package=package if isinstance(package, m.Model) else check_json(package, "package"),
        session=string(session, "session"),
        user_intent=string(user_intent, "user_intent"),
        conversation_history=check_json(list(conversation_history), "conversation_history")
        if conversation_history is not None
        else None,
        extracted_entities=json_map(extracted_entities, "extracted_entities"),
        deadline_ms=integer(deadline_ms, "deadline_ms"),
        note=string(note, "note"),
    )
    return Call("POST", "/v1/handoffs", model(m.Handoff), body=body)


def get_handoff(id: str) -> Call[m.Handoff]:
    return Call("GET", f"/v1/handoffs/{seg(id)}", model(m.Handoff))


def list_handoffs(
    *,
    context: Optional[str] = None,
    agent: Optional[str] = None,
    status: Optional[str] = None,
    state: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[m.HandoffPage]:
    params = {"context": context, "agent": agent, "status": status or state, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/handoffs", model(m.HandoffPage), params=params)


def handoff_step(id: str, action: str, outcome: Any) -> Call[m.Handoff]:
    body = {} if outcome is UNSET else {"outcome": check_json(outcome, "outcome")}
    return Call("POST", f"/v1/handoffs/{seg(id)}/{action}", model(m.Handoff), body=body)


def accept_handoff(id: str, outcome: Any = UNSET) -> Call[m.Handoff]:
    return handoff_step(id, "accept", outcome)


def reject_handoff(id: str, outcome: Any = UNSET) -> Call[m.Handoff]:
    return handoff_step(id, "reject", outcome)


def complete_handoff(id: str, outcome: Any = UNSET) -> Call[m.Handoff]:
    return handoff_step(id, "complete", outcome)


def handoff_package(id: str, *, budget: Optional[int] = None) -> Call[m.Package]:
    params = {"budget": integer(budget, "budget")}
    return Call("GET", f"/v1/handoffs/{seg(id)}/package", package_answer, params=params)


# --- tasks -------------------------------------------------------------------


def assign_task(
    ctx: str, assignee: str, title: str, *, input: Any = None, priority: Optional[str] = None
) -> Call[m.Task]:
    body = given(
        assignee=string(assignee, "assignee"),
        title=string(title, "title"),
        input=check_json(input, "input"),
        priority=string(priority, "priority"),
    )
    return Call("POST", f"/v1/contexts/{seg(ctx)}/tasks", model(m.Task), body=body)


def list_tasks(
    *,
    context: Optional[str] = None,
    agent: Optional[str] = None,
    status: Optional[str] = None,
    state: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[m.TaskPage]:
    params = {"context": context, "agent": agent, "status": status or state, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/tasks", model(m.TaskPage), params=params)


def list_context_tasks(
    ctx: str,
    *,
    agent: Optional[str] = None,
    status: Optional[str] = None,
    state: Optional[str] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[m.TaskPage]:
    params = {"agent": agent, "status": status or state, "limit": limit, "cursor": cursor}
    path = f"/v1/contexts/{seg(ctx)}/tasks"
    return Call("GET", path, model(m.TaskPage), params=params)


def get_task(id: str) -> Call[m.Task]:
    return Call("GET", f"/v1/tasks/{seg(id)}", model(m.Task))


def complete_task(id: str, output: Any = UNSET) -> Call[m.Task]:
    body = {} if output is UNSET else {"output": check_json(output, "output")}
    return Call("POST", f"/v1/tasks/{seg(id)}/complete", model(m.Task), body=body)


# --- access control ----------------------------------------------------------


def grant(
    ctx: str,
    agents: Union[str, Sequence[str]],
    permissions: Sequence[str] = ("read",),
    *,
    expires_at: Optional[Union[datetime, str]] = None,
) -> Call[List[m.Grant]]:
    body = given(
        agents=[agents] if isinstance(agents, str) else str_list(agents, "agents"),
        permissions=str_list(permissions, "permissions"),
        expires_at=timestamp(expires_at, "expires_at"),
    )
    path = f"/v1/contexts/{seg(ctx)}/grants"
    return Call("POST", path, model_list(m.Grant, "grants"), body=body)


def list_grants(ctx: str) -> Call[List[m.Grant]]:
    return Call("GET", f"/v1/contexts/{seg(ctx)}/grants", model_list(m.Grant, "grants"))


def revoke(ctx: str, agent: str) -> Call[None]:
    path = f"/v1/contexts/{seg(ctx)}/grants"
    return Call("DELETE", path, no_content, params={"agent": agent})


def shared(agent: str) -> Call[List[m.Grant]]:
    return Call("GET", f"/v1/agents/{seg(agent)}/shared", model_list(m.Grant, "grants"))


def add_policy(
    id: str,
    effect: str,
    *,
    contexts: Optional[str] = None,
    agents: Optional[str] = None,
    min_trust: Optional[str] = None,
    max_trust: Optional[str] = None,
    permissions: Optional[Sequence[str]] = None,
    keys: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    description: Optional[str] = None,
) -> Call[List[m.PolicyRule]]:
    body = given(
        id=id,
        effect=effect,
        contexts=contexts,
        agents=agents,
        min_trust=min_trust,
        max_trust=max_trust,
        permissions=str_list(permissions, "permissions"),
        keys=keys,
        tags=str_list(tags, "tags"),
        description=description,
    )
    return Call("POST", "/v1/policies", model_list(m.PolicyRule, "policies"), body=body)


def list_policies() -> Call[List[m.PolicyRule]]:
    return Call("GET", "/v1/policies", model_list(m.PolicyRule, "policies"))


def delete_policy(id: str) -> Call[None]:
    return Call("DELETE", f"/v1/policies/{seg(id)}", no_content)


def audit(
    *,
    agent: Optional[str] = None,
    context: Optional[str] = None,
    allowed: Optional[bool] = None,
    since: Optional[Union[datetime, str]] = None,
    after: Optional[int] = None,
    limit: Optional[int] = None,
) -> Call[m.AuditPage]:
    params = {
        "agent": agent,
        "context": context,
        "allowed": allowed,
        "since": since,
        "after": after,
        "limit": limit,
    }
    return Call("GET", "/v1/audit", model(m.AuditPage), params=params)


# --- conflicts ---------------------------------------------------------------


def list_conflicts(
    ctx: str, *, status: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None
) -> Call[m.ConflictPage]:
    params = {"status": status, "limit": limit, "cursor": cursor}
    path = f"/v1/contexts/{seg(ctx)}/conflicts"
    return Call("GET", path, model(m.ConflictPage), params=params)


def get_conflict(ctx: str, id: str) -> Call[m.Conflict]:
    path = f"/v1/contexts/{seg(ctx)}/conflicts/{seg(id)}"
    return Call("GET", path, model(m.Conflict))


def resolve_conflict(
    ctx: str, id: str, *, choose: Optional[str] = None, value: Any = UNSET, if_match: Optional[int] = None
) -> Call[m.Conflict]:
    body: Dict[str, Any] = given(choose=string(choose, "choose"), if_match=integer(if_match, "if_match"))
    if value is not UNSET:
        body["value"] = check_json(value, "value")
    path = f"/v1/contexts/{seg(ctx)}/conflicts/{seg(id)}/resolve"
    return Call("POST", path, model(m.Conflict), body=body)


# --- the context mesh --------------------------------------------------------


def package(
    ctx: str,
    agent: Optional[str] = None,
    *,
    budget: Optional[int] = None,
    encoding: Optional[str] = None,
    explain: Optional[bool] = None,
    compress: Optional[bool] = None,
    at: Optional[int] = None,
) -> Call[m.Package]:
    params = {
        "agent": agent,
        "budget": budget,
        "format": "json",
        "encoding": encoding,
        "explain": explain,
        "compress": compress,
        "at": at,
    }
    path = f"/v1/contexts/{seg(ctx)}/package"
    return Call("GET", path, package_answer, params=params)


def package_markdown(
    ctx: str,
    agent: Optional[str] = None,
    *,
    budget: Optional[int] = None,
    encoding: Optional[str] = None,
    compress: Optional[bool] = None,
    at: Optional[int] = None,
) -> Call[m.MarkdownPackage]:
    params = {
        "agent": agent,
        "budget": budget,
        "format": "markdown",
        "encoding": encoding,
        "compress": compress,
        "at": at,
    }
    path = f"/v1/contexts/{seg(ctx)}/package"
    return Call("GET", path, markdown_answer, params=params)


def search(
    ctx: str,
    q: str,
    *,
    mode: Optional[str] = None,
    limit: Optional[int] = None,
    kind: Optional[str] = None,
    tags: Optional[Union[str, Sequence[str]]] = None,
    author: Optional[str] = None,
    since: Optional[Union[datetime, str]] = None,
    until: Optional[Union[datetime, str]] = None,
) -> Call[m.SearchResult]:
    params = {
        "q": q,
        "mode": mode,
        "limit": limit,
        "kind": kind,
        "tags": tags,
        "author": author,
        "since": since,
        "until": until,
    }
    path = f"/v1/contexts/{seg(ctx)}/search"
    return Call("GET", path, model(m.SearchResult), params=params)


def consensus(
    ctx: str, key: str, proposals: Sequence[Mapping[str, Any]], *, min_agreement: Optional[float] = None
) -> Call[m.ConsensusOutcome]:
    body = given(
        key=string(key, "key"),
        proposals=check_json(str_ops(proposals, "proposals"), "proposals"),
        min_agreement=number(min_agreement, "min_agreement"),
    )
    path = f"/v1/contexts/{seg(ctx)}/consensus"
    return Call("POST", path, model(m.ConsensusOutcome), body=body)


def record_decision(
    ctx: str, decision: Any, read_revision: int, *, key: Optional[str] = None
) -> Call[m.DecisionRecord]:
    body = given(read_revision=integer(read_revision, "read_revision"), key=string(key, "key"))
    body["decision"] = check_json(decision, "decision")
    path = f"/v1/contexts/{seg(ctx)}/decisions"
    return Call("POST", path, model(m.DecisionRecord), body=body)


__all__ = ["Call", "UNSET", "DEFAULT_URL", "check"]
