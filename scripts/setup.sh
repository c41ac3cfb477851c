#!/usr/bin/env bash
# Create .venv in the repo root and install xmodal with its extras: XMODAL_EXTRAS, default dev
# (scripts/test.sh: dev,tracking; XMODAL_EXTRAS=dev,tracking for --tracking mlflow and the viewers).
# torch==2.13.0 goes first: on these machines it resolves to a local CPU wheel, whereas a
# bare "torch" requirement would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=${XMODAL_EXTRAS:-dev}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.xmodal-installed
[ "$extras" = dev ] || stamp="$stamp-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==${XMODAL_TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
