"""Sender and receiver halves of a connection (as soketto's ``split``).

``sender, receiver = ws.split()`` gives two objects over the same
connection, one for the task that sends and one for the task that
receives; both may run at once.  They add no protocol of their own: each
method is the connection's (same engine, same limits, same close
handshake).  What the sender adds is batching: inside ``async with
sender.batch():`` the connection's writes are held, and the many small
messages sent there leave in one write when the batch ends (or at an
explicit ``await sender.flush()``).

Every operation is cancel-safe and takes a ``timeout`` (see
:class:`~rapidws.asyncio.connection.Connection`): a cancelled ``recv`` loses
no message, a cancelled ``send`` never leaves part of a frame on the wire,
a cancelled ``close`` still completes the closing handshake.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING

from ..protocol.frames import Frame

if TYPE_CHECKING:
    from .connection import Connection, Data, DataLike

__all__ = ["BATCH_LIMIT", "Receiver", "Sender"]

#: A batch holding more than this many bytes of messages writes them and goes
#: on, so a batch that sends much holds bounded memory (and waits for the
#: write buffer to drain, as sends do).
BATCH_LIMIT = 65536


class Sender:
    """The sending half: :meth:`send`, :meth:`ping`, :meth:`close`, and batching."""

    __slots__ = ("_conn", "_depth", "_held")

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._depth = 0  # nested batch() blocks
        self._held = 0  # bytes of messages sent in the batch since its last write

    @property
    def connection(self) -> Connection:
        return self._conn

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        compress: bool = True,
        max_fragment_size: int | None = None,
        *,
        text: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send a message, as :meth:`Connection.send <rapidws.asyncio.connection.Connection.send>`.

        In a batch, the message is held with the batch's others.
        """
        conn = self._conn
        if timeout is None and text is None:
            await conn.send(message, compress, max_fragment_size)
        else:
            await conn.send(message, compress, max_fragment_size, text=text, timeout=timeout)
        if self._depth and isinstance(message, (str, bytes, bytearray, memoryview)):
            self._held += len(message)
            if self._held > BATCH_LIMIT:
                await self.flush()

    async def send_frame(self, frame: Frame) -> None:
        """Send one frame as it is (see :meth:`Connection.send_frame`)."""
        await self._conn.send_frame(frame)

    async def ping(
        self, data: str | bytes | None = None, timeout: float | None = None
    ) -> Awaitable[float]:
        """Send a ping; the awaitable returned gives the round-trip time (``Connection.ping``)."""
        return await self._conn.ping(data, timeout)

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong."""
        await self._conn.pong(data)

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[Sender]:
        """Hold the connection's writes in the block; they leave in one write at its end.

        Everything written meanwhile is held: the messages sent here, and
        the pongs and other replies the connection makes.  Keep batches
        short.  Past :data:`BATCH_LIMIT` bytes of messages, what is held is
        written and the batch goes on.  Closing the connection ends the
        batch at once: the close frame never waits behind it.  Blocks nest;
        the outermost one writes.
        """
        self._depth += 1
        if self._depth == 1:
            self._hold()
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._held = 0
                self._conn._unhold()
        conn = self._conn
        if conn._paused_writing:
            await conn._drain()

    def _hold(self) -> None:
        conn = self._conn
        if conn.transport is None or conn._lost.done():
            return
        conn._hold_writes = True
        conn._lazy_cork = False  # nothing is flushed until the batch ends
        if conn._wbuf is None:
            conn._wbuf = []

    async def flush(self, timeout: float | None = None) -> None:
        """Write what is held now, then wait while the write buffer is over ``write_limit``.

        In a batch, the batch goes on after this write.  Past ``timeout``,
        :class:`TimeoutError` (``"drain() timed out ..."``): what is written stays written.
        """
        conn = self._conn
        if self._depth:
            self._held = 0
            conn._unhold()
            self._hold()
        await conn.drain(timeout)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait while the write buffer is over ``write_limit`` (see ``Connection.drain``)."""
        await self._conn.drain(timeout)

    async def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Run the closing handshake (see ``Connection.close``); it ends a batch."""
        await self._conn.close(code, reason, timeout)

    def __repr__(self) -> str:
        return f"<Sender of {self._conn!r}>"


class Receiver:
    """The receiving half: :meth:`recv`, :meth:`recv_streaming`, ``async for``, frames."""

    __slots__ = ("_conn",)

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    @property
    def connection(self) -> Connection:
        return self._conn

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> Data:
        """Receive the next message (see ``Connection.recv``)."""
        return await self._conn.recv(decode, timeout)

    def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Receive the next message piece by piece (see ``Connection.recv_streaming``)."""
        return self._conn.recv_streaming(decode)

    async def recv_frame(self, timeout: float | None = None) -> Frame:
        """With ``frames=True``: the next frame (see ``Connection.recv_frame``)."""
        if timeout is None:
            return await self._conn.recv_frame()
        from .timeouts import within

        return await within(self._conn.recv_frame(), timeout, "recv_frame")

    def frames(self) -> AsyncIterator[Frame]:
        """With ``frames=True``: iterate over frames until the connection closes."""
        return self._conn.frames()

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over messages until the connection closes; a normal close ends quietly."""
        return self._conn.__aiter__()

    def __repr__(self) -> str:
        return f"<Receiver of {self._conn!r}>"
