#!/usr/bin/env bash
# Set up .venv (first run only) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
XMODAL_EXTRAS=${XMODAL_EXTRAS:-dev,tracking} bash scripts/setup.sh  # tracking: the MLflow/Optuna/TensorBoard tests
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PATH="$PWD/.venv/bin:$PATH"  # `ray` / `python` of the project's environment for the job-submit test
exec .venv/bin/python -m pytest "$@"
