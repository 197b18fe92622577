"""Admin for the producer domain: sites, producers, lots (with feeding records and products)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from gaveurs.audit import AuditedAdmin
from gaveurs.models import FeedingCurve, FeedingCurveDay, FeedingRecord, Gaveur, Lot, Site
from gaveurs.services import lot_assign_default_curve


@admin.register(Site)
class SiteAdmin(AuditedAdmin):
    list_display = ["code", "name", "region", "gtin", "gln"]
    search_fields = ["code", "name", "region"]


@admin.register(Gaveur)
class GaveurAdmin(AuditedAdmin):
    list_display = ["last_name", "first_name", "site", "email", "phone"]
    list_filter = ["site"]
    search_fields = ["last_name", "first_name", "email"]
    list_select_related = ["site"]


class FeedingCurveDayInline(admin.TabularInline):
    model = FeedingCurveDay
    extra = 0


@admin.register(FeedingCurve)
class FeedingCurveAdmin(AuditedAdmin):
    list_display = ["name", "is_reference", "created_at"]
    list_filter = ["is_reference"]
    search_fields = ["name"]
    inlines = [FeedingCurveDayInline]


class FeedingRecordInline(admin.TabularInline):
    model = FeedingRecord
    extra = 0
    fields = ["day", "meal", "planned_dose_g", "actual_dose_g", "mean_weight_g"]


@admin.register(Lot)
class LotAdmin(AuditedAdmin):
    list_display = [
        "code",
        "gaveur",
        "site",
        "status",
        "feeding_start",
        "planned_feeding_end",
        "duration_days",
        "itm",
        "mean_final_weight_g",
        "duck_count",
        "feeding_curve",
    ]
    list_filter = ["status", "site", "feeding_start"]
    search_fields = ["code", "gaveur__last_name", "gaveur__first_name"]
    date_hierarchy = "feeding_start"
    list_select_related = ["gaveur", "site", "feeding_curve"]
    autocomplete_fields = ["gaveur", "site"]
    readonly_fields = ["created_at", "curve_followed"]
    inlines = [FeedingRecordInline]

    @admin.display(description=_("Curve followed"))
    def curve_followed(self, obj: Lot) -> str:
        """Which feeding curve the lot follows, and where it came from (optimiser or reference)."""
        curve = obj.feeding_curve
        if curve is None:
            return _("None (no reference curve or approved optimised curve applied)")
        if curve.approved_at is not None:
            origin = _("%(source)s, %(scope)s, %(status)s") % {
                "source": curve.source or _("approved curve"),
                "scope": curve.scope_label,
                "status": _("retired") if curve.retired_at else _("approved"),
            }
        elif curve.is_reference:
            origin = _("reference curve")
        else:
            origin = _("curve chosen by hand")
        url = reverse("admin:gaveurs_feedingcurve_change", args=[curve.pk])
        return format_html('<a href="{}">{}</a> ({})', url, curve.name, origin)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change:
            # A new lot without a curve gets the one its producer/site follows (optimiser);
            # after the inlines, so meals entered by hand are kept.
            lot_assign_default_curve(lot=form.instance)


@admin.register(FeedingRecord)
class FeedingRecordAdmin(admin.ModelAdmin):
    list_display = ["lot", "day", "meal", "planned_dose_g", "actual_dose_g", "mean_weight_g"]
    list_filter = ["meal", "lot__site"]
    search_fields = ["lot__code"]
    list_select_related = ["lot"]
    autocomplete_fields = ["lot"]
