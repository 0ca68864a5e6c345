"""Broadcast: one message to many connections, framed (and compressed) once.

A server's frames are not masked (RFC 6455 5.1), so every connection that
encodes messages alike gets the same bytes: :func:`broadcast` builds them
once per *wire format* and writes that one ``bytes`` object to each
connection.  Connections are grouped by what shapes their frames:

- no extension (or ``compress=False``): the plain frame, shared by all;
- permessage-deflate without context takeover on our side
  (``server_no_context_takeover`` for a server): the message is compressed
  once per distinct setting (window bits, level, memory level, minimum size;
  RFC 7692 7.1.1 lets such a compressor forget each message);
- and by ``max_fragment_size``, which cuts the frames.

The others go through their own send path, one encoding each, exactly as
``send`` would (counted in :attr:`BroadcastResult.sent_alone`): a
permessage-deflate compressor *with* context takeover (its output depends on
every message it sent before, so it compresses this one too, as
``websockets.broadcast`` does), a client's connection (its frames are masked
with a fresh key each, RFC 6455 5.1) and a connection with pipeline stages.
A server broadcasting a lot does well to negotiate
``server_no_context_takeover``
(``ServerPerMessageDeflateFactory(server_no_context_takeover=True)``): all its
connections then share one compression.

Never awaiting, :func:`broadcast` can be called from a callback of the
callback API as from a coroutine.  A slow receiver never holds the others
back; what becomes of one is the call's ``policy``, and every connection is
counted in the :class:`BroadcastResult`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Literal

from .io.transport import BaseConnection
from .protocol.engine import OP_BINARY, OP_TEXT, OPEN, Engine, server_frames

__all__ = ["SLOW_CLOSE_REASON", "BroadcastResult", "broadcast"]

logger = logging.getLogger("rapidws")

#: The key of the plain wire format (no extension) among the shared ones.
_PLAIN = ("plain",)

#: The reason of the 1008 close frame a slow receiver gets under ``policy="close"``.
SLOW_CLOSE_REASON = "too slow to receive broadcasts"


@dataclasses.dataclass(slots=True)
class BroadcastResult:
    """What :func:`broadcast` did with each connection: every one is counted once."""

    #: Connections the message was written to (including :attr:`sent_alone`).
    sent: int = 0
    #: Of those, connections that encoded it on their own (see the module's notes).
    sent_alone: int = 0
    #: Skipped: their write buffer was over its high-water mark (``policy="skip"``).
    skipped_slow: int = 0
    #: Closed with 1008: their write buffer was over the limit (``policy="close"``).
    closed_slow: int = 0
    #: Skipped: not open (opening handshake not done, closing or closed).
    skipped_closed: int = 0
    #: Skipped: ``mode=`` refuses this message's type (text-only or binary-only).
    skipped_mode: int = 0
    #: Skipped: a fragmented message of theirs is being sent (RFC 6455 5.4 forbids
    #: interleaving another message's frames).
    skipped_busy: int = 0
    #: Writing raised (logged); the others were written to all the same.
    failed: int = 0
    #: How many times the message was framed (and compressed) for sharing: once
    #: per distinct wire format among the connections written to.
    encodings: int = 0

    @property
    def skipped(self) -> int:
        """Connections the message did not go to, for whatever reason."""
        return (
            self.skipped_slow
            + self.closed_slow
            + self.skipped_closed
            + self.skipped_mode
            + self.skipped_busy
            + self.failed
        )


def broadcast(
    connections: Iterable[BaseConnection],
    message: str | bytes | bytearray | memoryview,
    *,
    policy: Literal["skip", "close"] = "skip",
    close_after: int | None = None,
    compress: bool = True,
    cork: bool = True,
) -> BroadcastResult:
    """Send ``message`` (``str``: text, bytes-like: binary) to each of ``connections``.

    Connections of both APIs (:class:`~rapidws.Connection`,
    :class:`~rapidws.ServerConnection`, :class:`~rapidws.ListenerConnection`)
    may be mixed.  The message is framed, and compressed, once per wire
    format (see the module's notes).  Nothing is awaited: the writes are
    corked until the end of the loop iteration, so that the messages
    broadcast meanwhile leave in one write per connection (up to its
    high-water mark: past it, they go at once).  ``cork=False`` writes at
    once instead: it saves the second pass over the connections when one
    message is broadcast per loop iteration, and costs a write per
    connection per message in a burst.

    Slow receivers, whose write buffer is over its high-water mark (the
    connection's ``write_limit``):

    - ``policy="skip"`` (the default): the message is not written to them
      (:attr:`~BroadcastResult.skipped_slow`), so what the server holds for
      a connection stays within its high-water mark, plus as much again
      corked (see above) and one message;
    - ``policy="close"``: one whose write buffer holds more than
      ``close_after`` bytes (``None``: its high-water mark) is failed with
      1008, policy violation (RFC 6455 7.4.1; :attr:`~BroadcastResult.closed_slow`),
      and aborted after ``close_timeout`` if it does not read its close frame
      by then; one over its high-water mark but within ``close_after`` is
      still written to.

    Connections not open, of the wrong ``mode=``, or sending a fragmented
    message are skipped and counted, not raised about.  ``compress=False``
    sends the message uncompressed to every connection (RSV1 clear, which
    RFC 7692 allows on any message).
    """
    if isinstance(message, str):
        opcode = OP_TEXT
        payload = message.encode("utf-8")
    elif isinstance(message, (bytes, bytearray, memoryview)):
        opcode = OP_BINARY
        payload = message if type(message) is bytes else bytes(message)
    else:
        raise TypeError("message must be str or bytes-like")
    if policy not in ("skip", "close"):
        raise ValueError(f"policy must be 'skip' or 'close', not {policy!r}")
    delivery = _Delivery(opcode, payload, message, policy == "close", close_after, compress)
    delivery.cork = cork
    for conn in connections:
        delivery.deliver(conn)
    return BroadcastResult(
        delivery.sent,
        delivery.sent_alone,
        delivery.skipped_slow,
        delivery.closed_slow,
        delivery.skipped_closed,
        delivery.skipped_mode,
        delivery.skipped_busy,
        delivery.failed,
        delivery.encodings,
    )


class _Delivery:
    """One broadcast: the message, its encodings so far, the counters.

    In the compiled build (``broadcast.pxd``) :meth:`deliver` reads the
    connection's and the engine's fields in C: per connection, what remains
    is the write.
    """

    __slots__ = (
        "close_after",
        "closed_slow",
        "closing",
        "compress",
        "cork",
        "encodings",
        "failed",
        "message",
        "opcode",
        "payload",
        "plain",
        "sent",
        "sent_alone",
        "shared",
        "skipped_busy",
        "skipped_closed",
        "skipped_mode",
        "skipped_slow",
    )

    def __init__(
        self,
        opcode: int,
        payload: bytes,
        message: str | bytes | bytearray | memoryview,
        closing: bool,
        close_after: int | None,
        compress: bool,
    ) -> None:
        self.opcode = opcode
        self.payload = payload
        self.message = message
        self.closing = closing
        self.close_after = close_after
        self.compress = compress
        self.cork = False  # cork the writes (see _cork)
        self.plain: bytes | None = None  # the plain frame, unfragmented: what most get
        self.shared: dict[tuple[object, int], bytes] = {}  # each wire format's frames
        self.sent = self.sent_alone = self.skipped_slow = self.closed_slow = 0
        self.skipped_closed = self.skipped_mode = self.skipped_busy = 0
        self.failed = self.encodings = 0

    def deliver(self, conn: BaseConnection) -> None:
        """Write the message to ``conn``, or count why not."""
        if not isinstance(conn, BaseConnection):
            raise TypeError(f"not a rapidws connection: {conn!r}")
        self._deliver(conn)

    def _deliver(self, conn: BaseConnection) -> None:
        engine = conn.engine
        if engine is None or engine.state != OPEN:
            self.skipped_closed += 1
            return
        opcode = self.opcode
        only = engine.only_opcode
        if only and only != opcode:
            self.skipped_mode += 1
            return
        if engine._out_opcode:
            self.skipped_busy += 1
            return
        if conn._paused_writing:  # over the high-water mark (see BaseConnection.pause_writing)
            if not self.closing:
                self.skipped_slow += 1
                return
            if _over(conn, self.close_after):
                self.closed_slow += 1
                conn.fail(1008, SLOW_CLOSE_REASON)
                return
        try:
            if type(engine) is Engine and not engine.client:
                frames = self.plain
                if (
                    frames is None
                    or engine.max_fragment_size
                    or (engine._extensions and self.compress)
                ):
                    frames = self._frames(engine)
                if frames is not None:
                    if engine._csink is conn:
                        # The checks above are send_encoded's (RFC 6455 5.4's
                        # order, mode=): the frames go to the connection's
                        # write path, a C call in the compiled build.
                        conn._write_shared(frames, self.cork)
                    else:
                        if self.cork:
                            _cork(conn, len(frames))
                        engine.send_encoded(opcode, frames)
                    self.sent += 1
                    return
            # Its own encoding: context takeover, a client's masks, stages.
            engine.send_message(self.message, not self.compress)
            self.sent += 1
            self.sent_alone += 1
        except Exception as exc:
            self.failed += 1
            logger.warning("broadcast: writing to %r failed: %s", conn, exc)

    def _frames(self, engine: Engine) -> bytes | None:
        """The frames for ``engine``'s wire format (None: it can't share them)."""
        extensions = engine._extensions
        limit = engine.max_fragment_size
        key: object = _PLAIN
        if extensions and self.compress:
            if len(extensions) != 1:
                return None  # several extensions: not shared
            key = extensions[0].broadcast_key()
            if key is None:
                return None  # context takeover
        frames = self.shared.get((key, limit))
        if frames is not None:
            return frames
        data, rsv = self.payload, 0
        if key is not _PLAIN:
            data, rsv = extensions[0].encode_message(self.opcode, self.payload)
        if rsv == 0:  # not compressed (too short): the plain frames
            frames = self.shared.get((_PLAIN, limit))
        if frames is None:
            frames = server_frames(self.opcode, data, rsv, limit)
            self.encodings += 1
            if rsv == 0:
                self.shared[_PLAIN, limit] = frames
                if not limit:
                    self.plain = frames
        self.shared[key, limit] = frames
        return frames


def _cork(conn: BaseConnection, size: int) -> None:
    """Let what is written to ``conn`` wait for the end of this loop iteration.

    Every connection corked so is flushed by one callback (the transport
    layer's ``_Flusher``), once what the loop is doing now is done: the
    messages broadcast meanwhile (a burst, or several acknowledgements read
    at once) then leave in one write per connection, not one each.  Corking
    stops once the corked bytes would reach the connection's high-water
    mark: they go at once, and its flow control sees them.
    """
    buf = conn._wbuf
    if buf is None:
        # Corked, nothing written yet: the write that follows schedules the flush.
        conn._wbuf = []
        conn._lazy_cork = True
    elif (len(buf) + 1) * size > conn.write_high:
        conn._flush()


def _over(conn: BaseConnection, close_after: int | None) -> bool:
    """Whether ``conn``'s write buffer holds more than ``close_after`` bytes.

    ``None``: more than its high-water mark (it is paused already).
    """
    if close_after is None:
        return True  # paused: over its high-water mark
    transport = conn.transport
    return transport is not None and transport.get_write_buffer_size() > close_after
