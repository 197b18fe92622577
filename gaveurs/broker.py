"""The embedded Celery broker: kombu's SQLAlchemy transport on our own PostgreSQL.

kombu passes every transport option to ``create_engine``, so its own ``polling_interval`` (how
long an idle worker sleeps between polls, 1 s by default) cannot be set. This transport accepts it.
Registered as the ``gtsqla`` scheme: ``gtsqla+postgresql+psycopg://...``.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla

NON_ENGINE_OPTIONS = ("polling_interval",)


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self):
        conninfo = self.connection.client
        options = conninfo.transport_options
        kept = {k: options.pop(k) for k in NON_ENGINE_OPTIONS if k in options}
        try:
            return super()._engine_from_config()
        finally:
            options.update(kept)


class Transport(kombu_sqla.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault("gtsqla", "gaveurs.broker:Transport")
