"""The feedback form of the scan page: validation only (the template renders the widgets)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from feedback.models import COMMENT_MAX_LENGTH

RATING_CHOICES = [(i, str(i)) for i in range(1, 6)]
RATING_LABELS = {
    "overall_rating": _("Note globale"),
    "taste_rating": _("Goût"),
    "texture_rating": _("Texture"),
    "appearance_rating": _("Aspect"),
    "value_rating": _("Rapport qualité-prix"),
}
HONEYPOT_FIELD = "website"


class FeedbackForm(forms.Form):
    overall_rating = forms.TypedChoiceField(
        label=RATING_LABELS["overall_rating"], choices=RATING_CHOICES, coerce=int
    )
    taste_rating = forms.TypedChoiceField(
        label=RATING_LABELS["taste_rating"], choices=RATING_CHOICES, coerce=int
    )
    texture_rating = forms.TypedChoiceField(
        label=RATING_LABELS["texture_rating"], choices=RATING_CHOICES, coerce=int
    )
    appearance_rating = forms.TypedChoiceField(
        label=RATING_LABELS["appearance_rating"], choices=RATING_CHOICES, coerce=int
    )
    value_rating = forms.TypedChoiceField(
        label=RATING_LABELS["value_rating"], choices=RATING_CHOICES, coerce=int
    )
    comment = forms.CharField(
        label=_("Commentaire (facultatif)"), required=False, max_length=COMMENT_MAX_LENGTH
    )
    consent_to_publish = forms.BooleanField(
        label=_("J'accepte que mon commentaire soit publié, sans mon nom."), required=False
    )
    # Honeypot: hidden from people, filled in by naive bots.
    website = forms.CharField(required=False)

    def is_bot(self) -> bool:
        return bool(self.data.get(HONEYPOT_FIELD, "").strip())

    def rating_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in RATING_LABELS]
