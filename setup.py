"""Build the compiled hot path with Cython; everything else is in pyproject.toml.

Each HOT module is a plain ``.py`` (with a ``.pxd`` for types) compiled in
place under its own name.  Nothing is compiled when ``RAPIDWS_NO_EXTENSIONS=1``
or off CPython; a failed compile falls back to the pure-Python build unless
``RAPIDWS_REQUIRE_EXTENSIONS=1``.
"""

from __future__ import annotations

import os
import platform

from setuptools import Extension, setup

HOT_MODULES = ["rapidws.protocol.engine"]


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
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "freethreading_compatible": True,
        # Types come from the .pxd files; annotations are for mypy.
        "annotation_typing": False,
    }
    macros = []
    if os.environ.get("RAPIDWS_CYTHON_TRACE") == "1":
        directives["linetrace"] = True
        macros.append(("CYTHON_TRACE", "1"))
    modules = [
        Extension(
            name,
            [name.replace(".", "/") + ".py"],
            optional=not required,
            define_macros=macros,
            extra_compile_args=["-O3"],
        )
        for name in HOT_MODULES
    ]
    return list(cythonize(modules, compiler_directives=directives, quiet=True))


setup(ext_modules=extensions())
