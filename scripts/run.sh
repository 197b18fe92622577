#!/usr/bin/env bash
# `make run`: embedded PostgreSQL (unless DATABASE_URL), migrations, demo data, admin account,
# then the servers as the README deploys them (Daphne on PORT: the stations' websockets, admin
# and staff pages; granian on PAGES_PORT: the consumer pages the QR codes lead to), the Celery
# worker and the SQAL simulator. Ctrl-C (or SIGTERM) stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"
PAGES_PORT="${PAGES_PORT:-$((PORT + 1))}"
HOST="${HOST:-127.0.0.1}"
# granian's processes and threads per process for the consumer pages (README, "Benchmarks").
GRANIAN_WORKERS="${GRANIAN_WORKERS:-2}"
GRANIAN_THREADS="${GRANIAN_THREADS:-4}"
# QR codes, Digital Links and "view on site" lead consumers to granian's port.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:$PAGES_PORT}"
export DEBUG="${DEBUG:-true}"
export SQAL_ALLOW_UNREGISTERED_DEVICES="${SQAL_ALLOW_UNREGISTERED_DEVICES:-true}"
mkdir -p .run

embedded=0
if [ -z "${DATABASE_URL:-}" ]; then
  embedded=1
  echo "Starting the embedded PostgreSQL (data in .pgdata/)..."
  DATABASE_URL="$($PY -c 'from pathlib import Path; from gaveurs.embedded_pg import url_from_env; print(url_from_env(Path(".")))' 2>/dev/null)"
  export DATABASE_URL
fi

$PY manage.py migrate --noinput -v 0
$PY manage.py seed_demo
# The development login is for this user only (mode 0600, umask set before the file exists).
( umask 077 && $PY manage.py ensure_admin > .run/admin-login )
chmod 600 .run/admin-login  # a file left by an older run keeps its mode otherwise
$PY manage.py collectstatic --noinput -v 0 >/dev/null 2>&1 || true

pids=()
watcher=""
cleanup() {
  trap - INT TERM EXIT
  echo "Stopping..."
  for pid in "${pids[@]}" $watcher; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$embedded" = 1 ]; then
    $PY -c 'import pgserver, logging; logging.disable(logging.CRITICAL); pgserver.get_server(".pgdata", cleanup_mode="stop")' >/dev/null 2>&1 || true
  fi
}
trap "cleanup; exit 130" INT
trap "cleanup; exit 143" TERM
trap cleanup EXIT

# Daphne refuses websocket messages (and frames) over WS_MAX_BYTES itself, closing with 1009
# before buffering them; up to it the consumer answers message_too_large past
# SQAL_MAX_MESSAGE_BYTES and the station stays connected. Daphne's own default is 1 MiB, which
# would silently cap a larger SQAL_MAX_MESSAGE_BYTES: the limit follows it.
WS_MAX_BYTES="${WS_MAX_BYTES:-$((2 * ${SQAL_MAX_MESSAGE_BYTES:-524288}))}"
$PY -m daphne -b "$HOST" -p "$PORT" --websocket-max-message-size "$WS_MAX_BYTES" \
  --websocket-max-frame-size "$WS_MAX_BYTES" gaveurs.asgi:application > .run/server.log 2>&1 &
pids+=($!)
# The consumer pages over WSGI, so that the stations' Daphne never waits behind consumers
# (granian serves the whole site; the QR codes lead here). One database round trip per scan:
# no health check of the reused connection (a PostgreSQL restart costs each process one failed
# request; README).
DB_CONN_HEALTH_CHECKS=false .venv/bin/granian --interface wsgi --no-ws --host "$HOST" \
  --port "$PAGES_PORT" --workers "$GRANIAN_WORKERS" --blocking-threads "$GRANIAN_THREADS" \
  --log-level warning gaveurs.wsgi:application > .run/http.log 2>&1 &
pids+=($!)
if [ -x scripts/worker.sh ]; then
  bash scripts/worker.sh > .run/worker.log 2>&1 &
else
  $PY -m celery -A gaveurs worker -Q exports,default --concurrency 2 -l info > .run/worker.log 2>&1 &
fi
pids+=($!)
if [ -n "${FLOWER_USER:-}" ] && [ -n "${FLOWER_PASSWORD:-}" ] && [ -x scripts/flower.sh ]; then
  bash scripts/flower.sh > .run/flower.log 2>&1 &
  pids+=($!)
fi

# Both servers answering.
for _ in $(seq 1 150); do
  if $PY -c "import urllib.request; [urllib.request.urlopen(f'http://$HOST:{p}/admin/login/', timeout=1) for p in ($PORT, $PAGES_PORT)]" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

if $PY manage.py help simulate_sqal >/dev/null 2>&1; then
  $PY manage.py simulate_sqal --url "ws://$HOST:$PORT/ws/sensors/" --devices 2 --rate 0.5 \
    > .run/simulator.log 2>&1 &
  pids+=($!)
fi

flower_line="  Flower:     not started (set FLOWER_USER and FLOWER_PASSWORD to start it on :5555)"
if [ -n "${FLOWER_USER:-}" ] && [ -n "${FLOWER_PASSWORD:-}" ]; then
  flower_line="  Flower:     http://localhost:5555/ (basic auth: \$FLOWER_USER)"
fi

cat <<TXT

Gaveurs Trace is running.
  Admin:      http://localhost:$PORT/admin/   ($(cat .run/admin-login))
  Dashboard:  http://localhost:$PORT/sqal/live/   (live SQAL samples, staff login)
  API docs:   http://localhost:$PORT/api/docs
  Websocket:  ws://localhost:$PORT/ws/sensors/   (stations; Daphne serves this port)
  Consumers:  http://localhost:$PAGES_PORT/p/<code>   (where the QR codes lead; granian)
$flower_line
  Logs:       .run/server.log  .run/http.log  .run/worker.log  .run/simulator.log
Press Ctrl-C to stop.
TXT
# make does not pass a SIGTERM on to this script: when whoever started it (make, a terminal) is
# gone, stop everything rather than leave the server, the worker and PostgreSQL running.
parent=$PPID
( while kill -0 "$parent" 2>/dev/null; do sleep 1; done ) &
watcher=$!
wait -n "${pids[@]}" "$watcher" || true
if kill -0 "$parent" 2>/dev/null; then
  echo "A process stopped; see the logs in .run/."
else
  echo "The command that started Gaveurs Trace is gone."
fi
