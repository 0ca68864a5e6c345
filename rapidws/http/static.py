"""Static files from a folder: content types, ``ETag``, ``Range``, no way out of the folder.

A request path is refused with 404, as a missing file is (it tells nothing
about the disk), when it holds ``.`` or ``..`` segments, encoded slashes or
backslashes (``%2f``, ``%5c``), a NUL byte (raw or ``%00``), invalid UTF-8
after percent-decoding, or when the file, symlinks resolved, lies outside the
folder.  Conditional requests: ``If-None-Match`` against the ``ETag`` (304,
RFC 9110 13.1.2).  ``Range``: one byte range (206, or 416 when it starts
past the end, RFC 9110 14); several ranges are answered with the whole file.

File I/O and the loop: the path's checks (``realpath``) and ``stat`` run on
the loop, and a file up to ``inline_size`` (16 KiB) is read there: from the
page cache these cost microseconds, less than a hop to a thread (measured:
an executor job per request costs a 1 KiB file a third more instructions).
A file up to ``chunk_size`` (64 KiB) is read whole in one job of the loop's
default executor; a larger one is streamed in ``chunk_size`` reads, each an
executor job, the next one once the client took the previous chunk
(backpressure: one chunk in memory per response).  ``inline_size=0`` moves
the checks and ``stat`` to the executor too (network file systems).
(``loop.sendfile`` does not apply: uvloop does not implement it, and
rapidws's own socket transport is not one asyncio can ``sendfile`` on.)
"""

from __future__ import annotations

import asyncio
import email.utils
import mimetypes
import os
import stat
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..protocol.headers import Headers
from ..protocol.http11 import Response
from .server import StreamResponse, error_response, make_response

if TYPE_CHECKING:
    from .server import HTTPRequest

__all__ = ["INLINE_SIZE", "StaticFiles"]

_REFUSED_ENCODINGS = ("%2f", "%5c", "%00")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


#: Files up to this size are looked up and read on the event loop (see the module notes).
INLINE_SIZE = 16384


class StaticFiles:
    """A handler serving the files under ``folder`` (``index`` for a folder's path).

    ``chunk_size``: larger files are streamed in reads of this size.
    ``inline_size``: the path checks and ``stat`` run on the event loop, and
    files up to this size are read there too; ``0`` moves every one of them
    to the executor (for a network file system, where a ``stat`` may block).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        prefix: str = "",
        index: str | None = "index.html",
        chunk_size: int = 65536,
        inline_size: int = INLINE_SIZE,
    ) -> None:
        self.root = os.path.realpath(folder)
        if not os.path.isdir(self.root):
            raise ValueError(f"not a folder: {folder}")
        self.prefix = prefix
        self.index = index
        self.chunk_size = chunk_size
        self.inline_size = inline_size

    def resolve(self, raw_path: str) -> str | None:
        """The file a raw (percent-encoded) path below the prefix names, or None if refused."""
        lowered = raw_path.lower()
        if any(bad in lowered for bad in _REFUSED_ENCODINGS):
            return None
        try:
            path = urllib.parse.unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            return None
        if "\x00" in path or "\\" in path:
            return None
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts):
            return None
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root + os.sep):
            return None  # a symlink out of the folder
        if os.path.isdir(real):
            if self.index is None:
                return None
            return self.resolve(raw_path.rstrip("/") + "/" + self.index)
        return real

    def lookup(
        self, raw_path: str, read_up_to: int
    ) -> tuple[str, os.stat_result, bytes | None] | None:
        """The file of a raw path, its ``stat``, and its bytes if up to ``read_up_to``; None: 404.

        Blocking (``realpath``, ``stat``, ``open``, ``read``).
        """
        path = self.resolve(raw_path)
        if path is None:
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        data = _read_whole(path, info.st_size) if info.st_size <= read_up_to else None
        return path, info, data

    async def __call__(self, request: HTTPRequest) -> Response:
        raw = request.raw_path[len(self.prefix) :]
        loop = asyncio.get_running_loop()
        chunk_size = self.chunk_size
        if self.inline_size:
            found = self.lookup(raw, self.inline_size)
            if found is not None and found[2] is None and found[1].st_size <= chunk_size:
                read = await loop.run_in_executor(None, _read_whole, found[0], found[1].st_size)
                found = found[0], found[1], read
        else:
            found = await loop.run_in_executor(None, self.lookup, raw, chunk_size)
        if found is None:
            return error_response(404)
        path, info, data = found
        size = info.st_size
        etag = f'"{info.st_mtime_ns:x}-{size:x}"'
        headers = Headers(
            [
                ("ETag", etag),
                ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
                ("Accept-Ranges", "bytes"),
            ]
        )
        if _matches(request.headers.get("If-None-Match"), etag):
            return make_response(304, b"", None, headers)
        content_type, encoding = mimetypes.guess_type(path)
        if content_type is None or encoding is not None:
            content_type = "application/octet-stream"
        elif content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
        ):
            content_type += "; charset=utf-8"
        headers["Content-Type"] = content_type
        start, length, status = 0, size, 200
        spec = request.headers.get("Range")
        if spec is not None and request.method in ("GET", "HEAD"):
            found_range = _byte_range(spec, size)
            if isinstance(found_range, str):  # unsatisfiable
                headers["Content-Range"] = f"bytes */{size}"
                return make_response(416, b"", None, headers)
            if found_range is not None:
                start, length = found_range
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        if data is not None:
            body = data if length == size else data[start : start + length]
            return make_response(status, body, None, headers)
        headers["Content-Length"] = str(length)
        response = StreamResponse(status, "", headers, b"", None)
        if request.method != "HEAD":
            response.stream = _file_chunks(path, start, length, self.chunk_size)
        else:
            response.stream = iter(())
        return response


def _read_whole(path: str, size: int) -> bytes | None:
    """A file's bytes, if it still has ``size`` of them (else it is streamed; blocking)."""
    try:
        with open(path, "rb") as file:
            data = file.read(size + 1)
    except OSError:
        return None
    return data if len(data) == size else None


async def _file_chunks(path: str, start: int, length: int, chunk_size: int) -> AsyncIterator[bytes]:
    """``length`` bytes of a file from ``start``, read in the loop's executor a chunk at a time.

    The response path writes each chunk and waits for the client to take
    it (``drain``) before the next read: one chunk in memory per response.
    A read in flight when the response is abandoned (the client went away)
    runs to its end, and only then is the file closed.
    """
    loop = asyncio.get_running_loop()
    job: asyncio.Future[Any] = loop.run_in_executor(None, os.open, path, _OPEN_FLAGS)
    try:
        fd: int = await asyncio.shield(job)
    except asyncio.CancelledError:
        job.add_done_callback(_close_opened)
        raise
    try:
        while length > 0:
            job = loop.run_in_executor(None, os.pread, fd, min(chunk_size, length), start)
            chunk: bytes = await asyncio.shield(job)
            if not chunk:
                raise OSError(f"{path} shrank while it was sent")
            start += len(chunk)
            length -= len(chunk)
            yield chunk
    finally:
        if job.done():
            os.close(fd)
        else:
            job.add_done_callback(lambda _job: os.close(fd))


def _close_opened(job: asyncio.Future[Any]) -> None:
    """Close the file an abandoned ``os.open`` job opened."""
    if not job.cancelled() and job.exception() is None:
        os.close(job.result())


def _digits(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit())


def _matches(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if header is None:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _byte_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """``(start, length)`` of a single byte range, "unsatisfiable", or None to ignore it."""
    unit, _, ranges = spec.partition("=")
    if unit.strip().lower() != "bytes" or "," in ranges:
        return None  # another unit, or several ranges: the whole file (RFC 9110 14.2)
    first, dash, last = ranges.strip().partition("-")
    if not dash or not _digits(first) or not _digits(last) or first == last == "":
        return None
    if first == "":
        if int(last) == 0:
            return "unsatisfiable"
        suffix = min(int(last), size)
        return (size - suffix, suffix) if suffix else "unsatisfiable"
    begin = int(first)
    if begin >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    if end < begin:
        return None
    return begin, end - begin + 1
