"""Build the compiled hot path with Cython; everything else is in pyproject.toml.

Each HOT module is a plain ``.py`` (with a ``.pxd`` for types) compiled in
place under its own name.  Nothing is compiled when ``RAPIDWS_NO_EXTENSIONS=1``
or off CPython; a failed compile falls back to the pure-Python build unless
``RAPIDWS_REQUIRE_EXTENSIONS=1``.
"""

from __future__ import annotations

import ast
import os
import platform

from setuptools import Extension, setup


def _hot_modules() -> list[str]:
    """HOT_MODULES of rapidws/_accel.py, read without importing the package."""
    with open(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "rapidws", "_accel.py")
    ) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HOT_MODULES":
            return list(ast.literal_eval(node.value))
    raise RuntimeError("no HOT_MODULES in rapidws/_accel.py")


HOT_MODULES = _hot_modules()

#: Hot modules whose indexing never goes negative or out of bounds (checked by hand).
UNCHECKED = {"rapidws.protocol.engine"}


def extensions() -> list[Extension]:
    if os.environ.get("RAPIDWS_NO_EXTENSIONS") == "1":
        return []
    if platform.python_implementation() != "CPython":
        return []
    required = os.environ.get("RAPIDWS_REQUIRE_EXTENSIONS") == "1"
    try:
        from Cython.Build import cythonize
    except ImportError:
        if required:
            raise
        return []
    directives: dict[str, object] = {
        "language_level": 3,
        "cdivision": True,
        "freethreading_compatible": True,
        # Types come from the .pxd files; annotations are for mypy.
        "annotation_typing": False,
    }
    macros = []
    if os.environ.get("RAPIDWS_CYTHON_TRACE") == "1":
        directives["linetrace"] = True
        macros.append(("CYTHON_TRACE", "1"))
    built = []
    for name in HOT_MODULES:
        module = Extension(
            name,
            [name.replace(".", "/") + ".py"],
            optional=not required,
            define_macros=macros,
            extra_compile_args=["-O3"],
        )
        # Only modules written for it drop Python's index checks; the others
        # keep Python semantics (negative indices, IndexError) exactly.
        unchecked = {"boundscheck": False, "wraparound": False} if name in UNCHECKED else {}
        built += cythonize([module], compiler_directives={**directives, **unchecked}, quiet=True)
    return built


setup(ext_modules=extensions())
