"""Consumer feedback on a product unit: the seed's five ratings and a comment."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

RATING_FIELDS = [
    "overall_rating",
    "taste_rating",
    "texture_rating",
    "appearance_rating",
    "value_rating",
]
COMMENT_MAX_LENGTH = 1000


def rating_field(verbose_name: str, required: bool = True) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        verbose_name,
        null=not required,
        blank=not required,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )


class ConsumerFeedback(models.Model):
    product = models.OneToOneField(
        "traceability.ConsumerProduct",
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        related_name="feedback",
        help_text=_("One review per product unit."),
    )
    overall_rating = rating_field(_("overall rating"))
    taste_rating = rating_field(_("taste rating"))
    texture_rating = rating_field(_("texture rating"))
    appearance_rating = rating_field(_("appearance rating"))
    value_rating = rating_field(_("value rating"))
    comment = models.TextField(_("comment"), blank=True, max_length=COMMENT_MAX_LENGTH)
    consent_to_publish = models.BooleanField(_("consent to publish"), default=False)
    reward_points = models.PositiveIntegerField(_("reward points"), default=0)
    language = models.CharField(_("language"), max_length=8, blank=True)
    is_hidden = models.BooleanField(_("is hidden"), default=False)
    hidden_reason = models.CharField(_("hidden reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    history = HistoricalRecords()

    class Meta:
        db_table = "consumer_feedback"
        ordering = ["-created_at"]
        verbose_name = _("consumer feedback")
        verbose_name_plural = _("consumer feedback")
        constraints = [
            models.CheckConstraint(
                condition=Q(**{f"{f}__gte": 1}) & Q(**{f"{f}__lte": 5}),
                name=f"feedback_{f}_1_to_5",
            )
            for f in RATING_FIELDS
        ] + [
            models.CheckConstraint(
                condition=Q(is_hidden=False) | ~Q(hidden_reason=""),
                name="feedback_hidden_needs_reason",
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.overall_rating}/5"


# The scan page shows a lot's average rating only from more than this many visible reviews.
AVERAGE_MIN_REVIEWS = 5


class LotReviewStats(models.Model):
    """Visible reviews of a lot's products, summed; kept up to date by ``feedback.services``.

    Stored so that the scan page reads one row instead of aggregating reviews on every scan.
    """

    lot = models.OneToOneField(
        "gaveurs.Lot",
        verbose_name=_("lot"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="review_stats",
    )
    review_count = models.PositiveIntegerField(_("review count"), default=0)
    overall_sum = models.PositiveIntegerField(_("overall sum"), default=0)
    taste_sum = models.PositiveIntegerField(_("taste sum"), default=0)
    texture_sum = models.PositiveIntegerField(_("texture sum"), default=0)
    appearance_sum = models.PositiveIntegerField(_("appearance sum"), default=0)
    value_sum = models.PositiveIntegerField(_("value sum"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        db_table = "feedback_lot_review_stats"
        verbose_name = _("lot review statistics")
        verbose_name_plural = _("lot review statistics")

    def __str__(self) -> str:
        return f"{self.lot_id}: {self.review_count} reviews"

    @property
    def average_overall(self) -> float | None:
        if not self.review_count:
            return None
        return round(self.overall_sum / self.review_count, 1)

    @property
    def is_public(self) -> bool:
        return self.review_count > AVERAGE_MIN_REVIEWS


class ScanPage(models.Model):
    """A product's consumer page, rendered ahead of its scans (``feedback.pages``): what every
    scan of a unit without review or recall shows, with its review average and CSRF token put
    in per request. ``version`` names what it was rendered from (the templates and translations
    of the deployment, and the rows the scan statement versions); a scan shows it only while
    that is still current, else renders the page again and stores it."""

    product = models.ForeignKey(
        # The unique (product, language) index serves the product's lookups too.
        "traceability.ConsumerProduct",
        verbose_name=_("consumer product"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    language = models.CharField(_("language"), max_length=8)
    version = models.TextField(_("version"))
    html = models.TextField(_("HTML"))
    rendered_at = models.DateTimeField(_("rendered at"))

    class Meta:
        db_table = "feedback_scan_pages"
        verbose_name = _("stored consumer page")
        verbose_name_plural = _("stored consumer pages")
        constraints = [
            models.UniqueConstraint(
                fields=["product", "language"], name="feedback_scan_page_one_per_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id} ({self.language})"
