"""The curve model: which model predicts a curve's mean rating best, with honest intervals.

What the curve search asks. Chosen by evidence, every run:
0. Sites: each site's offset (how it rates the same curve, `site_offsets`) is taken off its
   lots' means first; a recommendation is for the average site.
1. Candidates, all fitted on lots (a lot's mean overall rating, weighted by its reviews):
   - `quadratic`: a response surface (degree 2, ridge penalty chosen by GCV) on the few shape
     features a producer decides (COMPACT_COLUMNS: duration, total maize, starting dose, late
     share, ramp roughness, morning share);
   - `gp`: a Gaussian process (ARD RBF + white noise, each lot's noise from its reviews) on
     the same features;
   - `boosting`: gradient boosting on every shape feature (SHAPE_COLUMNS);
   - `forest`: the seed's random forest on the per-day doses and the shape;
   - `average`: the mean of quadratic, gp and boosting;
   - `gp_five`: the Gaussian process fitted on the lots' mean of all five ratings (on the
     overall rating's scale), judged like the others against the overall rating.
2. Each is cross-validated on the same lot folds (a lot never sits on both sides), repeated
   on `repeats` shufflings. The score is where the choice matters: the error over all lots
   plus the error among the best-rated curves (the top quarter by the candidates' mean
   out-of-fold prediction). The lowest score wins; its product-level RMSE is what must beat
   the mean-rating baseline.
3. Calibration: out of fold, the lots' mean ratings are regressed on the winner's
   predictions; stated ratings are intercept + slope × prediction (a slope below 1 shrinks
   a model that spreads its predictions too far).
   Intervals: the winner is refitted on `boot` bootstrap samples of lots (hyper-parameters
   kept). A curve's uncertainty is the spread of those refits plus the model error the
   cross-validation saw beyond it (out-of-fold squared error, minus the rating noise of the
   lot means, minus the bootstrap variance at the lots); towards the edge of the support
   and beyond, plus a growing part of the spread of true ratings between the data's
   curves. The bench measures the coverage.
4. Support: a curve is inside the data when its standardised compact features lie within
   the lots' range (5 % slack) and its nearest lot is no farther than 1.25 × the 95th
   percentile of the lots' nearest-neighbour distances. Outside, a prediction is a guess.
5. The winner's curse: the search picks the curve the model rates highest, so the model's
   own figure for it is biased upwards. `optimism` estimates that bias by replaying the
   choice under each bootstrap refit (its own best candidate, judged by the full fit) and
   by cross-fitting (chosen on half the lots, judged by a model of the other half), and is
   never less than how much the model over-rated, out of fold, the tenth of the lots it
   rated best. The largest of the three is taken off.

Imported only by the optimizer's commands and services (numpy, scikit-learn).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from optimizer.dataset import COMPACT_COLUMNS, SHAPE_COLUMNS, Dataset, curve_features
from optimizer.learning import CvScore, make_forest, one_thread

CANDIDATES = ("quadratic", "gp", "boosting", "forest", "average", "gp_five")
AVERAGED = ("quadratic", "gp", "boosting")
Z80 = 1.2815515655446004  # two-sided 80 % normal quantile
# A GP's cost grows as n³: larger data is subsampled (deterministically), more so for the
# search of its kernel's hyper-parameters (hundreds of factorisations) than for a refit.
GP_MAX_LOTS = 400
GP_KERNEL_LOTS = 320
SELECT_MAX_LOTS = 1500  # beyond, candidates are compared on a sample of the lots
_COMPACT = [SHAPE_COLUMNS.index(c) for c in COMPACT_COLUMNS]
_GP_COLUMNS = _COMPACT


def _shape_part(features: np.ndarray) -> np.ndarray:
    return features[:, -len(SHAPE_COLUMNS) :]


class _Standard:
    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.std = np.where(std > 1e-9, std, 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.std


@dataclass
class _Fitted:
    """One fitted candidate: `predict(features)` where features = curve_features(...)."""

    name: str
    predict: Callable[[np.ndarray], np.ndarray]
    refit: Callable[[np.ndarray, np.ndarray, np.ndarray, int], _Fitted]


def _fit_quadratic(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int, alpha: float | None = None
) -> _Fitted:
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.preprocessing import PolynomialFeatures

    Z = _shape_part(X)[:, _COMPACT]
    scale = _Standard(Z)
    poly = PolynomialFeatures(degree=2, include_bias=False)
    P = poly.fit_transform(scale(Z))
    if alpha is None:
        model = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(P, y, sample_weight=w)
        alpha = float(model.alpha_)
    else:
        model = Ridge(alpha=alpha).fit(P, y, sample_weight=w)
    coef, intercept = model.coef_.copy(), float(model.intercept_)

    def predict(F: np.ndarray) -> np.ndarray:
        return poly.transform(scale(_shape_part(F)[:, _COMPACT])) @ coef + intercept

    return _Fitted("quadratic", predict, lambda X2, y2, w2, s: _fit_quadratic(X2, y2, w2, s, alpha))


def _fit_gp(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    seed: int,
    kernel=None,
    noise: float | None = None,
) -> _Fitted:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    limit = GP_KERNEL_LOTS if kernel is None else GP_MAX_LOTS
    if len(y) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), limit, replace=False))
        X, y, w = X[keep], y[keep], w[keep]
    Z = _shape_part(X)[:, _GP_COLUMNS]
    scale = _Standard(Z)
    y_mean, y_std = float(np.average(y, weights=w)), float(y.std()) or 1.0
    # Each lot mean carries the rating noise divided by its reviews (normalised units).
    noise_var = 0.5 if noise is None else noise
    alpha = noise_var / np.maximum(w, 1) / y_std**2
    if kernel is None:
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            length_scale=np.full(Z.shape[1], 2.0), length_scale_bounds=(0.1, 100.0)
        ) + WhiteKernel(0.05, (1e-5, 1.0))
        gp = GaussianProcessRegressor(kernel=kernel, alpha=alpha, random_state=seed)
    else:
        gp = GaussianProcessRegressor(kernel=kernel, alpha=alpha, optimizer=None)
    with warnings.catch_warnings():
        # A length scale at its bound only says that feature hardly matters: fine.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(scale(Z), (y - y_mean) / y_std)
    fitted_kernel = gp.kernel_

    def predict(F: np.ndarray) -> np.ndarray:
        return gp.predict(scale(_shape_part(F)[:, _GP_COLUMNS])) * y_std + y_mean

    return _Fitted(
        "gp", predict, lambda X2, y2, w2, s: _fit_gp(X2, y2, w2, s, fitted_kernel, noise_var)
    )


def _fit_boosting(X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> _Fitted:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=max(5, len(y) // 40),
        l2_regularization=1.0,
        # 32 bins are plenty for a few hundred lots, and binning with weights costs a
        # weighted percentile per bin and feature (255 bins: seconds per fit).
        max_bins=32,
        early_stopping=False,
        random_state=seed,
    ).fit(_shape_part(X), y, sample_weight=w)

    def predict(F: np.ndarray) -> np.ndarray:
        return model.predict(_shape_part(F))

    return _Fitted("boosting", predict, _fit_boosting)


def _fit_forest(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int, n_estimators: int = 40
) -> _Fitted:
    forest = make_forest(n_estimators=n_estimators, seed=seed, n_rows=len(y))
    forest.set_params(n_jobs=1)
    forest.fit(X, y, sample_weight=w)
    return _Fitted(
        "forest",
        forest.predict,
        lambda X2, y2, w2, s: _fit_forest(X2, y2, w2, s, max(20, n_estimators // 3)),
    )


def _average(members: list[_Fitted]) -> _Fitted:
    """The mean of several fitted models (refitted member by member)."""

    def predict(F: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(F) for m in members], axis=0)

    def refit(X2: np.ndarray, y2: np.ndarray, w2: np.ndarray, s: int) -> _Fitted:
        return _average([m.refit(X2, y2, w2, s) for m in members])

    return _Fitted("average", predict, refit)


_FITTERS = {
    "quadratic": _fit_quadratic,
    "gp": _fit_gp,
    "boosting": _fit_boosting,
    "forest": _fit_forest,
}


@dataclass
class Support:
    """Where the data is, in standardised compact-feature space (module doc, step 4)."""

    scale: _Standard
    low: np.ndarray
    high: np.ndarray
    nn: object
    threshold: float

    @classmethod
    def build(cls, features: np.ndarray) -> Support:
        from sklearn.neighbors import NearestNeighbors

        Z = _shape_part(features)[:, _COMPACT]
        scale = _Standard(Z)
        S = np.unique(scale(Z).round(9), axis=0)
        span = S.max(axis=0) - S.min(axis=0)
        nn = NearestNeighbors(n_neighbors=min(2, len(S))).fit(S)
        if len(S) > 1:
            dist, _ = nn.kneighbors(S)
            threshold = 1.25 * float(np.quantile(dist[:, 1], 0.95))
        else:
            threshold = 0.0
        return cls(
            scale, S.min(axis=0) - 0.05 * span, S.max(axis=0) + 0.05 * span, nn, threshold + 1e-6
        )

    def distance_ratio(self, features: np.ndarray, reach: float = 1.0) -> np.ndarray:
        """Nearest-lot distance over the threshold; ∞ outside the (widened) feature range."""
        S = self.scale(_shape_part(features)[:, _COMPACT])
        dist, _ = self.nn.kneighbors(S, n_neighbors=1)
        ratio = dist[:, 0] / self.threshold
        span = self.high - self.low
        slack = (reach - 1.0) * 0.5 * span
        inside = ((S >= self.low - slack) & (S <= self.high + slack)).all(axis=1)
        return np.where(inside, ratio, np.inf)


@dataclass
class Prediction:
    mean: float
    low: float
    high: float
    sd: float
    support_ratio: float

    @property
    def in_support(self) -> bool:
        return bool(self.support_ratio <= 1.0)

    def as_dict(self) -> dict:
        return {
            "mean": round(self.mean, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "sd": round(self.sd, 4),
            "support_ratio": None
            if not np.isfinite(self.support_ratio)
            else round(float(self.support_ratio), 3),
            "in_support": self.in_support,
        }


@dataclass
class CurveModel:
    """The selected model with its bootstrap refits, calibration and support."""

    name: str
    fitted: _Fitted
    slope: float
    intercept: float
    boot: list[_Fitted]
    bias_var: float
    noise_var: float
    signal_var: float
    top_bias: float
    support: Support
    cv: CvScore
    candidates: dict[str, dict] = field(default_factory=dict)
    feature_days: int = 0
    # The lots it learnt from (features, mean ratings, reviews), for cross-fitting.
    data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    seed: int = 0

    def features(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        return curve_features(doses, durations)

    def predict(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        return self.fitted.predict(self.features(doses, durations))

    def predict_boot(
        self, doses: np.ndarray, durations: np.ndarray, limit: int | None = None
    ) -> np.ndarray:
        """(len(boot), n) predictions of the bootstrap refits (the first `limit` ones)."""
        F = self.features(doses, durations)
        return np.stack([b.predict(F) for b in self.boot[:limit]])

    def sd(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        return np.sqrt(self.predict_boot(doses, durations).var(axis=0) + self.bias_var)

    def stated(self, raw: np.ndarray) -> np.ndarray:
        """What the run states for raw predictions: the calibrated rating (step 3)."""
        return self.intercept + self.slope * raw

    def predict_interval(
        self, doses: np.ndarray, durations: np.ndarray, *, shift: float = 0.0
    ) -> list[Prediction]:
        """Calibrated mean (minus `shift`, a searched curve's optimism), 80 % interval."""
        F = self.features(doses, durations)
        mean = self.stated(self.fitted.predict(F)) - shift
        boot = np.stack([b.predict(F) for b in self.boot])
        ratio = self.support.distance_ratio(F)
        # Towards the edge of the data and beyond, the refits agree for want of evidence
        # (they all fall back on the same trend): add the spread of true ratings between
        # curves, growing with the distance to the nearest lot, in full from the support's
        # distance on. (A quarter of it there, in full from twice that, left the search's
        # curve at the edge of a history of one practice above its interval in
        # `simulate_loop`'s first generation: it maximises the model, so it goes there.)
        edge = np.clip(np.nan_to_num(ratio, posinf=1.0), 0.0, 1.0)
        sd = np.sqrt(self.slope**2 * boot.var(axis=0) + self.bias_var + edge**2 * self.signal_var)
        return [
            Prediction(float(m), float(m - Z80 * s), float(m + Z80 * s), float(s), float(r))
            for m, s, r in zip(mean, sd, ratio, strict=True)
        ]

    def gain_interval(
        self,
        doses: np.ndarray,
        durations: np.ndarray,
        *,
        shift: float = 0.0,
    ) -> tuple[float, float, float]:
        """Gain of curve 0 over curve 1: mean and 80 % interval (refits judge both at once)."""
        F = self.features(doses, durations)
        mean = self.stated(self.fitted.predict(F))
        boot = np.stack([b.predict(F) for b in self.boot])
        gain = float(mean[0] - mean[1] - shift)
        sd = float(np.sqrt(self.slope**2 * (boot[:, 0] - boot[:, 1]).var() + self.bias_var))
        return gain, gain - Z80 * sd, gain + Z80 * sd

    def optimism(self, doses: np.ndarray, durations: np.ndarray) -> float:
        """Winner's-curse bias of the best candidate's prediction (module doc, step 5)."""
        if not len(doses) or not self.boot:
            return self.top_bias
        F = self.features(doses, durations)
        full = self.fitted.predict(F)
        gaps = []
        for b in self.boot:
            own = b.predict(F)
            best = int(np.argmax(own))
            gaps.append(own[best] - full[best])
        boot_optimism = self.slope * float(np.mean(gaps))
        return max(self.top_bias, boot_optimism, self.cross_fit_optimism(F))

    def cross_fit_optimism(self, F: np.ndarray, rounds: int = 3) -> float:
        """The choice replayed on half the lots and judged by a model of the other half.

        Half the data makes the choice's bias about √2 larger than with all of it; the
        estimate is scaled back by that factor.
        """
        if self.data is None:
            return 0.0
        X, y, w = self.data
        n = len(y)
        if n < 8:
            return 0.0
        rng = np.random.default_rng(self.seed + 104729)
        gaps = []
        for _ in range(rounds if n <= SELECT_MAX_LOTS else 1):
            order = rng.permutation(n)
            halves = (order[: n // 2], order[n // 2 :])
            for chooser, judge in (halves, halves[::-1]):
                a = self.fitted.refit(X[chooser], y[chooser], w[chooser], self.seed)
                b = self.fitted.refit(X[judge], y[judge], w[judge], self.seed)
                own = a.predict(F)
                best = int(np.argmax(own))
                gaps.append(own[best] - float(b.predict(F[best : best + 1])[0]))
        return max(0.0, self.slope * float(np.mean(gaps)) / np.sqrt(2))

    def as_dict(self) -> dict:
        return {
            "selected": self.name,
            "candidates": self.candidates,
            "bootstrap_refits": len(self.boot),
            "calibration": {"intercept": round(self.intercept, 4), "slope": round(self.slope, 4)},
            "model_error_sd": round(float(np.sqrt(self.bias_var)), 4),
            "top_bias": round(self.top_bias, 4),
            "rating_noise_sd": round(float(np.sqrt(self.noise_var)), 4),
            "support_threshold": round(self.support.threshold, 4),
        }


def _noise_var(dataset: Dataset) -> tuple[np.ndarray, float]:
    """(each lot's within-lot sum of squares, pooled within-lot variance) of the overall
    rating; lots in the order of dataset.lots."""
    rows = dataset.rows
    ratings = rows["overall_rating"].astype(float)
    lot_means = rows.groupby("lot_id")["overall_rating"].transform("mean")
    squares = ((ratings - lot_means) ** 2).groupby(rows["lot_id"]).sum()
    per_lot = squares.reindex(dataset.lots["lot_id"]).fillna(0.0).to_numpy()
    within = float(per_lot.sum())
    dof = len(rows) - rows["lot_id"].nunique()
    pooled = within / dof if dof > 0 else float(ratings.var() or 0.5)
    return per_lot, max(pooled, 1e-3)


def site_offsets(
    features: np.ndarray, y: np.ndarray, w: np.ndarray, sites: np.ndarray
) -> np.ndarray:
    """Each lot's site offset: how much better or worse its site rates the same curve.

    Sites are a nuisance (a recommendation is for the average site): a ridge of the
    quadratic surface on the compact shape plus one indicator per site (scaled up so the
    penalty barely touches it) separates the sites' levels from their curves. Offsets are
    centred on the lots' weighted mean (the average lot's site is 0) and shrunk towards 0
    by the site's number of lots. One site, or under 4 lots a site: all zeros.
    """
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import PolynomialFeatures

    names, index = np.unique(sites.astype(str), return_inverse=True)
    if len(names) < 2 or len(y) < 4 * len(names):
        return np.zeros(len(y))
    Z = _shape_part(features)[:, _COMPACT]
    P = PolynomialFeatures(degree=2, include_bias=False).fit_transform(_Standard(Z)(Z))
    dummies = np.eye(len(names))[index] * 10.0
    model = Ridge(alpha=1.0).fit(np.hstack([P, dummies]), y, sample_weight=w)
    level = model.coef_[-len(names) :] * 10.0
    weight = np.bincount(index, weights=w, minlength=len(names))
    level -= float(np.average(level, weights=weight))
    # Shrink by the site's number of lots (a handful of lots says little about a site).
    lots = np.bincount(index, minlength=len(names))
    level *= lots / (lots + 5.0)
    return level[index]


def _five_ratings(dataset: Dataset) -> tuple[np.ndarray, float]:
    """Lots' mean of the five ratings, on the overall rating's scale, and its pooled noise."""
    from optimizer.dataset import RATING_COLUMNS

    rows = dataset.rows
    five = rows[RATING_COLUMNS].astype(float).mean(axis=1)
    by_lot = five.groupby(rows["lot_id"])
    lot_mean = by_lot.mean().reindex(dataset.lots["lot_id"]).to_numpy()
    within = float(((five - by_lot.transform("mean")) ** 2).sum())
    dof = len(rows) - rows["lot_id"].nunique()
    noise = within / dof if dof > 0 else float(five.var() or 0.5)
    y = dataset.lots["mean_rating"].to_numpy(dtype=float)
    w = dataset.lots["reviews"].to_numpy(dtype=float)
    mx, my = np.average(lot_mean, weights=w), np.average(y, weights=w)
    sxx = float(np.average((lot_mean - mx) ** 2, weights=w))
    slope = float(np.average((lot_mean - mx) * (y - my), weights=w)) / sxx if sxx > 0 else 1.0
    slope = float(np.clip(slope, 0.2, 3.0))
    return my + slope * (lot_mean - mx), max(noise * slope**2, 1e-3)


def curve_model_select(
    dataset: Dataset,
    *,
    folds: int,
    seed: int,
    candidates: tuple[str, ...] = CANDIDATES,
    repeats: int = 2,
    boot: int = 30,
    n_estimators: int = 60,
) -> CurveModel:
    """Cross-validate the candidates, keep the best, refit it with bootstrap (module doc)."""
    with one_thread():
        return _select(
            dataset,
            folds=folds,
            seed=seed,
            candidates=candidates,
            repeats=repeats,
            boot=boot,
            n_estimators=n_estimators,
        )


def _select(
    dataset: Dataset,
    *,
    folds: int,
    seed: int,
    candidates: tuple[str, ...],
    repeats: int,
    boot: int,
    n_estimators: int,
) -> CurveModel:
    from sklearn.model_selection import KFold

    lots = dataset.lots
    X = dataset.lot_curve_features()
    y = lots["mean_rating"].to_numpy(dtype=float)
    w = lots["reviews"].to_numpy(dtype=float)
    lot_within, noise_var = _noise_var(dataset)
    # Sites rate alike curves differently: their offsets are taken out before modelling.
    sites = lots["site_code"].to_numpy() if "site_code" in lots else np.zeros(len(y))
    offsets = site_offsets(X, y, w, sites)
    y = y - offsets
    n = len(y)
    k = max(2, min(folds, n))
    # Plenty of lots: candidates are compared on a (deterministic) sample of them, one split;
    # the winner is fitted on all of them, with fewer bootstrap refits.
    selection = np.arange(n)
    if n > SELECT_MAX_LOTS:
        repeats = 1
        selection = np.sort(np.random.default_rng(seed).choice(n, SELECT_MAX_LOTS, replace=False))
        boot = max(8, min(boot, int(boot * SELECT_MAX_LOTS / n) + 1))

    # What each candidate learns from: the lots' mean overall rating, or, for `gp_five`, the
    # lots' mean of all five ratings put on the overall rating's scale (when the other four
    # ratings move with the overall one, they are more measurements of the same liking and
    # their mean is less noisy; cross-validation against the overall rating says whether).
    y5, noise5 = _five_ratings(dataset)
    y5 = y5 - site_offsets(X, y5, w, sites)
    target = {name: y for name in candidates}
    noise = {name: noise_var for name in candidates}
    if "gp_five" in candidates:
        target["gp_five"], noise["gp_five"] = y5, noise5
    full: dict[str, _Fitted] = {}

    def fit(name: str, Xt, yt, wt, s: int) -> _Fitted:
        if name in ("gp", "gp_five"):
            # The kernel's hyper-parameters are fitted once on all lots (the costly part);
            # folds and bootstrap refits keep them.
            if name not in full:
                full[name] = _fit_gp(X, target[name], w, seed, noise=noise[name])
            return full[name].refit(Xt, yt, wt, s)
        if name == "forest":
            return _fit_forest(Xt, yt, wt, s, n_estimators)
        if name == "average":
            return _average([fit(m, Xt, yt, wt, s) for m in AVERAGED])
        return _FITTERS[name](Xt, yt, wt, s)

    oof = {name: np.zeros((repeats, n)) for name in candidates}
    baseline = np.zeros((repeats, n))
    for r in range(repeats):
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed + r)
        for train, test in splitter.split(selection):
            train, test = selection[train], selection[test]
            baseline[r, test] = np.average(y[train], weights=w[train])
            for name in candidates:
                if name == "average" and all(m in candidates for m in AVERAGED):
                    continue  # the mean of its members' out-of-fold predictions, below
                model = fit(name, X[train], target[name][train], w[train], seed)
                oof[name][r, test] = model.predict(X[test])
    if "average" in candidates and all(m in candidates for m in AVERAGED):
        oof["average"] = np.mean([oof[m] for m in AVERAGED], axis=0)
    # From here on, scores are over the lots the candidates were compared on.
    oof = {name: values[:, selection] for name, values in oof.items()}
    baseline = baseline[:, selection]
    w_all = w
    y, w = y[selection], w[selection]
    within = float(lot_within[selection].sum())
    n_rows = int(w.sum())

    def product_rmse(pred: np.ndarray) -> float:
        sse = float(np.mean([(w * (y - p) ** 2).sum() for p in pred]))
        return float(np.sqrt((sse + within) / n_rows))

    consensus = np.mean([oof[name].mean(axis=0) for name in candidates], axis=0)
    top = consensus >= np.quantile(consensus, 0.75)
    scores: dict[str, dict] = {}
    for name in candidates:
        err = (oof[name] - y) ** 2
        rmse_lots = float(np.sqrt(np.mean([np.average(e, weights=w) for e in err])))
        rmse_top = float(np.sqrt(np.mean([np.average(e[top], weights=w[top]) for e in err])))
        scores[name] = {
            "rmse": round(product_rmse(oof[name]), 4),
            "rmse_lot_means": round(rmse_lots, 4),
            "rmse_top_quarter": round(rmse_top, 4),
            "score": round(rmse_lots + rmse_top, 4),
        }
    # Lowest score; a tie goes to the earlier (simpler) candidate.
    chosen = min(candidates, key=lambda name: (scores[name]["score"], candidates.index(name)))
    scores[chosen]["selected"] = True
    cv = CvScore(
        rmse_model=product_rmse(oof[chosen]),
        rmse_baseline=product_rmse(baseline),
        folds=k,
        rows=n_rows,
    )

    fitted = full.get(chosen) or fit(chosen, X, target[chosen], w_all, seed)
    rng = np.random.default_rng(seed)
    refits = []
    for b in range(boot):
        pick = rng.integers(0, n, n)
        refits.append(fitted.refit(X[pick], target[chosen][pick], w_all[pick], seed + 1 + b))
    # Calibration: out-of-fold, how the lots' mean ratings follow the predictions. A slope
    # below 1 means the model spreads its predictions too far (the best-predicted curves are
    # over-rated, the worst under-rated): stated ratings are a + b × prediction.
    pooled_oof, pooled_y = oof[chosen].ravel(), np.tile(y, repeats)
    pooled_w = np.tile(w, repeats)
    mx = np.average(pooled_oof, weights=pooled_w)
    my = np.average(pooled_y, weights=pooled_w)
    sxx = float(np.average((pooled_oof - mx) ** 2, weights=pooled_w))
    sxy = float(np.average((pooled_oof - mx) * (pooled_y - my), weights=pooled_w))
    slope = float(np.clip(sxy / sxx, 0.3, 1.1)) if sxx > 1e-12 else 1.0
    intercept = float(my - slope * mx)
    at = X[selection]
    at_lots = np.stack([r.predict(at) for r in refits]).var(axis=0).mean() if refits else 0.0
    calibrated = intercept + slope * oof[chosen]
    residual = float(np.mean([np.average((p - y) ** 2, weights=w) for p in calibrated]))
    lot_noise = float(np.average(noise_var / np.maximum(w, 1), weights=w))
    bias_var = max(0.0, residual - lot_noise - slope**2 * float(at_lots))
    # The lots the model rates best, out of fold: how much it over-rates them (after
    # calibration). A searched curve is at least as extreme: this is the least optimism.
    top = calibrated.mean(axis=0) >= np.quantile(calibrated.mean(axis=0), 0.9)
    top_bias = max(0.0, float(np.average((calibrated.mean(axis=0) - y)[top], weights=w[top])))
    # How far the true mean ratings of the data's curves spread (lot means minus their noise).
    spread = float(np.average((y - np.average(y, weights=w)) ** 2, weights=w))
    signal_var = max(spread - lot_noise, 0.05**2)
    return CurveModel(
        name=chosen,
        fitted=fitted,
        slope=slope,
        intercept=intercept,
        boot=refits,
        bias_var=bias_var,
        noise_var=noise_var,
        signal_var=signal_var,
        top_bias=top_bias,
        support=Support.build(X),
        cv=cv,
        candidates=scores,
        feature_days=dataset.feature_days,
        data=(X, target[chosen], w_all),
        seed=seed,
    )
