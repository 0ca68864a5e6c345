"""The demo chat application that ``rapidws serve`` runs: HTTP and WebSocket on one port.

- ``/``: the chat page (``static/``: HTML, CSS and JavaScript, no build step);
- ``/ws``: the chat, JSON over WebSocket, only from the page's own origin
  (a page of another site gets 403: cross-site WebSocket hijacking);
- ``/echo``: a WebSocket echo, for tools and tests.

The chat protocol, one JSON object per text message.  The client first sends
``{"type": "join", "name": ..., "room": ...}``, then ``{"type": "say",
"text": ...}``.  The server answers ``{"type": "joined", ...}``, sends
``{"type": "online", "room": ..., "names": [...]}`` to a room whenever
someone comes or goes, and ``{"type": "said", "name": ..., "text": ...,
"time": ...}`` to everyone in the room (``rapidws.broadcast``: framed and
compressed once).  Anything else closes the connection with 1008 (policy
violation) or 1003 (binary data).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..asyncio.server import ServerConnection
from ..broadcast import broadcast
from ..exceptions import ConnectionClosed
from ..http.router import App
from ..http.server import html_response
from ..protocol.http11 import Response

__all__ = ["MAX_NAME", "MAX_TEXT", "STATIC", "ChatRooms", "make_app"]

STATIC = Path(__file__).parent / "static"
MAX_NAME = 32  # characters in a name or a room's name
MAX_TEXT = 2000  # characters in a message
#: The largest WebSocket message the app's server takes (the echo's 4 MiB and more).
MAX_SIZE = 16 * 2**20


class ChatRooms:
    """Who is in which room; what one says goes to all of that room."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[ServerConnection, str]] = defaultdict(dict)

    def names(self, room: str) -> list[str]:
        return sorted(self.rooms[room].values(), key=str.casefold)

    def announce(self, room: str) -> None:
        members = self.rooms.get(room)
        if members:
            online = {"type": "online", "room": room, "names": self.names(room)}
            broadcast(members, json.dumps(online))

    async def handle(self, ws: ServerConnection) -> None:
        """One member: join, then say things until gone."""
        join = await _expect(ws, "join")
        if join is None:
            return
        name, room = _clean(join.get("name")), _clean(join.get("room"))
        if not name or not room:
            await ws.close(1008, "a name and a room are needed")
            return
        self.rooms[room][ws] = name
        try:
            await ws.send(json.dumps({"type": "joined", "name": name, "room": room}))
            self.announce(room)
            while True:
                say = await _expect(ws, "say")
                if say is None:
                    return
                text = say.get("text")
                if not isinstance(text, str) or not text.strip():
                    continue
                said = {
                    "type": "said",
                    "name": name,
                    "text": text[:MAX_TEXT],
                    "time": time.time(),
                }
                broadcast(self.rooms[room], json.dumps(said))
        except ConnectionClosed:
            return
        finally:
            members = self.rooms.get(room)
            if members is not None:
                members.pop(ws, None)
                if members:
                    self.announce(room)
                else:
                    del self.rooms[room]


async def _expect(ws: ServerConnection, kind: str) -> dict[str, Any] | None:
    """The next message, a JSON object of type ``kind``; else close (and ``None``)."""
    try:
        message = await ws.recv()
    except ConnectionClosed:
        return None
    if not isinstance(message, str):
        await ws.close(1003, "text only")  # RFC 6455 7.4.1
        return None
    try:
        data = json.loads(message)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("type") != kind:
        await ws.close(1008, f"expected a {kind!r} message")
        return None
    return data


def _clean(value: Any) -> str:
    """A name or a room: a string, trimmed, without control characters, not too long."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if ch.isprintable()).strip()[:MAX_NAME]


async def echo(ws: ServerConnection) -> None:
    """``/echo``: every message back, as it came."""
    async for message in ws:
        await ws.send(message)


def make_app(rooms: ChatRooms | None = None) -> App:
    """The chat's application: the page, ``/ws``, ``/echo`` (see the module's doc)."""
    app = App()  # WebSocket handshakes: the page's own origin (or none, for tools)
    chat = rooms or ChatRooms()
    index = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/")
    async def page(request: Any) -> Response:
        return html_response(index, headers=[("Cache-Control", "no-cache")])

    app.websocket("/ws", chat.handle)
    app.websocket("/echo", echo)
    app.static("/static", str(STATIC))
    return app
