"""Failures of the fuzz pass that are not the API's fault, each with why.

scripts/fuzz-api runs schemathesis with every conformance check; this
module is its `SCHEMATHESIS_HOOKS`. A `filter_failure` hook drops a
failure only when it matches one of the rules below, all of which are the
same kind: a request that is valid by the OpenAPI document, refused for a
reason the document states in words because OpenAPI cannot state it as a
schema (two parameters that exclude each other, an order between two
values, a value the server issued, the server's state or configuration).
Each rule names the check (its schemathesis code), the operation, and the
exact error the server must have answered (status, code and field), so
that any other refusal still fails the run. The run prints how many
failures these rules dropped. docs/fuzzing.md lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

import schemathesis

VALID_REFUSED = "ST202"  # positive_data_acceptance: a schema-valid request was refused


def _error(response: Any) -> dict:
    try:
        body = json.loads(response.content or b"")
    except (TypeError, ValueError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _headers(case: Any) -> dict:
    return {str(k).lower(): v for k, v in (case.headers or {}).items()}


def _query(case: Any) -> dict:
    return dict(case.query or {})


@dataclass(frozen=True)
class Rule:
    why: str
    failure: str
    operations: tuple  # operation labels, e.g. "GET /v1/contexts/{ctx}/diff"; empty: any
    status: int
    code: str
    field: Optional[str]
    request: Callable[[Any], bool]
    message: str = ""

    def matches(self, failure: Any, case: Any, response: Any) -> bool:
        if failure.code != self.failure or response.status_code != self.status:
            return False
        if self.operations and case.operation.label not in self.operations:
            return False
        error = _error(response)
        if error.get("code") != self.code:
            return False
        if self.field is not None and (error.get("details") or {}).get("field") != self.field:
            return False
        if self.message and self.message not in str(error.get("message", "")):
            return False
        return self.request(case)


READS_AT = ("GET /v1/contexts/{ctx}/entries", "GET /v1/contexts/{ctx}/entries/{key}", "GET /v1/contexts/{ctx}/document")
LISTS = (
    "GET /v1/agents",
    "GET /v1/contexts",
    "GET /v1/contexts/{ctx}/conflicts",
    "GET /v1/contexts/{ctx}/entries",
    "GET /v1/contexts/{ctx}/tasks",
    "GET /v1/handoffs",
    "GET /v1/tasks",
)
ENTRY_WRITES = (
    "PUT /v1/contexts/{ctx}/entries/{key}",
    "PATCH /v1/contexts/{ctx}/entries/{key}",
    "DELETE /v1/contexts/{ctx}/entries/{key}",
)

RULES = [
    Rule(
        why="`at` and `as_of` both pin the revision read: give one (OpenAPI cannot say that two parameters exclude each other)",
        failure=VALID_REFUSED, operations=READS_AT, status=400, code="invalid_argument", field="at",
        request=lambda case: "at" in _query(case) and "as_of" in _query(case),
    ),
    Rule(
        why="a `cursor` already pins the revision of the listing, so `at`/`as_of` cannot come with it",
        failure=VALID_REFUSED, operations=("GET /v1/contexts/{ctx}/entries",), status=400, code="invalid_argument",
        field="cursor", request=lambda case: "cursor" in _query(case) and ("at" in _query(case) or "as_of" in _query(case)),
    ),
    Rule(
        why="a cursor is opaque: only the `next_cursor` of an earlier page is one (the SDK tests page through real cursors)",
        failure=VALID_REFUSED, operations=LISTS, status=400, code="invalid_argument", field="cursor",
        request=lambda case: "cursor" in _query(case),
    ),
    Rule(
        why="a diff runs from an earlier revision to a later one: `from` must not exceed `to` (an order between two parameters)",
        failure=VALID_REFUSED, operations=("GET /v1/contexts/{ctx}/diff",), status=400, code="invalid_argument",
        field="from", request=lambda case: "from" in _query(case),
    ),
    Rule(
        why="`If-Match` and `If-None-Match` are two preconditions of which a write takes one",
        failure=VALID_REFUSED, operations=ENTRY_WRITES, status=400, code="invalid_argument", field="if-match",
        request=lambda case: "if-match" in _headers(case) and "if-none-match" in _headers(case),
    ),
    Rule(
        why="semantic and hybrid search need an embedding model, which the fuzzed server has not (the semantic search tests run one)",
        failure=VALID_REFUSED, operations=("GET /v1/contexts/{ctx}/search",), status=400, code="invalid_argument",
        field="mode", request=lambda case: _query(case).get("mode") in ("semantic", "hybrid"),
    ),
    Rule(
        why="JSON Schema's `integer` admits 5.0; the API reads integers written as integers and says so",
        failure=VALID_REFUSED, operations=(), status=400, code="invalid_argument", field=None,
        request=lambda case: True, message="got a number",
    ),
    Rule(
        why="the same, where the body's field is read by its type directly: 5.0 is not an unsigned integer to it",
        failure=VALID_REFUSED, operations=(), status=400, code="invalid_argument", field=None,
        request=lambda case: True, message="invalid type: floating point",
    ),
    Rule(
        why="an empty `X-Fencing-Token` is a malformed token, refused so that a client that built it wrong learns it; "
        "the generator sends an empty value for an optional header it means to leave out",
        failure=VALID_REFUSED, operations=(*ENTRY_WRITES, "POST /v1/contexts/{ctx}/txn"), status=400,
        code="invalid_argument", field="X-Fencing-Token",
        request=lambda case: _headers(case).get("x-fencing-token") == "",
    ),
    Rule(
        why="a fencing token must be one the lock has issued: a bound set by the lock's state",
        failure=VALID_REFUSED, operations=(*ENTRY_WRITES, "POST /v1/contexts/{ctx}/txn"), status=400,
        code="invalid_argument", field="X-Fencing-Token", request=lambda case: True, message="was never issued",
    ),
    Rule(
        why="a write's precondition is checked against the entry as it is (changed since, or absent): "
        "`412` is the answer the API documents for a valid write whose precondition the state no longer meets",
        failure=VALID_REFUSED, operations=(*ENTRY_WRITES, "POST /v1/contexts/{ctx}/conflicts/{id}/resolve"), status=412,
        code="precondition_failed", field=None, request=lambda case: True,
    ),
    Rule(
        why="a JSON Patch applies to the entry's value as it is: a path that is not there, or a `test` that fails, "
        "refuses it whole (`invalid_patch`), which depends on the value",
        failure=VALID_REFUSED, operations=("PATCH /v1/contexts/{ctx}/entries/{key}", "POST /v1/contexts/{ctx}/txn"),
        status=400, code="invalid_patch", field=None,
        request=lambda case: "json-patch" in str(case.media_type or "") or case.operation.label.endswith("/txn"),
    ),
    Rule(
        why="the same for an empty `If-Match`: no entity tag at all is not `*`, and is refused rather than read as absent",
        failure=VALID_REFUSED, operations=ENTRY_WRITES, status=400, code="invalid_argument", field="if-match",
        request=lambda case: _headers(case).get("if-match") == "",
    ),
    Rule(
        why="a context map's `workflow` lists each agent of its `agents` once: a bound between two fields of the body",
        failure=VALID_REFUSED, operations=("PUT /v1/contexts/{ctx}/context-map",), status=400,
        code="invalid_argument", field="workflow",
        request=lambda case: isinstance(case.body, dict) and case.body.get("workflow") is not None,
    ),
    Rule(
        why="a grant's `expires_at` must lie in the future: a bound set by the clock",
        failure=VALID_REFUSED, operations=("POST /v1/contexts/{ctx}/grants",), status=400, code="invalid_argument",
        field="expires_at", request=lambda case: True,
    ),
    Rule(
        why="an agent cannot hand a task off to itself: the target must differ from the caller, a relation to who asks",
        failure=VALID_REFUSED, operations=("POST /v1/handoffs",), status=400, code="invalid_argument", field="target",
        request=lambda case: True, message="to itself",
    ),
    Rule(
        why="`ttl_ms` and `expires_at` both set the expiry: give one (two fields that exclude each other)",
        failure=VALID_REFUSED, operations=("PUT /v1/contexts/{ctx}/entries/{key}", "POST /v1/contexts/{ctx}/txn"),
        status=400, code="invalid_argument", field="ttl_ms", request=lambda case: True, message="not both",
    ),
    Rule(
        why="a consensus needs some confidence in all: the proposals' confidences must not all be 0 (a bound on their sum)",
        failure=VALID_REFUSED, operations=("POST /v1/contexts/{ctx}/consensus",), status=400, code="invalid_argument",
        field="confidence", request=lambda case: True, message="every proposal has confidence 0",
    ),
    Rule(
        why="a handoff's `revision` must be one the context has reached: a bound set by the context's state",
        failure=VALID_REFUSED, operations=("POST /v1/handoffs",), status=400, code="invalid_argument",
        field="revision", request=lambda case: True, message="the context is at revision",
    ),
    Rule(
        why="the relevance weights must not all be 0 (a bound on their sum; each is at least 0 in the schema)",
        failure=VALID_REFUSED, operations=("POST /v1/contexts", "PATCH /v1/contexts/{ctx}"), status=400,
        code="invalid_argument", field="mesh.weights", request=lambda case: True, message="not all zero",
    ),
    Rule(
        why="`inherit`, `override` and `isolate` are about a parent: given (non-empty) without `parent`, they are refused "
        "(fields that go together)",
        failure=VALID_REFUSED, operations=("POST /v1/contexts",), status=400, code="invalid_argument", field="parent",
        request=lambda case: isinstance(case.body, dict) and not case.body.get("parent"), message="need a parent",
    ),
    Rule(
        why="a package is for an agent: the admin acts as none, so it names one with `agent` or `X-Agent-Id` "
        "(an agent's own token names it); a relation to who asks",
        failure=VALID_REFUSED, operations=("GET /v1/contexts/{ctx}/package",), status=400, code="invalid_argument",
        field="agent", request=lambda case: "agent" not in _query(case) and "x-agent-id" not in _headers(case),
    ),
    Rule(
        why="a revision before a context's compaction point is gone (`410 compacted`): whether it still is depends on the "
        "context's retention policy and on when the background compaction last ran, a bound set by the state and the clock",
        failure=VALID_REFUSED, operations=(), status=410, code="compacted", field=None, request=lambda case: True,
    ),
    Rule(
        why="a decision's `read_revision` must be one the context has reached: a bound set by the context's state",
        failure=VALID_REFUSED, operations=("POST /v1/contexts/{ctx}/decisions",), status=400, code="invalid_argument",
        field="read_revision", request=lambda case: True,
    ),
]


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keeps every failure but those a rule above accepts."""
    return not any(rule.matches(failure, case, response) for rule in RULES)
