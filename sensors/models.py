"""SQAL stations (devices) and the samples they measure (table sqal_sensor_samples)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from sensors.payload import CompressedJSONField
from sensors.rules import GRADES as RULE_GRADES
from sensors.rules import product_eligible

GRADES = list(RULE_GRADES)  # a list: the check constraint's deconstructed form


class Grade(models.TextChoices):
    A_PLUS = "A+", "A+"
    A = "A", "A"
    B = "B", "B"
    C = "C", "C"
    REJECT = "REJECT", "REJECT"


def matrix_field(verbose_name: str) -> ArrayField:
    """An 8×8 matrix of floats (the VL53L8CH zones)."""
    return ArrayField(
        ArrayField(models.FloatField(), size=8),
        size=8,
        null=True,
        blank=True,
        verbose_name=verbose_name,
    )


class Device(models.Model):
    """An SQAL station (ESP32). Authenticates with a per-device token stored hashed."""

    device_id = models.CharField(_("device id"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=255, blank=True)
    site = models.ForeignKey(
        "gaveurs.Site",
        verbose_name=_("site"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="devices",
    )
    location = models.CharField(_("location"), max_length=255, blank=True)
    assigned_lot = models.ForeignKey(
        "gaveurs.Lot",
        verbose_name=_("assigned lot"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stations",
        help_text=_("Lot whose products this station inspects when a message names no lot."),
    )
    token_hash = models.CharField(_("token hash"), max_length=128, blank=True, editable=False)
    lots_of_any_site = models.BooleanField(
        _("lots of any site"),
        default=False,
        help_text=_(
            "Let this station's messages name lots of other sites (a line shared between "
            "sites). Off: a message's lot must be of the station's site, and the station's "
            "assigned lot when one is set."
        ),
    )
    is_active = models.BooleanField(_("is active"), default=True)
    # Descriptive fields: as long as the protocol accepts (sensors.schemas.DESCRIPTIVE_MAX).
    firmware_version = models.CharField(_("firmware version"), max_length=255, blank=True)
    mac_address = models.CharField(_("mac address"), max_length=255, blank=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    # Staff changes, token regenerations included (``token_hash`` changes). What a station
    # reports itself (greeting, last seen) is saved without a historical record.
    history = HistoricalRecords(excluded_fields=["last_seen_at"])

    class Meta:
        ordering = ["device_id"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        constraints = [
            models.UniqueConstraint(
                fields=["token_hash"],
                condition=~Q(token_hash=""),
                name="sqal_device_token_hash_unique",
            )
        ]

    def __str__(self) -> str:
        return self.device_id

    @property
    def has_token(self) -> bool:
        return bool(self.token_hash)


class SensorSample(models.Model):
    """One inspected product as measured by a station (ToF + spectral + fusion)."""

    time = models.DateTimeField(_("time"), db_index=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    # Keyed by the station's own id string, so `sample.device_id` is e.g. "ESP32_LL_01".
    device = models.ForeignKey(
        Device,
        verbose_name=_("device"),
        on_delete=models.PROTECT,
        to_field="device_id",
        db_column="device_id",
        related_name="samples",
    )
    sample_id = models.CharField(_("sample id"), max_length=100)
    lot = models.ForeignKey(
        "gaveurs.Lot",
        verbose_name=_("lot"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="samples",
    )
    site_code = models.CharField(_("site code"), max_length=5, blank=True)

    # VL53L8CH time of flight
    tof_volume_mm3 = models.FloatField(_("tof volume mm3"), null=True, blank=True)
    tof_surface_uniformity = models.FloatField(_("tof surface uniformity"), null=True, blank=True)
    tof_quality_score = models.FloatField(_("tof quality score"), null=True, blank=True)
    tof_grade = models.CharField(_("tof grade"), max_length=10, blank=True)
    distance_matrix = matrix_field(_("distance matrix"))
    reflectance_matrix = matrix_field(_("reflectance matrix"))
    amplitude_matrix = matrix_field(_("amplitude matrix"))
    ambient_matrix = matrix_field(_("ambient matrix"))
    status_matrix = matrix_field(_("status matrix"))

    # AS7341 spectral: F1..F8, Clear, NIR in this order
    spectral_channels = ArrayField(
        models.FloatField(), verbose_name=_("spectral channels"), size=10, null=True, blank=True
    )
    spectral_freshness_index = models.FloatField(
        _("spectral freshness index"), null=True, blank=True
    )
    spectral_fat_quality_index = models.FloatField(
        _("spectral fat quality index"), null=True, blank=True
    )
    spectral_oxidation_index = models.FloatField(
        _("spectral oxidation index"), null=True, blank=True
    )
    spectral_quality_score = models.FloatField(_("spectral quality score"), null=True, blank=True)
    spectral_grade = models.CharField(_("spectral grade"), max_length=10, blank=True)

    # Fusion
    fusion_score = models.FloatField(_("fusion score"))
    fusion_grade = models.CharField(_("fusion grade"), max_length=10, choices=Grade.choices)
    is_compliant = models.BooleanField(_("is compliant"))
    # The simulator's packaging fill conformity (fusion.foie_gras_metrics.is_compliant).
    fill_conformity = models.BooleanField(_("fill conformity"), null=True, blank=True)

    # Provenance as the station reports it
    # (descriptive fields: as long as the protocol accepts, sensors.schemas.DESCRIPTIVE_MAX)
    lot_abattage = models.CharField(_("lot abattage"), max_length=255, blank=True)
    eleveur = models.CharField(_("eleveur"), max_length=255, blank=True)
    provenance = models.CharField(_("provenance"), max_length=255, blank=True)
    firmware_version = models.CharField(_("firmware version"), max_length=255, blank=True)
    temperature_c = models.FloatField(_("temperature c"), null=True, blank=True)
    humidity_percent = models.FloatField(_("humidity percent"), null=True, blank=True)

    # The full message as received: its JSON text zstd-compressed in a bytea (sensors/payload.py
    # says why and how to read it); ``sample.payload`` is the decoded JSON value.
    payload = CompressedJSONField(_("payload"), help_text=_("The full message as received."))

    class Meta:
        db_table = "sqal_sensor_samples"
        ordering = ["-time"]
        verbose_name = _("sensor sample")
        verbose_name_plural = _("sensor samples")
        constraints = [
            models.UniqueConstraint(
                fields=["device", "sample_id"], name="sqal_sample_unique_per_device"
            ),
            models.CheckConstraint(
                condition=Q(fusion_score__gte=0) & Q(fusion_score__lte=1),
                name="sqal_fusion_score_range",
            ),
            models.CheckConstraint(
                condition=Q(fusion_grade__in=GRADES), name="sqal_fusion_grade_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["sample_id"]),
            models.Index(fields=["lot", "time"]),
            models.Index(fields=["fusion_grade", "time"]),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.sample_id}"

    @property
    def qualifies_for_product(self) -> bool:
        return product_eligible(
            is_compliant=self.is_compliant, fusion_grade=self.fusion_grade, lot_id=self.lot_id
        )


class QualityThreshold(models.Model):
    """A rule staff edit in admin: a sample whose metric crosses ``value`` raises an alert.

    For the fusion grade, ``grade`` is used instead of ``value``: the rule fires when the grade is
    that grade or worse.
    """

    class Metric(models.TextChoices):
        FUSION_SCORE = "fusion_score", _("Fusion score")
        FUSION_GRADE = "fusion_grade", _("Fusion grade")
        TOF_QUALITY_SCORE = "tof_quality_score", _("ToF quality score")
        SPECTRAL_QUALITY_SCORE = "spectral_quality_score", _("Spectral quality score")
        FRESHNESS = "spectral_freshness_index", _("Freshness index")
        FAT_QUALITY = "spectral_fat_quality_index", _("Fat quality index")
        OXIDATION = "spectral_oxidation_index", _("Oxidation index")
        UNIFORMITY = "tof_surface_uniformity", _("Surface uniformity")

    class Operator(models.TextChoices):
        LT = "lt", _("below")
        LTE = "lte", _("at or below")
        GT = "gt", _("above")
        GTE = "gte", _("at or above")

    class Severity(models.TextChoices):
        WARNING = "warning", _("Warning")
        CRITICAL = "critical", _("Critical")

    metric = models.CharField(_("metric"), max_length=40, choices=Metric.choices)
    operator = models.CharField(
        _("operator"), max_length=3, choices=Operator.choices, default=Operator.LT
    )
    value = models.FloatField(_("value"), null=True, blank=True)
    grade = models.CharField(
        _("grade"),
        max_length=10,
        choices=Grade.choices,
        blank=True,
        help_text=_("For the fusion grade: alert when the grade is this one or worse."),
    )
    severity = models.CharField(
        _("severity"), max_length=10, choices=Severity.choices, default=Severity.WARNING
    )
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["metric", "operator"]
        verbose_name = _("quality threshold")
        verbose_name_plural = _("quality thresholds")
        constraints = [
            models.CheckConstraint(
                condition=(Q(metric="fusion_grade") & ~Q(grade=""))
                | (~Q(metric="fusion_grade") & Q(value__isnull=False)),
                name="sqal_threshold_has_value_or_grade",
            )
        ]

    def __str__(self) -> str:
        return self.rule

    @property
    def rule(self) -> str:
        """A short, stable name of the rule, e.g. ``fusion_score<0.45``."""
        if self.metric == self.Metric.FUSION_GRADE:
            return f"fusion_grade<={self.grade}"
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[self.operator]
        return f"{self.metric}{symbol}{self.value:g}"


class QualityAlert(models.Model):
    """A station's samples crossing a threshold (or not tied to a lot): one alert per station and
    rule until staff resolve it. ``sample`` is the first sample that raised it; each later one
    adds to ``occurrences`` and moves ``last_seen_at`` (the batch writer's upsert,
    ``sensors.storage``), so staff are told once per station and problem."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        RESOLVED = "resolved", _("Resolved")

    sample = models.ForeignKey(
        SensorSample,
        verbose_name=_("sample"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        help_text=_(
            "The first sample that raised this alert; none for a refused message (a station "
            "writing into a lot it may not use), which was not stored."
        ),
    )
    lot = models.ForeignKey(
        "gaveurs.Lot",
        verbose_name=_("lot"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
    )
    device_id = models.CharField(_("station"), max_length=64)
    threshold = models.ForeignKey(
        QualityThreshold,
        verbose_name=_("threshold"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
    )
    rule = models.CharField(_("rule"), max_length=80)
    metric = models.CharField(_("metric"), max_length=40)
    value = models.CharField(_("value"), max_length=40, blank=True)
    severity = models.CharField(
        _("severity"),
        max_length=10,
        choices=QualityThreshold.Severity.choices,
        default=QualityThreshold.Severity.WARNING,
    )
    message = models.CharField(_("message"), max_length=300)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.OPEN
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    occurrences = models.PositiveIntegerField(
        _("occurrences"),
        default=1,
        db_default=1,
        help_text=_("Samples that raised it while it was not resolved."),
    )
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now, db_default=Now())
    handled_at = models.DateTimeField(_("handled at"), null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("handled by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    # Staff's acknowledge and resolve (sensors.alerts). The batch writer raises and counts
    # alerts in SQL (sensors.storage): those are the stations' doing, not recorded here.
    history = HistoricalRecords(excluded_fields=["occurrences", "last_seen_at"])

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = _("quality alert")
        verbose_name_plural = _("quality alerts")
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["status", "last_seen_at"]),
        ]
        constraints = [
            # The batch writer's ON CONFLICT target (sensors.storage): keep it in step.
            models.UniqueConstraint(
                fields=["device_id", "rule"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="sqal_alert_one_unresolved_per_station_rule",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} — {self.sample}"
