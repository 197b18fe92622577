#!/usr/bin/env bash
# The Celery worker of the registration pipeline (queues "exports" and "default").
# Broker: Redis when CELERY_BROKER_URL is set, else the embedded transport on our PostgreSQL.
# CELERY_CONCURRENCY (default 2) prefork processes; task events (-E, for Flower) with Redis only:
# the embedded transport cannot broadcast them.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-A gaveurs worker -Q exports,default -l "${CELERY_LOG_LEVEL:-info}"
      --concurrency "${CELERY_CONCURRENCY:-2}" -n "gaveurs-worker-$$@%h")
if [ -n "${CELERY_BROKER_URL:-}" ]; then
  args+=(-E)
else
  # Gossip, mingle and heartbeats need broadcast, which the embedded transport lacks.
  args+=(--without-gossip --without-mingle --without-heartbeat)
fi
exec .venv/bin/python -m celery "${args[@]}"
