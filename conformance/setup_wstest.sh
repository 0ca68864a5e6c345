#!/usr/bin/env bash
# Create conformance/.wstest/: a Python 2.7 virtualenv holding Autobahn|Testsuite
# (wstest), with the pins of conformance/wstest-requirements.txt.
# Idempotent: does nothing when the same pins are already installed.
# Prints the path of the wstest executable on its last line.
#
# Environment: PYTHON2 overrides the Python 2.7 interpreter to use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.wstest"
requirements="$here/wstest-requirements.txt"
stamp="$venv/.installed"
log="$venv/install.log"
wstest="$venv/bin/wstest"

find_python2() {
    if [[ -n "${PYTHON2:-}" ]]; then
        echo "$PYTHON2"
    elif command -v pyenv >/dev/null 2>&1 \
        && [[ -x "$(pyenv root)/versions/2.7.18/bin/python2.7" ]]; then
        echo "$(pyenv root)/versions/2.7.18/bin/python2.7"
    elif command -v python2.7 >/dev/null 2>&1; then
        command -v python2.7
    else
        echo "setup_wstest.sh: no Python 2.7 found (set PYTHON2)" >&2
        return 1
    fi
}

requirements_hash() {
    sha256sum "$requirements" | cut -d' ' -f1
}

is_installed() {
    [[ -x "$wstest" && -f "$stamp" && "$(cat "$stamp")" == "$(requirements_hash)" ]]
}

# Run a command with its output sent to the install log; show the log on failure.
quietly() {
    if ! "$@" >>"$log" 2>&1; then
        echo "setup_wstest.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
}

install() {
    local python2
    python2="$(find_python2)"
    if ! "$python2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
        echo "setup_wstest.sh: $python2 is not a Python 2.7 interpreter" >&2
        return 1
    fi
    echo "Installing wstest into $venv (Python 2.7: $python2) ..." >&2
    rm -rf "$venv"
    mkdir -p "$venv"
    : >"$log"
    quietly "$python2" -m pip install --disable-pip-version-check "virtualenv<20.22"
    quietly "$python2" -m virtualenv "$venv"
    quietly "$venv/bin/pip" install --disable-pip-version-check --no-python-version-warning \
        -r "$requirements"
    quietly "$wstest" --autobahnversion
    requirements_hash >"$stamp"
}

if ! is_installed; then
    install
fi
echo "$wstest"
