"""The SDK over https: a server with a certificate from a private CA.

The CA and the server's certificate are made here with the openssl command.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import httpx
import pytest

import ctxmesh
from ctxmesh.errors import TransportError
from ctxmesh_server import CtxmeshServer


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(dir: Path, name: str) -> Tuple[Path, Path]:
    key, cert = dir / f"{name}.key", dir / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, cert


def _issue(dir: Path, ca: Tuple[Path, Path], san: str) -> Tuple[Path, Path]:
    key, csr, cert, ext = dir / "server.key", dir / "server.csr", dir / "server.pem", dir / "server.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ctxmesh",
             "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return key, cert


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[CtxmeshServer, Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test CA", pytrace=False)
    dir = tmp_path_factory.mktemp("tls")
    ca = _make_ca(dir, "test-ca")
    other_ca = _make_ca(dir, "other-ca")
    key, cert = _issue(dir, ca, "DNS:localhost,IP:127.0.0.1")
    server = CtxmeshServer(
        dir / "data",
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key)],
        env={"CTXMESH_CA_FILE": str(ca[1])},
    ).start()
    try:
        yield server, ca[1], other_ca[1]
    finally:
        server.stop()


def test_the_client_speaks_https_with_the_ca_it_is_given(tls_server: Tuple[CtxmeshServer, Path, Path]) -> None:
    server, ca, _ = tls_server
    assert server.url.startswith("https://")
    with ctxmesh.Client(server.url, token=server.admin_token, ca_file=str(ca), keepalive=False) as c:
        c.create_context("tls-py")
        c.put("tls-py", "k", {"over": "tls"})
        assert c.get("tls-py", "k").value == {"over": "tls"}


def test_ca_file_defaults_to_the_environment(
    tls_server: Tuple[CtxmeshServer, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca, _ = tls_server
    monkeypatch.setenv("CTXMESH_CA_FILE", str(ca))
    with ctxmesh.Client(server.url, token=server.admin_token, keepalive=False) as c:
        assert c.readyz() is not None


async def test_the_async_client_too(tls_server: Tuple[CtxmeshServer, Path, Path]) -> None:
    server, ca, _ = tls_server
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token, ca_file=str(ca), keepalive=False) as c:
        assert await c.readyz() is not None


def test_a_certificate_from_another_ca_is_refused(
    tls_server: Tuple[CtxmeshServer, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, other = tls_server
    monkeypatch.delenv("CTXMESH_CA_FILE", raising=False)
    for ca_file in (str(other), None):
        with ctxmesh.Client(server.url, token=server.admin_token, ca_file=ca_file, keepalive=False) as c:
            with pytest.raises(TransportError) as refused:
                c.readyz()
            assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) or isinstance(
                refused.value.__cause__, httpx.ConnectError
            ), refused.value


def test_a_refused_certificate_says_what_to_do_and_ends_a_watch(
    tls_server: Tuple[CtxmeshServer, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca, other = tls_server
    monkeypatch.delenv("CTXMESH_CA_FILE", raising=False)
    with ctxmesh.Client(server.url, token=server.admin_token, ca_file=str(ca), keepalive=False) as c:
        c.create_context("tls-watch")
    with ctxmesh.Client(server.url, token=server.admin_token, ca_file=str(other), keepalive=False) as c:
        with pytest.raises(TransportError) as refused:
            c.get_context("tls-watch")
        assert "pass the CA's certificate as ca_file=" in str(refused.value)
        assert server.admin_token not in str(refused.value)
        # A watch does not reconnect forever into the same refusal: it ends
        # with it, at once.
        ended: List[BaseException] = []

        def watch() -> None:
            try:
                for _ in c.watch("tls-watch", after=0):
                    pass
            except BaseException as e:  # noqa: BLE001 - the test inspects it
                ended.append(e)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the watch kept reconnecting"
        assert len(ended) == 1 and isinstance(ended[0], TransportError), ended
        assert "ca_file=" in str(ended[0])
        assert ended[0].__cause__ is None and ended[0].__context__ is None  # nothing carries the request


async def test_an_async_watch_ends_on_a_refused_certificate(tls_server: Tuple[CtxmeshServer, Path, Path]) -> None:
    server, _, other = tls_server
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token, ca_file=str(other), keepalive=False) as c:

        async def first() -> None:
            async for _ in c.watch("tls-watch", after=0):
                return

        with pytest.raises(TransportError, match="ca_file="):
            await asyncio.wait_for(first(), timeout=30)
