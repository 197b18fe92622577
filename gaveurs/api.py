"""The django-ninja API: one router per app (traceability has three), OpenAPI at /api/docs."""

from __future__ import annotations

from ninja import NinjaAPI

from feedback.api import router as feedback_router
from sensors.api import router as sensors_router
from traceability.api import ledger_router, scan_router, tasks_router

api = NinjaAPI(title="Gaveurs Trace API", version="1.0.0", urls_namespace="api")
api.add_router("/tasks/", tasks_router)
api.add_router("/consumer/", scan_router)
api.add_router("/consumer/", feedback_router)
api.add_router("/ledger/", ledger_router)
api.add_router("/sensors/", sensors_router)
