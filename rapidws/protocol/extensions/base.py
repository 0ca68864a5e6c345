"""The extension framework: negotiation factories and per-connection codecs.

An :class:`Extension` transforms the payload of data frames on their way in
and out and claims some of the RSV bits.  Factories negotiate it during the
opening handshake: a client factory offers parameters and checks the
server's answer; a server factory accepts or declines an offer.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParameter",
    "ServerExtensionFactory",
]

ExtensionParameter = tuple[str, "str | None"]


class Extension:
    """A negotiated extension, active on one connection."""

    #: Name registered with IANA, e.g. ``"permessage-deflate"``.
    name: str = ""
    #: RSV bits (``0x40``, ``0x20``, ``0x10`` of the first header byte) this
    #: extension may set on data frames.
    rsv_mask: int = 0

    def decode(self, opcode: int, payload: bytes, fin: bool, rsv: int, max_size: int) -> bytes:
        """Transform an incoming data frame's payload.

        ``opcode`` is 0 for a continuation frame.  ``max_size`` bounds the
        output (``-1`` means no bound): exceed it by raising
        :class:`~rapidws.exceptions.PayloadTooBig`.  Raise
        :class:`~rapidws.exceptions.ProtocolError` on malformed input.
        """
        raise NotImplementedError

    def encode(self, opcode: int, payload: bytes, fin: bool) -> tuple[bytes, int]:
        """Transform an outgoing data frame's payload; return it and its RSV bits."""
        raise NotImplementedError

    def broadcast_key(self) -> tuple[object, ...] | None:
        """A key equal for codecs that encode any whole message to the same bytes,
        whatever they sent before; ``None`` if this one keeps state between
        messages.  :func:`rapidws.broadcast` encodes a message once per key."""
        return None

    def encode_message(self, opcode: int, payload: bytes) -> tuple[bytes, int]:
        """Encode a whole message as :meth:`encode` would, leaving this codec's state
        alone (only for a codec with a :meth:`broadcast_key`)."""
        raise NotImplementedError


class ClientExtensionFactory:
    """Offers an extension from the client and checks the server's answer."""

    name: str = ""

    def get_request_params(self) -> list[ExtensionParameter]:
        """Parameters to offer in ``Sec-WebSocket-Extensions``."""
        raise NotImplementedError

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> Extension:
        """Build the extension from the server's parameters.

        Raise :class:`~rapidws.exceptions.NegotiationError` if they are not
        acceptable; the client then fails the connection.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Accepts or declines a client's offer of an extension."""

    name: str = ""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Return the response parameters and the extension for an offer.

        Raise :class:`~rapidws.exceptions.NegotiationError` to decline this
        offer; the server then tries the client's next offer.
        """
        raise NotImplementedError
