"""The tamper-evident ledger: an append-only Merkle log of consumer products (RFC 9162 shape).

What is hashed
    Each product is one leaf: ``SHA-256(0x00 || canonical_record_bytes)``; an interior node is
    ``SHA-256(0x01 || left || right)``; the tree of n leaves splits at the largest power of two
    smaller than n (RFC 9162 §2.1.1). The empty tree's root is ``SHA-256("")``.

The canonical record (version 1)
    A JSON object of the product's traceability fields (``record_fields``), serialised with keys
    sorted by code point, no whitespace (``","`` and ``":"`` separators), UTF-8, non-ASCII kept
    as is (``ensure_ascii=False``). Values are only strings, integers, booleans and null, so that
    any JSON library (the browser's included) writes the same bytes:
    - floats are strings in Python's shortest round-trip form (``repr``), e.g. ``"0.87"``,
      ``"125000.0"``; null stays null;
    - times are strings in UTC with microseconds: ``"2026-01-08T12:00:00.000000Z"``;
    - ``"v": 1`` is the record version.

Storage (logarithmic append and proofs)
    ``ledger_nodes`` keeps every complete subtree (level, index) -> hash, written once when its
    last leaf arrives. An append reads the compact frontier (at most log2 n nodes, one query) and
    writes at most log2 n + 1 nodes (one query). A root, an inclusion or a consistency proof needs
    the O(log n) complete subtrees that make up its ranges, read in one query.

Order and signing
    Appends take a transaction-scoped PostgreSQL advisory lock, so the log has one order. A signed
    tree head (Ed25519 over the RFC 6962 ``TreeHeadSignature`` bytes: version 0, type 1,
    uint64 timestamp in ms, uint64 tree size, 32-byte root) is made by the append that finds the
    latest head older than ``LEDGER_HEAD_INTERVAL_SECONDS`` or ``LEDGER_HEAD_MAX_PENDING`` leaves
    behind; a proof request for a leaf no head covers yet signs one under the same rule, and
    ``manage.py seal_ledger`` signs whatever is pending.

Keys
    ``LEDGER_SIGNING_KEY``: the 32-byte Ed25519 private key (seed) as 64 hex digits or base64.
    Required in production. In development, when unset, it is derived from ``SECRET_KEY``
    (SHA-256 of a fixed label and the key): stable across processes, and as public as the
    development SECRET_KEY, so never trust a development log. ``LEDGER_TRUSTED_PUBLIC_KEYS``
    lists older public keys (hex or base64, comma separated) whose heads still verify after a
    key rotation.

Products registered by ``traceability.services.product_register`` are appended in the same
transaction. Products inserted by other paths are appended by ``manage.py seal_ledger``;
``manage.py verify_ledger`` reports them as unsealed until then.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from traceability.models import ConsumerProduct, LedgerHead, LedgerLeaf, LedgerVerification

RECORD_VERSION = 1
EMPTY_ROOT = hashlib.sha256(b"").digest()
# pg_advisory_xact_lock key of the log: the ASCII of "GTLEDGER" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"GTLEDGER", "big", signed=True)
DEV_KEY_LABEL = b"gaveurs-trace ledger development key|"

Key = tuple[int, int]  # (level, index) of a complete subtree


# --- Hashing (RFC 9162 §2.1.1) ------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[Key]:
    """The complete subtrees, largest first, whose leaves are exactly [start, end).

    Valid for the ranges RFC 9162's recursions produce: ``start`` is a multiple of the largest
    power of two not above ``end - start``.
    """
    keys: list[Key] = []
    pos, size = start, end - start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, pos >> level))
            pos += 1 << level
    return keys


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees (largest first): H(a, H(b, H(c, d)))."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), bottom up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m = start + k, m - k
    return list(reversed(ranges))


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges of PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    return list(reversed(ranges))


def frontier_keys(size: int) -> list[Key]:
    """The complete subtrees that make up a tree of ``size`` leaves, largest first."""
    return range_keys(0, size)


class Frontier:
    """The compact frontier of a log: enough to append and to compute the root (O(log n))."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        keys = frontier_keys(size)
        if len(keys) != len(hashes):
            raise ValueError(f"a frontier of size {size} has {len(keys)} nodes, not {len(hashes)}")
        self.size = size
        self.nodes: list[tuple[int, int, bytes]] = [
            (lvl, idx, h) for (lvl, idx), h in zip(keys, hashes, strict=True)
        ]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the complete subtrees it completes, the leaf first."""
        created = [(0, self.size, leaf)]
        h, level, index = leaf, 0, self.size
        while self.nodes and self.nodes[-1][0] == level:
            _, left_index, left = self.nodes.pop()
            h, level, index = node_hash(left, h), level + 1, left_index >> 1
            created.append((level, index, h))
        self.nodes.append((level, index, h))
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold_right([h for _, _, h in self.nodes])


class MemoryLog:
    """The same log with its nodes in a dict: used by the benchmark and the tests."""

    def __init__(self) -> None:
        self.nodes: dict[Key, bytes] = {}
        self.frontier = Frontier()

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        for level, index, h in self.frontier.append(leaf):
            self.nodes[(level, index)] = h

    def _fetch(self, keys: Iterable[Key]) -> dict[Key, bytes]:
        return {k: self.nodes[k] for k in keys}

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return fold_right([self.nodes[k] for k in range_keys(0, size)])

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return _ranges_hashes(inclusion_ranges(index, size), self._fetch)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if first == second:
            return []
        return _ranges_hashes(consistency_ranges(first, second), self._fetch)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of a list of leaf hashes, via the frontier (O(n) time, O(log n) memory)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


# --- RFC 9162 verification algorithms (§2.1.3.2 and §2.1.4.2) -----------------------------


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    if first == second:
        return not proof and first_root == second_root
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- The canonical record ----------------------------------------------------------------


def _float(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def product_record(product: ConsumerProduct) -> dict[str, Any]:
    """The traceability record of a product that is sealed (see the module docstring)."""
    return {
        "v": RECORD_VERSION,
        "product_id": product.product_id,
        "qr_code": product.qr_code,
        "created_at": _time(product.created_at),
        "site_code": product.site_code,
        "sqal_sample_id": product.sqal_sample_id,
        "fusion_score": _float(product.fusion_score),
        "fusion_grade": product.fusion_grade,
        "is_compliant": product.is_compliant,
        "tof_volume_mm3": _float(product.tof_volume_mm3),
        "tof_surface_uniformity": _float(product.tof_surface_uniformity),
        "spectral_freshness_index": _float(product.spectral_freshness_index),
        "lot_id": product.lot_id,
        "lot_code": product.lot_code,
        "lot_itm": _float(product.lot_itm),
        "lot_mean_final_weight_g": _float(product.lot_mean_final_weight_g),
        "lot_feeding_start": _time(product.lot_feeding_start),
        "lot_feeding_end": _time(product.lot_feeding_end),
        "lot_feeding_days": product.lot_feeding_days,
    }


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def product_leaf_hash(product: ConsumerProduct) -> bytes:
    return leaf_hash(canonical_json(product_record(product)).encode("utf-8"))


# --- Keys and signed tree heads -----------------------------------------------------------


def _decode_key(value: str, what: str) -> bytes:
    value = value.strip()
    try:
        raw = bytes.fromhex(value) if len(value) == 64 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{what} must be 32 bytes as 64 hex digits or base64")
    return raw


@functools.lru_cache(maxsize=8)
def _private_key(configured: str, secret_key: str, production: bool) -> Ed25519PrivateKey:
    if configured:
        seed = _decode_key(configured, "LEDGER_SIGNING_KEY")
    elif production:
        raise ImproperlyConfigured("LEDGER_SIGNING_KEY must be set in production")
    else:
        seed = hashlib.sha256(DEV_KEY_LABEL + secret_key.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def signing_key() -> Ed25519PrivateKey:
    return _private_key(
        getattr(settings, "LEDGER_SIGNING_KEY", ""),
        settings.SECRET_KEY,
        getattr(settings, "PRODUCTION", False),
    )


def public_key_bytes(key: Ed25519PrivateKey | None = None) -> bytes:
    key = key or signing_key()
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def trusted_public_keys() -> dict[str, bytes]:
    """key id -> raw public key: the current key and any listed in LEDGER_TRUSTED_PUBLIC_KEYS."""
    keys = [public_key_bytes()]
    for value in getattr(settings, "LEDGER_TRUSTED_PUBLIC_KEYS", []):
        keys.append(_decode_key(value, "LEDGER_TRUSTED_PUBLIC_KEYS entry"))
    return {key_id(k): k for k in keys}


def head_message(*, tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """RFC 6962 §3.5 TreeHeadSignature: version v1 (0), tree_hash (1), timestamp, size, root."""
    return struct.pack(">BBQQ32s", 0, 1, timestamp_ms, tree_size, root_hash)


def head_signature_is_valid(head: LedgerHead, keys: dict[str, bytes] | None = None) -> bool:
    public = (keys or trusted_public_keys()).get(head.key_id)
    if public is None:
        return False
    message = head_message(
        tree_size=head.tree_size, root_hash=bytes(head.root_hash), timestamp_ms=head.timestamp_ms
    )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes(head.signature), message)
    except InvalidSignature:
        return False
    return True


def head_as_dict(head: LedgerHead) -> dict[str, Any]:
    keys = trusted_public_keys()
    public = keys.get(head.key_id, b"")
    return {
        "tree_size": head.tree_size,
        "root_hash": bytes(head.root_hash).hex(),
        "timestamp": head.timestamp_ms,
        "timestamp_iso": _time(datetime.fromtimestamp(head.timestamp_ms / 1000, tz=UTC)),
        "signature": base64.b64encode(bytes(head.signature)).decode(),
        "key_id": head.key_id,
        "public_key": base64.b64encode(public).decode(),
    }


# --- Storage ------------------------------------------------------------------------------


def _fetch_nodes(keys: Iterable[Key]) -> dict[Key, bytes]:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.level, n.idx, n.hash FROM ledger_nodes n "
            "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
            "ON n.level = k.level AND n.idx = k.idx",
            [[lvl for lvl, _ in keys], [idx for _, idx in keys]],
        )
        found = {(lvl, idx): bytes(h) for lvl, idx, h in cursor.fetchall()}
    missing = [k for k in keys if k not in found]
    if missing:
        raise LedgerCorrupt(f"ledger nodes missing: {missing[:5]}")
    return found


class LedgerCorrupt(Exception):
    """A node the tree shape requires is not stored: the ledger tables were altered."""


def _ranges_hashes(
    ranges: Sequence[tuple[int, int]],
    fetch: Callable[[Iterable[Key]], dict[Key, bytes]] | None = None,
) -> list[bytes]:
    nodes = (fetch or _fetch_nodes)(k for start, end in ranges for k in range_keys(start, end))
    return [fold_right([nodes[k] for k in range_keys(start, end)]) for start, end in ranges]


def stored_root(size: int) -> bytes:
    """The root of the first ``size`` leaves, from stored nodes (one query)."""
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)])[0]


def inclusion_proof(*, index: int, size: int) -> list[bytes]:
    return _ranges_hashes(inclusion_ranges(index, size))


def consistency_proof(*, first: int, second: int) -> list[bytes]:
    if first == second:
        return []
    return _ranges_hashes(consistency_ranges(first, second))


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def _log_state() -> tuple[int, LedgerHead | None]:
    """(tree size, latest head); call under the lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT coalesce(max(leaf_index) + 1, 0) FROM ledger_leaves), "
            "h.tree_size, h.root_hash, h.timestamp_ms, h.signature, h.key_id "
            "FROM (SELECT 1) one LEFT JOIN LATERAL ("
            "  SELECT * FROM ledger_heads ORDER BY tree_size DESC LIMIT 1) h ON true"
        )
        size, *head = cursor.fetchone()
    if head[0] is None:
        return size, None
    return size, LedgerHead(
        tree_size=head[0],
        root_hash=bytes(head[1]),
        timestamp_ms=head[2],
        signature=bytes(head[3]),
        key_id=head[4],
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _head_is_due(size: int, head: LedgerHead | None, *, force: bool = False) -> bool:
    last_size = head.tree_size if head else 0
    if size <= last_size:
        return False
    if force or head is None:
        return True
    interval_ms = int(getattr(settings, "LEDGER_HEAD_INTERVAL_SECONDS", 60) * 1000)
    max_pending = int(getattr(settings, "LEDGER_HEAD_MAX_PENDING", 100))
    return size - last_size >= max_pending or _now_ms() - head.timestamp_ms >= interval_ms


def _sign_head(size: int, root: bytes, previous: LedgerHead | None) -> LedgerHead:
    key = signing_key()
    timestamp = _now_ms()
    if previous is not None:
        timestamp = max(timestamp, previous.timestamp_ms + 1)  # heads' times never go back
    signature = key.sign(head_message(tree_size=size, root_hash=root, timestamp_ms=timestamp))
    head = LedgerHead(
        tree_size=size,
        root_hash=root,
        timestamp_ms=timestamp,
        signature=signature,
        key_id=key_id(public_key_bytes(key)),
    )
    head.save(force_insert=True)
    return head


@dataclass(frozen=True)
class AppendResult:
    appended: int
    tree_size: int
    head: LedgerHead | None  # the head signed by this call, if any


# Under the lock, one round trip: the log's size, its latest head, the frontier nodes, and
# which of the products about to be appended are already in the log.
STATE_SQL = """
WITH s AS (
    SELECT coalesce(max(leaf_index) + 1, 0) AS size FROM ledger_leaves
), head AS (
    SELECT tree_size, root_hash, timestamp_ms, signature, key_id
    FROM ledger_heads ORDER BY tree_size DESC LIMIT 1
), f AS (
    SELECT g.l AS level, (s.size >> g.l) - 1 AS idx
    FROM s, generate_series(0, 62) AS g(l) WHERE (s.size >> g.l) & 1 = 1
)
SELECT s.size, head.tree_size, head.root_hash, head.timestamp_ms, head.signature, head.key_id,
       ARRAY(SELECT product_pk FROM ledger_leaves WHERE product_pk = ANY(%s::integer[])),
       n.level, n.idx, n.hash
FROM s
LEFT JOIN head ON true
LEFT JOIN (f JOIN ledger_nodes n USING (level, idx)) ON true
"""

WRITE_SQL = """
WITH leaves AS (
    INSERT INTO ledger_leaves (leaf_index, product_pk, leaf_hash, record, sealed_at)
    SELECT i, p, h, r, %s
    FROM unnest(%s::bigint[], %s::integer[], %s::bytea[], %s::text[]) AS t(i, p, h, r)
), nodes AS (
    INSERT INTO ledger_nodes (level, idx, hash)
    SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])
)
UPDATE consumer_products cp SET blockchain_hash = encode(t.h, 'hex')
FROM unnest(%s::integer[], %s::bytea[]) AS t(p, h) WHERE cp.id = t.p
"""


def _append_locked(products: Sequence[ConsumerProduct], *, force_head: bool) -> AppendResult:
    """Append products in order, skipping any already in the log; the caller holds the lock.

    Two round trips whatever the batch: the state read (STATE_SQL) and the writes (WRITE_SQL),
    plus a head insert when one is due.
    """
    with connection.cursor() as cursor:
        cursor.execute(STATE_SQL, [[p.pk for p in products]])
        rows = cursor.fetchall()
    size, *head_row = rows[0][:6]
    sealed = set(rows[0][6])
    head = None
    if head_row[0] is not None:
        head = LedgerHead(
            tree_size=head_row[0],
            root_hash=bytes(head_row[1]),
            timestamp_ms=head_row[2],
            signature=bytes(head_row[3]),
            key_id=head_row[4],
        )
    found = {(r[7], r[8]): bytes(r[9]) for r in rows if r[7] is not None}
    keys = frontier_keys(size)
    if any(k not in found for k in keys):
        raise LedgerCorrupt(f"frontier nodes of a log of size {size} are missing")
    frontier = Frontier(size, [found[k] for k in keys])
    now = timezone.now()
    leaves: list[tuple[int, int, bytes, str]] = []
    nodes: list[tuple[int, int, bytes]] = []
    for product in products:
        if product.pk in sealed:
            continue
        record = canonical_json(product_record(product))
        leaf = leaf_hash(record.encode("utf-8"))
        leaves.append((frontier.size, product.pk, leaf, record))
        nodes.extend(frontier.append(leaf))
    if leaves:
        with connection.cursor() as cursor:
            cursor.execute(
                WRITE_SQL,
                [
                    now,
                    *map(list, zip(*leaves, strict=True)),
                    *map(list, zip(*nodes, strict=True)),
                    [pk for _, pk, _, _ in leaves],
                    [h for _, _, h, _ in leaves],
                ],
            )
    signed = None
    if _head_is_due(frontier.size, head, force=force_head):
        signed = _sign_head(frontier.size, frontier.root(), head)
    return AppendResult(appended=len(leaves), tree_size=frontier.size, head=signed)


def ledger_append_product(*, product_id: str) -> AppendResult | None:
    """Seal one product (by its public id) in the caller's transaction; None when already sealed.

    Idempotent: a product already in the log appends nothing (checked again under the lock).
    """
    with transaction.atomic():
        product = (
            ConsumerProduct.objects.select_related("ledger_leaf")
            .filter(product_id=product_id)
            .first()
        )
        if product is None or _has_leaf(product):
            return None
        _lock()
        result = _append_locked([product], force_head=False)
        return result if result.appended else None


def ledger_append_products(
    *, products: Sequence[ConsumerProduct], batch_size: int = 5000
) -> AppendResult:
    """Seal saved products, in the given order, in the caller's transaction (bulk writers:
    history import, demo and synthetic data). Already sealed ones are skipped; a head is signed
    over the result."""
    appended, size, head = 0, 0, None
    with transaction.atomic():
        _lock()
        for start in range(0, max(len(products), 1), batch_size):
            batch = products[start : start + batch_size]
            last = start + batch_size >= len(products)
            result = _append_locked(batch, force_head=last)
            appended += result.appended
            size = result.tree_size
            head = result.head or head
    return AppendResult(appended=appended, tree_size=size, head=head)


def _has_leaf(product: ConsumerProduct) -> bool:
    try:
        product.ledger_leaf  # noqa: B018 (loaded by select_related: no query)
    except LedgerLeaf.DoesNotExist:
        return False
    return True


def ledger_seal_pending(*, batch_size: int = 5000, sign: bool = True) -> AppendResult:
    """Append every product not yet in the log (oldest first) and sign a head if any is pending.

    For products inserted by other paths than ``product_register`` (imports, fixtures).
    """
    appended, size, head = 0, 0, None
    while True:
        with transaction.atomic():
            _lock()
            batch = list(
                ConsumerProduct.objects.filter(ledger_leaf__isnull=True).order_by(
                    "created_at", "pk"
                )[:batch_size]
            )
            last = len(batch) < batch_size
            result = _append_locked(batch, force_head=sign and last)
        appended += result.appended
        size = result.tree_size
        head = result.head or head
        if last:
            return AppendResult(appended=appended, tree_size=size, head=head)


def ledger_sign_head(*, force: bool = False) -> LedgerHead | None:
    """Sign a head over the current log when one is due (or whenever leaves are pending)."""
    with transaction.atomic():
        _lock()
        size, head = _log_state()
        if not _head_is_due(size, head, force=force):
            return None
        return _sign_head(size, stored_root(size), head)


def latest_head() -> LedgerHead | None:
    return LedgerHead.objects.order_by("-tree_size").first()


# --- Proofs for consumers -----------------------------------------------------------------


def _proof_cache_key(product_pk: int) -> str:
    return f"ledger:proof:v1:{product_pk}"


# One round trip: the product's leaf, the latest head, and a superset of the audit path's
# nodes: the sibling of the leaf's ancestor at every level (complete left or right siblings)
# plus the frontier of the head (which covers any incomplete right sibling range).
PROOF_SQL = """
WITH leaf AS (
    SELECT leaf_index, leaf_hash, sealed_at FROM ledger_leaves WHERE product_pk = %s
), head AS (
    SELECT tree_size, root_hash, timestamp_ms, signature, key_id
    FROM ledger_heads ORDER BY tree_size DESC LIMIT 1
), wanted AS (
    SELECT g.l AS level, (leaf.leaf_index >> g.l) # 1 AS idx
    FROM leaf, head, generate_series(0, 62) AS g(l)
    WHERE head.tree_size > leaf.leaf_index
      AND ((leaf.leaf_index >> g.l) # 1) <= ((head.tree_size - 1) >> g.l)
    UNION
    SELECT g.l, (head.tree_size >> g.l) - 1
    FROM head, generate_series(0, 62) AS g(l)
    WHERE (head.tree_size >> g.l) & 1 = 1
)
SELECT leaf.leaf_index, leaf.leaf_hash, leaf.sealed_at,
       head.tree_size, head.root_hash, head.timestamp_ms, head.signature, head.key_id,
       n.level, n.idx, n.hash
FROM leaf
LEFT JOIN head ON true
LEFT JOIN (wanted JOIN ledger_nodes n USING (level, idx)) ON true
"""


def product_proof(product: ConsumerProduct) -> dict[str, Any]:
    """Everything a client needs to verify a product's record; cached per product.

    Returns ``{"status": "unsealed"}`` when the product is not in the log, ``"pending"`` when no
    signed head covers its leaf yet (and none may be signed now), else ``"sealed"`` with the
    leaf index, audit path and signed head. One query (none when cached); signing a head that
    is due costs a few more, at most once per LEDGER_HEAD_INTERVAL_SECONDS.
    """
    cache_key = _proof_cache_key(product.pk)
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    with connection.cursor() as cursor:
        cursor.execute(PROOF_SQL, [product.pk])
        rows = cursor.fetchall()
    if not rows:
        return {"status": "unsealed"}
    index, leaf, sealed_at, *head_row = rows[0][:8]
    nodes = {(r[8], r[9]): bytes(r[10]) for r in rows if r[8] is not None}
    head = None
    if head_row[0] is not None:
        head = LedgerHead(
            tree_size=head_row[0],
            root_hash=bytes(head_row[1]),
            timestamp_ms=head_row[2],
            signature=bytes(head_row[3]),
            key_id=head_row[4],
        )
    fetch: Callable[[Iterable[Key]], dict[Key, bytes]] | None = None
    if head is None or head.tree_size <= index:
        signed = ledger_sign_head()
        head = signed or head
    else:

        def fetch(keys: Iterable[Key]) -> dict[Key, bytes]:
            keys = list(keys)
            if any(k not in nodes for k in keys):
                raise LedgerCorrupt(f"ledger nodes missing for leaf {index}")
            return {k: nodes[k] for k in keys}

    proof: dict[str, Any] = {
        "status": "pending",
        "leaf_index": index,
        "leaf_hash": bytes(leaf).hex(),
        "sealed_at": _time(sealed_at),
    }
    if head is None or head.tree_size <= index:
        return proof  # not cached: a head will come
    try:
        path = _ranges_hashes(inclusion_ranges(index, head.tree_size), fetch)
    except LedgerCorrupt:
        return {**proof, "status": "unavailable"}
    proof.update(
        status="sealed",
        tree_size=head.tree_size,
        audit_path=[h.hex() for h in path],
        signed_head=head_as_dict(head),
    )
    cache.set(cache_key, proof, getattr(settings, "LEDGER_PROOF_CACHE_SECONDS", 60))
    return proof


def scan_context(product: ConsumerProduct) -> dict[str, Any]:
    """Context for ``templates/traceability/_ledger_block.html`` on the scan page.

    Returns ``{"ledger": {...}}``: ``status`` (sealed / pending / unsealed), ``entry_number``
    (1-based), ``tree_size``, ``sealed_at`` (datetime), and ``payload``, the object to embed with
    ``json_script`` for static/traceability/ledger.js: the record as it is now in the database,
    the proof and the signed head. One query, none when the proof is cached.
    """
    proof = product_proof(product)
    info: dict[str, Any] = {"status": proof["status"]}
    if proof["status"] != "unsealed":
        info.update(
            entry_number=proof["leaf_index"] + 1,
            tree_size=proof.get("tree_size"),
            sealed_at=datetime.fromisoformat(proof["sealed_at"]),
        )
    record = product_record(product)
    info["record_items"] = [
        (k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(record.items())
    ]
    info["payload"] = {"record": record, "proof": proof}
    return {"ledger": info}


class LedgerError(Exception):
    """A proof request that cannot be answered; ``code`` is stable, ``status`` HTTP-like."""

    def __init__(self, code: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status


def ledger_proof_for_qr(*, qr_code: str) -> dict[str, Any]:
    """The inclusion proof of a product found by its QR code (the ``/api/ledger/proof`` body)."""
    product = ConsumerProduct.objects.filter(qr_code=qr_code[:300]).first()
    if product is None:
        raise LedgerError("unknown_product", f"no product with QR code {qr_code[:300]!r}", 404)
    proof = product_proof(product)
    if proof["status"] == "unsealed":
        raise LedgerError("unsealed", f"product {product.product_id} is not in the log yet", 409)
    if proof["status"] != "sealed":
        wait = getattr(settings, "LEDGER_HEAD_INTERVAL_SECONDS", 60)
        raise LedgerError(
            "no_signed_head",
            f"product {product.product_id} is leaf #{proof['leaf_index']}; no signed tree head "
            f"covers it yet (one is signed at most every {wait} s): retry later",
            409,
        )
    record = product_record(product)
    return {
        "qr_code": product.qr_code,
        "product_id": product.product_id,
        "record": record,
        "record_canonical": canonical_json(record),
        **{k: proof[k] for k in ("leaf_index", "leaf_hash", "sealed_at", "tree_size")},
        "audit_path": proof["audit_path"],
        "signed_head": proof["signed_head"],
    }


def ledger_consistency_between(*, first: int, second: int | None) -> dict[str, Any]:
    """A consistency proof between two signed heads (``second`` defaults to the latest)."""
    if first < 1:
        raise LedgerError("invalid_argument", "from must be a tree size of at least 1", 400)
    if second is not None and second < first:
        raise LedgerError("invalid_argument", f"from ({first}) must not exceed to ({second})", 400)
    old = LedgerHead.objects.filter(tree_size=first).first()
    new = latest_head() if second is None else LedgerHead.objects.filter(tree_size=second).first()
    for size, head in ((first, old), (second, new)):
        if head is None:
            raise LedgerError("unknown_head", f"no signed tree head of size {size}", 404)
    assert old is not None and new is not None
    if new.tree_size < old.tree_size:
        raise LedgerError("invalid_argument", "the latest head is older than from", 400)
    proof = consistency_proof(first=old.tree_size, second=new.tree_size)
    return {
        "first": head_as_dict(old),
        "second": head_as_dict(new),
        "proof": [h.hex() for h in proof],
    }


def published_heads(*, limit: int = 100, before: int | None = None) -> dict[str, Any]:
    """The public list of signed heads, newest first, with the key that verifies them."""
    heads = LedgerHead.objects.order_by("-tree_size")
    if before is not None:
        heads = heads.filter(tree_size__lt=before)
    public = public_key_bytes()
    return {
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(public).decode(),
        "key_id": key_id(public),
        "trusted_keys": {k: base64.b64encode(v).decode() for k, v in trusted_public_keys().items()},
        "hashing": "RFC 9162: leaf SHA-256(0x00||record), node SHA-256(0x01||left||right)",
        "signed_message": "RFC 6962 TreeHeadSignature: 0x00 0x01 uint64 timestamp_ms "
        "uint64 tree_size root_hash[32], big-endian",
        "heads": [head_as_dict(h) for h in heads[: max(1, min(limit, 1000))]],
    }


def public_key_pem() -> str:
    return (
        signing_key()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# --- Verification -------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    detail: str
    product_id: str = ""
    leaf_index: int | None = None
    tree_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


def _changed_fields(sealed: str, current: dict[str, Any]) -> list[str]:
    try:
        before = json.loads(sealed)
    except ValueError:
        return ["<sealed record unreadable>"]
    return [
        f"{k}: {before.get(k)!r} -> {current.get(k)!r}"
        for k in sorted(set(before) | set(current))
        if before.get(k) != current.get(k)
    ]


def ledger_verify(*, batch_size: int = 2000) -> LedgerVerification:
    """Check the whole log against the current rows and the signed heads; store the outcome.

    1. every leaf: recompute from the product row as it is now, compare with the sealed leaf;
       name each product whose record changed (and which fields), or whose row is gone;
    2. the stored leaves hash to their sealed records, and blockchain_hash matches;
    3. the tree rebuilt from the stored leaves matches every stored node and every signed root;
       the tree rebuilt from the current rows is compared with the signed roots too;
    4. every head's signature verifies with a trusted key; consecutive heads are consistent
       (RFC 9162 consistency proofs from the stored nodes);
    5. products that are not in the log are reported as unsealed (``manage.py seal_ledger``).
    Reads one REPEATABLE READ snapshot, so concurrent appends do not cause false findings.
    """
    started = timezone.now()
    findings: list[Finding] = []
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # inside a caller's transaction, its snapshot rules apply
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        heads = list(LedgerHead.objects.order_by("tree_size"))
        head_sizes = {h.tree_size: h for h in heads}
        stored_tree = Frontier()
        current_tree = Frontier()
        stored_levels: list[list[bytes]] = [[]]  # level 0, for the node check
        current_roots: dict[int, bytes] = {}
        stored_roots: dict[int, bytes] = {}
        checked = 0
        leaves = (
            LedgerLeaf.objects.select_related("product")
            .order_by("leaf_index")
            .iterator(chunk_size=batch_size)
        )
        for leaf in leaves:
            if leaf.leaf_index != stored_tree.size:
                findings.append(
                    Finding(
                        "leaf_gap",
                        f"leaf #{stored_tree.size} is missing",
                        leaf_index=leaf.leaf_index,
                    )
                )
                break
            product = leaf.product
            sealed_leaf = bytes(leaf.leaf_hash)
            if leaf_hash(leaf.record.encode("utf-8")) != sealed_leaf:
                findings.append(
                    Finding(
                        "sealed_record_altered",
                        "the stored sealed record no longer hashes to its leaf",
                        product.product_id,
                        leaf.leaf_index,
                    )
                )
            record = product_record(product)
            current_leaf = leaf_hash(canonical_json(record).encode("utf-8"))
            if current_leaf != sealed_leaf:
                changes = _changed_fields(leaf.record, record)
                findings.append(
                    Finding(
                        "record_changed",
                        f"product {product.product_id} changed after sealing: "
                        + "; ".join(changes),
                        product.product_id,
                        leaf.leaf_index,
                    )
                )
            if product.blockchain_hash != sealed_leaf.hex():
                findings.append(
                    Finding(
                        "blockchain_hash_mismatch",
                        f"consumer_products.blockchain_hash of {product.product_id} is "
                        f"{product.blockchain_hash!r}, the leaf is {sealed_leaf.hex()}",
                        product.product_id,
                        leaf.leaf_index,
                    )
                )
            stored_tree.append(sealed_leaf)
            current_tree.append(current_leaf)
            stored_levels[0].append(sealed_leaf)
            checked += 1
            if stored_tree.size in head_sizes:
                stored_roots[stored_tree.size] = stored_tree.root()
                current_roots[stored_tree.size] = current_tree.root()
        size = stored_tree.size

        findings.extend(_check_nodes(stored_levels[0]))

        keys = trusted_public_keys()
        previous: LedgerHead | None = None
        for head in heads:
            root = bytes(head.root_hash)
            if not head_signature_is_valid(head, keys):
                findings.append(
                    Finding(
                        "bad_signature",
                        f"the signature of the head of size {head.tree_size} does not verify "
                        f"with a trusted key (key id {head.key_id})",
                        tree_size=head.tree_size,
                    )
                )
            if head.tree_size > size:
                findings.append(
                    Finding(
                        "head_beyond_log",
                        f"a head signs {head.tree_size} leaves, the log holds {size}",
                        tree_size=head.tree_size,
                    )
                )
            elif stored_roots.get(head.tree_size) != root:
                findings.append(
                    Finding(
                        "log_rewritten",
                        f"the stored leaves no longer hash to the signed root of size "
                        f"{head.tree_size}",
                        tree_size=head.tree_size,
                    )
                )
            elif current_roots.get(head.tree_size) != root:
                findings.append(
                    Finding(
                        "head_root_mismatch",
                        f"the current records do not hash to the signed root of size "
                        f"{head.tree_size} (see the changed records)",
                        tree_size=head.tree_size,
                    )
                )
            if previous is not None and head.tree_size <= size:
                try:
                    proof = consistency_proof(first=previous.tree_size, second=head.tree_size)
                    consistent = verify_consistency(
                        first=previous.tree_size,
                        second=head.tree_size,
                        first_root=bytes(previous.root_hash),
                        second_root=root,
                        proof=proof,
                    )
                except LedgerCorrupt:
                    consistent = False
                if not consistent or head.timestamp_ms < previous.timestamp_ms:
                    findings.append(
                        Finding(
                            "heads_inconsistent",
                            f"the heads of sizes {previous.tree_size} and {head.tree_size} "
                            "are not consistent (no valid consistency proof, or time went back)",
                            tree_size=head.tree_size,
                        )
                    )
            previous = head

        unsealed = list(
            ConsumerProduct.objects.filter(ledger_leaf__isnull=True)
            .order_by("created_at")
            .values_list("product_id", flat=True)
        )
        for product_id in unsealed:
            findings.append(
                Finding(
                    "unsealed",
                    f"product {product_id} is not in the log (run manage.py seal_ledger)",
                    product_id,
                )
            )

    tampered = sorted({f.product_id for f in findings if f.kind == "record_changed"})
    if findings:
        summary = f"{len(findings)} finding(s)"
        if tampered:
            summary += "; records changed after sealing: " + ", ".join(tampered)
    else:
        summary = f"OK: {size} leaves, {len(heads)} signed heads verified"
    return LedgerVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        ok=not findings,
        tree_size=size,
        heads_checked=len(heads),
        products_checked=checked,
        findings=[f.as_dict() for f in findings],
        summary=summary,
    )


def _check_nodes(level0: list[bytes]) -> list[Finding]:
    """Rebuild every complete subtree from the stored leaves and compare with ledger_nodes."""
    findings: list[Finding] = []
    level, current = 0, level0
    while current:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT idx, hash FROM ledger_nodes WHERE level = %s ORDER BY idx", [level]
            )
            stored = {idx: bytes(h) for idx, h in cursor.fetchall()}
        bad = [i for i, h in enumerate(current) if stored.get(i) != h]
        extra = len(stored) - len(current)
        if bad or extra > 0:
            findings.append(
                Finding(
                    "nodes_altered",
                    f"{len(bad)} stored node(s) at level {level} differ from the leaves "
                    f"(first at index {bad[0] if bad else '-'}), {max(extra, 0)} extra",
                )
            )
        current = [node_hash(current[i], current[i + 1]) for i in range(0, len(current) - 1, 2)]
        level += 1
    return findings
