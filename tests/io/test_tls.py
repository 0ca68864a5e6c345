"""wss:// with rapidws.tls's contexts: certificates made by trustme, both roles."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rapidws
from rapidws.tls import client_context, server_context

from ..asyncio.helpers import write_cert

trustme = pytest.importorskip("trustme")


class Certs:
    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        self.folder = folder
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.server = self._pair("server", self.ca.issue_cert("127.0.0.1", "localhost"))
        self.a = self._pair("a", self.ca.issue_cert("a.example"))
        self.b = self._pair("b", self.ca.issue_cert("b.example"))
        self.client = self._pair(
            "client", self.ca.issue_cert("client@example", common_name="alice")
        )
        self.stranger = self._pair("stranger", self.other_ca.issue_cert("client@example"))

    def _write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        return str(path)

    def _pair(self, name: str, cert: Any) -> tuple[str, str]:
        return write_cert(cert, self.folder, name)


@pytest.fixture
def certs(tmp_path: Path) -> Iterator[Certs]:
    yield Certs(tmp_path)


async def hello(ws: rapidws.ServerConnection) -> None:
    cert = ws.peer_certificate
    subject = dict(item[0] for item in cert["subject"]) if cert else {}
    ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
    alpn = ssl_object.selected_alpn_protocol() if ssl_object else None
    async for message in ws:
        await ws.send(f"{message} from {subject.get('commonName', 'anonymous')} over {alpn}")


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_the_same_conversation_over_ws_and_wss(scheme: str, certs: Certs) -> None:
    server_ssl = server_context(*certs.server) if scheme == "wss" else None
    client_ssl = client_context(ca=certs.ca_file) if scheme == "wss" else None
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"{scheme}://127.0.0.1:{port}/", ssl=client_ssl) as ws:
            await ws.send("hi")
            expected = "hi from anonymous over " + ("http/1.1" if scheme == "wss" else "None")
            assert await ws.recv() == expected
            await ws.send("x" * 2**19)  # spans many TLS records
            assert (await ws.recv()).startswith("x" * 2**19 + " from")


async def test_mutual_tls_accepted_shows_the_client_certificate(certs: Certs) -> None:
    server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
    client_ssl = client_context(ca=certs.ca_file, certfile=certs.client[0], keyfile=certs.client[1])
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with rapidws.connect(f"wss://127.0.0.1:{port}/", ssl=client_ssl) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi from alice over http/1.1"


@pytest.mark.parametrize("who", ["no certificate", "another CA's"])
async def test_mutual_tls_refuses_other_clients(who: str, certs: Certs) -> None:
    server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
    if who == "no certificate":
        client_ssl = client_context(ca=certs.ca_file)
    else:
        client_ssl = client_context(
            ca=certs.ca_file, certfile=certs.stranger[0], keyfile=certs.stranger[1]
        )
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        uri = f"wss://127.0.0.1:{port}/"
        # TLS 1.3: the client finishes its handshake before the server checks
        # its certificate; asyncio's TLS server then closes without its alert,
        # so the client learns it when it reads the HTTP response.
        with pytest.raises((rapidws.InvalidHandshake, ssl.SSLError)) as caught:
            await rapidws.connect(uri, ssl=client_ssl, open_timeout=5)
        assert "certificate" in str(caught.value).lower()
        good = client_context(ca=certs.ca_file, certfile=certs.client[0], keyfile=certs.client[1])
        async with rapidws.connect(uri, ssl=good) as ws:  # the server keeps serving
            await ws.send("hi")
            assert await ws.recv() == "hi from alice over http/1.1"


async def test_sni_picks_the_certificate_per_host_name(certs: Certs) -> None:
    server_ssl = server_context(*certs.server, sni={"a.example": certs.a, "B.example": certs.b})
    client_ssl = client_context(ca=certs.ca_file)
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        for name in ("a.example", "b.example", "localhost"):
            # server_hostname: the name sent in SNI and checked against the certificate.
            async with rapidws.connect(
                f"wss://127.0.0.1:{port}/", ssl=client_ssl, server_hostname=name
            ) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi from anonymous over http/1.1"
        with pytest.raises(ssl.SSLCertVerificationError):
            await rapidws.connect(
                f"wss://127.0.0.1:{port}/", ssl=client_ssl, server_hostname="c.example"
            )


async def test_no_verification_is_explicit_and_logged(
    certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_context(*certs.server)) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        uri = f"wss://127.0.0.1:{port}/"
        with pytest.raises(ssl.SSLCertVerificationError):
            await rapidws.connect(uri, ssl=client_context())  # the system's CAs: unknown CA
        with caplog.at_level(logging.WARNING, logger="rapidws"):
            insecure = client_context(verify=False)
        assert "verification is off" in caplog.text
        async with rapidws.connect(uri, ssl=insecure) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi from anonymous over http/1.1"


def test_bad_arguments(certs: Certs) -> None:
    with pytest.raises(ValueError):
        server_context(*certs.server, client_ca=certs.ca_file, client_cert="sometimes")
    with pytest.raises(FileNotFoundError):
        server_context("/nonexistent.pem")
