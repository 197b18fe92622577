"""The ledger's Merkle algorithms against RFC 9162, checked by an independent implementation.

Everything the test trusts is written here from the RFC's text: a naive recursive MTH, PATH and
PROOF (§2.1.1, §2.1.3.1, §2.1.4.1) and the two verification algorithms (§2.1.3.2, §2.1.4.2).
No database: the stored-node path is exercised in test_ledger_db.py.
"""

from __future__ import annotations

import pytest

from tests.support.rfc9162 import (
    CT_LEAVES,
    CT_ROOTS,
    mth,
    path,
    proof,
    rfc_verify_consistency,
    rfc_verify_inclusion,
    sha,
)
from traceability import ledger
from traceability.ledger import merkle

ENTRIES = [f"entry {i}".encode() for i in range(64)]


@pytest.fixture(scope="module")
def log64() -> ledger.MemoryLog:
    log = ledger.MemoryLog()
    for entry in ENTRIES:
        log.append(ledger.leaf_hash(entry))
    return log


def test_the_naive_reference_reproduces_the_certificate_transparency_vectors():
    for n in range(1, 9):
        assert mth(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]


def test_roots_match_the_vectors_and_the_naive_tree_for_every_size():
    log = ledger.MemoryLog()
    for n, entry in enumerate(CT_LEAVES, start=1):
        log.append(ledger.leaf_hash(entry))
        assert log.root().hex() == CT_ROOTS[n - 1]
    assert ledger.merkle_root([]) == sha(b"")
    leaves = []
    for n, entry in enumerate(ENTRIES, start=1):
        leaves.append(ledger.leaf_hash(entry))
        assert ledger.merkle_root(leaves) == mth(ENTRIES[:n])


def test_stored_subtrees_give_the_root_of_every_earlier_size(log64):
    for n in range(1, 65):
        assert log64.root(n) == mth(ENTRIES[:n])


def test_inclusion_proofs_equal_the_rfc_path_and_verify_for_every_size_up_to_64(log64):
    for n in range(1, 65):
        root = mth(ENTRIES[:n])
        for m in range(n):
            audit = log64.inclusion_proof(m, n)
            assert audit == path(m, ENTRIES[:n]), (m, n)
            leaf = ledger.leaf_hash(ENTRIES[m])
            assert rfc_verify_inclusion(m, n, leaf, audit, root)
            assert ledger.verify_inclusion(index=m, size=n, leaf=leaf, path=audit, root=root)


def test_consistency_proofs_equal_the_rfc_proof_and_verify_for_every_pair_up_to_64(log64):
    for n in range(1, 65):
        second = mth(ENTRIES[:n])
        for m in range(1, n + 1):
            first = mth(ENTRIES[:m])
            cons = log64.consistency_proof(m, n)
            assert cons == (proof(m, ENTRIES[:n]) if m < n else []), (m, n)
            assert rfc_verify_consistency(m, n, first, second, cons)
            assert ledger.verify_consistency(
                first=m, second=n, first_root=first, second_root=second, proof=cons
            )


def test_a_wrong_leaf_path_or_root_fails_inclusion(log64):
    n, m = 37, 21
    root = mth(ENTRIES[:n])
    leaf = ledger.leaf_hash(ENTRIES[m])
    audit = log64.inclusion_proof(m, n)
    bad_leaf = ledger.leaf_hash(b"entry 21 altered")
    flipped = [audit[0][:-1] + bytes([audit[0][-1] ^ 1]), *audit[1:]]
    for args in [
        (m, n, bad_leaf, audit, root),
        (m, n, leaf, flipped, root),
        (m, n, leaf, audit[:-1], root),
        (m, n, leaf, [*audit, audit[0]], root),
        (m + 1, n, leaf, audit, root),
        (m, n, leaf, audit, mth(ENTRIES[:36])),
        (n, n, leaf, audit, root),
    ]:
        assert not rfc_verify_inclusion(*args)
        index, size, leaf_, audit_, root_ = args
        assert not ledger.verify_inclusion(
            index=index, size=size, leaf=leaf_, path=audit_, root=root_
        )


def test_a_rewritten_history_fails_consistency(log64):
    m, n = 13, 50
    cons = log64.consistency_proof(m, n)
    forged_first = mth([*ENTRIES[:12], b"rewritten"])
    second = mth(ENTRIES[:n])
    assert not ledger.verify_consistency(
        first=m, second=n, first_root=forged_first, second_root=second, proof=cons
    )
    assert not ledger.verify_consistency(
        first=m, second=n, first_root=mth(ENTRIES[:m]), second_root=second, proof=cons[:-1]
    )
    assert not ledger.verify_consistency(
        first=m, second=n, first_root=mth(ENTRIES[:m]), second_root=second, proof=[]
    )


def test_the_canonical_record_is_sorted_compact_utf8_with_floats_and_times_as_strings():
    from datetime import UTC, datetime

    from traceability.models import ConsumerProduct

    product = ConsumerProduct(
        id=7,
        product_id="FG_LL_20260108_0001",
        qr_code="SQAL_1_é_FG_LL_20260108_0001_0123456789abcdef",
        lot_id=1,
        sqal_sample_id="é",
        site_code="LL",
        fusion_score=0.87,
        fusion_grade="A+",
        is_compliant=True,
        tof_volume_mm3=125000.0,
        tof_surface_uniformity=None,
        spectral_freshness_index=1e-7,
        lot_code="LL2601001",
        lot_itm=125.5,
        lot_feeding_days=14,
        lot_feeding_start=datetime(2026, 1, 1, tzinfo=UTC),
        created_at=datetime(2026, 1, 8, 12, 0, 0, 123456, tzinfo=UTC),
    )
    text = ledger.canonical_json(ledger.product_record(product))
    assert text.startswith('{"created_at":"2026-01-08T12:00:00.123456Z","fusion_grade":"A+",')
    assert '"fusion_score":"0.87"' in text
    assert '"tof_volume_mm3":"125000.0"' in text
    assert '"spectral_freshness_index":"1e-07"' in text
    assert '"tof_surface_uniformity":null' in text
    assert '"lot_feeding_start":"2026-01-01T00:00:00.000000Z"' in text
    assert '"qr_code":"SQAL_1_é_FG' in text and " " not in text
    assert ledger.product_leaf_hash(product) == sha(b"\x00" + text.encode("utf-8"))


def test_the_signing_key_is_read_as_hex_or_base64_and_required_in_production(settings):
    import base64

    from django.core.exceptions import ImproperlyConfigured

    seed = bytes(range(32))
    settings.LEDGER_SIGNING_KEY = seed.hex()
    from_hex = ledger.public_key_bytes()
    settings.LEDGER_SIGNING_KEY = base64.b64encode(seed).decode()
    assert ledger.public_key_bytes() == from_hex
    settings.LEDGER_SIGNING_KEY = "not a key"
    with pytest.raises(ImproperlyConfigured, match="LEDGER_SIGNING_KEY"):
        ledger.signing_key()
    settings.LEDGER_SIGNING_KEY = ""
    dev = ledger.public_key_bytes()
    assert dev != from_hex and len(dev) == 32  # derived from SECRET_KEY in development
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match="must be set in production"):
        ledger.signing_key()


def test_a_heads_edge_ends_every_rfc_path_under_it_for_every_size_up_to_64(log64):
    # A proof is the leaf's siblings below the head's frontier, then the head's edge: for every
    # size and leaf, the two parts together are the RFC's PATH, hash for hash.
    for n in range(1, 65):
        edge = merkle.head_edge([log64.nodes[k] for k in merkle.frontier_keys(n)])
        assert len(edge) == 32 * (2 * n.bit_count() - 1)
        for m in range(n):
            split = merkle.edge_split(m, n)
            siblings = [log64.nodes[(j, (m >> j) ^ 1)] for j in range(split)]
            assert siblings + merkle.edge_path(m, n, edge) == path(m, ENTRIES[:n])
        assert merkle.edge_path(0, n, edge + bytes(32)) is None  # not an edge of this size
