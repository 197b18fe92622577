"""Admin for consumer products, read-only: only register_consumer_product writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_celery_results import admin as celery_results_admin
from django_celery_results.models import GroupResult, TaskResult

from gaveurs.admin import LotAdmin
from gaveurs.audit import AuditedAdmin
from gaveurs.models import Lot
from traceability import labels, qr
from traceability.auth import api_token_revoke
from traceability.models import (
    ApiToken,
    ConsumerProduct,
    ForgedScanAttempt,
    LedgerHead,
    LedgerVerification,
    ProductScanStats,
    ProductSequence,
    ScanAlert,
    ScanEvent,
)


class ConsumerProductInline(admin.TabularInline):
    model = ConsumerProduct
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["product_id", "sqal_sample_id", "fusion_grade", "fusion_score", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        # Products are registered only through register_consumer_product.
        return False


class LotWithProductsAdmin(LotAdmin):
    """The lot page of gaveurs, with the lot's products listed (products are this app's)."""

    inlines = [*LotAdmin.inlines, ConsumerProductInline]


admin.site.unregister(Lot)
admin.site.register(Lot, LotWithProductsAdmin)


@admin.register(ConsumerProduct)
class ConsumerProductAdmin(admin.ModelAdmin):
    list_display = [
        "product_id",
        "lot_code",
        "sqal_sample_id",
        "fusion_grade",
        "fusion_score",
        "is_compliant",
        "site_code",
        "created_at",
    ]
    list_filter = ["fusion_grade", "is_compliant", "site_code", "created_at"]
    search_fields = ["qr_code", "product_id", "gs1_serial", "lot_code", "sqal_sample_id"]
    date_hierarchy = "created_at"
    list_select_related = ["lot"]
    actions = ["print_labels"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + ["qr_image"]

    @admin.display(description=_("QR code"))
    def qr_image(self, obj: ConsumerProduct) -> str:
        if not obj.pk:
            return "-"
        svg, png = (
            reverse("traceability:product_qr", kwargs={"product_id": obj.product_id, "fmt": fmt})
            for fmt in ("svg", "png")
        )
        return format_html(
            '<img src="{}" width="180" height="180" alt="QR {}"><br>'
            '<a href="{}?download=1">SVG</a> · <a href="{}?download=1&amp;scale=10">PNG</a>'
            ' · <a href="{}" target="_blank" rel="noopener">{}</a>',
            svg,
            obj.product_id,
            svg,
            png,
            qr.scan_url(obj.qr_code),
            qr.scan_url(obj.qr_code),
        )

    @admin.action(description=_("Print QR labels (A4, 21 per page)"))
    def print_labels(self, request, queryset):
        return labels.label_sheet_response(request, queryset.order_by("product_id"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProductSequence)
class ProductSequenceAdmin(admin.ModelAdmin):
    list_display = ["site_code", "day", "last_value"]
    list_filter = ["site_code"]
    date_hierarchy = "day"

    def get_readonly_fields(self, request, obj=None):
        return ["site_code", "day", "last_value"]

    def has_add_permission(self, request) -> bool:
        return False


# --- Tamper-evident ledger: verification results and signed heads (read-only) ---------------


@admin.register(LedgerVerification)
class LedgerVerificationAdmin(admin.ModelAdmin):
    """The outcome of each ``manage.py verify_ledger`` run; the newest first."""

    list_display = ["started_at", "ok", "tree_size", "heads_checked", "summary"]
    list_filter = ["ok"]
    date_hierarchy = "started_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LedgerHead)
class LedgerHeadAdmin(admin.ModelAdmin):
    list_display = ["tree_size", "signed_at", "root_hex", "key_id"]
    readonly_fields = ["tree_size", "signed_at", "root_hex", "key_id", "timestamp_ms"]
    exclude = ["root_hash", "signature"]

    @admin.display(description=_("signed at"))
    def signed_at(self, obj: LedgerHead):
        return datetime.fromtimestamp(obj.timestamp_ms / 1000, tz=UTC)

    @admin.display(description=_("root hash"))
    def root_hex(self, obj: LedgerHead) -> str:
        return bytes(obj.root_hash).hex()

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Staff API tokens: created with ``manage.py create_api_token``, revoked here."""

    list_display = [
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    # Scopes are fixed when a token is made (create_api_token --scope): a new token for new rights.
    readonly_fields = ["user", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)


# --- Scans: counters, events, copied-label alerts, forged codes (read-only but alerts) ------


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProductScanStats)
class ProductScanStatsAdmin(ReadOnlyAdmin):
    list_display = [
        "product",
        "scan_count",
        "distinct_clients",
        "first_scanned_at",
        "last_scanned_at",
    ]
    search_fields = ["product__product_id", "product__lot_code"]
    list_select_related = ["product"]
    ordering = ["-scan_count"]
    date_hierarchy = "last_scanned_at"


@admin.register(ScanEvent)
class ScanEventAdmin(ReadOnlyAdmin):
    list_display = ["product", "scanned_at", "channel", "country", "place_source", "language"]
    list_filter = ["channel", "country", "place_source", "scanned_at"]
    search_fields = ["product__product_id"]
    list_select_related = ["product"]
    date_hierarchy = "scanned_at"


@admin.register(ScanAlert)
class ScanAlertAdmin(AuditedAdmin):
    list_display = [
        "product",
        "distinct_clients",
        "scan_count",
        "threshold",
        "raised_at",
        "is_resolved",
    ]
    list_filter = ["is_resolved", "raised_at"]
    search_fields = ["product__product_id", "product__lot_code"]
    list_select_related = ["product"]
    readonly_fields = ["product", "threshold", "distinct_clients", "scan_count", "raised_at"]
    fields = [
        "product",
        "threshold",
        "distinct_clients",
        "scan_count",
        "raised_at",
        "is_resolved",
        "resolution_note",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ForgedScanAttempt)
class ForgedScanAttemptAdmin(ReadOnlyAdmin):
    list_display = ["claimed_product_id", "attempted_at", "channel", "country", "code"]
    list_filter = ["channel", "country", "attempted_at"]
    search_fields = ["claimed_product_id", "code"]
    date_hierarchy = "attempted_at"


# --- Celery task results: written by the workers only -------------------------------------------
# django-celery-results' own admin offers "Add" and "Change": an added row with an empty task id
# made the next one a 500 (unique task_id), and an edited result would misreport a task. Staff
# read and delete them; nothing else writes them.


class ReadOnlyTaskResultAdmin(celery_results_admin.TaskResultAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyGroupResultAdmin(celery_results_admin.GroupResultAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


for _model, _admin in (
    (TaskResult, ReadOnlyTaskResultAdmin),
    (GroupResult, ReadOnlyGroupResultAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


# Recalls and withdrawals have their own module; importing it registers them.
from traceability import admin_recalls  # noqa: E402, F401
