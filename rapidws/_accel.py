"""Which build of the hot path runs: compiled (Cython) or pure Python.

The hot modules are plain ``.py`` files that ``setup.py`` also compiles in
place; a compiled module shadows its source.  With ``RAPIDWS_NO_EXTENSIONS=1``
in the environment, a meta-path finder loads the ``.py`` sources instead, so
one installation runs either build.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["HOT_MODULES", "NO_EXTENSIONS", "compiled_modules", "is_compiled"]

#: Modules ``setup.py`` compiles (it reads this tuple without importing rapidws).
HOT_MODULES = (
    "rapidws.protocol.engine",
    "rapidws.protocol.http11",
    "rapidws.protocol.headers",
    "rapidws.protocol.handshake",
    "rapidws.io.transport",
    "rapidws.io.sockets",
    "rapidws.listener",
    "rapidws.asyncio.connection",
    "rapidws.asyncio.streams",
    "rapidws.broadcast",
)

NO_EXTENSIONS = os.environ.get("RAPIDWS_NO_EXTENSIONS", "") not in ("", "0")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Load the Python source of hot modules, ignoring compiled ones."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOT_MODULES:
            return None
        filename = fullname.rpartition(".")[2] + ".py"
        for entry in path or ():
            source = os.path.join(entry, filename)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


if NO_EXTENSIONS and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourceFinder())


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension."""
    return not (module.__file__ or "").endswith(".py")


def compiled_modules() -> dict[str, bool]:
    """Each hot module and whether its compiled build is the one loaded."""
    return {name: is_compiled(importlib.import_module(name)) for name in HOT_MODULES}
