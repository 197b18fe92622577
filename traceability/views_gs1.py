"""The public GS1 Digital Link resolver (``/01/…``), its description file
(``/.well-known/gs1resolver``), and the product class and lot pages it leads to. Thin: the
work is in traceability/gs1/resolver.py and traceability/gs1/pages.py."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from gaveurs.models import Lot
from traceability.gs1 import pages, resolver

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Accept-Language",
    "Access-Control-Expose-Headers": "Link, Location, Content-Language",
}


def _cors(response: HttpResponse) -> None:
    for name, value in CORS.items():
        response[name] = value


def _text(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    _cors(response)
    return response


def _wants_linkset(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return resolver.LINKSET_TYPE in accept


def resolve(request: HttpRequest, rest: str | None = None) -> HttpResponse:
    """``/01/<gtin>[/10/<lot>][/21/<serial>]``: 307 to the chosen link, or the linkset.

    400 with the reason for a malformed path, 404 for an identifier nothing has."""
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        _cors(response)
        response["Allow"] = "GET, HEAD, OPTIONS"
        return response
    if request.method not in ("GET", "HEAD"):
        response = _text(405, "Only GET, HEAD and OPTIONS.")
        response["Allow"] = "GET, HEAD, OPTIONS"
        return response
    try:
        link = resolver.parse(rest or "")
    except resolver.ResolveError as exc:
        return _text(400, f"Malformed GS1 Digital Link: {exc}")
    resolution = resolver.resolve(link)
    if resolution is None:
        return _text(404, "No product, lot or product class has this GS1 identifier.")
    wanted = resolver.link_type(request.GET.get("linkType"))
    if wanted == "all" or (wanted is None and _wants_linkset(request)):
        # Linkset media type unless the client asked for plain JSON only.
        accept = request.headers.get("Accept", "")
        plain = "application/json" in accept and resolver.LINKSET_TYPE not in accept
        media = "application/json" if plain else resolver.LINKSET_TYPE
        response = HttpResponse(
            json.dumps(resolver.linkset(resolution), ensure_ascii=False),
            content_type=f"{media}; charset=utf-8",
        )
    else:
        response = HttpResponse(status=307)
        passed_on = [(k, v) for k, v in request.GET.items() if k != "linkType"]
        response["Location"] = resolver.with_query(resolution.pick(wanted).href, passed_on)
    response["Link"] = resolver.link_header(resolution)
    response["Vary"] = "Accept, Accept-Language"
    response["Cache-Control"] = "no-store" if link.serial else "public, max-age=300"
    _cors(response)
    return response


@require_safe
def well_known(request: HttpRequest) -> HttpResponse:
    """``/.well-known/gs1resolver``: the resolver description file."""
    response = JsonResponse(resolver.description())
    _cors(response)
    return response


def _sites_or_404(gtin: str) -> tuple[str, list]:
    """The GTIN as 14 digits and the sites whose products carry it; 404 when none do."""
    try:
        link = resolver.parse(gtin)
    except resolver.ResolveError as exc:
        raise Http404(str(exc)) from None
    sites = resolver.sites_of(link.gtin)
    if not sites:
        raise Http404("no product class has this GTIN")
    return link.gtin, sites


@require_safe
def class_page(request: HttpRequest, gtin: str) -> HttpResponse:
    gtin, sites = _sites_or_404(gtin)
    return render(request, "traceability/gs1_class.html", pages.class_page(gtin=gtin, sites=sites))


@require_safe
def lot_page(request: HttpRequest, gtin: str, lot: str) -> HttpResponse:
    gtin, sites = _sites_or_404(gtin)
    found = Lot.objects.filter(code=lot, site__in=sites).select_related("site", "gaveur").first()
    if found is None or not found.products.exists():
        raise Http404("no lot with this code for this GTIN")
    return render(request, "traceability/gs1_lot.html", pages.lot_page(gtin=gtin, lot=found))
