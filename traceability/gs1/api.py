"""``GET /api/epcis/events``: an EPCIS 2.0 query document, for staff tokens with ``epcis:read``.

Filters (query string): ``lot`` (lot code), ``product`` (product id), ``site`` (site code),
``eventType`` (``ObjectEvent`` or ``TransformationEvent``, comma-separated), ``GE_eventTime`` and
``LT_eventTime`` (ISO 8601), ``perPage`` (1–1000, default 100) and ``nextPageToken``. When more
events follow, the ``Link`` header gives the next page (``rel="next"``), as EPCIS 2.0's REST
binding does. No token: 401; a token without the scope, or whose user lacks the permission
to view products (events name unit serials, which lead to signed QR codes): 403; a bad
parameter: 400. Errors have the API's one shape (gaveurs/api_errors.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router
from ninja.security import HttpBearer

from gaveurs.api_errors import ApiErrorOut, api_error
from traceability.auth import access_refusal, api_token_lookup
from traceability.gs1 import epcis

EPCIS_READ = "epcis:read"
VIEW_PRODUCTS = "traceability.view_consumerproduct"
PER_PAGE_DEFAULT = 100
PER_PAGE_MAX = 1000
_CODE = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,50}$")
_SITE = re.compile(r"^[A-Z]{2,5}$")

router = Router(tags=["epcis"])


class EpcisTokenAuth(HttpBearer):
    """``Authorization: Bearer gt_...``: a valid token of an active staff user (scope checked
    by the endpoint, so that a known token lacking it gets 403, not 401)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        found = api_token_lookup(token)
        if found is not None:
            request.user = found.user
            request.api_token = found
        return found


class QueryError(ValueError):
    def __init__(self, field: str, detail: str, rule: str = "format") -> None:
        super().__init__(detail)
        self.field = field
        self.rule = rule
        self.detail = f"{field}: {detail}"


def _text(params: Any, name: str, pattern: re.Pattern[str], rule: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not pattern.match(value):
        raise QueryError(name, rule)
    return value


def _time(params: Any, name: str) -> datetime | None:
    value = params.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise QueryError(
            name, "expected an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z"
        ) from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def query_filter(params: Any) -> tuple[epcis.EventFilter, int]:
    """Parse the query string; raises QueryError naming the parameter and the rule."""
    types = params.get("eventType")
    event_types = epcis.EVENT_TYPES
    if types:
        event_types = tuple(t.strip() for t in types.split(","))
        unknown = [t for t in event_types if t not in epcis.EVENT_TYPES]
        if unknown:
            raise QueryError(
                "eventType", f"this repository holds only {list(epcis.EVENT_TYPES)}", "choice"
            )
    per_page = params.get("perPage") or str(PER_PAGE_DEFAULT)
    if not per_page.isascii() or not per_page.isdigit() or not 1 <= int(per_page) <= PER_PAGE_MAX:
        raise QueryError("perPage", f"a whole number from 1 to {PER_PAGE_MAX}", "range")
    token = params.get("nextPageToken")
    try:
        after = epcis.EventKey.from_token(token) if token else None
    except ValueError as exc:
        raise QueryError("nextPageToken", str(exc), "token") from None
    flt = epcis.EventFilter(
        lot=_text(params, "lot", _CODE, "a lot code, 1 to 50 characters of GS1 set 82"),
        product=_text(params, "product", _CODE, "a product id such as FG_LL_20260101_0001"),
        site=_text(params, "site", _SITE, "a site code, 2 to 5 capital letters"),
        event_types=event_types,
        since=_time(params, "GE_eventTime"),
        until=_time(params, "LT_eventTime"),
        after=after,
    )
    return flt, int(per_page)


@router.get(
    "/events",
    auth=EpcisTokenAuth(),
    response={frozenset({400, 403}): ApiErrorOut},
    summary="EPCIS 2.0 events (JSON-LD query document) of lots, products or sites",
    url_name="epcis_events",
    openapi_extra={"responses": {200: {"content": {"application/ld+json": {}}}}},
)
def epcis_events(request: HttpRequest) -> Any:
    refusal = access_refusal(request, permission=VIEW_PRODUCTS, scope=EPCIS_READ)
    if refusal is not None:
        error, detail = refusal
        rule = "scope" if error == "insufficient_scope" else "permission"
        return api_error(403, error, detail, rule=rule)
    try:
        flt, per_page = query_filter(request.GET)
    except QueryError as exc:
        return api_error(400, "invalid_parameter", exc.detail, field=exc.field, rule=exc.rule)
    page: list[dict[str, Any]] = []
    next_key = last_key = None
    for key, event in epcis.events(flt):
        if len(page) == per_page:
            next_key = last_key
            break
        page.append(event)
        last_key = key
    # A page is bounded by perPage; it is built before the response so that the Link header
    # can say whether another page follows.
    response = HttpResponse(
        "".join(epcis.document_chunks(page, query=True)),
        content_type="application/ld+json; charset=utf-8",
    )
    response["GS1-EPCIS-Version"] = "2.0.0"
    response["GS1-CBV-Version"] = "2.0.0"
    if next_key is not None:
        query = {k: v for k, v in request.GET.items() if k != "nextPageToken"}
        query["nextPageToken"] = next_key.token()
        url = request.build_absolute_uri(request.path) + "?" + urlencode(query)
        response["Link"] = f'<{url}>; rel="next"'
    return response
