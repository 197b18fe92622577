"""Staff QR images and label sheets, and the public GS1 Digital Link resolver. Thin views."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotFound,
    HttpResponseNotModified,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from gaveurs.models import Site
from traceability import labels, qr
from traceability.models import ConsumerProduct

# QR images and labels carry signed codes: only staff allowed to view products get them.
VIEW_PRODUCTS = "traceability.view_consumerproduct"

# A product's QR never changes: browsers may keep it for a year (private: staff-only URL).
IMMUTABLE = "private, max-age=31536000, immutable"


@require_GET
@staff_member_required
@permission_required(VIEW_PRODUCTS, raise_exception=True)
def product_qr(request: HttpRequest, product_id: str, fmt: str) -> HttpResponse:
    """``/staff/products/<product_id>/qr.svg`` (or ``.png?scale=8``; ``?download=1`` to save)."""
    if fmt not in qr.FORMATS:
        raise Http404(f"unknown image format {fmt!r}")
    product = get_object_or_404(ConsumerProduct.objects.only("qr_code"), product_id=product_id)
    try:
        scale = int(request.GET.get("scale", qr.PNG_SCALE_DEFAULT))
    except ValueError:
        return HttpResponseBadRequest("scale must be an integer", content_type="text/plain")
    image = qr.product_qr_image(product.qr_code, kind=fmt, scale=scale)
    if request.headers.get("If-None-Match") == image.etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(image.content, content_type=image.content_type)
    response["ETag"] = image.etag
    response["Cache-Control"] = IMMUTABLE
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{product_id}-qr.{fmt}"'
    return response


@require_GET
@staff_member_required
@permission_required(VIEW_PRODUCTS, raise_exception=True)
def label_sheet(request: HttpRequest) -> HttpResponse:
    """``/staff/products/labels/?ids=3,4,5`` (ConsumerProduct primary keys), A4 label sheets."""
    raw = request.GET.get("ids", "")
    try:
        ids = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        return HttpResponseBadRequest(
            "ids must be comma-separated product numbers", content_type="text/plain"
        )
    ids = ids[: labels.MAX_LABELS]
    by_id = ConsumerProduct.objects.in_bulk(ids)
    return labels.label_sheet_response(request, [by_id[i] for i in ids if i in by_id])


@require_GET
def gs1_resolve(request: HttpRequest, rest: str | None = None) -> HttpResponse:
    """``/01/<GTIN>/10/<lot>/21/<serial>`` → redirect to the product's scan page ``/p/<qr>``.

    The serial is the product's random ``gs1_serial`` (80 bits, printed on its label only): the
    redirect hands out the signed QR code, so it must not answer to anything public data (lot
    codes, sequential product ids) could guess."""
    try:
        key = qr.gs1_parse("01/" + (rest or ""))
    except qr.Gs1PathError as exc:
        return HttpResponseBadRequest(
            f"Malformed GS1 Digital Link: {exc}", content_type="text/plain; charset=utf-8"
        )
    site_codes = [
        code
        for code, gtin in Site.objects.exclude(gtin="").values_list("code", "gtin")
        if gtin.isdigit() and gtin.zfill(14) == key.gtin
    ]
    product = (
        ConsumerProduct.objects.filter(
            site_code__in=site_codes, lot_code=key.lot, gs1_serial=key.serial
        )
        .only("qr_code")
        .first()
    )
    if product is None:
        return HttpResponseNotFound(
            "No product has this GTIN, lot and serial number.",
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponseRedirect(qr.scan_path(product.qr_code))
