"""The producer domain: sites, producers (gaveurs), lots, daily feeding records, feeding curves."""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from gaveurs.gs1 import validate_gln, validate_gtin

site_code_validator = RegexValidator(
    r"^[A-Z]{2,5}$", "A site code is 2 to 5 capital letters (e.g. LL)."
)


class Site(models.Model):
    code = models.CharField(_("code"), max_length=5, unique=True, validators=[site_code_validator])
    name = models.CharField(_("name"), max_length=120)
    region = models.CharField(_("region"), max_length=120, blank=True)
    # GS1: when set, products of this site also resolve at /01/<gtin>/10/<lot>/21/<serial>.
    # Checked here (form and admin) and by the database (migration gaveurs/0004).
    gtin = models.CharField(
        "GTIN",
        max_length=14,
        blank=True,
        validators=[validate_gtin],
        help_text=_("GS1 trade item number of the product (8, 12, 13 or 14 digits, checked)."),
    )
    # GS1 Global Location Number: identifies the site in EPCIS events (traceability/gs1).
    gln = models.CharField(
        "GLN",
        max_length=13,
        blank=True,
        validators=[validate_gln],
        help_text=_("GS1 Global Location Number (13 digits, checked)."),
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class Gaveur(models.Model):
    """A producer who feeds the ducks of a lot."""

    last_name = models.CharField(_("last name"), max_length=80)
    first_name = models.CharField(_("first name"), max_length=80)
    site = models.ForeignKey(
        Site, verbose_name=_("site"), on_delete=models.PROTECT, related_name="gaveurs"
    )
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["last_name", "first_name"]
        verbose_name = _("gaveur")
        verbose_name_plural = _("gaveurs")

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class FeedingCurve(models.Model):
    """A named series of planned daily doses (grams of maize per duck, morning and evening)."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_reference = models.BooleanField(
        _("is reference"),
        default=False,
        help_text=_("The current reference curve new lots follow by default."),
    )
    # An approved curve (written by the optimiser's approval through
    # gaveurs.services.feeding_curve_approve) applies to new lots of its scope: a producer, a
    # site, or all sites when both are empty, until it is retired.
    site = models.ForeignKey(
        "Site",
        verbose_name=_("site"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="feeding_curves",
    )
    gaveur = models.ForeignKey(
        "Gaveur",
        verbose_name=_("gaveur"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="feeding_curves",
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True, editable=False)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True, editable=False)
    source = models.CharField(
        _("source"), max_length=120, blank=True, help_text=_("Where an approved curve comes from.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = _("feeding curve")
        verbose_name_plural = _("feeding curves")

    def __str__(self) -> str:
        return self.name

    @property
    def duration_days(self) -> int:
        return self.days.count()

    @property
    def scope_label(self) -> str:
        if self.gaveur_id:
            return f"gaveur {self.gaveur}"
        if self.site_id:
            return f"site {self.site.code}"
        return "all sites"


class FeedingCurveDay(models.Model):
    curve = models.ForeignKey(
        FeedingCurve, verbose_name=_("curve"), on_delete=models.CASCADE, related_name="days"
    )
    day = models.PositiveSmallIntegerField(_("day"), validators=[MinValueValidator(1)])
    morning_dose_g = models.FloatField(_("morning dose g"), validators=[MinValueValidator(0)])
    evening_dose_g = models.FloatField(_("evening dose g"), validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["curve", "day"]
        verbose_name = _("feeding curve day")
        verbose_name_plural = _("feeding curve days")
        constraints = [
            models.UniqueConstraint(fields=["curve", "day"], name="feeding_curve_day_unique"),
            models.CheckConstraint(
                condition=Q(morning_dose_g__gte=0) & Q(evening_dose_g__gte=0),
                name="feeding_curve_day_doses_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.curve} J{self.day}"


class Lot(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        FEEDING = "feeding", _("Feeding")
        FINISHED = "finished", _("Feeding finished")
        SLAUGHTERED = "slaughtered", _("Slaughtered")

    code = models.CharField(_("code"), max_length=50, unique=True)
    gaveur = models.ForeignKey(
        Gaveur, verbose_name=_("gaveur"), on_delete=models.PROTECT, related_name="lots"
    )
    site = models.ForeignKey(
        Site, verbose_name=_("site"), on_delete=models.PROTECT, related_name="lots"
    )
    feeding_start = models.DateTimeField(_("feeding start"))
    planned_feeding_end = models.DateTimeField(_("planned feeding end"))
    duration_days = models.PositiveSmallIntegerField(_("duration days"), null=True, blank=True)
    # ITM: grams of maize per gram of liver (lower is better).
    itm = models.FloatField(_("itm"), null=True, blank=True, validators=[MinValueValidator(0)])
    mean_final_weight_g = models.FloatField(
        _("mean final weight g"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    duck_count = models.PositiveIntegerField(_("duck count"), default=0)
    dead_count = models.PositiveIntegerField(_("dead count"), default=0)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PLANNED
    )
    feeding_curve = models.ForeignKey(
        FeedingCurve,
        verbose_name=_("feeding curve"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lots",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        db_table = "lots_gavage"
        ordering = ["-feeding_start"]
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        constraints = [
            models.CheckConstraint(
                condition=Q(planned_feeding_end__gte=models.F("feeding_start")),
                name="lot_feeding_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(dead_count__lte=models.F("duck_count")),
                name="lot_dead_count_within_duck_count",
            ),
        ]
        indexes = [models.Index(fields=["site", "feeding_start"])]

    def __str__(self) -> str:
        return self.code

    @property
    def mortality_rate(self) -> float | None:
        return self.dead_count / self.duck_count if self.duck_count else None


class FeedingRecord(models.Model):
    """What a lot was planned to get and got, one meal of one day."""

    class Meal(models.TextChoices):
        MORNING = "morning", _("Morning")
        EVENING = "evening", _("Evening")

    lot = models.ForeignKey(
        Lot, verbose_name=_("lot"), on_delete=models.CASCADE, related_name="feeding_records"
    )
    day = models.PositiveSmallIntegerField(_("day"), validators=[MinValueValidator(1)])
    meal = models.CharField(_("meal"), max_length=7, choices=Meal.choices)
    planned_dose_g = models.FloatField(_("planned dose g"), validators=[MinValueValidator(0)])
    actual_dose_g = models.FloatField(
        _("actual dose g"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    mean_weight_g = models.FloatField(
        _("mean weight g"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["lot", "day", "meal"]
        verbose_name = _("feeding record")
        verbose_name_plural = _("feeding records")
        constraints = [
            models.UniqueConstraint(
                fields=["lot", "day", "meal"], name="feeding_record_one_per_meal"
            ),
            models.CheckConstraint(
                condition=Q(planned_dose_g__gte=0), name="feeding_record_dose_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lot} J{self.day} {self.meal}"
