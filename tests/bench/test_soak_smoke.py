"""bench/soak.py keeps working: a short real run holds its invariants, and its checker fails a
run whose database disagrees with what the stations and consumers were told."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.soak import Figures, report
from tests.support.servers import django_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_short_soak_with_cut_connections_holds_every_invariant():
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env["DATABASE_URL"] = django_database_url()
    args = ["--duration", "6", "--stations", "3", "--consumers", "5", "--rate", "1"]
    args += ["--think", "0.3", "--drop-every", "3", "--feedback-share", "0.5"]
    args += ["--seed-products", "5", "--baseline-seconds", "1"]
    done = subprocess.run(
        [sys.executable, "bench/soak.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["invariants_ok"] is True and figures["failures"] == []
    samples = figures["samples"]
    assert samples["measured"] == samples["acked"] == samples["stored"] > 0
    assert samples["connections_cut"] >= 1
    assert figures["products"]["registered"] == figures["products"]["expected"] > 0
    assert figures["scan"]["requests"] > 0 and figures["feedback"]["accepted"] >= 1
    assert figures["server_errors_5xx"] == 0
    assert figures["ratios"]["trivial_rps_end_vs_start"] > 0
    assert "scan_rps_vs_trivial_rps" not in figures["ratios"]  # think time vs closed loop
    # The consumer pages on granian beside the stations' Daphne, and where the CPU went.
    assert figures["http_server"] == "granian"
    assert {"server", "http", "worker", "load_clients"} <= set(figures["cpu"])
    assert figures["cpu"]["http"]["cpu_s"] > 0
    assert set(figures["goals_met"]) == {"station_ack_p99_ms", "scan_p99_ms"}
    # The consumers' lean client, and each request's cost inside the application beside the
    # latency the client measured (the server's request log, matched by request id).
    assert figures["http_client"] == "lean"
    by_kind = figures["requests_by_kind"]
    assert by_kind["_matched"]["logged"] == by_kind["_matched"]["tagged"] > 0
    scans = [v for k, v in by_kind.items() if k.startswith("p 200")]
    assert scans and all(v["app_wall_p50_ms"] <= v["client_p50_ms"] for v in scans)


def _run(*, stored_rows, accepted, reviews, acked=("S1", "S2")):
    station = SimpleNamespace(
        device_id="D",
        acked={sid: "saved" for sid in acked},
        unacked={},
        stats=SimpleNamespace(measured=len(acked), resent=0, connections=1, errors={}, refused=0),
        drops=0,
        ack_latencies=[0.1] * len(acked),
        live_ack_latencies=[0.1] * len(acked),
    )
    figs = Figures()
    figs.latencies["scan"] = [10.0, 12.0]
    figs.accepted = list(accepted)
    baseline = {"rps": 100.0, "p50_ms": 5.0, "p99_ms": 9.0, "server_errors": 0}
    result = {
        "stations": [station],
        "figs": figs,
        "rows": stored_rows,
        "drain_s": 0.0,
        "load_s": 10.0,
        "stations_s": 10.0,
        "last_ack_after_load_s": 0.5,
        "trivial_start": baseline,
        "trivial_end": baseline,
        "stored_reviews": reviews,
        "reviews_total": sum(reviews.values()),
        "memory": {"server": {"slope_second_half_mb_per_min": 0.0}},
        "server_log_tracebacks": 0,
        "worker_log_tracebacks": 0,
    }
    args = argparse.Namespace(
        duration=10.0,
        memory_min_duration=120.0,
        max_rss_slope=2.0,
        stations=1,
        consumers=1,
        broker="redis",
        rate=0.1,
    )
    return report(args, result, Path("server.log"), Path("worker.log"))


def test_the_checker_passes_a_run_whose_database_agrees(capsys):
    rows = [("D", "S1", True, 1), ("D", "S2", False, 0)]
    assert _run(stored_rows=rows, accepted=["Q1"], reviews={"Q1": 1}) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["invariants_ok"] is True


def test_the_checker_fails_a_duplicate_sample_a_missing_product_and_a_double_review(capsys):
    rows = [("D", "S1", True, 1), ("D", "S1", True, 1), ("D", "S2", True, 0)]
    assert _run(stored_rows=rows, accepted=["Q1", "Q1"], reviews={"Q1": 2}) == 1
    failures = json.loads(capsys.readouterr().out.splitlines()[-1])["failures"]
    text = " | ".join(failures)
    assert "acked samples not stored once" in text
    assert "wrong number of products" in text
    assert "accepted a review twice" in text
    assert "not stored exactly once" in text
