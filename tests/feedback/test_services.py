"""feedback.services: lot statistics kept in step, moderation, what is kept of a client."""

from __future__ import annotations

import pytest

from feedback.models import ConsumerFeedback, LotReviewStats
from feedback.services import (
    FeedbackError,
    feedback_hide,
    feedback_unhide,
    lot_review_stats_rebuild,
)
from tests.factories import make_lot, make_product, review
from tests.support.integrity import assert_integrity
from traceability.scans import client_hash, coarse_place

pytestmark = pytest.mark.django_db


def sums(lot_id):
    s = LotReviewStats.objects.get(lot_id=lot_id)
    return (
        s.review_count,
        s.overall_sum,
        s.taste_sum,
        s.texture_sum,
        s.appearance_sum,
        s.value_sum,
    )


def test_the_running_sums_agree_with_a_full_recount():
    lot = make_lot()
    for stars in [1, 2, 5, 4]:
        review(make_product(lot=lot), overall_rating=stars, taste_rating=6 - stars)
    before = sums(lot.id)

    lot_review_stats_rebuild(lot_id=lot.id)

    assert sums(lot.id) == before == (4, 12, 12, 16, 20, 16)


def test_a_hidden_review_is_kept_but_leaves_the_figures_and_comes_back_when_shown():
    lot = make_lot()
    feedbacks = [review(make_product(lot=lot), overall_rating=s) for s in [5, 5, 5, 5, 5, 5, 1]]

    feedback_hide(feedback_id=feedbacks[-1].id, reason="Abusive comment")

    hidden = ConsumerFeedback.objects.get(pk=feedbacks[-1].id)
    assert (hidden.is_hidden, hidden.hidden_reason) == (True, "Abusive comment")
    stats = LotReviewStats.objects.get(lot_id=lot.id)
    assert (stats.review_count, stats.average_overall, stats.is_public) == (6, 5.0, True)

    feedback_hide(feedback_id=feedbacks[-1].id, reason="Still abusive")  # no double count
    assert LotReviewStats.objects.get(lot_id=lot.id).review_count == 6

    feedback_unhide(feedback_id=feedbacks[-1].id)

    stats = LotReviewStats.objects.get(lot_id=lot.id)
    assert (stats.review_count, stats.average_overall) == (7, 4.4)
    assert_integrity()
    assert ConsumerFeedback.objects.get(pk=feedbacks[-1].id).hidden_reason == ""


def test_hiding_needs_a_reason():
    feedback = review(make_product())

    with pytest.raises(FeedbackError) as exc:
        feedback_hide(feedback_id=feedback.id, reason="  ")

    assert exc.value.field == "hidden_reason"
    assert ConsumerFeedback.objects.get().is_hidden is False


def test_the_average_is_public_only_beyond_five_reviews():
    lot = make_lot()
    for _ in range(5):
        review(make_product(lot=lot))
    assert LotReviewStats.objects.get(lot_id=lot.id).is_public is False

    review(make_product(lot=lot))

    assert LotReviewStats.objects.get(lot_id=lot.id).is_public is True


def test_the_client_hash_hides_the_address_and_changes_every_day():
    today = client_hash(address="203.0.113.9", day="2026-01-08")

    assert len(today) == 16
    assert "203" not in today
    assert today == client_hash(address="203.0.113.9", day="2026-01-08")
    assert today != client_hash(address="203.0.113.9", day="2026-01-09")
    assert today != client_hash(address="203.0.113.10", day="2026-01-08")


@pytest.mark.parametrize(
    ("cdn", "language", "expected"),
    [
        ("FR", "en-US", ("FR", "cdn")),
        ("be", "", ("BE", "cdn")),
        ("XX", "fr-CA,fr;q=0.9", ("CA", "language")),
        ("", "de-DE", ("DE", "language")),
        ("", "fr", ("", "")),
        ("", "", ("", "")),
        ("France", "zh-Hant-TW", ("", "")),
    ],
)
def test_the_coarse_place_comes_from_a_cdn_header_or_the_language_region(cdn, language, expected):
    assert coarse_place(cdn_country=cdn, accept_language=language) == expected
