"""The `ctxmesh serve` processes under test, and the faults done to them
from outside: kill -9, restarts with failpoints, a power cut, a full
disk, and for PostgreSQL killed backends and a restarted database."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ctxmesh serve` process, restarted as often as the run needs."""

    def __init__(self, index: int, binary: str, data_dir: Path, store: str | None, log_dir: Path,
                 commit_log: bool = False) -> None:
        self.index = index
        self.commit_log = commit_log
        self.binary = binary
        self.data_dir = data_dir
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"node{index}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.failpoints = ""
        self.incarnations = 0
        # Failpoint firings seen in the log: (name, action).
        self.fired: list[tuple[str, str]] = []
        self._log_offset = 0

    async def start(self, failpoints: str = "") -> None:
        self.failpoints = failpoints
        self.incarnations += 1
        args = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                "--auth", "off", "--expiry-interval-ms", "200"]
        if self.store:
            args += ["--store", self.store, "--pool-size", "8"]
        elif self.commit_log:
            # Small commit log segments: closed and removed many times a run.
            args += ["--commit-log", "--log-segment-bytes", "262144"]
        env = dict(os.environ)
        env["CTXMESH_LOG"] = "warn,ctxmesh_store::faults=warn"
        env.pop("FAILPOINTS", None)
        if failpoints:
            env["FAILPOINTS"] = failpoints
        log = open(self.log_path, "ab")
        log.write(f"\n== start {self.incarnations} failpoints={failpoints!r} at {time.time():.3f}\n".encode())
        log.flush()
        self.process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        await self.ready()

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    if self.failpoints and self.process.returncode == -signal.SIGABRT:
                        return  # a failpoint crashed it already (the caller looks)
                    raise RuntimeError(f"node {self.index} exited with {self.process.returncode} while starting; see {self.log_path}")
                try:
                    r = await http.get(self.url + "/readyz")
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"node {self.index} not ready after {timeout} s; see {self.log_path}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            await self.process.wait()
        self.scan_log()

    async def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                await self.kill()
        self.scan_log()

    def scan_log(self) -> None:
        """Counts the failpoints that fired since the last look."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
                self._log_offset = f.tell()
        except FileNotFoundError:
            return
        for line in text.splitlines():
            m = re.search(r"failpoint fired: (\S+) crash", line)
            if m:
                self.fired.append((m.group(1), "crash"))
                continue
            if "failpoint fired" in line and "ioerr" in line:
                m = re.search(r'failpoint="?([\w:]+)', line)
                self.fired.append((m.group(1) if m else "?", "ioerr"))


def wal_backfilled(shm: Path) -> int:
    """Frames of the WAL a checkpoint has copied into the database file
    (`nBackfill` of the wal-index in the -shm file): the WAL was synced up
    to them before they were copied, so no power cut takes them."""
    if not shm.exists() or shm.stat().st_size < 100:
        return 0
    return struct.unpack("<I", shm.read_bytes()[96:100])[0]


def tear_wal_tail(wal: Path, rng: random.Random, lose_commits: bool) -> str:
    """Leaves the WAL as a power cut leaves it. Without the commit log,
    SQLite syncs each commit: only the frames after the last commit (whose
    batch nobody was answered for) are damaged. With the commit log as the
    durability point (`lose_commits`), SQLite commits without syncing, so a
    power cut may also take any of its commits since the WAL was last
    synced (before a checkpoint copied frames into the database file);
    those are given back by the log on start. So: the WAL is cut at the
    last commit (or, with `lose_commits`, at a random commit after the
    frames a checkpoint copied), the frames after it are cut at a random
    byte or corrupted, and a torn partial frame is appended. Returns what
    was done."""
    if not wal.exists() or wal.stat().st_size < 32:
        with open(wal, "ab") as f:
            f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        return "garbage WAL header"
    data = bytearray(wal.read_bytes())
    page_size = struct.unpack(">I", data[8:12])[0]
    salt = data[16:24]
    frame = 24 + page_size
    synced = 32 + wal_backfilled(wal.with_name(wal.name[:-len("-wal")] + "-shm")) * frame
    # The ends of the commit frames, in order.
    commits = [32]
    pos = 32
    while pos + frame <= len(data):
        header = data[pos:pos + 24]
        if header[8:16] != salt:
            break
        if struct.unpack(">I", header[4:8])[0] != 0:
            commits.append(pos + frame)
        pos += frame
    what = []
    kept = [c for c in commits if c >= synced] or [commits[-1]]
    end_commit = rng.choice(kept) if lose_commits else commits[-1]
    lost = sum(1 for c in commits if c > end_commit)
    if lost:
        what.append(f"lost the last {lost} of {len(commits) - 1} commits")
    tail = pos - end_commit
    del data[pos:]
    if tail > 0 and rng.random() < 0.5:
        cut = end_commit + rng.randrange(tail)
        del data[cut:]
        what.append(f"cut {tail - (cut - end_commit)} of {tail} bytes after the last commit kept")
    elif tail > 0:
        for _ in range(8):
            i = end_commit + rng.randrange(tail)
            data[i] ^= 0xFF
        what.append(f"corrupted the {tail} bytes after the last commit kept")
    # A torn next frame: a valid-looking header with the current salt and
    # a partial page.
    torn = bytearray(struct.pack(">II", rng.randrange(1, 1000), rng.choice([0, 1000])) + bytes(salt) + bytes(8))
    torn += bytes(rng.randrange(256) for _ in range(rng.randrange(0, page_size)))
    data += torn
    what.append(f"appended a torn frame of {len(torn)} bytes")
    wal.write_bytes(bytes(data))
    return ", ".join(what)


def tear_log_tail(log_dir: Path, rng: random.Random) -> str:
    """Leaves the commit log as a power cut in the middle of an append
    leaves it: a part of a record (never synced, never acknowledged) after
    the last whole one of the newest segment. Returns what was done."""
    segments = sorted(log_dir.glob("*.log"))
    if not segments:
        return "no commit log"
    length = rng.randrange(16, 4096)
    record = struct.pack("<IIQ", length, rng.randrange(1 << 32), rng.randrange(1 << 40))
    record += bytes(rng.randrange(256) for _ in range(rng.randrange(0, length)))
    cut = rng.randrange(1, len(record))
    with open(segments[-1], "ab") as f:
        f.write(record[:cut])
    return f"appended {cut} bytes of a {len(record)}-byte record to {segments[-1].name}"


class SmallDisk:
    """A size-limited tmpfs for the embedded store's data directory, and a
    filler file that takes all its free space (ENOSPC) until it is removed."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.filler = path / "filler"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        run_root(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.path)])

    def unmount(self) -> None:
        subprocess.run(as_root(["umount", "-l", str(self.path)]), check=False, capture_output=True)

    def fill(self) -> int:
        """Fills the disk; the bytes written."""
        written = 0
        chunk = 1 << 20
        with open(self.filler, "wb", buffering=0) as f:
            while chunk >= 512:
                try:
                    f.write(b"\0" * chunk)
                    written += chunk
                except OSError:
                    chunk //= 2
        return written

    def free(self) -> None:
        try:
            self.filler.unlink()
        except FileNotFoundError:
            pass


def as_root(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return args
    return ["sudo", "-n"] + args


def run_root(args: list[str]) -> None:
    done = subprocess.run(as_root(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (root is needed): {done.stderr.strip()}")


class Postgres:
    """The PostgreSQL server under the nodes: a database of the run's own,
    its backends killed, the server restarted."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{database}"

    def psql(self, url: str, sql: str) -> str:
        done = subprocess.run(["psql", url, "-Atqc", sql], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create(self) -> None:
        self.psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.psql(self.admin_url, f'CREATE DATABASE "{self.database}"')

    def drop(self) -> None:
        try:
            self.psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except (RuntimeError, subprocess.TimeoutExpired):
            pass

    def terminate_backends(self) -> int:
        """Kills every backend of the run's database, in the middle of
        whatever transaction it is in."""
        out = self.psql(
            self.admin_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()",
        )
        return int(out or 0)

    @staticmethod
    def restart_command() -> list[str] | None:
        """How to restart the local server (Debian's cluster tools)."""
        if not shutil.which("pg_lsclusters"):
            return None
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
        if len(out) < 2:
            return None
        return as_root(["pg_ctlcluster", "--skip-systemctl-redirect", out[0], out[1], "restart", "-m", "immediate"])

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.psql(self.admin_url, "SELECT 1") == "1":
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("PostgreSQL did not come back")
