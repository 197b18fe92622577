"""Recalls and withdrawals: declaring (preview then confirm), append-only rows, closing as a
new record, the staff views and their permissions, the CSV of affected units."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from tests.factories import make_lot, make_product, make_staff, review
from traceability import ledger
from traceability.models import LedgerLeaf, Recall, RecallClosure, RecallLot
from traceability.recalls import (
    RecallError,
    recall_affected_products,
    recall_close,
    recall_declare,
    recall_for_product,
    recall_reach,
)

pytestmark = pytest.mark.django_db

RECALL_PERMS = (
    "traceability.add_recall",
    "traceability.view_recall",
    "traceability.add_recallclosure",
)


@pytest.fixture(autouse=True)
def _clean(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


def declare(lots, **kw):
    args = {
        "kind": "recall",
        "reference": "RC-1",
        "reason": "Listeria monocytogenes",
        "instructions_fr": "Ne consommez pas ce produit ; rapportez-le au magasin.",
        "instructions_en": "Do not eat this product; return it to the shop.",
        "starts_at": timezone.now() - timedelta(minutes=1),
        "scope": "lots",
        "lot_ids": [lot.pk for lot in lots],
        **kw,
    }
    return recall_declare(**args)


def form_data(lot, **kw):
    return {
        "kind": "recall",
        "reference": "RC-ADMIN-1",
        "reason": "Listeria",
        "instructions_fr": "Ne pas consommer.",
        "instructions_en": "Do not eat.",
        "starts_at": timezone.localtime().strftime("%Y-%m-%d %H:%M"),
        "scope": "lots",
        "lots": [lot.pk],
        **kw,
    }


def test_a_recall_over_a_lot_reaches_its_units_and_no_other():
    lot, other = make_lot(), make_lot()
    units = [make_product(lot) for _ in range(3)]
    outsider = make_product(other)

    recall = declare([lot])

    assert set(recall_affected_products(recall)) == set(units)
    assert recall_for_product(units[0]) == recall
    assert recall_for_product(outsider) is None
    assert LedgerLeaf.objects.get(recall=recall).kind == "recall"
    # A unit registered after the declaration is reached too: the scope is stored, not units.
    assert recall_for_product(make_product(lot)) == recall


def test_a_recall_by_site_and_days_and_by_product_list():
    lot = make_lot()
    first, second = make_product(lot), make_product(lot)
    today = timezone.localdate()
    by_site = declare(
        [],
        reference="RC-S",
        scope="site_dates",
        site=lot.site,
        produced_from=today,
        produced_until=today,
    )
    by_list = declare([], reference="RC-P", scope="products", product_ids=[second.product_id])

    assert set(recall_affected_products(by_site)) == {first, second}
    assert list(recall_affected_products(by_list)) == [second]
    yesterday = today - timedelta(days=1)
    earlier = declare(
        [],
        reference="RC-S2",
        scope="site_dates",
        site=lot.site,
        produced_from=yesterday,
        produced_until=yesterday,
    )
    assert not recall_affected_products(earlier).exists()
    assert recall_for_product(first) == by_site


def test_a_declaration_names_the_field_at_fault():
    lot = make_lot()
    declare([lot])
    with pytest.raises(RecallError) as err:
        declare([lot])
    assert err.value.field == "reference"
    with pytest.raises(RecallError) as err:
        declare([], reference="RC-2", scope="products", product_ids=["FG_XX_20260101_0001"])
    assert err.value.field == "product_ids"


def test_a_recall_that_has_not_started_reaches_no_consumer_yet():
    lot = make_lot()
    unit = make_product(lot)
    declare([lot], starts_at=timezone.now() + timedelta(hours=2))
    assert recall_for_product(unit) is None


def test_recall_rows_cannot_be_updated_or_deleted_in_the_database():
    lot = make_lot()
    make_product(lot)
    recall = declare([lot])
    closure = recall_close(recall=recall, reason="Analyses négatives")
    statements = [
        ("UPDATE recalls SET reason = 'x' WHERE id = %s", recall.pk),
        ("DELETE FROM recalls WHERE id = %s", recall.pk),
        ("DELETE FROM recall_lots WHERE recall_id = %s", recall.pk),
        ("UPDATE recall_lots SET lot_id = lot_id WHERE recall_id = %s", recall.pk),
        ("UPDATE recall_closures SET reason = 'x' WHERE id = %s", closure.pk),
        ("DELETE FROM recall_closures WHERE id = %s", closure.pk),
    ]
    for sql, pk in statements:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        Recall.objects.filter(pk=recall.pk).update(reason="edited")
    assert Recall.objects.get(pk=recall.pk).reason == "Listeria monocytogenes"
    assert RecallLot.objects.filter(recall=recall).count() == 1


def test_closing_is_a_new_sealed_record_and_happens_once():
    lot = make_lot()
    unit = make_product(lot)
    recall = declare([lot])

    closure = recall_close(recall=recall, reason="Analyses négatives")

    assert RecallClosure.objects.get(recall=recall) == closure
    assert LedgerLeaf.objects.get(recall_closure=closure).kind == "recall_closure"
    assert recall_for_product(unit).closure == closure
    assert closure.history.get().history_type == "+"  # in the audit trail
    with pytest.raises(RecallError):
        recall_close(recall=recall, reason="again")
    assert ledger.ledger_verify().ok


def test_the_admin_previews_the_units_and_lots_then_declares_on_confirmation(client):
    lot, other = make_lot(), make_lot()
    for _ in range(4):
        make_product(lot)
    make_product(other)
    client.force_login(make_staff("quality", *RECALL_PERMS))

    preview = client.post("/admin/traceability/recall/add/", form_data(lot))

    assert preview.status_code == 200
    html = preview.content.decode()
    shown = html[html.index('data-testid="recall-preview"') : html.index('id="recall-form"')]
    assert 'data-units="4"' in shown
    assert lot.code in shown and other.code not in shown
    assert not Recall.objects.exists()

    done = client.post("/admin/traceability/recall/add/", {**form_data(lot), "confirm": "1"})

    recall = Recall.objects.get()
    assert done.status_code == 302
    assert done["Location"] == f"/admin/traceability/recall/{recall.pk}/change/"
    assert recall.declared_by.username == "quality"
    assert recall_affected_products(recall).count() == 4
    assert recall.history.count() == 1  # in the audit trail


def test_the_admin_offers_no_change_nor_delete_of_a_recall(client):
    lot = make_lot()
    recall = declare([lot])
    client.force_login(make_staff("quality", *RECALL_PERMS))

    page = client.get(f"/admin/traceability/recall/{recall.pk}/change/")
    assert page.status_code == 200  # read-only view
    assert 'name="_save"' not in page.content.decode()
    edited = client.post(f"/admin/traceability/recall/{recall.pk}/change/", {"reason": "edited"})
    assert edited.status_code == 403
    assert client.post(f"/admin/traceability/recall/{recall.pk}/delete/").status_code == 403
    listing = client.post(
        "/admin/traceability/recall/",
        {"action": "delete_selected", "_selected_action": [recall.pk], "post": "yes"},
    )
    assert listing.status_code in (200, 302)
    assert Recall.objects.filter(pk=recall.pk).exists()
    assert Recall.objects.get(pk=recall.pk).reason == "Listeria monocytogenes"


def test_staff_without_the_recall_permissions_are_refused_every_recall_view(client):
    lot = make_lot()
    recall = declare([lot])
    client.force_login(make_staff("nobody"))

    urls = [
        "/admin/traceability/recall/add/",
        f"/admin/traceability/recall/{recall.pk}/close/",
        f"/admin/traceability/recall/{recall.pk}/reach/",
        f"/admin/traceability/recall/{recall.pk}/units.csv",
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.post(urls[0], {**form_data(lot), "confirm": "1"}).status_code == 403
    assert client.post(urls[1], {"reason": "x"}).status_code == 403
    assert not RecallClosure.objects.exists()


def test_an_analyst_reads_the_reach_and_csv_but_cannot_declare_nor_close(client):
    lot = make_lot()
    recall = declare([lot])
    client.force_login(make_staff("analyst", "traceability.view_recall"))

    assert client.get(f"/admin/traceability/recall/{recall.pk}/reach/").status_code == 200
    assert client.get(f"/admin/traceability/recall/{recall.pk}/units.csv").status_code == 200
    assert client.get("/admin/traceability/recall/add/").status_code == 403
    assert client.get(f"/admin/traceability/recall/{recall.pk}/close/").status_code == 403


def test_the_reach_counts_scans_since_the_declaration_per_day_and_place_and_the_reviews(client):
    lot = make_lot()
    units = [make_product(lot) for _ in range(3)]
    review(units[0], comment="Très bon")
    recall = declare([lot])
    for unit in units[:2]:
        client.get(f"/p/{unit.qr_code}", headers={"accept-language": "fr-FR"})
    client.get(f"/p/{units[0].qr_code}", headers={"accept-language": "en-GB"})

    reach = recall_reach(recall)

    assert reach["units"] == 3 and reach["scanned_units"] == 2
    assert {(r["country"], r["scans"], r["units"]) for r in reach["scans"]} == {
        ("FR", 2, 2),
        ("GB", 1, 1),
    }
    assert [r["product_id"] for r in reach["reviews"]] == [units[0].product_id]
    client.force_login(make_staff("quality", *RECALL_PERMS))
    page = client.get(f"/admin/traceability/recall/{recall.pk}/reach/").content.decode()
    assert 'data-testid="reach-units">3<' in page and "Très bon" in page


def test_the_csv_lists_every_affected_unit_with_its_qr_url_and_scans(client, settings):
    lot, other = make_lot(), make_lot()
    units = [make_product(lot) for _ in range(3)]
    make_product(other)
    recall = declare([lot])
    client.get(f"/p/{units[1].qr_code}")
    client.force_login(make_staff("quality", *RECALL_PERMS))

    response = client.get(f"/admin/traceability/recall/{recall.pk}/units.csv")

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["product_id"] for r in rows] == [u.product_id for u in units]
    row = rows[1]
    assert row["qr_url"] == f"{settings.PUBLIC_BASE_URL}/p/{units[1].qr_code}"
    assert row["lot"] == lot.code and row["site"] == units[1].site_code
    assert row["sample"] == units[1].sqal_sample_id
    assert row["scans"] == "1" and rows[0]["scans"] == "0"
    assert row["created_at"] and row["lot_feeding_start"]


def test_closing_from_the_admin_needs_a_reason_and_makes_a_closing_record(client):
    lot = make_lot()
    recall = declare([lot])
    client.force_login(make_staff("quality", *RECALL_PERMS))
    url = f"/admin/traceability/recall/{recall.pk}/close/"

    assert client.post(url, {"reason": ""}).status_code == 200
    assert not RecallClosure.objects.exists()
    assert client.post(url, {"reason": "Analyses négatives"}).status_code == 302
    assert RecallClosure.objects.get().closed_by.username == "quality"


def test_the_quality_staff_role_declares_and_closes_and_the_analyst_only_reads(client):
    lot = make_lot()
    make_product(lot)
    recall = declare([lot])
    quality, analyst = make_staff("q"), make_staff("a")
    quality.groups.add(Group.objects.get(name="Quality staff"))
    analyst.groups.add(Group.objects.get(name="Analyst"))

    client.force_login(quality)
    assert client.get("/admin/traceability/recall/add/").status_code == 200
    assert client.get(f"/admin/traceability/recall/{recall.pk}/close/").status_code == 200
    assert client.get(f"/admin/traceability/recall/{recall.pk}/reach/").status_code == 200
    close_url = f"/admin/traceability/recall/{recall.pk}/close/"
    assert close_url in client.get("/admin/traceability/recall/").content.decode()
    client.force_login(analyst)
    listing = client.get("/admin/traceability/recall/").content.decode()
    assert recall.reference in listing and close_url not in listing
    assert client.get(f"/admin/traceability/recall/{recall.pk}/reach/").status_code == 200
    assert client.get(f"/admin/traceability/recall/{recall.pk}/units.csv").status_code == 200
    assert client.get("/admin/traceability/recall/add/").status_code == 403
    assert client.get(f"/admin/traceability/recall/{recall.pk}/close/").status_code == 403
