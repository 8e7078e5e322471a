#!/usr/bin/env bash
# `make run`: install, migrate, seed the demo account, start web + worker, print where to look.
# Without provider settings it runs fully offline against the local stand-ins of
# Twilio, Deepgram and Anthropic (started here on ports 18010-18012).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
PORT="${PORT:-8000}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:$PORT}"
mkdir -p .data/logs

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${TWILIO_API_BASE_URL:-}${DEEPGRAM_BASE_URL:-}${ANTHROPIC_BASE_URL:-}" ]; then
  python -m standins.serve --twilio-port 18010 --deepgram-port 18011 --anthropic-port 18012 \
    > .data/logs/standins.log 2>&1 &
  pids+=($!)
  export TWILIO_API_BASE_URL=http://127.0.0.1:18010
  export DEEPGRAM_BASE_URL=http://127.0.0.1:18011 DEEPGRAM_API_KEY="${DEEPGRAM_API_KEY:-demo}"
  export ANTHROPIC_BASE_URL=http://127.0.0.1:18012 ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-demo}"
  OFFLINE=1
fi

python manage.py collectstatic --noinput -v 0
python manage.py migrate_all -v 0
demo="$(python manage.py seed_demo ${OFFLINE:+--twilio-standin "$TWILIO_API_BASE_URL" --anthropic-standin "$ANTHROPIC_BASE_URL"})"

python -m uvicorn nixflex.asgi:application --http nixflex.uvicorn_protocol:HttpProtocol \
  --host 127.0.0.1 --port "$PORT" --log-level warning \
  > .data/logs/web.log 2>&1 &
pids+=($!)
python -m celery -A nixflex worker -B --concurrency 2 --loglevel INFO \
  --schedule .data/celerybeat-schedule > .data/logs/worker.log 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done

env_prefix="DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL PUBLIC_BASE_URL=$PUBLIC_BASE_URL TWILIO_API_BASE_URL=${TWILIO_API_BASE_URL:-}"
python - "$demo" "$PORT" "${OFFLINE:-0}" "$env_prefix" <<'PY'
import json, sys
demo, port, offline = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
key = f"{demo['key_id']}:{demo['key_secret']}"
print(f"""
Nixflex is running.
  API              http://localhost:{port}/v1/   (docs: http://localhost:{port}/v1/docs)
  Admin            http://localhost:{port}/admin/
  Demo dashboard   http://{demo['domain']}:{port}/
  Demo API key     {key}
  Demo agent       {demo['agent_id']}
  Try:             curl -H "Authorization: Bearer {key}" http://localhost:{port}/v1/agents
{f"  Call the demo:   {sys.argv[4]} .venv/bin/python manage.py simulate_call --to {demo['phone_number']}" if demo.get("phone_number") else ""}
  Logs             .data/logs/ (web.log, worker.log{', standins.log' if offline else ''})
{"  Providers        offline stand-ins (Twilio :18010, Deepgram :18011, Anthropic :18012)" if offline else ""}
Press Ctrl-C to stop.""")
PY
wait -n "${pids[@]}"
