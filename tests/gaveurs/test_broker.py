"""The embedded broker (kombu's SQLAlchemy transport on our PostgreSQL, scheme ``gtsqla``)."""

from __future__ import annotations

import pytest
from django.db import connection
from kombu import Connection

pytestmark = pytest.mark.django_db(transaction=True)


def broker_url() -> str:
    from gaveurs.settings import _embedded_broker_url

    return _embedded_broker_url(connection.settings_dict)


def test_messages_come_out_in_order_and_leave_no_rows_behind():
    with Connection(broker_url(), transport_options={"polling_interval": 0.05}) as conn:
        queue = conn.SimpleQueue("gt-test")
        for n in range(5):
            queue.put({"n": n})
        received = []
        for _ in range(5):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        queue.close()

    assert received == [0, 1, 2, 3, 4]
    with connection.cursor() as cursor:
        # This queue's rows only: tests that ran before may have left registration requests.
        cursor.execute(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id "
            "WHERE q.name = %s",
            ["gt-test"],
        )
        assert cursor.fetchone() == (0,)


def test_an_empty_queue_says_so():
    from queue import Empty

    with Connection(broker_url(), transport_options={"polling_interval": 0.05}) as conn:
        queue = conn.SimpleQueue("gt-empty")
        with pytest.raises(Empty):
            queue.get(timeout=0.3)
        queue.close()
