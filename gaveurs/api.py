"""The django-ninja API: one router per app (traceability has three), OpenAPI at /api/docs.

Every error has one shape (gaveurs/api_errors.py); this module maps each kind of failure to it
and documents the error statuses each operation can answer in the OpenAPI schema.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from feedback.api import router as feedback_router
from gaveurs.api_errors import (
    ApiErrorOut,
    StrictJsonParser,
    UnstorableString,
    UnsupportedMediaType,
    ValidationErrorOut,
    error_body,
    validation_error_body,
)
from traceability.api import ledger_router, tasks_router
from traceability.gs1.api import router as epcis_router

ERROR_DESCRIPTIONS = {
    400: "Malformed request (for example a body that is not valid JSON)",
    401: "Authentication required: a staff session or `Authorization: Bearer gt_…`",
    403: "Authenticated but not allowed, or a write from another site's page (Origin)",
    404: "No such resource",
    409: "Conflicts with the current state",
    413: "Request body over the size limit",
    415: "Request body is not JSON (`Content-Type: application/json`)",
    422: "Invalid input: `field` and `rule` name the first fault, `errors` lists all",
    429: "Too many requests from this client: try again later",
}


class GaveursAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        _document_errors(schema)
        return schema


def _document_errors(schema: dict[str, Any]) -> None:
    """Add the error responses each operation can give, all in the one error shape."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ApiErrorOut, ValidationErrorOut):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    for methods in schema.get("paths", {}).values():
        for method, operation in methods.items():
            codes = {400, 422}
            if operation.get("requestBody"):
                codes |= {413, 415}
            if method.lower() in ("post", "put", "patch", "delete"):
                codes.add(403)
            if operation.get("security"):
                codes |= {401, 403}
            responses = operation.setdefault("responses", {})
            for code in sorted(codes | {int(c) for c in responses if str(c).isdigit()}):
                if code < 400:
                    continue
                name = "ValidationErrorOut" if code == 422 else "ApiErrorOut"
                # ninja keys responses by int: one key per status, or the JSON document
                # would hold the same key twice (Swagger UI's parser refuses that).
                responses.pop(str(code), None)
                responses[code] = {
                    "description": ERROR_DESCRIPTIONS.get(code, "Error"),
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                    },
                }


api = GaveursAPI(
    title="Gaveurs Trace API", version="1.0.0", urls_namespace="api", parser=StrictJsonParser()
)
api.add_router("/tasks/", tasks_router)
api.add_router("/consumer/", feedback_router)
api.add_router("/ledger/", ledger_router)
api.add_router("/epcis/", epcis_router)


def _error(request: HttpRequest, status: int, error: str, detail: str, **kw: Any) -> HttpResponse:
    return api.create_response(request, error_body(error, detail, **kw), status=status)


@api.exception_handler(RequestDataTooBig)
def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE: refused unread, 413 in JSON (not an HTML 400)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _error(
        request, 413, "body_too_large", f"the request body is over {limit} bytes", rule="max_bytes"
    )


@api.exception_handler(NinjaValidationError)
def validation_failed(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    return api.create_response(request, validation_error_body(exc.errors), status=422)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "No such resource.")


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    cause = exc.__cause__
    if isinstance(cause, UnsupportedMediaType):
        return _error(
            request, 415, "unsupported_media_type", str(cause), field=None, rule="content_type_json"
        )
    if isinstance(cause, UnstorableString):
        body = error_body("validation_error", cause.detail, field=cause.field, rule=cause.rule)
        body["errors"] = [{"field": cause.field, "rule": cause.rule, "detail": cause.detail}]
        return api.create_response(request, body, status=422)
    if isinstance(cause, json.JSONDecodeError | UnicodeDecodeError):
        return _error(
            request, 400, "malformed_json", f"the body is not valid JSON: {cause}", rule="json"
        )
    if isinstance(exc, Throttled):
        return _error(request, 429, "rate_limited", "Too many requests; try again later.")
    if isinstance(exc, AuthenticationError):
        return _error(request, 401, "unauthorized", "Authentication required.")
    if isinstance(exc, AuthorizationError):
        return _error(request, 403, "forbidden", str(exc) or "Not allowed.")
    return _error(request, exc.status_code, f"http_{exc.status_code}", str(exc))
