"""What each new PostgreSQL session is told before Django uses it: the QR signing key.

The PL/pgSQL QR functions (traceability migration 0002) read the key from the session setting
``gaveurs.qr_key``. It used to travel in ``DATABASES["default"]["OPTIONS"]["options"]``
(``-c gaveurs.qr_key=…``), so Django's debug 500 page, which prints the settings, showed its
hex to anyone who could make a page fail with ``DEBUG`` on. Now it never enters the settings
that error reports print: each new connection receives it through ``set_config`` with a bound
parameter, on the raw psycopg connection, so Django's query log (``connection.queries``,
the ``django.db.backends`` logger) never sees the statement either.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

SET_QR_KEY = "SELECT set_config('gaveurs.qr_key', %s, false)"


def qr_key_hex() -> str:
    return settings.QR_SIGNING_KEY.encode().hex()


def hand_qr_key(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: give the new session the QR key (one round trip, once
    per connection; connections are kept for CONN_MAX_AGE)."""
    if connection.vendor != "postgresql":
        return
    # Django has already put the connection in autocommit mode: the setting lasts the session.
    connection.connection.execute(SET_QR_KEY, [qr_key_hex()])
