"""The admin home's "what needs me now" panel: per role, what it shows, what it costs, and that
each entry leads to the admin list filtered to exactly the rows it counts."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from accounts.roles import ANALYST, QUALITY, STATION_ADMIN
from accounts.selectors import attention_items
from optimizer.models import OptimizationRun, OptimizedCurve
from sensors.alerts import NO_LOT_RULE
from sensors.models import QualityAlert
from tests.factories import make_device, make_lot, make_product, make_sample
from traceability.models import ForgedScanAttempt, LedgerVerification, ScanAlert
from traceability.recalls import recall_close, recall_declare

pytestmark = pytest.mark.django_db

# The admin index with the panel, for any role: session, user, permissions, the admin log
# and one query per panel entry (measured: superuser 10, Quality staff and Analyst 12, Station
# admin 7). The same whatever the amount of data.
MAX_QUERIES = 12


def staff(role: str | None):
    User = get_user_model()
    if role is None:
        return User.objects.create_superuser("chef", "chef@example.org", "pw-home-123")
    user = User.objects.create_user(
        role.lower().replace(" ", "-"), password="x-long-password-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def alert(severity: str, **kw) -> QualityAlert:
    sample = make_sample()
    fields = {
        "device_id": sample.device_id,
        "rule": f"fusion_score<0.{QualityAlert.objects.count() + 1}",
        "metric": "fs",
    }
    fields.update(kw)
    return QualityAlert.objects.create(sample=sample, severity=severity, message="m", **fields)


def curve(version: int, status: str = "proposed") -> OptimizedCurve:
    return OptimizedCurve.objects.create(
        version=version,
        duration_days=1,
        doses=[{"day": 1, "morning_g": 1.0, "evening_g": 1.0}],
        predicted_rating=4.0,
        predicted_rating_std=0.1,
        status=status,
        run=OptimizationRun.objects.create(outcome="proposed"),
    )


def seed(scale: int) -> None:
    """Something waiting in every entry, ``scale`` times over."""
    now = timezone.now()
    for _ in range(scale):
        alert("critical")
        alert("warning")
        alert("warning")
    alert("critical", status=QualityAlert.Status.RESOLVED)  # not counted
    for n in range(scale):
        device = make_device(device_id=f"ESP32_NL_{scale}_{n}")
        alert("critical", rule=NO_LOT_RULE, device_id=device.device_id)
    for _ in range(scale):
        product = make_product()
        ScanAlert.objects.create(
            product=product, threshold=50, scan_count=80, distinct_clients=60, raised_at=now
        )
        ForgedScanAttempt.objects.create(code="SQAL_x", attempted_at=now, channel="page")
    ForgedScanAttempt.objects.create(
        code="SQAL_old", attempted_at=now - timezone.timedelta(days=30), channel="page"
    )
    for n in range(scale):
        curve(100 * scale + n)
    curve(10_000 + scale, status="retired")
    for n in range(scale + 1):
        recall = recall_declare(
            kind="recall",
            reference=f"RAPPEL-{scale}-{n}",
            reason="Listeria",
            instructions_fr="Rapportez-le.",
            instructions_en="Bring it back.",
            starts_at=now,
            scope="lots",
            lot_ids=[make_lot().pk],
        )
    recall_close(recall=recall, reason="done")  # the last one: closed, not counted
    LedgerVerification.objects.create(
        started_at=now,
        finished_at=now,
        ok=False,
        tree_size=3,
        findings=[{"kind": "leaf_hash", "product_id": "FG_LL_x"}],
        summary="1 record changed",
    )


def labels_of(user) -> list[str]:
    """The labels in English, the wording checked here (French: test_staff_language.py)."""
    with translation.override("en"):
        return [item.label for item in attention_items(user=user)]


@pytest.mark.parametrize("role", [None, QUALITY, ANALYST, STATION_ADMIN])
def test_the_panel_costs_the_same_bounded_queries_whatever_the_data(role):
    user = staff(role)
    client = Client()
    client.force_login(user)
    counts = []
    for scale in (1, 4):
        seed(scale)
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/admin/")
        assert response.status_code == 200
        assert 'id="attention-panel"' in response.content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1] <= MAX_QUERIES, counts


def test_each_role_sees_only_what_it_may_open():
    seed(1)
    everything = labels_of(staff(None))
    assert len(everything) == 8
    assert everything[0] == "Active recalls and withdrawals"
    assert labels_of(staff(QUALITY)) == everything
    assert labels_of(staff(ANALYST)) == everything
    assert labels_of(staff(STATION_ADMIN)) == [
        "Open quality alerts: critical",
        "Open quality alerts: warning",
        "Stations sending without a lot",
    ]
    nobody = get_user_model().objects.create_user("vide", password="x-long-pw-1", is_staff=True)
    assert attention_items(user=nobody) == []
    client = Client()
    client.force_login(nobody)
    assert 'id="attention-panel"' not in client.get("/admin/").content.decode()


@pytest.mark.parametrize("role", [None, QUALITY, ANALYST, STATION_ADMIN])
def test_each_entry_leads_to_the_filtered_list_of_the_rows_it_counts(role):
    seed(2)
    user = staff(role)
    client = Client()
    client.force_login(user)
    with translation.override("en"):
        items = attention_items(user=user)
    expected = {
        "Open quality alerts: critical": 4,  # 2 threshold alerts, 2 stations without a lot
        "Open quality alerts: warning": 4,
        "Stations sending without a lot": 2,
        "Copied-label alerts, last 7 days": 2,
        "Forged-code attempts, last 7 days": 2,
        "Last ledger verification": 1,
        "Optimised curves awaiting approval": 2,
        "Active recalls and withdrawals": 2,
    }
    assert items
    for item in items:
        response = client.get(item.url)
        assert response.status_code == 200, item.url
        assert item.count == expected[item.label], item.label
        assert response.context["cl"].result_count == item.count, item.url
    page = client.get("/admin/").content.decode()
    for item in items:
        assert item.url.replace("&", "&amp;") in page
