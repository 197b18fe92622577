"""Admin: optimised curves (approve, retire) and optimisation runs with their reports."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib import admin, messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from gaveurs.audit import AuditedAdmin
from optimizer.models import OptimizationRun, OptimizedCurve
from optimizer.services import OptimizerError, optimized_curve_approve, optimized_curve_retire

REPORT_FILE = re.compile(r"^(index\.html|[a-z0-9_]+\.png)$")


def _interval(mean: float, low: float | None, high: float | None, *, signed: bool = False) -> str:
    """ "3,84 (3,51–4,17)" in the active language; the interval only when known."""

    def fmt(value: float) -> str:
        text = number_format(value, 2)
        return f"+{text}" if signed and value > 0 else text

    if low is None or high is None:
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(low)} – {fmt(high)})"


def _report_link(run: OptimizationRun | None):
    if run is None or not run.report_dir:
        return "—"
    url = reverse("admin:optimizer_optimizationrun_report", args=[run.pk, "index.html"])
    return format_html('<a href="{}" target="_blank">{}</a>', url, _("open report"))


def latest_report_run() -> OptimizationRun | None:
    return OptimizationRun.objects.exclude(report_dir="").order_by("-created_at", "-pk").first()


def _latest_report_context(extra_context: dict | None) -> dict:
    """The changelists show a link to the latest report (when there is one)."""
    context = dict(extra_context or {})
    run = latest_report_run()
    if run is not None:
        context["latest_report_url"] = reverse(
            "admin:optimizer_optimizationrun_report", args=[run.pk, "index.html"]
        )
        context["latest_report_run"] = run
    return context


@admin.register(OptimizedCurve)
class OptimizedCurveAdmin(AuditedAdmin):
    list_display = [
        "version",
        "scope",
        "status",
        "duration_days",
        "predicted_with_interval",
        "gain_with_interval",
        "current_curve_name",
        "created_at",
        "approved_at",
        "report",
    ]
    list_filter = ["status", "site"]
    actions = ["approve", "retire"]
    readonly_fields = [
        "version",
        "site",
        "gaveur",
        "status",
        "duration_days",
        "doses_table",
        "predicted_with_interval",
        "predicted_rating_std",
        "in_support",
        "current_curve_name",
        "current_curve_source",
        "current_with_interval",
        "current_in_support",
        "gain_with_interval",
        "trials_table",
        "trial_share",
        "data_metrics",
        "model_metrics",
        "run",
        "report",
        "feeding_curve",
        "created_at",
        "approved_at",
        "approved_by",
        "retired_at",
    ]
    exclude = ["doses"]
    list_select_related = ["site", "gaveur", "run"]
    change_list_template = "admin/optimizer/optimizedcurve/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # curves come from optimize_curves

    @admin.display(description=_("scope"))
    def scope(self, obj: OptimizedCurve) -> str:
        return obj.scope_label

    @admin.display(description=_("report"))
    def report(self, obj: OptimizedCurve):
        return _report_link(obj.run)

    # xgettext:no-python-format (a percent sign, not a placeholder)
    @admin.display(description=_("predicted rating (80 % interval)"))
    def predicted_with_interval(self, obj: OptimizedCurve):
        text = _interval(obj.predicted_rating, obj.predicted_low, obj.predicted_high)
        if not obj.in_support:
            return format_html("{} — <strong>{}</strong>", text, _("outside the data"))
        return text

    # xgettext:no-python-format (a percent sign, not a placeholder)
    @admin.display(description=_("current curve: predicted rating (80 % interval)"))
    def current_with_interval(self, obj: OptimizedCurve):
        if obj.current_predicted_rating is None:
            return "—"
        text = _interval(
            obj.current_predicted_rating, obj.current_predicted_low, obj.current_predicted_high
        )
        if obj.current_in_support is False:
            return format_html(
                "{} — <strong>{}</strong>", text, _("outside the data: extrapolated")
            )
        return text

    # xgettext:no-python-format (a percent sign, not a placeholder)
    @admin.display(description=_("predicted gain (80 % interval)"))
    def gain_with_interval(self, obj: OptimizedCurve):
        if obj.gain is None:
            if obj.current_in_support is False or not obj.in_support:
                return _("not stated (a curve lies outside the data)")
            return "—"
        return _interval(obj.gain, obj.gain_low, obj.gain_high, signed=True)

    @admin.display(description=_("trial curves"))
    def trials_table(self, obj: OptimizedCurve):
        if not obj.trials:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    i,
                    t["duration_days"],
                    number_format(t["total_g"], 0),
                    _interval(
                        t["predicted"]["mean"], t["predicted"]["low"], t["predicted"]["high"]
                    ),
                    number_format(t["expected_improvement"], 3),
                )
                for i, t in enumerate(obj.trials, start=1)
            ),
        )
        return format_html(
            "<p>{}</p><table><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"
            "{}</table>",
            _("For %(share)s of the next lots.")
            % {"share": number_format(obj.trial_share * 100, 0) + " %"},
            _("days"),
            _("total (g)"),
            # xgettext:no-python-format (a percent sign, not a placeholder)
            _("predicted rating (80 % interval)"),
            _("expected improvement"),
            rows,
        )

    @admin.display(description=_("doses (g per duck)"))
    def doses_table(self, obj: OptimizedCurve):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((d["day"], d["morning_g"], d["evening_g"]) for d in obj.doses),
        )
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
            _("day"),
            _("morning"),
            _("evening"),
            rows,
        )

    @admin.action(description=_("Approve: new lots of the scope follow this curve"))
    def approve(self, request: HttpRequest, queryset) -> None:
        for curve in queryset.order_by("version"):
            try:
                optimized_curve_approve(curve_id=curve.pk, user_id=request.user.pk)
            except OptimizerError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Curve v%(v)s approved: new lots of %(scope)s follow it.")
                    % {"v": curve.version, "scope": curve.scope_label},
                    messages.SUCCESS,
                )

    @admin.action(description=_("Retire"))
    def retire(self, request: HttpRequest, queryset) -> None:
        for curve in queryset:
            try:
                optimized_curve_retire(curve_id=curve.pk)
            except OptimizerError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(request, _latest_report_context(extra_context))


@admin.register(OptimizationRun)
class OptimizationRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "created_at", "outcome", "scope", "rows_used", "report"]
    list_filter = ["outcome"]
    readonly_fields = [
        "created_at",
        "site",
        "gaveur",
        "outcome",
        "message",
        "data_metrics",
        "model_metrics",
        "insights",
        "report_dir",
        "report",
    ]
    change_list_template = "admin/optimizer/optimizedcurve/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=_("scope"))
    def scope(self, obj: OptimizationRun) -> str:
        return obj.data_metrics.get("scope", "")

    @admin.display(description=_("rows used"))
    def rows_used(self, obj: OptimizationRun):
        return obj.data_metrics.get("rows_used")

    @admin.display(description=_("report"))
    def report(self, obj: OptimizationRun):
        return _report_link(obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(request, _latest_report_context(extra_context))

    def get_urls(self):
        urls = [
            path(
                "latest-report/",
                self.admin_site.admin_view(self.latest_report_view),
                name="optimizer_optimizationrun_latest_report",
            ),
            path(
                "<int:run_id>/report/<str:name>",
                self.admin_site.admin_view(self.report_file_view),
                name="optimizer_optimizationrun_report",
            ),
        ]
        return urls + super().get_urls()

    def latest_report_view(self, request: HttpRequest):
        run = latest_report_run()
        if run is None:
            raise Http404("No optimisation report yet.")
        return HttpResponseRedirect(
            reverse("admin:optimizer_optimizationrun_report", args=[run.pk, "index.html"])
        )

    def report_file_view(self, request: HttpRequest, run_id: int, name: str):
        if not self.has_view_permission(request):
            raise Http404
        run = OptimizationRun.objects.filter(pk=run_id).exclude(report_dir="").first()
        if run is None or not REPORT_FILE.match(name):
            raise Http404("No such report file.")
        file_path = Path(run.report_dir) / name
        if not file_path.is_file():
            raise Http404("The report file is missing on disk.")
        content_type = "text/html; charset=utf-8" if name.endswith(".html") else "image/png"
        return FileResponse(file_path.open("rb"), content_type=content_type)
