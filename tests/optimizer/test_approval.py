"""Approving an optimised curve in admin: new lots of its scope follow it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from gaveurs.models import FeedingCurve, FeedingCurveDay, FeedingRecord
from gaveurs.services import feeding_curve_for_new_lot, lot_create
from optimizer.models import OptimizationRun, OptimizedCurve
from optimizer.services import OptimizerError, optimized_curve_approve, optimized_curve_retire
from tests.factories import make_gaveur, make_site

pytestmark = pytest.mark.django_db

DOSES = [
    {"day": 1, "morning_g": 180.0, "evening_g": 200.0},
    {"day": 2, "morning_g": 200.0, "evening_g": 230.0},
    {"day": 3, "morning_g": 230.0, "evening_g": 260.0},
]


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("qualite", "q@example.com", "pw-123456!")
    client.force_login(user)
    client.user = user
    return client


def _reference() -> FeedingCurve:
    curve = FeedingCurve.objects.create(name="Référence", is_reference=True)
    FeedingCurveDay.objects.create(curve=curve, day=1, morning_dose_g=150, evening_dose_g=150)
    return curve


def _proposed(version: int = 1, **scope) -> OptimizedCurve:
    run = OptimizationRun.objects.create(outcome="proposed", data_metrics={"rows_used": 321})
    return OptimizedCurve.objects.create(
        version=version,
        duration_days=len(DOSES),
        doses=DOSES,
        predicted_rating=4.4,
        predicted_rating_std=0.2,
        data_metrics={"rows_used": 321},
        model_metrics={"curve_model_cv": {"rmse_model": 0.7, "rmse_baseline": 0.9}},
        run=run,
        **scope,
    )


def _new_lot(code: str, gaveur):
    return lot_create(code=code, gaveur_id=gaveur.pk, feeding_start=timezone.now(), duck_count=150)


def test_approving_in_admin_makes_new_lots_of_the_site_follow_the_curve(staff_client):
    reference = _reference()
    site = make_site(code="LL")
    other_site = make_site(code="SO")
    proposed = _proposed(site=site)

    response = staff_client.post(
        reverse("admin:optimizer_optimizedcurve_changelist"),
        {"action": "approve", "_selected_action": [proposed.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "approved" in response.content.decode()
    proposed.refresh_from_db()
    assert proposed.status == "approved"
    assert proposed.approved_by == staff_client.user
    assert proposed.data_metrics == {"rows_used": 321}  # keeps what it came from
    lot = _new_lot("LL26A0001", make_gaveur(site=site))
    assert lot.feeding_curve == proposed.feeding_curve
    assert lot.duration_days == 3
    assert lot.planned_feeding_end - lot.feeding_start == timedelta(days=3)
    planned = {(r.day, r.meal): r.planned_dose_g for r in FeedingRecord.objects.filter(lot=lot)}
    assert planned[(2, "evening")] == 230.0
    assert len(planned) == 6
    elsewhere = _new_lot("SO26A0001", make_gaveur(site=other_site))
    assert elsewhere.feeding_curve == reference


def test_the_lot_page_shows_which_curve_the_lot_follows(staff_client):
    site = make_site(code="LL")
    proposed = _proposed(site=site)
    optimized_curve_approve(curve_id=proposed.pk, user_id=None)
    lot = _new_lot("LL26A0002", make_gaveur(site=site))

    page = staff_client.get(reverse("admin:gaveurs_lot_change", args=[lot.pk])).content.decode()

    assert "Optimised v1 (site LL)" in page
    assert "optimised curve v1, site LL" in page


def test_a_lot_added_in_admin_without_a_curve_gets_the_scope_curve(staff_client):
    site = make_site(code="LL")
    gaveur = make_gaveur(site=site)
    proposed = _proposed(site=site)
    optimized_curve_approve(curve_id=proposed.pk, user_id=None)
    start = timezone.now()

    response = staff_client.post(
        reverse("admin:gaveurs_lot_add"),
        {
            "code": "LL26A0003",
            "gaveur": gaveur.pk,
            "site": site.pk,
            "feeding_start_0": start.strftime("%Y-%m-%d"),
            "feeding_start_1": "08:00:00",
            "planned_feeding_end_0": (start + timedelta(days=3)).strftime("%Y-%m-%d"),
            "planned_feeding_end_1": "08:00:00",
            "duck_count": 100,
            "dead_count": 0,
            "status": "planned",
            **{
                f"{prefix}-{key}": value
                for prefix in ("feeding_records", "products")
                for key, value in {
                    "TOTAL_FORMS": 0,
                    "INITIAL_FORMS": 0,
                    "MIN_NUM_FORMS": 0,
                    "MAX_NUM_FORMS": 1000,
                }.items()
            },
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    from gaveurs.models import Lot

    lot = Lot.objects.get(code="LL26A0003")
    assert lot.feeding_curve == OptimizedCurve.objects.get().feeding_curve
    assert lot.feeding_records.count() == 6


def test_a_producer_curve_wins_over_the_site_curve_and_approval_retires_the_previous_one():
    _reference()
    site = make_site(code="LL")
    gaveur = make_gaveur(site=site)
    site_v1 = optimized_curve_approve(curve_id=_proposed(1, site=site).pk, user_id=None)
    site_v2 = optimized_curve_approve(curve_id=_proposed(2, site=site).pk, user_id=None)
    producer = optimized_curve_approve(curve_id=_proposed(3, gaveur=gaveur).pk, user_id=None)

    site_v1.refresh_from_db()
    assert site_v1.status == "retired"
    assert feeding_curve_for_new_lot(site_id=site.pk, gaveur_id=gaveur.pk) == (
        producer.feeding_curve
    )
    colleague = make_gaveur(site=site, last_name="Durand")
    assert _new_lot("LL26A0004", colleague).feeding_curve == site_v2.feeding_curve


def test_retiring_the_curve_sends_new_lots_back_to_the_reference():
    reference = _reference()
    site = make_site(code="LL")
    curve = optimized_curve_approve(curve_id=_proposed(site=site).pk, user_id=None)

    optimized_curve_retire(curve_id=curve.pk)

    assert _new_lot("LL26A0005", make_gaveur(site=site)).feeding_curve == reference


def test_only_a_proposed_curve_can_be_approved():
    curve = optimized_curve_approve(curve_id=_proposed().pk, user_id=None)

    with pytest.raises(OptimizerError, match="only a proposed curve can be approved"):
        optimized_curve_approve(curve_id=curve.pk, user_id=None)


def test_staff_open_the_latest_report_from_admin(staff_client, tmp_path):
    old = tmp_path / "old"
    new = tmp_path / "new"
    for folder, title in ((old, "old report"), (new, "new report")):
        folder.mkdir()
        (folder / "index.html").write_text(f"<h1>{title}</h1>")
    (new / "curve.png").write_bytes(b"\x89PNG fake")
    OptimizationRun.objects.create(outcome="no_signal", report_dir=str(old))
    run = OptimizationRun.objects.create(outcome="proposed", report_dir=str(new))

    changelist = staff_client.get(reverse("admin:optimizer_optimizedcurve_changelist"))
    latest = staff_client.get(reverse("admin:optimizer_optimizationrun_latest_report"), follow=True)
    image = staff_client.get(
        reverse("admin:optimizer_optimizationrun_report", args=[run.pk, "curve.png"])
    )
    escape = staff_client.get(
        reverse("admin:optimizer_optimizationrun_report", args=[run.pk, "..%2Fold"])
    )

    assert "Dernier rapport d’optimisation" in changelist.content.decode()  # French admin
    assert b"".join(latest.streaming_content) == b"<h1>new report</h1>"
    assert image["Content-Type"] == "image/png"
    assert escape.status_code == 404


def test_reports_are_not_served_to_anonymous_visitors(client, tmp_path):
    (tmp_path / "index.html").write_text("secret")
    run = OptimizationRun.objects.create(outcome="proposed", report_dir=str(tmp_path))

    response = client.get(
        reverse("admin:optimizer_optimizationrun_report", args=[run.pk, "index.html"])
    )

    assert response.status_code == 302
    assert "/login/" in response["Location"]
