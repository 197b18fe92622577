"""GET /api/consumer/scan/{qr_code}: the seed's response, field for field, and its errors."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import forged, make_lot, make_product, review
from traceability.models import ForgedScanAttempt, ProductScanStats, ScanEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def scan(client, code, **headers):
    return client.get(f"/api/consumer/scan/{code}", headers=headers)


def test_it_answers_the_seed_shape_field_for_field(client):
    product = make_product()

    response = scan(client, product.qr_code)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "success",
        "traceability",
        "already_reviewed",
        "average_rating",
        "total_reviews",
        "recall",  # issue 15: null when no recall reaches the unit
    ]
    assert body["recall"] is None
    t = body["traceability"]
    assert list(t) == ["product_id", "qr_code", "lot", "sqal_quality", "blockchain"]
    assert list(t["lot"]) == [
        "code_lot",
        "itm_moyen",
        "poids_moyen_final_g",
        "date_debut_gavage",
        "date_fin_gavage",
        "duree_gavage_jours",
        "gaveur",
    ]
    assert list(t["lot"]["gaveur"]) == ["nom", "prenom", "site_code"]
    assert list(t["sqal_quality"]) == [
        "fusion_score",
        "fusion_grade",
        "is_compliant",
        "tof_volume_mm3",
        "tof_surface_uniformity",
        "spectral_freshness_index",
    ]
    assert {"hash", "timestamp"} <= set(t["blockchain"])
    assert body["success"] is True
    assert (t["product_id"], t["qr_code"]) == (product.product_id, product.qr_code)
    assert t["lot"]["code_lot"] == product.lot_code
    assert (t["lot"]["itm_moyen"], t["lot"]["poids_moyen_final_g"]) == (125.5, 7850)
    assert t["lot"]["duree_gavage_jours"] == 14
    assert t["lot"]["date_debut_gavage"].startswith(product.lot_feeding_start.date().isoformat())
    assert t["lot"]["gaveur"] == {"nom": "Martin", "prenom": "Jean", "site_code": "LL"}
    assert t["sqal_quality"] == {
        "fusion_score": 0.87,
        "fusion_grade": "A+",
        "is_compliant": True,
        "tof_volume_mm3": 125000,
        "tof_surface_uniformity": 0.92,
        "spectral_freshness_index": 0.89,
    }
    assert t["blockchain"]["hash"] == (product.blockchain_hash or None)
    assert (body["already_reviewed"], body["average_rating"], body["total_reviews"]) == (
        False,
        None,
        0,
    )


def test_it_counts_the_scan_as_coming_from_the_api(client):
    product = make_product()

    scan(client, product.qr_code, cf_ipcountry="FR")

    event = ScanEvent.objects.get()
    assert (event.product_id, event.channel, event.country) == (product.id, "api", "FR")
    assert ProductScanStats.objects.get(product=product).scan_count == 1


def test_already_reviewed_is_true_once_the_unit_has_a_review(client):
    product = make_product()
    review(product)

    body = scan(client, product.qr_code).json()

    assert body["already_reviewed"] is True
    assert (body["average_rating"], body["total_reviews"]) == (None, 1)


def test_the_average_rating_is_given_only_beyond_five_visible_reviews(client):
    lot = make_lot()
    products = [make_product(lot=lot) for _ in range(7)]
    for p, stars in zip(products[:6], [5, 5, 4, 4, 3, 5], strict=True):
        review(p, overall_rating=stars)

    body = scan(client, products[6].qr_code).json()

    assert (body["average_rating"], body["total_reviews"]) == (4.3, 6)


def test_an_unknown_code_is_a_404_that_names_the_field(client):
    response = scan(client, "SQAL_1_nothing")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": "unknown_qr_code",
        "field": "qr_code",
        "rule": None,
        "detail": "No such product.",
    }


def test_a_forged_code_is_a_404_saying_so_and_is_logged(client):
    product = make_product()

    response = scan(client, forged(product.qr_code))

    assert response.status_code == 404
    body = response.json()
    assert (body["success"], body["error"], body["field"]) == (
        False,
        "invalid_signature",
        "qr_code",
    )
    assert ForgedScanAttempt.objects.get().channel == "api"
    assert not ScanEvent.objects.exists()


def test_the_api_scan_costs_at_most_three_queries(client, django_assert_max_num_queries):
    product = make_product()
    review(product)
    scan(client, product.qr_code)

    with django_assert_max_num_queries(3):
        assert scan(client, product.qr_code).status_code == 200
