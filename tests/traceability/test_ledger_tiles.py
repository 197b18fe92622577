"""Proofs served from ``ledger_tiles`` and the head's edge: written when a head is signed, read
in one query, checked by verify_ledger, and never trusted over ``ledger_nodes`` when one is
missing."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from tests.factories import make_lot, make_sample
from tests.support.rfc9162 import path, rfc_verify_inclusion
from traceability import ledger
from traceability.models import ConsumerProduct, LedgerHead, LedgerTile, LedgerVerification

pytestmark = pytest.mark.django_db

# Heads at sizes that end inside and on the edges of tiles of tiers 0, 1 and 2 (16, 256 leaves).
HEAD_SIZES = (1, 17, 100, 256, 290)


@pytest.fixture(autouse=True)
def _ledger_settings(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 3600
    settings.LEDGER_HEAD_MAX_PENDING = 1000
    settings.LEDGER_SIGNING_KEY = ""
    settings.LEDGER_TRUSTED_PUBLIC_KEYS = []
    cache.clear()
    yield
    cache.clear()


def _products(count: int) -> list[ConsumerProduct]:
    """Unsealed products, in creation order."""
    lot = make_lot()
    ids = []
    with connection.cursor() as cursor:
        for _ in range(count):
            sample = make_sample(lot=lot)
            cursor.execute(
                "SELECT product_id FROM register_consumer_product(%s, %s, 'LL')",
                [lot.id, sample.sample_id],
            )
            ids.append(cursor.fetchone()[0])
    by_id = ConsumerProduct.objects.in_bulk(ids, field_name="product_id")
    return [by_id[i] for i in ids]


def _tiles() -> dict[int, bytes]:
    return {t.tile: bytes(t.hashes) for t in LedgerTile.objects.all()}


def _assert_proof_verifies(
    product: ConsumerProduct, index: int, size: int, entries: list[bytes] | None = None
) -> None:
    """The product's proof verifies (RFC 9162 §2.1.3.2, independent code) and, given the log's
    entries (its canonical records), is the RFC's PATH hash for hash."""
    cache.clear()
    proof = ledger.product_proof(product)
    assert (proof["status"], proof["leaf_index"], proof["tree_size"]) == ("sealed", index, size)
    audit = [bytes.fromhex(h) for h in proof["audit_path"]]
    root = bytes.fromhex(proof["signed_head"]["root_hash"])
    assert rfc_verify_inclusion(index, size, ledger.product_leaf_hash(product), audit, root)
    if entries is not None:
        assert audit == path(index, entries[:size])


def _entries(products: list[ConsumerProduct]) -> list[bytes]:
    return [ledger.canonical_json(ledger.product_record(p)).encode("utf-8") for p in products]


def test_proofs_read_from_tiles_verify_for_every_leaf_under_each_new_head(
    django_assert_num_queries,
):
    products = _products(HEAD_SIZES[-1])
    start = 0
    for size in HEAD_SIZES:
        result = ledger.ledger_append_products(products=products[start:size])
        assert result.head is not None and result.head.tree_size == size
        start = size
        # Every leaf under the head just signed: one query each (no fallback to ledger_nodes).
        for index in range(size):
            with django_assert_num_queries(1):
                _assert_proof_verifies(products[index], index, size)

    # The tiles written head by head are the tiles written at once for the whole log.
    incremental = _tiles()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_tiles")
        cursor.execute("SELECT ledger_write_tiles(0, %s)", [HEAD_SIZES[-1]])
    assert _tiles() == incremental
    assert len(incremental) == 19 + 2 + 1  # tier 0: ceil(290/16); tier 1: 2; tier 2: 1
    assert ledger.ledger_verify().ok


def test_a_missing_or_zeroed_tile_falls_back_to_the_stored_nodes(django_assert_num_queries):
    products = _products(48)
    ledger.ledger_append_products(products=products)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_tiles WHERE tile = 0")  # tier 0, leaves 0-15
        cursor.execute(  # tier 0, leaves 32-47
            "UPDATE ledger_tiles SET hashes = decode(repeat('00', 960), 'hex') WHERE tile = 2"
        )
    for index in (3, 35, 47):
        with django_assert_num_queries(2):  # the proof, then the nodes its tiles lack
            _assert_proof_verifies(products[index], index, 48)
    # Leaf 20's path is in tile 1 of tier 0 and tile 0 of tier 1: untouched, one query.
    with django_assert_num_queries(1):
        _assert_proof_verifies(products[20], 20, 48)
    # A zeroed or missing tile is not tampering: proofs stay right.
    assert ledger.ledger_verify().ok


def test_verify_ledger_names_an_altered_tile():
    products = _products(40)
    ledger.ledger_append_products(products=products)
    with connection.cursor() as cursor:
        # Node (1, 9) of tile 1 of tier 0 (leaves 16-31) replaced: the proofs of leaves 16-17
        # read from this tile would not verify.
        cursor.execute(
            "UPDATE ledger_tiles SET hashes = overlay(hashes placing sha256(hashes) "
            "from 32 * (16 + 1) + 1 for 32) WHERE tile = 1"
        )

    outcome = ledger.ledger_verify()

    assert not outcome.ok
    tiles = [f for f in outcome.findings if f["kind"] == "tiles_altered"]
    assert len(tiles) == 1
    assert "tier 0" in tiles[0]["detail"] and "first at index 1" in tiles[0]["detail"]


# Every size up to 33 (tier 0 and its edges), then both sides of 64, 128 and 256.
MANY_HEAD_SIZES = (*range(1, 34), 63, 64, 65, 127, 128, 129, 255, 256, 257, 300)


def test_every_proof_under_heads_of_many_sizes_is_the_rfc_path_in_one_query(
    django_assert_num_queries,
):
    products = _products(MANY_HEAD_SIZES[-1])
    entries = _entries(products)
    start = 0
    for size in MANY_HEAD_SIZES:
        ledger.ledger_append_products(products=products[start:size])
        start = size
        for index in range(size):
            with django_assert_num_queries(1):
                _assert_proof_verifies(products[index], index, size, entries)
    assert ledger.ledger_verify().ok


def test_a_head_without_its_edge_or_with_a_cut_one_falls_back_to_the_stored_nodes(
    django_assert_num_queries,
):
    # A head signed before edges were stored (or by other means) has none; a cut edge is not
    # trusted either: the proof is read from ledger_nodes, one more query, and stays right.
    products = _products(45)
    entries = _entries(products)
    ledger.ledger_append_products(products=products)
    for edge in (None, b"", bytes(LedgerHead.objects.get().edge_hashes)[:-32]):
        LedgerHead.objects.update(edge_hashes=edge)
        for index in (0, 31, 32, 40, 44):
            with django_assert_num_queries(2):
                _assert_proof_verifies(products[index], index, 45, entries)


def test_a_leaf_on_the_heads_frontier_needs_no_tile(django_assert_num_queries):
    # Leaf 44 of 45 is a frontier node itself: its whole path is the head's edge.
    products = _products(45)
    entries = _entries(products)
    ledger.ledger_append_products(products=products)
    LedgerTile.objects.all().delete()
    with django_assert_num_queries(1):
        _assert_proof_verifies(products[44], 44, 45, entries)
    with django_assert_num_queries(2):  # leaf 43's sibling is in a tile: read from the nodes
        _assert_proof_verifies(products[43], 43, 45, entries)


def test_verify_ledger_names_an_altered_head_edge():
    products = _products(21)
    ledger.ledger_append_products(products=products)
    edge = bytearray(LedgerHead.objects.get().edge_hashes)
    edge[0] ^= 1
    LedgerHead.objects.update(edge_hashes=bytes(edge))

    outcome = ledger.ledger_verify()

    assert not outcome.ok
    assert [f["kind"] for f in outcome.findings] == ["head_edge_altered"]
    assert outcome.findings[0]["tree_size"] == 21


def test_the_latest_failed_verification_flags_the_proofs_of_the_products_it_names():
    products = _products(6)
    ledger.ledger_append_products(products=products)
    assert not any(ledger.product_proof(p)["flagged_by_verification"] for p in products)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = "
            "CASE sqal_fusion_grade WHEN 'A+' THEN 'C' ELSE 'A+' END WHERE id = %s",
            [products[4].pk],
        )
    outcome = ledger.ledger_verify()
    assert not outcome.ok

    cache.clear()
    flagged = [ledger.product_proof(p)["flagged_by_verification"] for p in products]
    assert flagged == [False, False, False, False, True, False]
    # A finding that names a product by its id alone flags it too.
    LedgerVerification.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        ok=False,
        tree_size=6,
        findings=[{"kind": "record_changed", "product_id": products[1].product_id}],
    )
    cache.clear()
    flagged = [ledger.product_proof(p)["flagged_by_verification"] for p in products]
    assert flagged == [False, True, False, False, False, False]
