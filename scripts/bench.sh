#!/usr/bin/env bash
# Set up a virtualenv with the compiled build and the peers, then run the
# benchmark suite: markdown tables on stdout, benchmarks/results/suite.{md,json,png}.
# Arguments go to benchmarks/suite.py (e.g. --quick, --servers, --rows).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh bench
exec "$PY" benchmarks/suite.py "$@"
