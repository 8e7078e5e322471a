#!/usr/bin/env bash
# Shared set-up for `make run` and `make test`: a venv with the pinned requirements,
# and PostgreSQL + Redis (see scripts/services.py). Source it; it exports the URLs.
# Any failure stops the calling command here, with a message saying what failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bootstrap_fail() {
  echo "bootstrap failed: $1" >&2
  exit 1
}
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || bootstrap_fail "could not create .venv with $PY (set PYTHON=/path/to/python3.11)"
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -r requirements.txt; } \
    || bootstrap_fail "pip could not install requirements.txt (see the pip output above)"
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
# Embedded servers' data, logs and other local state (ignored by git).
export NIXFLEX_DATA_DIR="${NIXFLEX_DATA_DIR:-$ROOT/.data}"
# A plain assignment keeps services.py's exit status (`eval "$(...)"` would swallow it).
service_exports="$(python scripts/services.py "${NIXFLEX_DB_NAME:-nixflex}")" \
  || bootstrap_fail "PostgreSQL or Redis is not available (the line above says which and why)"
eval "$service_exports"
unset service_exports
