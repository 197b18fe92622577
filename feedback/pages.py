"""The consumer product page ``/p/<qr_code>``: what it shows, how it is rendered, and the copy
of it stored ahead of its scans.

A unit's page is the same on every scan but for a few parts: the lot's review average, the
unit's own review and the recalls that reach it (all read by the scan statement), and the CSRF
token. So the page of a unit without review or recall is rendered once per language, off the
request path (``scan_pages_render``: the Celery task run when a signed tree head seals new
products, ``feedback.tasks``), stored (``ScanPage``) and read by the scan statement in its one
round trip; a scan then only puts in the review average and the CSRF token. A page leaves
this module as UTF-8 bytes cut around those two parts (``PagePieces``): a scan joins the pieces
into the response body, one copy of the page and no encoding. Each server process keeps the
pieces of the stored pages it served (``kept_page``), so the statement sends a page again only
when its version changed.

A stored page is shown only while it is current: its ``version`` is the deployment's digest
(templates, translations, static URLs) plus ``traceability.scans.PAGE_CONTENT_VERSION_SQL``
(the row versions of the product, lot, producer and site, and the latest ledger verification).
Otherwise the scan renders the page as before and stores it (a product registered before stored
pages existed, a changed record, a new deployment). A page is stored only once its product is
sealed under a signed head and the server found nothing wrong with its record; the proof it
embeds is against the head of that time, which stays verifiable as the log grows (every later
head is consistent with it).

A unit's page is also rendered and stored off the request path when the live pipeline registers
it and when it is reviewed (``scan_pages_render_unit``; a reviewed unit's page, without the
form, carries ``REVIEWED_VERSION_MARK``). Before a signed head covers the unit that page says so
("being sealed", as a scan renders it) and is stored with an expiry (``PENDING_VERSION_MARK``)
of ``LEDGER_HEAD_INTERVAL_SECONDS``, by when a head covers the unit (an append signs one when
the latest is that old). It never replaces a sealed page, and the sealed page the head's task
stores replaces it; past its expiry a scan renders the page as before (signing the head if one
is due) and stores the sealed one.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.http import HttpRequest
from django.template.loader import get_template, render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from feedback.forms import FeedbackForm
from feedback.models import COMMENT_MAX_LENGTH, LotReviewStats, ScanPage
from feedback.selectors import product_for_scan
from sensors.rules import GRADE_CUTOFFS
from traceability.ledger import scan_context as ledger_scan_context
from traceability.ledger import trusted_public_keys
from traceability.models import ConsumerProduct
from traceability.recalls import recall_for_product, recall_notice
from traceability.scans import ScanCount, product_content_versions

# Words for a 0–1 score, on the stations' grade cut-offs (sensors.rules).
LEVELS = [
    *(
        (cutoff, level, word)
        for (cutoff, _grade), level, word in zip(
            GRADE_CUTOFFS,
            (5, 4, 3, 2),
            (_("Excellent"), _("Très bon"), _("Bon"), _("Correct")),
            strict=True,
        )
    ),
    (0.0, 1, _("Faible")),
]
GRADE_WORDS = {
    "A+": _("Qualité exceptionnelle"),
    "A": _("Excellente qualité"),
    "B": _("Bonne qualité"),
    "C": _("Qualité standard"),
}
GRADE_CSS = {"A+": "grade-aplus", "A": "grade-a", "B": "grade-b", "C": "grade-c"}

PAGE_TEMPLATE = "feedback/scan.html"
REVIEW_AVERAGE_TEMPLATE = "feedback/_review_average.html"
# What a stored or cached page holds in place of its per-request parts.
CSRF_PLACEHOLDER = "__scan_page_csrf_token__"
REVIEW_AVERAGE_PLACEHOLDER = "<!--scan-page:review-average-->"


def _level(score: float | None) -> dict[str, Any] | None:
    if score is None:
        return None
    score = min(max(score, 0.0), 1.0)
    for cut, level, word in LEVELS:
        if score >= cut:
            return {"level": level, "word": word, "segments": [i < level for i in range(5)]}
    return None


def _related(obj: Any, name: str) -> Any:
    """A reverse one-to-one loaded by select_related, or None when there is no row."""
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def scan_context(
    product: ConsumerProduct,
    *,
    form: FeedbackForm | None,
    status: int = 200,
    notice: str = "",
    recall_state: str | None = None,
    language: str = "fr",
) -> dict[str, Any]:
    """What templates/feedback/scan.html shows of a product loaded by product_for_scan.

    ``recall_state`` is the scan statement's (``ScanCount.recall_state``): when it is empty no
    recall reaches the unit and none is looked up; None looks it up (one query)."""
    stats = _related(product.lot, "review_stats")
    review = _related(product, "feedback")
    volume = product.tof_volume_mm3
    context = {
        "product": product,
        "lot": product.lot,
        "grade_word": GRADE_WORDS.get(product.fusion_grade, product.fusion_grade),
        "grade_css": GRADE_CSS.get(product.fusion_grade, "grade-c"),
        "fusion": _level(product.fusion_score),
        "fusion_percent": round((product.fusion_score or 0) * 100),
        "qualities": [
            (_("Régularité de la surface"), _level(product.tof_surface_uniformity)),
            (_("Fraîcheur (analyse spectrale)"), _level(product.spectral_freshness_index)),
        ],
        "volume_cm3": round(volume / 1000) if volume else None,
        "stats": stats if stats is not None and stats.is_public else None,
        "already_reviewed": review is not None,
        "form": form,
        "notice": notice,
        "notice_warn": status >= 400,
        "star_values": range(1, 6),
        "comment_max": COMMENT_MAX_LENGTH,
    }
    context.update(ledger_scan_context(product))
    recall = recall_for_product(product) if recall_state is None or recall_state else None
    context["recall"] = recall_notice(recall, language=language) if recall else None
    return context


# The blank review form is the same on every product page of a language but for its action
# (the product's code) and the CSRF token; it was most of a page's rendering time (5 ratings x 5
# stars of translated labels). Rendered once per language and process, then filled in.
_FORM_CODE_PLACEHOLDER = "__scan_form_qr_code__"
_blank_forms: dict[str, str] = {}


def blank_form_html(qr_code: str) -> SafeString:
    """The blank review form for this product, with CSRF_PLACEHOLDER for its token."""
    language = get_language() or ""
    html = _blank_forms.get(language)
    if html is None:
        html = render_to_string(
            "feedback/_form.html",
            {
                "form": FeedbackForm(),
                "product": {"qr_code": _FORM_CODE_PLACEHOLDER},
                "star_values": range(1, 6),
                "comment_max": COMMENT_MAX_LENGTH,
                "csrf_token": CSRF_PLACEHOLDER,
            },
        )
        _blank_forms[language] = html
    action = escape(reverse("feedback:submit", args=[_FORM_CODE_PLACEHOLDER]))
    return mark_safe(  # noqa: S308 (our own template's output, and an escaped URL)
        html.replace(action, escape(reverse("feedback:submit", args=[qr_code])))
    )


# --- Pages stored ahead of their scans ----------------------------------------------------

# The templates a stored page is made of: a change to any of them (a deployment) makes every
# stored page stale.
_PAGE_TEMPLATES = (
    PAGE_TEMPLATE,
    "base.html",
    "traceability/_ledger_block.html",
    "feedback/_form.html",
    REVIEW_AVERAGE_TEMPLATE,
)
_PAGE_STATIC = ("gaveurs/site.css", "gaveurs/favicon.ico", "gaveurs/apple-touch-icon.png")


@functools.cache
def _deployment_digest(language: str) -> str:
    """What a stored page of ``language`` was rendered with, besides database rows: its
    templates' sources, the language's translations, the static files' URLs and the ledger's
    trusted keys."""
    digest = hashlib.sha256(language.encode())
    for name in _PAGE_TEMPLATES:
        digest.update(Path(get_template(name).origin.name).read_bytes())
    for folder in settings.LOCALE_PATHS:
        catalog = Path(folder) / language / "LC_MESSAGES" / "django.mo"
        if catalog.exists():
            digest.update(catalog.read_bytes())
    for name in (*_PAGE_STATIC, "traceability/ledger.js"):
        digest.update(static(name).encode())
    # The embedded signed head carries its key: a key retired from the trusted ones (rotation)
    # makes the pages stale.
    digest.update(",".join(sorted(trusted_public_keys())).encode())
    return digest.hexdigest()[:16]


# A reviewed unit's page (no form: "already reviewed") carries this mark in its version.
REVIEWED_VERSION_MARK = "~reviewed"


def page_version(content_version: str, language: str, *, reviewed: bool = False) -> str:
    """The version a stored page of ``language`` must carry to be shown: the deployment's
    digest, the rows' versions (``ScanCount.content_version``) and whether the unit was
    reviewed."""
    mark = REVIEWED_VERSION_MARK if reviewed else ""
    return f"{_deployment_digest(language)}:{content_version}{mark}"


@functools.lru_cache(maxsize=512)
def _review_average(language: str, review_count: int, review_sum: int) -> str:
    stats = LotReviewStats(review_count=review_count, overall_sum=review_sum)
    if not stats.is_public:
        return ""
    return render_to_string(REVIEW_AVERAGE_TEMPLATE, {"stats": stats})


@functools.lru_cache(maxsize=512)
def _review_average_bytes(language: str, review_count: int, review_sum: int) -> bytes:
    return _review_average(language, review_count, review_sum).encode()


# A page's HTML as UTF-8 bytes with, in place of each per-request part, its marker: the text
# between the parts is never copied, decoded or encoded again (``page_pieces``, ``page_body``).
PagePieces = tuple[bytes | int, ...]
_AVERAGE = 0  # the lot's review average (REVIEW_AVERAGE_PLACEHOLDER, its first occurrence)
_TOKEN = 1  # the CSRF token (CSRF_PLACEHOLDER, every occurrence: the language form's too)


def page_pieces(html: str) -> PagePieces:
    """A stored, cached or rendered page (with its placeholders) cut into ``PagePieces``."""
    pieces: list[bytes | int] = []
    before, found, after = html.partition(REVIEW_AVERAGE_PLACEHOLDER)
    for part, text in enumerate((before, after) if found else (before,)):
        if part:
            pieces.append(_AVERAGE)
        for chunk, piece in enumerate(text.split(CSRF_PLACEHOLDER)):
            if chunk:
                pieces.append(_TOKEN)
            pieces.append(piece.encode())
    return tuple(pieces)


def page_body(pieces: PagePieces, *, scan: ScanCount, language: str, csrf_token: str) -> bytes:
    """The page's bytes for this scan: the lot's review average of the scan and this client's
    CSRF token put in."""
    parts = (
        _review_average_bytes(language, scan.review_count, scan.review_sum),
        csrf_token.encode("ascii"),
    )
    return b"".join([parts[p] if p.__class__ is int else p for p in pieces])  # type: ignore[index]


def _page_context(product: ConsumerProduct, *, recall_state: str, language: str) -> dict:
    """``scan_context`` with the per-request parts left as placeholders (the CSRF token, the
    lot's review average) and, for a unit not yet reviewed, the blank form."""
    context = scan_context(product, form=None, recall_state=recall_state, language=language)
    if not context["already_reviewed"]:
        context["form_html"] = blank_form_html(product.qr_code)
    context["csrf_token"] = CSRF_PLACEHOLDER
    context["review_average_html"] = mark_safe(REVIEW_AVERAGE_PLACEHOLDER)  # noqa: S308
    return context


def _storable(context: dict) -> bool:
    """A page may be stored only for a unit sealed under a signed head, whose record the
    server found nothing wrong with."""
    ledger = context["ledger"]
    return ledger.get("status") == "sealed" and ledger.get("integrity") == "unverified"


# A pending page's version is the page version, this mark and the Unix time it expires at.
PENDING_VERSION_MARK = "~pending-until:"


def pending_page_version(
    content_version: str, language: str, *, reviewed: bool, expires_at: float
) -> str:
    """The version of a page stored before its unit's head: shown until ``expires_at``."""
    version = page_version(content_version, language, reviewed=reviewed)
    return f"{version}{PENDING_VERSION_MARK}{int(expires_at)}"


def stored_version_is_current(stored: str | None, version: str) -> bool:
    """Whether a stored page's version is current: ``version`` itself, or a page stored before
    its unit's head (``pending_page_version``) of that version and not expired."""
    if stored == version:
        return True
    prefix = version + PENDING_VERSION_MARK
    if stored is None or not stored.startswith(prefix):
        return False
    expires_at = stored[len(prefix) :]
    return expires_at.isdigit() and int(expires_at) > time.time()


def page_to_store(product: ConsumerProduct, *, language: str) -> str | None:
    """The page of ``product`` to store, rendered in ``language`` with its per-request parts
    left as placeholders; None when it must not be stored: not yet sealed under a signed head,
    or a record the server found altered (such pages are rendered per scan)."""
    with translation.override(language):
        context = _page_context(product, recall_state="", language=language)
        if not _storable(context):
            return None
        return render_to_string(PAGE_TEMPLATE, context)


def _pages_store(pages: list[ScanPage]) -> None:
    ScanPage.objects.bulk_create(
        pages,
        update_conflicts=True,
        unique_fields=["product", "language"],
        update_fields=["version", "html", "rendered_at"],
    )


class _KeptPages:
    """This server process's copies of the stored pages it served, ``(version, pieces)`` by
    (code, language): at most ``size`` of them (the oldest kept goes first), each for
    SCAN_PAGE_CACHE_SECONDS. Held as they are, not pickled as Django's local-memory cache does
    on every read; a copy is used only when the scan statement says its version is current."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pages: dict[tuple[str, str], tuple[float, str, PagePieces]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[str, PagePieces] | None:
        kept = self._pages.get(key)
        if kept is None:
            return None
        if kept[0] <= time.monotonic():
            with self._lock:
                if self._pages.get(key) is kept:
                    del self._pages[key]
            return None
        return kept[1], kept[2]

    def put(self, key: tuple[str, str], version: str, pieces: PagePieces, seconds: int) -> None:
        with self._lock:
            self._pages.pop(key, None)
            while len(self._pages) >= self.size:
                del self._pages[next(iter(self._pages))]
            self._pages[key] = (time.monotonic() + seconds, version, pieces)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()


# 500 pages of about 18 KB: some 9 MB per server process.
kept_pages = _KeptPages(size=500)


def kept_page(*, qr_code: str, language: str) -> tuple[str, PagePieces] | None:
    """This process's copy of a unit's stored page, (version, pieces), kept for
    SCAN_PAGE_CACHE_SECONDS: the scan statement then sends the page only when its version
    differs (a unit scanned again and again, e.g. the same consumer reloading)."""
    if settings.SCAN_PAGE_CACHE_SECONDS <= 0:
        return None
    return kept_pages.get((qr_code, language))


def current_stored_page(
    *, qr_code: str, scan: ScanCount, language: str, kept: tuple[str, PagePieces] | None = None
) -> PagePieces | None:
    """The stored page of a scanned unit without recall (reviewed or not), when it is current:
    from the scan statement, or ``kept``, this process's copy, when the statement did not send
    it again. No query. None otherwise: the caller renders the page (``render_scan_page``)."""
    if scan.recall_state or not language:
        return None
    version = page_version(scan.content_version, language, reviewed=scan.reviewed)
    if not stored_version_is_current(scan.page_version, version):
        return None
    version = scan.page_version
    if scan.page_html is not None:
        pieces = page_pieces(scan.page_html)
        if settings.SCAN_PAGE_CACHE_SECONDS > 0:
            kept_pages.put((qr_code, language), version, pieces, settings.SCAN_PAGE_CACHE_SECONDS)
        return pieces
    if kept is not None and kept[0] == version:
        return kept[1]
    return None


@dataclass(frozen=True)
class RenderedPage:
    """A page rendered at a scan, with CSRF_PLACEHOLDER and REVIEW_AVERAGE_PLACEHOLDER left in
    (``page_pieces``); ``stored``: it was stored for the following scans (else the caller may
    cache it)."""

    html: str
    stored: bool


def render_scan_page(
    product: ConsumerProduct, *, scan: ScanCount, language: str, request: HttpRequest
) -> RenderedPage:
    """Render the page of a scanned unit whose stored page is not current, once: it is stored
    when it may be (``_storable``: a unit without review or recall, sealed), else returned for
    the caller's cache (reviewed, recalled, not yet sealed)."""
    may_store = not scan.reviewed and not scan.recall_state and bool(language)
    context = _page_context(product, recall_state=scan.recall_state, language=language or "fr")
    if may_store and _storable(context):
        with translation.override(language):
            html = render_to_string(PAGE_TEMPLATE, context)
        version = page_version(scan.content_version, language)
        _pages_store([_page_row(product, language, version, html)])
        return RenderedPage(html=html, stored=True)
    return RenderedPage(
        html=render_to_string(PAGE_TEMPLATE, context, request=request), stored=False
    )


def _page_row(product: ConsumerProduct, language: str, version: str, html: str) -> ScanPage:
    return ScanPage(
        product=product, language=language, version=version, html=html, rendered_at=timezone.now()
    )


def scan_pages_render(*, product_pks: list[int]) -> int:
    """Render and store the pages of these products in every language (the Celery task's
    work, off the request path): two queries per product, one write per 200 pages. Products
    whose page must not be stored are left out. Returns how many pages were stored."""
    versions = product_content_versions(product_pks)
    codes = ConsumerProduct.objects.filter(pk__in=product_pks).values_list("qr_code", flat=True)
    languages = [code for code, _name in settings.LANGUAGES]
    pages: list[ScanPage] = []
    stored = 0
    for qr_code in codes:
        product = product_for_scan(qr_code=qr_code)
        if product is None or product.pk not in versions:
            continue
        reviewed = _related(product, "feedback") is not None
        for language in languages:
            html = page_to_store(product, language=language)
            if html is not None:
                version = page_version(versions[product.pk], language, reviewed=reviewed)
                pages.append(_page_row(product, language, version, html))
        if len(pages) >= 200:
            _pages_store(pages)
            stored += len(pages)
            pages = []
    if pages:
        _pages_store(pages)
        stored += len(pages)
    return stored


# A page rendered off the request path replaces a stored one unless it is a "being sealed" page
# and the stored one is sealed (the head's task may have stored it since this rendering began).
_UNIT_PAGES_SQL = f"""
INSERT INTO feedback_scan_pages (product_id, language, version, html, rendered_at)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
ON CONFLICT (product_id, language) DO UPDATE
    SET version = EXCLUDED.version, html = EXCLUDED.html, rendered_at = EXCLUDED.rendered_at
    WHERE strpos(EXCLUDED.version, '{PENDING_VERSION_MARK}') = 0
       OR strpos(feedback_scan_pages.version, '{PENDING_VERSION_MARK}') > 0
"""


def _unit_pages_store(pages: list[ScanPage]) -> None:
    columns = [
        [page.product_id for page in pages],
        [page.language for page in pages],
        [page.version for page in pages],
        [page.html for page in pages],
        [page.rendered_at for page in pages],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_UNIT_PAGES_SQL, columns)


def scan_pages_render_unit(*, qr_code: str) -> int:
    """Render and store the current pages of one unit in every language, off the request path:
    after its registration (the registration task, once its product is committed) and after
    its review (``feedback.tasks``), so that its next scans read them instead of rendering.
    Before a signed head covers the unit they are its "being sealed" pages
    (``pending_page_version``), shown until a sealed page replaces them or they expire; once a
    head covers it they are its sealed pages. A record the server finds altered is left to its
    scans; a recalled unit's scans never show a stored page. Returns how many pages were
    stored."""
    product = product_for_scan(qr_code=qr_code)
    if product is None:
        return 0
    versions = product_content_versions([product.pk])
    if product.pk not in versions:
        return 0
    reviewed = _related(product, "feedback") is not None
    expires_at = time.time() + settings.LEDGER_HEAD_INTERVAL_SECONDS
    pages: list[ScanPage] = []
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            context = _page_context(product, recall_state="", language=language)
            ledger = context["ledger"]
            if ledger.get("integrity") != "unverified":
                continue
            if ledger.get("status") == "sealed":
                version = page_version(versions[product.pk], language, reviewed=reviewed)
            elif ledger.get("status") == "pending":
                version = pending_page_version(
                    versions[product.pk], language, reviewed=reviewed, expires_at=expires_at
                )
            else:
                continue
            html = render_to_string(PAGE_TEMPLATE, context)
        pages.append(_page_row(product, language, version, html))
    if pages:
        _unit_pages_store(pages)
    return len(pages)
