"""Static files from a folder: content types, ``ETag``, ``Range``, no way out of the folder.

A request path is refused with 404, as a missing file is (it tells nothing
about the disk), when it holds ``.`` or ``..`` segments, encoded slashes or
backslashes (``%2f``, ``%5c``), a NUL byte (raw or ``%00``), invalid UTF-8
after percent-decoding, or when the file, symlinks resolved, lies outside the
folder.  Conditional requests: ``If-None-Match`` against the ``ETag`` (304,
RFC 9110 13.1.2).  ``Range``: one byte range (206, or 416 when it starts
past the end, RFC 9110 14); several ranges are answered with the whole file.
Files over ``chunk_size`` are streamed from the disk in chunks of that size.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..protocol.headers import Headers
from ..protocol.http11 import Response
from .server import StreamResponse, error_response, make_response

if TYPE_CHECKING:
    from .server import HTTPRequest

__all__ = ["StaticFiles"]

_REFUSED_ENCODINGS = ("%2f", "%5c", "%00")


class StaticFiles:
    """A handler serving the files under ``folder`` (``index`` for a folder's path)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        prefix: str = "",
        index: str | None = "index.html",
        chunk_size: int = 65536,
    ) -> None:
        self.root = os.path.realpath(folder)
        if not os.path.isdir(self.root):
            raise ValueError(f"not a folder: {folder}")
        self.prefix = prefix
        self.index = index
        self.chunk_size = chunk_size

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

    async def __call__(self, request: HTTPRequest) -> Response:
        raw = request.raw_path[len(self.prefix) :]
        path = self.resolve(raw)
        if path is None:
            return error_response(404)
        try:
            info = os.stat(path)
        except OSError:
            return error_response(404)
        if not stat.S_ISREG(info.st_mode):
            return error_response(404)
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
            found = _byte_range(spec, size)
            if isinstance(found, str):  # unsatisfiable
                headers["Content-Range"] = f"bytes */{size}"
                return make_response(416, b"", None, headers)
            if found is not None:
                start, length = found
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        if length <= self.chunk_size:
            with open(path, "rb") as file:
                file.seek(start)
                body = file.read(length)
            return make_response(status, body, None, headers)
        headers["Content-Length"] = str(length)
        response = StreamResponse(status, "", headers, b"", None)
        if request.method != "HEAD":
            response.stream = _read(path, start, length, self.chunk_size)
        else:
            response.stream = iter(())
        return response


def _read(path: str, start: int, length: int, chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(chunk_size, length))
            if not chunk:
                raise OSError(f"{path} shrank while it was sent")
            length -= len(chunk)
            yield chunk


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
