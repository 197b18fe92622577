"""Admin for consumer feedback: moderation hides a review with a reason and keeps it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from feedback.models import ConsumerFeedback, LotReviewStats
from feedback.services import FeedbackError, feedback_hide, feedback_unhide
from gaveurs.audit import AuditedAdmin


@admin.register(ConsumerFeedback)
class ConsumerFeedbackAdmin(AuditedAdmin):
    list_display = [
        "product",
        "overall_rating",
        "taste_rating",
        "texture_rating",
        "appearance_rating",
        "value_rating",
        "consent_to_publish",
        "is_hidden",
        "created_at",
    ]
    list_filter = ["overall_rating", "is_hidden", "consent_to_publish", "created_at"]
    search_fields = ["product__product_id", "product__qr_code", "product__lot_code", "comment"]
    date_hierarchy = "created_at"
    list_select_related = ["product"]
    readonly_fields = [
        "product",
        "overall_rating",
        "taste_rating",
        "texture_rating",
        "appearance_rating",
        "value_rating",
        "comment",
        "consent_to_publish",
        "reward_points",
        "language",
        "created_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    actions = ["unhide_reviews"]

    def save_model(self, request, obj, form, change) -> None:
        """Moderation goes through feedback.services, which keeps the lot statistics in step."""
        if not change or not {"is_hidden", "hidden_reason"} & set(form.changed_data):
            return
        try:
            if obj.is_hidden:
                feedback_hide(feedback_id=obj.pk, reason=obj.hidden_reason)
            else:
                feedback_unhide(feedback_id=obj.pk)
        except FeedbackError as exc:
            messages.error(request, exc.detail)

    @admin.action(description=_("Show the selected reviews again"))
    def unhide_reviews(self, request, queryset) -> None:
        for pk in queryset.filter(is_hidden=True).values_list("pk", flat=True):
            feedback_unhide(feedback_id=pk)


# --- Scans: counts per product, copied-label alerts, forged codes (all written by services) ---


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LotReviewStats)
class LotReviewStatsAdmin(ReadOnlyAdmin):
    list_display = ["lot", "review_count", "average_overall", "updated_at"]
    search_fields = ["lot__code"]
    list_select_related = ["lot"]
