#!/usr/bin/env bash
# Profile the gateway (or --target minimal) under load with py-spy: bash bench/profile.sh [--seconds 15]
# py-spy goes into its own venv, bench/.venv-tools. BENCH_PYTHON as for bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ ! -x bench/.venv-tools/bin/py-spy ]; then
  python3 -m venv bench/.venv-tools && bench/.venv-tools/bin/pip install -q 'py-spy==0.4.3'
fi
PY=${BENCH_PYTHON:-$PWD/.venv/bin/python}
exec "$PY" bench/profile.py --python "$PY" "$@"
