"""`scripts/robust`: real servers, concurrent clients, faults, then every
history checked. docs/robustness.md explains the run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from . import checks
from .history import Op, Recorded, WatchConnection
from .servers import Node, Postgres, SmallDisk, tear_log_tail, tear_wal_tail
from .traffic import TTL_KEYS, Client, Cluster, Contexts, Stats, Watcher

SQLITE_FAILPOINTS = [
    "sqlite::batch::mid", "log::append::before", "log::append::mid", "log::sync::before", "log::sync::after",
    "sqlite::commit::before", "sqlite::commit::after", "sqlite::answer::before",
    "sqlite::checkpoint", "sqlite::checkpoint::after", "log::trim",
]
POSTGRES_FAILPOINTS = ["postgres::batch::mid", "postgres::commit::before", "postgres::commit::after"]
# Failpoints that only crash (after the durability point).
CRASH_ONLY = {"log::sync::after", "sqlite::commit::after", "sqlite::answer::before", "postgres::commit::after"}
# Failpoints met now and then (a checkpoint, a segment removed), not at
# every write: they fire the first time they are met.
RARE = {"sqlite::checkpoint", "sqlite::checkpoint::after", "log::trim"}
# Failpoints of the commit log, met only with `--commit-log`.
LOG_ONLY = {"log::append::before", "log::append::mid", "log::sync::before", "log::sync::after", "log::trim"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/robust", description="ctxmesh's robustness run: traffic, faults, checkers")
    p.add_argument("--store", choices=["sqlite", "postgres"])
    p.add_argument("--minutes", type=float, default=1.0, help="how long traffic and faults run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bin", default="target/debug/ctxmesh", help="a ctxmesh binary built with --features failpoints")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--watchers", type=int, default=4)
    p.add_argument("--fault-gap", type=float, default=2.5, help="mean seconds between faults")
    p.add_argument("--epoch", type=float, default=15.0, help="seconds before traffic moves to new contexts")
    p.add_argument("--postgres", default=os.environ.get("CTXMESH_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test"),
                   help="a PostgreSQL database to create the run's database from")
    p.add_argument("--no-pg-restart", action="store_true", help="do not restart PostgreSQL (when it is not the local cluster)")
    p.add_argument("--disk-mb", type=int, default=1024, help="size of the tmpfs the embedded store runs on")
    p.add_argument("--commit-log", action="store_true",
                   help="embedded store: the commit log as the durability point (`ctxmesh serve --commit-log`)")
    p.add_argument("--report", help="write the figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the run's directory (logs, data, the recorded history)")
    p.add_argument("--recheck", metavar="PICKLE", help="judge a recorded run again (its recorded.pickle) instead of running")
    return p.parse_args(argv)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = Path(tempfile.mkdtemp(prefix=f"ctxmesh-robust-{args.store}-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.disk: SmallDisk | None = None
        self.pg: Postgres | None = None
        self.nodes: list[Node] = []
        self.faults: Counter[str] = Counter()
        self.fault_log: list[str] = []
        self.disk_windows: list[tuple[float, float, int, int, float | None]] = []
        self.record: list[Op] = []
        self.connections: list[WatchConnection] = []
        self.stats = Stats()
        self.violations: list[str] = []
        self.pg_restart = None
        # A context outside the checked histories, for the runner's own
        # writes (the write after a full disk).
        self.probe = f"r{args.seed}-probe"
        # The run itself failed (an exception): its directory is kept.
        self.failed = False

    # Set-up and tear-down.

    async def setup(self) -> None:
        binary = str(Path(self.args.bin).resolve())
        if not Path(binary).exists():
            raise SystemExit(f"robust: no binary at {binary}; build it with `cargo build -p ctxmesh --features failpoints`")
        if self.args.store == "sqlite":
            self.disk = SmallDisk(self.dir / "disk", self.args.disk_mb)
            self.disk.mount()
            self.nodes = [Node(0, binary, self.disk.path / "data", None, self.logs, commit_log=self.args.commit_log)]
        else:
            self.pg = Postgres(self.args.postgres, f"ctxmesh_robust_{self.args.seed}_{os.getpid()}")
            self.pg.create()
            if not self.args.no_pg_restart:
                self.pg_restart = Postgres.restart_command()
                if self.pg_restart is None:
                    raise SystemExit("robust: cannot restart PostgreSQL here (no pg_lsclusters); pass --no-pg-restart")
            self.nodes = [Node(i, binary, self.dir / f"data{i}", self.pg.url, self.logs) for i in range(3)]
        for node in self.nodes:
            await node.start()

    async def teardown(self) -> None:
        for node in self.nodes:
            await node.stop()
        if self.disk is not None:
            self.disk.free()
            self.disk.unmount()
        if self.pg is not None:
            self.pg.drop()
        if not self.args.keep and not self.violations and not self.failed:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def admin(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        """A set-up request, retried until it is answered (faults may be
        under way)."""
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=5.0, headers={"X-Agent-Id": "robust"}) as http:
            while time.monotonic() < deadline:
                for node in self.nodes:
                    try:
                        r = await http.request(method, node.url + path, json=body)
                    except httpx.HTTPError:
                        continue
                    if r.status_code in ok:
                        return r.json() if r.content else None
                    if r.status_code < 500 and r.status_code != 429:
                        raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text}")
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{method} {path} was not answered in two minutes")

    async def create_contexts(self, names: list[str]) -> None:
        for name in names:
            # An unknown outcome is settled by trying again: 409 says it exists.
            await self.admin("POST", "/v1/contexts", {"id": name}, ok=(201, 409))

    # Faults.

    async def restart(self, node: Node, failpoints: str = "") -> None:
        await node.kill()
        await node.start(failpoints)

    async def fault_kill(self) -> None:
        node = self.rng.choice(self.nodes)
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        await node.kill()
        if self.args.store == "postgres":
            await asyncio.sleep(self.rng.uniform(0.1, 1.5))
        await node.start()
        self.faults["kill -9"] += 1

    async def fault_failpoint(self, action: str) -> None:
        node = self.rng.choice(self.nodes)
        names = SQLITE_FAILPOINTS if self.args.store == "sqlite" else POSTGRES_FAILPOINTS
        if self.args.store == "sqlite" and not self.args.commit_log:
            names = [n for n in names if n not in LOG_ONLY]
        if action == "ioerr":
            names = [n for n in names if n not in CRASH_ONLY]
        name = self.rng.choice(names)
        if action == "crash":
            spec = f"{name}=1*return(crash)" if name in RARE else f"{name}=3%1*return(crash)"
        else:
            spec = f"{name}=2*return(ioerr)" if name in RARE else f"{name}=10%3*return(ioerr)"
        await self.restart(node, spec)
        fired_before = len(node.fired)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            node.scan_log()
            if action == "crash" and not node.alive:
                break
            if action == "ioerr" and len(node.fired) >= fired_before + 1:
                await asyncio.sleep(1)
                node.scan_log()
                break
        if action == "crash":
            if not node.alive:
                assert node.process is not None
                await node.process.wait()
                node.scan_log()
            # Restarted without failpoints either way (if it did not fire,
            # this is one more kill -9).
            await self.restart(node)
        fired = node.fired[fired_before:]
        for fp_name, fp_action in fired:
            self.faults[f"failpoint {fp_action}"] += 1
            self.faults[f"failpoint {fp_name} {fp_action}"] += 1
        if not fired:
            self.faults[f"failpoint armed, not reached ({action})"] += 1

    async def fault_torn_tail(self) -> None:
        """A power cut: the database's unsynced commits lost, the commit
        log's last append torn; half the time the start that replays the
        log crashes in the middle of it, and the next start replays again."""
        node = self.nodes[0]
        await node.kill()
        log = self.args.commit_log
        what = [tear_wal_tail(node.data_dir / "ctxmesh.db-wal", self.rng, lose_commits=log)]
        if log and self.rng.random() < 0.5:
            what.append(tear_log_tail(node.data_dir / "ctxmesh.db-log", self.rng))
        self.fault_log.append(f"power cut: {'; '.join(what)}")
        fired_before = len(node.fired)
        if log and self.rng.random() < 0.5:
            await node.start("log::replay::mid=1*return(crash)")
            if not node.alive:
                assert node.process is not None
                await node.process.wait()
            node.scan_log()
            if not node.alive:
                await node.start()
            for fp_name, fp_action in node.fired[fired_before:]:
                self.faults[f"failpoint {fp_action}"] += 1
                self.faults[f"failpoint {fp_name} {fp_action}"] += 1
        else:
            await node.start()
        self.faults["power cut"] += 1

    async def fault_disk_full(self) -> None:
        assert self.disk is not None
        cluster = self.cluster
        start = time.monotonic()
        full_before, reads_before = self.stats.storage_full, self.stats.reads_ok_while_full
        self.disk.fill()
        cluster.disk_full = True
        # Hold the disk full until writes have been refused (the WAL may
        # have room left at first), at most thirty seconds.
        deadline = start + 30
        while time.monotonic() < deadline and self.stats.storage_full == full_before:
            await asyncio.sleep(0.1)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        cluster.disk_full = False
        self.disk.free()
        end = time.monotonic()
        refused = self.stats.storage_full - full_before
        reads = self.stats.reads_ok_while_full - reads_before
        recovered = await self.probe_write()
        self.disk_windows.append((start, end, refused, reads, recovered))
        self.faults["disk full"] += 1
        if not self.nodes[0].alive:
            self.violations.append(f"the server died while the disk was full; see {self.nodes[0].log_path}")
            await self.nodes[0].start()

    async def probe_write(self, timeout: float = 30.0) -> float | None:
        """Seconds until a write to the probe context (outside the checked
        histories) goes through, or None if none does within `timeout`."""
        start = time.monotonic()
        async with httpx.AsyncClient(timeout=5.0, headers={"X-Agent-Id": "robust"}) as http:
            while time.monotonic() - start < timeout:
                try:
                    r = await http.put(f"{self.nodes[0].url}/v1/contexts/{self.probe}/entries/probe", json={"value": time.time()})
                    if r.status_code in (200, 201):
                        return round(time.monotonic() - start, 2)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        return None

    async def fault_pg_terminate(self) -> None:
        assert self.pg is not None
        n = await asyncio.to_thread(self.pg.terminate_backends)
        self.faults["pg_terminate_backend"] += 1
        self.fault_log.append(f"terminated {n} backends")

    async def fault_pg_restart(self) -> None:
        assert self.pg is not None and self.pg_restart is not None
        done = await asyncio.to_thread(subprocess.run, self.pg_restart, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"restarting PostgreSQL failed: {done.stderr}")
        await self.pg.wait_ready()
        self.faults["PostgreSQL restart"] += 1

    async def inject(self, until: float) -> None:
        # Half of the faults are kills; the other kinds share the rest.
        if self.args.store == "sqlite":
            others = ["fp_crash", "fp_ioerr", "torn", "full"]
        else:
            others = ["fp_crash", "fp_ioerr", "terminate"] + (["pg_restart"] if self.pg_restart is not None else [])
        kinds = [("kill", 0.5)] + [(k, 0.5 / len(others)) for k in others]
        # Every kind early on, then at random.
        order = [k for k, _ in kinds]
        self.rng.shuffle(order)
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(0.3, 2 * self.args.fault_gap - 0.3))
            if time.monotonic() >= until:
                break
            kind = order.pop() if order else self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            if kind == "kill":
                await self.fault_kill()
            elif kind == "fp_crash":
                await self.fault_failpoint("crash")
            elif kind == "fp_ioerr":
                await self.fault_failpoint("ioerr")
            elif kind == "torn":
                await self.fault_torn_tail()
            elif kind == "full":
                await self.fault_disk_full()
            elif kind == "terminate":
                await self.fault_pg_terminate()
            elif kind == "pg_restart":
                await self.fault_pg_restart()

    # Traffic.

    async def client_loop(self, client: Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await client.one()

    async def epochs(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.args.epoch)
                return
            except asyncio.TimeoutError:
                pass
            upcoming = [f"{self.contexts.prefix}-e{self.contexts.epoch + 1}-{i}" for i in range(self.contexts.width)]
            await self.create_contexts(upcoming)
            self.contexts.next_epoch()

    async def run(self) -> int:
        args = self.args
        started = time.monotonic()
        await self.setup()
        self.cluster = Cluster([n.url for n in self.nodes])
        self.contexts = Contexts(f"r{args.seed}", width=2)
        for i in range(args.clients):
            await self.admin("POST", "/v1/agents", {"id": f"c{i}", "name": f"client {i}", "lease_ms": 3_600_000}, ok=(201, 409))
        first = [f"{self.contexts.prefix}-e1-{i}" for i in range(self.contexts.width)]
        await self.create_contexts(first)
        await self.create_contexts([self.probe])
        self.contexts.next_epoch()
        clients = [Client(i, self.cluster, self.contexts, random.Random(self.rng.random()), self.record, self.stats) for i in range(args.clients)]
        watchers = [
            Watcher(f"w{i}", "sse" if i % 2 == 0 else "ws", self.cluster, self.contexts, random.Random(self.rng.random()), self.connections)
            for i in range(args.watchers)
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.client_loop(c, stop)) for c in clients]
        tasks.append(asyncio.create_task(self.epochs(stop)))
        watch_tasks = [asyncio.create_task(w.run()) for w in watchers]
        until = time.monotonic() + args.minutes * 60
        try:
            await self.inject(until)
            # Heal: every node up, the disk free.
            if self.disk is not None:
                self.disk.free()
                self.cluster.disk_full = False
            for node in self.nodes:
                if not node.alive:
                    await node.start()
            stop.set()
            done, pending = await asyncio.wait(tasks, timeout=30)
            for t in pending:
                t.cancel()
            for t in done:
                if t.exception():
                    raise t.exception()  # type: ignore[misc]
            # The watchers follow their contexts to the last revision.
            last = {}
            for ctx in self.contexts.current:
                info = await self.admin("GET", f"/v1/contexts/{ctx}", ok=(200, 404))
                if "revision" in info:  # a lost context is reported by check()
                    last[ctx] = info["revision"]
            deadline = time.monotonic() + 30
            for w in watchers:
                w.stop.set()
            await asyncio.wait(watch_tasks, timeout=10)
            await asyncio.gather(*(w.follow_to_end(last, deadline) for w in watchers))
            for c in clients:
                await c.close()
            figures = await self.check(last)
        except BaseException:
            self.failed = True
            print(f"robust: the run failed; its directory (logs, data) is kept in {self.dir}", file=sys.stderr)
            raise
        finally:
            for t in watch_tasks:
                t.cancel()
            await self.teardown()
        figures["seconds"] = round(time.monotonic() - started, 1)
        if args.report:
            Path(args.report).write_text(json.dumps(figures, indent=2) + "\n")
        if self.violations:
            print(f"robust: the run's directory (logs, data) is kept in {self.dir}", file=sys.stderr)
        report(figures, self.violations, dict(self.faults))
        return 1 if self.violations else 0

    async def check(self, last: dict[str, int]) -> dict[str, Any]:
        """Reads what the server holds, then judges the run."""
        logs: dict[str, list[dict[str, Any]] | None] = {}
        listed: dict[str, tuple[dict[str, tuple[str, int]], int]] = {}
        for ctx in self.contexts.all:
            logs[ctx] = await self.read_log(ctx)
            if logs[ctx] is None:
                continue
            page = await self.admin("GET", f"/v1/contexts/{ctx}/entries?limit=1000")
            listed[ctx] = ({e["key"]: (e["value"]["w"], e["revision"]) for e in page["entries"]}, page["revision"])
        recorded = Recorded(
            store=self.args.store, seed=self.args.seed, minutes=self.args.minutes, record=self.record,
            connections=self.connections, logs=logs, listed=listed, last=last, disk_windows=self.disk_windows,
            stats=self.stats, faults=dict(self.faults),
        )
        violations, figures = await asyncio.to_thread(judge, recorded)
        self.violations.extend(violations)
        figures["violations"] = len(self.violations)
        if self.violations or self.args.keep:
            with open(self.dir / "recorded.pickle", "wb") as f:
                pickle.dump(recorded, f)
            print(f"robust: recorded history in {self.dir / 'recorded.pickle'} (check it again with --recheck)", file=sys.stderr)
        return figures

    async def read_log(self, ctx: str) -> list[dict[str, Any]] | None:
        """The context's whole event log; None if the context is unknown."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.admin("GET", f"/v1/contexts/{ctx}/events?after={after}&limit=1000", ok=(200, 404))
            if page.get("error", {}).get("code") == "not_found":
                return None
            events.extend(page["events"])
            if not page.get("more"):
                return events
            after = page["last_revision"]


def judge(rec: Recorded) -> tuple[list[str], dict[str, Any]]:
    """Every check of docs/robustness.md over a recorded run: the
    violations, and the run's figures."""
    violations: list[str] = list(rec.stats.unexpected)
    by_ctx: dict[str, list[Op]] = {}
    for op in rec.record:
        by_ctx.setdefault(op.ctx, []).append(op)
    histories = 0
    watch_events = 0
    for ctx, events in rec.logs.items():
        if events is None:
            violations.append(f"{ctx}: the context's creation was acknowledged, and it is gone")
            continue
        log = checks.Log(ctx, events)
        ops = by_ctx.get(ctx, [])
        violations.extend(checks.check_log(log, ops))
        violations.extend(checks.check_reads_at(log, ops, TTL_KEYS))
        violations.extend(checks.check_fencing(log, ops))
        history, bad = checks.patch_unknown(log, ops)
        violations.extend(bad)
        violations.extend(checks.check_linearizable(log, history))
        histories += 1
        entries, revision = rec.listed[ctx]
        # Entries with a TTL may expire between the list and the log read:
        # they are left out of this comparison.
        violations.extend(checks.check_final(log, entries, revision, TTL_KEYS))
        for conn in rec.connections:
            if conn.ctx != ctx:
                continue
            must = rec.last.get(ctx) if conn.ended == "end" else None
            bad, n = checks.check_watch(log, conn, must)
            violations.extend(bad)
            watch_events += n
    for start, end, refused, reads, recovered in rec.disk_windows:
        if refused == 0:
            violations.append(f"disk full for {end - start:.1f} s: no write was refused with storage_full")
        if reads == 0:
            violations.append(f"disk full for {end - start:.1f} s: no read was answered")
        if recovered is None:
            violations.append("disk full: no write went through within 30 s once the disk had space again")
    figures = {
        "store": rec.store,
        "seed": rec.seed,
        "minutes": rec.minutes,
        "histories": histories,
        "operations": len(rec.record),
        "unknown_outcomes": sum(1 for op in rec.record if op.out is None),
        # Requests that could not connect (a node was down): not sent, not
        # recorded.
        "not_sent": rec.stats.not_sent,
        "storage_full_refusals": rec.stats.storage_full,
        "reads_answered_while_full": rec.stats.reads_ok_while_full,
        "other_5xx_while_full": dict(rec.stats.errors_while_full),
        # Per window: seconds full, writes refused, reads answered, seconds
        # until a write went through after.
        "disk_full_windows": [[round(end - start, 1), refused, reads, recovered] for start, end, refused, reads, recovered in rec.disk_windows],
        "watch_connections": len(rec.connections),
        "watch_events": watch_events,
        "faults": rec.faults,
        "violations": len(violations),
    }
    return violations, figures


def report(figures: dict[str, Any], violations: list[str], faults: dict[str, int]) -> None:
    """Prints the violations (the first fifty), the faults and the closing line."""
    for v in violations[:50]:
        print("violation:", v, file=sys.stderr)
    if violations:
        kinds = Counter(violation_kind(v) for v in violations)
        print("violations by kind: " + ", ".join(f"{k}: {n}" for k, n in kinds.most_common()), file=sys.stderr)
    total = sum(v for k, v in faults.items() if k in TOTALS)
    print(", ".join(f"{k}: {v}" for k, v in sorted(faults.items())))
    print(
        f"robust: {figures['store']} {figures['histories']} histories, {figures['operations']} operations, "
        f"{total} faults, {figures['watch_events']} watch events checked: {len(violations)} violations"
    )


def recheck(path: str) -> int:
    """Judges a recorded run again (after a change to the checkers)."""
    with open(path, "rb") as f:
        recorded = pickle.load(f)
    violations, figures = judge(recorded)
    report(figures, violations, recorded.faults)
    return 1 if violations else 0


# The fault kinds the closing line adds up (the per-failpoint lines are
# details of "failpoint crash" and "failpoint ioerr").
TOTALS = {"kill -9", "failpoint crash", "failpoint ioerr", "power cut", "disk full", "pg_terminate_backend", "PostgreSQL restart"}


VIOLATION_KINDS = [
    "acknowledged write lost", "acknowledged delete", "creation was acknowledged", "refused write took effect",
    "no client wrote it", "written", "took effect in part", "gaps", "out of order", "not linearizable",
    "inconclusive", "read of", "final state", "token", "ordered", "unique", "atomic", "reliable", "bookmark",
    "disk full", "died", "answer",
]


def violation_kind(violation: str) -> str:
    """A short name for a violation, to count them by kind."""
    for kind in VIOLATION_KINDS:
        if kind in violation:
            return "unexpected answer" if kind == "answer" else kind
    return "other"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.recheck:
        return recheck(args.recheck)
    if args.store is None:
        raise SystemExit("robust: --store sqlite|postgres is required")
    return asyncio.run(Run(args).run())


if __name__ == "__main__":
    sys.exit(main())
