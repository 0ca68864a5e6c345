"""The protocol core stays sans-I/O: no sockets, asyncio, TLS or clocks."""

from __future__ import annotations

import ast
import pathlib

import pytest

import rapidws.protocol

FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading"}
CORE = sorted(pathlib.Path(rapidws.protocol.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_imports_no_io(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
