"""``route``: one server, a handler per URL path, as websockets' router.

The URL map is werkzeug's (``pip install werkzeug``), as in websockets, so
that a ported application keeps its ``Map`` and ``Rule`` objects: each rule's
endpoint is a handler called as ``handler(connection, **path_arguments)``.
A path that matches no rule gets HTTP 404, one that werkzeug redirects
(``strict_slashes``) a 302 to the canonical URL.
"""

from __future__ import annotations

import inspect
import ssl as ssl_module
import urllib.parse
from typing import TYPE_CHECKING, Any

from ..protocol.http11 import Request, Response
from .hooks import ProcessRequest
from .server import ServerConnection, serve

if TYPE_CHECKING:
    from werkzeug.routing import Map

__all__ = ["Router", "route", "unix_route"]


class Router:
    """Dispatch each connection to the handler its URL maps to."""

    def __init__(self, url_map: Map, server_name: str | None = None, url_scheme: str = "ws"):
        self.url_map = url_map
        self.server_name = server_name
        self.url_scheme = url_scheme
        for rule in url_map.iter_rules():
            rule.websocket = True  # matched by ws:// and wss:// URLs only

    def get_server_name(self, connection: ServerConnection, request: Request) -> str:
        """The host name URLs are matched against: ``server_name``, else ``Host``."""
        if self.server_name is not None:
            return self.server_name
        return request.headers.get("Host") or ""

    def redirect(self, connection: ServerConnection, url: str) -> Response:
        response = connection.respond(302, f"Found at {url}")
        response.headers["Location"] = url
        return response

    def not_found(self, connection: ServerConnection) -> Response:
        return connection.respond(404, "Not Found")

    def route_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Find the handler for ``request``, or answer 404 or a redirect."""
        from werkzeug.exceptions import NotFound
        from werkzeug.routing import RequestRedirect

        adapter = self.url_map.bind(
            server_name=self.get_server_name(connection, request), url_scheme=self.url_scheme
        )
        target = urllib.parse.urlsplit(request.path)
        try:
            handler, kwargs = adapter.match(path_info=target.path, query_args=target.query)
        except RequestRedirect as redirect:
            return self.redirect(connection, redirect.new_url)
        except NotFound:
            return self.not_found(connection)
        connection.handler, connection.handler_kwargs = handler, kwargs  # type: ignore[attr-defined]
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """Run the handler :meth:`route_request` found."""
        await connection.handler(connection, **connection.handler_kwargs)  # type: ignore[attr-defined]


def _require_werkzeug(name: str) -> None:
    try:
        import werkzeug.routing  # noqa: F401
    except ImportError:
        raise ImportError(f"{name}() requires werkzeug: pip install werkzeug") from None


def route(
    url_map: Map,
    *args: Any,
    server_name: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    create_router: type[Router] | None = None,
    **kwargs: Any,
) -> serve:
    """Like :func:`~rapidws.serve`, dispatching each connection by its URL.

    ``url_map`` is a :class:`werkzeug.routing.Map` whose endpoints are
    handlers; ``server_name`` fixes the host name rules match (default: the
    request's ``Host``).  A ``process_request`` runs first; routing runs if it
    returns ``None``.  ``create_router``: a :class:`Router` subclass.
    """
    _require_werkzeug("route")
    router = (create_router or Router)(url_map, server_name, "ws" if ssl is None else "wss")
    first: ProcessRequest | None = kwargs.pop("process_request", None)
    process_request: ProcessRequest
    if first is None:
        process_request = router.route_request
    else:

        async def process_request(connection: Any, request: Request) -> Response | None:
            response = first(connection, request)
            if inspect.isawaitable(response):
                response = await response
            if response is not None:
                return response
            return router.route_request(connection, request)

    return serve(router.handler, *args, ssl=ssl, process_request=process_request, **kwargs)


def unix_route(url_map: Map, path: str | None = None, **kwargs: Any) -> serve:
    """:func:`route` on the Unix socket at ``path``."""
    return route(url_map, unix=True, path=path, **kwargs)
