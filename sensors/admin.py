"""Admin of the SQAL stations, their samples, quality thresholds and alerts.

A station's token is shown once, when it is created or regenerated, and only its hash is kept.
Stations sending without a lot are listed (filter and column, from their open ``no_lot`` alert);
staff attach those samples to a lot from the station (``<pk>/attach-lot/``, also linked from the
alert), which makes the eligible ones products through the normal registration path.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from pydantic_core import PydanticCustomError

from gaveurs.audit import AuditedAdmin
from gaveurs.models import Lot
from sensors import alerts, live, services
from sensors.alerts import NO_LOT_RULE
from sensors.models import Device, QualityAlert, QualityThreshold, SensorSample
from sensors.schemas import device_id_check


class DeviceForm(forms.ModelForm):
    regenerate_token = forms.BooleanField(
        label=_("Generate a new token"),
        required=False,
        help_text=_("The token is shown once after saving; the previous one stops working."),
    )

    class Meta:
        model = Device
        fields = [
            "device_id",
            "name",
            "site",
            "location",
            "assigned_lot",
            "lots_of_any_site",
            "is_active",
            "firmware_version",
            "mac_address",
        ]

    def clean_device_id(self) -> str:
        # The rule the station protocol applies to the ids stations send (sensors.schemas).
        try:
            return device_id_check(self.cleaned_data["device_id"])
        except PydanticCustomError as exc:
            raise forms.ValidationError(exc.message(), code=exc.type) from None


def _no_lot_alerts():
    return alerts.unresolved_no_lot_alerts().filter(device_id=OuterRef("device_id"))


class SendingWithoutLotFilter(admin.SimpleListFilter):
    title = _("sending without a lot")
    parameter_name = "without_lot"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes (open no_lot alert)")), ("no", _("No"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(Exists(_no_lot_alerts()))
        if self.value() == "no":
            return queryset.exclude(Exists(_no_lot_alerts()))
        return queryset


class AttachLotForm(forms.Form):
    lot = forms.ModelChoiceField(queryset=Lot.objects.select_related("site"), label=_("lot"))
    since = forms.DateTimeField(
        label=_("measured from"), required=False, help_text=_("Empty: from the first sample.")
    )
    until = forms.DateTimeField(
        label=_("measured until"), required=False, help_text=_("Empty: up to now.")
    )
    assign = forms.BooleanField(
        label=_("Also assign this lot to the station"),
        required=False,
        initial=True,
        help_text=_("Its next samples go to this lot, and its no_lot alert is resolved."),
    )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError(_("The start of the range is after its end."))
        return data


@admin.register(Device)
class DeviceAdmin(AuditedAdmin):
    form = DeviceForm
    list_display = [
        "device_id",
        "name",
        "site",
        "assigned_lot",
        "without_lot",
        "is_active",
        "has_token",
        "last_seen_at",
    ]
    list_filter = [SendingWithoutLotFilter, "is_active", "site"]
    search_fields = ["device_id", "name", "location", "assigned_lot__code"]
    autocomplete_fields = ["assigned_lot"]
    readonly_fields = ["last_seen_at", "created_at"]
    actions = ["regenerate_tokens"]

    @admin.display(boolean=True, description=_("token"))
    def has_token(self, obj: Device) -> bool:
        return obj.has_token

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        alerts = _no_lot_alerts()
        return (
            super()
            .get_queryset(request)
            .annotate(
                no_lot_count=Subquery(alerts.values("occurrences")[:1]),
                no_lot_last_seen=Subquery(alerts.values("last_seen_at")[:1]),
            )
        )

    @admin.display(description=_("samples without a lot"), ordering="no_lot_count")
    def without_lot(self, obj: Device) -> str:
        if not getattr(obj, "no_lot_count", None):
            return "—"
        return format_html(
            '{} <a href="{}">{}</a>',
            obj.no_lot_count,
            reverse("admin:sensors_device_attach_lot", args=[obj.pk]),
            _("attach to a lot"),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/attach-lot/",
                self.admin_site.admin_view(self.attach_lot_view),
                name="sensors_device_attach_lot",
            ),
            *super().get_urls(),
        ]

    def attach_lot_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Attach the station's samples without a lot, for a time range, to a lot (and assign
        the lot to the station): the eligible ones become products through registration."""
        device = get_object_or_404(Device, pk=pk)
        if not self.has_change_permission(request, device):
            raise PermissionDenied
        waiting = SensorSample.objects.filter(device_id=device.device_id, lot__isnull=True)
        form = AttachLotForm(
            request.POST or None, initial={"lot": device.assigned_lot_id, "assign": True}
        )
        if request.method == "POST" and form.is_valid():
            try:
                result = services.station_samples_attach_lot(
                    device=device,
                    lot=form.cleaned_data["lot"],
                    since=form.cleaned_data["since"],
                    until=form.cleaned_data["until"],
                    assign=form.cleaned_data["assign"],
                    user=request.user,
                )
            except services.DeviceRefused as exc:
                form.add_error("lot", exc.detail)
            else:
                messages.success(
                    request,
                    _(
                        "%(attached)d samples of %(station)s attached to lot %(lot)s; "
                        "%(requested)d products requested."
                    )
                    % {
                        "attached": result.attached,
                        "station": device.device_id,
                        "lot": form.cleaned_data["lot"].code,
                        "requested": result.products_requested,
                    },
                )
                return HttpResponseRedirect(
                    reverse("admin:sensors_device_change", args=[device.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": device,
            "title": _("Attach samples without a lot to a lot"),
            "form": form,
            "waiting": waiting.count(),
            "first": waiting.order_by("time").values_list("time", flat=True).first(),
            "last": waiting.order_by("-time").values_list("time", flat=True).first(),
        }
        return TemplateResponse(request, "sensors/admin/attach_lot.html", context)

    def save_model(self, request: HttpRequest, obj: Device, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or form.cleaned_data.get("regenerate_token"):
            token = services.device_issue_token(device=obj)
            self._show_token(request, obj, token)

    @admin.action(description=_("Generate new tokens (shown once)"))
    def regenerate_tokens(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset:
            self._show_token(request, device, services.device_issue_token(device=device))

    def _show_token(self, request: HttpRequest, device: Device, token: str) -> None:
        messages.warning(
            request,
            format_html(
                "{} <strong>{}</strong> : <code>{}</code> — {}",
                _("Token of station"),
                device.device_id,
                token,
                _("copy it now, it will not be shown again."),
            ),
        )


@admin.register(SensorSample)
class SensorSampleAdmin(admin.ModelAdmin):
    list_display = [
        "sample_id",
        "device",
        "time",
        "lot",
        "site_code",
        "fusion_grade",
        "fusion_score",
        "is_compliant",
    ]
    list_filter = ["fusion_grade", "is_compliant", "site_code", ("time", admin.DateFieldListFilter)]
    search_fields = ["sample_id", "device__device_id", "lot__code", "lot_abattage"]
    date_hierarchy = "time"
    list_select_related = ["lot", "device"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["sample_id", "device", "time", "received_at", "lot", "site_code"]}),
        (_("Pictures"), {"fields": ["pictures"]}),
        (
            _("Fusion"),
            {"fields": ["fusion_score", "fusion_grade", "is_compliant", "fill_conformity"]},
        ),
        (
            _("Time of flight (VL53L8CH)"),
            {
                "fields": [
                    "tof_volume_mm3",
                    "tof_surface_uniformity",
                    "tof_quality_score",
                    "tof_grade",
                ]
            },
        ),
        (
            _("Spectral (AS7341)"),
            {
                "fields": [
                    "spectral_channels",
                    "spectral_freshness_index",
                    "spectral_fat_quality_index",
                    "spectral_oxidation_index",
                    "spectral_quality_score",
                    "spectral_grade",
                ]
            },
        ),
        (
            _("Provenance"),
            {
                "fields": [
                    "lot_abattage",
                    "eleveur",
                    "provenance",
                    "firmware_version",
                    "temperature_c",
                    "humidity_percent",
                ]
            },
        ),
        (_("Message as received"), {"classes": ["collapse"], "fields": ["payload_pretty"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Measurements are evidence: nobody edits them, admin included.
        return [f.name for f in SensorSample._meta.fields] + ["pictures", "payload_pretty"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description=_("ToF heatmap and spectrum"))
    def pictures(self, obj: SensorSample) -> SafeString:
        return format_html(
            '<div style="display:flex;gap:2rem;align-items:flex-end">'
            "<figure>{}<figcaption>{}</figcaption></figure>"
            "<figure>{}<figcaption>{}</figcaption></figure>"
            "<figure>{}<figcaption>{}</figcaption></figure></div>",
            live.heatmap_svg(obj.distance_matrix, title="distance"),
            _("ToF distance 8×8 (mm)"),
            live.heatmap_svg(obj.reflectance_matrix, title="reflectance"),
            _("ToF reflectance 8×8"),
            live.spectrum_svg(obj.spectral_channels),
            _("AS7341 spectral channels"),
        )

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: SensorSample) -> SafeString:
        text = json.dumps(obj.payload, indent=1, ensure_ascii=False)
        if len(text) > 200_000:
            text = text[:200_000] + "\n…"
        return format_html('<pre style="max-height:30rem;overflow:auto">{}</pre>', text)


@admin.register(QualityThreshold)
class QualityThresholdAdmin(AuditedAdmin):
    list_display = ["rule", "metric", "operator", "value", "grade", "severity", "is_active"]
    list_editable = ["value", "severity", "is_active"]
    list_display_links = ["rule"]
    list_filter = ["is_active", "severity", "metric"]
    fields = ["metric", "operator", "value", "grade", "severity", "is_active", "description"]

    @admin.display(description=_("rule"))
    def rule(self, obj: QualityThreshold) -> str:
        return obj.rule


@admin.register(QualityAlert)
class QualityAlertAdmin(AuditedAdmin):
    list_display = [
        "last_seen_at",
        "rule",
        "device_id",
        "occurrences",
        "value",
        "severity",
        "sample",
        "lot",
        "status",
        "created_at",
        "attach",
    ]
    list_filter = ["status", "severity", "rule", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["sample__sample_id", "lot__code", "device_id", "rule"]
    date_hierarchy = "created_at"
    list_select_related = ["sample", "lot"]
    readonly_fields = [
        "sample",
        "lot",
        "device_id",
        "threshold",
        "rule",
        "metric",
        "value",
        "severity",
        "message",
        "created_at",
        "occurrences",
        "last_seen_at",
        "handled_at",
        "handled_by",
    ]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[QualityAlert]:
        station = Device.objects.filter(device_id=OuterRef("device_id"))
        return super().get_queryset(request).annotate(station_pk=Subquery(station.values("pk")))

    @admin.display(description=_("lot"))
    def attach(self, obj: QualityAlert) -> str:
        if obj.rule != NO_LOT_RULE or obj.status == QualityAlert.Status.RESOLVED:
            return ""
        if getattr(obj, "station_pk", None) is None:
            return ""
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:sensors_device_attach_lot", args=[obj.station_pk]),
            _("attach samples to a lot"),
        )

    @admin.action(description=_("Acknowledge"))
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[QualityAlert]) -> None:
        for alert in queryset.filter(status=QualityAlert.Status.OPEN):
            alerts.alert_acknowledge(alert=alert, user=request.user)

    @admin.action(description=_("Mark as resolved"))
    def resolve(self, request: HttpRequest, queryset: QuerySet[QualityAlert]) -> None:
        for alert in queryset.exclude(status=QualityAlert.Status.RESOLVED):
            alerts.alert_resolve(alert=alert, user=request.user)
