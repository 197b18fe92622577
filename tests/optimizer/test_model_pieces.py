"""Pieces of the curve model and search, on plain arrays: site offsets, the distance to the
observed curves."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.curves import CurveBounds
from optimizer.dataset import curve_features
from optimizer.search import CurveSpace
from optimizer.surrogate import site_offsets


def _ramps(rng: np.random.Generator, n: int, days: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, days)
    start = rng.uniform(330, 520, (n, 1))
    end = rng.uniform(780, 980, (n, 1))
    daily = start + (end - start) * t[None, :]
    share = rng.uniform(0.42, 0.5, (n, 1))
    return np.stack([daily * share, daily * (1 - share)], axis=2)


def test_site_offsets_separate_the_sites_levels_from_their_curves():
    rng = np.random.default_rng(0)
    n = 240
    doses = _ramps(rng, n)
    sites = np.array(["QA", "QB", "QC"])[np.arange(n) % 3]
    # QC's lots also follow heavier curves: a site mean would mix both effects.
    doses[sites == "QC"] *= 1.05
    features = curve_features(doses, np.full(n, 12))
    total = doses.sum(axis=(1, 2))
    liking = 3.0 - ((total - 8000) / 1200) ** 2  # the curve's own effect
    level = {"QA": -0.3, "QB": 0.0, "QC": 0.3}
    y = liking + np.array([level[s] for s in sites]) + rng.normal(0, 0.05, n)
    w = np.full(n, 8.0)

    offsets = site_offsets(features, y, w, sites)

    by_site = {s: float(offsets[sites == s][0]) for s in level}
    assert all(np.allclose(offsets[sites == s], by_site[s]) for s in level)  # one per site
    assert np.average(offsets, weights=w) == pytest.approx(0.0, abs=1e-9)  # the average site
    assert by_site["QA"] == pytest.approx(-0.3, abs=0.05)
    assert by_site["QB"] == pytest.approx(0.0, abs=0.05)
    assert by_site["QC"] == pytest.approx(0.3, abs=0.05)


def test_one_site_or_too_few_lots_per_site_have_no_offset():
    rng = np.random.default_rng(1)
    doses = _ramps(rng, 30)
    features = curve_features(doses, np.full(30, 12))
    y = rng.normal(3.5, 0.3, 30)
    w = np.full(30, 6.0)

    assert not site_offsets(features, y, w, np.full(30, "QA")).any()
    sites = np.array(["QA", "QB", "QC", "QD", "QE", "QF", "QG", "QH"] * 4)[:30]
    assert not site_offsets(features, y, w, sites).any()


def test_the_distance_to_the_observed_curves_is_the_nearest_relative_l2_distance():
    rng = np.random.default_rng(2)
    observed = np.zeros((50, 16, 2))
    observed[:, :12] = _ramps(rng, 50)
    space = CurveSpace(observed, np.full(50, 12), CurveBounds(9, 16, 90.0, 1000.0), 0.12)
    candidates = observed[:7] * rng.uniform(0.9, 1.1, (7, 16, 2))

    flat_obs = observed.reshape(50, -1)
    flat = candidates.reshape(7, -1)
    brute = np.linalg.norm(flat[:, None] - flat_obs[None], axis=2).min(axis=1)
    assert space.distance(candidates) == pytest.approx(
        brute / np.linalg.norm(flat, axis=1), rel=1e-9, abs=1e-9
    )
    assert space.distance(observed[:3]) == pytest.approx(0.0, abs=1e-6)
