#!/usr/bin/env bash
# `make run`: install, migrate, start web + worker, seed the demo account, print where to look.
# Without provider settings it runs fully offline against local stand-ins of Twilio,
# Deepgram and Anthropic (started here on free ports).
# Runs again and again on the same machine; Ctrl-C (or SIGTERM) stops everything it started.
#
# Environment: PORT (web port; default the first free one from 8000), NIXFLEX_DATA_DIR
# (logs and embedded servers' data; default .data/), NIXFLEX_DB_NAME (default nixflex),
# and every setting of the README's Configuration table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

# Development defaults come from here (and scripts/test.sh), never from settings.py:
# with DEBUG on, settings.py accepts its development secrets.
export DEBUG="${DEBUG:-true}"

LOGS="$NIXFLEX_DATA_DIR/logs"
STATE="$NIXFLEX_DATA_DIR/run"
mkdir -p "$LOGS" "$STATE"

fail() {
  echo "make run: $1" >&2
  exit 1
}

# --- Everything started here is stopped on the way out, whatever the way out. ----------
# Each process leads its own process group (setsid), recorded in $STATE/groups: the
# group takes its children (Celery's pool) with it, and a later run can stop what a run
# killed outright (kill -9) left behind.
pids=()
names=()
owns_state=""
stop_groups() {  # stop_groups PID...: TERM, 15 s to finish, then KILL
  local pid alive
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 150); do
    alive=""
    for pid in "$@"; do
      if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
}
stop_all() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ ${#pids[@]} -gt 0 ]; then
    echo "Stopping ${names[*]}..." >&2
    stop_groups "${pids[@]}"
    wait 2>/dev/null || true
    echo "Stopped." >&2
  fi
  [ -z "$owns_state" ] || rm -f "$STATE/groups" "$STATE/owner"
  exit "$status"
}
trap stop_all EXIT
trap 'exit 0' INT TERM HUP  # a requested stop is a clean exit

owner="$(cat "$STATE/owner" 2>/dev/null || true)"
if [ -n "$owner" ] && [ "$owner" != $$ ] && ps -o command= -p "$owner" 2>/dev/null | grep -q "scripts/run.sh"; then
  fail "another 'make run' (pid $owner) is running with $NIXFLEX_DATA_DIR; stop it first (Ctrl-C there)"
fi
echo $$ > "$STATE/owner"
owns_state=1
# Leftovers of an earlier run in this data directory that was killed outright.
if [ -s "$STATE/groups" ]; then
  leftovers=()
  while read -r group; do
    # Only a group that still runs one of ours (the pid may have been reused since).
    if ps -eo pgid=,command= | awk -v g="$group" '$1 == g' | grep -qE "standins\.serve|nixflex\.asgi|celery -A nixflex"; then
      leftovers+=("$group")
    fi
  done < "$STATE/groups"
  if [ ${#leftovers[@]} -gt 0 ]; then
    echo "Stopping what an earlier 'make run' left running (process groups ${leftovers[*]})." >&2
    stop_groups "${leftovers[@]}"
  fi
fi
: > "$STATE/groups"

# start NAME LOG COMMAND...: in the background, in its own session, so that Ctrl-C
# reaches this script only and the shutdown above runs in order.
start() {
  local name="$1" log="$2"
  shift 2
  if command -v setsid >/dev/null; then
    setsid "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  pids+=($!)
  names+=("$name")
  echo "$!" >> "$STATE/groups"
}

died() {  # died PID: the process has exited
  ! kill -0 "$1" 2>/dev/null
}

# --- The web port: PORT when given (it must be free), else the first free one from 8000. --
port_free() {
  python - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
PY
}
if [ -n "${PORT:-}" ]; then
  port_free "$PORT" || fail "port $PORT is in use (another 'make run'?). Stop it, or pick another: PORT=$((PORT + 1)) make run"
else
  PORT=8000
  until port_free "$PORT"; do
    PORT=$((PORT + 1))
    [ "$PORT" -le 8099 ] || fail "ports 8000-8099 are all in use; pick one with PORT=..."
  done
  [ "$PORT" = 8000 ] || echo "Port 8000 is in use; using $PORT." >&2
fi
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:$PORT}"
SERVER="http://127.0.0.1:$PORT"

# --- Offline: local stand-ins of the providers, on free ports. ----------------------------
OFFLINE=""
if [ -z "${TWILIO_API_BASE_URL:-}${DEEPGRAM_BASE_URL:-}${ANTHROPIC_BASE_URL:-}" ]; then
  OFFLINE=1
  ready="$STATE/standins.json"
  rm -f "$ready"
  start stand-ins "$LOGS/standins.log" python -m standins.serve --twilio-port 0 --deepgram-port 0 \
    --anthropic-port 0 --ready-file "$ready"
  for _ in $(seq 1 300); do
    [ -s "$ready" ] && break
    died "${pids[-1]}" && fail "the provider stand-ins did not start; $LOGS/standins.log says: $(tail -n 5 "$LOGS/standins.log")"
    sleep 0.1
  done
  [ -s "$ready" ] || fail "the provider stand-ins did not start within 30 s (see $LOGS/standins.log)"
  standin() { python -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"; }
  TWILIO_API_BASE_URL="$(standin twilio)"
  DEEPGRAM_BASE_URL="$(standin deepgram)"
  ANTHROPIC_BASE_URL="$(standin anthropic)"
  export TWILIO_API_BASE_URL DEEPGRAM_BASE_URL ANTHROPIC_BASE_URL
  export DEEPGRAM_API_KEY="${DEEPGRAM_API_KEY:-demo}" ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-demo}"
fi

python manage.py collectstatic --noinput -v 0 || fail "collectstatic failed (see above)"
# The web server loads while the database migrates (it touches the database only when
# requests come, and the demo is seeded once both are done); the worker's periodic
# jobs need the tables, so it starts after.
start web "$LOGS/web.log" python -m uvicorn nixflex.asgi:application --http nixflex.uvicorn_protocol:HttpProtocol --host 127.0.0.1 --port "$PORT" \
  --log-level warning
web_pid="${pids[-1]}"
python manage.py migrate_all -v 0 || fail "migrating the database failed (see above)"
start worker "$LOGS/worker.log" python -m celery -A nixflex worker -B --concurrency 2 --loglevel INFO \
  --schedule "$STATE/celerybeat-schedule"

up=""
for _ in $(seq 1 600); do  # 60 s: a loaded machine imports the providers' SDKs slowly
  if curl -fsS "$SERVER/health" >/dev/null 2>&1; then up=1; break; fi
  died "$web_pid" && break
  sleep 0.1
done
[ -n "$up" ] || fail "the web server did not come up on $SERVER; $LOGS/web.log says: $(tail -n 20 "$LOGS/web.log")"

demo="$(python -m standins.seed_demo --server "$SERVER" \
  ${OFFLINE:+--twilio-standin "$TWILIO_API_BASE_URL" --anthropic-standin "$ANTHROPIC_BASE_URL"})" \
  || fail "seeding the demo account failed (see above)"

python - "$demo" "$PORT" "$SERVER" "$LOGS" "$OFFLINE" "${TWILIO_API_BASE_URL:-}" "${DEEPGRAM_BASE_URL:-}" \
  "${ANTHROPIC_BASE_URL:-}" <<'PY'
import json, sys
demo, port, server, logs, offline, twilio, deepgram, anthropic = sys.argv[1:]
demo = json.loads(demo)
key = f"{demo['key_id']}:{demo['key_secret']}"
lines = [
    "",
    "Nixflex is running.",
    f"  API docs         http://localhost:{port}/v1/docs   (schema: http://localhost:{port}/v1/openapi.json)",
    f"  Demo API key     {key}",
    f"  Demo agent       {demo['agent_id']}",
    f'  Try:             curl -H "Authorization: Bearer {key}" http://localhost:{port}/v1/agents',
]
if demo.get("phone_number"):
    lines.append(f"  Call the demo:   .venv/bin/python -m standins.simulate_call --to {demo['phone_number']} "
                 f"--server {server} --twilio {twilio} --api-key {key}")
lines.append(f"  Logs             {logs}/ (web.log, worker.log{', standins.log' if offline else ''})")
if offline:
    lines.append(f"  Providers        offline stand-ins (Twilio {twilio}, Deepgram {deepgram}, Anthropic {anthropic})")
lines.append("Press Ctrl-C to stop.")
print("\n".join(lines), flush=True)
PY

# Until Ctrl-C, or until one of them exits on its own (then everything stops).
set +e
wait -n "${pids[@]}"
for i in "${!pids[@]}"; do
  died "${pids[$i]}" && echo "make run: the ${names[$i]} process exited; see $LOGS/" >&2
done
exit 1
