"""The feedback form of the scan page (POST /p/<qr_code>/avis): thin, see feedback.services."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from feedback.forms import RATING_LABELS, FeedbackForm
from feedback.http import client_origin
from feedback.services import (
    THANK_YOU_MESSAGE,
    FeedbackError,
    feedback_rate_limited,
    feedback_submit,
)
from traceability.services import product_for_scan
from traceability.views import scan_page

ALREADY_REVIEWED = _("Ce produit a déjà reçu un avis : un seul avis par produit.")


@never_cache
@require_POST
def submit(request: HttpRequest, qr_code: str) -> HttpResponse:
    product = product_for_scan(qr_code=qr_code)
    if product is None:
        return render(request, "traceability/scan_unknown.html", status=404)
    if feedback_rate_limited(client_key=client_origin(request).client_hash):
        notice = _("Trop d'envois depuis votre connexion. Merci de réessayer plus tard.")
        return scan_page(
            request, product, form=FeedbackForm(request.POST), notice=notice, status=429
        )
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
            return render(request, "traceability/scan_unknown.html", status=404)
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return scan_page(request, product, form=form, status=exc.status)
    return render(
        request,
        "feedback/thanks.html",
        {"product": product, "feedback": feedback, "message": THANK_YOU_MESSAGE},
    )
