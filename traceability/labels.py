"""Printable label sheets: A4 pages of 3 × 7 labels (70 × 42.3 mm, the common 21-up stock),
each with the product's QR code, product id, lot code and grade. Print-ready HTML; the browser's
print dialog makes the PDF ("Save as PDF", margins: none)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from gaveurs.gs1 import gtin_problem
from gaveurs.models import Site
from traceability import qr
from traceability.models import ConsumerProduct

COLUMNS = 3
ROWS = 7
LABELS_PER_PAGE = COLUMNS * ROWS
MAX_LABELS = 40 * LABELS_PER_PAGE  # 40 pages: more is a batch job, not a browser page


@dataclass(frozen=True)
class Label:
    product_id: str
    lot_code: str
    grade: str
    scan_url: str
    gs1_path: str | None
    gs1_missing: str  # why the label has no GS1 Digital Link ("" when it has one)
    svg: SafeString


def product_labels(products: Iterable[ConsumerProduct]) -> list[Label]:
    """One label per product, in the order given (at most MAX_LABELS)."""
    products = list(products)[:MAX_LABELS]
    gtins = dict(
        Site.objects.filter(code__in={p.site_code for p in products}).values_list("code", "gtin")
    )
    labels = []
    for p in products:
        svg = qr.product_qr_image(p.qr_code, kind="svg").content.decode()
        gtin = gtins.get(p.site_code, "")
        gs1_path = qr.gs1_digital_link_path(gtin=gtin, lot_code=p.lot_code, serial=p.gs1_serial)
        labels.append(
            Label(
                product_id=p.product_id,
                lot_code=p.lot_code,
                grade=p.fusion_grade,
                scan_url=qr.scan_url(p.qr_code),
                gs1_path=gs1_path,
                gs1_missing="" if gs1_path else gs1_missing_reason(gtin, p.site_code, p.lot_code),
                # segno's own SVG: numbers and a path, no text from the product.
                svg=mark_safe(svg),
            )
        )
    return labels


def gs1_missing_reason(gtin: str, site_code: str, lot_code: str) -> str:
    """Why a product's label carries no GS1 Digital Link, for the staff printing it."""
    if not gtin:
        return _("site %(site)s has no GTIN (Sites, in the admin)") % {"site": site_code}
    problem = gtin_problem(gtin)
    if problem:
        return _("the GTIN of site %(site)s is not valid: %(problem)s") % {
            "site": site_code,
            "problem": problem,
        }
    return _("lot code %(lot)s cannot be a GS1 batch number (1 to 20 characters of GS1 set 82)") % {
        "lot": lot_code
    }


def label_pages(labels: list[Label]) -> list[list[Label]]:
    return [labels[i : i + LABELS_PER_PAGE] for i in range(0, len(labels), LABELS_PER_PAGE)]


def label_sheet_response(request: HttpRequest, products: Iterable[ConsumerProduct]) -> HttpResponse:
    labels = product_labels(products)
    response = render(
        request,
        "traceability/labels.html",
        {"pages": label_pages(labels), "count": len(labels), "max_labels": MAX_LABELS},
    )
    response["Cache-Control"] = "private, no-store"
    return response
