"""The feedback form of the scan page (POST /p/<qr_code>/avis), without JavaScript."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from feedback.models import ConsumerFeedback, LotReviewStats
from tests.factories import RATINGS, forged, make_product

pytestmark = pytest.mark.django_db


def send(client, product_or_code, **fields):
    code = getattr(product_or_code, "qr_code", product_or_code)
    return client.post(f"/p/{code}/avis", {**RATINGS, **fields})


def test_a_review_is_stored_and_thanked_with_the_seed_message_and_points(client):
    product = make_product()

    response = send(client, product, comment="Très bon", consent_to_publish="on")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Merci pour votre retour ! Il nous aidera à améliorer nos produits." in html
    assert "Vous gagnez 10 points de fidélité." in html
    feedback = ConsumerFeedback.objects.get()
    assert (feedback.product_id, feedback.comment, feedback.consent_to_publish) == (
        product.id,
        "Très bon",
        True,
    )
    assert feedback.language == "fr"
    assert LotReviewStats.objects.get(lot_id=product.lot_id).review_count == 1


def test_consent_to_publish_is_off_unless_ticked(client):
    product = make_product()

    send(client, product)

    assert ConsumerFeedback.objects.get().consent_to_publish is False


def test_the_comment_is_shown_back_escaped(client):
    product = make_product()

    html = send(client, product, comment='<script>alert("x")</script>').content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_a_second_review_of_the_same_unit_says_it_was_already_reviewed(client):
    product = make_product()
    send(client, product)

    response = send(client, product, overall_rating=1)

    assert response.status_code == 409
    assert "un seul avis par produit" in response.content.decode()
    assert ConsumerFeedback.objects.get().overall_rating == 5


def test_missing_ratings_are_named_and_what_was_typed_is_kept(client):
    product = make_product()

    response = client.post(
        f"/p/{product.qr_code}/avis", {"overall_rating": "4", "comment": "gardé"}
    )

    assert response.status_code == 400
    html = response.content.decode()
    errors = html.split('id="form-errors"')[1].split("</div>")[0]
    for label in ["Goût", "Texture", "Aspect", "Rapport qualité-prix"]:
        assert label in errors
    assert "Note globale" not in errors
    assert 'id="id_overall_rating_4" value="4" required checked' in html
    assert ">gardé</textarea>" in html
    assert not ConsumerFeedback.objects.exists()


def test_a_rating_outside_one_to_five_is_refused(client):
    product = make_product()

    response = send(client, product, texture_rating="6")

    assert response.status_code == 400
    assert "Texture" in response.content.decode().split('id="form-errors"')[1]
    assert not ConsumerFeedback.objects.exists()


def test_a_comment_over_the_limit_is_refused(client):
    product = make_product()

    response = send(client, product, comment="x" * 1001)

    assert response.status_code == 400
    assert not ConsumerFeedback.objects.exists()


def test_a_filled_honeypot_stores_nothing(client):
    product = make_product()

    response = send(client, product, website="http://spam.example")

    assert response.status_code == 400
    assert not ConsumerFeedback.objects.exists()


def test_the_form_is_csrf_protected():
    product = make_product()
    client = Client(enforce_csrf_checks=True)

    response = send(client, product)

    assert response.status_code == 403
    assert not ConsumerFeedback.objects.exists()


def test_the_form_works_with_the_token_from_the_page():
    product = make_product()
    client = Client(enforce_csrf_checks=True)
    html = client.get(f"/p/{product.qr_code}").content.decode()
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]

    response = send(client, product, csrfmiddlewaretoken=token)

    assert response.status_code == 200
    assert ConsumerFeedback.objects.count() == 1


@override_settings(FEEDBACK_RATE_LIMIT=2)
def test_a_client_sending_too_often_is_slowed_down(client):
    products = [make_product() for _ in range(3)]

    statuses = [send(client, p).status_code for p in products]

    assert statuses == [200, 200, 429]
    assert ConsumerFeedback.objects.count() == 2


@override_settings(FEEDBACK_RATE_LIMIT=2)
def test_the_rate_limit_is_per_client(client):
    products = [make_product() for _ in range(3)]
    send(client, products[0])
    send(client, products[1])

    other = Client(REMOTE_ADDR="192.0.2.7")
    assert send(other, products[2]).status_code == 200


def test_an_unknown_or_forged_code_gets_the_not_found_page(client):
    product = make_product()

    for code in ["nothing", forged(product.qr_code)]:
        response = send(client, code)
        assert response.status_code == 404
    assert not ConsumerFeedback.objects.exists()


def test_the_form_only_accepts_post(client):
    product = make_product()

    assert client.get(f"/p/{product.qr_code}/avis").status_code == 405
