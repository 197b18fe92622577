"""The ledger's Merkle algorithms against RFC 9162, checked by an independent implementation.

Everything the test trusts is written here from the RFC's text: a naive recursive MTH, PATH and
PROOF (§2.1.1, §2.1.3.1, §2.1.4.1) and the two verification algorithms (§2.1.3.2, §2.1.4.2).
No database: the stored-node path is exercised in test_ledger_db.py.
"""

from __future__ import annotations

import hashlib

import pytest

from traceability import ledger

# Leaf inputs and roots of the Certificate Transparency reference test vectors (RFC 6962 hashing).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1, over raw entries, literally recursive."""
    n = len(entries)
    if n == 0:
        return sha(b"")
    if n == 1:
        return sha(b"\x00" + entries[0])
    k = k_of(n)
    return sha(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = k_of(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of §2.1.4.1."""

    def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = k_of(n)
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    return subproof(m, entries, True)


def rfc_verify_inclusion(index: int, size: int, leaf: bytes, audit: list[bytes], root: bytes):
    """§2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in audit:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            r = sha(b"\x01" + r + p)
        fn //= 2
        sn //= 2
    return sn == 0 and r == root


def rfc_verify_consistency(first: int, second: int, first_hash, second_hash, consistency):
    """§2.1.4.2, step by step."""
    consistency = list(consistency)
    if first == second:
        return consistency == [] and first_hash == second_hash
    if not consistency:
        return False
    if first & (first - 1) == 0:
        consistency = [first_hash, *consistency]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = consistency[0]
    for c in consistency[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = sha(b"\x01" + c + fr)
            sr = sha(b"\x01" + c + sr)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            sr = sha(b"\x01" + sr + c)
        fn //= 2
        sn //= 2
    return fr == first_hash and sr == second_hash and sn == 0


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
