"""The sequential specification of one context, as the checker reads it.

A context is a map key → (value id, revision, expiry), plus the highest
revision any write linearized so far committed: every write that commits
takes a revision above every write before it (revisions are the context's
total order), and a read at revision R sees every write up to R. Values are
objects `{"w": "<value id>"}` with a value id unique per write, so that a
read names the write it sees.

What the model accepts, per kind of operation (outputs as `traffic.py`
normalises them):

- `get`: the entry as the state has it (value id and revision), or absent;
- `list`: every live entry exactly, read at a revision at or above every
  write linearized before it;
- `put` (blind, `If-Match: "R"`, or `If-None-Match: *`), `patch_merge`
  (`If-Match`), `patch_json` (a `test` of the value id, then `replace`),
  `delete` (`If-Match`), `fenced_put`: applied exactly when the
  precondition holds, with a fresh revision; refused (412 with the current
  entry, 404, a failed `test`) exactly when it does not;
- `txn`: comparisons of several keys' revisions; the success branch's
  writes all at one revision, or the failure branch's reads of the state;
- `storage_full` refusals change nothing.

An entry with a TTL is live until its expiry: an operation whose interval
straddles the expiry may see it either way.
"""

from __future__ import annotations

import bisect
from typing import Any, Optional

from .history import Op

# Entry: (value id, revision, expiry as a UNIX time or None).
Entry = tuple[str, int, Optional[float]]
# State: (highest committed revision, sorted ((key, entry), ...)).
State = tuple[int, tuple[tuple[str, Entry], ...]]

# Clock slack around an expiry, in seconds (the server's clock and the
# runner's are the same machine's; this covers rounding to milliseconds).
SLACK = 0.05


def _get(entries: tuple[tuple[str, Entry], ...], key: str) -> Entry | None:
    for k, e in entries:
        if k == key:
            return e
    return None


def _set(entries: tuple[tuple[str, Entry], ...], key: str, entry: Entry | None) -> tuple[tuple[str, Entry], ...]:
    rest = [(k, e) for k, e in entries if k != key]
    if entry is not None:
        rest.append((key, entry))
        rest.sort()
    return tuple(rest)


def liveness(entry: Entry | None, op: Op) -> set[bool]:
    """Whether `entry` can be live when `op` takes effect."""
    if entry is None:
        return {False}
    expires = entry[2]
    if expires is None:
        return {True}
    seen: set[bool] = set()
    if op.wall < expires + SLACK:
        seen.add(True)
    end = op.wall_ret if op.wall_ret is not None else float("inf")
    if end >= expires - SLACK:
        seen.add(False)
    return seen


def _matches(entry: Entry | None, shown: Any) -> bool:
    """Whether an answer's entry (`[value id, revision]` or None) is `entry`."""
    if shown is None:
        return entry is None
    return entry is not None and entry[0] == shown[0] and entry[1] == shown[1]


class ContextModel:
    """The model of one context for `lin.check`.

    `revisions` are the revisions of every write of the history known to
    have committed. Writes commit in revision order, so a write may be
    linearized only when every write with a lower revision already is: the
    next one must take exactly the next of these revisions. (Only `> the
    last` would be as sound, but would let the search try every subset of
    concurrent writes before it finds that a skipped one can never come.)
    """

    def __init__(self, revisions: list[int] | None = None) -> None:
        self.revisions = sorted(revisions or [])

    def _next_revision_is(self, state: State, rev: int) -> bool:
        if rev <= state[0]:
            return False
        if not self.revisions:
            return True
        i = bisect.bisect_right(self.revisions, state[0])
        return i < len(self.revisions) and self.revisions[i] == rev

    def init(self) -> State:
        return (0, ())

    def step(self, state: State, op: Op) -> tuple[bool, State]:
        handler = getattr(self, "_" + op.kind)
        return handler(state, op, op.out)

    # Reads.

    def _get(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        entry = _get(state[1], op.inp["key"])
        live = liveness(entry, op)
        if out["found"]:
            return (True in live and _matches(entry, [out["vid"], out["rev"]])), state
        return False in live, state

    def _list(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        if out["revision"] < state[0]:
            return False, state
        shown = out["entries"]
        for key, entry in state[1]:
            live = liveness(entry, op)
            if key in shown:
                if True not in live or not _matches(entry, shown[key]):
                    return False, state
            elif False not in live:
                return False, state
        for key in shown:
            if _get(state[1], key) is None:
                return False, state
        return True, state

    # Writes of one key.

    def _refused(self, state: State, op: Op, out: dict[str, Any], holds: set[bool]) -> tuple[bool, State]:
        """A write that changed nothing: legal when its precondition can
        fail here and what it reported is the state."""
        status = out["status"]
        if status == "full":
            return True, state
        entry = _get(state[1], op.inp["key"])
        live = liveness(entry, op)
        if status == "precondition":
            if False not in holds:
                return False, state
            current = out.get("current")
            if current is None:
                return False in live, state
            return (True in live and _matches(entry, current)), state
        if status == "missing":
            return False in live, state
        if status == "test_failed":
            return (True in live and entry is not None and entry[0] != op.inp["test"]), state
        if status == "fenced":
            return True, state
        return False, state

    def _applied(self, state: State, key: str, out: dict[str, Any], entry: Entry | None) -> tuple[bool, State]:
        rev = out["rev"]
        if not self._next_revision_is(state, rev):
            return False, state
        return True, (rev, _set(state[1], key, entry))

    def _precondition(self, state: State, op: Op) -> set[bool]:
        """Whether a write's precondition can hold here."""
        entry = _get(state[1], op.inp["key"])
        live = liveness(entry, op)
        cond = op.inp.get("if")
        if cond is None:
            return {True}
        if cond == "absent":
            return {not alive for alive in live}
        # If-Match: "R"
        return {alive and entry is not None and entry[1] == cond for alive in live}

    def _put(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        holds = self._precondition(state, op)
        if out["status"] != "ok":
            return self._refused(state, op, out, holds)
        if True not in holds:
            return False, state
        created = out.get("created")
        if created is not None:
            live = liveness(_get(state[1], op.inp["key"]), op)
            if (not created) not in live:
                return False, state
        return self._applied(state, op.inp["key"], out, (op.inp["vid"], out["rev"], out.get("exp")))

    def _fenced_put(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        # Whether the token is current is checked against the event log
        # (checks.check_fencing); here a refusal changes nothing and a
        # success is a blind write.
        return self._put(state, op, out)

    def _patch_merge(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        holds = self._precondition(state, op)
        if out["status"] != "ok":
            if out["status"] == "precondition" and out.get("current") is None:
                # A PATCH of a missing entry: 404 or 412, either is a refusal.
                return (False in liveness(_get(state[1], op.inp["key"]), op)), state
            return self._refused(state, op, out, holds)
        if True not in holds:
            return False, state
        before = _get(state[1], op.inp["key"])
        assert before is not None
        return self._applied(state, op.inp["key"], out, (op.inp["vid"], out["rev"], before[2]))

    def _patch_json(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        entry = _get(state[1], op.inp["key"])
        live = liveness(entry, op)
        holds = {alive and entry is not None and entry[0] == op.inp["test"] for alive in live}
        if out["status"] != "ok":
            return self._refused(state, op, out, holds)
        if True not in holds:
            return False, state
        assert entry is not None
        return self._applied(state, op.inp["key"], out, (op.inp["vid"], out["rev"], entry[2]))

    def _delete(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        holds = self._precondition(state, op)
        if out["status"] != "ok":
            return self._refused(state, op, out, holds)
        if True not in holds or True not in liveness(_get(state[1], op.inp["key"]), op):
            return False, state
        return self._applied(state, op.inp["key"], out, None)

    # Transactions over several keys (keys without a TTL).

    def _txn(self, state: State, op: Op, out: dict[str, Any]) -> tuple[bool, State]:
        entries = state[1]
        holds = all(
            ((_get(entries, key) or ("", 0, None))[1] == rev) for key, rev in op.inp["compare"]
        )
        if out.get("status") == "full":
            return True, state
        if out["succeeded"]:
            if not holds or not self._next_revision_is(state, out["rev"]):
                return False, state
            for key, vid in op.inp["puts"]:
                entries = _set(entries, key, (vid, out["rev"], None))
            return True, (out["rev"], entries)
        if holds or out["rev"] < state[0]:
            return False, state
        for key, shown in out["gets"].items():
            if not _matches(_get(entries, key), shown):
                return False, state
        return True, state
