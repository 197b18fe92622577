"""Benchmark of the tamper-evident ledger: append and proof rates at 10k and 1M leaves.

Two paths, each against baselines measured in the same run:
- memory: the same algorithms (compact frontier + complete-subtree store, traceability.ledger
  .MemoryLog) with nodes in a dict. Baseline: one plain SHA-256 of a product record per leaf.
- PostgreSQL: the real tables. At each size, ``ledger_seal_pending`` (the real bulk path) seals
  one batch of 5,000 and is timed; the rest of the log is built with COPY (``copy_seal_pending``,
  bench only: the same records, leaf order, nodes and hashes, written in one transaction, so
  that a million-leaf log takes minutes, not an hour). Then, in alternating turns with their
  baselines: single-product appends (``ledger_append_product``, one transaction each, as
  ``product_register`` does; a head signed every LEDGER_HEAD_MAX_PENDING) against one-row
  INSERT transactions, and cold inclusion proofs (``product_proof`` with the proof cache
  cleared before each, outside the timed call: the scan page's one query, which reads the
  ``ledger_tiles`` the real signing path wrote) against ``SELECT 1`` round trips, these two
  interleaved call by call (in turns, the rate of ``SELECT 1`` swung 7k-20k/s between runs of
  the same code), with the CPU per call of this process and of its PostgreSQL backend
  (``*_cpu_us``: the machine is shared, so CPU says more than rates). Then the whole
  ``ledger_verify`` (what ``manage.py verify_ledger`` runs), timed. ``*_large_vs_small``
  compares each path's ratio to its baseline at the largest and the smallest size (the load of
  a shared machine differs between stages; within a stage it falls on path and baseline
  alike).
Products are bulk-inserted with SQL (not timed). Runs on a throwaway embedded PostgreSQL unless
DATABASE_URL is set. Last line: one JSON object.

    .venv/bin/python bench/ledger.py [--sizes 10000,1000000] [--samples 500] [--proofs 1000]
        [--no-verify] [--breakdown]

``--breakdown`` also times, interleaved call by call on the same leaves, ``SELECT 1``, the
proof's statement alone, the cold ``product_proof`` and its proof cache's miss and set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup_django() -> None:
    if not os.environ.get("DATABASE_URL") and not os.environ.get("EMBEDDED_PG_DIR"):
        os.environ["EMBEDDED_PG_DIR"] = tempfile.mkdtemp(prefix="gtbench.")
        os.environ["EMBEDDED_PG_CLEANUP"] = "delete"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# --- memory path ----------------------------------------------------------------------------


def _best_seconds(fn, repeats: int) -> float:
    """Best of ``repeats`` timings: the machine is shared, the minimum is the least noisy."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def memory_stage(size: int, proofs: int, record: bytes) -> dict:
    from traceability.ledger import MemoryLog, leaf_hash

    repeats = 5 if size <= 100_000 else 2
    n_base = min(size, 200_000)

    def hash_all() -> None:
        for i in range(n_base):
            hashlib.sha256(record + i.to_bytes(8, "big")).digest()

    sha_rate = _rate(n_base, _best_seconds(hash_all, repeats))

    leaves = [leaf_hash(record + i.to_bytes(8, "big")) for i in range(size)]
    logs: list[MemoryLog] = []

    def build() -> None:
        logs.clear()  # the previous log is freed before timing the next build
        log = MemoryLog()
        for leaf in leaves:
            log.append(leaf)
        logs.append(log)

    append_rate = _rate(size, _best_seconds(build, repeats))
    log = logs[0]
    rng = random.Random(size)
    picks = [rng.randrange(size) for _ in range(proofs)]

    def prove() -> None:
        for i in picks:
            log.inclusion_proof(i, size)

    proof_rate = _rate(proofs, _best_seconds(prove, repeats))
    return {
        "sha256_per_s": round(sha_rate),
        "append_per_s": round(append_rate),
        "proof_per_s": round(proof_rate),
        "append_vs_sha256": round(append_rate / sha_rate, 3),
        "proof_vs_sha256": round(proof_rate / sha_rate, 3),
    }


# --- PostgreSQL path ------------------------------------------------------------------------


class Fixture:
    """One lot, one device and a template sample/product copied by SQL into many products."""

    def __init__(self) -> None:
        from django.db import connection

        from bench.builders import make_lot, make_sample
        from traceability.services import product_register

        self.lot = make_lot()
        sample = make_sample(lot=self.lot, sample_id="BENCH_TEMPLATE")
        registered = product_register(
            lot_id=self.lot.id, sample_id=sample.sample_id, site_code="LL"
        )
        self.template_sample = sample.pk
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM consumer_products WHERE product_id = %s", [registered.product_id]
            )
            (self.template_product,) = cursor.fetchone()
        self.sample_cols = self._columns("sqal_sensor_samples", {"id", "sample_id"})
        self.product_cols = self._columns(
            "consumer_products",
            {
                "id",
                "product_id",
                "qr_code",
                "sqal_sample_pk",
                "sqal_sample_id",
                "created_at",
                "gs1_serial",
            },
        )
        self.next = 1

    @staticmethod
    def _columns(table: str, skip: set[str]) -> list[str]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position",
                [table],
            )
            return [c for (c,) in cursor.fetchall() if c not in skip]

    def add_products(self, count: int) -> None:
        """Insert ``count`` unsealed products (and their samples), two SQL statements a chunk."""
        for start in range(0, count, 200_000):
            self._add_products(min(200_000, count - start))

    def _add_products(self, count: int) -> None:
        from django.db import connection, transaction

        first, last = self.next, self.next + count - 1
        self.next += count
        scols = ", ".join(self.sample_cols)
        pcols = ", ".join(self.product_cols)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO sqal_sensor_samples (sample_id, {scols}) "
                f"SELECT 'B_' || g, {', '.join('t.' + c for c in self.sample_cols)} "
                "FROM sqal_sensor_samples t, generate_series(%s, %s) g WHERE t.id = %s",
                [first, last, self.template_sample],
            )
            cursor.execute(
                f"INSERT INTO consumer_products (product_id, qr_code, sqal_sample_pk, "
                f"sqal_sample_id, created_at, {pcols}) "
                "SELECT 'FG_LL_20260101_' || lpad(g::text, 7, '0'), "
                "'SQAL_' || t.lot_id || '_B_' || g || '_FG_LL_20260101_' || lpad(g::text, 7, '0')"
                " || '_0000000000000000', s.id, s.sample_id, clock_timestamp(), "
                f"{', '.join('t.' + c for c in self.product_cols)} "
                "FROM generate_series(%s, %s) g "
                "JOIN sqal_sensor_samples s ON s.sample_id = 'B_' || g "
                "CROSS JOIN consumer_products t WHERE t.id = %s",
                [first, last, self.template_product],
            )


def copy_seal_pending() -> int:
    """Bench only: seal every unsealed product the way ``ledger_seal_pending`` does (same
    canonical records, leaf order, nodes and hashes, a head signed at the end) but written with
    COPY in one transaction, so that a million-leaf log is built in seconds. The real bulk path
    is timed separately (``seal_pending_per_s``)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from traceability import ledger
    from traceability.ledger.merkle import Frontier, frontier_keys
    from traceability.ledger.records import RECORD_FIELDS, record_from_values
    from traceability.ledger.storage import ADVISORY_LOCK_KEY, _fetch_nodes
    from traceability.models import ConsumerProduct

    columns = {f.attname: f.column for f in ConsumerProduct._meta.concrete_fields}
    select = ", ".join(f"p.{columns[n]}" for n, _ in RECORD_FIELDS)
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
            cursor.execute("SELECT coalesce(max(leaf_index) + 1, 0) FROM ledger_leaves")
            (size,) = cursor.fetchone()
        keys = frontier_keys(size)
        stored = _fetch_nodes(keys)
        frontier = Frontier(size, [stored[k] for k in keys])
        leaves: list[tuple] = []
        nodes: list[tuple] = []
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"SELECT p.id, {select} FROM consumer_products p "
                "WHERE NOT EXISTS (SELECT 1 FROM ledger_leaves l WHERE l.product_pk = p.id) "
                "ORDER BY p.created_at, p.id"
            )
            while rows := cursor.fetchmany(20000):
                for pk, *values in rows:
                    record = ledger.canonical_json(record_from_values(values))
                    leaf = ledger.leaf_hash(record.encode())
                    leaves.append((frontier.size, pk, leaf, record, now))
                    nodes.extend(frontier.append(leaf))
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY ledger_leaves (leaf_index, product_pk, leaf_hash, record, sealed_at) "
                "FROM STDIN"
            ) as copy:
                for row in leaves:
                    copy.write_row(row)
            with cursor.copy("COPY ledger_nodes (level, idx, hash) FROM STDIN") as copy:
                for row in nodes:
                    copy.write_row(row)
            cursor.execute("CREATE TEMP TABLE bench_seal (id integer, h text) ON COMMIT DROP")
            with cursor.copy("COPY bench_seal (id, h) FROM STDIN") as copy:
                for _, pk, leaf, _, _ in leaves:
                    copy.write_row((pk, leaf.hex()))
            cursor.execute(
                "UPDATE consumer_products p SET blockchain_hash = s.h FROM bench_seal s "
                "WHERE p.id = s.id"
            )
    ledger.ledger_sign_head(force=True)
    return len(leaves)


_baseline_rows = iter(range(1, 1 << 62))


def insert_txn_seconds(count: int) -> float:
    """Baseline: ``count`` one-row INSERT transactions (the append's transaction shape)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial, h bytea)")
    t = time.perf_counter()
    for _ in range(count):
        h = next(_baseline_rows).to_bytes(32, "big")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_baseline (h) VALUES (%s)", [h])
    return time.perf_counter() - t


def select1_seconds(count: int) -> float:
    """Baseline: ``count`` ``SELECT 1`` round trips through Django's cursor."""
    from django.db import connection

    t = time.perf_counter()
    for _ in range(count):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return time.perf_counter() - t


ROUNDS = 5


def _backend_cpu_seconds() -> float:
    """CPU time (user + system) of this connection's PostgreSQL backend, from /proc: the
    machine is shared, so the CPU a path costs says more than its wall time. 0 when the server
    is not on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --breakdown: what a cold proof is made of, each part timed call by call beside the others.
BREAKDOWN = ("b_select1", "b_statement", "b_proof", "b_cache_miss_and_set")


def proof_breakdown(products: dict, picks: list[int], timed_call) -> None:
    """Interleaved call by call, on the same leaves: ``SELECT 1``; the proof's one statement
    alone (``PROOF_STATEMENT``: the round trip and the driver); the cold ``product_proof``;
    and the proof cache's part of it, a miss and a set of the proof just built (so the
    assembly is the proof less the statement and the cache)."""
    from django.conf import settings
    from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches

    from traceability import ledger
    from traceability.ledger.proofs import PROOF_STATEMENT, _proof_cache_key

    seconds = getattr(settings, "LEDGER_PROOF_CACHE_SECONDS", 60)
    for index in picks:
        product = products[index]
        timed_call("b_select1", lambda: select1_seconds(1))
        timed_call("b_statement", lambda product=product: PROOF_STATEMENT.rows({"pk": product.pk}))
        cache.clear()
        proof = timed_call("b_proof", lambda product=product: ledger.product_proof(product))
        assert proof["status"] == "sealed"
        cache.clear()
        key = _proof_cache_key(product.pk)

        def miss_and_set(key=key, proof=proof) -> None:
            proofs_cache = caches[DEFAULT_CACHE_ALIAS]
            proofs_cache.get(key)
            proofs_cache.set(key, proof, seconds)

        timed_call("b_cache_miss_and_set", miss_and_set)


def db_stage(
    fixture: Fixture, size: int, samples: int, proofs: int, verify: bool, breakdown: bool = False
) -> dict:
    from django.core.cache import cache
    from django.db import connection

    from traceability import ledger
    from traceability.models import ConsumerProduct

    current = ledger.ledger_seal_pending(sign=True).tree_size
    # The real bulk path on one batch, then the rest of the log built with COPY (bench only).
    seal_batch = min(5000, max(size - samples - current, 0))
    fixture.add_products(seal_batch)
    t = time.perf_counter()
    ledger.ledger_seal_pending(sign=True)
    seal_seconds = time.perf_counter() - t
    bulk = max(size - samples - current - seal_batch, 0)
    bulk_seconds = 0.0
    if bulk:
        fixture.add_products(bulk)
        t = time.perf_counter()
        copy_seal_pending()
        bulk_seconds = time.perf_counter() - t

    fixture.add_products(samples)
    pending = list(
        ConsumerProduct.objects.filter(ledger_leaf__isnull=True)
        .order_by("created_at", "pk")
        .values_list("product_id", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_leaves")
        (sealed_size,) = cursor.fetchone()
    rng = random.Random(size)
    picks = [rng.randrange(sealed_size) for _ in range(proofs)]
    products = {
        p.ledger_leaf.leaf_index: p
        for p in ConsumerProduct.objects.select_related("ledger_leaf").filter(
            ledger_leaf__leaf_index__in=picks
        )
    }

    # Baselines and measured paths in alternating turns, so that the load of a shared machine
    # falls on both alike.
    seconds = {"append": 0.0, "insert": 0.0, "proof": 0.0, "select1": 0.0}
    seconds.update({k: 0.0 for k in BREAKDOWN})
    # CPU of this process and of its PostgreSQL backend, summed over SELECT 1 calls and proofs.
    turn_cpu = {k: [0.0, 0.0] for k in ("proof", "select1", *BREAKDOWN)}

    def timed_call(what: str, fn):
        """One call, its wall time added to ``seconds[what]`` and its CPU to ``turn_cpu``."""
        backend, own = _backend_cpu_seconds(), time.process_time()
        t = time.perf_counter()
        result = fn()
        seconds[what] += time.perf_counter() - t
        turn_cpu[what][0] += time.process_time() - own
        turn_cpu[what][1] += _backend_cpu_seconds() - backend
        return result

    proof: dict = {}

    def proofs_and_select1(turn_picks: list[int]) -> None:
        """Cold proofs and SELECT 1 round trips interleaved call by call: the rate of SELECT 1
        swings by 2-3x between turns on a shared machine, so only calls side by side compare."""
        nonlocal proof
        for index in turn_picks:
            timed_call("select1", lambda: select1_seconds(1))
            cache.clear()  # cold: no cached proof (not timed: it is not the path's work)
            proof = timed_call("proof", lambda index=index: ledger.product_proof(products[index]))

    for turn in range(ROUNDS):
        appends = pending[turn::ROUNDS]
        seconds["insert"] += insert_txn_seconds(len(appends))
        t = time.perf_counter()
        for product_id in appends:
            ledger.ledger_append_product(product_id=product_id)
        seconds["append"] += time.perf_counter() - t
        proofs_and_select1(picks[turn::ROUNDS])
    assert proof["status"] == "sealed"
    if breakdown:
        proof_breakdown(products, picks, timed_call)
    ledger.ledger_sign_head(force=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_leaves")
        (tree_size,) = cursor.fetchone()
    append_rate = _rate(len(pending), seconds["append"])
    insert_rate = _rate(len(pending), seconds["insert"])
    proof_rate = _rate(len(picks), seconds["proof"])
    select_rate = _rate(len(picks), seconds["select1"])
    verify_seconds = verify_cpu = None
    if verify:
        backend = _backend_cpu_seconds()
        cpu = time.process_time()
        t = time.perf_counter()
        outcome = ledger.ledger_verify()
        verify_seconds = round(time.perf_counter() - t, 1)
        verify_cpu = {
            "python": round(time.process_time() - cpu, 1),
            "postgresql": round(_backend_cpu_seconds() - backend, 1),
        }
        assert outcome.ok, outcome.summary
    return {
        "verify_seconds": verify_seconds,
        "verify_cpu_seconds": verify_cpu,
        "tree_size": tree_size,
        "seal_pending_per_s": round(_rate(seal_batch, seal_seconds)) if seal_batch else None,
        "copy_build_per_s": round(_rate(bulk, bulk_seconds)) if bulk else None,
        "append_per_s": round(append_rate),
        "proof_per_s": round(proof_rate),
        "insert_txn_per_s": round(insert_rate),
        "select1_per_s": round(select_rate),
        "append_vs_insert_txn": round(append_rate / insert_rate, 3),
        "proof_vs_select1": round(proof_rate / select_rate, 3),
        # CPU per call in microseconds: [Python, PostgreSQL backend] (from /proc).
        "proof_cpu_us": [round(c / len(picks) * 1e6, 1) for c in turn_cpu["proof"]],
        "select1_cpu_us": [round(c / len(picks) * 1e6, 1) for c in turn_cpu["select1"]],
        # --breakdown: per call, [Python CPU, PostgreSQL CPU, wall] in microseconds.
        "breakdown_us": {
            k: [round(x / len(picks) * 1e6, 1) for x in (*turn_cpu[k], seconds[k])]
            for k in BREAKDOWN
        }
        if breakdown
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--samples", type=int, default=500, help="single appends timed per size")
    parser.add_argument("--proofs", type=int, default=1000, help="proofs timed per size")
    parser.add_argument("--no-db", action="store_true", help="memory path only")
    parser.add_argument("--no-verify", action="store_true", help="skip timing ledger_verify")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the parts of a cold proof call by call (statement, cache)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    _setup_django()
    from traceability.ledger import canonical_json

    record = canonical_json({"v": 1, "product_id": "FG_LL_20260101_0001", "pad": "x" * 500})
    record_bytes = record.encode()
    results: dict = {"sizes": sizes, "memory": {}, "db": {}}
    for size in sizes:
        m = memory_stage(size, args.proofs * 10, record_bytes)
        results["memory"][str(size)] = m
        print(
            f"memory  {size:>9,} leaves: append {m['append_per_s']:>9,}/s "
            f"({m['append_vs_sha256']:.3f}x sha256), proof {m['proof_per_s']:>8,}/s "
            f"({m['proof_vs_sha256']:.3f}x sha256); sha256 {m['sha256_per_s']:,}/s",
            flush=True,
        )
    if not args.no_db:
        fixture = Fixture()
        for size in sizes:
            t = time.perf_counter()
            d = db_stage(
                fixture, size, args.samples, args.proofs, not args.no_verify, args.breakdown
            )
            d["stage_seconds"] = round(time.perf_counter() - t, 1)
            results["db"][str(size)] = d
            bulk = f"{d['seal_pending_per_s']:,}/s" if d["seal_pending_per_s"] else "-"
            print(
                f"db      {d['tree_size']:>9,} leaves: append {d['append_per_s']:>6,}/s "
                f"({d['append_vs_insert_txn']:.3f}x insert txn {d['insert_txn_per_s']:,}/s), "
                f"cold proof {d['proof_per_s']:>6,}/s ({d['proof_vs_select1']:.3f}x SELECT 1 "
                f"{d['select1_per_s']:,}/s; CPU us py+pg {d['proof_cpu_us']} vs "
                f"{d['select1_cpu_us']}); "
                f"seal_pending {bulk}; verify_ledger {d['verify_seconds']} s "
                f"(CPU {d['verify_cpu_seconds']}) "
                f"(stage {d['stage_seconds']} s)",
                flush=True,
            )
            if d["breakdown_us"]:
                parts = ", ".join(
                    f"{k[2:]} {py}+{pg} us CPU, {wall} us wall"
                    for k, (py, pg, wall) in d["breakdown_us"].items()
                )
                print(f"        breakdown per call (Python+PostgreSQL): {parts}", flush=True)
    if len(sizes) >= 2:
        small, large = str(sizes[0]), str(sizes[-1])
        # Each path against its own baseline at each size (SHA-256 in memory; in PostgreSQL
        # the insert transaction and SELECT 1 measured in the same turns), so that a shared
        # machine's load, which differs between the stages, cancels out.
        pairs = {
            "memory": {"append": "append_vs_sha256", "proof": "proof_vs_sha256"},
            "db": {"append": "append_vs_insert_txn", "proof": "proof_vs_select1"},
        }
        for path, whats in pairs.items():
            if results[path]:
                for what, ratio in whats.items():
                    results[f"{path}_{what}_large_vs_small"] = round(
                        results[path][large][ratio] / results[path][small][ratio], 3
                    )
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
