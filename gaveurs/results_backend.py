"""Celery's result backend on our PostgreSQL (django-celery-results), sturdy to a restart.

Celery writes a task's state (STARTED, RETRY, SUCCESS, FAILURE) after the task's own code, outside
its error handling. With the stock backend, a state written while PostgreSQL restarts raises an
``OperationalError`` there: a ``--pool=solo`` worker stops ("Unrecoverable error"), a prefork
worker loses the task's message. This backend counts the errors of a lost connection as safe to
retry, so with ``result_backend_always_retry`` (settings) the write waits for the database
instead: the task's state is stored, its message acknowledged only then.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection
from django_celery_results.backends.database import DatabaseBackend as StockDatabaseBackend


class DatabaseBackend(StockDatabaseBackend):
    def exception_safe_to_retry(self, exc: Exception) -> bool:
        if isinstance(exc, InterfaceError | OperationalError):
            # The next attempt opens a new connection instead of reusing the broken one.
            connection.close()
            return True
        return super().exception_safe_to_retry(exc)
