"""``ledger_state``: the one row proofs read the latest head, its edge and the latest
verification from. It follows every write to ``ledger_heads`` and ``ledger_verifications`` (in
the writing transaction), and a row changed by hand never makes a wrong proof pass: the client's
checks fail or the proof waits, and verify_ledger names it and rewrites it."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from tests.factories import make_lot, make_sample
from tests.support.rfc9162 import rfc_verify_inclusion
from traceability import ledger
from traceability.models import (
    ConsumerProduct,
    LedgerHead,
    LedgerState,
    LedgerVerification,
)
from traceability.services import product_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_settings(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0  # every registration signs a head
    settings.LEDGER_HEAD_MAX_PENDING = 100
    settings.LEDGER_SIGNING_KEY = ""
    settings.LEDGER_TRUSTED_PUBLIC_KEYS = []
    cache.clear()
    yield
    cache.clear()


def _register(count: int) -> list[ConsumerProduct]:
    lot = make_lot()
    products = []
    for _ in range(count):
        sample = make_sample(lot=lot)
        registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
        products.append(ConsumerProduct.objects.get(product_id=registered.product_id))
    return products


def _state() -> LedgerState:
    return LedgerState.objects.get()


def _head_of(state: LedgerState) -> tuple:
    return (
        state.head_tree_size,
        bytes(state.head_root_hash),
        state.head_timestamp_ms,
        bytes(state.head_signature),
        state.head_key_id,
        bytes(state.head_edge_hashes),
    )


def _latest_head() -> tuple:
    head = LedgerHead.objects.order_by("-tree_size").first()
    return (
        head.tree_size,
        bytes(head.root_hash),
        head.timestamp_ms,
        bytes(head.signature),
        head.key_id,
        bytes(head.edge_hashes),
    )


def _client_accepts(product: ConsumerProduct) -> bool:
    """What ledger.js checks: the head's signature with a trusted key, then the audit path
    from the product's leaf to the signed root."""
    cache.clear()
    proof = ledger.product_proof(product)
    if proof["status"] != "sealed":
        return False
    signed = proof["signed_head"]
    head = LedgerHead(
        tree_size=signed["tree_size"],
        root_hash=bytes.fromhex(signed["root_hash"]),
        timestamp_ms=signed["timestamp"],
        signature=base64.b64decode(signed["signature"]),
        key_id=signed["key_id"],
    )
    audit = [bytes.fromhex(h) for h in proof["audit_path"]]
    return ledger.head_signature_is_valid(head) and rfc_verify_inclusion(
        proof["leaf_index"],
        proof["tree_size"],
        ledger.product_leaf_hash(product),
        audit,
        bytes.fromhex(signed["root_hash"]),
    )


def test_the_state_row_holds_the_latest_signed_head_after_each_one():
    assert _state().head_tree_size is None  # no head yet: the row is there, empty

    for size in (1, 2, 3):
        products = _register(1)
        assert _state().head_tree_size == size
        assert _head_of(_state()) == _latest_head()
    assert _client_accepts(products[0])


def test_a_head_signed_in_a_transaction_that_rolls_back_leaves_the_state_row_as_it_was():
    _register(2)
    before = _head_of(_state())
    lot = make_lot()
    sample = make_sample(lot=lot)
    with pytest.raises(RuntimeError), transaction.atomic():
        product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
        assert _state().head_tree_size == 3  # seen inside the writing transaction
        raise RuntimeError("rolled back")
    assert _head_of(_state()) == before


def test_the_state_row_follows_the_latest_verification_and_its_deletion():
    products = _register(4)
    ok = ledger.ledger_verify()
    state = _state()
    assert (state.verification_id, state.verification_failed) == (ok.pk, False)
    assert state.verification_findings is None

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = "
            "CASE sqal_fusion_grade WHEN 'A+' THEN 'C' ELSE 'A+' END WHERE id = %s",
            [products[2].pk],
        )
    failed = ledger.ledger_verify()
    state = _state()
    assert (state.verification_id, state.verification_failed) == (failed.pk, True)
    assert state.verification_findings == failed.findings
    cache.clear()
    assert [ledger.product_proof(p)["flagged_by_verification"] for p in products] == [
        False,
        False,
        True,
        False,
    ]

    failed.delete()  # the previous run is the latest again
    assert (_state().verification_id, _state().verification_failed) == (ok.pk, False)
    cache.clear()
    assert not any(ledger.product_proof(p)["flagged_by_verification"] for p in products)


def test_a_verification_stored_with_an_older_start_does_not_replace_the_latest():
    _register(1)
    latest = ledger.ledger_verify()
    LedgerVerification.objects.create(
        started_at=latest.started_at - timedelta(hours=1),
        finished_at=latest.started_at,
        ok=False,
        tree_size=1,
        findings=[{"kind": "leaf_gap", "leaf_index": 0}],
    )
    assert (_state().verification_id, _state().verification_failed) == (latest.pk, False)


def test_a_forged_head_in_the_state_row_fails_the_clients_check_and_verify_ledger_rewrites_it():
    products = _register(3)
    state = _state()
    forged = bytearray(bytes(state.head_signature))
    forged[5] ^= 1
    LedgerState.objects.update(head_signature=bytes(forged))

    assert not _client_accepts(products[1])

    outcome = ledger.ledger_verify()
    assert not outcome.ok
    assert [f["kind"] for f in outcome.findings] == ["ledger_state_altered"]
    assert _head_of(_state()) == _latest_head()
    assert _client_accepts(products[1])


def test_a_state_row_set_back_to_an_older_head_serves_no_wrong_proof():
    products = _register(5)
    older = LedgerHead.objects.get(tree_size=3)
    LedgerState.objects.update(
        head_tree_size=older.tree_size,
        head_root_hash=older.root_hash,
        head_timestamp_ms=older.timestamp_ms,
        head_signature=older.signature,
        head_edge_hashes=older.edge_hashes,
    )

    # Leaves under the older head get a proof under it, which is a true proof; the others wait.
    assert all(_client_accepts(p) for p in products[:3])
    cache.clear()
    assert ledger.product_proof(products[4])["status"] == "pending"

    outcome = ledger.ledger_verify()
    assert [f["kind"] for f in outcome.findings] == ["ledger_state_altered"]
    assert all(_client_accepts(p) for p in products)


def test_a_deleted_state_row_leaves_proofs_pending_until_verify_ledger_restores_it():
    products = _register(2)
    LedgerState.objects.all().delete()

    cache.clear()
    assert ledger.product_proof(products[0])["status"] == "pending"

    outcome = ledger.ledger_verify()
    assert [f["kind"] for f in outcome.findings] == ["ledger_state_altered"]
    assert _head_of(_state()) == _latest_head()
    assert _client_accepts(products[0])
