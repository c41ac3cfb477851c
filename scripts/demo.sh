#!/usr/bin/env bash
# Set up .venv (first run only) and run the main job on the embedded default:
# local Ray, synthetic demo cohort, small budget. Extra arguments go to the search script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python searches/ahnp_per_pathology.py "$@"
