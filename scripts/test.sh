#!/usr/bin/env bash
# Runs the whole suite on a throwaway embedded PostgreSQL unless DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then
  EMBEDDED_PG_DIR="$(mktemp -d /tmp/gtpg.XXXXXX)"
  export EMBEDDED_PG_DIR
  export EMBEDDED_PG_CLEANUP=delete
fi
mkdir -p artifacts
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
