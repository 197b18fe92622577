"""Random forests on the dataset: what goes with good ratings, and the shared CV score.

The *insight model* is a random forest that sees the curve's shape, the lot's outcomes and
the SQAL scores. It gives the permutation importances shown in the report, and is scored by
cross-validation grouped by lot (a lot's products never sit on both sides of a split).

The *curve model* the search asks is chosen among several (the forest is one candidate) in
`optimizer.surrogate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.dataset import (
    PRODUCTION_COLUMNS,
    SQAL_COLUMNS,
    Dataset,
)

INSIGHT_COLUMNS = PRODUCTION_COLUMNS + SQAL_COLUMNS


def one_thread():
    """One BLAS / OpenMP thread for the optimizer's small factorisations and trees (on a busy
    machine several threads per process only wait for each other), as a context manager.

    threadpoolctl only limits libraries already loaded: SciPy's BLAS and scikit-learn's OpenMP
    are loaded on first import, so they are imported first. Otherwise the first run of a
    process (every `manage.py optimize_curves`) ran them on every core, several times slower
    on a loaded machine.
    """
    import scipy.linalg  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def make_forest(*, n_estimators: int, seed: int, n_rows: int):
    """A forest whose cost stays bounded on large data: each tree sees at most 1,500 rows.

    Leaves keep at least ~0.5 % of the rows (2 to 20), which also keeps noise out of the
    per-tree predictions whose spread is reported as the uncertainty.
    """
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=n_estimators,
        min_samples_leaf=max(2, min(20, n_rows // 200)),
        max_features=0.33,
        max_samples=min(1.0, 1500 / max(n_rows, 1)),
        n_jobs=-1,
        random_state=seed,
    )


def _cv_trees(n_estimators: int) -> int:
    """Cross-validation only compares errors: a third of the trees (at least 30) is enough."""
    return max(30, n_estimators // 3)


@dataclass
class CvScore:
    rmse_model: float
    rmse_baseline: float
    folds: int
    rows: int

    @property
    def improvement(self) -> float:
        if self.rmse_baseline == 0:
            return 0.0
        return 1 - self.rmse_model / self.rmse_baseline

    def as_dict(self) -> dict[str, float]:
        return {
            "rmse_model": round(self.rmse_model, 4),
            "rmse_baseline": round(self.rmse_baseline, 4),
            "improvement": round(self.improvement, 4),
            "folds": self.folds,
            "rows": self.rows,
        }


def _folds(n_groups: int, folds: int) -> int:
    return max(2, min(folds, n_groups))


@dataclass
class Insights:
    cv: CvScore | None
    permutation_importances: dict[str, float]
    impurity_importances: dict[str, float]
    spearman: dict[str, float]
    good_ranges: dict[str, dict[str, float]]
    columns: list[str]

    def as_dict(self) -> dict:
        return {
            "cv": self.cv.as_dict() if self.cv else None,
            "permutation_importances": self.permutation_importances,
            "impurity_importances": self.impurity_importances,
            "spearman": self.spearman,
            "good_ranges": self.good_ranges,
        }


def insights_compute(
    dataset: Dataset, *, folds: int, n_estimators: int, seed: int, max_rows: int
) -> Insights:
    """Permutation importances, Spearman correlations and the ranges that go with ratings ≥ 4."""
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit

    rows = dataset.rows
    columns = [c for c in INSIGHT_COLUMNS if c in rows and rows[c].notna().any()]
    y_all = rows["overall_rating"].astype(float)

    spearman = {}
    for column in columns:
        value = rows[column].astype(float).corr(y_all, method="spearman")
        spearman[column] = None if pd.isna(value) else round(float(value), 4)

    good = rows[rows["overall_rating"] >= 4]
    good_ranges: dict[str, dict[str, float]] = {}
    for column in columns:
        values = good[column].dropna().astype(float)
        if len(values):
            good_ranges[column] = {
                "p10": round(float(values.quantile(0.1)), 4),
                "median": round(float(values.median()), 4),
                "p90": round(float(values.quantile(0.9)), 4),
                "all_median": round(float(rows[column].dropna().astype(float).median()), 4),
                "n": len(values),
            }

    sample = rows
    if len(rows) > max_rows:
        sample = rows.sample(n=max_rows, random_state=seed)
    X = sample[columns].to_numpy(dtype=float)
    y = sample["overall_rating"].to_numpy(dtype=float)
    groups = sample["lot_id"].to_numpy()
    n_groups = len(np.unique(groups))
    if n_groups < 2 or not columns:
        return Insights(None, {}, {}, spearman, good_ranges, columns)

    k = _folds(n_groups, min(folds, 3))
    sse_model = sse_base = 0.0
    for train, test in GroupKFold(n_splits=k).split(X, y, groups):
        forest = make_forest(n_estimators=_cv_trees(n_estimators), seed=seed, n_rows=len(train))
        forest.fit(X[train], y[train])
        sse_model += float(((y[test] - forest.predict(X[test])) ** 2).sum())
        sse_base += float(((y[test] - y[train].mean()) ** 2).sum())
    cv = CvScore(
        rmse_model=float(np.sqrt(sse_model / len(y))),
        rmse_baseline=float(np.sqrt(sse_base / len(y))),
        folds=k,
        rows=len(y),
    )

    train, test = next(
        GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed).split(X, y, groups)
    )
    forest = make_forest(n_estimators=n_estimators, seed=seed, n_rows=len(train))
    forest.fit(X[train], y[train])
    test = test[:3000]
    result = permutation_importance(
        forest, X[test], y[test], n_repeats=4, random_state=seed, n_jobs=1
    )
    permutation = {
        c: round(float(v), 4) for c, v in zip(columns, result.importances_mean, strict=True)
    }
    impurity = {
        c: round(float(v), 4) for c, v in zip(columns, forest.feature_importances_, strict=True)
    }
    return Insights(cv, permutation, impurity, spearman, good_ranges, columns)
