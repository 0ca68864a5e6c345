#!/usr/bin/env bash
# Set up a virtualenv with the compiled build and the peers, then run the
# benchmark suite: markdown tables on stdout, benchmarks/results/suite.{md,json,png}.
# Arguments go to benchmarks/suite.py (e.g. --quick, --servers, --rows).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
RAPIDWS_REQUIRE_EXTENSIONS=1 "$VENV/bin/python" -m pip install -q -e '.[bench]'
exec "$VENV/bin/python" benchmarks/suite.py "$@"
