"""Stand-in for Cython's ``cython`` module in the pure-Python build.

Modules compiled in Cython's pure-Python mode ``import cython``; where
Cython is not installed they import this instead.  Only ``compiled`` is
read at run time: the branches that use Cython's casts and pointer types
run in the compiled build alone.
"""

from typing import Any

compiled = False


def __getattr__(name: str) -> Any:
    """Casts and C types: only named in code that runs compiled."""
    raise AttributeError(f"{name!r} exists in the compiled build only")
