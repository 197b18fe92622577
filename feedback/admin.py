"""Admin for consumer feedback: moderation hides a review with a reason and keeps it."""

from __future__ import annotations

from django.contrib import admin

from feedback.models import ConsumerFeedback


@admin.register(ConsumerFeedback)
class ConsumerFeedbackAdmin(admin.ModelAdmin):
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
