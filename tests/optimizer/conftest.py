"""Shared settings for the optimizer tests: small forests, searches and bootstraps keep them
fast; trial curves only where a test asks for them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_optimizer(settings, tmp_path):
    settings.OPTIMIZER_N_ESTIMATORS = 40
    settings.OPTIMIZER_CV_FOLDS = 4
    settings.OPTIMIZER_SEARCH_GENERATIONS = 15
    settings.OPTIMIZER_SEARCH_POPULATION = 80
    settings.OPTIMIZER_MIN_REVIEWS = 100
    settings.OPTIMIZER_BOOTSTRAP = 12
    settings.OPTIMIZER_TRIALS = 0
    settings.OPTIMIZER_REPORT_DIR = tmp_path / "reports"
