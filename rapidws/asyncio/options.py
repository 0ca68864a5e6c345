"""Checking the keyword arguments of ``connect``, ``serve`` and their kin at the call.

``connect`` and ``serve`` pass keyword arguments they do not know to the
event loop (``loop.create_connection``, ``loop.create_server``), as
websockets does.  Unchecked, a misspelt option fails only at ``await``, with
a ``TypeError`` that names asyncio's ``BaseEventLoop``; :func:`check_keywords`
rejects it at the call, naming rapidws's function and the closest valid
option::

    check_keywords("rapidws.connect", kwargs, own=option_names(connect.__init__),
                   passed_to=asyncio.BaseEventLoop.create_connection)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["check_keywords", "loop_keywords", "option_names", "unexpected_keyword"]


@functools.cache
def option_names(function: Callable[..., Any]) -> frozenset[str]:
    """The names ``function`` takes by keyword (not ``self``, not ``**kwargs``)."""
    return frozenset(
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
        and parameter.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


@functools.cache
def loop_keywords(method: Callable[..., Any]) -> frozenset[str]:
    """The keyword names of an event loop method, e.g. ``asyncio.BaseEventLoop.create_server``.

    The first argument after ``self`` (the protocol factory) is not one.
    """
    names = [
        name
        for name, parameter in inspect.signature(method).parameters.items()
        if name != "self"
        and parameter.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return frozenset(names[1:])


def unexpected_keyword(function: str, name: str, valid: Iterable[str], otherwise: str = "") -> str:
    """``function() got an unexpected keyword argument 'name'``, then the closest of
    ``valid`` as ``; did you mean ...?``, or ``otherwise`` if none is close."""
    import difflib  # only for the error

    message = f"{function}() got an unexpected keyword argument {name!r}"
    close = difflib.get_close_matches(name, sorted(valid), n=1)
    return message + (f"; did you mean {close[0]!r}?" if close else otherwise)


def check_keywords(
    function: str,
    kwargs: Mapping[str, Any],
    *,
    own: Iterable[str],
    passed_to: Callable[..., Any],
) -> None:
    """Raise :class:`TypeError` for a keyword neither ``function`` nor ``passed_to`` takes.

    ``function`` is the name the caller wrote (``"rapidws.connect"``); ``own``
    its options; ``passed_to`` the event loop method that gets the others.
    The message names the closest valid option, if one is close.
    """
    allowed = loop_keywords(passed_to)
    unknown = [name for name in kwargs if name not in allowed]
    if not unknown:
        return
    method = getattr(passed_to, "__qualname__", "the event loop").split(".")[-1]
    otherwise = f" (neither one of its options nor one of loop.{method}()'s)"
    raise TypeError(unexpected_keyword(function, unknown[0], allowed.union(own), otherwise))


#: What ``serve`` passes its unknown keywords to, for :func:`check_keywords`.
CREATE_SERVER = asyncio.BaseEventLoop.create_server
CREATE_CONNECTION = asyncio.BaseEventLoop.create_connection
CREATE_UNIX_CONNECTION = asyncio.BaseEventLoop.create_unix_connection
CREATE_UNIX_SERVER = asyncio.BaseEventLoop.create_unix_server
