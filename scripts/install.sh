#!/usr/bin/env bash
# `make venv`: the virtualenv (.venv) and the pinned requirements.txt, with visible progress.
#
# Installs with uv (pinned: UV_VERSION) when it is on the PATH at that version or can be
# installed from PyPI into the virtualenv, else with pip (INSTALL_WITH=pip forces pip). Both
# install exactly the pins of requirements.txt. Prints the time each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
UV_VERSION="${UV_VERSION:-0.13.8}"
VENV=.venv
SECONDS=0
step() { echo "==> [${SECONDS} s] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV" || python3 -m venv "$VENV"
fi

uv=""
if [ "${INSTALL_WITH:-uv}" = uv ]; then
  if command -v uv >/dev/null 2>&1 && [ "$(uv --version | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    uv="$(command -v uv)"
  elif [ -x "$VENV/bin/uv" ] && [ "$("$VENV/bin/uv" --version | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    uv="$VENV/bin/uv"
  else
    step "installing uv $UV_VERSION with pip"
    if "$VENV/bin/python" -m pip install --progress-bar on "uv==$UV_VERSION"; then
      uv="$VENV/bin/uv"
    else
      echo "uv $UV_VERSION could not be installed: falling back to pip" >&2
    fi
  fi
fi

if [ -n "$uv" ]; then
  step "installing requirements.txt with uv $UV_VERSION (a few hundred MB on a first install)"
  # uv does not read pip's configuration: its own index (PyPI) and cache (UV_CACHE_DIR).
  # --compile-bytecode, as pip does: without it the first `make run` took 140 s instead of 41 s
  # here (every process of the start compiling the same modules), for 48 s saved at install.
  "$uv" pip install --python "$VENV/bin/python" --compile-bytecode -r requirements.txt
else
  step "installing requirements.txt with pip (slower; uv is used when it can be installed)"
  "$VENV/bin/python" -m pip install --progress-bar on --upgrade pip
  "$VENV/bin/python" -m pip install --progress-bar on -r requirements.txt
fi
step "dependencies installed in ${SECONDS} s"
