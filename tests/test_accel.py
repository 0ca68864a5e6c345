"""The build of the hot path that runs is the one the environment asks for."""

from __future__ import annotations

import os

from rapidws import _accel


def test_loaded_build_matches_the_environment() -> None:
    builds = _accel.compiled_modules()
    assert set(builds) == set(_accel.HOT_MODULES)
    if _accel.NO_EXTENSIONS:
        assert not any(builds.values()), builds
    elif os.environ.get("RAPIDWS_EXPECT_COMPILED") == "1":
        assert all(builds.values()), builds
    else:
        # Either build may run here; each module must be loaded from a real file.
        for name in _accel.HOT_MODULES:
            module = __import__(name, fromlist=["_"])
            assert module.__file__ and os.path.isfile(module.__file__)


def test_pure_build_can_be_forced_in_a_subprocess() -> None:
    import subprocess
    import sys

    code = "import rapidws._accel as a; print(a.compiled_modules())"
    env = dict(os.environ, RAPIDWS_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "True" not in out and "False" in out
