#!/usr/bin/env bash
# `make test`: bootstrap, then the whole pytest suite (it creates its own database).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NIXFLEX_DB_NAME=nixflex_test source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
# Development defaults come from here (and tests/settings.py), never from settings.py.
export DEBUG="${DEBUG:-true}"

# --- Linters and type checker -------------------------------------------------------------
# A full run (`make test`, no arguments) fails on any finding before a test starts.
# NIXFLEX_LINT=1 forces them on a targeted run, NIXFLEX_LINT=0 skips them.
if [ "${NIXFLEX_LINT:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  echo "ruff check, ruff format --check, mypy"
  ruff check --quiet .
  ruff format --check --quiet .
  mypy .
fi
# --- end of linters ---------------------------------------------------------------------------

exec python -m pytest -q "$@"
