"""The HTML report of an optimisation run, with PNG plots (matplotlib, Agg backend).

Files: index.html, importance.png, rating_vs_top.png, curve.png (when a curve is proposed).
Written in the project's language (LANGUAGE_CODE, or `language`): words through Django's
i18n, numbers (in the page and on the plots) with that language's decimal separator.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import formats, translation

from optimizer.curves import curve_from_json
from optimizer.dataset import Dataset
from optimizer.learning import Insights
from optimizer.models import OptimizationRun, OptimizedCurve

REPORT_FILES = ("index.html", "importance.png", "rating_vs_top.png", "curve.png")
JITTER = 0.15  # ratings are whole numbers: spread the points so that their density shows


def _number(value: float, places: int = 2) -> str:
    """A number the way the active language writes it (3,84 in French, 3.84 in English)."""
    return formats.number_format(round(float(value), places), places)


def mean_line(values, ratings) -> tuple[list[float], list[float]]:
    """The mean rating along a column: by value when it takes few values (duration in days),
    else by eight bins of equal counts."""
    import pandas as pd

    frame = pd.DataFrame({"x": values, "y": ratings}).dropna()
    if frame.empty:
        return [], []
    if frame["x"].nunique() <= 12:
        means = frame.groupby("x")["y"].mean().sort_index()
        return [float(x) for x in means.index], [float(m) for m in means]
    bins = pd.qcut(frame["x"], q=8, duplicates="drop")
    means = frame.groupby(bins, observed=True)["y"].mean()
    return [float(i.mid) for i in means.index], [float(m) for m in means]


def _plots(
    directory: Path,
    dataset: Dataset,
    insights: Insights | None,
    curve: OptimizedCurve | None,
    current_name: str | None,
    current_doses: list[tuple[float, float]],
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    written: list[str] = []
    if insights and insights.permutation_importances:
        items = sorted(insights.permutation_importances.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.barh([k for k, _ in items], [v for _, v in items], color="#7a4b2a")
        ax.set_xlabel("Permutation importance (increase of squared error)")
        ax.set_title("What the overall rating depends on")
        fig.tight_layout()
        fig.savefig(directory / "importance.png", dpi=90)
        plt.close(fig)
        written.append("importance.png")

        top = [k for k, _ in sorted(items, key=lambda kv: -kv[1])[:3]]
        fig, axes = plt.subplots(1, len(top), figsize=(4 * len(top), 3.6), squeeze=False)
        rows = dataset.rows
        if len(rows) > 5000:
            rows = rows.sample(n=5000, random_state=0)
        import numpy as np

        jitter = np.random.default_rng(0)
        for ax, column in zip(axes[0], top, strict=True):
            binned = rows[[column, "overall_rating"]].dropna()
            ratings = binned["overall_rating"].to_numpy(dtype=float)
            ax.scatter(
                binned[column],
                ratings + jitter.uniform(-JITTER, JITTER, len(ratings)),
                s=4,
                alpha=0.25,
            )
            centers, means = mean_line(binned[column], binned["overall_rating"])
            if len(means):
                ax.plot(centers, means, color="#c0392b", marker="o")
            ax.set_xlabel(column)
            ax.set_ylabel("overall rating")
            ax.xaxis.set_major_formatter(
                matplotlib.ticker.FuncFormatter(lambda x, _pos: formats.number_format(x))
            )
        fig.suptitle("Rating against the top parameters (red: mean by bin)")
        fig.tight_layout()
        fig.savefig(directory / "rating_vs_top.png", dpi=90)
        plt.close(fig)
        written.append("rating_vs_top.png")

    if curve is not None:
        proposed = curve_from_json(curve.doses)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(
            range(1, len(proposed) + 1),
            [m + e for m, e in proposed],
            marker="o",
            color="#27ae60",
            label=f"recommended v{curve.version} (predicted {_number(curve.predicted_rating)})",
        )
        if current_doses:
            label = f"current: {current_name}"
            if curve.current_predicted_rating is not None:
                label += f" (predicted {_number(curve.current_predicted_rating)})"
            ax.plot(
                range(1, len(current_doses) + 1),
                [m + e for m, e in current_doses],
                marker="s",
                color="#7f8c8d",
                label=label,
            )
        for i, trial in enumerate(curve.trials or [], start=1):
            days = curve_from_json(trial["doses"])
            ax.plot(
                range(1, len(days) + 1),
                [m + e for m, e in days],
                linestyle="--",
                color="#e67e22",
                alpha=0.8,
                label=f"trial {i}" if i == 1 else None,
            )
        ax.set_xlabel("day")
        ax.set_ylabel("daily dose (g per duck)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(directory / "curve.png", dpi=90)
        plt.close(fig)
        written.append("curve.png")
    return written


def report_write(
    *,
    directory: Path,
    run: OptimizationRun,
    curve: OptimizedCurve | None,
    dataset: Dataset,
    insights: Insights | None,
    current_name: str | None,
    current_doses: list[tuple[float, float]],
    language: str | None = None,
) -> Path:
    language = language or settings.LANGUAGE_CODE
    with translation.override(language):
        return _report_write(
            directory, run, curve, dataset, insights, current_name, current_doses, language
        )


def _report_write(
    directory: Path,
    run: OptimizationRun,
    curve: OptimizedCurve | None,
    dataset: Dataset,
    insights: Insights | None,
    current_name: str | None,
    current_doses: list[tuple[float, float]],
    language: str,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        (directory / name).unlink(missing_ok=True)
    images = _plots(directory, dataset, insights, curve, current_name, current_doses)
    importances = []
    if insights:
        for column in sorted(
            insights.columns, key=lambda c: -insights.permutation_importances.get(c, 0.0)
        ):
            importances.append(
                {
                    "name": column,
                    "permutation": insights.permutation_importances.get(column),
                    "impurity": insights.impurity_importances.get(column),
                    "spearman": insights.spearman.get(column),
                    "range": insights.good_ranges.get(column),
                }
            )
    doses = []
    if curve is not None:
        for i, d in enumerate(curve.doses):
            cur = current_doses[i] if i < len(current_doses) else None
            doses.append({**d, "current": cur})
    html = render_to_string(
        "optimizer/report.html",
        {
            "run": run,
            "curve": curve,
            "doses": doses,
            "data": run.data_metrics,
            "model": run.model_metrics,
            "importances": importances,
            "images": images,
            "current_name": current_name,
            "trials": _trials_rows(curve),
            "candidates": (run.model_metrics or {}).get("curve_model", {}).get("candidates", {}),
            "LANGUAGE_CODE": language,
        },
    )
    path = directory / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def _trials_rows(curve: OptimizedCurve | None) -> list[dict]:
    if curve is None:
        return []
    return [
        {
            "index": i,
            "duration_days": t["duration_days"],
            "total_g": t["total_g"],
            "predicted": t["predicted"],
            "expected_improvement": t["expected_improvement"],
        }
        for i, t in enumerate(curve.trials or [], start=1)
    ]
