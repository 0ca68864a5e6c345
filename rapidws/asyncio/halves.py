"""Sender and receiver halves of a connection (as soketto's ``split``).

``sender, receiver = ws.split()`` gives two views of the same connection,
one for the task that sends and one for the task that receives; both may
run at once.  They add no protocol of their own: their methods are the
connection's own, bound (same engine, same limits, same close handshake,
and no wrapper: the default paths cost what they cost on the connection).
What the sender adds is batching: inside ``async with sender.batch():`` the
connection's writes are held, and the many small messages sent there leave
in one write when the batch ends (or at an explicit ``await sender.flush()``).

Every operation is cancel-safe and takes a ``timeout`` (see
:class:`~rapidws.asyncio.connection.Connection`): a cancelled ``recv`` loses
no message, a cancelled ``send`` never leaves part of a frame on the wire,
a cancelled ``close`` still completes the closing handshake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection, Data

__all__ = ["Batch", "Receiver", "Sender"]


class Sender:
    """The sending half: ``send``, ``send_frame``, ``ping``, ``pong``, ``drain``, ``close``
    (the connection's own methods), and :meth:`batch` / :meth:`flush`."""

    __slots__ = (
        "_batch",
        "_conn",
        "_depth",
        "close",
        "drain",
        "ping",
        "pong",
        "send",
        "send_frame",
    )

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._depth = 0  # nested batch() blocks
        self._batch = Batch(self)  # stateless: one for every block
        # Bound methods of the connection, not wrappers: no call on top of theirs.
        self.send = connection.send
        self.send_frame = connection.send_frame
        self.ping = connection.ping
        self.pong = connection.pong
        self.drain = connection.drain
        self.close = connection.close  # the close frame goes when it is called

    @property
    def connection(self) -> Connection:
        return self._conn

    def batch(self) -> Batch:
        """Hold the connection's writes in an ``async with`` block; they leave in one write.

        Everything written meanwhile is held, in memory: the messages sent
        here, and the pongs and other replies the connection makes.  So keep
        batches short, or write what is held with :meth:`flush` now and
        then.  Closing the connection ends the batch at once: the close frame
        never waits behind it.  Blocks nest; the outermost one writes, then
        waits while the write buffer is over ``write_limit``.
        """
        return self._batch

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
        if self._depth:
            self._conn._unhold()
            self._hold()
        await self._conn.drain(timeout)

    def __repr__(self) -> str:
        return f"<Sender of {self._conn!r}>"


class Batch:
    """The ``async with`` block of :meth:`Sender.batch` (a class, not a generator: it
    runs once per batch, and a batch may be a few messages)."""

    __slots__ = ("_sender",)

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def __aenter__(self) -> Sender:
        sender = self._sender
        sender._depth += 1
        if sender._depth == 1:
            sender._hold()
        return sender

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        sender = self._sender
        sender._depth -= 1
        if sender._depth:
            return
        conn = sender._conn
        conn._unhold()
        if exc_type is None and conn._paused_writing:
            await conn._drain()


class Receiver:
    """The receiving half: ``recv``, ``recv_streaming``, ``async for``, and with
    ``frames=True`` ``recv_frame`` and ``frames`` (the connection's own methods)."""

    __slots__ = ("_conn", "frames", "recv", "recv_frame", "recv_streaming")

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self.recv = connection.recv
        self.recv_streaming = connection.recv_streaming
        self.recv_frame = connection.recv_frame
        self.frames = connection.frames

    @property
    def connection(self) -> Connection:
        return self._conn

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over messages until the connection closes; a normal close ends quietly."""
        return self._conn.__aiter__()

    def __repr__(self) -> str:
        return f"<Receiver of {self._conn!r}>"
