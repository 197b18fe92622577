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

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    site = models.ForeignKey(
        "gaveurs.Site",
        verbose_name=_("site"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    gaveur = models.ForeignKey(
        "gaveurs.Gaveur",
        verbose_name=_("gaveur"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)
    message = models.TextField(_("message"), blank=True)
    data_metrics = models.JSONField(_("data metrics"), default=dict, blank=True)
    model_metrics = models.JSONField(_("model metrics"), default=dict, blank=True)
    insights = models.JSONField(_("insights"), default=dict, blank=True)
    report_dir = models.CharField(
        _("report dir"),
        max_length=500,
        blank=True,
        help_text=_("Folder holding index.html and the plots."),
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

    version = models.PositiveIntegerField(_("version"), unique=True)
    site = models.ForeignKey(
        "gaveurs.Site",
        verbose_name=_("site"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_curves",
    )
    gaveur = models.ForeignKey(
        "gaveurs.Gaveur",
        verbose_name=_("gaveur"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_curves",
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PROPOSED
    )
    duration_days = models.PositiveSmallIntegerField(_("duration days"))
    # [{"day": 1, "morning_g": 180.0, "evening_g": 200.0}, ...]
    doses = models.JSONField(_("doses"))
    predicted_rating = models.FloatField(_("predicted rating"))
    predicted_rating_std = models.FloatField(
        _("predicted rating std"),
        help_text=_("Standard deviation of the prediction (bootstrap refits and model error)."),
    )
    predicted_low = models.FloatField(_("predicted low"), null=True, blank=True)
    predicted_high = models.FloatField(_("predicted high"), null=True, blank=True)
    in_support = models.BooleanField(
        _("in support"),
        default=True,
        help_text=_("The curve lies within the data the model learnt from."),
    )
    current_curve_name = models.CharField(_("current curve name"), max_length=120, blank=True)
    current_curve_source = models.CharField(
        _("current curve source"),
        max_length=20,
        blank=True,
        choices=CurrentSource.choices,
        help_text=_("Where the curve compared against comes from."),
    )
    current_predicted_rating = models.FloatField(
        _("current predicted rating"), null=True, blank=True
    )
    current_predicted_low = models.FloatField(_("current predicted low"), null=True, blank=True)
    current_predicted_high = models.FloatField(_("current predicted high"), null=True, blank=True)
    current_in_support = models.BooleanField(_("current in support"), null=True, blank=True)
    # Stated only when both curves lie within the data (else None: it would be a guess).
    gain = models.FloatField(_("gain"), null=True, blank=True)
    gain_low = models.FloatField(_("gain low"), null=True, blank=True)
    gain_high = models.FloatField(_("gain high"), null=True, blank=True)
    # Trial curves for a share of the next lots: [{"doses": [...], "predicted": {...},
    # "expected_improvement": 0.12, ...}, ...]
    trials = models.JSONField(_("trials"), default=list, blank=True)
    trial_share = models.FloatField(
        _("trial share"),
        default=0.0,
        help_text=_("Share of the next lots proposed for the trial curves."),
    )
    data_metrics = models.JSONField(_("data metrics"), default=dict)
    model_metrics = models.JSONField(_("model metrics"), default=dict)
    run = models.ForeignKey(
        OptimizationRun,
        verbose_name=_("run"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="curves",
    )
    # The gaveurs.FeedingCurve created on approval: what new lots of the scope follow.
    feeding_curve = models.OneToOneField(
        "gaveurs.FeedingCurve",
        verbose_name=_("feeding curve"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="optimized_from",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("approved by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)

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
