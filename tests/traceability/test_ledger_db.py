"""The ledger on PostgreSQL: sealing on registration, heads, proofs, the API, verify_ledger."""

from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client

from tests.factories import make_lot, make_sample
from tests.support.rfc9162 import (
    rfc_verify_consistency,
    rfc_verify_inclusion,
)
from tests.support.servers import django_database_url
from traceability import ledger
from traceability.models import (
    ConsumerProduct,
    LedgerHead,
    LedgerLeaf,
    LedgerVerification,
)
from traceability.services import product_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_settings(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0  # every append signs a head unless a test says
    settings.LEDGER_HEAD_MAX_PENDING = 100
    settings.LEDGER_SIGNING_KEY = ""
    settings.LEDGER_TRUSTED_PUBLIC_KEYS = []
    cache.clear()
    yield
    cache.clear()


def register(lot=None, **sample_kw) -> ConsumerProduct:
    lot = lot or make_lot()
    sample = make_sample(lot=lot, **sample_kw)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def insert_without_ledger(lot=None) -> ConsumerProduct:
    """A product written by another path than product_register (e.g. a history import)."""
    lot = lot or make_lot()
    sample = make_sample(lot=lot)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT product_id FROM register_consumer_product(%s, %s, 'LL')",
            [lot.id, sample.sample_id],
        )
        (product_id,) = cursor.fetchone()
    return ConsumerProduct.objects.get(product_id=product_id)


def test_registering_a_product_seals_it_as_the_next_leaf_with_its_hash_stored():
    lot = make_lot()
    first, second = register(lot), register(lot)

    leaves = list(LedgerLeaf.objects.order_by("leaf_index"))
    assert [(leaf.leaf_index, leaf.product_id) for leaf in leaves] == [
        (0, first.pk),
        (1, second.pk),
    ]
    record = ledger.canonical_json(ledger.product_record(first)).encode()
    expected = hashlib.sha256(b"\x00" + record).digest()
    assert bytes(leaves[0].leaf_hash) == expected
    assert first.blockchain_hash == expected.hex()
    assert leaves[0].record == record.decode()


def test_registering_the_same_sample_twice_appends_nothing():
    lot = make_lot()
    sample = make_sample(lot=lot)
    for _ in range(3):
        product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    assert LedgerLeaf.objects.count() == 1
    assert LedgerHead.objects.get().tree_size == 1


def test_stored_nodes_give_proofs_for_every_size_that_an_independent_verifier_accepts():
    lot = make_lot()
    products = [register(lot) for _ in range(64)]
    leaves = [ledger.product_leaf_hash(p) for p in products]
    memory = ledger.MemoryLog()
    for leaf in leaves:
        memory.append(leaf)

    for n in range(1, 65):
        root = ledger.stored_root(n)
        assert root == memory.root(n)
        for m in range(n):
            audit = ledger.inclusion_proof(index=m, size=n)
            assert rfc_verify_inclusion(m, n, leaves[m], audit, root), (m, n)
        for m in range(1, n + 1):
            cons = ledger.consistency_proof(first=m, second=n)
            assert rfc_verify_consistency(m, n, memory.root(m), root, cons), (m, n)


def test_heads_are_signed_at_most_every_n_products_when_the_interval_has_not_passed(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 3600
    settings.LEDGER_HEAD_MAX_PENDING = 3
    lot = make_lot()
    for _ in range(7):
        register(lot)
    # The first append signs (no head yet); then one head per 3 pending products.
    assert list(LedgerHead.objects.order_by("tree_size").values_list("tree_size", flat=True)) == [
        1,
        4,
        7,
    ]
    head = LedgerHead.objects.get(tree_size=7)
    assert ledger.head_signature_is_valid(head)
    assert bytes(head.root_hash) == ledger.stored_root(7)


def test_the_proof_api_returns_a_proof_that_verifies_against_the_signed_head():
    lot = make_lot()
    products = [register(lot) for _ in range(5)]
    target = products[2]

    response = Client().get(f"/api/ledger/proof/{target.qr_code}")

    assert response.status_code == 200
    body = response.json()
    assert (body["leaf_index"], body["tree_size"], body["product_id"]) == (
        2,
        5,
        target.product_id,
    )
    head = body["signed_head"]
    leaf = hashlib.sha256(b"\x00" + body["record_canonical"].encode()).digest()
    assert leaf.hex() == body["leaf_hash"] == target.blockchain_hash
    audit = [bytes.fromhex(h) for h in body["audit_path"]]
    assert rfc_verify_inclusion(2, 5, leaf, audit, bytes.fromhex(head["root_hash"]))
    message = (
        b"\x00\x01"
        + head["timestamp"].to_bytes(8, "big")
        + head["tree_size"].to_bytes(8, "big")
        + bytes.fromhex(head["root_hash"])
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(head["public_key"]))
    public.verify(base64.b64decode(head["signature"]), message)  # raises when invalid


def test_the_proof_api_answers_404_for_an_unknown_code_and_409_before_any_signed_head(settings):
    assert Client().get("/api/ledger/proof/SQAL_nope").status_code == 404
    unsealed = insert_without_ledger()
    response = Client().get(f"/api/ledger/proof/{unsealed.qr_code}")
    assert (response.status_code, response.json()["error"]) == (409, "unsealed")

    settings.LEDGER_HEAD_INTERVAL_SECONDS = 3600
    register()  # first append: signs a head of size 2
    pending = register()
    response = Client().get(f"/api/ledger/proof/{pending.qr_code}")
    assert (response.status_code, response.json()["error"]) == (409, "no_signed_head")


def test_the_consistency_api_proves_an_older_head_is_a_prefix_of_a_newer_one():
    lot = make_lot()
    for _ in range(11):
        register(lot)
    client = Client()

    body = client.get("/api/ledger/consistency", {"from": 3, "to": 11}).json()
    proof = [bytes.fromhex(h) for h in body["proof"]]
    first, second = body["first"], body["second"]
    assert (first["tree_size"], second["tree_size"]) == (3, 11)
    assert rfc_verify_consistency(
        3, 11, bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"]), proof
    )
    latest = client.get("/api/ledger/consistency", {"from": 3}).json()
    assert latest["second"]["tree_size"] == 11
    assert client.get("/api/ledger/consistency", {"from": 5, "to": 3}).status_code == 400
    assert client.get("/api/ledger/consistency", {"from": 3, "to": 99}).status_code == 404
    assert client.get("/api/ledger/consistency", {"from": 0}).status_code == 400


def test_heads_and_the_public_key_are_published():
    register()
    client = Client()
    body = client.get("/ledger/heads.json").json()
    assert body["algorithm"] == "Ed25519"
    assert body["heads"][0]["tree_size"] == 1
    assert body["heads"][0]["public_key"] == body["public_key"]
    pem = client.get("/ledger/public-key.pem").content.decode()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert client.get("/ledger/heads.json", {"limit": "x"}).status_code == 400


def test_scan_context_costs_one_query_and_none_once_cached(django_assert_num_queries):
    lot = make_lot()
    products = [register(lot) for _ in range(6)]
    product = ConsumerProduct.objects.get(pk=products[3].pk)

    with django_assert_num_queries(1):
        context = ledger.scan_context(product)["ledger"]
    with django_assert_num_queries(0):
        again = ledger.scan_context(product)["ledger"]

    assert (context["status"], context["entry_number"], context["tree_size"]) == ("sealed", 4, 6)
    assert again["payload"] == context["payload"]
    proof = context["payload"]["proof"]
    leaf = ledger.product_leaf_hash(product)
    audit = [bytes.fromhex(h) for h in proof["audit_path"]]
    root = bytes.fromhex(proof["signed_head"]["root_hash"])
    assert rfc_verify_inclusion(3, 6, leaf, audit, root)


def test_verify_ledger_passes_on_an_untouched_log_and_stores_the_result(capsys):
    lot = make_lot()
    for _ in range(9):
        register(lot)

    call_command("verify_ledger")

    result = LedgerVerification.objects.get()
    assert result.ok and result.tree_size == 9 and result.heads_checked == 9
    assert "OK" in capsys.readouterr().out


def test_verify_ledger_names_the_product_whose_grade_was_changed_by_sql(capsys):
    lot = make_lot()
    products = [register(lot, fusion_grade="A") for _ in range(6)]
    victim = products[4]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = 'A+' WHERE id = %s", [victim.pk]
        )

    with pytest.raises(CommandError) as err:
        call_command("verify_ledger")

    assert err.value.returncode == 1
    assert victim.product_id in str(err.value)
    out = capsys.readouterr().out
    assert f"[record_changed] product {victim.product_id} changed after sealing" in out
    assert "fusion_grade: 'A' -> 'A+'" in out
    others = {p.product_id for p in products} - {victim.product_id}
    assert not any(f"product {pid} changed" in out for pid in others)
    result = LedgerVerification.objects.get()
    assert not result.ok
    assert victim.product_id in result.summary


def test_a_forged_head_signature_is_rejected():
    lot = make_lot()
    for _ in range(3):
        register(lot)
    head = LedgerHead.objects.get(tree_size=2)
    forged = bytearray(bytes(head.signature))
    forged[0] ^= 1
    LedgerHead.objects.filter(tree_size=2).update(signature=bytes(forged))

    assert not ledger.head_signature_is_valid(LedgerHead.objects.get(tree_size=2))
    result = ledger.ledger_verify()
    assert [f["kind"] for f in result.findings] == ["bad_signature"]
    assert result.findings[0]["tree_size"] == 2


def test_a_head_signed_by_an_untrusted_key_is_rejected_and_a_rotated_key_is_trusted(settings):
    register()
    intruder = Ed25519PrivateKey.generate()
    root = ledger.stored_root(1)
    message = ledger.head_message(tree_size=1, root_hash=root, timestamp_ms=1)
    public = ledger.public_key_bytes(intruder)
    forged = LedgerHead(
        tree_size=1,
        root_hash=root,
        timestamp_ms=1,
        signature=intruder.sign(message),
        key_id=ledger.key_id(public),
    )
    assert not ledger.head_signature_is_valid(forged)
    settings.LEDGER_TRUSTED_PUBLIC_KEYS = [public.hex()]
    assert ledger.head_signature_is_valid(forged)


def test_rewriting_the_stored_tree_is_found_even_when_the_rows_agree():
    lot = make_lot()
    for _ in range(4):
        register(lot)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_nodes SET hash = sha256(hash) WHERE level = 1 AND idx = 0")

    kinds = {f["kind"] for f in ledger.ledger_verify().findings}
    assert "nodes_altered" in kinds
    assert "heads_inconsistent" in kinds


def test_products_inserted_by_other_paths_are_reported_then_sealed_by_seal_ledger(capsys):
    register()
    stray = insert_without_ledger()

    with pytest.raises(CommandError):
        call_command("verify_ledger")
    assert f"[unsealed] product {stray.product_id}" in capsys.readouterr().out

    call_command("seal_ledger")
    assert "sealed 1 product(s); log size 2" in capsys.readouterr().out
    call_command("verify_ledger")
    assert LedgerLeaf.objects.get(product=stray).leaf_index == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_get_distinct_consecutive_leaves():
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(12)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(chunk) -> None:
        try:
            barrier.wait()
            for sample in chunk:
                product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(samples[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert sorted(LedgerLeaf.objects.values_list("leaf_index", flat=True)) == list(range(12))
    result = ledger.ledger_verify()
    assert result.ok, result.findings


@pytest.mark.django_db(transaction=True)
def test_the_verify_ledger_command_exits_non_zero_and_names_the_tampered_product():
    import os
    import subprocess
    import sys
    from pathlib import Path

    lot = make_lot()
    products = [register(lot) for _ in range(3)]
    env = {**os.environ, "DATABASE_URL": django_database_url()}
    root = Path(__file__).resolve().parents[2]

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "verify_ledger"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    clean = verify()
    assert clean.returncode == 0, clean.stderr
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_score = 0.99 WHERE id = %s",
            [products[1].pk],
        )
    tampered = verify()

    assert tampered.returncode == 1
    assert f"product {products[1].product_id} changed after sealing" in tampered.stdout
    assert "fusion_score: '0.87' -> '0.99'" in tampered.stdout
    assert products[1].product_id in tampered.stderr
    assert list(LedgerVerification.objects.order_by("started_at").values_list("ok", flat=True)) == [
        True,
        False,
    ]


RECORD_SQL = "SELECT gt_ledger_product_record(p) FROM consumer_products p WHERE p.id = %s"


def _sql_record(pk: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(RECORD_SQL, [pk])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    "value",
    [
        0.87,
        125000.0,
        1e-05,
        0.0001,
        1.5e-07,
        1e16,
        1.2345e20,
        -0.0,
        0.1 + 0.2,
        5e-324,
        1.7976931348623157e308,
        123456789012345.6,
        -2.5,
        None,
    ],
)
def test_the_sql_record_of_a_product_is_byte_for_byte_the_python_record(value):
    product = register()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_score = %s, lot_itm_moyen = %s, "
            "lot_code = %s, lot_date_fin_gavage = %s WHERE id = %s",
            [value, value, 'L"\\\t\x01\x1f\x7f\u2028é/ok', None, product.pk],
        )
    product.refresh_from_db()
    assert _sql_record(product.pk) == ledger.canonical_json(ledger.product_record(product))


@pytest.mark.parametrize("value", [1e15, 9.999999999999998e15, float("nan"), float("inf")])
def test_values_sql_may_write_unlike_python_are_left_to_python_and_still_sealed(value):
    product = insert_without_ledger()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET lot_itm_moyen = %s WHERE id = %s", [value, product.pk]
        )
    product.refresh_from_db()
    assert _sql_record(product.pk) is None

    assert ledger.ledger_append_product(product_id=product.product_id).tree_size == 1
    leaf = LedgerLeaf.objects.get(product=product)
    assert leaf.record == ledger.canonical_json(ledger.product_record(product))
    assert ledger.ledger_verify().ok


def test_verify_ledger_names_a_product_whose_stored_hash_or_sealed_record_was_edited():
    lot = make_lot()
    first, second = register(lot), register(lot)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET blockchain_hash = 'forged' WHERE id = %s", [first.pk]
        )
        cursor.execute(
            "UPDATE ledger_leaves SET record = record || ' ' WHERE product_pk = %s", [second.pk]
        )

    findings = {(f["kind"], f.get("product_id")) for f in ledger.ledger_verify().findings}

    assert findings == {
        ("blockchain_hash_mismatch", first.product_id),
        ("sealed_record_altered", second.product_id),
    }
