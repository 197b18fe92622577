"""The log in PostgreSQL: complete subtrees in ``ledger_nodes``, leaves, signed heads; appends
under an advisory lock (one order), roots and proofs in O(log n) row reads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from traceability.ledger.keys import head_message, key_id, public_key_bytes, signing_key
from traceability.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    Key,
    consistency_ranges,
    fold_right,
    frontier_keys,
    head_edge,
    inclusion_ranges,
    leaf_hash,
    ranges_hashes,
)
from traceability.ledger.records import (
    canonical_json,
    product_record,
    recall_closure_record,
    recall_record,
)
from traceability.models import (
    ConsumerProduct,
    LedgerEntryKind,
    LedgerHead,
    LedgerLeaf,
    Recall,
    RecallClosure,
)
from traceability.signals import head_signed_on_commit

# pg_advisory_xact_lock key of the log: the ASCII of "GTLEDGER" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"GTLEDGER", "big", signed=True)


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
    return ranges_hashes(ranges, fetch or _fetch_nodes)


def stored_root(size: int) -> bytes:
    """The root of the first ``size`` leaves, from stored nodes (one query)."""
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)])[0]


def _stored_frontier(size: int) -> list[bytes]:
    """The frontier nodes of the first ``size`` leaves, largest first (one query)."""
    keys = frontier_keys(size)
    nodes = _fetch_nodes(keys)
    return [nodes[k] for k in keys]


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


def _sign_head(size: int, frontier: Sequence[bytes], previous: LedgerHead | None) -> LedgerHead:
    """Sign and store the head over the first ``size`` leaves, whose frontier nodes (largest
    first) give its root and its edge (``merkle.head_edge``: what proofs under it read)."""
    root = fold_right(frontier)
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
        edge_hashes=head_edge(frontier),
    )
    head.save(force_insert=True)
    previous_size = previous.tree_size if previous is not None else 0
    # The tiles holding the nodes completed since the previous head (proofs read these).
    with connection.cursor() as cursor:
        cursor.execute("SELECT ledger_write_tiles(%s, %s)", [previous_size, size])
    head_signed_on_commit(previous_size=previous_size, tree_size=size)
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
    INSERT INTO ledger_leaves
        (leaf_index, kind, product_pk, recall_pk, recall_closure_pk, leaf_hash, record, sealed_at)
    SELECT i, k, p, rc, cl, h, r, %s
    FROM unnest(%s::bigint[], %s::text[], %s::integer[], %s::bigint[], %s::bigint[], %s::bytea[],
                %s::text[]) AS t(i, k, p, rc, cl, h, r)
), nodes AS (
    INSERT INTO ledger_nodes (level, idx, hash)
    SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])
)
UPDATE consumer_products cp SET blockchain_hash = encode(t.h, 'hex')
FROM unnest(%s::integer[], %s::bytea[]) AS t(p, h) WHERE cp.id = t.p
"""


@dataclass(frozen=True)
class _Entry:
    """One row to seal: its kind, the primary key of its row, and its canonical record."""

    kind: str
    pk: int
    record: dict


def _append_locked(products: Sequence[ConsumerProduct], *, force_head: bool) -> AppendResult:
    """Append products in order, skipping any already in the log; the caller holds the lock."""
    entries = [_Entry(LedgerEntryKind.PRODUCT, p.pk, product_record(p)) for p in products]
    return _append_entries_locked(entries, force_head=force_head)


def _append_entries_locked(entries: Sequence[_Entry], *, force_head: bool) -> AppendResult:
    """Append entries in order, skipping products already in the log; the caller holds the
    lock (recall entries are checked by their callers).

    Two round trips whatever the batch: the state read (STATE_SQL) and the writes (WRITE_SQL),
    plus a head insert when one is due.
    """
    product_pks = [e.pk for e in entries if e.kind == LedgerEntryKind.PRODUCT]
    with connection.cursor() as cursor:
        cursor.execute(STATE_SQL, [product_pks])
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
    leaves: list[tuple[int, str, int | None, int | None, int | None, bytes, str]] = []
    nodes: list[tuple[int, int, bytes]] = []
    for entry in entries:
        is_product = entry.kind == LedgerEntryKind.PRODUCT
        if is_product and entry.pk in sealed:
            continue
        record = canonical_json(entry.record)
        leaf = leaf_hash(record.encode("utf-8"))
        leaves.append(
            (
                frontier.size,
                str(entry.kind),
                entry.pk if is_product else None,
                entry.pk if entry.kind == LedgerEntryKind.RECALL else None,
                entry.pk if entry.kind == LedgerEntryKind.RECALL_CLOSURE else None,
                leaf,
                record,
            )
        )
        nodes.extend(frontier.append(leaf))
    if leaves:
        products = [(pk, h) for _, _, pk, _, _, h, _ in leaves if pk is not None]
        with connection.cursor() as cursor:
            cursor.execute(
                WRITE_SQL,
                [
                    now,
                    *map(list, zip(*leaves, strict=True)),
                    *map(list, zip(*nodes, strict=True)),
                    [pk for pk, _ in products],
                    [h for _, h in products],
                ],
            )
    signed = None
    if _head_is_due(frontier.size, head, force=force_head):
        signed = _sign_head(frontier.size, [h for _, _, h in frontier.nodes], head)
    return AppendResult(appended=len(leaves), tree_size=frontier.size, head=signed)


def ledger_append_product(*, product_id: str) -> AppendResult | None:
    """Seal one product (by its public id) in the caller's transaction; None when already sealed.

    Idempotent: a product already in the log appends nothing (checked again under the lock).
    One round trip: PL/pgSQL ``ledger_append_product`` (migration ``traceability/0013``) builds
    the product's canonical record in SQL, takes the lock and writes the leaf, its nodes and the
    product's hash. Where SQL cannot be sure to write the record as Python does (edge values,
    see the migration) the record is built here and ``ledger_append_leaf`` appends it. One more
    round trip signs a head when one is due.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_append_product(%s, %s)", [product_id, timezone.now()])
        row = cursor.fetchone()
        if row is not None and row[3]:  # needs_record
            product = ConsumerProduct.objects.get(product_id=product_id)
            record = canonical_json(product_record(product))
            cursor.execute(
                "SELECT * FROM ledger_append_leaf(%s, %s, %s)", [product.pk, record, timezone.now()]
            )
            row = cursor.fetchone()
        if row is None:
            return None  # unknown, or sealed already (perhaps by a concurrent transaction)
        index, head_size, head_time = row[:3]
        size = index + 1
        head = None
        if head_size is not None:  # size and time are all _head_is_due and _sign_head read
            head = LedgerHead(tree_size=head_size, timestamp_ms=head_time)
        signed = None
        if _head_is_due(size, head):
            signed = _sign_head(size, _stored_frontier(size), head)
        return AppendResult(appended=1, tree_size=size, head=signed)


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


def _append_one_signed(entry: _Entry, sealed: Callable[[], bool]) -> AppendResult | None:
    """Append one entry and sign a head over it, unless ``sealed()`` (asked under the lock)."""
    with transaction.atomic():
        _lock()
        if sealed():
            return None
        return _append_entries_locked([entry], force_head=True)


def ledger_append_recall(*, recall: Recall) -> AppendResult | None:
    """Seal a recall declaration in the caller's transaction and sign a head over it at once
    (consumers verify the notice they are shown); None when already sealed."""
    entry = _Entry(LedgerEntryKind.RECALL, recall.pk, recall_record(recall))
    return _append_one_signed(entry, LedgerLeaf.objects.filter(recall_id=recall.pk).exists)


def ledger_append_recall_closure(*, closure: RecallClosure) -> AppendResult | None:
    """Seal the closing of a recall, like ``ledger_append_recall``."""
    entry = _Entry(LedgerEntryKind.RECALL_CLOSURE, closure.pk, recall_closure_record(closure))
    return _append_one_signed(entry, LedgerLeaf.objects.filter(recall_closure_id=closure.pk).exists)


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
        return _sign_head(size, _stored_frontier(size), head)


def latest_head() -> LedgerHead | None:
    return LedgerHead.objects.order_by("-tree_size").first()
