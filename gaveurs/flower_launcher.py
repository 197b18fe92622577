"""Start Flower with its /metrics and /healthcheck behind the same basic auth as its pages.

Flower 2.2 serves both handlers without checking credentials (every other handler carries
``tornado.web.authenticated``), so anyone reaching its port read the Prometheus metrics: task
names, worker host names, queue activity. ``scripts/flower.sh`` runs this module instead of
``celery flower``; arguments are the ``celery`` command line (``-A gaveurs flower ...``).
"""

from __future__ import annotations

import sys

from celery.bin.celery import main as celery_main
from flower.views import monitor
from tornado import web


def protect_monitoring_handlers() -> None:
    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not getattr(handler.get, "__gaveurs_protected__", False):
            handler.get = web.authenticated(handler.get)
            handler.get.__gaveurs_protected__ = True


def main(argv: list[str] | None = None) -> None:
    protect_monitoring_handlers()
    sys.argv = ["celery", *(argv if argv is not None else sys.argv[1:])]
    celery_main()


if __name__ == "__main__":
    main()
