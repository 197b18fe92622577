"""Search for the feasible feeding curve with the best value of an objective.

The objective is the curve model's prediction (or, for trials, prediction plus what a curve
would teach; for the quality bench, a known taste). A candidate is a planned dose per day
and meal. It is feasible when it keeps the rules of `optimizer.curves.curve_violations`
(settings) and stays where the data is:
- each day's morning and evening dose lies within the doses real lots got on that day;
- the whole curve lies within OPTIMIZER_MAX_CURVE_DISTANCE (relative L2 distance) of a curve
  a real lot followed;
- its shape (total, duration, late share, roughness...) lies in the support of the data
  (`optimizer.surrogate.Support`), so the model is never asked about a shape it never saw.
`reach` > 1 widens all three by that factor: trial curves explore just beyond the data.

The search is evolutionary: start from the best observed curves (and the caller's seeds),
mutate them (smooth changes of level, slope and bend of the ramp, of the meal split, small
day-to-day walks), change durations, cross them over, repair each child onto the rules,
drop the infeasible ones, keep the best. Vectorised numpy; every draw comes from one
Generator seeded by the caller, so the same data and seed give the same curve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optimizer.curves import CurveBounds, curve_violations

Objective = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class SearchResult:
    curve: list[tuple[float, float]] | None
    value: float | None
    evaluated: int
    feasible: int
    envelope: dict
    # The final population (feasible, best first): a pool of good candidates.
    pool: np.ndarray | None = None
    pool_days: np.ndarray | None = None


class CurveSpace:
    """The feasible region learned from the observed curves plus the settings' bounds."""

    def __init__(
        self,
        observed: np.ndarray,
        durations: np.ndarray,
        bounds: CurveBounds,
        max_distance: float | None,
        *,
        support=None,
        reach: float = 1.0,
        envelope: bool = True,
    ) -> None:
        self.observed = observed
        self.durations = durations.astype(int)
        self.bounds = bounds
        self.max_distance = None if max_distance is None else max_distance * reach
        self.support = support
        self.reach = reach
        self.feature_days = observed.shape[1]
        self.lo = np.full((self.feature_days, 2), np.nan)
        self.hi = np.full((self.feature_days, 2), np.nan)
        if envelope:
            for day in range(self.feature_days):
                present = self.durations > day
                if present.any():
                    lo = observed[present, day].min(axis=0)
                    hi = observed[present, day].max(axis=0)
                    widen = (reach - 1.0) * 0.5 * (hi - lo) + (reach - 1.0) * 0.1 * hi
                    self.lo[day] = np.maximum(lo - widen, 0.0)
                    self.hi[day] = hi + widen
            self.min_days = max(bounds.min_days, int(self.durations.min()))
            self.max_days = min(bounds.max_days, int(self.durations.max()), self.feature_days)
            if reach > 1.0:
                self.min_days = max(bounds.min_days, self.min_days - 1)
                self.max_days = min(bounds.max_days, self.max_days + 1, self.feature_days)
                self._fill_days()
        else:
            # Only the settings' rules: any dose from 0 to the daily maximum.
            self.lo[:] = 0.0
            self.hi[:] = bounds.max_daily_dose_g
            self.min_days = bounds.min_days
            self.max_days = min(bounds.max_days, self.feature_days)
        self._flat = observed.reshape(len(observed), -1)
        self._nn = None

    def _fill_days(self) -> None:
        """Days no lot reached (an extra day at reach > 1) take the last known day's range."""
        for day in range(1, self.feature_days):
            if np.isnan(self.lo[day]).any():
                self.lo[day] = self.lo[day - 1]
                self.hi[day] = self.hi[day - 1]

    @property
    def is_empty(self) -> bool:
        return self.min_days > self.max_days

    def repair(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """Project candidates onto the rules: envelope, rising meals, step and daily maximum."""
        doses = doses.copy()
        day_index = np.arange(self.feature_days)[None, :, None]
        active = day_index < durations[:, None, None]
        lo = np.nan_to_num(self.lo, nan=0.0)[None]
        hi = np.nan_to_num(self.hi, nan=0.0)[None]
        doses = np.where(active, np.clip(doses, lo, hi), 0.0)
        # 0.1 g of slack: curves are stored rounded to 0.1 g and must still keep the rules.
        step = max(0.0, self.bounds.max_daily_step_g - 0.1)
        cap = self.bounds.max_daily_dose_g - 0.1
        first = doses[:, 0].sum(axis=1)
        scale = np.where(first > cap, cap / np.maximum(first, 1e-9), 1.0)
        doses[:, 0] *= scale[:, None]
        for day in range(1, self.feature_days):
            prev = doses[:, day - 1]
            cur = np.maximum(doses[:, day], prev)
            increments = cur - prev
            rise = increments.sum(axis=1)
            allowed = np.minimum(step, cap - prev.sum(axis=1))
            factor = np.where(rise > allowed, allowed / np.maximum(rise, 1e-9), 1.0)
            cur = prev + increments * np.clip(factor, 0.0, 1.0)[:, None]
            doses[:, day] = np.where(active[:, day], cur, 0.0)
        return doses

    def feasible_mask(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        day_index = np.arange(self.feature_days)[None, :, None]
        active = day_index < durations[:, None, None]
        tol = 1e-6
        inside = ~active | (
            (doses >= np.nan_to_num(self.lo, nan=np.inf)[None] - tol)
            & (doses <= np.nan_to_num(self.hi, nan=-np.inf)[None] + tol)
        )
        ok = inside.all(axis=(1, 2))
        ok &= (durations >= self.min_days) & (durations <= self.max_days)
        if self.max_distance is not None and ok.any():
            ok[ok] &= self.distance(doses[ok]) <= self.max_distance
        if self.support is not None and ok.any():
            from optimizer.dataset import curve_features

            features = curve_features(doses[ok], durations[ok])
            ok[ok] &= self.support.distance_ratio(features, self.reach) <= self.reach
        return ok

    def distance(self, doses: np.ndarray) -> np.ndarray:
        """Relative L2 distance of each candidate to the nearest observed curve."""
        if self._nn is None:
            # A matrix product (in 2 × days dimensions trees do not prune), in numpy: no
            # thread pool to wait on when the machine is busy.
            unique = np.unique(self._flat, axis=0)
            self._nn = (unique, (unique**2).sum(axis=1))
        unique, unique_sq = self._nn
        flat = doses.reshape(len(doses), -1)
        norms_sq = (flat**2).sum(axis=1)
        nearest = np.empty(len(flat))
        for start in range(0, len(flat), 2048):
            part = slice(start, start + 2048)
            sq = norms_sq[part, None] + unique_sq[None, :] - 2.0 * flat[part] @ unique.T
            nearest[part] = sq.min(axis=1)
        dist = np.sqrt(np.maximum(nearest, 0.0))
        return dist / np.maximum(np.sqrt(norms_sq), 1e-9)


def pad_curve(curve, feature_days: int) -> np.ndarray | None:
    """(feature_days, 2) doses with zeros after the end; None when longer or empty."""
    if len(curve) > feature_days or not len(curve):
        return None
    padded = np.zeros((feature_days, 2))
    padded[: len(curve)] = curve
    return padded


def _mutate(children: np.ndarray, child_days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half smooth reshaping of the ramp (level, slope, bend, meal split), half small walks."""
    n, feature_days, _ = children.shape
    t = np.arange(feature_days)[None, :] / np.maximum(child_days[:, None] - 1, 1)
    level = rng.normal(0, 0.04, (n, 1))
    slope = rng.normal(0, 0.06, (n, 1))
    bend = rng.normal(0, 0.06, (n, 1))
    factor = 1 + level + slope * (t - 0.5) + bend * (t**2 - t + 1 / 6)
    split = rng.normal(0, 0.015, (n, 1))
    daily = children.sum(axis=2) * factor
    share = np.clip(children[:, :, 0] / np.maximum(children.sum(axis=2), 1e-9) + split, 0, 1)
    smooth = np.stack([daily * share, daily * (1 - share)], axis=2)
    scale = rng.choice([0.01, 0.03, 0.06], size=(n, 1, 1))
    walk = np.cumsum(rng.normal(0, 1, size=(n, feature_days, 2)), axis=1)
    walk /= np.sqrt(np.arange(1, feature_days + 1))[None, :, None]
    walked = children * (1 + scale * walk * 0.5) + rng.normal(0, 3, size=children.shape)
    use_smooth = rng.random(n) < 0.5
    return np.where(use_smooth[:, None, None], smooth, walked)


def curve_search(
    *,
    objective: Objective,
    space: CurveSpace,
    seeds: list | None = None,
    population: int = 160,
    generations: int = 40,
    seed: int = 0,
) -> SearchResult:
    """Best feasible curve by `objective(doses, durations)` (see the module doc)."""
    rng = np.random.default_rng(seed)
    envelope = {
        "min_days": space.min_days,
        "max_days": space.max_days,
        "low_g": np.nan_to_num(space.lo).round(1).tolist(),
        "high_g": np.nan_to_num(space.hi).round(1).tolist(),
    }
    if space.is_empty:
        return SearchResult(None, None, 0, 0, envelope)
    feature_days = space.feature_days
    observed, durations = space.observed, space.durations

    # Start: the observed curves the objective likes best, and the caller's seeds.
    observed_scores = objective(observed, durations)
    top = np.argsort(-observed_scores, kind="stable")[: population * 2]
    pop = observed[top].copy()
    pop_days = durations[top].astype(int).clip(space.min_days, space.max_days)
    for extra in seeds or []:
        padded = pad_curve(extra, feature_days)
        if padded is not None:
            pop = np.concatenate([pop, padded[None]])
            pop_days = np.append(pop_days, np.clip(len(extra), space.min_days, space.max_days))
    pop = space.repair(pop, pop_days)
    mask = space.feasible_mask(pop, pop_days)
    pop, pop_days = pop[mask], pop_days[mask]
    evaluated = int(mask.size)
    feasible = int(mask.sum())
    if not len(pop):
        return SearchResult(None, None, evaluated, feasible, envelope)
    fitness = objective(pop, pop_days)

    for _generation in range(generations):
        n = population
        # Tournament of two: better parents breed more, the population keeps its variety.
        a, b = rng.integers(0, len(pop), size=(2, n))
        parents = np.where(fitness[a] >= fitness[b], a, b)
        children = pop[parents].copy()
        child_days = pop_days[parents].copy()
        children = _mutate(children, child_days, rng)
        # Duration changes: extend with the last day's doses or cut the last day.
        change = rng.choice([-1, 0, 0, 0, 1], size=n)
        for i in np.nonzero(change)[0]:
            days = int(child_days[i])
            new_days = int(np.clip(days + change[i], space.min_days, space.max_days))
            if new_days > days:
                children[i, days:new_days] = children[i, days - 1]
            child_days[i] = new_days
        # Crossover: the start of one parent, the end of another of the same duration.
        mates = rng.integers(0, len(pop), size=n)
        cut = rng.integers(1, feature_days, size=n)
        cross = (rng.random(n) < 0.3) & (pop_days[mates] == child_days)
        for i in np.nonzero(cross)[0]:
            children[i, cut[i] :] = pop[mates[i], cut[i] :]
        children = space.repair(children, child_days)
        mask = space.feasible_mask(children, child_days)
        evaluated += n
        feasible += int(mask.sum())
        if not mask.any():
            continue
        children, child_days = children[mask], child_days[mask]
        child_fitness = objective(children, child_days)
        pop = np.concatenate([pop, children])
        pop_days = np.concatenate([pop_days, child_days])
        fitness = np.concatenate([fitness, child_fitness])
        keep = np.argsort(-fitness, kind="stable")[:population]
        pop, pop_days, fitness = pop[keep], pop_days[keep], fitness[keep]

    for index in np.argsort(-fitness, kind="stable"):
        days = int(pop_days[index])
        curve = [(float(m), float(e)) for m, e in pop[index, :days].round(1)]
        if curve_violations(curve, space.bounds):
            continue  # rounding can break a rule at the edge: take the next best
        padded = pad_curve(curve, feature_days)
        value = float(objective(padded[None], np.array([days]))[0])
        return SearchResult(curve, value, evaluated, feasible, envelope, pop, pop_days)
    return SearchResult(None, None, evaluated, feasible, envelope, pop, pop_days)
