"""wss:// with rapidws.tls's contexts: certificates made by trustme, both roles."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rapidws
import rapidws.sync
from rapidws.exceptions import TLSAlert
from rapidws.io.tls_server import AlertingSSLObject, send_alerts
from rapidws.tls import client_context, server_context

from ..asyncio.helpers import write_cert
from .conftest import LoopRunner

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


def refused_client(certs: Certs, who: str) -> ssl.SSLContext:
    if who == "no certificate":
        return client_context(ca=certs.ca_file)
    return client_context(ca=certs.ca_file, certfile=certs.stranger[0], keyfile=certs.stranger[1])


async def good_client_is_served(uri: str, certs: Certs) -> None:
    good = client_context(ca=certs.ca_file, certfile=certs.client[0], keyfile=certs.client[1])
    async with rapidws.connect(uri, ssl=good) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi from alice over http/1.1"


@pytest.mark.parametrize("client", ["asyncio", "sync"])
@pytest.mark.parametrize(
    ("who", "alert", "message"),
    [
        ("no certificate", "certificate required", "requires a TLS client certificate and none"),
        ("another CA's", "unknown ca", "the server refused the TLS client certificate"),
    ],
)
def test_mutual_tls_refusal_names_the_alert(
    run: LoopRunner,
    certs: Certs,
    caplog: pytest.LogCaptureFixture,
    client: str,
    who: str,
    alert: str,
    message: str,
) -> None:
    """TLS 1.3: the client's handshake is over when the server refuses its
    certificate (RFC 8446 4.4.2.4); the server's alert tells it why."""
    client_ssl = refused_client(certs, who)

    async def main() -> None:
        server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
        # aiofastnet's TLS sends no alert (see test_aiofastnet_server_sends_no_alert).
        async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl, fastnet=False) as server:
            uri = f"wss://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
            with pytest.raises(TLSAlert) as caught:
                if client == "asyncio":
                    await rapidws.connect(uri, ssl=client_ssl, open_timeout=5)
                else:
                    await asyncio.to_thread(rapidws.sync.connect, uri, ssl=client_ssl)
            assert caught.value.alert == alert
            assert str(caught.value).endswith(f"(TLS alert: {alert})")
            assert message in str(caught.value)
            assert isinstance(caught.value.__cause__, ssl.SSLError)
            await good_client_is_served(uri, certs)  # the server keeps serving

    with caplog.at_level(logging.INFO, logger="rapidws"):
        run(main())
    failed = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failed) == 1, failed  # one line, no traceback
    assert failed[0].exc_info is None
    assert failed[0].getMessage().startswith("TLS handshake failed, alert sent: ")


@pytest.mark.parametrize(
    ("who", "alert"), [("no certificate", "HANDSHAKE_FAILURE"), ("another CA's", "UNKNOWN_CA")]
)
def test_mutual_tls_refusal_over_tls_1_2(
    run: LoopRunner, certs: Certs, who: str, alert: str
) -> None:
    """TLS 1.2: the server refuses during the client's handshake: connect raises the ssl error."""
    client_ssl = refused_client(certs, who)
    client_ssl.maximum_version = ssl.TLSVersion.TLSv1_2

    async def main() -> None:
        server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
        async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl, fastnet=False) as server:
            uri = f"wss://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
            with pytest.raises(ssl.SSLError, match=f"ALERT_{alert}"):
                await rapidws.connect(uri, ssl=client_ssl, open_timeout=5)
            with pytest.raises(ssl.SSLError, match=f"ALERT_{alert}"):
                await asyncio.to_thread(rapidws.sync.connect, uri, ssl=client_ssl)
            await good_client_is_served(uri, certs)

    run(main())


async def test_mutual_tls_with_fastnet_uses_the_loop_tls(certs: Certs) -> None:
    """aiofastnet's TLS closes without the alert of a refused certificate: a server
    asking for client certificates runs on the loop's TLS even with ``fastnet=True``."""
    pytest.importorskip("aiofastnet")
    server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
    async with rapidws.serve(hello, "127.0.0.1", 0, ssl=server_ssl, fastnet=True) as server:
        uri = f"wss://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
        with pytest.raises(rapidws.TLSAlert, match="unknown ca"):
            await rapidws.connect(uri, ssl=refused_client(certs, "another CA's"), fastnet=False)
        await good_client_is_served(uri, certs)


@pytest.mark.parametrize("then", ["sends more", "stays silent"])
def test_after_the_alert_the_server_closes(run: LoopRunner, certs: Certs, then: str) -> None:
    """At once when the refused client sends more; at the handshake's timeout if it
    neither sends nor closes, as for a client that stalls mid-handshake."""
    client_ssl = refused_client(certs, "no certificate")
    timeout = 30 if then == "sends more" else 0.5

    async def main() -> None:
        server_ssl = server_context(*certs.server, client_ca=certs.ca_file)
        async with rapidws.serve(
            hello, "127.0.0.1", 0, ssl=server_ssl, fastnet=False, ssl_handshake_timeout=timeout
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client_ssl.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
            while True:  # the client's side of a TLS 1.3 handshake completes
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    writer.write(outgoing.read())
                    incoming.write(await reader.read(65536))
            writer.write(outgoing.read())
            with pytest.raises(ssl.SSLError, match="ALERT_CERTIFICATE_REQUIRED"):
                while True:
                    try:
                        tls.read(1)
                    except ssl.SSLWantReadError:
                        data = await reader.read(65536)
                        incoming.write(data) if data else incoming.write_eof()
            if then == "sends more":
                writer.write(b"\x17\x03\x03\x00\x20" + bytes(32))  # an application data record
            # The server closes: before its handshake timeout if the client sent more.
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(main())


def test_alerting_sslobject_lets_the_alert_out_then_fails(certs: Certs) -> None:
    """Over memory BIOs: "want read" with the alert written, then the failure, for good."""
    server = send_alerts(server_context(*certs.server, client_ca=certs.ca_file))
    client = refused_client(certs, "no certificate")
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_out, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(to_client, client_out, server_hostname="127.0.0.1")
    tls_server = server.wrap_bio(to_server, server_out, server_side=True)
    assert isinstance(tls_server, AlertingSSLObject)
    with pytest.raises(ssl.SSLWantReadError):
        tls_client.do_handshake()  # ClientHello
    to_server.write(client_out.read())
    with pytest.raises(ssl.SSLWantReadError):
        tls_server.do_handshake()  # ServerHello ... Finished
    to_client.write(server_out.read())
    tls_client.do_handshake()  # TLS 1.3: the client is done, without a certificate
    to_server.write(client_out.read())
    with pytest.raises(ssl.SSLWantReadError, match="the alert goes out first"):
        tls_server.do_handshake()
    to_client.write(server_out.read())  # what a protocol sends on "want read"
    with pytest.raises(ssl.SSLError, match="ALERT_CERTIFICATE_REQUIRED"):
        tls_client.read(1)
    with pytest.raises(ssl.SSLError, match="PEER_DID_NOT_RETURN_A_CERTIFICATE"):
        tls_server.do_handshake()
    with pytest.raises(ssl.SSLError, match="the TLS handshake failed"):
        tls_server.do_handshake()
    assert server_out.pending == 0


def test_send_alerts_sets_the_sslobject_class_unless_the_context_has_its_own() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert send_alerts(context).sslobject_class is AlertingSSLObject

    class Mine(ssl.SSLObject):
        pass

    context.sslobject_class = Mine
    assert send_alerts(context).sslobject_class is Mine


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
