"""Feeding curves as data, and the rules a recommended curve must respect.

Pure Python on purpose (no numpy/pandas): admin, services and tests import it.
A curve is a list of (morning_g, evening_g) planned doses per duck, day 1 first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

Curve = Sequence[tuple[float, float]]
TOLERANCE_G = 1e-6


@dataclass(frozen=True)
class CurveBounds:
    """What settings allow: duration range, rising doses within a daily step, a daily maximum."""

    min_days: int
    max_days: int
    max_daily_step_g: float
    max_daily_dose_g: float

    @classmethod
    def from_settings(cls) -> CurveBounds:
        return cls(
            min_days=settings.OPTIMIZER_MIN_DAYS,
            max_days=settings.OPTIMIZER_MAX_DAYS,
            max_daily_step_g=settings.OPTIMIZER_MAX_DAILY_STEP_G,
            max_daily_dose_g=settings.OPTIMIZER_MAX_DAILY_DOSE_G,
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "min_days": self.min_days,
            "max_days": self.max_days,
            "max_daily_step_g": self.max_daily_step_g,
            "max_daily_dose_g": self.max_daily_dose_g,
        }


def curve_violations(curve: Curve, bounds: CurveBounds) -> list[str]:
    """Every rule of `bounds` the curve breaks, as readable sentences (empty when feasible).

    Rules: duration within [min_days, max_days]; no negative dose; each meal's dose never
    falls from one day to the next; the daily dose (morning + evening) rises by at most
    max_daily_step_g a day and never exceeds max_daily_dose_g.
    """
    problems: list[str] = []
    days = len(curve)
    if not bounds.min_days <= days <= bounds.max_days:
        problems.append(f"duration {days} days is outside {bounds.min_days}–{bounds.max_days} days")
    previous: tuple[float, float] | None = None
    for day, (morning, evening) in enumerate(curve, start=1):
        if morning < -TOLERANCE_G or evening < -TOLERANCE_G:
            problems.append(f"day {day}: negative dose")
        daily = morning + evening
        if daily > bounds.max_daily_dose_g + TOLERANCE_G:
            problems.append(
                f"day {day}: daily dose {daily:.1f} g exceeds {bounds.max_daily_dose_g:.0f} g"
            )
        if previous is not None:
            if morning < previous[0] - TOLERANCE_G or evening < previous[1] - TOLERANCE_G:
                problems.append(f"day {day}: a meal's dose falls from the day before")
            step = daily - (previous[0] + previous[1])
            if step > bounds.max_daily_step_g + TOLERANCE_G:
                problems.append(
                    f"day {day}: daily dose rises by {step:.1f} g, more than "
                    f"{bounds.max_daily_step_g:.0f} g"
                )
        previous = (morning, evening)
    return problems


def curve_to_json(curve: Curve) -> list[dict[str, float]]:
    return [
        {"day": day, "morning_g": round(float(m), 1), "evening_g": round(float(e), 1)}
        for day, (m, e) in enumerate(curve, start=1)
    ]


def curve_from_json(doses: list[dict]) -> list[tuple[float, float]]:
    ordered = sorted(doses, key=lambda d: int(d["day"]))
    return [(float(d["morning_g"]), float(d["evening_g"])) for d in ordered]


def curve_total_g(curve: Curve) -> float:
    return float(sum(m + e for m, e in curve))
