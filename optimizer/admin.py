"""Admin: optimised curves (approve, retire) and optimisation runs with their reports."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib import admin, messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from optimizer.models import OptimizationRun, OptimizedCurve
from optimizer.services import OptimizerError, optimized_curve_approve, optimized_curve_retire

REPORT_FILE = re.compile(r"^(index\.html|[a-z0-9_]+\.png)$")


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
class OptimizedCurveAdmin(admin.ModelAdmin):
    list_display = [
        "version",
        "scope",
        "status",
        "duration_days",
        "predicted_rating",
        "predicted_rating_std",
        "gain",
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
        "predicted_rating",
        "predicted_rating_std",
        "current_curve_name",
        "current_predicted_rating",
        "gain",
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
