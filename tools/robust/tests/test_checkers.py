"""The checkers are checked: histories with a known defect are reported,
and the same histories without the defect pass.

Each defect test builds a small history by hand (what clients recorded and
what the event log holds) with one thing wrong: a lost acknowledged write,
a stale read, a compare-and-swap that succeeded on a stale revision, a
watch that skips or repeats a revision, and so on.
"""

from __future__ import annotations

import itertools

from ctxmesh_robust import checks
from ctxmesh_robust.history import Op, WatchConnection

CTX = "c"
_clock = itertools.count()


def op(kind: str, out: dict | None, *, call: float | None = None, ret: float | None = None, client: int = 0, **inp) -> Op:
    """An operation; by default it runs alone, after every earlier one."""
    t = float(next(_clock)) if call is None else call
    o = Op(client, CTX, kind, inp, t, 1e9 + t)
    if out is not None:
        end = t + 0.5 if ret is None else ret
        o.done(out, end, 1e9 + end)
    return o


def put(key: str, vid: str, rev: int, cond=None, **kw) -> Op:
    return op("put", {"status": "ok", "rev": rev, "created": None, "exp": None}, key=key, vid=vid, **{"if": cond}, **kw)


def get(key: str, vid: str | None, rev: int = 0, **kw) -> Op:
    out = {"found": True, "vid": vid, "rev": rev} if vid else {"found": False}
    return op("get", out, key=key, **kw)


def updated(rev: int, key: str, vid: str | None, change: str = "updated") -> dict:
    data = {"change": change, "version": 1}
    if vid is not None:
        data["value"] = {"w": vid}
    return {"type": "context.updated", "context": CTX, "revision": rev, "key": key, "at": "2026-01-01T00:00:00Z", "data": data}


def created_event() -> dict:
    return {"type": "context.created", "context": CTX, "revision": 1, "at": "2026-01-01T00:00:00Z"}


def log_of(*events: dict) -> checks.Log:
    return checks.Log(CTX, [created_event(), *events])


def linearizable(ops: list[Op], log: checks.Log | None = None) -> list[str]:
    log = log or log_of()
    history, bad = checks.patch_unknown(log, ops)
    return bad + checks.check_linearizable(log, history)


# Linearizability.


def test_a_correct_history_passes():
    ops = [put("a", "v1", 2), get("a", "v1", 2), put("a", "v2", 3, cond=2), get("a", "v2", 3)]
    assert linearizable(ops) == []


def test_a_stale_read_is_reported():
    ops = [put("a", "v1", 2), put("a", "v2", 3, cond=2), get("a", "v1", 2)]
    assert any("not linearizable" in v for v in linearizable(ops))


def test_a_read_concurrent_with_a_write_may_see_either_value():
    w = op("put", {"status": "ok", "rev": 3, "created": False, "exp": None}, call=100.0, ret=110.0, key="a", vid="v2", **{"if": 2})
    r = op("get", {"found": True, "vid": "v1", "rev": 2}, call=101.0, ret=102.0, key="a")
    assert linearizable([put("a", "v1", 2, call=1.0), w, r]) == []


def test_a_cas_that_succeeded_on_a_stale_revision_is_reported():
    ops = [put("a", "v1", 2), put("a", "v2", 3, cond=2), put("a", "v3", 4, cond=2)]
    assert any("not linearizable" in v for v in linearizable(ops))


def test_a_cas_refused_although_its_revision_was_current_is_reported():
    refused = op("put", {"status": "precondition", "current": ["v1", 2]}, key="a", vid="v2", **{"if": 2})
    assert any("not linearizable" in v for v in linearizable([put("a", "v1", 2), refused]))


def test_revisions_that_go_backwards_in_real_time_are_reported():
    ops = [put("a", "v1", 5), put("b", "v2", 3)]
    assert any("not linearizable" in v for v in linearizable(ops))


def test_a_transaction_seen_in_part_is_reported():
    txn = op("txn", {"succeeded": True, "rev": 2}, compare=[("a", 0), ("b", 0)], puts=[("a", "t1"), ("b", "t2")])
    reader = op("list", {"revision": 2, "entries": {"a": ["t1", 2]}})
    assert any("not linearizable" in v for v in linearizable([txn, reader]))
    whole = op("list", {"revision": 2, "entries": {"a": ["t1", 2], "b": ["t2", 2]}})
    assert linearizable([txn, whole]) == []


def test_an_expired_entry_may_not_be_read_after_its_expiry():
    w = put("t", "v1", 2, ttl_ms=100)
    w.out["exp"] = w.wall_ret + 0.1
    late = op("get", {"found": True, "vid": "v1", "rev": 2}, call=w.call + 5, ret=w.call + 5.1, key="t")
    assert any("not linearizable" in v for v in linearizable([w, late]))
    gone = op("get", {"found": False}, call=w.call + 5, ret=w.call + 5.1, key="t")
    assert linearizable([w, gone]) == []


def test_an_unknown_write_is_settled_from_the_log():
    unknown = op("put", None, key="a", vid="v1", **{"if": None})
    seen = get("a", "v1", 2)
    # In the log: it took effect, and the read of it is fine.
    assert linearizable([unknown, seen], log_of(updated(2, "a", "v1", "created"))) == []
    # Not in the log: a read of its value is a write from nowhere.
    assert any("not linearizable" in v for v in linearizable([op("put", None, key="a", vid="v1", **{"if": None}), get("a", "v1", 2)]))


# The event log.


def test_a_lost_acknowledged_write_is_reported():
    ops = [put("a", "v1", 2), put("a", "v2", 3)]
    log = log_of(updated(2, "a", "v1", "created"))
    assert any("acknowledged write lost" in v for v in checks.check_log(log, ops))
    whole = log_of(updated(2, "a", "v1", "created"), updated(3, "a", "v2"))
    assert checks.check_log(whole, ops) == []


def test_a_gap_in_the_event_log_is_reported():
    log = log_of(updated(3, "a", "v1", "created"))
    assert any("gaps" in v for v in checks.check_log(log, [put("a", "v1", 3)]))


def test_a_refused_write_that_took_effect_is_reported():
    refused = op("put", {"status": "precondition", "current": None}, key="a", vid="v1", **{"if": 7})
    log = log_of(updated(2, "a", "v1", "created"))
    assert any("refused write took effect" in v for v in checks.check_log(log, [refused]))


def test_a_write_applied_twice_or_from_nowhere_is_reported():
    log = log_of(updated(2, "a", "v1", "created"), updated(3, "a", "v1"))
    assert any("written 2 times" in v for v in checks.check_log(log, [put("a", "v1", 2)]))
    assert any("no client wrote it" in v for v in checks.check_log(log_of(updated(2, "a", "zz", "created")), []))


def test_a_read_at_a_revision_is_checked_against_the_log():
    log = log_of(updated(2, "a", "v1", "created"), updated(3, "a", "v2"))
    right = op("get_at", {"found": True, "vid": "v1", "rev": 2}, key="a", at=2)
    wrong = op("get_at", {"found": True, "vid": "v2", "rev": 3}, key="a", at=2)
    assert checks.check_reads_at(log, [right], []) == []
    assert len(checks.check_reads_at(log, [wrong], [])) == 1


def test_a_write_under_a_fenced_token_is_reported():
    acquired = [
        {"type": "lock.acquired", "context": CTX, "revision": 2, "at": "2026-01-01T00:00:00Z", "data": {"name": "L", "fencing_token": 1}},
        {"type": "lock.acquired", "context": CTX, "revision": 3, "at": "2026-01-01T00:00:00Z", "data": {"name": "L", "fencing_token": 2}},
    ]
    late = op("fenced_put", {"status": "ok", "rev": 4}, key="a", vid="v1", lock="L", token=1)
    log = log_of(*acquired, updated(4, "a", "v1", "created"))
    assert any("after newer token" in v for v in checks.check_fencing(log, [late]))
    current = op("fenced_put", {"status": "ok", "rev": 4}, key="a", vid="v1", lock="L", token=2)
    assert checks.check_fencing(log, [current]) == []


# Watches.


def _log5() -> checks.Log:
    return log_of(updated(2, "a", "v1", "created"), updated(3, "a", "v2"), updated(4, "b", "v3", "created"), updated(5, "a", "v4"))


def conn(frames, transport="sse", after=0, ended="end", prefix=None) -> WatchConnection:
    c = WatchConnection("w", transport, CTX, after, None, prefix)
    c.frames = frames
    c.ended = ended
    return c


def frames_of(log: checks.Log, revs, transport="sse") -> list:
    out = []
    for rev in revs:
        group = log.groups[rev]
        if transport == "ws":
            out.append(("events", rev, list(group)))
        else:
            out.extend(("events", rev, [e]) for e in group)
    return out


def test_a_complete_watch_passes():
    log = _log5()
    for transport in ("sse", "ws"):
        bad, n = checks.check_watch(log, conn(frames_of(log, [1, 2, 3, 4, 5], transport) + [("progress", 5, [])], transport), 5)
        assert bad == [] and n == 5


def test_a_watch_that_skips_a_revision_is_reported():
    log = _log5()
    bad, _ = checks.check_watch(log, conn(frames_of(log, [1, 2, 4, 5])), 5)
    assert any("reliable" in v for v in bad)


def test_a_watch_that_repeats_a_revision_is_reported():
    log = _log5()
    bad, _ = checks.check_watch(log, conn(frames_of(log, [1, 2, 3, 3, 4, 5])), 5)
    assert any("unique" in v or "ordered" in v for v in bad)


def test_a_watch_out_of_order_is_reported():
    log = _log5()
    bad, _ = checks.check_watch(log, conn(frames_of(log, [1, 3, 2, 4, 5])), 5)
    assert bad


def test_a_resumed_watch_must_start_right_after_its_position():
    log = _log5()
    assert checks.check_watch(log, conn(frames_of(log, [3, 4, 5]), after=2), 5)[0] == []
    bad, _ = checks.check_watch(log, conn(frames_of(log, [4, 5]), after=2), 5)
    assert any("reliable" in v for v in bad)


def test_a_bookmark_before_its_events_is_reported():
    log = _log5()
    bad, _ = checks.check_watch(log, conn(frames_of(log, [1, 2]) + [("progress", 4, [])] + frames_of(log, [3, 4, 5])), 5)
    assert any("bookmark" in v for v in bad)


def test_a_websocket_message_with_part_of_a_revision_is_reported():
    log = log_of({**updated(2, "a", "v1", "created")}, {**updated(2, "b", "v2", "created")})
    partial = [("events", 1, [created_event()]), ("events", 2, [log.groups[2][0]]), ("events", 2, [log.groups[2][1]])]
    bad, _ = checks.check_watch(log, conn(partial, "ws"), 2)
    assert any("atomic" in v for v in bad)


def test_a_watch_that_stops_short_is_reported():
    log = _log5()
    bad, _ = checks.check_watch(log, conn(frames_of(log, [1, 2, 3])), 5)
    assert any("stopped" in v for v in bad)


def test_filters_are_applied_to_the_log():
    log = _log5()
    revs = [e for e in log.events if e.get("key", "a").startswith("a") or "key" not in e]
    frames = [("events", e["revision"], [e]) for e in revs]
    assert checks.check_watch(log, conn(frames, prefix="a"), 5)[0] == []


def test_the_resume_rule():
    log = log_of(updated(2, "a", "v1", "created"), updated(2, "b", "v2", "created"), updated(3, "a", "v3"))
    broken = conn([("events", 1, [created_event()]), ("events", 2, [log.groups[2][0]])], ended="broken")
    assert checks.resume_position(broken) == (1, 1)
    bookmarked = conn(frames_of(log, [1, 2]) + [("progress", 2, [])], ended="client")
    assert checks.resume_position(bookmarked) == (2, 0)


def test_writes_settled_from_the_log_are_bounded_by_what_observed_them():
    """Thirty concurrent writes whose answers were lost (a restarted
    database), each settled from the log, then read back in turn: each read
    bounds the writes it saw, and the search stays small."""
    ops, events = [], []
    for i in range(30):
        ops.append(op("put", None, call=100.0 + i * 0.001, client=i, key="a", vid=f"u{i}", **{"if": None}))
        events.append(updated(2 + i, "a", f"u{i}", "created" if i == 0 else "updated"))
    for i in range(30):
        ops.append(op("get", {"found": True, "vid": f"u{i}", "rev": 2 + i}, call=200.0 + i, ret=200.5 + i, client=40, key="a"))
    log = log_of(*events)
    history, bad = checks.patch_unknown(log, ops)
    assert bad == []
    assert all(o.ret is not None for o in history), "every settled write has a return time"
    assert checks.check_linearizable(log, history, max_steps=20_000) == []
    # The same reads in the wrong order are caught.
    wrong = [o for o in ops if o.kind == "put"]
    wrong += [op("get", {"found": True, "vid": "u29", "rev": 31}, call=300.0, ret=300.5, client=40, key="a"),
              op("get", {"found": True, "vid": "u3", "rev": 5}, call=301.0, ret=301.5, client=40, key="a")]
    for o in wrong:
        if o.kind == "put":
            o.out, o.ret, o.wall_ret = None, None, None
    history, _ = checks.patch_unknown(log, wrong)
    assert any("not linearizable" in v for v in checks.check_linearizable(log, history, max_steps=200_000))


def test_unknown_deletes_are_settled_by_the_removals_in_the_log():
    log = log_of(updated(2, "a", "v1", "created"), updated(3, "a", None, "deleted"))
    ops = [
        put("a", "v1", 2),
        op("delete", None, key="a", **{"if": 2}),
        op("delete", None, key="a", **{"if": 2}),  # the same request again: only one can have removed it
        op("delete", None, key="a", **{"if": 7}),  # never matched: did not take effect
        get("a", None),
    ]
    history, bad = checks.patch_unknown(log, ops)
    assert bad == []
    settled = [o for o in history if o.kind == "delete"]
    assert len(settled) == 1 and settled[0].out["rev"] == 3 and settled[0] is ops[1]
    assert checks.check_linearizable(log, history) == []
    # A removal the log does not have, seen by a read, is reported.
    lost = log_of(updated(2, "a", "v1", "created"))
    ops = [put("a", "v1", 2), op("delete", None, key="a", **{"if": 2}), get("a", None)]
    history, _ = checks.patch_unknown(lost, ops)
    assert any("not linearizable" in v for v in checks.check_linearizable(lost, history))
