"""Staff QR images and label sheets. Thin views (the GS1 resolver: traceability/views_gs1.py)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotModified,
)
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

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
