"""Static files from a folder: content types, ``ETag``, ``Range``, no way out of the folder.

A request path is refused with 404, as a missing file is (it tells nothing
about the disk), when it holds ``.`` or ``..`` segments, encoded slashes or
backslashes (``%2f``, ``%5c``), a NUL byte (raw or ``%00``), invalid UTF-8
after percent-decoding, or when the file, symlinks resolved, lies outside the
folder.  Conditional requests: ``If-None-Match`` against the ``ETag`` (304,
RFC 9110 13.1.2).  ``Range``: one byte range (206, or 416 when it starts
past the end, RFC 9110 14); several ranges are answered with the whole file.

File I/O and the loop: no read waits for the disk on the loop.  The path's
checks (``realpath``), ``stat`` and ``open`` run on the loop, and a file up
to ``inline_size`` (16 KiB) is read there if the page cache holds it all
(``RWF_NOWAIT``; else it is streamed as a large one): these cost
microseconds, less than a hop to a thread.  A larger file is opened there
and streamed in ``chunk_size`` (64 KiB) chunks, each read first with
``RWF_NOWAIT`` (what the page cache holds, or nothing at once), the rest by
a ``pread`` in the loop's default executor; the next chunk is read once the
client took the last (backpressure: one chunk in memory per response).
Measured per 64 KiB chunk from the page cache: about 3 µs read on the
loop, about 50 µs through an executor job (callgrind: a 1 MiB file cost
4.2 M instructions per request with a job per chunk, 0.6 M before).
``inline_size=0`` moves the checks, ``stat``, ``open`` and every read to the
executor (network file systems, where a ``stat`` may block); files up to
``chunk_size`` are then read whole in the same job as the ``stat``.
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
#: ``preadv2``'s flag to read only what the page cache holds (Linux 4.14+), else 0.
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0) if hasattr(os, "preadv") else 0


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
        on_loop = self.inline_size > 0
        if on_loop:
            found = self.lookup(raw, 0)
            if found is not None and found[1].st_size <= self.inline_size:
                found = found[0], found[1], _read_cached(found[0], found[1].st_size)
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
            response.stream = _file_chunks(path, start, length, chunk_size, on_loop)
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


def _read_cached(path: str, size: int) -> bytes | None:
    """A small file's bytes if the page cache holds them all (``RWF_NOWAIT``), else None.

    Without ``RWF_NOWAIT`` (not Linux), a plain read: the file is small.
    """
    if not _RWF_NOWAIT:
        return _read_whole(path, size)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        buf = bytearray(size + 1)
        got = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
    except OSError:  # EAGAIN: the disk would be waited on; or not supported here
        return None
    finally:
        os.close(fd)
    return bytes(buf[:got]) if got == size else None


async def _file_chunks(
    path: str, start: int, length: int, chunk_size: int, on_loop: bool
) -> AsyncIterator[bytes]:
    """``length`` bytes of a file from ``start``, a chunk at a time, never waiting on the disk.

    ``on_loop``: the file is opened on the loop (it was just ``stat``-ed
    there) and each chunk is first read there with ``RWF_NOWAIT``
    (``preadv2``: whatever the page cache holds, at once, or ``EAGAIN``
    without waiting for the disk); what it could not give is read by an
    ``os.pread`` in the loop's default executor.  Else the open and every
    read go to the executor.  The response path writes each chunk and waits
    for the client to take it (``drain``) before the next read: one chunk in
    memory per response.  A job in flight when the response is abandoned
    (the client went away) runs to its end, and only then is the file closed.
    """
    loop = asyncio.get_running_loop()
    if on_loop:
        fd = os.open(path, _OPEN_FLAGS)
        job: asyncio.Future[Any] | None = None
    else:
        job = loop.run_in_executor(None, os.open, path, _OPEN_FLAGS)
        try:
            fd = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(_close_opened)
            raise
    nowait = _RWF_NOWAIT if on_loop else 0
    # One buffer per response for the page-cache reads, each copied out once
    # (the chunk may wait in the write buffer while the next one is read).
    view = memoryview(bytearray(min(chunk_size, length))) if nowait else None
    try:
        while length > 0:
            size = min(chunk_size, length)
            chunk = b""
            if view is not None:
                try:
                    got = os.preadv(fd, [view[:size]], start, nowait)
                except BlockingIOError:  # not in the page cache: the disk would be waited on
                    got = 0
                except OSError:
                    got = -1
                if got > 0:
                    chunk = bytes(view[:got])
                elif got < 0:  # not supported by this file system
                    view = None
            if not chunk:
                job = loop.run_in_executor(None, os.pread, fd, size, start)
                chunk = await asyncio.shield(job)
                if not chunk:
                    raise OSError(f"{path} shrank while it was sent")
            start += len(chunk)
            length -= len(chunk)
            yield chunk
    finally:
        if job is None or job.done():
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
