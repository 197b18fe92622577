"""django-ninja routers of the traceability app: task API, consumer scan API, ledger API."""

from __future__ import annotations

from ninja import Router

tasks_router = Router(tags=["tasks"])
scan_router = Router(tags=["consumer"])
ledger_router = Router(tags=["ledger"])
