"""Every runnable example in examples/ runs to its end, in the build under test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
PYTHONPATH = os.environ.get("PYTHONPATH", "")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".py")))
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        # This checkout's rapidws, whatever an editable install points at.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, PYTHONPATH]))},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"
