"""The django-ninja API: one router per app, OpenAPI docs at /api/docs."""

from __future__ import annotations

from ninja import NinjaAPI

api = NinjaAPI(title="Gaveurs Trace API", version="1.0.0", urls_namespace="api")
