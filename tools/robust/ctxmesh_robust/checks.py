"""The checkers: a recorded run against the durable event log, and against
the model of `model.py`.

Each check returns violations, as sentences. A run passes when there are
none. What is checked (docs/robustness.md, "What is checked"):

- the event log has every revision from 1 to the current one, each
  revision's events together (`check_log`);
- no acknowledged write is lost: every write a client heard "done" for is
  in the log at the revision it was told, with its value; no refused write
  took effect; nothing is in the log that no client wrote; no write took
  effect twice; a transaction's writes are all at one revision (`check_log`);
- writes and reads of each context are linearizable (`check_linearizable`,
  after `patch_unknown` has settled what it can of the operations whose
  outcome was unknown, from the log, as etcd's robustness tests do);
- a read `?at=R` answers exactly the state the log implies at R
  (`check_reads_at`), and the state at the end is the log's (`check_final`);
- a write fenced by a lock token succeeds only while no newer token of the
  lock was issued, and is refused once one was (`check_fencing`);
- every watch connection delivers the log's events ordered, unique, atomic,
  reliable and resumable, and each bookmark means what it says
  (`check_watch`).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import lin
from .history import Op, WatchConnection
from .model import ContextModel

WRITES = {"put", "patch_merge", "patch_json", "fenced_put", "delete", "txn"}


def _vid(event: dict[str, Any]) -> str | None:
    value = (event.get("data") or {}).get("value")
    if isinstance(value, dict) and isinstance(value.get("w"), str):
        return value["w"]
    return None


@dataclass
class Log:
    """The durable event log of one context, indexed."""

    ctx: str
    events: list[dict[str, Any]]
    # revision -> events of that revision, in log order
    groups: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    revisions: list[int] = field(default_factory=list)
    # value id -> [(revision, key, change)]
    by_vid: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    # key -> sorted [(revision, value id or None when removed)]
    by_key: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for event in self.events:
            rev = event["revision"]
            if rev not in self.groups:
                self.groups[rev] = []
                self.revisions.append(rev)
            self.groups[rev].append(event)
            if event.get("type") != "context.updated" or "key" not in event:
                continue
            change = (event.get("data") or {}).get("change")
            vid = _vid(event)
            key = event["key"]
            if vid is not None:
                self.by_vid.setdefault(vid, []).append((rev, key, change))
            present = change in ("created", "updated")
            self.by_key.setdefault(key, []).append((rev, vid if present else None))

    @property
    def last(self) -> int:
        return self.revisions[-1] if self.revisions else 0

    def entry_at(self, key: str, rev: int) -> tuple[str, int] | None:
        """The entry (value id, revision) at `rev`, or None if absent."""
        changes = self.by_key.get(key, [])
        i = bisect.bisect_right(changes, rev, key=lambda c: c[0]) - 1
        if i < 0 or changes[i][1] is None:
            return None
        return (changes[i][1], changes[i][0])  # type: ignore[return-value]

    def state_at(self, rev: int) -> dict[str, tuple[str, int]]:
        state = {}
        for key in self.by_key:
            entry = self.entry_at(key, rev)
            if entry is not None:
                state[key] = entry
        return state


def _writes(op: Op) -> list[tuple[str, str]]:
    """(key, value id) of each value a write carries."""
    if op.kind == "txn":
        return list(op.inp["puts"])
    if op.kind not in WRITES or op.kind == "delete":
        return []
    return [(op.inp["key"], op.inp["vid"])]


def _ok(op: Op) -> bool:
    out = op.out
    if out is None:
        return False
    if op.kind == "txn":
        return bool(out.get("succeeded"))
    return out.get("status") == "ok"


def check_log(log: Log, ops: list[Op]) -> list[str]:
    """The log against itself and against every write the clients made."""
    bad: list[str] = []
    ctx = log.ctx
    # Ordered, gap-free, each revision's events together.
    previous = 0
    for event in log.events:
        if event["revision"] < previous:
            bad.append(f"{ctx}: event log out of order at revision {event['revision']} after {previous}")
            break
        previous = event["revision"]
    if log.revisions and log.revisions != list(range(1, log.last + 1)):
        missing = sorted(set(range(1, log.last + 1)) - set(log.revisions))
        bad.append(f"{ctx}: event log has gaps: missing revisions {missing[:10]}")
    if len(log.revisions) != len(set(log.revisions)):
        bad.append(f"{ctx}: one revision's events are not together in the log")
    # No write applied twice.
    for vid, places in log.by_vid.items():
        applied = [p for p in places if p[2] in ("created", "updated")]
        if len(applied) > 1:
            bad.append(f"{ctx}: value {vid} was written {len(applied)} times: {applied}")
    issued: dict[str, Op] = {}
    for op in ops:
        for key, vid in _writes(op):
            issued[vid] = op
    for vid, places in log.by_vid.items():
        if vid not in issued:
            bad.append(f"{ctx}: value {vid} is in the log at revision {places[0][0]} but no client wrote it")
    for op in ops:
        if op.kind not in WRITES or op.out is None:
            continue
        if _ok(op):
            rev = op.out["rev"]
            if op.kind == "delete":
                group = log.groups.get(rev, [])
                if not any(e.get("key") == op.inp["key"] and (e.get("data") or {}).get("change") == "deleted" for e in group):
                    bad.append(f"{ctx}: acknowledged delete of {op.inp['key']} at revision {rev} is not in the log: {op}")
                continue
            for key, vid in _writes(op):
                places = [p for p in log.by_vid.get(vid, []) if p[2] in ("created", "updated")]
                if not places:
                    bad.append(f"{ctx}: acknowledged write lost: {key}={vid} at revision {rev}: {op}")
                elif places[0][0] != rev or places[0][1] != key:
                    bad.append(f"{ctx}: acknowledged write {key}={vid} answered revision {rev}, the log has it at {places[0][:2]}")
        else:
            for key, vid in _writes(op):
                if vid in log.by_vid:
                    bad.append(f"{ctx}: a refused write took effect: {key}={vid} at {log.by_vid[vid][0][0]}: {op}")
    return bad


def patch_unknown(log: Log, ops: list[Op]) -> tuple[list[Op], list[str]]:
    """Settles operations whose outcome is unknown from the log, as etcd's
    robustness tests do from their watch: a write whose value is in the log
    took effect at that revision; one whose value is not did not (if the log
    lost it while a read saw it, the linearizability check fails on that
    read). Unknown reads constrain nothing and are left out, as are lock
    operations (checked by `check_fencing`). Deletes carry no value: see
    below for how the log's removals settle them."""
    bad: list[str] = []
    kept: list[Op] = []
    # key -> [(revision of a removal, revision of the entry it removed)]
    deletions: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for key, changes in log.by_key.items():
        for i, (rev, vid) in enumerate(changes):
            if vid is None and i > 0 and changes[i - 1][1] is not None:
                deletions[key].append((rev, changes[i - 1][0]))
    acked_deletes = {(op.inp["key"], op.out["rev"]) for op in ops if op.kind == "delete" and _ok(op)}
    unknown_deletes: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in ("lock", "get_at"):
            continue
        if op.out is not None:
            kept.append(op)
            continue
        if op.kind not in WRITES:
            continue  # an unanswered read
        if op.kind == "delete":
            unknown_deletes[op.inp["key"]].append(op)
            continue
        writes = _writes(op)
        places = [log.by_vid.get(vid, []) for _, vid in writes]
        found = [p for p in places if p]
        if not found:
            continue  # never took effect
        revs = {p[0][0] for p in found}
        if len(found) != len(writes) or len(revs) != 1:
            bad.append(f"{log.ctx}: a transaction took effect in part: {op} -> {places}")
            continue
        rev = revs.pop()
        if op.kind == "txn":
            op.out = {"succeeded": True, "rev": rev, "patched": True}
        else:
            expires = None
            if op.inp.get("ttl_ms"):
                at = _event_time(log, rev)
                expires = at + op.inp["ttl_ms"] / 1000 if at is not None else None
            op.out = {"status": "ok", "rev": rev, "exp": expires, "patched": True}
        kept.append(op)
    for key, candidates in unknown_deletes.items():
        # A delete under If-Match R took effect only as a removal of the
        # entry at revision R: each such removal no acknowledged delete
        # claims goes to the earliest-called of the unknown deletes that
        # match it (they are alike but for their call time, and the earliest
        # can be placed wherever a later one could); every other unknown
        # delete did not take effect (a removal the log lost would fail the
        # reads after it).
        pending = sorted(candidates, key=lambda op: op.call)
        for removed_at, entry_rev in deletions.get(key, []):
            if (key, removed_at) in acked_deletes:
                continue
            match = next((op for op in pending if op.inp["if"] == entry_rev), None)
            if match is not None:
                pending.remove(match)
                match.out = {"status": "ok", "rev": removed_at, "patched": True}
                kept.append(match)
    _bound_settled(kept)
    return kept, bad


def _observed(op: Op) -> int | None:
    """The highest revision an answered operation shows was committed."""
    out = op.out
    if out is None or out.get("patched"):
        return None
    if op.kind == "get":
        return out.get("rev") if out.get("found") else None
    if op.kind == "list":
        return out["revision"]
    if op.kind == "txn" or out.get("status") == "ok":
        return out.get("rev")
    return None


def _bound_settled(ops: list[Op]) -> None:
    """Gives each write settled from the log a return time: it committed
    revision R, so it took effect before any operation that showed a
    revision at or after R returned. Without it, a settled write may be
    placed anywhere after its call, and a history with many of them (a
    restarted database leaves one per client) takes the search too long."""
    shown = sorted((rev, op.ret) for op in ops if (rev := _observed(op)) is not None and op.ret is not None)
    # suffix[i]: the earliest return among operations showing revision >= shown[i][0]
    suffix: list[float] = [0.0] * len(shown)
    earliest = float("inf")
    for i in range(len(shown) - 1, -1, -1):
        earliest = min(earliest, shown[i][1])
        suffix[i] = earliest
    revs = [rev for rev, _ in shown]
    for op in ops:
        if op.out is None or not op.out.get("patched"):
            continue
        i = bisect.bisect_left(revs, op.out["rev"])
        if i < len(shown) and suffix[i] > op.call:
            op.ret = suffix[i]
            op.wall_ret = op.wall + (op.ret - op.call)


def _event_time(log: Log, rev: int) -> float | None:
    from datetime import datetime

    group = log.groups.get(rev)
    if not group:
        return None
    return datetime.fromisoformat(group[0]["at"].replace("Z", "+00:00")).timestamp()


def check_linearizable(log: Log, ops: list[Op], max_steps: int = 5_000_000) -> list[str]:
    """The context's operations against the model."""
    history = [op for op in ops if op.kind != "get_at"]
    committed = [op.out["rev"] for op in history if op.kind in WRITES and _ok(op)]
    result = lin.check(ContextModel(committed), history, lambda op: op.call, lambda op: op.ret if op.out is not None else None, max_steps)
    if result.ok:
        return []
    if result.inconclusive:
        return [f"{log.ctx}: linearizability check inconclusive after {result.steps} steps ({len(history)} operations)"]
    tail = "\n    ".join(repr(op) for op in result.linearized[-6:])
    stuck = "\n    ".join(repr(op) for op in result.stuck)
    return [
        f"{log.ctx}: not linearizable ({len(history)} operations); last linearized:\n    {tail}\n  "
        f"none of these could come next:\n    {stuck}"
    ]


def check_reads_at(log: Log, ops: list[Op], ttl_keys: Iterable[str]) -> list[str]:
    """Each answered `?at=R` read against the log's state at R."""
    bad = []
    ttl = set(ttl_keys)
    for op in ops:
        if op.kind != "get_at" or op.out is None:
            continue
        expected = log.entry_at(op.inp["key"], op.inp["at"])
        if op.out["found"]:
            got: tuple[str, int] | None = (op.out["vid"], op.out["rev"])
        else:
            got = None
        if got != expected and not (got is None and op.inp["key"] in ttl):
            bad.append(f"{log.ctx}: read of {op.inp['key']} at revision {op.inp['at']} answered {got}, the log has {expected}")
    return bad


def check_final(log: Log, listed: dict[str, tuple[str, int]], revision: int, expired: Iterable[str]) -> list[str]:
    """The entries listed at the end against the log's state at their revision."""
    gone = set(expired)
    expected = {k: v for k, v in log.state_at(revision).items() if k not in gone}
    shown = {k: v for k, v in listed.items() if k not in gone}
    if expected != shown:
        return [f"{log.ctx}: final state at revision {revision} is {shown}, the log implies {expected}"]
    return []


def check_fencing(log: Log, ops: list[Op]) -> list[str]:
    """Fencing tokens: increasing per lock in the log; a fenced write
    succeeds only while its token is the newest issued, and is refused
    only once a newer one was."""
    bad = []
    issued: dict[str, list[tuple[int, int]]] = defaultdict(list)  # lock -> [(revision, token)]
    for event in log.events:
        if event.get("type") == "lock.acquired":
            data = event.get("data") or {}
            name = data.get("name") or data.get("lock")
            token = data.get("fencing_token", data.get("token"))
            if name is not None and token is not None:
                issued[name].append((event["revision"], int(token)))
    for name, tokens in issued.items():
        values = [t for _, t in tokens]
        if values != sorted(set(values)):
            bad.append(f"{log.ctx}: fencing tokens of lock {name} do not increase: {values[:20]}")
    for op in ops:
        if op.kind != "fenced_put" or op.out is None:
            continue
        name, token = op.inp["lock"], op.inp["token"]
        if op.out.get("status") == "ok":
            newer = [(r, t) for r, t in issued.get(name, []) if t > token and r < op.out["rev"]]
            if newer:
                bad.append(f"{log.ctx}: write with token {token} of {name} committed at {op.out['rev']} after newer token {newer[0]}")
        elif op.out.get("status") == "fenced":
            if not any(t > token for _, t in issued.get(name, [])):
                bad.append(f"{log.ctx}: write with token {token} of {name} was fenced, but no newer token was issued")
    return bad


def _passes(event: dict[str, Any], conn: WatchConnection) -> bool:
    if conn.types and event.get("type") not in conn.types:
        return False
    if conn.prefix and "key" in event and not str(event["key"]).startswith(conn.prefix):
        return False
    return True


def check_watch(log: Log, conn: WatchConnection, must_reach: int | None) -> tuple[list[str], int]:
    """One watch connection against the log: what it delivered must be the
    log's events after its start, filtered, in order, each once, whole
    revisions (a connection that broke may end inside one), with no gap;
    a bookmark at R means every event up to R was delivered. `must_reach`:
    the revision the connection must have delivered up to (the last one,
    for a watcher that was still open at the end). Returns the violations
    and the number of events checked."""
    name = f"{log.ctx}: watch {conn.watcher} ({conn.transport}, after {conn.after}, types {conn.types}, prefix {conn.prefix})"
    expected: list[dict[str, Any]] = []
    for rev in log.revisions:
        if rev > conn.after:
            expected.extend(e for e in log.groups[rev] if _passes(e, conn))
    delivered: list[dict[str, Any]] = []
    bad: list[str] = []
    reached = conn.after
    for kind, rev, events in conn.frames:
        if kind == "progress":
            # Bookmarkable: everything up to rev that passes was delivered.
            owed = [e for e in expected if e["revision"] <= rev]
            if len(delivered) < len(owed):
                bad.append(f"{name}: bookmark at {rev} before revision {owed[len(delivered)]['revision']} was delivered")
                break
            reached = max(reached, rev)
            continue
        if conn.transport == "ws" and events:
            whole = [e for e in log.groups.get(rev, []) if _passes(e, conn)]
            if events != whole:
                bad.append(f"{name}: atomic: message of revision {rev} holds {len(events)} of its {len(whole)} events")
        for event in events:
            at = len(delivered)
            if event["revision"] < reached and delivered:
                bad.append(f"{name}: ordered: revision {event['revision']} after {delivered[-1]['revision']}")
                return bad, at
            if at >= len(expected):
                bad.append(f"{name}: delivered revision {event['revision']}, which the log does not have after {conn.after}")
                return bad, at
            want = expected[at]
            if event != want:
                if event["revision"] > want["revision"]:
                    bad.append(f"{name}: reliable: revision {want['revision']} skipped (got {event['revision']})")
                elif any(event == d for d in delivered):
                    bad.append(f"{name}: unique: revision {event['revision']} delivered twice")
                else:
                    bad.append(f"{name}: event {at} is {event}, the log has {want}")
                return bad, at
            delivered.append(event)
            reached = max(reached, event["revision"])
    # Atomic: only the last revision of a broken connection may be partial.
    if delivered:
        last = delivered[-1]["revision"]
        whole = [e for e in log.groups.get(last, []) if _passes(e, conn)]
        got = [e for e in delivered if e["revision"] == last]
        if len(got) < len(whole) and conn.ended == "end":
            bad.append(f"{name}: atomic: revision {last} delivered {len(got)} of {len(whole)} events")
    if must_reach is not None:
        owed = [e for e in expected if e["revision"] <= must_reach]
        if len(delivered) < len(owed):
            bad.append(
                f"{name}: reliable: stopped at revision {reached}; the log has revision "
                f"{owed[len(delivered)]['revision']} for it (through {must_reach})"
            )
    return bad, len(delivered)


def resume_position(conn: WatchConnection) -> tuple[int, int]:
    """Where the next connection resumes (the rule of docs/api.md): from the
    last bookmark if it is at or after the last event received, else from
    the last event's revision minus one, dropping the events of that
    revision already received. Returns (after, events to drop)."""
    last_event = None
    count_last = 0
    bookmark = conn.after
    for kind, rev, events in conn.frames:
        if kind == "progress":
            bookmark = max(bookmark, rev)
        for event in events:
            if event["revision"] != last_event:
                last_event, count_last = event["revision"], 0
            count_last += 1
    if last_event is None or bookmark >= last_event:
        return bookmark, 0
    return last_event - 1, count_last
