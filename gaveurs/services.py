"""Producer-domain writes: creating lots with the feeding curve they should follow.

Which curve a new lot follows (most specific first): the approved curve of its producer, of its
site, of all sites, else the reference curve (FeedingCurve.is_reference). Approved curves are
written here (``feeding_curve_approve``) by the optimiser's approval; gaveurs never reads the
optimiser's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from gaveurs.models import FeedingCurve, FeedingCurveDay, FeedingRecord, Gaveur, Lot


def feeding_curve_for_new_lot(*, site_id: int | None, gaveur_id: int | None) -> FeedingCurve | None:
    """The curve a new lot of this producer/site gets (see the module doc)."""
    approved = FeedingCurve.objects.filter(
        approved_at__isnull=False, retired_at__isnull=True
    ).order_by("-approved_at", "-pk")
    if gaveur_id is not None:
        found = approved.filter(gaveur_id=gaveur_id).first()
        if found:
            return found
    if site_id is not None:
        found = approved.filter(site_id=site_id, gaveur__isnull=True).first()
        if found:
            return found
    found = approved.filter(site__isnull=True, gaveur__isnull=True).first()
    if found:
        return found
    return FeedingCurve.objects.filter(is_reference=True).order_by("-created_at").first()


@transaction.atomic
def feeding_curve_approve(
    *,
    name: str,
    description: str,
    doses: Sequence[tuple[float, float]],
    site_id: int | None,
    gaveur_id: int | None,
    source: str = "",
) -> FeedingCurve:
    """Store an approved curve (morning and evening dose per day) for new lots of its scope,
    retiring the curve that scope followed until now."""
    now = timezone.now()
    # One save per retired curve (not a queryset update), so the audit trail records each.
    for previous in FeedingCurve.objects.filter(
        approved_at__isnull=False, retired_at__isnull=True, site_id=site_id, gaveur_id=gaveur_id
    ):
        previous.retired_at = now
        previous.save(update_fields=["retired_at"])
    curve = FeedingCurve.objects.create(
        name=name[:120],
        description=description,
        site_id=site_id,
        gaveur_id=gaveur_id,
        approved_at=now,
        source=source[:120],
    )
    FeedingCurveDay.objects.bulk_create(
        FeedingCurveDay(curve=curve, day=day, morning_dose_g=m, evening_dose_g=e)
        for day, (m, e) in enumerate(doses, start=1)
    )
    return curve


def feeding_curve_retire(*, curve_id: int) -> None:
    """New lots of the curve's scope stop following it (they fall back to the next curve)."""
    curve = FeedingCurve.objects.filter(pk=curve_id, retired_at__isnull=True).first()
    if curve is not None:
        curve.retired_at = timezone.now()
        curve.save(update_fields=["retired_at"])  # a save, so the audit trail records it


def lot_assign_default_curve(*, lot: Lot) -> FeedingCurve | None:
    """Give a lot without a curve the one its scope follows, and plan its meals from it."""
    if lot.feeding_curve_id is None:
        curve = feeding_curve_for_new_lot(site_id=lot.site_id, gaveur_id=lot.gaveur_id)
        if curve is None:
            return None
        lot.feeding_curve = curve
        lot.save(update_fields=["feeding_curve"])
    lot_plan_meals(lot=lot)
    return lot.feeding_curve


def lot_plan_meals(*, lot: Lot) -> int:
    """Create the planned feeding records of a lot from its curve (days not yet recorded)."""
    if lot.feeding_curve_id is None:
        return 0
    existing = set(lot.feeding_records.values_list("day", "meal"))
    records = []
    for day in lot.feeding_curve.days.all():
        for meal, dose in (
            (FeedingRecord.Meal.MORNING, day.morning_dose_g),
            (FeedingRecord.Meal.EVENING, day.evening_dose_g),
        ):
            if (day.day, meal) not in existing:
                records.append(FeedingRecord(lot=lot, day=day.day, meal=meal, planned_dose_g=dose))
    FeedingRecord.objects.bulk_create(records)
    return len(records)


@transaction.atomic
def lot_create(
    *,
    code: str,
    gaveur_id: int,
    feeding_start: datetime,
    duck_count: int,
    feeding_curve_id: int | None = None,
    duration_days: int | None = None,
) -> Lot:
    """Create a lot that follows `feeding_curve_id`, or the curve its scope follows.

    The planned end and duration come from the curve when not given; the curve's doses become
    the lot's planned feeding records.
    """
    gaveur = Gaveur.objects.select_related("site").get(pk=gaveur_id)
    if feeding_curve_id is not None:
        curve = FeedingCurve.objects.get(pk=feeding_curve_id)
    else:
        curve = feeding_curve_for_new_lot(site_id=gaveur.site_id, gaveur_id=gaveur.pk)
    if duration_days is None and curve is not None:
        duration_days = curve.days.count() or None
    lot = Lot.objects.create(
        code=code,
        gaveur=gaveur,
        site=gaveur.site,
        feeding_start=feeding_start,
        planned_feeding_end=feeding_start + timedelta(days=duration_days or 0),
        duration_days=duration_days,
        duck_count=duck_count,
        feeding_curve=curve,
        status=Lot.Status.PLANNED,
    )
    lot_plan_meals(lot=lot)
    return lot
