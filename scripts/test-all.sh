#!/usr/bin/env bash
# Set up a virtualenv and run every check: ruff, mypy, the unit tests and the
# Autobahn|Testsuite in both roles (in parallel), for the compiled and the
# pure-Python builds. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh test

echo "== ruff"
"$PY" -m ruff check rapidws tests conformance benchmarks examples
"$PY" -m ruff format --check rapidws tests conformance benchmarks examples
echo "== mypy --strict"
"$PY" -m mypy

# Autobahn, compiled build, every case (1.* to 13.*; the compression cases take
# about 17 minutes, paced by wstest): both roles in the background.
bash conformance/setup_wstest.sh >/dev/null
mkdir -p conformance/reports
declare -A jobs
autobahn() {  # name, extra arguments...
    local name=$1
    shift
    timeout 2700 "$PY" conformance/autobahn.py --timeout 2400 \
        --report-dir "conformance/reports/$name" "$@" \
        >"conformance/reports/autobahn-$name.log" 2>&1 &
    jobs[$name]=$!
}
autobahn server --role server
autobahn client --role client

# Interop peers: Node's ws (npm) and Debian's Chromium.
bash conformance/interop/setup.sh
export RAPIDWS_REQUIRE_INTEROP=1

status=0
# The compiled build runs on the default transports (the loop's own, and
# rapidws's own on uvloop) and again on aiofastnet's (installed with the test
# extra, opted into here); the pure build on the default ones.
echo "== pytest (compiled build, default transports)"
RAPIDWS_FASTNET=0 RAPIDWS_EXPECT_COMPILED=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider -m "not soak" || status=1
echo "== pytest (compiled build, aiofastnet transports)"
RAPIDWS_FASTNET=1 RAPIDWS_EXPECT_COMPILED=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider -m "not soak" || status=1
echo "== pytest (pure-Python build, default transports)"
RAPIDWS_FASTNET=0 RAPIDWS_NO_EXTENSIONS=1 timeout 900 "$PY" -m pytest -q -p no:cacheprovider -m "not soak" || status=1

# The chaos soak, a minute a build: 500 hostile peers while 20 clients are
# served (tests/hostile/test_chaos.py prints its table).
for build in compiled pure; do
    echo "== chaos soak ($build build)"
    env RAPIDWS_SOAK_SECONDS=60 RAPIDWS_FASTNET=0 \
        $([ $build = pure ] && echo RAPIDWS_NO_EXTENSIONS=1 || echo RAPIDWS_EXPECT_COMPILED=1) \
        timeout 900 "$PY" -m pytest -q -p no:cacheprovider --timeout 600 -m soak tests/hostile ||
        status=1
done

# The benchmark suite, as a smoke run: it must keep working (no figures kept).
echo "== benchmark suite (smoke run)"
timeout 600 "$PY" benchmarks/suite.py --quick --name smoke --no-chart --no-clients \
    --servers "rapidws callback,rapidws async,rapidws pure,raw TCP echo" --loops asyncio,uvloop \
    --memory-connections 200 >/dev/null || status=1

# Autobahn, pure-Python build, cases 1.* to 10.*.
export RAPIDWS_NO_EXTENSIONS=1 RAPIDWS_FASTNET=0
autobahn pure-server --role server --exclude-cases '12.*,13.*'
autobahn pure-client --role client --exclude-cases '12.*,13.*'
unset RAPIDWS_NO_EXTENSIONS RAPIDWS_FASTNET

for name in pure-server pure-client server client; do
    if wait "${jobs[$name]}"; then
        echo "== autobahn $name: PASS"
    else
        echo "== autobahn $name: FAIL"
        status=1
    fi
    sed -n '/^## Autobahn/,$p' "conformance/reports/autobahn-$name.log"
done
exit $status
