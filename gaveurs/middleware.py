"""Edge rules applied before any view: input PostgreSQL cannot store, and cross-site API writes.

1. A NUL character anywhere in the path or the query string (``%00``) is refused with 400:
   PostgreSQL text cannot hold it, and every view that looked the value up answered 500
   (``psycopg.DataError``). JSON bodies are checked by the API's parser
   (gaveurs/api_errors.py) and forms by Django's own ``ProhibitNullCharactersValidator``.
2. A state-changing API request (POST, PUT, PATCH, DELETE under ``/api/``) sent by a page of
   another site is refused with 403: browsers send ``Origin`` (and ``Sec-Fetch-Site``) on such
   requests, so a site cannot make its visitors post reviews from their own addresses.
   Server-to-server clients send neither header and are judged by their token as before.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from gaveurs.api_errors import error_body

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/api/"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def trusted_origins(request: HttpRequest) -> set[str]:
    origins = {f"{request.scheme}://{request.get_host()}".lower()}
    origins |= {o.lower().rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS}
    if settings.PUBLIC_BASE_URL:
        origins.add(_origin_of(settings.PUBLIC_BASE_URL))
    return origins


class EdgeInputMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_api = request.path.startswith(API_PREFIX)
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            where = "path" if "\x00" in request.path else "query"
            detail = f"the {where} contains a NUL character (%00), which is never valid here"
            if is_api:
                return JsonResponse(
                    error_body("bad_request", detail, field=where, rule="no_nul"), status=400
                )
            return HttpResponseBadRequest(
                f"Bad request: {detail}.", content_type="text/plain; charset=utf-8"
            )
        if is_api and request.method in UNSAFE_METHODS and self._cross_site(request):
            detail = "writes to this API are not accepted from another site's pages"
            return JsonResponse(
                error_body("cross_site_request", detail, field="Origin", rule="same_origin"),
                status=403,
            )
        return self.get_response(request)

    @staticmethod
    def _cross_site(request: HttpRequest) -> bool:
        if request.META.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
            return True
        origin = request.META.get("HTTP_ORIGIN")
        if origin is None:
            return False
        return origin.lower().rstrip("/") not in trusted_origins(request)
