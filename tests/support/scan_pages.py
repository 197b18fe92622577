"""What the scan page tests share: a scan in a language, the page as a scan renders it when
nothing is stored, and the page with its CSRF token blanked for comparisons."""

from __future__ import annotations

import re

from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import translation

from feedback.pages import CSRF_PLACEHOLDER, blank_form_html, scan_context
from feedback.selectors import product_for_scan

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def get(client, product, language="fr"):
    return client.get(f"/p/{product.qr_code}", headers={"accept-language": language})


def rendered_per_scan(product, language):
    """The page as a scan renders it when nothing is stored (the view's other path: with the
    request, so its context processors run)."""
    request = RequestFactory().get(f"/p/{product.qr_code}")
    request.LANGUAGE_CODE = language
    with translation.override(language):
        product = product_for_scan(qr_code=product.qr_code)
        context = scan_context(product, form=None, recall_state="", language=language)
        context["form_html"] = blank_form_html(product.qr_code)
        context["csrf_token"] = CSRF_PLACEHOLDER
        return render_to_string("feedback/scan.html", context, request=request)


def without_token(html):
    return TOKEN.sub('name="csrfmiddlewaretoken" value=""', html)
