"""What the public product class and lot pages show: public data only.

Neither page reads a QR code, a serial or a product id: the only way to a unit's page is the
serial printed on its label (traceability/gs1/resolver.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, Max, Min, Q
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from gaveurs.models import Lot, Site
from traceability.models import ConsumerProduct
from traceability.recalls import recalls_for_lot

RECENT_LOTS = 10
GRADES = ("A+", "A", "B", "C")


@dataclass(frozen=True)
class LotSummary:
    code: str
    site: Site
    feeding_start: Any
    feeding_end: Any
    units: int


def class_page(*, gtin: str, sites: list[Site]) -> dict[str, Any]:
    """The product class: its sites and its most recent lots that have units on the market."""
    lots = (
        Lot.objects.filter(site__in=sites)
        .annotate(units=Count("products"))
        .filter(units__gt=0)
        .select_related("site")
        .order_by("-feeding_start", "-id")[:RECENT_LOTS]
    )
    return {
        "gtin": gtin,
        "sites": sites,
        "lots": [
            LotSummary(
                code=lot.code,
                site=lot.site,
                feeding_start=lot.feeding_start,
                feeding_end=lot.planned_feeding_end,
                units=lot.units,
            )
            for lot in lots
        ],
    }


def _lot_recall_notice(lot: Lot) -> str | None:
    """One line on the newest recall or withdrawal reaching units of the lot, if any."""
    recall = recalls_for_lot(lot).last()
    if recall is None:
        return None
    english = (get_language() or "fr").startswith("en")
    values = {
        "ref": recall.reference,
        "reason": recall.reason,
        "instructions": recall.instructions_en if english else recall.instructions_fr,
    }
    if getattr(recall, "closure", None) is not None:
        return _("Rappel %(ref)s (clos) : %(reason)s") % values
    if recall.kind == "withdrawal":
        return _("Retrait de la vente %(ref)s : %(reason)s. %(instructions)s") % values
    return _("Rappel %(ref)s : %(reason)s. %(instructions)s") % values


def lot_page(*, gtin: str, lot: Lot) -> dict[str, Any]:
    """A lot: origin, feeding dates and a summary of its SQAL inspections."""
    figures = ConsumerProduct.objects.filter(lot=lot).aggregate(
        units=Count("id"),
        compliant=Count("id", filter=Q(is_compliant=True)),
        mean_score=Avg("fusion_score"),
        first=Min("created_at"),
        last=Max("created_at"),
        **{f"grade_{i}": Count("id", filter=Q(fusion_grade=g)) for i, g in enumerate(GRADES)},
    )
    grades = [(g, figures[f"grade_{i}"]) for i, g in enumerate(GRADES) if figures[f"grade_{i}"]]
    mean = figures["mean_score"]
    return {
        "gtin": gtin,
        "lot": lot,
        "units": figures["units"],
        "compliant": figures["compliant"],
        "mean_percent": round(mean * 100) if mean is not None else None,
        "grades": grades,
        "first_packed": figures["first"],
        "last_packed": figures["last"],
        "recall": _lot_recall_notice(lot),
    }
