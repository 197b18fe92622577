"""The PL/pgSQL functions generate_qr_code and register_consumer_product, through PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import datetime

import pytest
from django.db import connection, connections

from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import (
    ProductRegistrationError,
    product_id_format,
    product_ids_reserve,
    product_register,
    product_signature_is_valid,
    qr_code_format,
    qr_parse,
    qr_signature,
    qr_signature_is_valid,
)

pytestmark = pytest.mark.django_db

PRODUCT_ID = re.compile(r"^FG_LL_\d{8}_\d{4}$")


def test_it_registers_a_product_with_the_seed_formats():
    lot = make_lot()
    sample = make_sample(lot=lot, sample_id="ESP32_LL_01_1234")

    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    assert PRODUCT_ID.match(product.product_id)
    prefix = f"SQAL_{lot.id}_ESP32_LL_01_1234_{product.product_id}_"
    assert product.qr_code.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{16}", product.qr_code[len(prefix) :])


def test_it_extracts_the_product_id_right_when_the_sample_id_has_underscores():
    lot = make_lot()
    make_sample(lot=lot, sample_id="ESP32_LL_01_1234")

    registered = product_register(lot_id=lot.id, sample_id="ESP32_LL_01_1234", site_code="LL")

    stored = ConsumerProduct.objects.get()
    assert stored.product_id == registered.product_id
    assert PRODUCT_ID.match(stored.product_id)
    assert qr_parse(stored.qr_code).product_id == stored.product_id
    assert qr_parse(stored.qr_code).sample_id == "ESP32_LL_01_1234"


def test_it_copies_the_sqal_and_lot_fields_into_the_product():
    lot = make_lot(itm=118.2, mean_final_weight_g=7600, duration_days=12)
    sample = make_sample(lot=lot, fusion_score=0.81, fusion_grade="A", tof_volume_mm3=99000)

    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    p = ConsumerProduct.objects.get()
    assert (p.lot_id, p.sample_id, p.sqal_sample_id) == (lot.id, sample.id, sample.sample_id)
    assert (p.fusion_score, p.fusion_grade, p.is_compliant) == (0.81, "A", True)
    assert p.tof_volume_mm3 == 99000
    assert p.tof_surface_uniformity == sample.tof_surface_uniformity
    assert p.spectral_freshness_index == sample.spectral_freshness_index
    assert (p.lot_code, p.lot_itm, p.lot_mean_final_weight_g) == (lot.code, 118.2, 7600)
    assert (p.lot_feeding_start, p.lot_feeding_end) == (lot.feeding_start, lot.planned_feeding_end)
    assert p.lot_feeding_days == 12
    assert p.created_at is not None


def test_calling_it_twice_for_one_sample_returns_the_same_product():
    lot = make_lot()
    sample = make_sample(lot=lot)

    first = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    second = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    assert first == second
    assert ConsumerProduct.objects.count() == 1


def test_products_of_one_site_and_day_are_numbered_in_sequence():
    lot = make_lot()
    ids = [
        product_register(
            lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
        ).product_id
        for _ in range(3)
    ]
    assert [int(i.rsplit("_", 1)[1]) for i in ids] == [1, 2, 3]


def test_the_signature_is_recomputable_from_stored_fields_and_the_key():
    lot = make_lot()
    sample = make_sample(lot=lot)
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    product = ConsumerProduct.objects.get()

    assert product_signature_is_valid(product)
    assert qr_signature_is_valid(product.qr_code)
    parsed = qr_parse(product.qr_code)
    assert parsed.signature == qr_signature(
        lot_id=lot.id, sample_id=sample.sample_id, product_id=product.product_id
    )


def test_a_forged_or_altered_code_is_rejected():
    lot = make_lot()
    sample = make_sample(lot=lot)
    code = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL").qr_code
    other_lot = make_lot()

    altered_lot = code.replace(f"SQAL_{lot.id}_", f"SQAL_{other_lot.id}_", 1)
    flipped = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert not qr_signature_is_valid(altered_lot)
    assert not qr_signature_is_valid(flipped)
    assert not qr_signature_is_valid("SQAL_garbage")
    assert not qr_signature_is_valid("")


def test_sql_and_python_signatures_agree_for_unicode_sample_ids():
    with connection.cursor() as cursor:
        cursor.execute("SELECT qr_signature(%s, %s, %s)", [42, "éch_ÀB_01", "FG_LL_20260108_0001"])
        (sql_sig,) = cursor.fetchone()
    assert sql_sig == qr_signature(
        lot_id=42, sample_id="éch_ÀB_01", product_id="FG_LL_20260108_0001"
    )


def test_the_hmac_matches_rfc_4231_test_case_2():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT encode(gt_hmac_sha256(convert_to('Jefe', 'UTF8'), "
            "convert_to('what do ya want for nothing?', 'UTF8')), 'hex')"
        )
        (digest,) = cursor.fetchone()
    assert digest == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_the_hmac_matches_rfc_4231_test_case_6_with_a_long_key():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT encode(gt_hmac_sha256(decode(repeat('aa', 131), 'hex'), "
            "convert_to(%s, 'UTF8')), 'hex')",
            ["Test Using Larger Than Block-Size Key - Hash Key First"],
        )
        (digest,) = cursor.fetchone()
    assert digest == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


@pytest.mark.parametrize(
    ("grade", "compliant"), [("REJECT", False), ("REJECT", True), ("B", False)]
)
def test_it_refuses_a_sample_that_is_not_compliant_or_rejected(grade, compliant):
    lot = make_lot()
    sample = make_sample(lot=lot, fusion_grade=grade, is_compliant=compliant, fusion_score=0.3)

    with pytest.raises(ProductRegistrationError) as err:
        product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    assert err.value.code == "sample_not_eligible"
    assert ConsumerProduct.objects.count() == 0


def test_it_refuses_an_unknown_lot_or_sample_with_a_precise_code():
    lot = make_lot()
    sample = make_sample(lot=lot)

    with pytest.raises(ProductRegistrationError) as unknown_lot:
        product_register(lot_id=999999, sample_id=sample.sample_id, site_code="LL")
    with pytest.raises(ProductRegistrationError) as unknown_sample:
        product_register(lot_id=lot.id, sample_id="NOPE", site_code="LL")

    assert unknown_lot.value.code == "unknown_lot"
    assert unknown_lot.value.status == 404
    assert unknown_sample.value.code == "unknown_sample"


def test_it_refuses_a_sample_of_another_lot_or_without_lot():
    lot, other = make_lot(), make_lot()
    sample = make_sample(lot=lot)
    lotless = make_sample(lot=None)

    for lot_id, sample_id in [(other.id, sample.sample_id), (lot.id, lotless.sample_id)]:
        with pytest.raises(ProductRegistrationError) as err:
            product_register(lot_id=lot_id, sample_id=sample_id, site_code="LL")
        assert err.value.code == "sample_not_in_lot"


def test_it_refuses_a_malformed_site_code():
    lot = make_lot()
    sample = make_sample(lot=lot)
    with pytest.raises(ProductRegistrationError) as err:
        product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="ll'; --")
    assert err.value.code == "invalid_argument"


def test_the_site_code_defaults_to_the_lot_site():
    lot = make_lot()
    sample = make_sample(lot=lot)
    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code=None)
    assert product.product_id.startswith("FG_LL_")


def test_the_functions_refuse_to_sign_without_a_key():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL gaveurs.qr_key = ''")
        with pytest.raises(Exception, match="signing key is not configured"):
            cursor.execute("SELECT qr_signature(1, 'a', 'b')")


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_sample_yield_one_product():
    lot = make_lot()
    sample = make_sample(lot=lot)
    results: list = []
    barrier = threading.Barrier(4)

    def register() -> None:
        try:
            barrier.wait()
            results.append(
                product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 4
    assert len(set(results)) == 1
    assert ConsumerProduct.objects.count() == 1


def test_the_python_formats_give_the_ids_and_codes_postgresql_gives():
    lot = make_lot()
    sample = make_sample(lot=lot, sample_id="ESP32_LL_01_77")

    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    _, site, day, seq = product.product_id.split("_")
    stamp = datetime.strptime(day, "%Y%m%d").date()
    assert product_id_format(site_code=site, day=stamp, seq=int(seq)) == product.product_id
    assert product.qr_code == qr_code_format(
        lot_id=lot.id, sample_id=sample.sample_id, product_id=product.product_id
    )
    # the bulk path takes the next numbers of the same counter, in the same format
    (following,) = product_ids_reserve(site_code="LL", day=stamp, count=1)
    assert following == product_id_format(site_code="LL", day=stamp, seq=int(seq) + 1)
