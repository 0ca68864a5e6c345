"""The I/O side of pipeline stages (:mod:`rapidws.protocol.pipeline`): the pipe they run in.

A connection opened with ``stages=[...]`` runs a :class:`PipelineEngine`
whose sink is a :class:`PipelineSink`: what the engine receives goes up
through the stages to the connection, what the application sends goes down
through them to the engine.  A connection without stages has none of this:
its data path is the engine's and the connection's alone.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ProtocolError
from ..protocol.engine import OPEN, Engine
from ..protocol.frames import Frame, Opcode
from ..protocol.pipeline import AutoPong, Item, Reassemble, Stage

if TYPE_CHECKING:
    from .transport import BaseConnection

__all__ = ["Pipe", "PipelineEngine", "PipelineSink", "open_pipeline"]

logger = logging.getLogger("rapidws")


def assemble(stages: Sequence[Stage], frames: bool) -> list[Stage]:
    """The whole pipeline for ``stages``, from the wire up.

    A list with a built-in stage (:class:`AutoPong`, :class:`Reassemble`) is
    the whole pipeline; other stages go above the defaults, ``[AutoPong(),
    Reassemble()]`` (``[AutoPong()]`` with ``frames=True``).
    """
    if any(isinstance(stage, (AutoPong, Reassemble)) for stage in stages):
        return list(stages)
    defaults: list[Stage] = [AutoPong()] if frames else [AutoPong(), Reassemble()]
    return defaults + list(stages)


class Pipe:
    """The stages of one connection, in order from the wire up."""

    def __init__(self, conn: BaseConnection, stages: list[Stage]) -> None:
        self.conn = conn
        self.stages = stages
        self._index = {id(stage): i for i, stage in enumerate(stages)}
        #: Whether the application gets frames (no Reassemble in the pipeline).
        self.app_frames = not any(isinstance(stage, Reassemble) for stage in stages)
        self._send_options: tuple[bool, int] = (False, -1)

    # -- what stages call (rapidws.protocol.pipeline.Pipe) --------------------------

    def up(self, stage: Stage, item: Item) -> None:
        self._inbound(self._index[id(stage)] + 1, item)

    def down(self, stage: Stage, item: Item) -> None:
        self._outbound(self._index[id(stage)] - 1, item)

    def time(self) -> float:
        return self.conn.loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self.conn.loop.call_later(delay, callback)

    def report_rtt(self, seconds: float) -> None:
        self.conn._report_rtt(seconds)

    @property
    def is_open(self) -> bool:
        engine = self.conn.engine
        return engine is not None and engine.state == OPEN and not self.conn._lost.done()

    # -- the ends ---------------------------------------------------------------------

    def receive(self, item: Item) -> None:
        """From the engine: up through the stages."""
        self._inbound(0, item)

    def send(self, item: Item, raw: bool, max_fragment_size: int) -> None:
        """From the application: down through the stages (their exceptions reach the caller)."""
        self._send_options = (raw, max_fragment_size)
        try:
            self._outbound(len(self.stages) - 1, item)
        finally:
            self._send_options = (False, -1)

    def _inbound(self, index: int, item: Item) -> None:
        if index == len(self.stages):
            self._deliver(item)
            return
        try:
            self.stages[index].inbound(self, item)
        except ProtocolError:
            raise
        except Exception as exc:
            logger.error("pipeline stage %r failed", self.stages[index], exc_info=exc)
            self.conn.fail(1011, "internal error")

    def _outbound(self, index: int, item: Item) -> None:
        if index >= 0:
            self.stages[index].outbound(self, item)
            return
        engine = self.conn.engine
        assert engine is not None
        if isinstance(item, Frame):
            Engine.send_frame(engine, item.opcode, item.payload, item.fin, item.rsv)
        else:
            raw, max_fragment_size = self._send_options
            Engine.send_message(engine, item, raw, max_fragment_size)

    def _deliver(self, item: Item) -> None:
        conn = self.conn
        if not isinstance(item, Frame):
            conn.on_message(item)
            return
        if item.opcode == Opcode.PING:
            conn.on_ping(item.payload)
        elif item.opcode == Opcode.PONG:
            conn.on_pong(item.payload)
        if self.app_frames:
            conn.on_frame(item.opcode, item.payload, item.fin, item.rsv)
        elif item.opcode < 8:
            raise TypeError("a data frame reached an application of messages")

    def opened(self) -> None:
        for stage in self.stages:
            stage.opened(self)

    def closed(self) -> None:
        for stage in self.stages:
            try:
                stage.closed(self)
            except Exception:
                logger.error("pipeline stage %r failed at the close", stage, exc_info=True)


class PipelineSink:
    """The engine's sink for a connection with stages: events go up through the pipe."""

    __slots__ = ("conn", "frames", "pipe")

    def __init__(self, conn: BaseConnection, pipe: Pipe, frames: bool) -> None:
        self.conn = conn
        self.pipe = pipe
        self.frames = frames  # the engine runs with frames=True

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def write_eof(self) -> None:
        self.conn.write_eof()

    def on_close(self, code: int, reason: str) -> None:
        self.conn.on_close(code, reason)

    def on_fail(self, exc: ProtocolError) -> bool | None:
        return self.conn.on_fail(exc)

    def on_message(self, message: str | bytes) -> None:
        self.pipe.receive(message)

    def on_frame(self, opcode: int, payload: bytes, fin: bool, rsv: int) -> None:
        if opcode == Opcode.CLOSE:  # the engine answers closes; the application sees it
            if self.pipe.app_frames:
                self.conn.on_frame(opcode, payload, fin, rsv)
            return
        self.pipe.receive(Frame.from_wire(opcode, payload, fin, rsv))

    def on_ping(self, payload: bytes) -> None:
        if not self.frames:  # else it comes as a frame
            self.pipe.receive(Frame(Opcode.PING, payload))

    def on_pong(self, payload: bytes) -> None:
        if not self.frames:
            self.pipe.receive(Frame(Opcode.PONG, payload))


class PipelineEngine(Engine):
    """The engine of a connection with stages: what the application sends goes through them.

    Messages (``send_message``) and frames (``send_frame``) go down the
    pipe; fragments sent one by one (``send_data``) and pings go straight out.
    """

    pipe: Pipe

    def send_message(
        self,
        data: str | bytes | bytearray | memoryview,
        raw: bool = False,
        max_fragment_size: int = -1,
    ) -> None:
        message = data if isinstance(data, (str, bytes)) else bytes(data)
        self.pipe.send(message, raw, max_fragment_size)

    def send_frame(
        self, opcode: int, payload: bytes | bytearray | memoryview, fin: bool = True, rsv: int = 0
    ) -> None:
        self.pipe.send(Frame.from_wire(opcode, bytes(payload), fin, rsv), False, -1)


def fresh(stage: Stage | Callable[[], Stage]) -> Stage:
    """One connection's stage: a copy of an instance (a template), or what a factory makes."""
    if isinstance(stage, Stage):
        return copy.deepcopy(stage)
    made = stage()
    if not isinstance(made, Stage):
        raise TypeError(f"a stage factory returned {made!r}, not a Stage")
    return made


def open_pipeline(
    conn: BaseConnection, stages: Sequence[Stage | Callable[[], Stage]], **options: Any
) -> Engine:
    """The engine of ``conn`` with ``stages`` (see :func:`assemble`) and engine ``options``."""
    pipeline = assemble([fresh(stage) for stage in stages], bool(options.pop("frames", False)))
    pipe = Pipe(conn, pipeline)
    below = [stage for stage in pipeline if not isinstance(stage, AutoPong)]
    # The engine reassembles when Reassemble comes first: no per-frame Python.
    engine_frames = not below or not isinstance(below[0], Reassemble)
    sink = PipelineSink(conn, pipe, engine_frames)
    engine = PipelineEngine(
        conn.side,
        sink,
        frames=engine_frames,
        auto_pong=any(isinstance(stage, AutoPong) for stage in pipeline),
        **options,
    )
    engine.pipe = pipe
    conn.frame_mode = pipe.app_frames
    conn._pipe = pipe
    return engine
