"""The embedded Celery broker: kombu's SQLAlchemy transport on our own PostgreSQL.

Two changes to kombu's transport, registered as the ``gtsqla`` scheme
(``gtsqla+postgresql+psycopg://...``):

1. kombu passes every transport option to ``create_engine``, so its own ``polling_interval``
   (how long an idle worker sleeps between polls, 1 s by default) could not be set.
2. kombu marks a delivered message invisible and keeps the row forever (it never redelivers it
   anyway), so the table grows by a row per task and every poll scans it. Here a delivery is one
   ``DELETE ... RETURNING`` of the oldest message, skipping rows another worker is taking.
"""

from __future__ import annotations

from json import loads
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import text

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

    def _get(self, queue):
        if self.session.bind.dialect.name != "postgresql":
            return super()._get(queue)
        queue_id = self._get_or_create(queue).id
        table = self.message_cls.__table__.name
        try:
            row = self.session.execute(
                text(
                    f"DELETE FROM {table} WHERE id = ("
                    f"  SELECT id FROM {table} WHERE queue_id = :queue_id AND visible"
                    "   ORDER BY timestamp, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ") RETURNING payload"
                ),
                {"queue_id": queue_id},
            ).first()
        finally:
            self.session.commit()
        if row is None:
            raise Empty()
        return loads(bytes_to_str(row[0]))


class Transport(kombu_sqla.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault("gtsqla", "gaveurs.broker:Transport")
