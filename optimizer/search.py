"""Search for the feasible feeding curve with the best predicted rating.

A candidate is a planned dose per day and meal. It is feasible when it keeps the rules of
`optimizer.curves.curve_violations` (settings) and stays where the data is:
- each day's morning and evening dose lies within the doses real lots got on that day;
- the whole curve lies within OPTIMIZER_MAX_CURVE_DISTANCE (relative L2 distance) of a curve
  a real lot followed, so the forest is never asked about a curve far from what it saw.

The search is evolutionary: start from the best observed curves (and the current one),
mutate them with smooth day-to-day changes, change durations, cross them over, repair each
child onto the rules, drop the infeasible ones, keep the best predicted. Vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.curves import CurveBounds, curve_violations
from optimizer.dataset import curve_features
from optimizer.learning import CurveModel


@dataclass
class SearchResult:
    curve: list[tuple[float, float]] | None
    predicted: float | None
    spread: float | None
    evaluated: int
    feasible: int
    envelope: dict


class CurveSpace:
    """The feasible region learned from the observed curves plus the settings' bounds."""

    def __init__(
        self,
        observed: np.ndarray,
        durations: np.ndarray,
        bounds: CurveBounds,
        max_distance: float,
    ) -> None:
        self.observed = observed
        self.durations = durations.astype(int)
        self.bounds = bounds
        self.max_distance = max_distance
        self.feature_days = observed.shape[1]
        self.lo = np.full((self.feature_days, 2), np.nan)
        self.hi = np.full((self.feature_days, 2), np.nan)
        for day in range(self.feature_days):
            present = self.durations > day
            if present.any():
                self.lo[day] = observed[present, day].min(axis=0)
                self.hi[day] = observed[present, day].max(axis=0)
        self.min_days = max(bounds.min_days, int(self.durations.min()))
        self.max_days = min(bounds.max_days, int(self.durations.max()), self.feature_days)
        self._flat = observed.reshape(len(observed), -1)
        self._nn = None

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
        return ok & (self.distance(doses) <= self.max_distance)

    def distance(self, doses: np.ndarray) -> np.ndarray:
        """Relative L2 distance of each candidate to the nearest observed curve."""
        from sklearn.neighbors import NearestNeighbors

        if self._nn is None:
            self._nn = NearestNeighbors(n_neighbors=1).fit(np.unique(self._flat, axis=0))
        flat = doses.reshape(len(doses), -1)
        dist, _ = self._nn.kneighbors(flat)
        norms = np.linalg.norm(flat, axis=1)
        return dist[:, 0] / np.maximum(norms, 1e-9)


def _pad(curve: list[tuple[float, float]], feature_days: int) -> np.ndarray | None:
    if len(curve) > feature_days or not curve:
        return None
    padded = np.zeros((feature_days, 2))
    padded[: len(curve)] = curve
    return padded


def curves_predict(
    model: CurveModel, curves: list[list[tuple[float, float]]], feature_days: int
) -> list[tuple[float, float] | None]:
    """(mean, spread across trees) for each curve, None for a curve longer than the data."""
    out: list[tuple[float, float] | None] = []
    for curve in curves:
        padded = _pad(curve, feature_days)
        if padded is None:
            out.append(None)
            continue
        features = curve_features(padded[None], np.array([len(curve)]))
        mean, spread = model.predict_with_spread(features)
        out.append((float(mean[0]), float(spread[0])))
    return out


def curve_search(
    *,
    model: CurveModel,
    observed: np.ndarray,
    durations: np.ndarray,
    bounds: CurveBounds,
    max_distance: float,
    seeds: list[list[tuple[float, float]]] | None = None,
    population: int = 160,
    generations: int = 40,
    seed: int = 0,
) -> SearchResult:
    """Best feasible curve by predicted rating (see the module doc)."""
    rng = np.random.default_rng(seed)
    space = CurveSpace(observed, durations, bounds, max_distance)
    envelope = {
        "min_days": space.min_days,
        "max_days": space.max_days,
        "low_g": np.nan_to_num(space.lo).round(1).tolist(),
        "high_g": np.nan_to_num(space.hi).round(1).tolist(),
    }
    if space.is_empty:
        return SearchResult(None, None, None, 0, 0, envelope)
    feature_days = space.feature_days

    def score(doses: np.ndarray, durs: np.ndarray) -> np.ndarray:
        return model.forest.predict(curve_features(doses, durs))

    # Start: the observed curves the model likes best, and the caller's seeds (current curve).
    observed_scores = score(observed, durations)
    top = np.argsort(-observed_scores)[: population * 2]
    pop = observed[top].copy()
    pop_days = durations[top].astype(int).clip(space.min_days, space.max_days)
    for extra in seeds or []:
        padded = _pad(extra, feature_days)
        if padded is not None:
            pop = np.concatenate([pop, padded[None]])
            pop_days = np.append(pop_days, np.clip(len(extra), space.min_days, space.max_days))
    pop = space.repair(pop, pop_days)
    mask = space.feasible_mask(pop, pop_days)
    pop, pop_days = pop[mask], pop_days[mask]
    evaluated = int(mask.size)
    feasible = int(mask.sum())
    if not len(pop):
        return SearchResult(None, None, None, evaluated, feasible, envelope)
    fitness = score(pop, pop_days)

    for _generation in range(generations):
        n = population
        parents = rng.integers(0, len(pop), size=n)
        children = pop[parents].copy()
        child_days = pop_days[parents].copy()
        # Smooth mutation: a random walk over days, so neighbouring days move together.
        scale = rng.choice([0.01, 0.03, 0.06], size=(n, 1, 1))
        walk = np.cumsum(rng.normal(0, 1, size=(n, feature_days, 2)), axis=1)
        walk /= np.sqrt(np.arange(1, feature_days + 1))[None, :, None]
        children = children * (1 + scale * walk * 0.5) + rng.normal(0, 3, size=children.shape)
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
        child_fitness = score(children, child_days)
        pop = np.concatenate([pop, children])
        pop_days = np.concatenate([pop_days, child_days])
        fitness = np.concatenate([fitness, child_fitness])
        keep = np.argsort(-fitness)[:population]
        pop, pop_days, fitness = pop[keep], pop_days[keep], fitness[keep]

    for index in np.argsort(-fitness):
        days = int(pop_days[index])
        curve = [(float(m), float(e)) for m, e in pop[index, :days].round(1)]
        if curve_violations(curve, bounds):
            continue  # rounding can break a rule at the edge: take the next best
        padded = _pad(curve, feature_days)
        mean, spread = model.predict_with_spread(curve_features(padded[None], np.array([days])))
        return SearchResult(curve, float(mean[0]), float(spread[0]), evaluated, feasible, envelope)
    return SearchResult(None, None, None, evaluated, feasible, envelope)
