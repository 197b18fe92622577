"""POST /api/consumer/feedback: the seed's response and every refusal, naming the field."""

from __future__ import annotations

import pytest
from django.test import override_settings

from feedback.models import ConsumerFeedback, LotReviewStats
from tests.factories import RATINGS, forged, make_product

pytestmark = pytest.mark.django_db

SEED_COMMENT = "Excellent produit, texture parfaite!"


def post(client, body, **headers):
    return client.post(
        "/api/consumer/feedback", body, content_type="application/json", headers=headers
    )


def test_it_stores_the_review_and_answers_the_seed_shape(client):
    product = make_product()

    response = post(client, {"qr_code": product.qr_code, **RATINGS, "comment": SEED_COMMENT})

    assert response.status_code == 201
    body = response.json()
    feedback = ConsumerFeedback.objects.get()
    assert body == {
        "success": True,
        "feedback_id": feedback.id,
        "message": "Merci pour votre retour ! Il nous aidera à améliorer nos produits.",
        "reward_points": 10,
    }
    assert feedback.product_id == product.id
    assert (feedback.overall_rating, feedback.texture_rating, feedback.value_rating) == (5, 4, 4)
    assert feedback.comment == SEED_COMMENT
    assert feedback.consent_to_publish is False
    assert feedback.reward_points == 10


def test_the_message_follows_the_accept_language(client):
    product = make_product()

    response = post(client, {"qr_code": product.qr_code, **RATINGS}, accept_language="en")

    assert response.json()["message"] == (
        "Thank you for your feedback! It will help us improve our products."
    )


def test_it_keeps_the_lot_statistics_in_step(client):
    product = make_product()

    post(client, {"qr_code": product.qr_code, **RATINGS, "overall_rating": 3})

    stats = LotReviewStats.objects.get(lot_id=product.lot_id)
    assert (stats.review_count, stats.overall_sum, stats.texture_sum) == (1, 3, 4)


@pytest.mark.parametrize("value", [0, 6, -1, "five", "5", None, 4.5, True])
def test_a_rating_outside_one_to_five_is_refused_naming_the_field(client, value):
    product = make_product()

    response = post(client, {"qr_code": product.qr_code, **RATINGS, "taste_rating": value})

    assert response.status_code == 422
    body = response.json()
    assert (body["success"], body["error"], body["field"]) == (
        False,
        "validation_error",
        "taste_rating",
    )
    assert body["rule"] and body["detail"].startswith("taste_rating:")
    assert [e["field"] for e in body["errors"]] == ["taste_rating"]
    assert not ConsumerFeedback.objects.exists()


def test_a_missing_rating_is_refused_naming_the_field(client):
    product = make_product()
    body = {"qr_code": product.qr_code, **RATINGS}
    del body["value_rating"]

    response = post(client, body)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["value_rating"]


def test_a_comment_over_the_limit_is_refused_naming_the_field(client):
    product = make_product()

    response = post(client, {"qr_code": product.qr_code, **RATINGS, "comment": "x" * 1001})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["comment"]


def test_an_unknown_qr_code_is_a_404_naming_the_field(client):
    product = make_product()

    for code in ["SQAL_nothing", forged(product.qr_code)]:
        response = post(client, {"qr_code": code, **RATINGS})
        assert response.status_code == 404
        assert response.json()["field"] == "qr_code"
        assert response.json()["error"] == "unknown_qr_code"
    assert not ConsumerFeedback.objects.exists()


def test_a_second_review_of_the_same_unit_is_a_409(client):
    product = make_product()
    post(client, {"qr_code": product.qr_code, **RATINGS})

    response = post(client, {"qr_code": product.qr_code, **RATINGS, "overall_rating": 1})

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "error": "already_reviewed",
        "field": "qr_code",
        "rule": None,
        "detail": "This product unit has already been reviewed.",
    }
    assert ConsumerFeedback.objects.get().overall_rating == 5
    assert LotReviewStats.objects.get(lot_id=product.lot_id).review_count == 1


@override_settings(FEEDBACK_RATE_LIMIT=3)
def test_a_client_past_the_rate_limit_gets_a_429(client):
    products = [make_product() for _ in range(4)]

    statuses = [post(client, {"qr_code": p.qr_code, **RATINGS}).status_code for p in products]

    assert statuses == [201, 201, 201, 429]
    assert ConsumerFeedback.objects.count() == 3


def test_the_consumer_routes_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").json()["paths"]

    assert "post" in paths["/api/consumer/feedback"]
    assert "get" in paths["/api/consumer/scan/{qr_code}"]
