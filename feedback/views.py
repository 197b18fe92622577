"""The consumer pages: the product page ``/p/<qr_code>`` with its review form, and the form's
POST ``/p/<qr_code>/avis``. Thin: the work is in ``traceability.scans`` and ``feedback.services``.

A scan costs one query (resolve the code, count the scan, read the review state and, for a unit
without review or recall, its page stored ahead of the scan: ``feedback.pages``). Other pages
(a reviewed or recalled unit, a product not yet sealed) are rendered once and cached per
product, record version, language, review state and recall state, with the lot's review average
put in at each scan (so a review of another unit of the lot does not make them render again);
the cache is read before anything is rendered. A cache miss adds two queries (the product with
everything shown, and the tamper-evidence proof), and for a unit a recall reaches a few more
(the recall, its sealed records and their proofs). Nothing is recomputed from reviews or scans:
the lot's figures are stored by feedback.services.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from feedback.forms import RATING_LABELS, FeedbackForm
from feedback.pages import (
    current_stored_page,
    kept_page,
    page_body,
    page_pieces,
    render_scan_page,
    scan_context,
)
from feedback.selectors import product_for_scan
from feedback.services import (
    THANK_YOU_MESSAGE,
    FeedbackError,
    feedback_rate_limited,
    feedback_submit,
)
from gaveurs.csrf import get_token
from traceability.http import client_origin
from traceability.models import ConsumerProduct, ScanChannel
from traceability.recalls import recall_for_product
from traceability.scans import ScanCount, product_scan


def scan_page(
    request: HttpRequest,
    product: ConsumerProduct,
    *,
    form: FeedbackForm | None,
    status: int = 200,
    notice: str = "",
) -> HttpResponse:
    """Render the product page uncached (the feedback form's answers: errors, notices)."""
    language = getattr(request, "LANGUAGE_CODE", "") or "fr"
    context = scan_context(product, form=form, status=status, notice=notice, language=language)
    return render(request, "feedback/scan.html", context, status=status)


def _scan_page_cache_key(scan: ScanCount, language: str) -> str:
    """Everything the page shows that can change is in the key: the product record's row
    version (a changed record, even tampered with in the database, is shown at once) and this
    unit's review. The lot's review average is not: it is put in at each scan from the scan
    statement's figures (``REVIEW_AVERAGE_PLACEHOLDER``), so a review of another unit of the lot
    does not make every reviewed unit's page render again. Only the ledger's tree size and
    signed head may lag, by at most SCAN_PAGE_CACHE_SECONDS (a proof against an older head still
    verifies). The recalls that reach the unit and their state are in it too, read by the
    same scan statement: a declaration or closing shows on the next scan."""
    return (
        f"scan-page:v4:{scan.product_pk}:{scan.record_version}:{language}:"
        f"{int(scan.reviewed)}:{scan.recall_state}"
    )


# What never_cache sets, written once: the page carries this client's CSRF token, so no cache
# may keep it (the browser's back button included).
NO_CACHE_HEADERS = {
    "Cache-Control": "max-age=0, no-cache, no-store, must-revalidate, private",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
}


def _uncached(response: HttpResponse) -> HttpResponse:
    for name, value in NO_CACHE_HEADERS.items():
        response[name] = value
    return response


@require_safe
def scan(request: HttpRequest, qr_code: str) -> HttpResponse:
    """One query per scan (resolve, count, read the stored page); a page that cannot be stored
    is rendered once per state and language, then served from the cache (two more queries on a
    miss)."""
    language = getattr(request, "LANGUAGE_CODE", "")
    kept = kept_page(qr_code=qr_code, language=language)
    outcome = product_scan(
        qr_code=qr_code,
        channel=ScanChannel.PAGE,
        origin=client_origin(request),
        language=language,
        page=True,
        known_page=kept[0] if kept else "",
    )
    if outcome.status == "forged":
        return _uncached(render(request, "feedback/scan_forged.html", status=404))
    if outcome.status == "unknown":
        return _uncached(render(request, "feedback/scan_unknown.html", status=404))
    # A unit without recall (reviewed or not): its stored page, read by the scan statement.
    pieces = current_stored_page(qr_code=qr_code, scan=outcome.scan, language=language, kept=kept)
    if pieces is None:
        # Else the page rendered by this process (a unit reviewed, recalled or not yet sealed),
        # before any rendering: a unit scanned again within SCAN_PAGE_CACHE_SECONDS costs no
        # more than a stored page.
        key = _scan_page_cache_key(outcome.scan, language)
        pieces = cache.get(key)
    if pieces is None:
        product = product_for_scan(qr_code=qr_code)
        if product is None:  # gone since the scan was counted
            return _uncached(render(request, "feedback/scan_unknown.html", status=404))
        rendered = render_scan_page(product, scan=outcome.scan, language=language, request=request)
        pieces = page_pieces(rendered.html)
        if not rendered.stored:
            cache.set(key, pieces, settings.SCAN_PAGE_CACHE_SECONDS)
    body = page_body(pieces, scan=outcome.scan, language=language, csrf_token=get_token(request))
    return HttpResponse(body, headers=NO_CACHE_HEADERS)


ALREADY_REVIEWED = _("Ce produit a déjà reçu un avis : un seul avis par produit.")
RECALL_NO_REVIEW = _("Les avis sont suspendus pendant le rappel de ce produit.")


@never_cache
@require_POST
def submit(request: HttpRequest, qr_code: str) -> HttpResponse:
    product = product_for_scan(qr_code=qr_code)
    if product is None:
        return render(request, "feedback/scan_unknown.html", status=404)
    if feedback_rate_limited(client_key=client_origin(request).client_hash):
        notice = _("Trop d'envois depuis votre connexion. Merci de réessayer plus tard.")
        return scan_page(
            request, product, form=FeedbackForm(request.POST), notice=notice, status=429
        )
    recall = recall_for_product(product)
    if recall is not None and getattr(recall, "closure", None) is None:
        # The page shows the recall's instructions instead of the form: no review meanwhile.
        return scan_page(request, product, form=None, notice=RECALL_NO_REVIEW, status=409)
    form = FeedbackForm(request.POST)
    if form.is_bot():
        notice = _("Votre avis n'a pas pu être enregistré.")
        return scan_page(request, product, form=FeedbackForm(), notice=notice, status=400)
    if not form.is_valid():
        return scan_page(request, product, form=form, status=400)
    data = form.cleaned_data
    try:
        feedback = feedback_submit(
            qr_code=qr_code,
            comment=data["comment"],
            consent_to_publish=data["consent_to_publish"],
            language=getattr(request, "LANGUAGE_CODE", ""),
            **{name: data[name] for name in RATING_LABELS},
        )
    except FeedbackError as exc:
        if exc.code == "already_reviewed":
            product = product_for_scan(qr_code=qr_code)
            return scan_page(request, product, form=None, notice=ALREADY_REVIEWED, status=409)
        if exc.status == 404:
            return render(request, "feedback/scan_unknown.html", status=404)
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return scan_page(request, product, form=form, status=exc.status)
    return render(
        request,
        "feedback/thanks.html",
        {"product": product, "feedback": feedback, "message": THANK_YOU_MESSAGE},
    )
