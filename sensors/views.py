"""Server-rendered pages of the sensors app: the staff live dashboard, and staff's answers to
its alerts (acknowledge, resolve: POST forms, CSRF-protected)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from sensors import alerts, live
from sensors.live import dashboard_state
from sensors.models import QualityAlert


@staff_member_required
@permission_required(live.LIVE_PERMISSION, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    state = dashboard_state()
    state["can_handle"] = request.user.has_perm(live.ALERT_PERMISSION)
    return render(request, "sensors/dashboard.html", state)


@require_POST
@staff_member_required
@permission_required(live.ALERT_PERMISSION, raise_exception=True)
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    alerts.alert_acknowledge(alert=get_object_or_404(QualityAlert, pk=pk), user=request.user)
    return redirect("sensors:dashboard")


@require_POST
@staff_member_required
@permission_required(live.ALERT_PERMISSION, raise_exception=True)
def alert_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(QualityAlert, pk=pk)
    if alert.status != QualityAlert.Status.RESOLVED:
        alerts.alert_resolve(alert=alert, user=request.user)
    return redirect("sensors:dashboard")
