#!/usr/bin/env bash
# Set up a virtualenv and run every check: ruff, mypy, the unit tests and the
# Autobahn|Testsuite in both roles (in parallel). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# The compiled build; RAPIDWS_NO_EXTENSIONS=1 at run time selects the pure one.
RAPIDWS_REQUIRE_EXTENSIONS=1 "$VENV/bin/python" -m pip install -q -e '.[test]'
PY="$VENV/bin/python"

echo "== ruff"
"$PY" -m ruff check rapidws tests conformance
"$PY" -m ruff format --check rapidws tests conformance
echo "== mypy --strict"
"$PY" -m mypy

# Autobahn runs in the background while the unit tests run.
bash conformance/setup_wstest.sh >/dev/null
mkdir -p conformance/reports
pids=()
for role in server client; do
    timeout 2700 "$PY" conformance/autobahn.py --role "$role" --timeout 2400 \
        >"conformance/reports/autobahn-$role.log" 2>&1 &
    pids+=($!)
done

status=0
echo "== pytest (compiled build)"
RAPIDWS_EXPECT_COMPILED=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider || status=1
echo "== pytest (pure-Python build)"
RAPIDWS_NO_EXTENSIONS=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider || status=1

for i in 0 1; do
    role=$([ "$i" = 0 ] && echo server || echo client)
    if wait "${pids[$i]}"; then
        echo "== autobahn $role: PASS"
    else
        echo "== autobahn $role: FAIL"
        status=1
    fi
    sed -n '/^## Autobahn/,$p' "conformance/reports/autobahn-$role.log"
done
exit $status
