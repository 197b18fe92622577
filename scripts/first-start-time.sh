#!/usr/bin/env bash
# Times a first start from a fresh clone, as a new user would go: `make venv` (the install),
# `make run` until it prints that it is running, then `make test` on one test module.
#
#   scripts/first-start-time.sh [--ref REF] [--cold] [--pip]
#
# --ref REF  clone this commit or branch of this repository (default: HEAD), e.g. an older one
#            to compare with; --cold  no download cache (PIP_NO_CACHE_DIR=1, UV_NO_CACHE=1);
# --pip      INSTALL_WITH=pip (the pip fallback). Otherwise the machine's pip and uv caches are
#            used as they are: say which when you quote the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
REF=HEAD
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) REF="$2"; shift 2 ;;
    --cold) export PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1; shift ;;
    --pip) export INSTALL_WITH=pip; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
DIR="$(mktemp -d /tmp/first-start.XXXXXX)"
LOG="$DIR.log"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
run_pid=""
stop_run() {
  # TERM to run.sh alone: its own cleanup stops the server, the worker and PostgreSQL (a TERM to
  # the whole group would also hit the worker's pool processes, and its warm shutdown hangs).
  [ -n "$run_pid" ] || return 0
  kill -TERM "$run_pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  run_pid=""
}
finish() {
  stop_run
  rm -rf "$DIR"
}
trap finish EXIT

t0=$SECONDS
git clone -q "$REPO" "$DIR/clone"
git -C "$DIR/clone" checkout -q "$(git rev-parse "$REF")"
cd "$DIR/clone"
echo "Fresh clone of $REF ($(git rev-parse --short HEAD)) in $DIR/clone; install log: $LOG"
make venv >"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
t_venv=$((SECONDS - t0))
echo "make venv:              ${t_venv} s"

PORT=$PORT setsid bash scripts/run.sh >"$DIR/run.log" 2>&1 &
run_pid=$!
until grep -q "is running" "$DIR/run.log"; do
  if ! kill -0 "$run_pid" 2>/dev/null; then tail -30 "$DIR/run.log"; exit 1; fi
  sleep 0.5
done
t_run=$((SECONDS - t0))
echo "clone to running:       ${t_run} s  (make run itself: $((t_run - t_venv)) s)"
stop_run

t1=$SECONDS
make test ARGS="-q tests/gaveurs/test_production_settings.py" >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
echo "first test (make test on one module): $((SECONDS - t1)) s; clone to first test without make run: $((t_venv + SECONDS - t1)) s"
