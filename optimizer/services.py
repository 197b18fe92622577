"""Optimizer writes: runs of the learning loop, and the life of an optimised curve.

pandas / scikit-learn / matplotlib are imported inside `optimization_run` only: the admin
imports this module and web processes must not load them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from gaveurs.models import FeedingCurve, Gaveur, Site
from gaveurs.services import feeding_curve_approve, feeding_curve_for_new_lot, feeding_curve_retire
from optimizer.curves import CurveBounds, curve_from_json, curve_to_json, curve_total_g
from optimizer.models import CurrentSource, OptimizationRun, OptimizedCurve


class OptimizerError(Exception):
    """A request the optimizer cannot act on (unknown site, wrong status...)."""


@dataclass
class RunOutcome:
    run: OptimizationRun
    curve: OptimizedCurve | None
    lines: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        data = {
            "outcome": self.run.outcome,
            "message": self.run.message,
            "run_id": self.run.pk,
            "data": self.run.data_metrics,
            "model": self.run.model_metrics,
            "insights": self.run.insights,
            "report_dir": self.run.report_dir or None,
            "curve": None,
        }
        if self.curve is not None:
            c = self.curve
            data["curve"] = {
                "version": c.version,
                "scope": c.scope_label,
                "status": c.status,
                "duration_days": c.duration_days,
                "total_g": round(curve_total_g(curve_from_json(c.doses)), 1),
                "doses": c.doses,
                "predicted_rating": c.predicted_rating,
                "predicted_rating_std": c.predicted_rating_std,
                "predicted_interval_80": [c.predicted_low, c.predicted_high],
                "in_support": c.in_support,
                "current_curve": c.current_curve_name or None,
                "current_curve_source": c.current_curve_source or None,
                "current_predicted_rating": c.current_predicted_rating,
                "current_predicted_interval_80": [
                    c.current_predicted_low,
                    c.current_predicted_high,
                ],
                "current_in_support": c.current_in_support,
                "gain": c.gain,
                "gain_interval_80": [c.gain_low, c.gain_high],
                "trials": c.trials,
                "trial_share": c.trial_share,
            }
        return data


def _resolve_scope(
    site_code: str | None, gaveur_id: int | None
) -> tuple[Site | None, Gaveur | None]:
    if site_code and gaveur_id:
        raise OptimizerError("choose a site or a producer, not both")
    site = gaveur = None
    if site_code:
        site = Site.objects.filter(code=site_code).first()
        if site is None:
            raise OptimizerError(f"unknown site {site_code!r}")
    if gaveur_id:
        gaveur = Gaveur.objects.filter(pk=gaveur_id).first()
        if gaveur is None:
            raise OptimizerError(f"unknown producer (gaveur) id {gaveur_id}")
    return site, gaveur


@dataclass
class CurrentCurve:
    name: str
    source: str  # CurrentSource
    doses: list[tuple[float, float]]


def _curve_days(curve: FeedingCurve) -> list[tuple[float, float]]:
    return [(d.morning_dose_g, d.evening_dose_g) for d in curve.days.order_by("day")]


def current_curve_resolve(
    *, site: Site | None, gaveur: Gaveur | None, dataset=None
) -> CurrentCurve | None:
    """The curve a proposal is compared with, and where it comes from.

    1. What new lots of the scope follow now: its approved curve, else the reference curve.
    2. Without either, the FeedingCurve most of the data's lots followed.
    3. Else the planned curve most lots shared (at least two lots), else the most typical
       one (the lot curve nearest to all the others).
    """
    current = feeding_curve_for_new_lot(
        site_id=site.pk if site else None, gaveur_id=gaveur.pk if gaveur else None
    )
    if current is not None and current.days.exists():
        source = (
            CurrentSource.APPROVED
            if OptimizedCurve.objects.filter(feeding_curve=current).exists()
            else CurrentSource.REFERENCE
        )
        return CurrentCurve(current.name, source, _curve_days(current))
    if dataset is None or not len(dataset.lots):
        return None
    import numpy as np

    followed = dataset.lots["feeding_curve_id"].dropna()
    if len(followed):
        counts = followed.astype(int).value_counts()
        top = counts[counts == counts.max()].index.min()  # ties: the oldest curve
        curve = FeedingCurve.objects.filter(pk=int(top)).first()
        if curve is not None and curve.days.exists():
            return CurrentCurve(
                f"{curve.name} ({int(counts.max())} lots)",
                CurrentSource.MOST_FOLLOWED,
                _curve_days(curve),
            )
    days = dataset.lots["curve_days"].to_numpy()
    flat = dataset.curves.reshape(len(days), -1).round(1)
    unique, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    if counts.max() >= 2:
        index = int(np.nonzero(inverse.ravel() == int(np.argmax(counts)))[0][0])
        source, label = CurrentSource.MOST_FOLLOWED, f"{int(counts.max())} lots"
    else:
        sample = np.arange(len(flat))[:: max(1, len(flat) // 2000)]
        spread = np.linalg.norm(flat[sample][:, None] - flat[sample][None], axis=2).sum(axis=1)
        index = int(sample[int(np.argmin(spread))])
        source, label = CurrentSource.TYPICAL, "medoid"
    code = dataset.lots["lot_code"].iloc[index]
    doses = [(float(m), float(e)) for m, e in dataset.curves[index, : int(days[index])]]
    return CurrentCurve(f"curve of lot {code} ({label})", source, doses)


def optimization_run(
    *,
    site_code: str | None = None,
    gaveur_id: int | None = None,
    min_reviews: int | None = None,
    report_dir: Path | None = None,
    write_report: bool = True,
    seed: int | None = None,
    trials: int | None = None,
) -> RunOutcome:
    """Build the dataset, learn, and propose a curve when the data supports one.

    1. Refuse when fewer reviewed products than `min_reviews` (OPTIMIZER_MIN_REVIEWS).
    2. Choose the curve model by grouped cross-validation (optimizer.surrogate); refuse when
       its error does not beat the mean-rating baseline by OPTIMIZER_MIN_IMPROVEMENT.
    3. Insights (forest importances, correlations, good ranges) in every case with data.
    4. Search the feasible curves; store the best as a *proposed* OptimizedCurve with its
       predicted rating and interval, the current curve's, the gain between them (only when
       both lie within the data), trial curves, and the data and model metrics.
    """
    from optimizer.dataset import dataset_build
    from optimizer.learning import insights_compute, one_thread
    from optimizer.recommend import recommend
    from optimizer.surrogate import curve_model_select

    site, gaveur = _resolve_scope(site_code, gaveur_id)
    min_reviews = settings.OPTIMIZER_MIN_REVIEWS if min_reviews is None else min_reviews
    seed = settings.OPTIMIZER_RANDOM_SEED if seed is None else seed
    trials = settings.OPTIMIZER_TRIALS if trials is None else trials
    bounds = CurveBounds.from_settings()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    dataset = dataset_build(
        site_code=site.code if site else None,
        gaveur_id=gaveur.pk if gaveur else None,
        feature_days=bounds.max_days,
    )
    lap("dataset")
    data_metrics = {
        **dataset.counts,
        "min_reviews": min_reviews,
        "scope": gaveur and f"gaveur {gaveur.pk}" or (site and f"site {site.code}") or "all",
        "built_at": timezone.now().isoformat(),
    }
    run = OptimizationRun(site=site, gaveur=gaveur, data_metrics=data_metrics)
    lines = [
        f"Products: {dataset.counts['products_total']}, reviewed: "
        f"{dataset.counts['products_reviewed']}, rows used for training: "
        f"{dataset.counts['rows_used']} (from {dataset.counts['lots_used']} lots).",
    ]
    folds = settings.OPTIMIZER_CV_FOLDS
    n_estimators = settings.OPTIMIZER_N_ESTIMATORS
    current = current_curve_resolve(site=site, gaveur=gaveur, dataset=dataset)
    if current is not None:
        lines.append(
            f"Compared with: {current.name} ({CurrentSource(current.source).label}, "
            f"{len(current.doses)} days)."
        )
    else:
        lines.append("No current curve to compare with (no reference curve, no lot curve).")
    insights = found = blas = None
    curve = None

    if dataset.counts["rows_used"] < max(min_reviews, 1) or len(dataset.lots) < 2:
        run.outcome = OptimizationRun.Outcome.TOO_FEW_REVIEWS
        run.message = (
            f"Too few reviewed products: {dataset.counts['rows_used']} usable, at least "
            f"{min_reviews} needed. No curve is recommended."
        )
    else:
        blas = one_thread()
        model = curve_model_select(
            dataset,
            folds=folds,
            seed=seed,
            boot=settings.OPTIMIZER_BOOTSTRAP,
            n_estimators=max(30, n_estimators // 3),
        )
        lap("curve_model")
        insights = insights_compute(
            dataset,
            folds=folds,
            n_estimators=n_estimators,
            seed=seed,
            max_rows=settings.OPTIMIZER_MAX_TRAIN_ROWS,
        )
        lap("insights")
        run.model_metrics = {
            "curve_model_cv": model.cv.as_dict(),
            "curve_model": model.as_dict(),
            "insight_model_cv": insights.cv.as_dict() if insights.cv else None,
            "min_improvement": settings.OPTIMIZER_MIN_IMPROVEMENT,
            "n_estimators": n_estimators,
            "seed": seed,
        }
        run.insights = insights.as_dict()
        lines.append(
            f"Curve model: {model.name} (chosen by grouped CV among "
            f"{', '.join(model.candidates)}); CV RMSE {model.cv.rmse_model:.3f} vs mean-rating "
            f"baseline {model.cv.rmse_baseline:.3f} ({model.cv.improvement:+.1%})."
        )
        if insights.cv:
            lines.append(
                f"Insight model (forest, with SQAL) CV RMSE {insights.cv.rmse_model:.3f} vs "
                f"baseline {insights.cv.rmse_baseline:.3f} ({insights.cv.improvement:+.1%})."
            )
        if model.cv.improvement < settings.OPTIMIZER_MIN_IMPROVEMENT:
            run.outcome = OptimizationRun.Outcome.NO_SIGNAL
            run.message = (
                "The model does not beat the mean-rating baseline "
                f"(improvement {model.cv.improvement:+.1%}, at least "
                f"{settings.OPTIMIZER_MIN_IMPROVEMENT:.1%} needed): the ratings show no "
                "usable link to the feeding curve. No curve is recommended."
            )
        else:
            found = recommend(
                model=model,
                observed=dataset.curves,
                durations=dataset.lots["curve_days"].to_numpy(),
                bounds=bounds,
                max_distance=settings.OPTIMIZER_MAX_CURVE_DISTANCE,
                current=current.doses if current else None,
                population=settings.OPTIMIZER_SEARCH_POPULATION,
                generations=settings.OPTIMIZER_SEARCH_GENERATIONS,
                seed=seed,
                trials=trials,
            )
            lap("search")
            search = found.search
            run.model_metrics["search"] = {
                "evaluated": search.evaluated,
                "feasible": search.feasible,
                "bounds": bounds.as_dict(),
                "max_curve_distance": settings.OPTIMIZER_MAX_CURVE_DISTANCE,
                "durations_searched": [search.envelope["min_days"], search.envelope["max_days"]],
                "optimism": round(found.optimism, 4),
            }
            if found.curve is None:
                run.outcome = OptimizationRun.Outcome.NO_FEASIBLE_CURVE
                run.message = (
                    "No curve keeps the settings' bounds within the range of observed curves. "
                    "No curve is recommended."
                )
            else:
                run.outcome = OptimizationRun.Outcome.PROPOSED
                run.message = _proposal_message(found, current)
                if found.trials:
                    lines.append(_trials_message(found.trials))
    if blas is not None:
        blas.restore_original_limits()
    run.model_metrics["timings_s"] = timings
    with transaction.atomic():
        run.save()
        if run.outcome == OptimizationRun.Outcome.PROPOSED:
            version = (OptimizedCurve.objects.aggregate(v=Max("version"))["v"] or 0) + 1
            curve = OptimizedCurve.objects.create(
                version=version,
                site=site,
                gaveur=gaveur,
                run=run,
                data_metrics=run.data_metrics,
                model_metrics=run.model_metrics,
                **_curve_fields(found, current),
            )
    lines.append(run.message)
    if write_report:
        if report_dir is None:
            # Without --report, the report still goes where the admin finds it.
            report_dir = Path(settings.OPTIMIZER_REPORT_DIR) / f"run-{run.pk}"
        from optimizer.report import report_write

        report_write(
            directory=Path(report_dir),
            run=run,
            curve=curve,
            dataset=dataset,
            insights=insights,
            current_name=current.name if current else None,
            current_doses=current.doses if current else [],
        )
        lap("report")
        run.report_dir = str(Path(report_dir).resolve())
        run.save(update_fields=["report_dir", "model_metrics"])
        lines.append(f"Report: {Path(report_dir).resolve() / 'index.html'}")
    return RunOutcome(run=run, curve=curve, lines=lines)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _curve_fields(found, current: CurrentCurve | None) -> dict:
    p, c = found.predicted, found.current
    known = found.gain_known
    gain = found.gain if known else (None, None, None)
    return {
        "duration_days": len(found.curve),
        "doses": curve_to_json(found.curve),
        "predicted_rating": round(p.mean, 4),
        "predicted_rating_std": round(p.sd, 4),
        "predicted_low": _r(p.low),
        "predicted_high": _r(p.high),
        "in_support": p.in_support,
        "current_curve_name": current.name[:120] if current else "",
        "current_curve_source": current.source if current else "",
        "current_predicted_rating": _r(c.mean) if c else None,
        "current_predicted_low": _r(c.low) if c else None,
        "current_predicted_high": _r(c.high) if c else None,
        "current_in_support": c.in_support if c else None,
        "gain": _r(gain[0]),
        "gain_low": _r(gain[1]),
        "gain_high": _r(gain[2]),
        "trials": found.trials,
        "trial_share": settings.OPTIMIZER_TRIAL_SHARE if found.trials else 0.0,
    }


def _proposal_message(found, current: CurrentCurve | None) -> str:
    p, c = found.predicted, found.current
    text = (
        f"Recommended curve: {len(found.curve)} days, "
        f"{curve_total_g(found.curve):.0f} g, predicted rating {p.mean:.2f} "
        f"(80 % interval {p.low:.2f}–{p.high:.2f})."
    )
    if not p.in_support:
        text += " It lies outside the data the model learnt from: its rating is a guess."
    if current is None or c is None:
        return text + " No current curve to compare with."
    text += f" Current curve {current.name!r}: predicted {c.mean:.2f} ({c.low:.2f}–{c.high:.2f})"
    if not c.in_support:
        return (
            text + "; it lies outside the data the model learnt from, so its rating is "
            "extrapolated and no gain is stated."
        )
    if not found.gain_known:
        return text + "; no gain is stated (the recommended curve lies outside the data)."
    gain, low, high = found.gain
    return text + f"; gain {gain:+.2f} (80 % interval {low:+.2f} to {high:+.2f})."


def _trials_message(trials: list[dict]) -> str:
    share = settings.OPTIMIZER_TRIAL_SHARE
    parts = [
        f"{t['duration_days']} days, {t['total_g']:.0f} g, predicted "
        f"{t['predicted']['mean']:.2f} ({t['predicted']['low']:.2f}–{t['predicted']['high']:.2f}),"
        f" expected improvement {t['expected_improvement']:+.2f}"
        for t in trials
    ]
    return (
        f"Trial curves for {share:.0%} of the next lots (what they would teach the model): "
        + "; ".join(parts)
        + "."
    )


@transaction.atomic
def optimized_curve_approve(*, curve_id: int, user_id: int | None) -> OptimizedCurve:
    """Approve a proposed curve: it becomes the FeedingCurve new lots of its scope follow.

    The previously approved curve of the same scope is retired.
    """
    curve = OptimizedCurve.objects.select_for_update().get(pk=curve_id)
    if curve.status != OptimizedCurve.Status.PROPOSED:
        raise OptimizerError(
            f"curve v{curve.version} is {curve.status}: only a proposed curve can be approved"
        )
    feeding_curve = feeding_curve_approve(
        name=f"Optimised v{curve.version} ({curve.scope_label})",
        description=(
            f"Proposed by optimize_curves (run #{curve.run_id}); predicted rating "
            f"{curve.predicted_rating:.2f} ± {curve.predicted_rating_std:.2f}."
        ),
        doses=curve_from_json(curve.doses),
        site_id=curve.site_id,
        gaveur_id=curve.gaveur_id,
        source=f"optimised curve v{curve.version}",
    )
    now = feeding_curve.approved_at
    # One per scope: saved (not a bulk update) so the audit trail records its retirement.
    for previous in OptimizedCurve.objects.select_for_update().filter(
        status=OptimizedCurve.Status.APPROVED, site_id=curve.site_id, gaveur_id=curve.gaveur_id
    ):
        previous.status = OptimizedCurve.Status.RETIRED
        previous.retired_at = now
        previous.save(update_fields=["status", "retired_at"])
    curve.feeding_curve = feeding_curve
    curve.status = OptimizedCurve.Status.APPROVED
    curve.approved_at = now
    curve.approved_by_id = user_id
    if user_id is not None:
        curve._history_user = curve.approved_by  # the audit trail's "who", also outside a request
    curve.save(update_fields=["feeding_curve", "status", "approved_at", "approved_by"])
    return curve


@transaction.atomic
def optimized_curve_retire(*, curve_id: int) -> OptimizedCurve:
    """Retire a curve: new lots of its scope fall back to the next curve that applies."""
    curve = OptimizedCurve.objects.select_for_update().get(pk=curve_id)
    if curve.status == OptimizedCurve.Status.RETIRED:
        raise OptimizerError(f"curve v{curve.version} is already retired")
    curve.status = OptimizedCurve.Status.RETIRED
    curve.retired_at = timezone.now()
    curve.save(update_fields=["status", "retired_at"])
    if curve.feeding_curve_id is not None:
        feeding_curve_retire(curve_id=curve.feeding_curve_id)
    return curve
