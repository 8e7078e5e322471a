#!/usr/bin/env bash
# `make test`: bootstrap, then the whole pytest suite (it creates its own database).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NIXFLEX_DB_NAME=nixflex_test source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
# Development defaults come from here (and tests/settings.py), never from settings.py.
export DEBUG="${DEBUG:-true}"
exec python -m pytest -q "$@"
