"""Quality alerts of ingestion: the thresholds staff edit in admin, applied to a reading.

``alerts_for`` lists the alerts a new sample raises (as plain ``Alert`` data, written with the
sample by ``sensors.storage.samples_insert``, which keeps one unresolved alert per station and
rule and counts the samples in it); ``alert_acknowledge`` and ``alert_resolve`` are staff's
answers. A resolved alert is closed: the next sample that breaks the rule opens a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from sensors.models import QualityAlert, QualityThreshold
from sensors.schemas import Reading

NO_LOT_RULE = "no_lot"
LOT_NOT_ALLOWED_RULE = "lot_not_allowed"
GRADE_RANK = {"REJECT": 0, "C": 1, "B": 2, "A": 3, "A+": 4}


@dataclass(slots=True)
class Alert:
    """A quality alert as ingestion writes it (one ``QualityAlert`` row), as plain data: a
    Django model instance costs ~25 µs to build, and a sample raises one or more alerts."""

    sample_id: int | None  # the row's id, once inserted
    lot_id: int | None
    device_id: str
    threshold_id: int | None
    rule: str
    metric: str
    value: str
    severity: str
    message: str
    sample_key: str = ""  # the station's sample id, until the row has an id
    status: str = QualityAlert.Status.OPEN
    created_at: datetime | None = None


_COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def alerts_for(
    result: Any,
    reading: Reading,
    thresholds: Sequence[QualityThreshold],
    *,
    now: datetime,
) -> list[Alert]:
    """The alerts a reading raises; ``result`` is its ``IngestResult`` (lot and sample id)."""
    alerts: list[Alert] = []

    def alert(*, threshold, rule, metric, value, severity, message) -> None:
        alerts.append(
            Alert(
                sample_id=result.pk,
                lot_id=result.lot_id,
                device_id=reading.device_id,
                threshold_id=threshold.id if threshold is not None else None,
                rule=rule,
                metric=metric,
                value=value,
                severity=severity,
                message=message[:300],
                sample_key=reading.sample_id,
                created_at=now,
            )
        )

    lot_label = result.lot_code or "sans lot / no lot"
    for threshold in thresholds:
        if threshold.metric == QualityThreshold.Metric.FUSION_GRADE:
            grade = reading.fusion_grade
            if GRADE_RANK.get(grade, 0) <= GRADE_RANK.get(threshold.grade, -1):
                alert(
                    threshold=threshold,
                    rule=threshold.rule,
                    metric=threshold.metric,
                    value=grade,
                    severity=threshold.severity,
                    message=f"{reading.sample_id} (lot {lot_label}): grade {grade} "
                    f"— {threshold.rule}",
                )
            continue
        value = getattr(reading, threshold.metric, None)
        if value is None or threshold.value is None:
            continue
        if _COMPARE[threshold.operator](value, threshold.value):
            alert(
                threshold=threshold,
                rule=threshold.rule,
                metric=threshold.metric,
                value=f"{value:.4g}",
                severity=threshold.severity,
                message=f"{reading.sample_id} (lot {lot_label}): {threshold.metric} = "
                f"{value:.4g} — {threshold.rule}",
            )
    if result.lot_id is None:
        alert(
            threshold=None,
            rule=NO_LOT_RULE,
            metric="lot",
            value=reading.lot_abattage[:40],
            severity=QualityThreshold.Severity.CRITICAL,
            message=f"{reading.sample_id}: aucun lot trouvé (lot_abattage "
            f"{reading.lot_abattage!r}), aucun produit ne peut être enregistré / no lot found, "
            f"no product can be registered",
        )
    return alerts


UNRESOLVED = [QualityAlert.Status.OPEN, QualityAlert.Status.ACKNOWLEDGED]


def unresolved_no_lot_alerts() -> QuerySet[QualityAlert]:
    """The alerts of stations sending without a lot (one per station until resolved): the
    station admin's filter and the admin home count them."""
    return QualityAlert.objects.filter(rule=NO_LOT_RULE, status__in=UNRESOLVED)


def refusal_alert(
    *,
    device_id: str,
    sample_key: str,
    lot_id: int,
    lot_code: str,
    rule: str,
    detail: str,
    now: datetime,
) -> Alert:
    """The alert of a sample refused because its station may not write into the lot it named
    (``rule`` is ``lot_site`` or ``assigned_lot``): the sample is not stored, so staff must hear
    of it; one open alert per station counts the refusals
    (``sensors.storage.refused_alerts_upsert``)."""
    return Alert(
        sample_id=None,
        lot_id=lot_id,
        device_id=device_id,
        threshold_id=None,
        rule=LOT_NOT_ALLOWED_RULE,
        metric="lot_id",
        value=lot_code[:40],
        severity=QualityThreshold.Severity.CRITICAL,
        message=(
            f"{sample_key}: refusé, la station ne peut pas écrire dans le lot {lot_code} "
            f"({rule}) / refused: {detail}"
        )[:300],
        sample_key=sample_key,
        created_at=now,
    )


def alert_acknowledge(*, alert: QualityAlert, user) -> QualityAlert:
    """Staff saw an open alert: it stays the station's alert for the rule (later samples still
    count in it) until resolved."""
    if alert.status == QualityAlert.Status.OPEN:
        alert.status = QualityAlert.Status.ACKNOWLEDGED
        alert.handled_at = timezone.now()
        alert.handled_by = user
        alert._history_user = user  # the audit trail's "who", also outside a request
        alert.save(update_fields=["status", "handled_at", "handled_by"])
    return alert


def alert_resolve(*, alert: QualityAlert, user) -> QualityAlert:
    """Mark an alert resolved by a staff member."""
    alert.status = QualityAlert.Status.RESOLVED
    alert.handled_at = timezone.now()
    alert.handled_by = user
    alert._history_user = user
    alert.save(update_fields=["status", "handled_at", "handled_by"])
    return alert
