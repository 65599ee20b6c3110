#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv from the pinned lock files.
# Idempotent: it does nothing when .venv already matches requirements.lock + requirements-assets.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.lock-stamp"
want=$(cat requirements.lock requirements-assets.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: creating $VENV from requirements.lock (first run downloads ~5 GB of torch/CUDA wheels)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.8
export VIRTUAL_ENV="$PWD/$VENV"
"$VENV/bin/uv" pip sync -q requirements.lock
"$VENV/bin/uv" pip install -q --no-deps -r requirements-assets.txt
"$VENV/bin/uv" pip install -q --no-deps -e .
echo "$want" > "$stamp"
echo "bootstrap: $VENV ready" >&2
