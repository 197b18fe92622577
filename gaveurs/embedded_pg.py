"""The embedded PostgreSQL used when no DATABASE_URL is set (development and tests).

pgserver ships PostgreSQL binaries in a wheel; the server listens on a Unix socket inside its
data folder. A running server is reused, so several processes (server, worker, commands) share it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote


def database_url(data_dir: Path, cleanup_mode: str | None = None) -> str:
    """Start (or reuse) the embedded server in ``data_dir`` and return its database URL.

    ``cleanup_mode`` is pgserver's: ``None`` leaves the server running after this process,
    ``"stop"`` stops it, ``"delete"`` stops it and removes the data (throwaway test servers).
    """
    import warnings

    # platformdirs warns about XDG_RUNTIME_DIR, which pgserver does not need.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import logging

    import pgserver

    # pgserver logs every pg_ctl call, also from atexit when the output streams may be closed
    # (pytest): keep its chatter out of our logs.
    pg_logger = logging.getLogger("pgserver")
    pg_logger.setLevel(logging.CRITICAL)
    pg_logger.propagate = False

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=cleanup_mode)
    host = server.get_uri().split("host=", 1)[1]
    return f"postgres://postgres@{quote(host, safe='')}/postgres"


def url_from_env(base_dir: Path) -> str:
    """DATABASE_URL when set, otherwise the embedded server chosen by EMBEDDED_PG_DIR."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir = Path(os.environ.get("EMBEDDED_PG_DIR") or base_dir / ".pgdata")
    cleanup = os.environ.get("EMBEDDED_PG_CLEANUP") or None
    url = database_url(data_dir, cleanup_mode=cleanup)
    if cleanup is None:
        # Child processes (worker, server) reuse the same server without touching pgserver again.
        os.environ["DATABASE_URL"] = url
    return url


def settings_database_url(db: dict) -> str:
    """A ``postgres://`` URL for Django's database settings ``db`` (for subprocesses, benches and
    psycopg): the one place that writes it."""
    auth = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}@{quote(db.get('HOST') or '', safe='')}{port}/{db['NAME']}"
