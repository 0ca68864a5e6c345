# Sourced by the scripts here: create (once) and update the virtualenv $VENV
# (default .venv) with rapidws installed editable and compiled, plus the
# extras given as the first argument (e.g. "test"); sets PY to its python.
# RAPIDWS_NO_EXTENSIONS=1 at run time selects the pure-Python build.
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
RAPIDWS_REQUIRE_EXTENSIONS=1 "$VENV/bin/python" -m pip install -q -e ".[$1]"
PY="$VENV/bin/python"
