"""The server's opening-handshake hooks, with websockets' meaning.

``process_request(connection, request)`` runs before the handshake is
checked: it returns ``None`` to go on, or a
:class:`~rapidws.protocol.http11.Response` to answer with instead.
``process_response(connection, request, response)`` runs on the response
about to be sent (the 101 or an error): it may change it in place, or
return another one.  Both may be plain functions or coroutine functions.  A
hook that raises is logged and answered with HTTP 500; the server goes on.

:func:`answer` is what a server connection's ``process_request`` returns:
the response at once when every hook is synchronous (no task, no await),
else an awaitable that the transport layer waits for with reading paused
(see ``BaseConnection._answer_later``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import InvalidMessage
from ..protocol.handshake import ServerHandshake
from ..protocol.http11 import Request, Response

__all__ = ["ProcessRequest", "ProcessResponse", "answer", "hook_failed"]

ProcessRequest = Callable[[Any, Request], "Response | Awaitable[Response | None] | None"]
ProcessResponse = Callable[[Any, Request, Response], "Response | Awaitable[Response | None] | None"]

FAILED_TEXT = "Failed to open a WebSocket connection.\nSee server log for more information.\n"


def hook_failed(conn: Any, name: str, exc: Exception, logger: Any) -> Response:
    """The 500 answering a hook that raised; the exception is logged and kept."""
    conn.handshake_exc = exc
    logger.error("%s failed", name, exc_info=exc)
    http = getattr(conn, "_http", None)
    if http is not None and http.busy:  # a plain HTTP request: plain words
        from ..http.server import error_response

        return error_response(500, "see the server log")
    handshake = conn.handshake
    assert isinstance(handshake, ServerHandshake)
    return handshake.reject(500, FAILED_TEXT)


def answer(
    conn: Any,
    request: Request,
    accept: Callable[[Request], Response | None],
    process_request: ProcessRequest | None,
    process_response: ProcessResponse | None,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> Response | Awaitable[Response | None] | None:
    """Run the hooks around ``accept`` (the handshake itself) for ``request``."""
    response: Any = None
    if process_request is not None:
        try:
            response = process_request(conn, request)
        except Exception as exc:
            response = hook_failed(conn, "process_request", exc, logger)
        else:
            if inspect.isawaitable(response):
                return _answer_later(conn, request, response, accept, process_response, logger)
    return _after_request(conn, request, response, accept, process_response, logger)


async def _answer_later(
    conn: Any,
    request: Request,
    pending: Awaitable[Response | None],
    accept: Callable[[Request], Response | None],
    process_response: ProcessResponse | None,
    logger: Any,
) -> Response | None:
    try:
        response = await pending
    except Exception as exc:
        response = hook_failed(conn, "process_request", exc, logger)
    result = _after_request(conn, request, response, accept, process_response, logger)
    if result is None or isinstance(result, Response):
        return result
    return await result


def _after_request(
    conn: Any,
    request: Request,
    response: Response | None,
    accept: Callable[[Request], Response | None],
    process_response: ProcessResponse | None,
    logger: Any,
) -> Response | Awaitable[Response | None] | None:
    if response is None:
        response = accept(request)  # the 101, or the handshake's own error response
        if response is None:
            return None
    elif not isinstance(response, Response):
        exc = TypeError(f"process_request returned {type(response).__name__}, not Response")
        response = hook_failed(conn, "process_request", exc, logger)
    else:
        _add_server_header(conn, response)
    if process_response is None:
        return _checked(conn, response)
    try:
        changed = process_response(conn, request, response)
    except Exception as exc:
        changed = hook_failed(conn, "process_response", exc, logger)
    else:
        if inspect.isawaitable(changed):
            return _response_later(conn, response, changed, logger)
    return _replaced(conn, response, changed, logger)


async def _response_later(
    conn: Any, response: Response, pending: Awaitable[Response | None], logger: Any
) -> Response:
    try:
        changed = await pending
    except Exception as exc:
        changed = hook_failed(conn, "process_response", exc, logger)
    return _replaced(conn, response, changed, logger)


def _replaced(conn: Any, response: Response, changed: Any, logger: Any) -> Response:
    if changed is not None:
        if not isinstance(changed, Response):
            exc = TypeError(f"process_response returned {type(changed).__name__}, not Response")
            changed = hook_failed(conn, "process_response", exc, logger)
        response = changed
    return _checked(conn, response)


def _add_server_header(conn: Any, response: Response) -> None:
    """A hook's own response gets the ``Server`` header too, as in websockets."""
    server_header = getattr(conn.handshake, "server_header", None)
    if server_header is not None and "Server" not in response.headers:
        response.headers["Server"] = server_header


def _checked(conn: Any, response: Response) -> Response:
    """Note why the handshake fails when the answer is not a 101."""
    if response.status_code != 101 and conn.handshake_exc is None:
        conn.handshake_exc = InvalidMessage(f"request rejected with HTTP {response.status_code}")
    return response
