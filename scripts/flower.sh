#!/usr/bin/env bash
# Flower (Celery monitoring) behind HTTP basic auth. There is no default password: without
# FLOWER_USER and FLOWER_PASSWORD in the environment, Flower is not started.
# Flower watches workers through broadcast events, which only Redis (CELERY_BROKER_URL) carries.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FLOWER_USER:-}" ] || [ -z "${FLOWER_PASSWORD:-}" ]; then
  echo "Flower not started: set FLOWER_USER and FLOWER_PASSWORD (basic auth, no default)." >&2
  exit 0
fi
case "$FLOWER_USER$FLOWER_PASSWORD" in
  *,*) echo "Flower not started: FLOWER_USER/FLOWER_PASSWORD must not contain ','." >&2; exit 1;;
esac
case "$FLOWER_USER" in
  *:*) echo "Flower not started: FLOWER_USER must not contain ':'." >&2; exit 1;;
esac
if [ -z "${CELERY_BROKER_URL:-}" ]; then
  echo "Note: with the embedded broker Flower cannot see workers or tasks (no broadcast);" \
       "task results are in the admin (Celery results). Use Redis for Flower." >&2
fi
# Flower reads every FLOWER_* variable as one of its options: hand it the credentials as
# FLOWER_BASIC_AUTH (not on the command line, where `ps` would show them) and drop the others.
export FLOWER_BASIC_AUTH="$FLOWER_USER:$FLOWER_PASSWORD"
unset FLOWER_USER FLOWER_PASSWORD
exec .venv/bin/python -m gaveurs.flower_launcher -A gaveurs flower \
  --address="${FLOWER_ADDRESS:-127.0.0.1}" --port="${FLOWER_PORT:-5555}"
