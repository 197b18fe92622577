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

from gaveurs.models import Gaveur, Site
from gaveurs.services import feeding_curve_approve, feeding_curve_for_new_lot, feeding_curve_retire
from optimizer.curves import CurveBounds, curve_from_json, curve_to_json, curve_total_g
from optimizer.models import OptimizationRun, OptimizedCurve


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
                "current_curve": c.current_curve_name or None,
                "current_predicted_rating": c.current_predicted_rating,
                "gain": c.gain,
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


def optimization_run(
    *,
    site_code: str | None = None,
    gaveur_id: int | None = None,
    min_reviews: int | None = None,
    report_dir: Path | None = None,
    write_report: bool = True,
    seed: int | None = None,
) -> RunOutcome:
    """Build the dataset, learn, and propose a curve when the data supports one.

    1. Refuse when fewer reviewed products than `min_reviews` (OPTIMIZER_MIN_REVIEWS).
    2. Fit the curve model; refuse when its grouped CV error does not beat the mean-rating
       baseline by OPTIMIZER_MIN_IMPROVEMENT.
    3. Insights (importances, correlations, good ranges) are computed in every case with data.
    4. Search the feasible curves; store the best as a *proposed* OptimizedCurve with the
       data and model metrics, and its predicted gain over the curve the scope follows now.
    """
    from optimizer.dataset import dataset_build
    from optimizer.learning import curve_model_fit, insights_compute
    from optimizer.search import curve_search, curves_predict

    site, gaveur = _resolve_scope(site_code, gaveur_id)
    min_reviews = settings.OPTIMIZER_MIN_REVIEWS if min_reviews is None else min_reviews
    seed = settings.OPTIMIZER_RANDOM_SEED if seed is None else seed
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

    current = feeding_curve_for_new_lot(
        site_id=site.pk if site else None, gaveur_id=gaveur.pk if gaveur else None
    )
    current_doses = (
        [(d.morning_dose_g, d.evening_dose_g) for d in current.days.order_by("day")]
        if current
        else []
    )
    model = insights = search = None
    curve = None

    if dataset.counts["rows_used"] < max(min_reviews, 1) or len(dataset.lots) < 2:
        run.outcome = OptimizationRun.Outcome.TOO_FEW_REVIEWS
        run.message = (
            f"Too few reviewed products: {dataset.counts['rows_used']} usable, at least "
            f"{min_reviews} needed. No curve is recommended."
        )
    else:
        model = curve_model_fit(dataset, folds=folds, n_estimators=n_estimators, seed=seed)
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
            "insight_model_cv": insights.cv.as_dict() if insights.cv else None,
            "min_improvement": settings.OPTIMIZER_MIN_IMPROVEMENT,
            "n_estimators": n_estimators,
            "seed": seed,
        }
        run.insights = insights.as_dict()
        lines.append(
            f"Curve model CV RMSE {model.cv.rmse_model:.3f} vs mean-rating baseline "
            f"{model.cv.rmse_baseline:.3f} ({model.cv.improvement:+.1%})."
        )
        if insights.cv:
            lines.append(
                f"Insight model (with SQAL) CV RMSE {insights.cv.rmse_model:.3f} vs baseline "
                f"{insights.cv.rmse_baseline:.3f} ({insights.cv.improvement:+.1%})."
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
            search = curve_search(
                model=model,
                observed=dataset.curves,
                durations=dataset.lots["curve_days"].to_numpy(),
                bounds=bounds,
                max_distance=settings.OPTIMIZER_MAX_CURVE_DISTANCE,
                seeds=[current_doses] if current_doses else None,
                population=settings.OPTIMIZER_SEARCH_POPULATION,
                generations=settings.OPTIMIZER_SEARCH_GENERATIONS,
                seed=seed,
            )
            lap("search")
            run.model_metrics["search"] = {
                "evaluated": search.evaluated,
                "feasible": search.feasible,
                "bounds": bounds.as_dict(),
                "max_curve_distance": settings.OPTIMIZER_MAX_CURVE_DISTANCE,
                "durations_searched": [search.envelope["min_days"], search.envelope["max_days"]],
            }
            if search.curve is None:
                run.outcome = OptimizationRun.Outcome.NO_FEASIBLE_CURVE
                run.message = (
                    "No curve keeps the settings' bounds within the range of observed curves. "
                    "No curve is recommended."
                )
            else:
                run.outcome = OptimizationRun.Outcome.PROPOSED
                (current_pred,) = curves_predict(
                    model, [current_doses] if current_doses else [[]], dataset.feature_days
                )
                current_rating = current_pred[0] if current_pred else None
                gain = search.predicted - current_rating if current_rating is not None else None
                run.message = (
                    f"Recommended curve: {len(search.curve)} days, predicted rating "
                    f"{search.predicted:.2f} ± {search.spread:.2f}"
                    + (
                        f", {gain:+.2f} over the current curve {current.name!r} "
                        f"({current_rating:.2f})."
                        if gain is not None
                        else " (no current curve to compare with)."
                    )
                )
    run.model_metrics["timings_s"] = timings
    with transaction.atomic():
        run.save()
        if run.outcome == OptimizationRun.Outcome.PROPOSED:
            version = (OptimizedCurve.objects.aggregate(v=Max("version"))["v"] or 0) + 1
            curve = OptimizedCurve.objects.create(
                version=version,
                site=site,
                gaveur=gaveur,
                duration_days=len(search.curve),
                doses=curve_to_json(search.curve),
                predicted_rating=round(search.predicted, 4),
                predicted_rating_std=round(search.spread, 4),
                current_curve_name=current.name if current else "",
                current_predicted_rating=None
                if current_rating is None
                else round(current_rating, 4),
                gain=None if gain is None else round(gain, 4),
                data_metrics=run.data_metrics,
                model_metrics=run.model_metrics,
                run=run,
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
            current_doses=current_doses,
        )
        lap("report")
        run.report_dir = str(Path(report_dir).resolve())
        run.save(update_fields=["report_dir", "model_metrics"])
        lines.append(f"Report: {Path(report_dir).resolve() / 'index.html'}")
    return RunOutcome(run=run, curve=curve, lines=lines)


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
    OptimizedCurve.objects.filter(
        status=OptimizedCurve.Status.APPROVED, site_id=curve.site_id, gaveur_id=curve.gaveur_id
    ).update(status=OptimizedCurve.Status.RETIRED, retired_at=now)
    curve.feeding_curve = feeding_curve
    curve.status = OptimizedCurve.Status.APPROVED
    curve.approved_at = now
    curve.approved_by_id = user_id
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
