"""Public ledger pages: the signed tree heads and the public key that verifies them."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from traceability import ledger


def _int_param(request: HttpRequest, name: str, default: int | None) -> int | None:
    value = request.GET.get(name)
    if value in (None, ""):
        return default
    return int(value)


@require_safe
@cache_control(public=True, max_age=10)
def heads(request: HttpRequest) -> HttpResponse:
    """``/ledger/heads.json?limit=&before=``: newest signed heads first, with the public key."""
    try:
        limit = _int_param(request, "limit", 100)
        before = _int_param(request, "before", None)
    except ValueError:
        return JsonResponse(
            {"code": "invalid_argument", "detail": "limit and before must be integers"},
            status=400,
        )
    body = ledger.published_heads(limit=limit or 100, before=before)
    return JsonResponse(body, json_dumps_params={"indent": 1})


@require_safe
@cache_control(public=True, max_age=3600)
def public_key(request: HttpRequest) -> HttpResponse:
    """``/ledger/public-key.pem``: the Ed25519 key that signs the tree heads (SPKI PEM)."""
    return HttpResponse(ledger.public_key_pem(), content_type="text/plain; charset=utf-8")
