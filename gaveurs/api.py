"""The django-ninja API: one router per app (traceability has two), OpenAPI at /api/docs."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from feedback.api import router as feedback_router
from traceability.api import ledger_router, tasks_router

api = NinjaAPI(title="Gaveurs Trace API", version="1.0.0", urls_namespace="api")
api.add_router("/tasks/", tasks_router)
api.add_router("/consumer/", feedback_router)
api.add_router("/ledger/", ledger_router)


@api.exception_handler(RequestDataTooBig)
def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE: refused unread, 413 in JSON (not an HTML 400)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(
        request,
        {"code": "body_too_large", "detail": f"the request body is over {limit} bytes"},
        status=413,
    )
