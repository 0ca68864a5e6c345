"""The client as websockets 17's asyncio client: reconnecting, Unix sockets, credentials, timeouts.

Loopback only; servers that go away and come back, never answer, answer
garbage or redirect for ever; a TLS server that refuses client certificates.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest
import trustme

import rapidws
from rapidws.asyncio import client as client_module
from rapidws.asyncio.client import backoff, connect, process_exception, unix_connect
from rapidws.asyncio.options import CREATE_SERVER, check_keywords, option_names
from rapidws.exceptions import InvalidMessage, InvalidRedirect, InvalidStatus, TLSAlert
from rapidws.protocol.headers import Headers
from rapidws.protocol.http11 import Request, RequestParser, Response

from .helpers import echo, port_of, running_server


@pytest.fixture
def tiny_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect at once: backoff() reads the module's constants when called."""
    monkeypatch.setattr(client_module, "BACKOFF_INITIAL_DELAY", 0.0)
    monkeypatch.setattr(client_module, "BACKOFF_MIN_DELAY", 0.001)
    monkeypatch.setattr(client_module, "BACKOFF_MAX_DELAY", 0.002)


class Seen:
    """What a raw server saw: a whole request head, and the client's connection end."""

    def __init__(self) -> None:
        self.request = asyncio.Event()
        self.gone = asyncio.Event()


@contextlib.asynccontextmanager
async def raw_server(
    answer: bytes | None, *, then_close: bool = False
) -> AsyncIterator[tuple[str, Seen]]:
    """A TCP server that reads a request's head, then sends ``answer`` (None: nothing).

    With ``then_close`` it closes after the answer; else it waits for the client's EOF.
    """
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RequestParser()
        buffer = b""
        try:
            while parser.parse(buffer) is None:
                data = await reader.read(4096)
                if not data:
                    return
                buffer += data
            seen.request.set()
            if answer is not None:
                writer.write(answer)
            if then_close:
                await writer.drain()
                return
            while await reader.read(4096):
                pass
            seen.gone.set()
        except ConnectionError:
            seen.gone.set()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/", seen
    finally:
        server.close()


def reject(status: int) -> Any:
    """A process_request that answers ``status``."""

    def process_request(ws: rapidws.ServerConnection, request: Request) -> Response:
        return ws.handshake.reject(status, "no")

    return process_request


# --- 1. the reconnecting iterator --------------------------------------------------


async def test_reconnects_when_the_server_goes_away_and_comes_back(tiny_backoff: None) -> None:
    async def greet(ws: rapidws.ServerConnection) -> None:
        await ws.send("hello")

    server = await rapidws.serve(greet, "127.0.0.1", 0)
    port = port_of(server)
    restarted: list[asyncio.Task[rapidws.Server]] = []
    failures: list[Exception] = []

    def count_and_restart(exc: Exception) -> Exception | None:
        failures.append(exc)
        if len(failures) > 200:
            return exc  # a bound: the test fails instead of spinning
        if not restarted:  # the server comes back while the client retries
            restarted.append(asyncio.ensure_future(rapidws.serve(greet, "127.0.0.1", port)))
        return process_exception(exc)

    received = []
    async for ws in connect(f"ws://127.0.0.1:{port}/", process_exception=count_and_restart):
        received.append(await ws.recv())
        if len(received) == 1:
            server.close()
            await server.wait_closed()  # gone: the next attempts are refused
        else:
            break
    assert received == ["hello", "hello"]
    assert failures and all(isinstance(exc, OSError) for exc in failures)
    assert len(failures) <= 200, len(failures)
    (await restarted[0]).close()
    await (await restarted[0]).wait_closed()


async def test_5xx_is_transient_and_the_backoff_restarts_after_a_success(
    tiny_backoff: None,
) -> None:
    answers = iter([503, 502, None, 500, None])
    delays_made = []

    def process_request(ws: rapidws.ServerConnection, request: Request) -> Response | None:
        status = next(answers)
        return None if status is None else ws.handshake.reject(status, "busy")

    def delays() -> Generator[float, None, None]:
        delays_made.append(1)
        yield from backoff()

    async with running_server(process_request=process_request) as (_, uri):
        opened = 0
        async for ws in connect(uri, reconnect_delays=delays):
            opened += 1
            await ws.send("x")
            assert await ws.recv() == "x"
            if opened == 2:
                break
    # 503, 502: one generator; open; 500: a new one.
    assert delays_made == [1, 1]


async def test_a_fatal_error_ends_the_loop(tiny_backoff: None) -> None:
    async with running_server(process_request=reject(403)) as (_, uri):
        with pytest.raises(InvalidStatus) as info:
            async for _ in connect(uri):
                pytest.fail("connected")
    assert info.value.response.status_code == 403


async def test_process_exception_decides(tiny_backoff: None) -> None:
    seen: list[int] = []

    def retry_403_twice(exc: Exception) -> Exception | None:
        assert isinstance(exc, InvalidStatus)
        seen.append(exc.response.status_code)
        if len(seen) < 3:
            return None
        raise RuntimeError("enough")  # raising works as returning, as in websockets

    async with running_server(process_request=reject(403)) as (_, uri):
        with pytest.raises(RuntimeError, match="enough") as info:
            async for _ in connect(uri, process_exception=retry_403_twice):
                pytest.fail("connected")
    assert seen == [403, 403, 403]
    assert isinstance(info.value.__cause__, InvalidStatus)


async def test_reconnect_attempts_are_logged(
    tiny_backoff: None, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([503, None])

    def process_request(ws: rapidws.ServerConnection, request: Request) -> Response | None:
        status = next(answers)
        return None if status is None else ws.handshake.reject(status, "busy")

    caplog.set_level(logging.INFO, "rapidws.client")
    async with running_server(process_request=process_request) as (_, uri):
        async for _ in connect(uri):
            break
    assert "connect failed; reconnecting in 0.0 seconds: " in caplog.text
    assert "HTTP 503" in caplog.text
    assert {record.name for record in caplog.records} == {"rapidws.client"}
    caplog.clear()
    answers = iter([503, None])
    caplog.set_level(logging.INFO, "mine")
    async with running_server(process_request=process_request) as (_, uri):
        async for _ in connect(uri, logger=logging.getLogger("mine")):
            break
    assert [record.name for record in caplog.records] == ["mine"]


def test_process_exception_as_websockets() -> None:
    transient = [
        ConnectionRefusedError(),
        TimeoutError("x"),
        asyncio.TimeoutError(),
        InvalidStatus(Response(503, "", Headers())),
    ]
    eof = InvalidMessage("closed")
    eof.__cause__ = EOFError()
    transient.append(eof)
    for exc in transient:
        assert process_exception(exc) is None, exc
    fatal = [
        InvalidStatus(Response(403, "", Headers())),
        InvalidMessage("garbage"),
        TLSAlert("refused", "unknown ca"),
        ValueError(),
    ]
    for exc in fatal:
        assert process_exception(exc) is exc


def test_backoff_matches_websockets() -> None:
    delays = backoff(initial_delay=5, min_delay=3.1, max_delay=90.0, factor=1.618)
    first = next(delays)
    assert 0 <= first <= 5
    following = [next(delays) for _ in range(10)]
    assert following[:3] == pytest.approx([3.1, 3.1 * 1.618, 3.1 * 1.618**2])
    assert following[-1] == 90.0
    defaults = (
        client_module.BACKOFF_INITIAL_DELAY,
        client_module.BACKOFF_MIN_DELAY,
        client_module.BACKOFF_MAX_DELAY,
        client_module.BACKOFF_FACTOR,
        client_module.MAX_REDIRECTS,
    )
    if not any(name.startswith(("RAPIDWS_BACKOFF", "WEBSOCKETS_BACKOFF")) for name in os.environ):
        assert defaults[:4] == (5.0, 3.1, 90.0, 1.618)


def test_backoff_constants_from_the_environment() -> None:
    code = (
        "from rapidws.asyncio import client as c; "
        "print(c.BACKOFF_INITIAL_DELAY, c.BACKOFF_MIN_DELAY, c.BACKOFF_MAX_DELAY, "
        "c.BACKOFF_FACTOR, c.MAX_REDIRECTS)"
    )
    env = dict(os.environ)
    env.update(
        WEBSOCKETS_BACKOFF_INITIAL_DELAY="1",  # websockets' names work
        WEBSOCKETS_BACKOFF_MIN_DELAY="0.5",
        RAPIDWS_BACKOFF_MAX_DELAY="7",  # rapidws's come first
        WEBSOCKETS_BACKOFF_MAX_DELAY="8",
        RAPIDWS_BACKOFF_FACTOR="3",
        WEBSOCKETS_MAX_REDIRECTS="4",
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["1.0", "0.5", "7.0", "3.0", "4"]


async def test_async_with_is_not_reentrant() -> None:
    async with running_server() as (_, uri):
        client = connect(uri)
        async with client:
            with pytest.raises(RuntimeError, match="reentrant"):
                await client.__aenter__()


# --- 2. unix_connect -------------------------------------------------------------


@pytest.fixture
def unix_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="rapidws-", dir="/tmp")  # sun_path is short
    try:
        yield os.path.join(directory, "ws.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def unix_server(path: str, **kwargs: Any) -> AsyncIterator[rapidws.Server]:
    """rapidws.serve on a listening Unix socket (the server side's unix_serve is apart)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    async with rapidws.serve(echo, sock=sock, **kwargs) as server:
        yield server


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
async def test_unix_connect(unix_path: str) -> None:
    hosts = []

    def record(ws: rapidws.ServerConnection, request: Request) -> None:
        hosts.append(request.headers["Host"])

    async with unix_server(unix_path, process_request=record):
        async with unix_connect(unix_path) as ws:
            await ws.send("over a Unix socket")
            assert await ws.recv() == "over a Unix socket"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("socket").family == socket.AF_UNIX
        async with unix_connect(unix_path, "ws://chat.example/room") as ws:
            assert ws.request is not None and ws.request.path == "/room"
        # websockets' own spelling works too.
        async with connect("ws://localhost/", unix=True, path=unix_path) as ws:
            await ws.send("again")
            assert await ws.recv() == "again"
    assert hosts == ["localhost", "chat.example", "localhost"]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
async def test_unix_connect_to_nothing_is_an_oserror(unix_path: str) -> None:
    with pytest.raises(FileNotFoundError):
        await unix_connect(unix_path)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
async def test_unix_connect_to_unix_serve(unix_path: str) -> None:
    """With the server side's unix_serve(handler, path), as websockets'."""
    from rapidws.asyncio.server import unix_serve

    async with unix_serve(echo, unix_path), unix_connect(unix_path) as ws:
        await ws.send("both ends")
        assert await ws.recv() == "both ends"


# --- 3. credentials in the URI ---------------------------------------------------


async def test_credentials_in_the_uri_go_as_basic_auth() -> None:
    seen: list[str | None] = []

    def record(ws: rapidws.ServerConnection, request: Request) -> None:
        seen.append(request.headers.get("Authorization"))

    async with running_server(process_request=record) as (server, _):
        uri = f"ws://al%20ice:p%40ss:w@127.0.0.1:{port_of(server)}/"
        async with connect(uri) as ws:
            assert ws.request is not None
            assert ws.request.headers["Host"] == f"127.0.0.1:{port_of(server)}"
        async with connect(f"ws://127.0.0.1:{port_of(server)}/"):
            pass
    expected = "Basic " + base64.b64encode(b"al ice:p@ss:w").decode()
    assert seen == [expected, None]


def test_credentials_in_client_handshake_too() -> None:
    from rapidws.asyncio.opening import make_client_handshake

    handshake = make_client_handshake("ws://u:p@host/", additional_headers={"X-A": "1"})
    headers = handshake.request.headers
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert headers["X-A"] == "1"


@pytest.mark.parametrize("uri", ["ws://user@host/", "ws://us%3Aer:p@host/"])
def test_incomplete_credentials_are_an_invalid_uri(uri: str) -> None:
    with pytest.raises(rapidws.InvalidURI):
        connect(uri)


async def test_cross_origin_redirect_drops_credentials() -> None:
    seen: list[Headers] = []

    def record(ws: rapidws.ServerConnection, request: Request) -> None:
        seen.append(request.headers)

    async with running_server(process_request=record) as (_, target):
        answer = f"HTTP/1.1 302 Found\r\nLocation: {target}/here\r\nContent-Length: 0\r\n\r\n"
        async with raw_server(answer.encode()) as (uri, _):
            headers = {"Authorization": "Bearer t", "Cookie": "c=1", "X-Keep": "1"}
            async with connect(uri, additional_headers=headers) as ws:
                assert ws.request is not None and ws.request.path == "/here"
    assert "Authorization" not in seen[0] and "Cookie" not in seen[0]
    assert seen[0]["X-Keep"] == "1"


def redirect_error(location: str) -> InvalidRedirect:
    return InvalidRedirect(Response(302, "Found", Headers({"Location": location})))


def test_redirect_rules_as_websockets() -> None:
    secure = connect("wss://a.example/")
    result = secure.process_redirect(redirect_error("ws://a.example/"))
    assert isinstance(result, rapidws.SecurityError)
    assert "non-secure" in str(result)
    assert secure.process_redirect(redirect_error("/b")) == "wss://a.example/b"
    assert secure.process_redirect(redirect_error("https://b.example/")) == "wss://b.example/"
    pinned = connect("ws://a.example/", host="127.0.0.1", port=1)
    result = pinned.process_redirect(redirect_error("ws://b.example/"))
    assert isinstance(result, ValueError) and "explicit host or port" in str(result)
    with socket.socket() as sock:
        given = connect("ws://a.example/", sock=sock)
        result = given.process_redirect(redirect_error("/b"))
        assert isinstance(result, ValueError) and "preexisting socket" in str(result)
    unix = unix_connect("/nowhere")
    result = unix.process_redirect(redirect_error("ws://b.example/"))
    assert isinstance(result, ValueError) and "Unix socket" in str(result)


# --- 4. timeouts -----------------------------------------------------------------


def test_open_timeout_is_the_sum() -> None:
    assert connect("ws://h/").open_timeout == 10
    assert connect("ws://h/", connect_timeout=1, handshake_timeout=2).open_timeout == 3
    assert connect("ws://h/", connect_timeout=1).open_timeout == 10
    assert (
        connect("ws://h/", connect_timeout=1, handshake_timeout=2, open_timeout=2.5).open_timeout
        == 2.5
    )
    assert connect("ws://h/", open_timeout=None).open_timeout is None


async def test_handshake_timeout_names_the_phase_and_the_limit() -> None:
    async with raw_server(None) as (uri, seen):
        with pytest.raises(TimeoutError) as info:
            await connect(uri, handshake_timeout=0.1)
        await seen.gone.wait()  # the connection was dropped
    port = uri.rsplit(":", 1)[1].strip("/")
    assert str(info.value) == (
        f"timed out during the opening handshake with 127.0.0.1:{port} "
        "after 0.1 s (handshake_timeout)"
    )


async def test_open_timeout_names_itself_when_it_runs_out_first() -> None:
    async with raw_server(None) as (uri, _):
        with pytest.raises(
            TimeoutError, match=r"opening handshake .* after 0\.1 s \(open_timeout\)"
        ):
            await connect(uri, open_timeout=0.1, handshake_timeout=5)
        with pytest.raises(TimeoutError, match=r"after 0\.1 s \(open_timeout\)"):
            async with connect(uri, open_timeout=0.1):
                pass


async def test_connect_timeout_covers_tls() -> None:
    """A server that accepts TCP and never answers the TLS handshake: the connect phase."""
    gone = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        gone.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    secure = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        with pytest.raises(TimeoutError) as info:
            await connect(secure, connect_timeout=0.1, handshake_timeout=5)
        await gone.wait()  # the connection was dropped
    finally:
        server.close()
    assert str(info.value).startswith("timed out connecting to 127.0.0.1:")
    assert str(info.value).endswith(" after 0.1 s (connect_timeout)")


async def test_timeouts_are_transient_for_the_iterator(tiny_backoff: None) -> None:
    attempts: list[Exception] = []

    def count(exc: Exception) -> Exception | None:
        attempts.append(exc)
        return process_exception(exc) if len(attempts) < 3 else exc

    async with raw_server(None) as (uri, _):
        with pytest.raises(TimeoutError):
            async for _ in connect(uri, handshake_timeout=0.05, process_exception=count):
                pytest.fail("connected")
    assert len(attempts) == 3


async def test_cancelling_connect_drops_the_connection() -> None:
    async with raw_server(None) as (uri, seen):
        task = asyncio.ensure_future(connect(uri, connect_timeout=5).__aenter__())
        await seen.request.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await seen.gone.wait()


# --- 5. TLS client certificates ----------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def mtls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A TLS 1.3 server that requires a client certificate signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    ca.issue_cert("localhost").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: trustme.CA, issuer: trustme.CA | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if issuer is not None:
        issuer.issue_cert("client@example.com").configure_cert(context)
    return context


@contextlib.asynccontextmanager
async def alerting_tls_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS server that sends its alert when it refuses a client (as OpenSSL servers do).

    The TLS runs over memory BIOs, so that the alert is written before the
    connection closes.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    writer.write(outgoing.read())
                    data = await reader.read(65536)
                    if not data:
                        return
                    incoming.write(data)
            # Accepted (TLS 1.2): this test's clients are all refused.
        except ssl.SSLError:
            writer.write(outgoing.read())  # the alert
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("wrong", "message", "alert"),
    [
        (False, "requires a TLS client certificate and none was sent", "certificate required"),
        (True, "refused the TLS client certificate", "unknown ca"),
    ],
)
async def test_refused_client_certificate_is_a_tls_alert(
    ca: trustme.CA, wrong: bool, message: str, alert: str
) -> None:
    issuer = trustme.CA() if wrong else None
    async with alerting_tls_server(mtls_server_context(ca)) as port:
        with pytest.raises(TLSAlert) as info:
            await connect(
                f"wss://127.0.0.1:{port}/",
                ssl=client_context(ca, issuer),
                server_hostname="localhost",
            )
    assert message in str(info.value)
    assert info.value.alert == alert
    assert isinstance(info.value.__cause__, ssl.SSLError)
    assert process_exception(info.value) is info.value  # fatal: no reconnecting


async def test_client_certificates_against_rapidws_server(ca: trustme.CA) -> None:
    server_context = mtls_server_context(ca)
    # fastnet=False: aiofastnet's TLS closes without its alert (see tests/io/test_tls.py).
    async with rapidws.serve(echo, "127.0.0.1", 0, ssl=server_context, fastnet=False) as server:
        uri = f"wss://127.0.0.1:{port_of(server)}/"
        async with connect(uri, ssl=client_context(ca, ca), server_hostname="localhost") as ws:
            await ws.send("with the right certificate")
            assert await ws.recv() == "with the right certificate"
        # rapidws's TLS server sends its alert: the client names it.
        for issuer, alert in ((None, "certificate required"), (trustme.CA(), "unknown ca")):
            with pytest.raises(TLSAlert) as info:
                await connect(uri, ssl=client_context(ca, issuer), server_hostname="localhost")
            assert info.value.alert == alert
            assert isinstance(info.value.__cause__, ssl.SSLError)


# --- 6. unknown keyword arguments -------------------------------------------------


def test_unknown_keyword_is_rejected_at_the_call() -> None:
    with pytest.raises(TypeError) as info:
        connect("ws://127.0.0.1/", open_timout=5)
    assert str(info.value) == (
        "rapidws.connect() got an unexpected keyword argument 'open_timout'; "
        "did you mean 'open_timeout'?"
    )
    with pytest.raises(TypeError, match=r"'local_adr'; did you mean 'local_addr'\?"):
        connect("ws://127.0.0.1/", local_adr=("127.0.0.1", 0))
    with pytest.raises(TypeError, match=r"'xyzzy' \(neither one of its options nor one of "):
        connect("ws://127.0.0.1/", xyzzy=1)
    with pytest.raises(TypeError, match=r"rapidws.unix_connect\(\) .* did you mean 'sock'\?"):
        unix_connect("/tmp/x", sok=None)
    with pytest.raises(TypeError, match="did you mean 'ssl_handshake_timeout'"):
        unix_connect("/tmp/x", ssl_handshake_timeot=1)


async def test_create_connection_keywords_still_go_to_the_loop() -> None:
    async with running_server() as (server, uri):
        async with connect(uri, local_addr=("127.0.0.1", 0), ssl_handshake_timeout=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        # host and port send TCP elsewhere than the URI says; Host stays the URI's.
        async with connect("ws://chat.example/", host="127.0.0.1", port=port_of(server)) as ws:
            assert ws.request is not None and ws.request.headers["Host"] == "chat.example"


def test_check_keywords_for_serve() -> None:
    own = option_names(rapidws.serve.__init__)
    check_keywords("rapidws.serve", {"reuse_port": True}, own=own, passed_to=CREATE_SERVER)
    with pytest.raises(TypeError, match=r"rapidws.serve\(\) .* did you mean 'reuse_port'\?"):
        check_keywords("rapidws.serve", {"reuse_prot": True}, own=own, passed_to=CREATE_SERVER)
    with pytest.raises(TypeError, match="did you mean 'ping_interval'"):
        check_keywords("rapidws.serve", {"ping_intervall": 1}, own=own, passed_to=CREATE_SERVER)


def test_proxies_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotImplementedError, match=r"proxy='http://127.0.0.1:3128'.*proxy=None"):
        connect("ws://127.0.0.1/", proxy="http://127.0.0.1:3128")
    with pytest.raises(NotImplementedError, match=r"proxy_ssl=\.\.\."):
        connect("ws://127.0.0.1/", proxy_ssl=True)


async def test_proxy_true_uses_the_system_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    proxies: dict[str, str] = {}
    monkeypatch.setattr("urllib.request.getproxies", lambda: proxies)
    monkeypatch.setattr("urllib.request.proxy_bypass", lambda host: False)
    async with running_server() as (_, uri):
        async with connect(uri, proxy=True) as ws:  # none configured: direct
            await ws.send("direct")
            assert await ws.recv() == "direct"
        proxies["http"] = "http://127.0.0.1:3128"
        with pytest.raises(
            NotImplementedError, match=r"system's proxy .* is http://127\.0\.0\.1:3128"
        ):
            await connect(uri, proxy=True)


def test_max_size_tuple_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedError, match=r"max_size=\(message, fragment\)"):
        connect("ws://127.0.0.1/", max_size=(2**20, 2**16))  # type: ignore[arg-type]


# --- 7. websockets' other options and attributes -----------------------------------


async def test_request_and_response_attributes() -> None:
    async with running_server(subprotocols=["chat"]) as (_, uri):
        async with connect(
            uri,
            subprotocols=["chat"],
            origin="https://app.example",
            additional_headers=[("X-Token", "t")],
            user_agent_header="probe/1",
        ) as ws:
            assert ws.request is not None and ws.response is not None
            assert ws.request.headers["Origin"] == "https://app.example"
            assert ws.request.headers["X-Token"] == "t"
            assert ws.request.headers["User-Agent"] == "probe/1"
            assert ws.response.status_code == 101
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat"
            assert ws.subprotocol == "chat"
        async with connect(uri, user_agent_header=None) as ws:
            assert ws.request is not None and "User-Agent" not in ws.request.headers


async def test_sock_and_create_connection() -> None:
    class Mine(rapidws.ClientConnection):
        pass

    async with running_server() as (server, uri):
        sock = socket.create_connection(("127.0.0.1", port_of(server)))
        async with connect(uri, sock=sock, create_connection=Mine) as ws:
            assert isinstance(ws, Mine)
            await ws.send("on my socket")
            assert await ws.recv() == "on my socket"


def test_subprotocols_are_checked_at_the_call() -> None:
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1/", subprotocols=["not a token"])


def test_ssl_with_ws_is_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="wss://"):
        connect("ws://127.0.0.1/", ssl=ssl.create_default_context())


# --- hostile servers ---------------------------------------------------------------


async def test_garbage_answer_is_a_clear_invalid_message() -> None:
    async with raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as (uri, _):
        with pytest.raises(InvalidMessage) as info:
            await connect(uri)
    assert str(info.value).startswith("did not receive a valid HTTP response from 127.0.0.1:")
    assert "SSH-2.0-OpenSSH_9.6" in str(info.value)
    assert process_exception(info.value) is info.value


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + b"a" * 200_000, "line too long"),
        (b"HTTP/1.1 101 Switching Protocols\r\n" + b"X: y\r\n" * 5000, "too many headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "body too large"),
    ],
)
async def test_oversized_answers_are_refused(answer: bytes, message: str) -> None:
    async with raw_server(answer) as (uri, _):
        with pytest.raises(rapidws.SecurityError) as info:
            await connect(uri)
    assert str(info.value).startswith("did not receive a valid HTTP response from 127.0.0.1:")
    assert message in str(info.value)


async def test_closing_mid_response_is_transient() -> None:
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs"
    async with raw_server(answer, then_close=True) as (uri, _):
        with pytest.raises(InvalidMessage) as info:
            await connect(uri)
    assert str(info.value) == "connection closed during the opening handshake"
    assert isinstance(info.value.__cause__, EOFError)
    assert process_exception(info.value) is None


async def test_redirect_loop_is_bounded_with_a_clear_error() -> None:
    holder: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {holder[0]}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/loop"
    holder.append(uri)
    try:
        with pytest.raises(
            rapidws.SecurityError, match=r"more than 3 redirects; the last to ws://"
        ):
            await connect(uri, max_redirects=3)
    finally:
        server.close()


async def test_attach_handshake_timeout_names_the_limit() -> None:
    """The connection's own handshake deadline (attach, serve) says its limit too."""
    a, b = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=a)
    try:
        with pytest.raises(
            TimeoutError, match=r"^timed out during the opening handshake after 0.1 s$"
        ):
            await rapidws.attach(reader, writer, uri="ws://peer/", open_timeout=0.1)
    finally:
        writer.close()
        b.close()


# --- the same on uvloop ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("test_reconnects_when_the_server_goes_away_and_comes_back", {}),
        ("test_5xx_is_transient_and_the_backoff_restarts_after_a_success", {}),
        ("test_handshake_timeout_names_the_phase_and_the_limit", {}),
        ("test_connect_timeout_covers_tls", {}),
        ("test_cancelling_connect_drops_the_connection", {}),
        ("test_unix_connect", {}),
        ("test_credentials_in_the_uri_go_as_basic_auth", {}),
        ("test_create_connection_keywords_still_go_to_the_loop", {}),
        ("test_garbage_answer_is_a_clear_invalid_message", {}),
        ("test_closing_mid_response_is_transient", {}),
        ("test_redirect_loop_is_bounded_with_a_clear_error", {}),
        (
            "test_refused_client_certificate_is_a_tls_alert",
            {"wrong": True, "message": "refused the TLS client certificate", "alert": "unknown ca"},
        ),
        ("test_client_certificates_against_rapidws_server", {}),
    ],
)
def test_on_uvloop(
    name: str, args: dict[str, Any], tiny_backoff: None, ca: trustme.CA, unix_path: str
) -> None:
    uvloop = pytest.importorskip("uvloop")
    fixtures = {"tiny_backoff": None, "ca": ca, "unix_path": unix_path}
    function = globals()[name]
    wanted = inspect.signature(function).parameters
    uvloop.run(function(**{key: fixtures[key] for key in wanted if key not in args}, **args))
