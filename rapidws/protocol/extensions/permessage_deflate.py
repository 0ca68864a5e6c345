"""permessage-deflate (RFC 7692): negotiation and the compression codec.

Memory is spent only when needed: the compressor and the decompressor are
created on the first message that uses them, and dropped after each message
when the negotiated parameters forbid context takeover.  Inflating is
bounded by ``max_size``: a decompression bomb fails with 1009 after at most
``max_size + 1`` bytes of output.

The codec is the standard library's :mod:`zlib` unless
:func:`set_zlib_backend` chose another with its API, such as zlib-ng's
(``pip install zlib-ng``: ``set_zlib_backend(zlib_ng.zlib_ng)``), which
deflates about 40 % faster and keeps about 75 KiB more per connection while
a compressor and a decompressor are alive.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ...exceptions import NegotiationError, PayloadTooBig, ProtocolError
from .base import ClientExtensionFactory, Extension, ExtensionParameter, ServerExtensionFactory

__all__ = [
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "set_zlib_backend",
]

NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"
_RSV1 = 0x40
_OP_CONT = 0
_VALID_BITS = range(8, 16)

#: Defaults for the compressor: a 4 KiB window and memory level 5 cost about
#: 32 KiB per connection instead of zlib's 256 KiB (window 15, level 8).
DEFAULT_WINDOW_BITS = 12
DEFAULT_MEM_LEVEL = 5
DEFAULT_LEVEL = 6
#: Messages shorter than this go uncompressed: deflate can't shrink them.
DEFAULT_MIN_SIZE = 64

#: The module that compresses: zlib, or another with its API.
_backend: Any = zlib


def set_zlib_backend(module: ModuleType) -> None:
    """Compress and decompress with ``module``, a drop-in for :mod:`zlib`.

    For example ``zlib_ng.zlib_ng`` (``pip install zlib-ng``, or
    ``rapidws[fast]``).  It applies to compressors and decompressors created
    from then on, in every connection of the process.  The output is
    standard deflate either way.
    """
    for name in ("compressobj", "decompressobj", "error", "DEFLATED", "Z_SYNC_FLUSH"):
        if not hasattr(module, name):
            raise TypeError(f"{module!r} is not zlib-compatible: it has no {name}")
    global _backend
    _backend = module


class PerMessageDeflate(Extension):
    """The permessage-deflate codec of one connection.

    ``remote_*`` parameters describe what the peer's compressor does (our
    decompressor follows), ``local_*`` what ours does.
    """

    name = NAME
    rsv_mask = _RSV1

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        *,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        if remote_max_window_bits not in _VALID_BITS or local_max_window_bits not in _VALID_BITS:
            raise ValueError("window bits must be between 8 and 15")
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size
        self._decoder: Any = None  # the backend's decompressor, once needed
        self._encoder: Any = None  # and its compressor
        self._decoding = False  # the incoming message is compressed
        self._encoding = False  # the outgoing message is compressed

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    def decode(self, opcode: int, payload: bytes, fin: bool, rsv: int, max_size: int) -> bytes:
        if opcode != _OP_CONT:
            self._decoding = bool(rsv & _RSV1)
        elif rsv & _RSV1:
            raise ProtocolError("RSV1 set on a continuation frame")
        if not self._decoding:
            return payload
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = _backend.decompressobj(-self.remote_max_window_bits)
        # Ask for one byte more than allowed: getting it means too big.
        limit = 0 if max_size < 0 else max_size + 1
        try:
            # The last frame gets its 00 00 ff ff back: one call into zlib, not two.
            data: bytes = decoder.decompress(payload + _TAIL if fin else payload, limit)
        except (zlib.error, _backend.error) as exc:
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if decoder.unconsumed_tail or (max_size >= 0 and len(data) > max_size):
            raise PayloadTooBig(f"decompressed message over {max_size} bytes")
        if fin and self.remote_no_context_takeover:
            self._decoder = None
        return data

    def encode(self, opcode: int, payload: bytes, fin: bool) -> tuple[bytes, int]:
        if opcode != _OP_CONT:
            self._encoding = not fin or len(payload) >= self.min_size
        if not self._encoding:
            return payload, 0
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = self._new_encoder()
        data = encoder.compress(payload) + encoder.flush(_backend.Z_SYNC_FLUSH)
        if fin:
            if data.endswith(_TAIL):
                data = data[:-4]
            if self.local_no_context_takeover:
                self._encoder = None
        return data, _RSV1 if opcode != _OP_CONT else 0

    def _new_encoder(self) -> Any:
        # zlib refuses raw deflate with an 8-bit window; a 9-bit window
        # never emits distances over 250, which an 8-bit inflater reads
        # (zlib-ng's too: both keep 262 bytes of lookahead).
        bits = max(self.local_max_window_bits, 9)
        return _backend.compressobj(self.level, _backend.DEFLATED, -bits, self.mem_level)

    def broadcast_key(self) -> tuple[object, ...] | None:
        """Without context takeover on our side, a message's encoding depends on
        it and these settings alone (RFC 7692 7.1.1); with it, on the history too."""
        if not self.local_no_context_takeover:
            return None
        return (NAME, self.local_max_window_bits, self.level, self.mem_level, self.min_size)

    def encode_message(self, opcode: int, payload: bytes) -> tuple[bytes, int]:
        if len(payload) < self.min_size:
            return payload, 0
        encoder = self._new_encoder()
        data = encoder.compress(payload) + encoder.flush(_backend.Z_SYNC_FLUSH)
        if data.endswith(_TAIL):
            data = data[:-4]
        return data, _RSV1


# -- negotiation ---------------------------------------------------------------


@dataclasses.dataclass
class _Params:
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    #: True: offered without a value (client offer only).
    client_max_window_bits: int | bool | None = None


def _parse_bits(name: str, value: str | None, optional: bool) -> int | bool:
    if value is None:
        if optional:
            return True
        raise NegotiationError(f"{name} needs a value")
    if not (value.isdigit() and value.isascii() and value[0] != "0"):
        raise NegotiationError(f"invalid {name}: {value!r}")
    bits = int(value)
    if bits not in _VALID_BITS:
        raise NegotiationError(f"{name} out of range: {value}")
    return bits


def _parse_params(params: Sequence[ExtensionParameter], *, is_offer: bool) -> _Params:
    """Check and decode parameters (RFC 7692 section 7.1)."""
    result = _Params()
    seen: set[str] = set()
    for name, value in params:
        if name in seen:
            raise NegotiationError(f"duplicate parameter {name}")
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise NegotiationError(f"{name} takes no value")
            setattr(result, name, True)
        elif name == "server_max_window_bits":
            bits = _parse_bits(name, value, optional=False)
            assert not isinstance(bits, bool)
            result.server_max_window_bits = bits
        elif name == "client_max_window_bits":
            result.client_max_window_bits = _parse_bits(name, value, optional=is_offer)
        else:
            raise NegotiationError(f"unknown parameter {name}")
    return result


def _check_bits_option(name: str, value: int | None) -> None:
    if value is not None and value not in _VALID_BITS:
        raise ValueError(f"{name} must be between 8 and 15")


class _Settings:
    """What both factories store: negotiation wishes and our codec's settings."""

    def __init__(
        self,
        server_no_context_takeover: bool,
        client_no_context_takeover: bool,
        server_max_window_bits: int | None,
        level: int,
        mem_level: int,
        window_bits: int,
        min_size: int,
    ) -> None:
        _check_bits_option("server_max_window_bits", server_max_window_bits)
        _check_bits_option("window_bits", window_bits)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.window_bits = window_bits
        self.codec_options = {"level": level, "mem_level": mem_level, "min_size": min_size}


class ClientPerMessageDeflateFactory(_Settings, ClientExtensionFactory):
    """Offers permessage-deflate from a client.

    ``server_no_context_takeover`` and ``server_max_window_bits`` ask the
    server to limit its compressor (to save our memory);
    ``client_no_context_takeover`` and ``client_max_window_bits`` announce
    limits on ours (``client_max_window_bits=True`` only says we support
    the parameter, letting the server choose).  ``level``, ``mem_level``
    and ``window_bits`` tune our compressor; messages under ``min_size``
    bytes go uncompressed.
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = True,
        *,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        window_bits: int = DEFAULT_WINDOW_BITS,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        if not isinstance(client_max_window_bits, bool):
            _check_bits_option("client_max_window_bits", client_max_window_bits)
        self.client_max_window_bits = client_max_window_bits
        _Settings.__init__(
            self,
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits,
            level,
            mem_level,
            window_bits,
            min_size,
        )

    def get_request_params(self) -> list[ExtensionParameter]:
        params: list[ExtensionParameter] = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> Extension:
        if any(ext.name == NAME for ext in accepted):
            raise NegotiationError("permessage-deflate accepted twice")
        response = _parse_params(params, is_offer=False)
        if self.server_no_context_takeover and not response.server_no_context_takeover:
            raise NegotiationError("server_no_context_takeover was requested")
        server_bits = response.server_max_window_bits
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError("server_max_window_bits was requested")
            if server_bits > self.server_max_window_bits:
                raise NegotiationError("server_max_window_bits over the requested value")
        client_bits = response.client_max_window_bits
        if client_bits is not None:
            if self.client_max_window_bits in (None, False):
                raise NegotiationError("client_max_window_bits was not offered")
            offered = self.client_max_window_bits
            if offered is not True and client_bits > offered:
                raise NegotiationError("client_max_window_bits over the offered value")
        local_bits = self.window_bits
        offered_bits = self.client_max_window_bits
        if offered_bits is not None and not isinstance(offered_bits, bool):
            local_bits = min(local_bits, offered_bits)
        if client_bits is not None:
            local_bits = min(local_bits, int(client_bits))
        return PerMessageDeflate(
            remote_no_context_takeover=response.server_no_context_takeover,
            local_no_context_takeover=(
                response.client_no_context_takeover or self.client_no_context_takeover
            ),
            remote_max_window_bits=server_bits or 15,
            local_max_window_bits=local_bits,
            **self.codec_options,
        )


class ServerPerMessageDeflateFactory(_Settings, ServerExtensionFactory):
    """Accepts permessage-deflate offers on a server.

    ``server_no_context_takeover`` and ``server_max_window_bits`` limit our
    compressor and are announced in the response (a ``window_bits`` under 15
    is announced too); ``client_no_context_takeover`` and
    ``client_max_window_bits`` require the client to limit its compressor
    when it offered to (by default to 12 bits, which keeps our decompressor's
    window at 4 KiB; ``None`` accepts the client's choice).  Offers that
    can't be accepted are declined, and the client's next offer is tried.
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        *,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        window_bits: int = DEFAULT_WINDOW_BITS,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        _check_bits_option("client_max_window_bits", client_max_window_bits)
        self.client_max_window_bits = client_max_window_bits
        _Settings.__init__(
            self,
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits,
            level,
            mem_level,
            window_bits,
            min_size,
        )

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        if any(ext.name == NAME for ext in accepted):
            raise NegotiationError("permessage-deflate accepted twice")
        offer = _parse_params(params, is_offer=True)
        response: list[ExtensionParameter] = []

        server_nct = offer.server_no_context_takeover or self.server_no_context_takeover
        if server_nct:
            response.append(("server_no_context_takeover", None))
        client_nct = offer.client_no_context_takeover or self.client_no_context_takeover
        if client_nct:
            response.append(("client_no_context_takeover", None))

        server_bits = self.server_max_window_bits
        if server_bits is None and self.window_bits < 15:
            server_bits = self.window_bits  # tell the client it may inflate with less
        if offer.server_max_window_bits is not None:
            server_bits = min(offer.server_max_window_bits, server_bits or 15)
        if server_bits is not None:
            response.append(("server_max_window_bits", str(server_bits)))

        client_bits = 15
        offered = offer.client_max_window_bits
        if offered is not None:
            if offered is not True:
                client_bits = int(offered)
            if self.client_max_window_bits is not None:
                client_bits = min(client_bits, self.client_max_window_bits)
            if client_bits != 15 or offered is not True:
                response.append(("client_max_window_bits", str(client_bits)))

        local_bits = min(self.window_bits, server_bits or 15)
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=client_bits,
            local_max_window_bits=local_bits,
            **self.codec_options,
        )
        return response, extension


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None,
) -> list[ServerExtensionFactory]:
    """Add a default server factory unless one is configured already."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ServerPerMessageDeflateFactory())
    return result


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None,
) -> list[ClientExtensionFactory]:
    """Add a default client factory unless one is configured already."""
    result = list(extensions or ())
    if not any(factory.name == NAME for factory in result):
        result.append(ClientPerMessageDeflateFactory())
    return result
