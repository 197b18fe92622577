"""Server-rendered pages of the sensors app: the staff live dashboard."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sensors import live
from sensors.live import dashboard_state


@staff_member_required
@permission_required(live.LIVE_PERMISSION, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "sensors/dashboard.html", dashboard_state())
