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
) -> BroadcastResult:
    """Send ``message`` (``str``: text, bytes-like: binary) to each of ``connections``.

    Connections of both APIs (:class:`~rapidws.Connection`,
    :class:`~rapidws.ServerConnection`, :class:`~rapidws.ListenerConnection`)
    may be mixed.  The message is framed, and compressed, once per wire
    format (see the module's notes), and written at once, or corked with
    what a connection writes in the same loop iteration.  Nothing is awaited.

    Slow receivers, whose write buffer is over its high-water mark (the
    connection's ``write_limit``):

    - ``policy="skip"`` (the default): the message is not written to them
      (:attr:`~BroadcastResult.skipped_slow`), so what a connection holds
      stays under its high-water mark plus one message;
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
    if policy == "skip":
        closing = False
    elif policy == "close":
        closing = True
    else:
        raise ValueError(f"policy must be 'skip' or 'close', not {policy!r}")
    result = BroadcastResult()
    sent = sent_alone = skipped_slow = skipped_closed = skipped_mode = skipped_busy = 0
    plain: bytes | None = None  # the plain frame, unfragmented: what most connections get
    shared: dict[tuple[object, int], bytes] = {}  # other wire formats: their frames
    for conn in connections:
        engine = conn.engine
        if engine is None or engine.state != OPEN:
            skipped_closed += 1
            continue
        only = engine.only_opcode
        if only and only != opcode:
            skipped_mode += 1
            continue
        if engine._out_opcode:
            skipped_busy += 1
            continue
        if conn._paused_writing:  # over the high-water mark (see BaseConnection.pause_writing)
            if not closing:
                skipped_slow += 1
                continue
            if _over(conn, close_after):
                result.closed_slow += 1
                conn.fail(1008, SLOW_CLOSE_REASON)
                continue
        try:
            if type(engine) is Engine and not engine.client:
                extensions = engine._extensions
                limit = engine.max_fragment_size
                if not extensions or not compress:
                    if not limit:
                        if plain is None:
                            plain = shared.get((_PLAIN, 0))
                            if plain is None:
                                plain = shared[_PLAIN, 0] = server_frames(opcode, payload, 0, 0)
                                result.encodings += 1
                        _cork(conn, len(plain))
                        engine.send_encoded(opcode, plain)
                        sent += 1
                        continue
                    key: object = _PLAIN
                elif len(extensions) == 1:
                    key = extensions[0].broadcast_key()  # None: context takeover
                else:
                    key = None  # several extensions: not shared
                if key is not None:
                    frames = shared.get((key, limit))
                    if frames is None:
                        data, rsv = payload, 0
                        if key is not _PLAIN:
                            data, rsv = extensions[0].encode_message(opcode, payload)
                        if rsv == 0:  # not compressed (too short): the plain frames
                            frames = shared.get((_PLAIN, limit))
                        if frames is None:
                            frames = server_frames(opcode, data, rsv, limit)
                            result.encodings += 1
                            if rsv == 0:
                                shared[_PLAIN, limit] = frames
                        shared[key, limit] = frames
                    _cork(conn, len(frames))
                    engine.send_encoded(opcode, frames)
                    sent += 1
                    continue
            # Its own encoding: context takeover, a client's masks, stages.
            engine.send_message(message, not compress)
            sent += 1
            sent_alone += 1
        except Exception as exc:
            result.failed += 1
            logger.warning("broadcast: writing to %r failed: %s", conn, exc)
    result.sent = sent
    result.sent_alone = sent_alone
    result.skipped_slow = skipped_slow
    result.skipped_closed = skipped_closed
    result.skipped_mode = skipped_mode
    result.skipped_busy = skipped_busy
    return result


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
