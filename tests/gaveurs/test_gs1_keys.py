"""Site GTIN and GLN: checked in the model and the admin, and by PostgreSQL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from gaveurs.gs1 import gtin_problem, validate_gln, validate_gtin
from gaveurs.models import Site
from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db

GOOD_GTIN = "3760123456784"
BAD_GTIN = "3760123456785"  # the one the admin used to save
GOOD_GLN = "3014531200003"


@pytest.mark.parametrize("gtin", [GOOD_GTIN, "96385074", "036000291452", "0" + GOOD_GTIN])
def test_well_formed_gtins_of_every_length_pass(gtin):
    validate_gtin(gtin)


@pytest.mark.parametrize("gtin", [BAD_GTIN, "12345", "37601234567A8", "٣٧٦٠١٢٣٤٥٦٧٨٤"])
def test_a_wrong_check_digit_or_format_is_refused_saying_why(gtin):
    with pytest.raises(ValidationError):
        validate_gtin(gtin)
    assert "3760123456784" in gtin_problem(BAD_GTIN)  # it names the digit that would be valid


def test_the_gln_is_checked_too():
    validate_gln(GOOD_GLN)
    with pytest.raises(ValidationError):
        validate_gln("3014531200009")


def test_the_admin_refuses_a_gtin_with_a_wrong_check_digit(admin_client):
    site = Site.objects.create(code="LL", name="Landes")
    url = f"/admin/gaveurs/site/{site.pk}/change/"
    response = admin_client.post(
        url, {"code": "LL", "name": "Landes", "region": "", "gtin": BAD_GTIN, "gln": ""}
    )
    assert response.status_code == 200  # the form again, not "changed successfully"
    assert "check digit" in response.content.decode()
    site.refresh_from_db()
    assert site.gtin == ""

    response = admin_client.post(
        url, {"code": "LL", "name": "Landes", "region": "", "gtin": GOOD_GTIN, "gln": GOOD_GLN}
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.gtin, site.gln) == (GOOD_GTIN, GOOD_GLN)


@pytest.mark.parametrize(
    ("field", "value"), [("gtin", BAD_GTIN), ("gtin", "123"), ("gln", "3014531200009")]
)
def test_the_database_refuses_a_bad_key_written_around_the_model(field, value):
    site = Site.objects.create(code="MG", name="Gers")
    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.filter(pk=site.pk).update(**{field: value})


def test_the_database_accepts_good_keys_and_blanks():
    Site.objects.create(code="GS", name="GS1", gtin=GOOD_GTIN, gln=GOOD_GLN)
    Site.objects.create(code="NO", name="None")
    Site.objects.create(code="GE", name="Eight", gtin="96385074")


def test_a_label_without_gs1_link_says_why(admin_client):
    site = Site.objects.create(code="NG", name="No GTIN")
    lot = make_lot(site=site)
    sample = make_sample(lot=lot)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="NG")
    product = ConsumerProduct.objects.get(product_id=registered.product_id)

    html = admin_client.get(f"/staff/products/labels/?ids={product.pk}").content.decode()
    # The label sheet is a staff page: French by default.
    assert "Pas de lien GS1" in html and "le site NG n’a pas de GTIN" in html

    Site.objects.filter(pk=site.pk).update(gtin=GOOD_GTIN)
    html = admin_client.get(f"/staff/products/labels/?ids={product.pk}").content.decode()
    assert "Pas de lien GS1" not in html and f"/21/{product.gs1_serial}" in html
