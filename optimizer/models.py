"""Optimised feeding curves proposed by `manage.py optimize_curves`, and the runs behind them.

No pandas / scikit-learn here: web processes import this module.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords


class OptimizationRun(models.Model):
    """One execution of optimize_curves: what data it saw, how the model scored, what it said."""

    class Outcome(models.TextChoices):
        PROPOSED = "proposed", _("Curve proposed")
        TOO_FEW_REVIEWS = "too_few_reviews", _("Too few reviewed products")
        NO_SIGNAL = "no_signal", _("Model does not beat the baseline")
        NO_FEASIBLE_CURVE = "no_feasible_curve", _("No feasible curve")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    site = models.ForeignKey(
        "gaveurs.Site", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    gaveur = models.ForeignKey(
        "gaveurs.Gaveur", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    message = models.TextField(blank=True)
    data_metrics = models.JSONField(default=dict, blank=True)
    model_metrics = models.JSONField(default=dict, blank=True)
    insights = models.JSONField(default=dict, blank=True)
    report_dir = models.CharField(
        max_length=500, blank=True, help_text=_("Folder holding index.html and the plots.")
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("optimisation run")
        verbose_name_plural = _("optimisation runs")

    def __str__(self) -> str:
        return f"#{self.pk} {self.created_at:%Y-%m-%d %H:%M} {self.outcome}"


class CurrentSource(models.TextChoices):
    """Which curve a proposal is compared with."""

    APPROVED = "approved", _("approved curve of the scope")
    REFERENCE = "reference", _("reference curve")
    MOST_FOLLOWED = "most_followed", _("curve most lots followed")
    TYPICAL = "typical", _("most typical curve of the data")


class OptimizedCurve(models.Model):
    """A recommended feeding curve for one scope (everyone, a site or a producer)."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        APPROVED = "approved", _("Approved")
        RETIRED = "retired", _("Retired")

    version = models.PositiveIntegerField(unique=True)
    site = models.ForeignKey(
        "gaveurs.Site",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_curves",
    )
    gaveur = models.ForeignKey(
        "gaveurs.Gaveur",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_curves",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    duration_days = models.PositiveSmallIntegerField()
    # [{"day": 1, "morning_g": 180.0, "evening_g": 200.0}, ...]
    doses = models.JSONField()
    predicted_rating = models.FloatField()
    predicted_rating_std = models.FloatField(
        help_text=_("Standard deviation of the prediction (bootstrap refits and model error).")
    )
    predicted_low = models.FloatField(null=True, blank=True)
    predicted_high = models.FloatField(null=True, blank=True)
    in_support = models.BooleanField(
        default=True, help_text=_("The curve lies within the data the model learnt from.")
    )
    current_curve_name = models.CharField(max_length=120, blank=True)
    current_curve_source = models.CharField(
        max_length=20,
        blank=True,
        choices=CurrentSource.choices,
        help_text=_("Where the curve compared against comes from."),
    )
    current_predicted_rating = models.FloatField(null=True, blank=True)
    current_predicted_low = models.FloatField(null=True, blank=True)
    current_predicted_high = models.FloatField(null=True, blank=True)
    current_in_support = models.BooleanField(null=True, blank=True)
    # Stated only when both curves lie within the data (else None: it would be a guess).
    gain = models.FloatField(null=True, blank=True)
    gain_low = models.FloatField(null=True, blank=True)
    gain_high = models.FloatField(null=True, blank=True)
    # Trial curves for a share of the next lots: [{"doses": [...], "predicted": {...},
    # "expected_improvement": 0.12, ...}, ...]
    trials = models.JSONField(default=list, blank=True)
    trial_share = models.FloatField(
        default=0.0, help_text=_("Share of the next lots proposed for the trial curves.")
    )
    data_metrics = models.JSONField(default=dict)
    model_metrics = models.JSONField(default=dict)
    run = models.ForeignKey(
        OptimizationRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="curves"
    )
    # The gaveurs.FeedingCurve created on approval: what new lots of the scope follow.
    feeding_curve = models.OneToOneField(
        "gaveurs.FeedingCurve",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_from",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    retired_at = models.DateTimeField(null=True, blank=True)

    # Approval and retirement, with who did it. The model's figures never change after
    # optimize_curves writes them: the large ones are left out of each historical row.
    history = HistoricalRecords(excluded_fields=["trials", "data_metrics", "model_metrics"])

    class Meta:
        ordering = ["-version"]
        verbose_name = _("optimised curve")
        verbose_name_plural = _("optimised curves")
        constraints = [
            models.CheckConstraint(
                condition=Q(site__isnull=True) | Q(gaveur__isnull=True),
                name="optimized_curve_one_scope",
            ),
            models.CheckConstraint(
                condition=~Q(status="approved") | Q(feeding_curve__isnull=False),
                name="optimized_curve_approved_has_feeding_curve",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.scope_label}, {self.status})"

    @property
    def scope_label(self) -> str:
        if self.gaveur_id:
            return f"gaveur {self.gaveur}"
        if self.site_id:
            return f"site {self.site.code}"
        return "all sites"
