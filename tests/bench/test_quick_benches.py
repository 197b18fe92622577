"""bench/ingest.py and bench/scan.py keep working in quick mode and print their fair baselines:
the echo and the stored path in alternating turns with ack percentiles and CPU per message; the
scan page cached and cold, each against the trivial view of its own server, with CPU per
request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import django_database_url

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env or {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_the_ingest_bench_compares_the_stored_path_with_an_echo_of_the_same_dispatch():
    figures = _bench("bench/ingest.py", "--flat", "4", "--nested", "20", "--repeat", "2")
    assert set(figures["figures"]) == {
        "flat_190KB_1_station",
        "flat_190KB_20_stations",
        "nested_1_station",
        "nested_20_stations",
    }
    for figure in figures["figures"].values():
        for side in ("echo", "stored"):
            run = figure[side]
            assert run["per_s"] > 0 and run["cpu_ms_per_msg"] >= 0
            # The event loop's thread's share (/proc counts in 10 ms ticks: over a quick run's
            # few messages it cannot be compared with the process's total).
            assert run["loop_thread_cpu_ms_per_msg"] >= 0
            assert 0 < run["ack_p50_ms"] <= run["ack_p95_ms"] <= run["ack_p99_ms"]
        assert figure["goal_met"] == (
            figure["ratio"] >= figure["goal"] and figure["cpu_ratio"] >= figure["goal"]
        )
    assert figures["goals"] == {"flat_190KB": 0.5, "nested": 0.4}
    # The stored path's per-message steps, timed alone: the 190 KB message costs more than the
    # 5 KB one at every step, and zstd stores it in fewer bytes at level 1 than at -1.
    steps = figures["per_message_steps"]
    assert set(steps) == {"flat_190KB", "nested"}
    for step in ("parse_message_ms", "json_loads_ms", "zstd_level_1_ms"):
        assert steps["flat_190KB"][step] > steps["nested"][step] > 0
    flat = steps["flat_190KB"]
    assert flat["zstd_level_1_bytes"] < flat["zstd_level_-1_bytes"] < 189375


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_scan_bench_measures_a_cold_path_and_cpu_per_request():
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env["DATABASE_URL"] = django_database_url()
    # Fewer fresh products than even a slow machine scans in 0.3 s: the cold turn ends when
    # they are all scanned, each once, and its rate is over the time that took.
    args = ["--seconds", "0.3", "--rounds", "1", "--products", "3", "--clients", "1"]
    args += ["--fresh", "30", "--unstored", "30", "--pair-turns", "2"]
    figures = _bench("bench/scan.py", *args, "--threads", "2", env=env)
    urls = figures["urls"]
    assert set(urls) == {
        "trivial",
        "scan",
        "trivial_db",
        "scan_write",
        "cold_trivial",
        "cold_scan",
        "cold_unstored",
    }
    assert all(u["requests"] > 0 and u["server_cpu_ms_per_req"] > 0 for u in urls.values())
    assert all(u.get("db_cpu_ms_per_req", 0) >= 0 for u in urls.values())
    # the cold page scans products never scanned before: each request is a first scan, and a
    # turn that runs out of them is measured over the time it took, not the time it was given
    for name in ("cold_scan", "cold_unstored"):
        cold = urls[name]
        assert cold["requests"] + cold["errors"] <= 30
        if cold["turns_out_of_products"]:
            assert cold["requests"] + cold["errors"] == 30
            assert cold["seconds"] <= 0.3
        assert cold["rps"] == pytest.approx(cold["requests"] / cold["seconds"], rel=0.01)
    # the cached page against its floor: the median of alternating pairs of turns, and by CPU
    pairs = figures["cached_vs_scan_write_pairs"]
    assert pairs["pairs"] == 2 and pairs["median"] > 0 and pairs["by_cpu"] > 0
    assert figures["ratios"]["cached_vs_scan_write"] == pairs["median"]
    assert figures["errors"] == 0
    assert set(figures["goals"]) == {"cached_vs_scan_write", "cold_vs_trivial"}
    assert figures["ratios"]["cold_vs_trivial"] > 0
    assert figures["ratios"]["cold_unstored_vs_trivial"] > 0
