"""A task state written while PostgreSQL is away waits for it instead of stopping the worker."""

from __future__ import annotations

import pytest
from celery import states
from django.db import OperationalError, ProgrammingError
from django_celery_results.models import TaskResult

from gaveurs.celery import app as celery_app
from gaveurs.results_backend import DatabaseBackend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flaky_backend(monkeypatch):
    """The app's result backend, its first two writes failing like a restarting database."""
    backend = celery_app.backend
    real = backend._store_result
    calls: list[int] = []

    def store(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("consuming input failed: server closed the connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "_store_result", store)
    monkeypatch.setattr(backend, "_sleep", lambda seconds: None)
    return backend, calls


def test_a_state_written_during_a_database_restart_is_retried_until_stored(flaky_backend):
    backend, calls = flaky_backend
    assert isinstance(backend, DatabaseBackend) and backend.always_retry

    backend.store_result("fault-1", {"status": "success"}, states.SUCCESS)

    assert len(calls) == 3
    assert TaskResult.objects.get(task_id="fault-1").status == states.SUCCESS


def test_other_database_errors_are_not_retried(monkeypatch):
    backend = celery_app.backend
    calls: list[int] = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise ProgrammingError("relation does not exist")

    monkeypatch.setattr(backend, "_store_result", broken)
    with pytest.raises(ProgrammingError):
        backend.store_result("fault-2", None, states.SUCCESS)
    assert len(calls) == 1
