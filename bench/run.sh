#!/usr/bin/env bash
# The whole benchmark in one command (about 12-15 minutes):  bash bench/run.sh   (or: make bench)
# Installs what is missing (wrk, node, the gateway's .venv, LiteLLM's own venv), then runs
# bench/runner.py, which writes bench/RESULTS.md and prints a summary. Extra arguments go to the
# runner (python bench/runner.py --help), e.g. `bash bench/run.sh --quick` to check the harness,
# `bash bench/run.sh --matrix` for the feature matrix (about 12 minutes; Redis on 127.0.0.1:6379).
# BENCH_PYTHON=/path/to/venv/bin/python picks the gateway's venv (default: ./.venv, made by make install).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "[bench] installing wrk (Debian package)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
if ! command -v node >/dev/null; then
  echo "[bench] installing node (Debian package) for the mock provider"
  apt-get update -qq && apt-get install -y -qq nodejs >/dev/null
fi

PY=${BENCH_PYTHON:-}
if [ -z "$PY" ]; then
  [ -x .venv/bin/python ] || make install
  PY=$PWD/.venv/bin/python
fi

LITE=bench/.venv-litellm
case " $* " in
  *" --matrix "*) LITE_WANTED=no ;;  # the feature matrix has no LiteLLM target (it needs Redis on 6379)
  *) LITE_WANTED=yes ;;
esac
if [ "$LITE_WANTED" = yes ] && ! cmp -s bench/requirements-litellm.txt "$LITE/.installed" 2>/dev/null; then
  echo "[bench] installing LiteLLM into $LITE (a few minutes, once)"
  if python3 -m venv "$LITE" && "$LITE/bin/pip" install -q -r bench/requirements-litellm.txt; then
    cp bench/requirements-litellm.txt "$LITE/.installed"
  else
    echo "[bench] LiteLLM could not be installed: it will be reported as not measured" >&2
  fi
fi

BENCH_COMMAND="bash bench/run.sh${*:+ $*}" exec "$PY" bench/runner.py --python "$PY" "$@"
