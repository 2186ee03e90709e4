"""The newcomer path of the READMEs runs as written, from a fresh data directory.

Each test starts ``ctxmesh serve`` (the ``$CTXMESH_BIN`` binary, in place
of ``cargo run --release -- serve``) in a fresh temporary working
directory, as the README says: no arguments, so its data directory is
``./ctxmesh-data`` there and it writes its admin token to
``ctxmesh-data/admin.token``. Then it runs the README's code blocks in
order, in that directory:

- ``README.md``, section "A five-minute tour": the ``sh`` blocks, as one
  bash script (``set -e``; a variable set in one block is seen by the next,
  as in one terminal), with ``ctxmesh`` on ``PATH`` being ``$CTXMESH_BIN``;
  then its ``python`` blocks;
- ``sdk/python/README.md``: every ``python`` block, in one namespace.

The Python blocks run in a Python process of their own (this
interpreter, where the SDK is installed), one block after the other in
one namespace.

A block is skipped only when the line right before its fence is an HTML
comment ``<!-- not run: <why> -->`` (a watch that streams forever, say).
A block that fails, or does not end (see ``TIMEOUT``), fails the test
with the block's text.

The environment is the test's, without its ``CTXMESH_*`` variables and
with ``XDG_CONFIG_HOME`` pointing into the temporary directory (the server
saves its generated admin token in the per-user credentials file, which
is not the user's to change).

What is substituted: nothing, when port 7600 is free. When it is taken (by
another server on this machine), the server listens on a free port
instead (``--listen``), every ``7600`` in the blocks' text becomes that
port, and ``CTXMESH_URL`` / ``CTXMESH_SERVER`` (the SDK's and the CLI's
default server) name it, so that the blocks reach this server and no
other.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

import ctxmesh
from ctxmesh_server import REPO, server_binary

README = REPO / "README.md"
SDK_README = REPO / "sdk" / "python" / "README.md"
TOUR = "A five-minute tour"
PORT = 7600
# Seconds for all the shell blocks of a README, then for all its Python
# blocks: far more than they take, so that a block that never ends fails.
TIMEOUT = 180.0

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:.*?-->\s*$")
LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class Block:
    """A fenced code block: its language, text, first line in the file, and whether it runs."""

    lang: str
    text: str
    line: int
    runs: bool

    def describe(self, path: Path) -> str:
        return f"{path.name}, line {self.line}:\n```{self.lang}\n{self.text}```"


def blocks(path: Path, section: Optional[str] = None) -> List[Block]:
    """The fenced blocks of ``path`` (of its ``## section`` only, when given)."""
    text = path.read_text()
    offset = 0
    if section is not None:
        start = text.index(f"## {section}\n")
        end = text.find("\n## ", start + 1)
        offset = start
        text = text[start : end if end != -1 else len(text)]
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = (path.read_text()[: offset + match.start()]).count("\n") + 1
        found.append(Block(match.group(1), match.group(2), line, runs=not NOT_RUN.search(before)))
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ReadmeServer:
    """``ctxmesh serve`` started as the README says, in ``cwd``."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.port = PORT if port_is_free(PORT) else 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CTXMESH_")}
        # The server saves the admin token it generates in the per-user
        # credentials file: a config directory of the test's own keeps the
        # user's file as it is.
        self.env["XDG_CONFIG_HOME"] = str(cwd / ".config")
        bin_dir = cwd / ".bin"
        bin_dir.mkdir()
        (bin_dir / "ctxmesh").symlink_to(server_binary().resolve())
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        self.log: List[str] = []
        args = ["ctxmesh", "serve"] if self.port == PORT else ["ctxmesh", "serve", "--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = self._wait_for_address()
        self.port = int(url.rsplit(":", 1)[1])
        if self.port != PORT:
            self.env["CTXMESH_URL"] = self.env["CTXMESH_SERVER"] = f"http://127.0.0.1:{self.port}"
        with ctxmesh.Client(url, keepalive=False) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    c.readyz()
                    break
                except ctxmesh.CtxmeshError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def _wait_for_address(self) -> str:
        found: List[str] = []
        announced = threading.Event()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.log.append(line.rstrip("\n"))
                match = LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1).rstrip("/"))
                    announced.set()
            announced.set()

        threading.Thread(target=pump, daemon=True).start()
        if not announced.wait(60) or not found:
            self.stop()
            pytest.fail("ctxmesh serve did not start:\n" + "\n".join(self.log[-20:]))
        return found[0]

    def substitute(self, text: str) -> str:
        """The block's text, with this server's port for 7600 when it could not listen there."""
        return text if self.port == PORT else text.replace(str(PORT), str(self.port))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[ReadmeServer]:
    instance = ReadmeServer(tmp_path)
    try:
        yield instance
    finally:
        instance.stop()


def text_of(stream: Any) -> str:
    """A captured stream as text (a timeout hands it over as bytes)."""
    return stream.decode() if isinstance(stream, bytes) else (stream or "")


def run_blocks(server: ReadmeServer, path: Path, kind: str, blocks_: List[Block], argv: List[str]) -> None:
    """Runs ``argv`` (which prints ``::block N`` before block N and
    ``::done`` at the end), failing with the text of the block that failed
    and the tail of what it printed."""
    try:
        done = subprocess.run(
            argv,
            cwd=server.cwd,
            env=server.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        output, failed, why = done.stdout + done.stderr, done.returncode != 0, f"exit status {done.returncode}"
    except subprocess.TimeoutExpired as e:
        output = text_of(e.stdout) + text_of(e.stderr)
        failed, why = True, "it did not end (mark a block that streams forever with <!-- not run: ... -->)"
    if not failed and "::done" not in output:
        failed, why = True, "the blocks did not all run"
    if failed:
        started = re.findall(r"^::block (\d+)$", output, re.M)
        block = blocks_[int(started[-1])] if started else blocks_[0]
        pytest.fail(
            f"a {kind} block of the README failed ({why}):\n{block.describe(path)}\n"
            f"--- output (tail) ---\n{output[-3000:]}",
            pytrace=False,
        )


def run_shell(server: ReadmeServer, path: Path, shell: List[Block]) -> None:
    """Runs the blocks as one bash script."""
    script = ["set -e -o pipefail"]
    for i, block in enumerate(shell):
        script.append(f"echo '::block {i}' >&2")
        script.append(server.substitute(block.text))
    script.append("echo '::done' >&2")
    run_blocks(server, path, "shell", shell, ["bash", "-c", "\n".join(script)])


RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    for i, text in enumerate(blocks):
        print(f"::block {i}", flush=True)
        try:
            exec(compile(text, f"<README block {i}>", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"::failed {i}", flush=True)
            sys.exit(1)
    print("::done", flush=True)
    """
)


def run_python(server: ReadmeServer, path: Path, python: List[Block]) -> None:
    """Runs the blocks in order in one namespace, in a process of their own."""
    import json

    (server.cwd / ".blocks.json").write_text(json.dumps([server.substitute(b.text) for b in python]))
    (server.cwd / ".runner.py").write_text(RUNNER)
    run_blocks(server, path, "Python", python, [sys.executable, ".runner.py", ".blocks.json"])


def test_the_five_minute_tour_runs_as_written(readme_server: ReadmeServer) -> None:
    tour = blocks(README, TOUR)
    shell = [b for b in tour if b.lang in ("sh", "bash", "shell") and b.runs]
    python = [b for b in tour if b.lang == "python" and b.runs]
    assert shell, f"no shell block in the section {TOUR!r} of {README}"
    run_shell(readme_server, README, shell)
    if python:
        run_python(readme_server, README, python)


def test_the_python_sdk_readme_runs_as_written(readme_server: ReadmeServer) -> None:
    python = [b for b in blocks(SDK_README) if b.lang == "python" and b.runs]
    assert len(python) > 10
    run_python(readme_server, SDK_README, python)


def test_the_block_finder() -> None:
    sample = textwrap.dedent(
        """\
        # T

        ## A five-minute tour

        ```sh
        echo one
        ```

        <!-- not run: streams forever -->
        ```sh
        tail -f /dev/null
        ```

        ```python
        print(2)
        ```

        ## Next

        ```sh
        echo other
        ```
        """
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "README.md"
        path.write_text(sample)
        found = blocks(path, TOUR)
        assert [(b.lang, b.text, b.runs) for b in found] == [
            ("sh", "echo one\n", True),
            ("sh", "tail -f /dev/null\n", False),
            ("python", "print(2)\n", True),
        ]
        assert found[0].line == 5
        assert len(blocks(path)) == 4
