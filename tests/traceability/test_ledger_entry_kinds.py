"""Ledger entry kinds: recall declarations and closings are leaves of their own kind, product
records hash as before, and verify_ledger checks every kind."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.factories import make_lot, make_product
from tests.support.rfc9162 import rfc_verify_inclusion
from traceability import ledger
from traceability.models import (
    LedgerEntryKind,
    LedgerLeaf,
    LedgerVerification,
    Recall,
    RecallClosure,
    RecallLot,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_settings(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0
    settings.LEDGER_SIGNING_KEY = ""
    settings.LEDGER_TRUSTED_PUBLIC_KEYS = []
    cache.clear()
    yield
    cache.clear()


def sealed_recall(lot) -> Recall:
    """A recall row sealed by the ledger's append (the recall services do both)."""
    now = timezone.now()
    recall = Recall.objects.create(
        kind="recall",
        reference="RC-2026-001",
        reason="Listeria",
        instructions_fr="Ne pas consommer.",
        instructions_en="Do not eat.",
        starts_at=now,
        scope="lots",
        declared_at=now,
    )
    RecallLot.objects.create(recall=recall, lot=lot)
    ledger.ledger_append_recall(recall=recall)
    return recall


def test_a_product_record_hashes_exactly_as_before_entry_kinds():
    product = make_product()
    record = ledger.product_record(product)
    assert "kind" not in record
    leaf = LedgerLeaf.objects.get(product=product)
    assert leaf.kind == LedgerEntryKind.PRODUCT
    assert (
        bytes(leaf.leaf_hash)
        == hashlib.sha256(b"\x00" + ledger.canonical_json(record).encode()).digest()
    )


def test_a_recall_and_its_closing_are_leaves_of_their_kind_with_verifiable_proofs():
    lot = make_lot()
    product = make_product(lot)
    recall = sealed_recall(lot)
    closure = RecallClosure.objects.create(
        recall=recall, reason="Analyses négatives", closed_at=timezone.now()
    )
    ledger.ledger_append_recall_closure(closure=closure)
    later = make_product(lot)

    kinds = list(LedgerLeaf.objects.order_by("leaf_index").values_list("kind", flat=True))
    assert kinds == ["product", "recall", "recall_closure", "product"]
    record = json.loads(LedgerLeaf.objects.get(recall=recall).record)
    assert record["kind"] == "recall" and record["lot_codes"] == [lot.code]
    for entry in (recall, closure):
        proof = ledger.recall_proof(entry)
        assert proof["status"] == "sealed"
        head = proof["signed_head"]
        assert rfc_verify_inclusion(
            proof["leaf_index"],
            proof["tree_size"],
            bytes.fromhex(proof["leaf_hash"]),
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(head["root_hash"]),
        )
    for p in (product, later):
        assert ledger.product_proof(p)["status"] == "sealed"
    assert LedgerVerification.objects.count() == 0
    assert ledger.ledger_verify().ok


def test_a_leaf_names_exactly_one_row_of_its_kind():
    recall = sealed_recall(make_lot())
    product = make_product()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerLeaf.objects.filter(recall=recall).update(product=product)


def test_verify_ledger_names_the_recall_whose_row_was_altered_in_the_database(capsys):
    lot = make_lot()
    make_product(lot)
    recall = sealed_recall(lot)
    with connection.cursor() as cursor:
        # The append-only trigger (when present) refuses this; a superuser can disable it.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE recalls SET instructions_fr = 'Rien à signaler.' WHERE id = %s", [recall.pk]
        )
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")

    with pytest.raises(CommandError):
        call_command("verify_ledger")

    out = capsys.readouterr().out
    assert "[record_changed] recall RC-2026-001 changed after sealing" in out
    assert "instructions_fr: 'Ne pas consommer.' -> 'Rien à signaler.'" in out
    result = LedgerVerification.objects.get()
    assert "RC-2026-001" in result.summary
    assert ledger.recall_proof(recall)["flagged_by_verification"] is True
