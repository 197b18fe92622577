"""HTTP bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are refused before they are parsed or stored:
413 in JSON from the API, 400 from the review form; the same through Daphne is in
test_websocket_hostile.py (one server for the module)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from feedback.models import ConsumerFeedback
from tests.factories import make_product

pytestmark = pytest.mark.django_db
RATINGS = {
    "overall_rating": 4,
    "taste_rating": 4,
    "texture_rating": 3,
    "appearance_rating": 5,
    "value_rating": 4,
}


def test_the_body_limit_is_small_and_set_from_the_environment():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 256 * 1024


def test_an_oversized_api_body_is_a_413_in_json_and_stores_nothing(client):
    product = make_product()
    body = json.dumps({"qr_code": product.qr_code, **RATINGS, "comment": "x" * (300 * 1024)})

    response = client.post("/api/consumer/feedback", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "error": "body_too_large",
        "field": None,
        "rule": "max_bytes",
        "detail": f"the request body is over {256 * 1024} bytes",
    }
    assert not ConsumerFeedback.objects.exists()


def test_a_body_under_the_limit_still_reaches_the_validation(client):
    product = make_product()

    response = client.post(
        "/api/consumer/feedback",
        {"qr_code": product.qr_code, **RATINGS, "comment": "x" * (200 * 1024)},
        content_type="application/json",
    )

    assert response.status_code == 422  # the comment's own limit, named
    assert [e["field"] for e in response.json()["errors"]] == ["comment"]


def test_an_oversized_review_form_is_a_400_and_stores_nothing(client):
    product = make_product()

    response = client.post(
        f"/p/{product.qr_code}/avis",
        {**{k: str(v) for k, v in RATINGS.items()}, "comment": "x" * (300 * 1024)},
    )

    assert response.status_code == 400
    assert not ConsumerFeedback.objects.exists()
